"""DNS inside a virtual cluster on the real host (`hack/host up`): CoreDNS as container coredns of pod R-0
(coredns.enabled), reached through the selector-less virtual Service kube-dns that the syncer keeps.

A module-scoped cluster (default values: CoreDNS on) serves the tests; one more cluster is made with
`coredns.enabled=false` to compare ready times and check that DNS is really off there. Pods run the images
the host built (nothing is pulled); their output is read from the *host* copies of the pods. Every host
namespace made here is labelled `e2e=dns` and deleted at the end.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from pytest_vcluster import Host, VCluster
from pytest_vcluster.core.contract import contract

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import Sides, create_vcluster, delete_later, suffix, wait  # noqa: E402

pytestmark = pytest.mark.e2e

SHELL = versions.SHELL_IMAGE
HTTP = versions.HTTP_IMAGE
PYTHON = versions.PYTHON_IMAGE
HELLO = "hello from pytest-vcluster httpd"
LABELS = {"e2e": "dns"}
CREATE_TIMEOUT = 300.0


class Env(Sides):
    """A virtual cluster plus API handles on both sides, running pods to completion."""

    def __init__(self, vc: VCluster, host_api: client.ApiClient) -> None:
        super().__init__(vc, host_api)
        self.core = self.vcore
        self.rbac = self.vrbac

    def run_pod(self, name: str, ns: str, image: str, command: list[str], timeout: float = 180,
                service_account: str | None = None) -> str:
        """Run a pod to completion; returns its output (from the host copy). Fails if it did not succeed."""
        body = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
            spec=client.V1PodSpec(restart_policy="Never", termination_grace_period_seconds=1,
                                  service_account_name=service_account, containers=[
                client.V1Container(name="main", image=image, image_pull_policy="Never", command=command)]),
        )
        self.core.create_namespaced_pod(ns, body)
        hname = self.vc.host_name("Pod", name, ns)

        def phase() -> str | None:
            p = self.core.read_namespaced_pod(name, ns).status.phase
            return p if p in ("Succeeded", "Failed") else None

        result = wait(f"pod {ns}/{name} to finish", phase, timeout=timeout, every=2,
                      diagnose=lambda: self.describe(name, ns))
        logs = wait(f"logs of host pod {hname}",
                    lambda: self.hcore.read_namespaced_pod_log(hname, self.vc.host_namespace) or "(empty)", 60)
        assert result == "Succeeded", f"pod {ns}/{name} {result}; output:\n{logs}"
        return logs

    def describe(self, name: str, ns: str) -> str:
        lines = []
        p = self.core.read_namespaced_pod(name, ns)
        lines.append(f"virtual pod {ns}/{name}: {p.status.phase} {p.status.conditions}")
        try:
            hp = self.hcore.read_namespaced_pod(self.vc.host_name("Pod", name, ns), self.vc.host_namespace)
            lines.append(f"host pod: {hp.status.phase} {hp.status.container_statuses}")
            lines.append(self.hcore.read_namespaced_pod_log(hp.metadata.name, self.vc.host_namespace) or "")
        except client.ApiException as e:
            lines.append(f"host pod: {e.status} {e.reason}")
        return "\n".join(lines)


def syncer_log(env: Env) -> str:
    return env.hcore.read_namespaced_pod_log(f"{env.vc.release}-0", env.vc.host_namespace, container="syncer")


def coredns_ready_seconds(env: Env) -> float | None:
    m = re.search(r"coredns: ready \(([\d.]+)s", syncer_log(env))
    return float(m.group(1)) if m else None


def create(host: Host, name: str, **kw: Any) -> VCluster:
    return create_vcluster(host, name, labels=LABELS, timeout=CREATE_TIMEOUT, **kw)


@pytest.fixture(scope="module")
def mod_host_api(host_kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(host_kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="module")
def env(host: Host, mod_host_api: client.ApiClient) -> Iterator[Env]:
    vc = create(host, f"e2e-dns-{suffix()}")
    try:
        yield Env(vc, mod_host_api)
    finally:
        delete_later(vc)


# ---------------------------------------------------------------------------------------------- tests


def test_coredns_objects_and_ready_before_cluster_ready(env: Env) -> None:
    """When the cluster is ready, CoreDNS (container coredns of pod R-0) answers (a gate of the syncer's
    readiness, which VCluster.create waits for; the kubelet reports the container Ready at its next probe)
    and kube-dns routes to it: a selector-less Service whose Endpoints name R-0's pod IP and the DNS port."""
    ns = "kube-system"
    svc = env.core.read_namespaced_service("kube-dns", ns)
    assert not svc.spec.selector, f"kube-dns must not select pods: {svc.spec.selector}"
    hsvc = env.hcore.read_namespaced_service(env.vc.host_name("Service", "kube-dns", ns), env.vc.host_namespace)
    assert svc.spec.cluster_ip == hsvc.spec.cluster_ip
    def control_plane_pod() -> client.V1Pod:
        return env.hcore.read_namespaced_pod(contract.control_plane_pod(env.vc.release), env.vc.host_namespace)

    wait("the kubelet to report container coredns Ready (probed every second)",
         lambda: {c.name: c.ready for c in control_plane_pod().status.container_statuses}.get("coredns") is True,
         timeout=10)
    pod = control_plane_pod()

    def addresses(eps: client.V1Endpoints) -> set[tuple[str, int]]:
        return {(a.ip, p.port) for s in eps.subsets or [] for a in s.addresses or [] for p in s.ports or []}

    expected = {(pod.status.pod_ip, contract.DNS_PORT)}
    assert addresses(env.core.read_namespaced_endpoints("kube-dns", ns)) >= expected
    assert addresses(env.hcore.read_namespaced_endpoints(env.vc.host_name("Endpoints", "kube-dns", ns),
                                                         env.vc.host_namespace)) >= expected
    assert not env.core.list_namespaced_pod(ns, label_selector="k8s-app=kube-dns").items
    seconds = coredns_ready_seconds(env)
    print(f"CoreDNS ready {seconds}s after the syncer applied it; cluster ready in {env.vc.setup_seconds:.1f}s")
    assert seconds is not None


def test_service_names_resolve_and_answer(env: Env) -> None:
    """A virtual pod reaches a virtual Service by `svc`, `svc.ns` and `svc.ns.svc.cluster.local`."""
    ns = f"team-{suffix()}"
    env.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    env.core.create_namespaced_pod(ns, client.V1Pod(
        metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
        spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
            name="main", image=HTTP, image_pull_policy="Never",
            ports=[client.V1ContainerPort(container_port=8080)])])))
    env.core.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"},
                                  ports=[client.V1ServicePort(port=8080, target_port=8080)])))
    wait("virtual Service web to have a ready endpoint",
         lambda: any(s.addresses for s in env.core.read_namespaced_endpoints("web", ns).subsets or []),
         diagnose=lambda: env.describe("web", ns))
    svc_ip = env.core.read_namespaced_service("web", ns).spec.cluster_ip
    dns_ip = env.core.read_namespaced_service("kube-dns", "kube-system").spec.cluster_ip

    names = ["web", f"web.{ns}", f"web.{ns}.svc.cluster.local"]
    script = "cat /etc/resolv.conf\n" + "".join(
        f"""
ok=
for i in $(seq 1 20); do
  out=$(timeout 10 wget -q -O- http://{n}:8080/) && ok=1 && break
  sleep 1
done
[ -n "$ok" ] || {{ echo "FAIL {n}"; nslookup {n}; exit 1; }}
echo "GOT {n}: $out"
""" for n in names)
    # busybox nslookup applies the search list only to names without a dot: ask for those two
    script += "".join(f"nslookup {n} | sed 's/^/NS {n}: /'\n" for n in (names[0], names[2]))
    logs = env.run_pod("client", ns, SHELL, ["sh", "-c", script])
    assert f"nameserver {dns_ip}" in logs, logs
    assert f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" in logs, logs
    for n in names:
        assert f"GOT {n}: {HELLO}" in logs, logs
    for n in (names[0], names[2]):
        assert re.search(rf"NS {re.escape(n)}: Address: {re.escape(svc_ip)}\b", logs), logs

    # From another namespace the short name is not the Service, `web.<ns>` is.
    other = env.run_pod(f"other-{suffix()}", "default", SHELL, ["sh", "-c", f"""
if timeout 10 wget -q -O- http://web:8080/ >/dev/null 2>&1; then echo "SHORT ANSWERED"; else echo "SHORT FAILED"; fi
timeout 10 wget -q -O- http://web.{ns}:8080/ | sed 's/^/CROSS: /'
"""])
    assert "SHORT FAILED" in other, other
    assert f"CROSS: {HELLO}" in other, other


def test_kubernetes_default_is_the_virtual_api_server(env: Env) -> None:
    """`kubernetes.default` resolves (through the virtual DNS) to the virtual default/kubernetes Service and
    answers as the virtual API server: it lists a Service that exists only in the virtual cluster."""
    marker = f"marker-{suffix()}"
    env.core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name=marker),
        spec=client.V1ServiceSpec(selector={"app": marker}, ports=[client.V1ServicePort(port=80)])))
    sa = f"reader-{suffix()}"
    env.core.create_namespaced_service_account("default", client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name=sa)))
    env.rbac.create_namespaced_role_binding("default", client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name=sa),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=sa, namespace="default")]))
    api_ip = env.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip

    # nslookup asks the DNS server (the hostAlias in /etc/hosts does not count here). busybox nslookup
    # applies the search list only to names without a dot, so `kubernetes.default` itself is shown as
    # the name the resolver makes of it with the `svc.cluster.local` search entry (ndots 5).
    dns = env.run_pod(f"lookup-{suffix()}", "default", SHELL, ["sh", "-c", """
grep ^search /etc/resolv.conf
for n in kubernetes kubernetes.default.svc.cluster.local; do nslookup $n | sed "s/^/NS $n: /"; done
"""])
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in dns, dns
    for n in ("kubernetes", "kubernetes.default.svc.cluster.local"):
        assert re.search(rf"NS {re.escape(n)}: Address: {re.escape(api_ip)}\b", dns), dns

    program = """
import json, socket, ssl, urllib.request
d = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(d + "/token").read().strip()
ctx = ssl.create_default_context(cafile=d + "/ca.crt")
print("RESOLVED", socket.gethostbyname("kubernetes.default"))
req = urllib.request.Request("https://kubernetes.default.svc/api/v1/namespaces/default/services",
                             headers={"Authorization": "Bearer " + token})
with urllib.request.urlopen(req, context=ctx, timeout=20) as resp:
    items = json.load(resp)["items"]
print("SERVICES", json.dumps(sorted(i["metadata"]["name"] for i in items)))
"""
    logs = env.run_pod(f"api-{suffix()}", "default", PYTHON, ["python3", "-c", program], service_account=sa)
    assert f"RESOLVED {api_ip}" in logs, logs
    services = json.loads(logs.split("SERVICES ", 1)[1].splitlines()[0])
    assert marker in services and "kubernetes" in services, logs


def test_syncer_restart_keeps_dns(env: Env) -> None:
    """A restarted syncer applies CoreDNS again without duplicating or failing; kube-dns keeps its IP."""
    before = env.core.read_namespaced_service("kube-dns", "kube-system")
    pod_name = f"{env.vc.release}-0"
    restarts = {c.name: c.restart_count for c in
                env.hcore.read_namespaced_pod(pod_name, env.vc.host_namespace).status.container_statuses}
    # kill the syncer process: the kubelet restarts the container (the pod and its etcd stay)
    from kubernetes.stream import stream

    try:
        stream(env.hcore.connect_get_namespaced_pod_exec, pod_name, env.vc.host_namespace, container="syncer",
               command=["python3", "-c", "import os, signal; os.kill(1, signal.SIGTERM)"],
               stderr=True, stdin=False, stdout=True, tty=False)
    except Exception as e:  # noqa: BLE001 - the stream may end abruptly as the process dies
        print(f"exec ended: {e}")

    def restarted_and_ready() -> bool:
        p = env.hcore.read_namespaced_pod(pod_name, env.vc.host_namespace)
        cs = {c.name: c for c in p.status.container_statuses}
        return cs["syncer"].restart_count > restarts["syncer"] and cs["syncer"].ready

    wait("the syncer container to restart and be ready", restarted_and_ready, timeout=180, every=2)
    log = syncer_log(env)
    assert "coredns: created" not in log and "coredns: updated" not in log, log[-3000:]
    after = env.core.read_namespaced_service("kube-dns", "kube-system")
    assert (after.metadata.uid, after.spec.cluster_ip) == (before.metadata.uid, before.spec.cluster_ip)


def test_coredns_disabled(host: Host, mod_host_api: client.ApiClient, env: Env) -> None:
    """coredns.enabled=false: no CoreDNS objects, pods keep the host's DNS; prints the ready-time difference."""
    vc = create(host, f"e2e-nodns-{suffix()}", values={"coredns": {"enabled": False}})
    try:
        off = Env(vc, mod_host_api)
        with pytest.raises(client.ApiException) as exc:
            off.core.read_namespaced_service("kube-dns", "kube-system")
        assert exc.value.status == 404
        assert not off.core.list_namespaced_pod("kube-system").items
        r0 = off.hcore.read_namespaced_pod(contract.control_plane_pod(vc.release), vc.host_namespace)
        assert "coredns" not in {c.name for c in r0.spec.containers}
        logs = off.run_pod(f"dns-{suffix()}", "default", SHELL, ["cat", "/etc/resolv.conf"])
        assert f"search {vc.host_namespace}.svc.cluster.local" in logs, logs  # the host's DNS, unchanged
        on, off_ = env.vc.phase_seconds.get("pod-ready", 0.0), vc.phase_seconds.get("pod-ready", 0.0)
        print(f"ready with CoreDNS {env.vc.setup_seconds:.1f}s (pod-ready {on:.1f}s), "
              f"without {vc.setup_seconds:.1f}s (pod-ready {off_:.1f}s)")
    finally:
        delete_later(vc)
