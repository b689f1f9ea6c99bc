"""The chart and the syncer give a working, isolated virtual cluster on the real host (`hack/host up`).

Clusters: test 1 installs `chart/` with the helm binary itself; a module-scoped cluster made by
`VCluster.create` serves the workload tests; a second module-scoped pair of clusters serves the
isolation, syncer-restart and namespace-deletion tests. Every host namespace made here is labelled
`e2e=vcluster` and deleted at the end, also when a test fails.

Workloads use the images the host built (`hack/host images`): nothing is pulled. Logs are read
from the *host* copies of the pods (the virtual cluster's fake nodes have no kubelet behind them).
`helm` and `kubectl` must be on PATH (`export PATH="$(hack/host tools):$PATH"`).
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from pytest_vcluster import Host, ImageError, VCluster
from pytest_vcluster.core.contract import contract

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import (  # noqa: E402
    Sides,
    crd_established,
    create_vcluster,
    delete_later,
    events_text,
    gone,
    suffix,
    wait,
    widget_crd,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
SHELL = versions.SHELL_IMAGE
HTTP = versions.HTTP_IMAGE
PYTHON = versions.PYTHON_IMAGE
HELLO = "hello from pytest-vcluster httpd"
E2E_LABELS = {"e2e": "vcluster"}
MANAGED_BY = "vcluster.loft.sh/managed-by"
CREATE_TIMEOUT = 300.0


# ---------------------------------------------------------------------------------------------- helpers


def pod(name: str, image: str, command: list[str] | None = None, *, labels: dict[str, str] | None = None,
        restart_policy: str = "Always", env: list[client.V1EnvVar] | None = None,
        volume_mounts: list[client.V1VolumeMount] | None = None, ports: list[int] | None = None,
        **spec: Any) -> client.V1Pod:
    container = client.V1Container(
        name="main", image=image, command=command, image_pull_policy="Never", env=env, volume_mounts=volume_mounts,
        ports=[client.V1ContainerPort(container_port=p) for p in ports or []] or None,
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {"app": name}),
        spec=client.V1PodSpec(containers=[container], restart_policy=restart_policy,
                              termination_grace_period_seconds=1, **spec),
    )


def sleeper(name: str) -> client.V1Pod:
    return pod(name, SHELL, ["sleep", "3600"])


def running(core: client.CoreV1Api, ns: str, name: str) -> bool:
    p = core.read_namespaced_pod(name, ns)
    return p.status.phase == "Running" and bool(p.status.container_statuses) and all(
        c.ready for c in p.status.container_statuses)


def finished(core: client.CoreV1Api, ns: str, name: str) -> str | None:
    """The pod's phase once it is Succeeded or Failed, else None."""
    phase = core.read_namespaced_pod(name, ns).status.phase
    return phase if phase in ("Succeeded", "Failed") else None


def create_namespace(core: client.CoreV1Api, name: str) -> None:
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except client.ApiException as e:
        if e.status != 409:
            raise


class Env(Sides):
    """A virtual cluster seen from both sides, with host-name checks of its pods."""

    def host_name(self, name: str, namespace: str) -> str:
        expected = self.vc.host_name("Pod", name, namespace)
        if len(f"{name}-x-{namespace}-x-{self.release}") <= 63:
            assert expected == f"{name}-x-{namespace}-x-{self.release}"
        return expected

    def host_pod(self, name: str, namespace: str) -> client.V1Pod:
        return self.hcore.read_namespaced_pod(self.host_name(name, namespace), self.hns)

    def host_logs(self, name: str, namespace: str) -> str:
        return self.hcore.read_namespaced_pod_log(self.host_name(name, namespace), self.hns, container="main")

    def diagnose(self) -> str:
        return f"{self.vc.diagnostics()}\nhost events:\n{events_text(self.hcore, self.hns)}"

    def wait_running(self, names: list[str], namespace: str, timeout: float = 240) -> None:
        for name in names:
            wait(f"virtual pod {namespace}/{name} Running and ready", lambda n=name: running(self.vcore, namespace, n),
                 timeout=timeout, diagnose=self.diagnose)

    def wait_finished(self, name: str, namespace: str, timeout: float = 240) -> str:
        return wait(f"virtual pod {namespace}/{name} finished",
                    lambda: finished(self.vcore, namespace, name), timeout=timeout, diagnose=self.diagnose)

    def host_copies(self, kind: str = "Pod") -> dict[tuple[str, str], list[str]]:
        """(virtual namespace, virtual name) -> names of the host objects pointing back at it."""
        if kind == "Pod":
            items = self.hcore.list_namespaced_pod(self.hns, label_selector=f"{MANAGED_BY}={self.release}").items
        else:
            raise ValueError(kind)
        copies: dict[tuple[str, str], list[str]] = {}
        for item in items:
            ann = item.metadata.annotations or {}
            key = (ann.get("vcluster.loft.sh/object-namespace", "?"), ann.get("vcluster.loft.sh/object-name", "?"))
            copies.setdefault(key, []).append(item.metadata.name)
        return copies


def create(host: Host, name: str) -> VCluster:
    return create_vcluster(host, name, labels=E2E_LABELS, timeout=CREATE_TIMEOUT)


@pytest.fixture(scope="module")
def shared(host: Host, host_api: client.ApiClient) -> Iterator[Env]:
    """One virtual cluster for the workload tests (2-5)."""
    vc = create(host, f"e2e-vc-{suffix()}")
    try:
        yield Env(vc, host_api)
    finally:
        delete_later(vc)


@pytest.fixture(scope="module")
def twins(host: Host, host_api: client.ApiClient) -> Iterator[tuple[Env, Env]]:
    """Two virtual clusters in two host namespaces (isolation, syncer restart, namespace deletion)."""
    tag = suffix()
    names = [f"e2e-twin-a-{tag}", f"e2e-twin-b-{tag}"]
    created: list[VCluster] = []
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(create, host, n) for n in names]
        errors = []
        for f in futures:
            try:
                created.append(f.result())
            except Exception as e:  # noqa: BLE001 - delete the other one, then fail
                errors.append(e)
    try:
        if errors:
            pytest.fail(f"creating the twin clusters failed: {errors}")
        yield Env(created[0], host_api), Env(created[1], host_api)
    finally:
        for vc in created:
            delete_later(vc)


# ---------------------------------------------------------------------------------------------- 1. helm install


def kubectl_port_forward(kubeconfig: Path, namespace: str, target: str, remote_port: int,
                         log: Path, timeout: float = 60) -> tuple[subprocess.Popen[str], int]:
    """`kubectl port-forward TARGET :PORT` on 127.0.0.1; returns the process and the local port."""
    with open(log, "w") as err:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            ["kubectl", "--kubeconfig", str(kubeconfig), "-n", namespace, "port-forward", "--address", "127.0.0.1",
             target, f":{remote_port}"],
            stdout=subprocess.PIPE, stderr=err, text=True,
        )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if not sel.select(timeout=1):
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line)
        if match:
            # keep draining ("Handling connection for ..." per connection) so kubectl never blocks
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, int(match.group(1))
    proc.kill()
    proc.wait()
    pytest.fail(f"kubectl port-forward {target} did not start: {''.join(seen)} {log.read_text()}")


def test_helm_install_gives_a_virtual_cluster_reached_through_its_secret(
        host_kubeconfig: Path, host_api: client.ApiClient, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    core = client.CoreV1Api(host_api)
    release = f"e2e-helm-{suffix()}"
    ns = release
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels=E2E_LABELS)))
    forward: subprocess.Popen[str] | None = None
    vapi: client.ApiClient | None = None
    try:
        started = time.monotonic()
        install = subprocess.run(
            ["helm", "install", release, str(CHART), "--namespace", ns, "--kubeconfig", str(host_kubeconfig),
             "--set", "serviceCIDR=10.96.0.0/12"],
            capture_output=True, text=True, timeout=300,
        )
        assert install.returncode == 0, install.stdout + install.stderr
        installed = time.monotonic()

        def diagnose() -> str:
            return events_text(core, ns)

        wait(f"host pod {release}-0 Ready", lambda: running(core, ns, f"{release}-0"), timeout=CREATE_TIMEOUT,
             diagnose=diagnose)
        pod_ready = time.monotonic()

        secret = core.read_namespaced_secret(f"vc-{release}", ns)
        data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
        assert {"config", "certificate-authority", "token"} <= set(data), sorted(data)
        kubeconfig = yaml.safe_load(data["config"])
        cluster = kubeconfig["clusters"][0]["cluster"]
        assert cluster["server"] == "https://localhost:8443"

        # the kubeconfig as a user would use it: through `kubectl port-forward` to Service R (443 -> 6443)
        forward, port = kubectl_port_forward(host_kubeconfig, ns, f"service/{release}", 443, tmp_path / "pf.log")
        cluster["server"] = f"https://localhost:{port}"
        kubeconfig_path = tmp_path / "virtual.kubeconfig"
        kubeconfig_path.write_text(yaml.safe_dump(kubeconfig))
        vapi = config.new_client_from_config(config_file=str(kubeconfig_path))
        vcore = client.CoreV1Api(vapi)
        version = wait("the virtual API server to answer", lambda: client.VersionApi(vapi).get_code(),
                       timeout=CREATE_TIMEOUT)
        api_up = time.monotonic()
        wait("ServiceAccount default/default in the virtual cluster",
             lambda: vcore.read_namespaced_service_account("default", "default"), timeout=CREATE_TIMEOUT)
        ready = time.monotonic()

        total = ready - started
        record_property("install_to_ready_seconds", round(total, 1))
        print(f"\nhelm install -> Ready: {total:.1f}s (helm install {installed - started:.1f}s, "
              f"pod Ready +{pod_ready - installed:.1f}s, API answering +{api_up - pod_ready:.1f}s, "
              f"default ServiceAccount +{ready - api_up:.1f}s)")

        assert version.git_version.startswith("v1.37."), version.git_version  # the chart's default minor
        namespaces = {n.metadata.name for n in vcore.list_namespace().items}
        assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= namespaces
        assert ns not in namespaces and "local-path-storage" not in namespaces, namespaces
        # the admin user is the static token of the secret, in system:masters
        review = client.AuthenticationV1Api(vapi).create_self_subject_review(
            client.V1SelfSubjectReview(metadata=client.V1ObjectMeta()))
        assert "system:masters" in review.status.user_info.groups
        # the same file works for tools in subprocesses
        out = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig_path), "get", "namespaces", "-o", "name"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "namespace/kube-system" in out.stdout, out.stderr
        status = subprocess.run(["helm", "status", release, "-n", ns, "--kubeconfig", str(host_kubeconfig),
                                 "-o", "json"], capture_output=True, text=True, timeout=60)
        assert json.loads(status.stdout)["info"]["status"] == "deployed"
        assert total < CREATE_TIMEOUT
    finally:
        if vapi is not None:
            vapi.close()
        if forward is not None:
            forward.kill()
            forward.wait()
        try:
            core.delete_namespace(ns)
        except client.ApiException as e:
            if e.status != 404:
                raise


# ---------------------------------------------------------------------------------------------- 1b. missing image


def test_missing_syncer_image_fails_at_once_naming_image_and_reason(host: Host, host_api: client.ApiClient) -> None:
    """An image the host cannot pull fails creation with ImagePullBackOff/ErrImagePull, not at the timeout."""
    import fnmatch

    name = f"e2e-noimage-{suffix()}"
    missing = "pytest-vcluster.local/does-not-exist"
    started = time.monotonic()
    with pytest.raises(ImageError) as info:
        VCluster.create(host, name=name, labels=E2E_LABELS, timeout=CREATE_TIMEOUT,
                        set={"syncer.image.repository": missing})
    print(f"\nfailed after {time.monotonic() - started:.1f}s (timeout {CREATE_TIMEOUT:.0f}s):\n{info.value}")
    lines = str(info.value).splitlines()
    assert fnmatch.fnmatch(lines[0], f"virtual cluster {name} cannot start: container syncer is in *ImagePull* "
                                     f"(image {missing}:*)"), lines[0]
    reason = lines[0].split(" is in ")[1].split()[0]
    assert reason in ("ErrImagePull", "ImagePullBackOff"), lines[0]
    assert lines[1].startswith("kubelet says: ") and lines[1] != "kubelet says: (nothing)", lines[1]
    # the host is given by kubeconfig: the advice is a registry or an image loader, not kind
    assert lines[2].startswith("fix: push the image to a registry the host's nodes can pull from"), lines[2]
    assert "--vcluster-syncer-image=REF" in lines[2] and "--vcluster-image-loader=COMMAND" in lines[2]
    assert lines[3] == f"pod {name}-0: phase Pending, node pytest-vcluster-host", lines[3]
    assert f"events in host namespace {name}:" in lines
    assert "not ready within" not in str(info.value)
    core = client.CoreV1Api(host_api)
    wait(f"host namespace {name} gone", lambda: gone(lambda: core.read_namespace(name)), timeout=180)


# ---------------------------------------------------------------------------------------------- 2-5. workloads


def test_deployment_pods_run_and_have_owned_host_copies(shared: Env) -> None:
    env = shared
    create_namespace(env.vcore, "team-a")
    container = client.V1Container(
        name="main", image=HTTP, image_pull_policy="Never", ports=[client.V1ContainerPort(container_port=8080)],
        readiness_probe=client.V1Probe(tcp_socket=client.V1TCPSocketAction(port=8080), period_seconds=2))
    env.vapps.create_namespaced_deployment("team-a", client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[container], termination_grace_period_seconds=1)))))

    def two_running() -> list[str]:
        pods = env.vcore.list_namespaced_pod("team-a", label_selector="app=web").items
        names = [p.metadata.name for p in pods if p.status.phase == "Running"
                 and p.status.container_statuses and all(c.ready for c in p.status.container_statuses)]
        return names if len(names) == 2 and len(pods) == 2 else []

    names = wait("2 Running pods of Deployment team-a/web in the virtual cluster", two_running, timeout=240,
                 diagnose=env.diagnose)
    wait("Deployment team-a/web with 2 ready replicas",
         lambda: env.vapps.read_namespaced_deployment("web", "team-a").status.ready_replicas == 2,
         timeout=120)

    owner = env.hcore.read_namespaced_service(env.release, env.hns)
    for name in names:
        host_name = f"{name}-x-team-a-x-{env.release}"
        assert env.vc.host_name("Pod", name, "team-a") == host_name
        hp = env.hcore.read_namespaced_pod(host_name, env.hns)
        assert hp.status.phase == "Running", hp.status
        refs = [(r.api_version, r.kind, r.name, r.uid, bool(r.controller)) for r in hp.metadata.owner_references or []]
        assert refs == [("v1", "Service", env.release, owner.metadata.uid, False)], refs
        assert hp.metadata.labels[MANAGED_BY] == env.release
        assert hp.metadata.labels["vcluster.loft.sh/namespace"] == "team-a"
        ann = hp.metadata.annotations
        assert ann["vcluster.loft.sh/object-name"] == name and ann["vcluster.loft.sh/object-namespace"] == "team-a"
        vp = env.vcore.read_namespaced_pod(name, "team-a")
        assert ann["vcluster.loft.sh/object-uid"] == vp.metadata.uid
        # the virtual pod's IP and node come from the host copy
        assert vp.status.pod_ip == hp.status.pod_ip
        assert vp.spec.node_name == hp.spec.node_name
        assert hp.spec.service_account_name == f"vc-workload-{env.release}"
        assert hp.spec.automount_service_account_token is False


def test_pod_reads_configmap_and_secret(shared: Env) -> None:
    env = shared
    ns = "config"
    create_namespace(env.vcore, ns)
    env.vcore.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="app-config"),
        data={"greeting": "hello-from-configmap", "app.properties": "mode=virtual"}))
    env.vcore.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="app-secret"), string_data={"password": "s3cr3t-from-secret"}))
    script = (
        'echo "GREETING=$GREETING"; echo "PROPS=$(cat /etc/app/app.properties)"; '
        'echo "PASSWORD=$PASSWORD"; echo "SECRET_FILE=$(cat /etc/secret/password)"; '
        '[ "$GREETING" = hello-from-configmap ] && [ "$(cat /etc/app/app.properties)" = mode=virtual ] && '
        '[ "$PASSWORD" = s3cr3t-from-secret ] && [ "$(cat /etc/secret/password)" = s3cr3t-from-secret ]'
    )
    env.vcore.create_namespaced_pod(ns, pod(
        "reader", SHELL, ["sh", "-c", script], restart_policy="Never",
        env=[
            client.V1EnvVar(name="GREETING", value_from=client.V1EnvVarSource(
                config_map_key_ref=client.V1ConfigMapKeySelector(name="app-config", key="greeting"))),
            client.V1EnvVar(name="PASSWORD", value_from=client.V1EnvVarSource(
                secret_key_ref=client.V1SecretKeySelector(name="app-secret", key="password"))),
        ],
        volume_mounts=[client.V1VolumeMount(name="cfg", mount_path="/etc/app"),
                       client.V1VolumeMount(name="sec", mount_path="/etc/secret")],
        volumes=[client.V1Volume(name="cfg", config_map=client.V1ConfigMapVolumeSource(name="app-config")),
                 client.V1Volume(name="sec", secret=client.V1SecretVolumeSource(secret_name="app-secret"))]))

    phase = env.wait_finished("reader", ns)
    logs = env.host_logs("reader", ns)
    assert phase == "Succeeded", f"{phase}: {logs}\n{env.diagnose()}"
    assert logs.split() == ["GREETING=hello-from-configmap", "PROPS=mode=virtual", "PASSWORD=s3cr3t-from-secret",
                            "SECRET_FILE=s3cr3t-from-secret"], logs
    # the pod's ConfigMap and Secret were copied under host names, with the values
    hcm = env.hcore.read_namespaced_config_map(env.vc.host_name("ConfigMap", "app-config", ns), env.hns)
    assert hcm.data == {"greeting": "hello-from-configmap", "app.properties": "mode=virtual"}
    hsec = env.hcore.read_namespaced_secret(env.vc.host_name("Secret", "app-secret", ns), env.hns)
    assert base64.b64decode(hsec.data["password"]).decode() == "s3cr3t-from-secret"
    # the virtual pod's status carries the exit code
    state = env.vcore.read_namespaced_pod("reader", ns).status.container_statuses[0].state
    assert state.terminated is not None and state.terminated.exit_code == 0


SA_SCRIPT = r"""
import json, os, ssl, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(sa + "/token").read().strip()
verified = ssl.create_default_context(cafile=sa + "/ca.crt")
unverified = ssl._create_unverified_context()

def get(base, path, ctx):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status, [i["metadata"]["name"] for i in json.load(r).get("items", [])]
    except urllib.error.HTTPError as e:
        return e.code, None
    except Exception as e:
        return repr(e), None

virtual = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
host = "https://%s:443" % os.environ["HOST_API_IP"]
out = {
    "server": virtual,
    "namespace": open(sa + "/namespace").read().strip(),
    "default_pods": get(virtual, "/api/v1/namespaces/default/pods", verified),
    "all_pods": get(virtual, "/api/v1/pods", verified),
    "namespaces": get(virtual, "/api/v1/namespaces", verified),
    "host_pods": get(host, "/api/v1/namespaces/%s/pods" % os.environ["HOST_NAMESPACE_NAME"], unverified),
}
print("RESULT " + json.dumps(out))
"""


def test_pod_service_account_lists_virtual_pods_and_not_the_host(shared: Env, host_api: client.ApiClient) -> None:
    env = shared
    rbac = client.RbacAuthorizationV1Api(env.vc.api_client)
    env.vcore.create_namespaced_service_account("default", client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="pod-lister")))
    rbac.create_namespaced_role("default", client.V1Role(
        metadata=client.V1ObjectMeta(name="pod-lister"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])]))
    rbac.create_namespaced_role_binding("default", client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="pod-lister"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="pod-lister"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="pod-lister", namespace="default")]))
    env.vcore.create_namespaced_pod("default", sleeper("marker"))
    env.wait_running(["marker"], "default")

    host_api_ip = client.CoreV1Api(host_api).read_namespaced_service("kubernetes", "default").spec.cluster_ip
    env.vcore.create_namespaced_pod("default", pod(
        "sa-client", PYTHON, ["python3", "-c", SA_SCRIPT], restart_policy="Never",
        service_account_name="pod-lister",
        env=[client.V1EnvVar(name="HOST_API_IP", value=host_api_ip),
             client.V1EnvVar(name="HOST_NAMESPACE_NAME", value=env.hns)]))
    phase = env.wait_finished("sa-client", "default")
    logs = env.host_logs("sa-client", "default")
    assert phase == "Succeeded", f"{phase}: {logs}\n{env.diagnose()}"
    result = json.loads(next(line for line in logs.splitlines() if line.startswith("RESULT "))[len("RESULT "):])
    print(f"service-account client saw: {result}")

    api_service_ip = env.hcore.read_namespaced_service(env.release, env.hns).spec.cluster_ip
    assert result["server"] == f"https://{api_service_ip}:443"
    assert result["namespace"] == "default"
    status, names = result["default_pods"]
    virtual_names = sorted(p.metadata.name for p in env.vcore.list_namespaced_pod("default").items)
    assert status == 200, result
    assert sorted(names) == virtual_names and {"marker", "sa-client"} <= set(names), (names, virtual_names)
    assert not any("-x-" in n or n == f"{env.release}-0" for n in names), names
    # RBAC of the virtual cluster applies: no rights beyond pods in default
    assert result["all_pods"][0] == 403 and result["namespaces"][0] == 403, result
    # the virtual token means nothing to the host API server
    assert result["host_pods"][0] == 401, result


def test_service_cluster_ip_reachable_and_equal_to_host_copy(shared: Env) -> None:
    env = shared
    ns = "net"
    create_namespace(env.vcore, ns)
    env.vcore.create_namespaced_pod(ns, pod("web", HTTP, labels={"app": "web"}, ports=[8080]))
    env.vcore.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"},
                                  ports=[client.V1ServicePort(name="http", port=80, target_port=8080)])))
    host_svc_name = env.vc.host_name("Service", "web", ns)
    assert host_svc_name == f"web-x-{ns}-x-{env.release}"

    def same_ip() -> str | None:
        vip = env.vcore.read_namespaced_service("web", ns).spec.cluster_ip
        hip = env.hcore.read_namespaced_service(host_svc_name, env.hns).spec.cluster_ip
        return vip if vip and vip == hip else None

    ip = wait("virtual Service net/web with its host copy's ClusterIP", same_ip, timeout=120, diagnose=env.diagnose)
    env.wait_running(["web"], ns)
    script = (f"for i in $(seq 1 30); do timeout 10 wget -q -O- http://{ip}/ && exit 0; sleep 2; done; exit 1")
    env.vcore.create_namespaced_pod(ns, pod("client", SHELL, ["sh", "-c", script], restart_policy="Never"))
    phase = env.wait_finished("client", ns, timeout=300)
    logs = env.host_logs("client", ns)
    assert phase == "Succeeded", f"{phase}: {logs}\n{env.diagnose()}"
    assert HELLO in logs
    # the host copy selects the host copy of the pod only
    host_svc = env.hcore.read_namespaced_service(host_svc_name, env.hns)
    assert host_svc.spec.selector[MANAGED_BY] == env.release
    endpoints = env.hcore.read_namespaced_endpoints(host_svc_name, env.hns)
    addresses = [a.target_ref.name for s in endpoints.subsets or [] for a in s.addresses or []]
    assert addresses == [env.host_name("web", ns)], addresses


def test_crd_custom_object_and_cluster_role_stay_virtual(shared: Env, host_api: client.ApiClient) -> None:
    env = shared
    group = "e2e.pytest-vcluster.io"
    crd_name = f"widgets.{group}"
    vext = client.ApiextensionsV1Api(env.vc.api_client)
    vext.create_custom_resource_definition(widget_crd(group))

    def established() -> bool:
        return crd_established(vext, crd_name)

    wait(f"CRD {crd_name} Established in the virtual cluster", established, timeout=120)
    vcustom = client.CustomObjectsApi(env.vc.api_client)
    wait("custom object default/w1 created", lambda: vcustom.create_namespaced_custom_object(
        group, "v1", "default", "widgets",
        {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}),
        timeout=60)
    role_name = f"e2e-virtual-only-{env.release}"
    client.RbacAuthorizationV1Api(env.vc.api_client).create_cluster_role(client.V1ClusterRole(
        metadata=client.V1ObjectMeta(name=role_name),
        rules=[client.V1PolicyRule(api_groups=[group], resources=["widgets"], verbs=["*"])]))
    assert vcustom.get_namespaced_custom_object(group, "v1", "default", "widgets", "w1")["spec"] == {"size": 3}

    # a barrier: once a Service created afterwards has its host copy, the syncer has seen the objects above
    env.vcore.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="barrier"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], selector={"app": "none"})))
    wait("host copy of Service default/barrier", lambda: env.hcore.read_namespaced_service(
        env.vc.host_name("Service", "barrier", "default"), env.hns), timeout=120)

    hext = client.ApiextensionsV1Api(host_api)
    assert gone(lambda: hext.read_custom_resource_definition(crd_name))
    host_groups = [g.name for g in client.ApisApi(host_api).get_api_versions().groups]
    assert group not in host_groups
    assert gone(lambda: client.RbacAuthorizationV1Api(host_api).read_cluster_role(role_name))
    # nothing in the host namespace points back at a Widget or a ClusterRole
    kinds = set()
    for lister in (env.hcore.list_namespaced_config_map, env.hcore.list_namespaced_secret,
                   env.hcore.list_namespaced_service, env.hcore.list_namespaced_pod):
        for item in lister(env.hns, label_selector=f"{MANAGED_BY}={env.release}").items:
            kinds.add((item.metadata.annotations or {}).get("vcluster.loft.sh/object-kind"))
    assert not kinds & {"Widget", "ClusterRole", "CustomResourceDefinition"}, kinds


# ---------------------------------------------------------------------------------------------- 6-8. two clusters


def marker_web(text: str) -> client.V1Pod:
    return pod("web", HTTP, ["sh", "-c", f"mkdir -p /tmp/www && echo {text} > /tmp/www/index.html && "
                                         "exec httpd -f -p 8080 -h /tmp/www"], labels={"app": "web"}, ports=[8080])


def test_two_clusters_with_identical_names_do_not_interfere(twins: tuple[Env, Env]) -> None:
    a, b = twins
    assert a.hns != b.hns
    for env in (a, b):
        create_namespace(env.vcore, "team-a")
        env.vcore.create_namespaced_config_map("team-a", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings"), data={"owner": env.release}))
        env.vcore.create_namespaced_pod("team-a", marker_web(f"served-by-{env.release}"))
        env.vcore.create_namespaced_service("team-a", client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(selector={"app": "web"},
                                      ports=[client.V1ServicePort(port=80, target_port=8080)])))
    ips = {}
    for env in (a, b):
        env.wait_running(["web"], "team-a")
        host_svc = env.vc.host_name("Service", "web", "team-a")
        ips[env.release] = wait(
            f"{env.release}: Service team-a/web with its host ClusterIP",
            lambda e=env, h=host_svc: (lambda v: v if v == e.hcore.read_namespaced_service(h, e.hns).spec.cluster_ip
                                       else None)(e.vcore.read_namespaced_service("web", "team-a").spec.cluster_ip),
            timeout=120)
    assert ips[a.release] != ips[b.release]
    for env in (a, b):
        ip = ips[env.release]
        script = f"for i in $(seq 1 30); do timeout 10 wget -q -O- http://{ip}/ && exit 0; sleep 2; done; exit 1"
        env.vcore.create_namespaced_pod("team-a", pod("client", SHELL, ["sh", "-c", script], restart_policy="Never"))
    for env, other in ((a, b), (b, a)):
        phase = env.wait_finished("client", "team-a", timeout=300)
        logs = env.host_logs("client", "team-a")
        assert phase == "Succeeded", f"{env.release}: {phase}: {logs}\n{env.diagnose()}"
        assert logs.strip() == f"served-by-{env.release}"
        assert env.vcore.read_namespaced_config_map("settings", "team-a").data == {"owner": env.release}
        assert sorted(p.metadata.name for p in env.vcore.list_namespaced_pod("team-a").items) == ["client", "web"]
        copies = {k: v for k, v in env.host_copies().items() if k[0] == "team-a"}
        assert copies == {("team-a", "web"): [f"web-x-team-a-x-{env.release}"],
                          ("team-a", "client"): [f"client-x-team-a-x-{env.release}"]}, copies
        # nothing of the other cluster in this cluster's host namespace
        assert not env.hcore.list_namespaced_pod(env.hns, label_selector=f"{MANAGED_BY}={other.release}").items

    # deleting in one cluster leaves the other alone
    a.vcore.delete_namespaced_pod("web", "team-a", grace_period_seconds=0)
    a.vcore.delete_namespaced_config_map("settings", "team-a")
    wait("a's web pod and its host copy gone",
         lambda: gone(lambda: a.vcore.read_namespaced_pod("web", "team-a"))
         and gone(lambda: a.host_pod("web", "team-a")), timeout=120, diagnose=a.diagnose)
    assert running(b.vcore, "team-a", "web")
    assert b.host_pod("web", "team-a").status.phase == "Running"
    assert b.vcore.read_namespaced_config_map("settings", "team-a").data == {"owner": b.release}


def test_the_syncer_marks_its_pod_when_the_cluster_is_ready_and_the_kubelet_keeps_the_mark(shared: Env) -> None:
    """VCluster.create returns on the syncer's condition (contract.CONDITION_CLUSTER_READY on pod R-0), set
    once the cluster is ready; the kubelet's later status updates (Ready) keep it."""
    def conditions() -> dict[str, str]:
        p = shared.hcore.read_namespaced_pod(f"{shared.release}-0", shared.hns)
        return {c.type: c.status for c in p.status.conditions or []}

    assert conditions().get(contract.CONDITION_CLUSTER_READY) == "True", conditions()
    wait("host pod R-0 Ready", lambda: conditions().get("Ready") == "True", timeout=60, diagnose=shared.diagnose)
    assert conditions().get(contract.CONDITION_CLUSTER_READY) == "True", conditions()


def syncer_restarts(env: Env) -> int:
    p = env.hcore.read_namespaced_pod(f"{env.release}-0", env.hns)
    return next(c.restart_count for c in p.status.container_statuses if c.name == "syncer")


def syncer_ready(env: Env) -> bool:
    p = env.hcore.read_namespaced_pod(f"{env.release}-0", env.hns)
    return next(bool(c.ready) for c in p.status.container_statuses if c.name == "syncer")


def syncer_pid(env: Env) -> int:
    """The pid (in this machine's pid namespace) of the syncer process of `env`'s cluster.

    The host of `hack/host` runs on this machine. A signal sent from *inside* the container cannot
    kill it: the syncer is the container's pid 1, and the kernel drops SIGKILL sent to a pid
    namespace's init from within that namespace.
    """
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"vcluster_syncer" not in cmdline:
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"HOST_NAMESPACE={env.hns}".encode() in environ and f"VCLUSTER_NAME={env.release}".encode() in environ:
            found.append(int(proc.name))
    assert len(found) == 1, f"expected one syncer process of {env.release} on this machine, found {found}"
    return found[0]


def wait_one_copy_each(env: Env, ns: str, timeout: float = 240) -> dict[tuple[str, str], list[str]]:
    def consistent() -> dict[tuple[str, str], list[str]] | None:
        virtual = {(ns, p.metadata.name) for p in env.vcore.list_namespaced_pod(ns).items
                   if p.metadata.deletion_timestamp is None}
        copies = {k: v for k, v in env.host_copies().items() if k[0] == ns}
        ok = set(copies) == virtual and all(len(v) == 1 for v in copies.values())
        return copies if ok else None

    def diagnose() -> str:
        virtual = sorted((p.metadata.name, str(p.metadata.deletion_timestamp))
                         for p in env.vcore.list_namespaced_pod(ns).items)
        return f"virtual pods: {virtual}\nhost copies: {env.host_copies()}\n{env.diagnose()}"

    return wait(f"every virtual pod of {ns} with exactly one host copy", consistent, timeout=timeout,
                diagnose=diagnose)


def test_syncer_restart_neither_loses_nor_duplicates_pods(twins: tuple[Env, Env]) -> None:
    env = twins[0]
    ns = "restart"
    create_namespace(env.vcore, ns)
    for i in range(3):
        env.vcore.create_namespaced_pod(ns, sleeper(f"before-{i}"))
    env.wait_running([f"before-{i}" for i in range(3)], ns)
    wait_one_copy_each(env, ns)
    restarts = syncer_restarts(env)

    # 1. graceful: SIGTERM through `kubectl exec` (works on any host); pods created right after
    term = subprocess.run(
        ["kubectl", "--kubeconfig", str(env.vc.host.kubeconfig_path), "-n", env.hns, "exec", f"{env.release}-0",
         "-c", "syncer", "--", "python3", "-c", "import os, signal; os.kill(1, signal.SIGTERM)"],
        capture_output=True, text=True, timeout=60)
    assert term.returncode == 0, term.stderr
    for i in range(2):
        env.vcore.create_namespaced_pod(ns, sleeper(f"after-term-{i}"))
    wait("syncer restarted after SIGTERM", lambda: syncer_restarts(env) > restarts, timeout=120,
         diagnose=env.diagnose)
    restarts = syncer_restarts(env)
    wait("syncer ready again", lambda: syncer_ready(env), timeout=120, diagnose=env.diagnose)
    wait_one_copy_each(env, ns)

    # 2. crash: freeze the syncer (it is surely down), change the virtual cluster, then SIGKILL it
    pid = syncer_pid(env)
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(3):
            env.vcore.create_namespaced_pod(ns, sleeper(f"while-down-{i}"))
        env.vcore.delete_namespaced_pod("before-0", ns, grace_period_seconds=1)
        time.sleep(5)
        copies = env.host_copies()
        assert not any(name.startswith("while-down-") for _, name in copies), \
            f"the stopped syncer still synced: {copies}"
    finally:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait("syncer restarted after SIGKILL", lambda: syncer_restarts(env) > restarts, timeout=120,
         diagnose=env.diagnose)
    wait("syncer ready again", lambda: syncer_ready(env), timeout=180, diagnose=env.diagnose)
    copies = wait_one_copy_each(env, ns)
    print(f"\nsyncer back and consistent {time.monotonic() - killed:.1f}s after SIGKILL: {sorted(copies)}")
    expected = {f"before-{i}" for i in (1, 2)} | {f"after-term-{i}" for i in range(2)} | \
        {f"while-down-{i}" for i in range(3)}
    assert {name for _, name in copies} == expected
    wait("before-0 gone from the virtual cluster", lambda: gone(lambda: env.vcore.read_namespaced_pod("before-0", ns)),
         timeout=120, diagnose=env.diagnose)
    env.wait_running(sorted(expected), ns)
    # no duplicates by uid either: every host copy names a distinct virtual uid
    host_pods = env.hcore.list_namespaced_pod(env.hns, label_selector=f"{MANAGED_BY}={env.release}").items
    uids = [p.metadata.annotations["vcluster.loft.sh/object-uid"] for p in host_pods
            if p.metadata.annotations.get("vcluster.loft.sh/object-namespace") == ns]
    assert len(uids) == len(set(uids)) == len(expected)


def cluster_scoped_mentions(kubeconfig: Path, needle: str) -> list[str]:
    """Every listable cluster-scoped host object whose JSON mentions `needle`."""
    kinds = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "api-resources", "--namespaced=false",
                            "--verbs=list", "-o", "name"], capture_output=True, text=True, timeout=60)
    assert kinds.returncode == 0, kinds.stderr
    names = [k for k in kinds.stdout.split() if k != "componentstatuses"]
    out = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", ",".join(names), "-o", "json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [f"{i['kind']}/{i['metadata']['name']}" for i in json.loads(out.stdout)["items"]
            if needle in json.dumps(i)]


def test_deleting_the_host_namespace_removes_everything(twins: tuple[Env, Env], host_kubeconfig: Path) -> None:
    survivor, env = twins
    ns = "doomed"
    create_namespace(survivor.vcore, ns)
    survivor.vcore.create_namespaced_pod(ns, sleeper("app"))
    create_namespace(env.vcore, ns)
    env.vcore.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"),
                                                                  data={"k": "v"}))
    env.vcore.create_namespaced_persistent_volume_claim(ns, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "10Mi"}))))
    env.vcore.create_namespaced_pod(ns, pod(
        "app", SHELL, ["sh", "-c", "echo ok > /data/f && sleep 3600"],
        env=[client.V1EnvVar(name="K", value_from=client.V1EnvVarSource(
            config_map_key_ref=client.V1ConfigMapKeySelector(name="cfg", key="k")))],
        volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")],
        volumes=[client.V1Volume(name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
            claim_name="data"))]))
    env.vcore.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="app"),
        spec=client.V1ServiceSpec(selector={"app": "app"}, ports=[client.V1ServicePort(port=80)])))
    env.wait_running(["app"], ns, timeout=300)
    host_pvc = wait("host PVC Bound", lambda: (lambda c: c if c.status.phase == "Bound" else None)(
        env.hcore.read_namespaced_persistent_volume_claim(env.vc.host_name("PersistentVolumeClaim", "data", ns),
                                                          env.hns)), timeout=180, diagnose=env.diagnose)
    pv_name = host_pvc.spec.volume_name
    before = cluster_scoped_mentions(host_kubeconfig, env.hns)
    assert f"Namespace/{env.hns}" in before and f"PersistentVolume/{pv_name}" in before, before

    env.hcore.delete_namespace(env.hns)
    started = time.monotonic()
    wait(f"host namespace {env.hns} gone", lambda: gone(lambda: env.hcore.read_namespace(env.hns)), timeout=300)
    wait(f"PersistentVolume {pv_name} of the namespace's claim gone",
         lambda: gone(lambda: env.hcore.read_persistent_volume(pv_name)), timeout=180)
    print(f"\nhost namespace {env.hns} and its volume gone in {time.monotonic() - started:.1f}s")
    left = cluster_scoped_mentions(host_kubeconfig, env.hns)
    assert left == [], f"cluster-scoped host objects still mention {env.hns}: {left}"
    rbac = client.RbacAuthorizationV1Api(env.vc.host.api_client)
    for kind, lister in (("ClusterRole", rbac.list_cluster_role),
                         ("ClusterRoleBinding", rbac.list_cluster_role_binding)):
        for selector in (f"app.kubernetes.io/instance={env.release}", f"{MANAGED_BY}={env.release}",
                         f"vcluster.pytest-vcluster.io/host-namespace={env.hns}"):
            assert not lister(label_selector=selector).items, (kind, selector)

    # the other cluster is untouched
    assert client.VersionApi(survivor.vc.api_client).get_code().git_version
    survivor.wait_running(["app"], ns)
    assert survivor.host_pod("app", ns).status.phase == "Running"

