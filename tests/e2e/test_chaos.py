"""Chaos on the real host (`hack/host up`): crashed control-plane containers, a restarted host API server,
synced host objects deleted behind the syncer's back. Every test asserts what is left afterwards, never a time.

* Each container of pod ``R-0`` (etcd, kube-apiserver, kube-controller-manager, syncer, coredns) is killed in
  turn with SIGKILL from the host's containerd (`hack/host kill-container`: a real crash the kubelet restarts)
  while a workload runs: a Deployment of 2 replicas reading a ConfigMap, a Service and an object of a CRD. The
  same ``VCluster`` handle must answer again (its port-forward reconnects by itself), no virtual object may be
  lost or duplicated (names and UIDs compared), every synced host object must still exist exactly once with the
  same UID, the workload's host pods keep running without a restart, and a new pod resolves the Service by DNS.
* Deleting a synced host Service makes the syncer create it again; deleting the host pod of a Deployment's pod
  makes the virtual pod go (as vcluster does) and the ReplicaSet replace it; a bare virtual pod whose host pod is
  deleted is gone from the virtual cluster, not left as a ghost.
* (disruptive, runs last) The host's kube-apiserver process is SIGKILLed while an inner pytest run creates a
  cluster with a workload, and brought back with `hack/host up`: the inner run passes or fails with a message
  naming the cause, and nothing of the run is left on the host.

Clusters: one module-scoped cluster (default values) for the non-disruptive tests, labelled `e2e=chaos`, deleted
at the end. Images are the ones the host built (`hack/host images`): nothing is pulled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pytest_vcluster import Host, VCluster
from pytest_vcluster.core.contract import contract

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import (  # noqa: E402
    Sides,
    crd_established,
    created_vcluster,
    events_text,
    gone,
    namespace_exists,
    suffix,
    wait,
    widget_crd,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
HOST = REPO / "hack" / "host"
SHELL = versions.SHELL_IMAGE
HTTP = versions.HTTP_IMAGE
HELLO = "hello from pytest-vcluster httpd"
LABELS = {"e2e": "chaos"}
CREATE_TIMEOUT = 360.0
NS = "chaos"
GROUP = "chaos.example.com"
#: this user's HOME, read before pytester points HOME at a test folder: `hack/host up` finds its build cache
#: (~/.cache/pytest-vcluster) there, and would rebuild Kubernetes from source in an empty one
REAL_HOME = os.environ.get("HOME", "/root")
CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "syncer", "coredns"]
#: kinds the syncer copies to the host namespace (synced objects carry the managed-by label)
HOST_KINDS = ("pods", "services", "configmaps", "secrets", "endpoints", "persistentvolumeclaims")


class Env(Sides):
    """The chaos cluster seen from both sides."""

    def __init__(self, vc: VCluster, host_api: client.ApiClient) -> None:
        super().__init__(vc, host_api)
        self.vext = client.ApiextensionsV1Api(vc.api_client)
        self.vcustom = client.CustomObjectsApi(vc.api_client)
        self.cp_pod = f"{vc.release}-0"

    # ------------------------------------------------------------------ control-plane pod on the host

    def cp_statuses(self) -> dict[str, client.V1ContainerStatus]:
        p = self.hcore.read_namespaced_pod(self.cp_pod, self.hns)
        return {c.name: c for c in p.status.container_statuses}

    def kill(self, container: str) -> None:
        proc = subprocess.run([str(HOST), "kill-container", self.hns, self.cp_pod, container],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"hack/host kill-container failed: {proc.stderr}"

    # ------------------------------------------------------------------ snapshots

    def virtual_objects(self) -> dict[tuple[str, str], str]:
        """(kind, name) -> uid of every object of the workload in the virtual cluster."""
        out: dict[tuple[str, str], str] = {}

        def add(kind: str, items: list[Any]) -> None:
            for o in items:
                key = (kind, o.metadata.name)
                assert key not in out, f"duplicate virtual {kind} {o.metadata.name}"
                out[key] = o.metadata.uid

        add("Namespace", [self.vcore.read_namespace(NS)])
        add("Deployment", self.vapps.list_namespaced_deployment(NS).items)
        add("ReplicaSet", self.vapps.list_namespaced_replica_set(NS).items)
        add("Pod", self.vcore.list_namespaced_pod(NS).items)
        add("Service", self.vcore.list_namespaced_service(NS).items)
        add("ConfigMap", [c for c in self.vcore.list_namespaced_config_map(NS).items
                          if c.metadata.name != "kube-root-ca.crt"])
        add("CustomResourceDefinition", [self.vext.read_custom_resource_definition(f"widgets.{GROUP}")])
        for w in self.vcustom.list_namespaced_custom_object(GROUP, "v1", NS, "widgets")["items"]:
            key = ("Widget", w["metadata"]["name"])
            assert key not in out, f"duplicate virtual Widget {key[1]}"
            out[key] = w["metadata"]["uid"]
        return out

    def host_objects(self) -> dict[tuple[str, str, str], list[tuple[str, str]]]:
        """(plural, virtual namespace, virtual name) -> [(host name, host uid)] of every synced host object."""
        out: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        selector = f"{contract.LABEL_MANAGED_BY}={self.release}"
        for plural in HOST_KINDS:
            items = getattr(self.hcore, f"list_namespaced_{_singular(plural)}")(self.hns, label_selector=selector).items
            for o in items:
                ann = o.metadata.annotations or {}
                key = (plural, ann.get(contract.ANNOTATION_OBJECT_NAMESPACE, ""),
                       ann.get(contract.ANNOTATION_OBJECT_NAME, o.metadata.name))
                out.setdefault(key, []).append((o.metadata.name, o.metadata.uid))
        return out

    def workload_host_pods(self) -> dict[str, tuple[str, dict[str, int]]]:
        """host pod name -> (uid, container restart counts) of the workload's pods."""
        out = {}
        for p in self.hcore.list_namespaced_pod(self.hns, label_selector=f"{contract.LABEL_NAMESPACE}={NS}").items:
            restarts = {c.name: c.restart_count for c in p.status.container_statuses or []}
            out[p.metadata.name] = (p.metadata.uid, restarts)
        return out

    # ------------------------------------------------------------------ checks

    def deployment_available(self, name: str = "web", replicas: int = 2) -> bool:
        d = self.vapps.read_namespaced_deployment(name, NS)
        s = d.status
        return (s.observed_generation == d.metadata.generation and s.available_replicas == replicas
                and s.ready_replicas == replicas and s.updated_replicas == replicas and (s.replicas or 0) == replicas)

    def run_pod(self, name: str, command: list[str], timeout: float = 240) -> str:
        """Runs a pod to completion in namespace NS; its logs (from the host copy). Must succeed."""
        self.vcore.create_namespaced_pod(NS, client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels={"app": "probe"}),
            spec=client.V1PodSpec(restart_policy="Never", termination_grace_period_seconds=1, containers=[
                client.V1Container(name="main", image=SHELL, image_pull_policy="Never", command=command)])))

        def finished() -> str | None:
            phase = self.vcore.read_namespaced_pod(name, NS).status.phase
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait(f"virtual pod {NS}/{name} finished", finished, timeout=timeout, every=2,
                     diagnose=self.diagnose)
        hname = self.vc.host_name("Pod", name, NS)
        logs = wait(f"logs of host pod {hname}",
                    lambda: self.hcore.read_namespaced_pod_log(hname, self.hns) or "(empty)", timeout=60)
        assert phase == "Succeeded", f"pod {NS}/{name} {phase}; output:\n{logs}"
        self.vcore.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        wait(f"virtual pod {NS}/{name} deleted", lambda: gone(lambda: self.vcore.read_namespaced_pod(name, NS)),
             timeout=120)
        wait(f"host pod {hname} deleted", lambda: gone(lambda: self.hcore.read_namespaced_pod(hname, self.hns)),
             timeout=120)
        return logs

    def diagnose(self) -> str:
        out = [self.vc.diagnostics(), f"host events in {self.hns}:", events_text(self.hcore, self.hns)]
        try:
            for p in self.vcore.list_namespaced_pod(NS).items:
                out.append(f"virtual pod {NS}/{p.metadata.name}: {p.status.phase} {p.status.container_statuses}")
        except Exception as e:  # noqa: BLE001 - diagnostics while the API may be down
            out.append(f"(virtual pods: {e})")
        try:
            out.append("syncer log (tail):\n" + self.hcore.read_namespaced_pod_log(
                self.cp_pod, self.hns, container="syncer", tail_lines=60))
        except Exception as e:  # noqa: BLE001
            out.append(f"(syncer log: {e})")
        return "\n".join(out)


def _singular(plural: str) -> str:
    return {"endpoints": "endpoints", "persistentvolumeclaims": "persistent_volume_claim",
            "configmaps": "config_map"}.get(plural, plural[:-1])


def _workload(env: Env) -> None:
    env.vcore.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    env.vcore.create_namespaced_config_map(NS, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="web-config"), data={"GREETING": "hello"}))
    labels = {"app": "web"}
    env.vapps.create_namespaced_deployment(NS, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
                    name="main", image=HTTP, image_pull_policy="Never",
                    ports=[client.V1ContainerPort(container_port=8080)],
                    env_from=[client.V1EnvFromSource(config_map_ref=client.V1ConfigMapEnvSource(
                        name="web-config"))])])))))
    env.vcore.create_namespaced_service(NS, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(port=8080, target_port=8080)])))
    env.vext.create_custom_resource_definition(widget_crd(GROUP))

    def established() -> bool:
        return crd_established(env.vext, f"widgets.{GROUP}")

    wait("CRD widgets established", established, timeout=120)
    wait("Widget kind served", lambda: env.vcustom.list_namespaced_custom_object(GROUP, "v1", NS, "widgets")
         is not None, timeout=120)
    env.vcustom.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", {
        "apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}})
    wait("Deployment web available with 2 replicas", env.deployment_available, timeout=300, every=2,
         diagnose=env.diagnose)
    wait("host copy of Service web", lambda: not gone(lambda: env.hcore.read_namespaced_service(
        env.vc.host_name("Service", "web", NS), env.hns)), timeout=120)


@pytest.fixture(scope="module")
def env(host: Host, host_api: client.ApiClient) -> Iterator[Env]:
    with created_vcluster(host, f"e2e-chaos-{suffix()}", labels=LABELS, timeout=CREATE_TIMEOUT) as vc:
        e = Env(vc, host_api)
        _workload(e)
        yield e


def _resolves_and_answers(env: Env, name: str) -> str:
    """A new pod resolves the Service by name (retrying while CoreDNS comes back) and gets its answer."""
    return env.run_pod(name, ["sh", "-c", """
for i in $(seq 1 60); do
  out=$(timeout 5 wget -q -O- http://web:8080/) && { echo "GOT: $out"; nslookup web.chaos.svc.cluster.local; exit 0; }
  sleep 1
done
echo "FAIL"; cat /etc/resolv.conf; nslookup web; exit 1
"""])


# ---------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("container", CONTROL_PLANE)
def test_control_plane_container_crash(env: Env, container: str) -> None:
    """SIGKILL one container of R-0 during a workload: everything comes back and nothing is lost or doubled."""
    wait("every container of the control-plane pod ready", lambda: all(c.ready for c in env.cp_statuses().values()),
         timeout=300, every=2, diagnose=env.diagnose)
    virtual_before = env.virtual_objects()
    host_before = env.host_objects()
    pods_before = env.workload_host_pods()
    cp_before = {n: c.restart_count for n, c in env.cp_statuses().items()}
    assert len(pods_before) == 2, pods_before
    for key, copies in host_before.items():
        assert len(copies) == 1, f"before the kill: {key} has {len(copies)} host copies: {copies}"

    env.kill(container)

    def restarted_and_ready() -> bool:
        cs = env.cp_statuses()
        return cs[container].restart_count > cp_before[container] and all(c.ready for c in cs.values())

    wait(f"container {container} restarted and every container of {env.cp_pod} ready", restarted_and_ready,
         timeout=300, every=2, diagnose=env.diagnose)
    # the same handle answers again: its port-forward opens new streams to the restarted API server
    wait("the virtual API to answer through the test's client", lambda: env.vcore.list_namespace().items,
         timeout=120)
    cs = env.cp_statuses()
    restarts = {n: c.restart_count - cp_before[n] for n, c in cs.items()}
    assert restarts[container] == 1, f"{container} restarted {restarts[container]} times: {restarts}"
    others = {n: r for n, r in restarts.items() if n != container and r}
    assert not others, f"killing {container} restarted other containers too: {others}\n" + "\n".join(
        f"{n}: last state {cs[n].last_state}" for n in others)

    # the syncer works again: a new object gets its host copy
    probe = f"probe-{container}"
    env.vcore.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=probe)))
    env.vcore.create_namespaced_service(NS, client.V1Service(
        metadata=client.V1ObjectMeta(name=probe),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=80, target_port=8080)])))
    wait(f"host copy of Service {probe}", lambda: not gone(lambda: env.hcore.read_namespaced_service(
        env.vc.host_name("Service", probe, NS), env.hns)), timeout=120, diagnose=env.diagnose)
    wait("Deployment web available with 2 replicas", env.deployment_available, timeout=180, every=2,
         diagnose=env.diagnose)

    virtual_after = env.virtual_objects()
    added = {k for k in virtual_after if k not in virtual_before}
    assert added == {("ConfigMap", probe), ("Service", probe)}, f"objects appeared: {added}"
    assert {k: v for k, v in virtual_after.items() if k not in added} == virtual_before, (
        "virtual objects lost or replaced:\n"
        f"before {sorted(virtual_before.items())}\nafter {sorted(virtual_after.items())}")

    hprobe = env.vc.host_name("Service", probe, NS)
    # the host's endpoints controller copies the Service's labels (not its annotations) to its Endpoints
    allowed = {("services", NS, probe), ("endpoints", NS, probe), ("endpoints", "", hprobe)}

    def host_settled() -> dict[tuple[str, str, str], list[tuple[str, str]]] | None:
        objs = env.host_objects()
        new = objs.keys() - host_before.keys()
        return objs if ("services", NS, probe) in new and new <= allowed else None

    host_after = wait("host objects: those of before plus the probe Service", host_settled, timeout=120,
                      diagnose=lambda: f"before {sorted(host_before)}\nnow {sorted(env.host_objects())}")
    for key, copies in host_after.items():
        assert len(copies) == 1, f"{key} has {len(copies)} host copies: {copies}"
    assert {k: host_after[k] for k in host_before} == host_before, (
        "synced host objects lost or replaced:\n"
        + "\n".join(f"{k}: {host_before[k]} -> {host_after.get(k)}" for k in host_before
                    if host_after.get(k) != host_before[k]))

    pods_after = env.workload_host_pods()
    assert pods_after == pods_before, f"workload host pods changed (uid, restarts): {pods_before} -> {pods_after}"
    for p in env.vcore.list_namespaced_pod(NS, label_selector="app=web").items:
        assert p.status.phase == "Running", f"virtual pod {p.metadata.name}: {p.status.phase}"

    logs = _resolves_and_answers(env, f"dns-{container}")
    assert f"GOT: {HELLO}" in logs, logs
    svc_ip = env.vcore.read_namespaced_service("web", NS).spec.cluster_ip
    assert svc_ip in logs, logs

    env.vcore.delete_namespaced_service(probe, NS)
    env.vcore.delete_namespaced_config_map(probe, NS)
    wait(f"host copy of Service {probe} deleted", lambda: gone(lambda: env.hcore.read_namespaced_service(
        env.vc.host_name("Service", probe, NS), env.hns)), timeout=120)


def test_deleted_host_service_is_recreated(env: Env) -> None:
    """A synced host Service deleted on the host comes back (the virtual Service is the source of truth)."""
    hname = env.vc.host_name("Service", "web", NS)
    before = env.hcore.read_namespaced_service(hname, env.hns)
    vuid = env.vcore.read_namespaced_service("web", NS).metadata.uid
    env.hcore.delete_namespaced_service(hname, env.hns)

    def recreated() -> client.V1Service | None:
        try:
            s = env.hcore.read_namespaced_service(hname, env.hns)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return s if s.metadata.uid != before.metadata.uid else None

    after = wait(f"host Service {hname} created again by the syncer", recreated, timeout=120,
                 diagnose=env.diagnose)
    ann = after.metadata.annotations or {}
    assert ann.get(contract.ANNOTATION_OBJECT_NAME) == "web" and ann.get(contract.ANNOTATION_OBJECT_NAMESPACE) == NS
    assert after.metadata.labels.get(contract.LABEL_MANAGED_BY) == env.release
    copies = env.host_objects()[("services", NS, "web")]
    assert len(copies) == 1, copies
    # The syncer asks the host for the old ClusterIP. When the host cannot give it back yet (its IP allocator
    # frees addresses asynchronously) the host picks another one, and the virtual Service, whose ClusterIP is
    # immutable, is re-created with it (new UID): exactly one virtual Service web either way, on the host's IP.
    wait("virtual Service web to carry the new host cluster IP",
         lambda: env.vcore.read_namespaced_service("web", NS).spec.cluster_ip == after.spec.cluster_ip,
         timeout=120, diagnose=env.diagnose)
    now = env.vcore.read_namespaced_service("web", NS)
    if now.metadata.uid != vuid:
        assert after.spec.cluster_ip != before.spec.cluster_ip, "virtual Service replaced although the IP was kept"
    assert [s.metadata.name for s in env.vcore.list_namespaced_service(NS).items].count("web") == 1
    logs = _resolves_and_answers(env, f"dns-svc-{suffix()}")
    assert f"GOT: {HELLO}" in logs, logs


def test_deleted_host_pod_of_deployment_is_replaced(env: Env) -> None:
    """Deleting the host pod of a Deployment's pod deletes that virtual pod; the ReplicaSet makes a new one."""
    wait("Deployment web available with 2 replicas", env.deployment_available, timeout=180, every=2,
         diagnose=env.diagnose)
    victim = env.vcore.list_namespaced_pod(NS, label_selector="app=web").items[0]
    hname = env.vc.host_name("Pod", victim.metadata.name, NS)
    hpod = env.hcore.read_namespaced_pod(hname, env.hns)
    env.hcore.delete_namespaced_pod(hname, env.hns, grace_period_seconds=0)

    wait(f"virtual pod {victim.metadata.name} deleted",
         lambda: all(p.metadata.uid != victim.metadata.uid
                     for p in env.vcore.list_namespaced_pod(NS, label_selector="app=web").items),
         timeout=180, diagnose=env.diagnose)

    # The Deployment's status can still count the old pod for a moment: wait for the pods themselves.
    def replaced() -> list[client.V1Pod] | None:
        pods = env.vcore.list_namespaced_pod(NS, label_selector="app=web").items
        fresh = [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
        return pods if len(pods) == len(fresh) == 2 and env.deployment_available() else None

    pods = wait("Deployment web available with 2 Running pods again", replaced, timeout=240, every=2,
                diagnose=env.diagnose)
    host_uids = set()
    for p in pods:
        h = env.hcore.read_namespaced_pod(env.vc.host_name("Pod", p.metadata.name, NS), env.hns)
        assert h.status.phase == "Running"
        host_uids.add(h.metadata.uid)
    assert hpod.metadata.uid not in host_uids
    assert gone(lambda: env.hcore.read_namespaced_pod(hname, env.hns)) or \
        env.hcore.read_namespaced_pod(hname, env.hns).metadata.uid != hpod.metadata.uid


def test_deleted_host_pod_of_bare_pod_removes_virtual_pod(env: Env) -> None:
    """A bare virtual pod whose host pod is deleted is deleted too, not left as a ghost Running pod."""
    name = f"bare-{suffix()}"
    env.vcore.create_namespaced_pod(NS, client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "bare"}),
        spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
            name="main", image=HTTP, image_pull_policy="Never")])))
    wait(f"virtual pod {name} Running", lambda: env.vcore.read_namespaced_pod(name, NS).status.phase == "Running",
         timeout=180, every=2, diagnose=env.diagnose)
    vuid = env.vcore.read_namespaced_pod(name, NS).metadata.uid
    hname = env.vc.host_name("Pod", name, NS)
    env.hcore.delete_namespaced_pod(hname, env.hns, grace_period_seconds=0)
    wait(f"virtual pod {name} deleted after its host pod", lambda: gone(
        lambda: env.vcore.read_namespaced_pod(name, NS)), timeout=180, diagnose=env.diagnose)
    # and it stays gone: the syncer does not bring back a host pod for a pod that no longer exists
    wait(f"host pod {hname} gone", lambda: gone(lambda: env.hcore.read_namespaced_pod(hname, env.hns)), timeout=60)
    assert all(p.metadata.uid != vuid for p in env.vcore.list_namespaced_pod(NS).items)


# ---------------------------------------------------------------------------------------------- host API restart

INNER_CONFTEST = '''
import pathlib

def pytest_sessionstart(session):
    from pytest_vcluster.plugin.state import RUN_ID_KEY
    (pathlib.Path(__file__).parent / "run-id").write_text(session.config.stash[RUN_ID_KEY])
'''

INNER_TEST = '''
import pathlib
import time

from kubernetes import client

HERE = pathlib.Path(__file__).parent
HTTP = {http!r}


def available(apps, replicas):
    d = apps.read_namespaced_deployment("web", "app")
    s = d.status
    return s.observed_generation == d.metadata.generation and s.available_replicas == replicas \\
        and s.updated_replicas == replicas and (s.replicas or 0) == replicas


def test_workload_through_a_host_api_restart(vcluster):
    core = client.CoreV1Api(vcluster.api_client)
    apps = client.AppsV1Api(vcluster.api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="app")))
    labels = {{"app": "web"}}
    apps.create_namespaced_deployment("app", client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(replicas=1, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
                    name="main", image=HTTP, image_pull_policy="Never")])))))
    core.create_namespaced_service("app", client.V1Service(metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(port=80, target_port=8080)])))
    vcluster.wait("Deployment web available", lambda: available(apps, 1), timeout=300)
    (HERE / "host-namespace").write_text(vcluster.host_namespace)
    apps.patch_namespaced_deployment_scale("web", "app", {{"spec": {{"replicas": 2}}}})
    (HERE / "ready").write_text("")
    # the outer test kills the host's kube-apiserver now: the new replica's host pod waits for it
    vcluster.wait("Deployment web available with 2 replicas", lambda: available(apps, 2), timeout=400)
    deadline = time.monotonic() + 600
    while not (HERE / "restarted").exists():
        assert time.monotonic() < deadline, "the outer test did not restart the host API server"
        time.sleep(0.5)
    # after the restart: the same handle reads and writes, and the syncer copies new objects to the host
    vcluster.wait("the virtual API to answer", lambda: core.list_namespace().items, timeout=300)
    core.create_namespaced_config_map("app", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after")))
    core.create_namespaced_pod("app", client.V1Pod(metadata=client.V1ObjectMeta(name="after"),
        spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
            name="main", image=HTTP, image_pull_policy="Never")])))
    vcluster.wait("pod after Running", lambda: core.read_namespaced_pod("after", "app").status.phase == "Running",
                  timeout=300)
    host = client.CoreV1Api(vcluster.host.api_client)
    assert host.read_namespaced_pod(vcluster.host_name("Pod", "after", "app"), vcluster.host_namespace)
    pods = core.list_namespaced_pod("app", label_selector="app=web").items
    assert len(pods) == 2, [p.metadata.name for p in pods]
'''


def host_apiserver_pids() -> list[int]:
    """PIDs of the host's kube-apiserver: a kube-apiserver process in this machine's PID namespace (the
    virtual clusters' API servers run in containers, in PID namespaces of their own)."""
    own = os.readlink("/proc/self/ns/pid")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0]
            ns = os.readlink(entry / "ns" / "pid")
        except OSError:
            continue
        if Path(argv0.decode(errors="replace")).name == "kube-apiserver" and ns == own:
            pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.disruptive
def test_host_api_server_restart_during_a_run(pytester: pytest.Pytester, run: Any, host_core: client.CoreV1Api) -> None:
    """SIGKILL the host's kube-apiserver while an inner run works in its cluster; `hack/host up` restarts it.

    The inner run passes, or fails with a message naming what it waited for and what it saw; nothing of the run
    is left on the host."""
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TEST.format(http=HTTP))
    ready, restarted = pytester.path / "ready", pytester.path / "restarted"
    events: dict[str, Any] = {}
    host_env = dict(os.environ, HOME=REAL_HOME)

    def chaos() -> None:
        deadline = time.monotonic() + 1200
        while not ready.exists():
            if time.monotonic() > deadline or events.get("inner done"):
                return
            time.sleep(0.2)
        pids = host_apiserver_pids()
        events["pids"] = pids
        if len(pids) != 1:
            return
        os.kill(pids[0], signal.SIGKILL)
        events["killed"] = pids[0]
        while _alive(pids[0]):
            time.sleep(0.1)
        up = subprocess.run([str(HOST), "up"], capture_output=True, text=True, timeout=600, env=host_env)
        events["up"] = (up.returncode, up.stderr[-3000:])
        events["new pids"] = host_apiserver_pids()
        restarted.write_text("")

    kube_system = host_core.read_namespace("kube-system").metadata.uid
    thread = threading.Thread(target=chaos, name="chaos", daemon=True)
    thread.start()
    try:
        result = run("-v", "-rA")
    finally:
        events["inner done"] = True
        thread.join(timeout=700)
        if "killed" in events and "up" not in events:  # never leave the host down
            subprocess.run([str(HOST), "up"], capture_output=True, timeout=600, env=host_env)
    out = result.stdout.str()
    assert events.get("pids") and len(events["pids"]) == 1, f"host kube-apiserver processes: {events}\n{out}"
    assert "killed" in events, f"the inner run never got its workload ready:\n{out}"
    assert events["up"][0] == 0, f"hack/host up failed after the kill:\n{events['up'][1]}"
    assert events["new pids"] and events["new pids"] != events["pids"], events
    # the API server was restarted alone: the host kept its etcd (not rebuilt from scratch)
    assert host_core.read_namespace("kube-system").metadata.uid == kube_system, "hack/host up rebuilt the host"
    print(out)
    if result.ret != 0:
        # a failure must say what was awaited and what was seen, not end in a bare timeout traceback
        failed = [line for line in result.outlines if line.startswith(("FAILED", "ERROR"))]
        assert failed, out
        for line in failed:
            assert "waiting for" in line and "last seen" in line, f"unclear failure: {line}\n{out}"
    result.stdout.no_fnmatch_line("*leaked*")

    run_id = (pytester.path / "run-id").read_text().strip()
    from pytest_vcluster.core import labels as _labels
    from pytest_vcluster.core.cleanup import CLUSTER_SCOPED_LABEL

    wait(f"no host namespace of run {run_id}", lambda: not host_core.list_namespace(
        label_selector=f"{_labels.LABEL_RUN}={run_id}").items, timeout=300)
    recorded = pytester.path / "host-namespace"
    if recorded.exists():
        assert not namespace_exists(host_core, recorded.read_text())
    rbac = client.RbacAuthorizationV1Api(host_core.api_client)
    left = [f"{o.kind or type(o).__name__} {o.metadata.name}"
            for lister in (rbac.list_cluster_role, rbac.list_cluster_role_binding)
            for o in lister(label_selector=CLUSTER_SCOPED_LABEL).items
            if f"-{run_id}-" in (o.metadata.labels or {}).get(CLUSTER_SCOPED_LABEL, "")]
    assert not left, f"cluster-scoped objects of run {run_id} left on the host: {left}"
