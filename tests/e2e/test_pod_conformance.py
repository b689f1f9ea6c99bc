"""Pods in a virtual cluster (default values) behave as on a real cluster, checked on the real host the way
the Kubernetes conformance specs check them (issue 11, part 3):

- `[sig-node] Pods should contain environment variables for services`: FOOSERVICE_SERVICE_HOST... of the
  virtual Services of the pod's namespace, with the Service's ClusterIP (enableServiceLinks false: none);
- the short name `kubernetes` resolves only from namespace `default` (`kubernetes.default` from anywhere);
- `[sig-auth] ServiceAccounts should mount an API token into pods`: the mounted token, read as soon as the
  pod runs, is valid in the virtual cluster and carries the node claim (TokenReview extra node-name);
- `[sig-auth] ServiceAccounts ServiceAccountIssuerDiscovery should support OIDC discovery`: a projected token
  with its own audience and expirationSeconds gets exactly those;
- `[sig-node] Ephemeral Containers ... will start an ephemeral container in an existing pod`: added through the
  virtual pods/ephemeralcontainers subresource, it runs, reports its status and answers exec;
- `[sig-network] DNS should provide /etc/hosts entries for the cluster`: a pod with a hostname and a subdomain
  finds `<hostname>.<subdomain>.<namespace>.svc.cluster.local` in its /etc/hosts, on its own IP, with no
  headless Service (the host kubelet would write the host namespace there; an init container rewrites it).

One module-scoped cluster with default values from the plugin's `vcluster_manager` (its syncer image is built
from this working tree), deleted at the end. Images are the ones the host built (`hack/host images`): nothing is pulled.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import stream

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import Sides, suffix, wait  # noqa: E402

pytestmark = pytest.mark.e2e

SHELL = versions.SHELL_IMAGE
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"


class Env(Sides):
    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{suffix()}"
        self.vcore.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        return name

    def diagnose(self, ns: str) -> Any:
        def run() -> str:
            pods = [f"{p.metadata.name}: {p.status.phase} node={p.spec.node_name} {p.status.container_statuses} "
                    f"{p.status.ephemeral_container_statuses}" for p in self.vcore.list_namespaced_pod(ns).items]
            events = [f"{e.type} {e.involved_object.name}: {e.reason}: {e.message}"
                      for e in self.vcore.list_namespaced_event(ns).items]
            return "\n".join([self.vc.diagnostics(), *pods, *events])
        return run

    def start(self, ns: str, body: dict[str, Any]) -> client.V1Pod:
        """Creates a pod and waits until it runs (bound, every container ready), as WaitForPodRunning does."""
        name = body["metadata"]["name"]
        self.vcore.create_namespaced_pod(ns, body)

        def running() -> client.V1Pod | None:
            p = self.vcore.read_namespaced_pod(name, ns)
            ok = (p.status.phase == "Running" and p.spec.node_name and p.status.container_statuses
                  and all(c.ready for c in p.status.container_statuses))
            return p if ok else None
        return wait(f"virtual pod {ns}/{name} running", running, timeout=240, every=1, diagnose=self.diagnose(ns))

    def output(self, ns: str, body: dict[str, Any]) -> str:
        """Runs a pod to completion (must succeed) and returns its log, read through the virtual API."""
        name = body["metadata"]["name"]
        self.vcore.create_namespaced_pod(ns, body)
        phase = wait(f"virtual pod {ns}/{name} finished",
                     lambda: (lambda p: p if p in ("Succeeded", "Failed") else None)(
                         self.vcore.read_namespaced_pod(name, ns).status.phase),
                     timeout=240, every=1, diagnose=self.diagnose(ns))
        log = self.vcore.read_namespaced_pod_log(name, ns)
        assert phase == "Succeeded", f"{ns}/{name}: {phase}\n{log}"
        return log

    def exec(self, ns: str, name: str, command: list[str], container: str | None = None) -> str:
        kw = {"container": container} if container else {}
        return stream(self.vcore.connect_get_namespaced_pod_exec, name, ns, command=command, stderr=True,
                      stdin=False, stdout=True, tty=False, _request_timeout=60, **kw)


def shell_pod(name: str, script: str, restart: str = "Never", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": SHELL, "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", script]}], **spec}}


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(scope="module")
def env(vcluster_manager: Any, host_api: client.ApiClient) -> Iterator[Env]:
    """Default values; through the plugin, so the syncer is the one built from this working tree."""
    with vcluster_manager.cluster() as vc:
        yield Env(vc, host_api)


# ------------------------------------------------------------------ service environment variables

def test_pods_contain_environment_variables_for_services(env: Env) -> None:
    """The spec: a Service fooservice (port 8765), then a pod printing its environment."""
    ns = env.namespace("svcenv")
    env.vcore.create_namespaced_service(ns, {
        "metadata": {"name": "fooservice"},
        "spec": {"selector": {"name": "srv"}, "ports": [{"port": 8765, "targetPort": 8080}]}})
    # the pod right after the Service, as the spec does; the Service's ClusterIP is the one of its host copy
    # (the virtual Service is re-created with it moments later)
    out = env.output(ns, shell_pod("client-envvars", "env"))
    host_svc = env.vc.host_name("Service", "fooservice", ns)
    ip = env.hcore.read_namespaced_service(host_svc, env.hns).spec.cluster_ip
    got = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    expected = {"FOOSERVICE_SERVICE_HOST": ip, "FOOSERVICE_SERVICE_PORT": "8765",
                "FOOSERVICE_PORT": f"tcp://{ip}:8765", "FOOSERVICE_PORT_8765_TCP": f"tcp://{ip}:8765",
                "FOOSERVICE_PORT_8765_TCP_PROTO": "tcp", "FOOSERVICE_PORT_8765_TCP_PORT": "8765",
                "FOOSERVICE_PORT_8765_TCP_ADDR": ip}
    assert {k: got.get(k) for k in expected} == expected, out
    wait("virtual fooservice on its host copy's ClusterIP",
         lambda: env.vcore.read_namespaced_service("fooservice", ns).spec.cluster_ip == ip, timeout=60)
    api_ip = env.vcore.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert got.get("KUBERNETES_SERVICE_HOST") == api_ip and got.get("KUBERNETES_SERVICE_PORT") == "443", out

    # enableServiceLinks false: only the master Service's variables (as the kubelet does)
    out = env.output(ns, shell_pod("client-nolinks", "env", enableServiceLinks=False))
    assert "FOOSERVICE_" not in out, out
    assert f"KUBERNETES_SERVICE_HOST={api_ip}" in out, out
    # another namespace's pod does not see fooservice
    other = env.namespace("svcenv-other")
    assert "FOOSERVICE_" not in env.output(other, shell_pod("client-other", "env"))


# ------------------------------------------------------------------ the short name kubernetes

def resolves(env: Env, ns: str, name: str) -> str:
    # the two ways a name resolves in a pod: the hosts file (exact name) and cluster DNS with the pod's search
    # path (busybox nslookup applies resolv.conf's search list)
    script = ("for n in kubernetes kubernetes.default kubernetes.default.svc; do "
              "if awk -v n=$n '{for (i = 2; i <= NF; i++) if ($i == n) f = 1} END {exit !f}' /etc/hosts "
              "|| nslookup $n >/dev/null 2>&1; then echo $n=yes; else echo $n=no; fi; done")
    return env.output(ns, shell_pod(name, script))


def test_short_name_kubernetes_only_in_default(env: Env) -> None:
    """On a real cluster `kubernetes` resolves only through the search path of namespace default."""
    elsewhere = resolves(env, env.namespace("short"), "resolver")
    assert "kubernetes=no" in elsewhere, elsewhere
    assert "kubernetes.default=yes" in elsewhere and "kubernetes.default.svc=yes" in elsewhere, elsewhere
    name = f"resolver-{suffix()}"
    try:
        in_default = resolves(env, "default", name)
    finally:
        env.vcore.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    assert "kubernetes=yes" in in_default, in_default


# ------------------------------------------------------------------ service account tokens

def test_service_account_mounts_api_token_with_node_claim(env: Env) -> None:
    """The spec: a pod of ServiceAccount mount-test; its token, CA and namespace read as soon as it runs; a
    TokenReview authenticates the token as the ServiceAccount, with the pod's node in the extra info."""
    ns = env.namespace("satoken")
    env.vcore.create_namespaced_service_account(ns, {"metadata": {"name": "mount-test"}})
    pod = env.start(ns, shell_pod("pod-service-account", "sleep 100000", serviceAccountName="mount-test"))
    base = "/var/run/secrets/kubernetes.io/serviceaccount"
    token = env.exec(ns, "pod-service-account", ["cat", f"{base}/token"])
    assert env.exec(ns, "pod-service-account", ["cat", f"{base}/namespace"]) == ns
    root_ca = env.vcore.read_namespaced_config_map("kube-root-ca.crt", ns).data["ca.crt"]
    assert env.exec(ns, "pod-service-account", ["cat", f"{base}/ca.crt"]) == root_ca
    review = client.AuthenticationV1Api(env.vc.api_client).create_token_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    assert review.status.authenticated, review.status
    assert review.status.user.username == f"system:serviceaccount:{ns}:mount-test"
    assert {"system:serviceaccounts", f"system:serviceaccounts:{ns}"} <= set(review.status.user.groups)
    extra = review.status.user.extra or {}
    assert extra.get(NODE_NAME_EXTRA) == [pod.spec.node_name], extra
    assert jwt_claims(token)["kubernetes.io"]["node"]["name"] == pod.spec.node_name


def test_projected_token_keeps_its_audience_and_expiry(env: Env) -> None:
    """The OIDC discovery spec mounts a token for audience oidc-discovery-test: that audience, that lifetime."""
    ns = env.namespace("oidc")
    volume = {"name": "oidc-token", "projected": {"sources": [{"serviceAccountToken": {
        "audience": "oidc-discovery-test", "expirationSeconds": 600, "path": "token"}}]}}
    body = shell_pod("oidc-discovery-validator", "sleep 100000", volumes=[volume])
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": "oidc-token", "mountPath": "/var/run/secrets/tokens"}]
    env.start(ns, body)
    token = env.exec(ns, "oidc-discovery-validator", ["cat", "/var/run/secrets/tokens/token"])
    claims = jwt_claims(token)
    assert claims["aud"] == ["oidc-discovery-test"], claims
    assert claims["exp"] - claims["iat"] == 600, claims
    assert claims["sub"] == f"system:serviceaccount:{ns}:default"
    auth = client.AuthenticationV1Api(env.vc.api_client)
    review = auth.create_token_review({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                       "spec": {"token": token, "audiences": ["oidc-discovery-test"]}})
    assert review.status.authenticated, review.status
    # the default mount still has the API server's own audience
    default = env.exec(ns, "oidc-discovery-validator", ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"])
    assert jwt_claims(default)["aud"] != ["oidc-discovery-test"]


# ------------------------------------------------------------------ ephemeral containers

def test_ephemeral_container_starts_in_an_existing_pod(env: Env) -> None:
    """The spec: a running pod gets an ephemeral container `debugger` through pods/ephemeralcontainers; it
    runs (its status says so) and a command runs in it."""
    ns = env.namespace("ephemeral")
    pod = env.start(ns, shell_pod("ephemeral-containers-target-pod", "sleep 100000", restart="Always"))
    pod.spec.ephemeral_containers = [client.V1EphemeralContainer(
        name="debugger", image=SHELL, image_pull_policy="Never", command=["sh", "-c", "sleep 100000"],
        stdin=True, tty=True, target_container_name="main")]
    env.vcore.replace_namespaced_pod_ephemeralcontainers("ephemeral-containers-target-pod", ns, pod)

    def debugger_running() -> bool:
        statuses = env.vcore.read_namespaced_pod("ephemeral-containers-target-pod", ns).status
        return any(s.name == "debugger" and s.state and s.state.running
                   for s in statuses.ephemeral_container_statuses or [])
    wait("ephemeral container debugger running", debugger_running, timeout=180, every=1, diagnose=env.diagnose(ns))
    hpod = env.hcore.read_namespaced_pod(env.vc.host_name("Pod", "ephemeral-containers-target-pod", ns), env.hns)
    assert [c.name for c in hpod.spec.ephemeral_containers or []] == ["debugger"]
    out = env.exec(ns, "ephemeral-containers-target-pod", ["sh", "-c", "echo polo"], container="debugger")
    assert out.strip() == "polo", out


# ------------------------------------------------------------------ /etc/hosts of a pod with a subdomain

def test_pod_with_subdomain_finds_its_fqdn_in_etc_hosts(env: Env) -> None:
    """The spec: pod dns-querier-1 with subdomain dns-test-service (no Service of that name) reads its names
    from /etc/hosts; the virtual pod shows no trace of the host's init container."""
    ns = env.namespace("hosts")
    out = env.output(ns, shell_pod("querier", "cat /etc/hosts", hostname="dns-querier-1",
                                   subdomain="dns-test-service"))
    pod = env.vcore.read_namespaced_pod("querier", ns)
    fqdn = f"dns-querier-1.dns-test-service.{ns}.svc.cluster.local"
    assert f"{pod.status.pod_ip}\t{fqdn}\tdns-querier-1" in out.splitlines(), out
    assert out.count(fqdn) == 1, out  # once, on the pod's own line
    assert env.hns not in out, out  # no FQDN in the host namespace
    assert not pod.status.init_container_statuses, pod.status.init_container_statuses
