"""The host cluster from `hack/host` does what the product relies on.

Workloads use the images the host built (`hack/host images`): nothing is pulled.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import portforward, stream

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import wait  # noqa: E402

HOST = Path(__file__).resolve().parents[2] / "hack" / "host"

pytestmark = pytest.mark.e2e

SHELL = versions.SHELL_IMAGE
HTTP = versions.HTTP_IMAGE


def pod(name: str, image: str, command: list[str] | None = None, **spec: Any) -> client.V1Pod:
    container = client.V1Container(name="main", image=image, command=command, image_pull_policy="Never")
    for key in ("security_context", "volume_mounts", "ports"):
        if key in spec:
            setattr(container, key, spec.pop(key))
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(containers=[container], restart_policy=spec.pop("restart_policy", "Always"),
                              termination_grace_period_seconds=1, **spec),
    )


def phase(core: client.CoreV1Api, ns: str, name: str) -> str:
    return core.read_namespaced_pod(name, ns).status.phase


def running(core: client.CoreV1Api, ns: str, name: str) -> bool:
    p = core.read_namespaced_pod(name, ns)
    return p.status.phase == "Running" and all(c.ready for c in p.status.container_statuses or [False])


def describe(core: client.CoreV1Api, ns: str) -> str:
    events = core.list_namespaced_event(ns).items
    return "\n".join(f"{e.involved_object.name}: {e.reason}: {e.message}" for e in events)


def test_pod_runs_with_local_image_logs_exec_and_port_forward(host_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(host_api)
    core.create_namespaced_pod(namespace, pod(
        "web", HTTP, command=["sh", "-c", "echo started-web; exec httpd -f -v -p 8080 -h /www"],
        ports=[client.V1ContainerPort(container_port=8080)]))
    wait("pod web Running", lambda: running(core, namespace, "web"))

    logs = wait("log line", lambda: core.read_namespaced_pod_log("web", namespace))
    assert "started-web" in logs

    out = stream(core.connect_get_namespaced_pod_exec, "web", namespace, command=["sh", "-c", "echo exec-$((6*7))"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out.strip() == "exec-42"

    pf = portforward(core.connect_get_namespaced_pod_portforward, "web", namespace, ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    pf.close()
    assert data.startswith(b"HTTP/1.") and b"hello from pytest-vcluster httpd" in data


def test_cluster_ip_service_reachable_by_ip_and_dns(host_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(host_api)
    core.create_namespaced_pod(namespace, pod("web", HTTP, ports=[client.V1ContainerPort(container_port=8080)]))
    svc = core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"},
                                  ports=[client.V1ServicePort(port=80, target_port=8080)])))
    ip = svc.spec.cluster_ip
    assert ip and ip.startswith("10.")
    wait("pod web Running", lambda: running(core, namespace, "web"))
    # (busybox 1.35's `wget -T` crashes; `timeout` bounds each request instead)
    script = (
        f"timeout 10 wget -q -O- http://{ip}/ && "
        f"timeout 10 wget -q -O- http://web/ && "
        f"timeout 10 wget -q -O- http://web.{namespace}.svc.cluster.local/"
    )
    core.create_namespaced_pod(namespace, pod("client", SHELL, command=["sh", "-c", script], restart_policy="Never"))
    final = wait("client pod finished", lambda: phase(core, namespace, "client") in ("Succeeded", "Failed")
                 and phase(core, namespace, "client"))
    logs = core.read_namespaced_pod_log("client", namespace)
    assert final == "Succeeded", f"client pod {final}: {logs}\n{describe(core, namespace)}"
    assert logs.count("hello from pytest-vcluster httpd") == 3


def test_network_policy_is_enforced(host_api: client.ApiClient, namespace: str) -> None:
    """A deny-all ingress policy blocks pod-to-pod traffic (kube-router's firewall enforces it)."""
    core = client.CoreV1Api(host_api)
    core.create_namespaced_pod(namespace, pod("web", HTTP, ports=[client.V1ContainerPort(container_port=8080)]))
    ip = wait("pod web Running with an IP", lambda: running(core, namespace, "web")
              and core.read_namespaced_pod("web", namespace).status.pod_ip)
    probe = (f"while true; do if timeout 3 wget -q -O- http://{ip}:8080/ >/dev/null; "
             "then echo open; else echo closed; fi; sleep 1; done")
    core.create_namespaced_pod(namespace, pod("client", SHELL, command=["sh", "-c", probe]))
    wait("client pod Running", lambda: running(core, namespace, "client"))

    def last_probe() -> str:
        lines = core.read_namespaced_pod_log("client", namespace, tail_lines=1).split()
        return lines[-1] if lines else ""

    wait("traffic open before any policy", lambda: last_probe() == "open")
    client.NetworkingV1Api(host_api).create_namespaced_network_policy(namespace, client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="deny-all"),
        spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector(), policy_types=["Ingress"])))
    wait("traffic blocked by the deny-all policy", lambda: last_probe() == "closed", timeout=60)
    client.NetworkingV1Api(host_api).delete_namespaced_network_policy("deny-all", namespace)
    wait("traffic open again without the policy", lambda: last_probe() == "open", timeout=60)


def test_privileged_pod_runs(host_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(host_api)
    # Mounting needs CAP_SYS_ADMIN, which only a privileged container has.
    core.create_namespaced_pod(namespace, pod(
        "priv", SHELL,
        command=["sh", "-c", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo privileged-ok && sleep 3600"],
        security_context=client.V1SecurityContext(privileged=True)))
    wait("privileged pod Running", lambda: running(core, namespace, "priv"),
         diagnose=lambda: describe(core, namespace))
    assert "privileged-ok" in wait("log", lambda: core.read_namespaced_pod_log("priv", namespace))


def test_pvc_of_default_storage_class_binds_and_is_writable(host_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(host_api)
    classes = client.StorageV1Api(host_api).list_storage_class().items
    default = [c.metadata.name for c in classes
               if (c.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
    assert default == ["local-path"]
    core.create_namespaced_persistent_volume_claim(namespace, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "10Mi"}))))
    core.create_namespaced_pod(namespace, pod(
        "writer", SHELL, command=["sh", "-c", "echo persisted > /data/file && cat /data/file"],
        restart_policy="Never",
        volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")],
        volumes=[client.V1Volume(name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
            claim_name="data"))]))
    wait("writer pod Succeeded", lambda: phase(core, namespace, "writer") == "Succeeded", timeout=180,
         diagnose=lambda: describe(core, namespace))
    assert core.read_namespaced_pod_log("writer", namespace).strip() == "persisted"
    pvc = core.read_namespaced_persistent_volume_claim("data", namespace)
    assert pvc.status.phase == "Bound" and pvc.spec.storage_class_name == "local-path"


def test_namespace_deletion_and_owner_garbage_collection(host_api: client.ApiClient) -> None:
    core = client.CoreV1Api(host_api)
    ns = f"e2e-gc-{int(time.time() * 1000) % 10**8}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    owner = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner")))
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    core.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref]), string_data={"k": "v"}))
    core.create_namespaced_pod(ns, pod("sleeper", SHELL, command=["sleep", "3600"]))

    core.delete_namespaced_config_map("owner", ns)

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_secret("dependent", ns)
        except client.ApiException as e:
            return e.status == 404
        return False

    wait("garbage collection of the owned Secret", dependent_gone, timeout=60)

    core.delete_namespace(ns)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(ns)
        except client.ApiException as e:
            return e.status == 404
        return False

    wait(f"namespace {ns} removed with its pod", namespace_gone, timeout=120)


@pytest.mark.disruptive
def test_down_leaves_nothing_and_up_restores() -> None:
    """`hack/host down` removes every process, mount, netns, device and iptables chain; `up` comes back."""
    snapshot_before = _machine_snapshot()
    down = subprocess.run([str(HOST), "down"], capture_output=True, text=True, timeout=600)
    assert down.returncode == 0, down.stderr
    after = _machine_snapshot()
    for kind in ("processes", "mounts", "netns", "links"):
        assert not after[kind], f"{kind} left after down: {after[kind]}"
    assert not any(p in after["iptables"] for p in ("KUBE-", "CNI-")), after["iptables"]
    assert snapshot_before["processes"], "the host was not running before down"

    start = time.monotonic()
    up = subprocess.run([str(HOST), "up"], capture_output=True, text=True, timeout=900)
    assert up.returncode == 0, up.stderr[-3000:]
    print(f"warm hack/host up: {time.monotonic() - start:.1f}s")
    status = subprocess.run([str(HOST), "status"], capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr


def _machine_snapshot() -> dict[str, Any]:
    """What of the host is on the machine, read from the machine itself (not from hack/host's records)."""
    names = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "etcd",
             "local-path-provisioner", "containerd-shim-runc-v2", "pytest-vcluster-host")
    procs = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(n in cmd for n in names):
                procs.append(f"{d.name}: {cmd[:120]}")
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if "pytest-vcluster-host" in line.split()[4] or "/kubelet/" in line.split()[4]]
    netns = [p.name for p in Path("/var/run/netns").iterdir()] if Path("/var/run/netns").exists() else []
    links = [p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(("pvc-host", "veth"))]
    iptables = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    iptables += subprocess.run(["ip6tables-save"], capture_output=True, text=True).stdout
    return {"processes": procs, "mounts": mounts, "netns": [n for n in netns if n.startswith("cni-")],
            "links": links, "iptables": iptables}
