"""Workloads in a virtual cluster behave as in a real cluster, on the real host (`hack/host up`).

Storage (a claim binds through the host's provisioner, pods write and read it back, host StorageClasses
mirrored), nodes (a node per host node that runs the cluster's pods, so a fresh cluster shows the node of its
CoreDNS, pod R-0's; all host nodes with their labels and capacity, and a DaemonSet with one ready pod per host
node), NetworkPolicies (a deny-all policy blocks and
then, deleted, lets traffic through again, through its translated host copy), a selector-less Service routed by
a user's EndpointSlice (copied to the host), events (what the host did to a
synced pod, told about the virtual pod) and teardown with every option on (nothing of the release is left in
the host, namespaced or cluster-scoped).

Clusters: `plain` (default values) and `full` (every host-facing option on), module-scoped, made with
`VCluster.create(host, set=...)`; one test uses the plugin's `vcluster` fixture with
`@pytest.mark.vcluster(set=...)`; the teardown tests make and delete their own (one with `VCluster.delete`, one
through the plugin in an inner pytest session). Every host namespace made with `VCluster.create` here is
labelled `e2e=workloads`; all are deleted at the end, also when a test fails. Images are the ones the host
built (`hack/host images`): nothing is pulled. `kubectl` must be on PATH (`export PATH="$(hack/host
tools):$PATH"`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pytest_vcluster import Host, VCluster
from pytest_vcluster.core.cleanup import CLUSTER_SCOPED_LABEL
from pytest_vcluster.core.contract import contract

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import Sides, create_vcluster, created_vcluster, gone, suffix, wait  # noqa: E402

pytestmark = pytest.mark.e2e

SHELL = versions.SHELL_IMAGE
HTTP = versions.HTTP_IMAGE
HELLO = "hello from pytest-vcluster httpd"
LABELS = {"e2e": "workloads"}
CREATE_TIMEOUT = 360.0
MANAGED_BY = "vcluster.loft.sh/managed-by"
NAMESPACE_LABEL = "vcluster.loft.sh/namespace"
FAKE_NODE_LABEL = "vcluster.loft.sh/fake-node"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
HOST_CLASS = "local-path"
#: every option that reaches beyond the host namespace or adds host objects
ALL_ON = {
    "sync.fromHost.nodes.mode": "all",
    "sync.fromHost.storageClasses.enabled": True,
    "sync.toHost.networkPolicies.enabled": True,
}


# ---------------------------------------------------------------------------------------------- helpers


def container(image: str, command: list[str] | None = None, **kw: Any) -> client.V1Container:
    return client.V1Container(name="main", image=image, image_pull_policy="Never", command=command, **kw)


def pod(name: str, *containers: client.V1Container, restart_policy: str = "Always",
        labels: dict[str, str] | None = None, **spec: Any) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {"app": name}),
        spec=client.V1PodSpec(containers=list(containers), restart_policy=restart_policy,
                              termination_grace_period_seconds=1, **spec))


def http_server(name: str = "web") -> client.V1Pod:
    """An httpd pod serving on 8080, ready once the port is open."""
    return pod(name, container(
        HTTP, ports=[client.V1ContainerPort(container_port=8080)],
        readiness_probe=client.V1Probe(tcp_socket=client.V1TCPSocketAction(port=8080), period_seconds=2)))


class Env(Sides):
    """A virtual cluster seen from both sides, with namespaces and diagnostics for workload tests."""

    def running(self, ns: str, name: str) -> bool:
        p = self.vcore.read_namespaced_pod(name, ns)
        return (p.status.phase == "Running" and bool(p.spec.node_name) and bool(p.status.container_statuses)
                and all(c.ready for c in p.status.container_statuses))

    def wait_running(self, ns: str, name: str, timeout: float = 240) -> client.V1Pod:
        wait(f"virtual pod {ns}/{name} Running, ready and bound", lambda: self.running(ns, name), timeout=timeout,
             every=2, diagnose=self.diagnose(ns))
        return self.vcore.read_namespaced_pod(name, ns)

    def host_nodes(self) -> list[client.V1Node]:
        return client.CoreV1Api(self.vc.host.api_client).list_node().items


def create(host: Host, name: str, set_values: dict[str, Any] | None = None) -> VCluster:
    return create_vcluster(host, name, labels=LABELS, timeout=CREATE_TIMEOUT, set=set_values)


@pytest.fixture(scope="module")
def plain(host: Host) -> Iterator[Env]:
    """A virtual cluster with the chart's defaults."""
    with created_vcluster(host, f"e2e-wl-plain-{suffix()}", labels=LABELS, timeout=CREATE_TIMEOUT) as vc:
        yield Env(vc, host.api_client)


@pytest.fixture(scope="module")
def full(host: Host) -> Iterator[Env]:
    """A virtual cluster with nodes mode all, StorageClasses and NetworkPolicies synced."""
    with created_vcluster(host, f"e2e-wl-full-{suffix()}", labels=LABELS, timeout=CREATE_TIMEOUT, set=ALL_ON) as vc:
        yield Env(vc, host.api_client)


# ---------------------------------------------------------------------------------------------- 1. storage


def claim(name: str, storage_class: str | None) -> client.V1PersistentVolumeClaim:
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], storage_class_name=storage_class,
            resources=client.V1VolumeResourceRequirements(requests={"storage": "64Mi"})))


def volume_pod(name: str, claim_name: str, script: str) -> client.V1Pod:
    return pod(name, container(SHELL, ["sh", "-c", script],
                               volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")]),
               restart_policy="Never",
               volumes=[client.V1Volume(name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                   claim_name=claim_name))])


def write_and_read_back(env: Env, storage_class: str | None) -> tuple[str, client.V1PersistentVolume]:
    """A claim, a pod writing to it and reading back, a second pod reading it; returns (namespace, host PV)."""
    ns = env.namespace("store")
    env.vcore.create_namespaced_persistent_volume_claim(ns, claim("data", storage_class))
    token = f"written-{suffix()}"
    out = env.run_to_completion(ns, volume_pod(
        "writer", "data", f"echo {token} > /data/file && sync && echo READ $(cat /data/file) && df -P /data | tail -1"))
    assert f"READ {token}" in out, out
    # a second pod sees what the first wrote: the data lives in the volume, not in the container
    again = env.run_to_completion(ns, volume_pod("reader", "data", "echo AGAIN $(cat /data/file)"))
    assert f"AGAIN {token}" in again, again

    vpvc = wait("virtual claim data Bound", lambda: (lambda c: c if c.status.phase == "Bound" else None)(
        env.vcore.read_namespaced_persistent_volume_claim("data", ns)), timeout=60)
    assert vpvc.status.capacity and vpvc.status.capacity.get("storage"), vpvc.status
    hname = env.vc.host_name("PersistentVolumeClaim", "data", ns)
    hpvc = env.hcore.read_namespaced_persistent_volume_claim(hname, env.hns)
    assert hpvc.status.phase == "Bound", hpvc.status
    assert hpvc.spec.storage_class_name == HOST_CLASS, hpvc.spec
    assert hpvc.metadata.labels[MANAGED_BY] == env.release
    pv = env.hcore.read_persistent_volume(hpvc.spec.volume_name)
    assert pv.spec.claim_ref.name == hname and pv.spec.claim_ref.namespace == env.hns, pv.spec.claim_ref
    assert pv.spec.storage_class_name == HOST_CLASS
    assert vpvc.status.capacity == hpvc.status.capacity
    return ns, pv


def test_pvc_with_the_default_class_binds_on_the_host_and_keeps_data(plain: Env) -> None:
    """No StorageClass in the virtual cluster: the claim (no class) gets the host's default class, binds
    through the host's provisioner when a pod uses it, and pods write to it and read it back."""
    assert plain.vstorage.list_storage_class().items == []
    _, pv = write_and_read_back(plain, None)
    print(f"host volume {pv.metadata.name} ({pv.spec.capacity}) bound to the claim's host copy")


def test_host_storage_classes_visible_and_named_class_binds(full: Env) -> None:
    """sync.fromHost.storageClasses.enabled: the host's classes appear (same provisioner, default annotation),
    and a claim naming `local-path` binds and holds data."""
    host_classes = {sc.metadata.name: sc for sc in full.hstorage.list_storage_class().items}
    assert HOST_CLASS in host_classes

    def mirrored() -> dict[str, client.V1StorageClass]:
        vsc = {sc.metadata.name: sc for sc in full.vstorage.list_storage_class().items}
        return vsc if set(vsc) == set(host_classes) else {}

    virtual = wait("the host's StorageClasses in the virtual cluster", mirrored, timeout=60)
    for name, hsc in host_classes.items():
        vsc = virtual[name]
        assert (vsc.provisioner, vsc.reclaim_policy, vsc.volume_binding_mode, vsc.parameters) == (
            hsc.provisioner, hsc.reclaim_policy, hsc.volume_binding_mode, hsc.parameters), (vsc, hsc)
    local = virtual[HOST_CLASS]
    assert (local.metadata.annotations or {}).get(DEFAULT_CLASS) == "true", local.metadata.annotations
    assert local.provisioner == "rancher.io/local-path" and local.volume_binding_mode == "WaitForFirstConsumer"
    out = subprocess.run(["kubectl", "--kubeconfig", str(full.vc.kubeconfig_path), "get", "storageclass"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and f"{HOST_CLASS} (default)" in out.stdout, out.stdout + out.stderr

    ns, _ = write_and_read_back(full, HOST_CLASS)
    # the virtual API server's DefaultStorageClass admission sees the mirrored default: a claim without a
    # class gets `local-path` in the virtual cluster already
    full.vcore.create_namespaced_persistent_volume_claim(ns, claim("defaulted", None))
    assert full.vcore.read_namespaced_persistent_volume_claim("defaulted", ns).spec.storage_class_name == HOST_CLASS


# ---------------------------------------------------------------------------------------------- 2. nodes


def control_plane_pod(env: Env) -> client.V1Pod:
    """Pod R-0 on the host: etcd, the API server, the syncer and CoreDNS."""
    return env.hcore.read_namespaced_pod(contract.control_plane_pod(env.release), env.hns)


@pytest.mark.vcluster(timeout=CREATE_TIMEOUT)
def test_a_fresh_cluster_shows_the_node_of_its_coredns(vcluster: VCluster) -> None:
    """Before any pod of a test runs, a fresh cluster (chart defaults) lists one Node, Ready and schedulable:
    the host node of pod R-0, which runs its CoreDNS (vcluster shows the node of its CoreDNS pod). Read at
    once: the cluster's readiness, which the plugin waited for, includes it. Its InternalIP is R-0's hostIP."""
    env = Env(vcluster, vcluster.host.api_client)
    vnodes = env.vcore.list_node().items
    assert env.vcore.list_pod_for_all_namespaces().items == []  # no pod in the virtual cluster at all
    r0 = control_plane_pod(env)
    assert [n.metadata.name for n in vnodes] == [r0.spec.node_name]
    node = vnodes[0]
    assert (node.metadata.labels or {}).get(FAKE_NODE_LABEL) == "true", node.metadata.labels
    assert [(c.type, c.status) for c in node.status.conditions or []] == [("Ready", "True")]
    assert not node.spec.taints and not node.spec.unschedulable, node.spec
    assert [a.address for a in node.status.addresses if a.type == "InternalIP"] == [r0.status.host_ip]
    # a pod placed there by the host is bound to it, and the node stays after the last pod is gone
    ns = env.namespace("first")
    env.vcore.create_namespaced_pod(ns, pod("only", container(SHELL, ["sleep", "3600"])))
    assert env.wait_running(ns, "only").spec.node_name == r0.spec.node_name  # one host node here
    env.vcore.delete_namespaced_pod("only", ns)
    host_copy = env.vc.host_name("Pod", "only", ns)
    wait("the pod gone, on both sides", lambda: gone(lambda: env.vcore.read_namespaced_pod("only", ns))
         and gone(lambda: env.hcore.read_namespaced_pod(host_copy, env.hns)), timeout=120)
    time.sleep(2.0)  # the syncer reconciles the node on the host pod's deletion (an unused node went in ms)
    assert [n.metadata.name for n in env.vcore.list_node().items] == [r0.spec.node_name]


def test_synced_nodes_one_per_host_node_running_pods(plain: Env) -> None:
    """sync.fromHost.nodes.mode=synced (default): one (fake) virtual node per host node that runs the cluster's
    pods (its synced pods, and pod R-0 with CoreDNS), named like it; the pod is bound to it."""
    ns = plain.namespace("nodes")
    plain.vcore.create_namespaced_pod(ns, pod("sleeper", container(SHELL, ["sleep", "3600"])))
    vpod = plain.wait_running(ns, "sleeper")
    hpod = plain.hcore.read_namespaced_pod(plain.vc.host_name("Pod", "sleeper", ns), plain.hns)
    assert vpod.spec.node_name == hpod.spec.node_name

    def used_host_nodes() -> set[str]:
        pods = plain.hcore.list_namespaced_pod(plain.hns, label_selector=f"{MANAGED_BY}={plain.release}").items
        return {p.spec.node_name for p in pods if p.spec.node_name} | {control_plane_pod(plain).spec.node_name}

    expected = used_host_nodes()
    assert expected == {hpod.spec.node_name}  # one host node here
    vnodes = wait("one virtual node per host node running the cluster's pods",
                  lambda: (lambda ns_: ns_ if {n.metadata.name for n in ns_} == expected else None)(
                      plain.vcore.list_node().items), timeout=60)
    assert len(vnodes) == len(expected) == 1
    node = vnodes[0]
    labels = node.metadata.labels or {}
    assert labels.get(FAKE_NODE_LABEL) == "true", labels
    assert labels.get("kubernetes.io/hostname") == node.metadata.name
    ready = {c.type: c.status for c in node.status.conditions or []}
    assert ready.get("Ready") == "True", node.status.conditions
    out = subprocess.run(["kubectl", "--kubeconfig", str(plain.vc.kubeconfig_path), "get", "nodes", "-o", "name"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == [f"node/{node.metadata.name}"], out.stdout + out.stderr


@pytest.mark.vcluster(set={"coredns.enabled": False}, timeout=CREATE_TIMEOUT)
def test_synced_node_appears_with_the_first_pod_and_goes_with_the_last(vcluster: VCluster) -> None:
    """Without CoreDNS no pod runs at first: no node. A pod brings its host node in; deleting the last pod
    removes it again (plugin fixture, values from the marker)."""
    env = Env(vcluster, vcluster.host.api_client)
    assert env.vcore.list_node().items == []
    ns = env.namespace("first")
    env.vcore.create_namespaced_pod(ns, pod("only", container(SHELL, ["sleep", "3600"])))
    vpod = env.wait_running(ns, "only")
    nodes = [n.metadata.name for n in env.vcore.list_node().items]
    assert nodes == [vpod.spec.node_name], nodes
    assert vpod.spec.node_name in {n.metadata.name for n in env.host_nodes()}
    env.vcore.delete_namespaced_pod("only", ns)
    wait("the pod gone", lambda: gone(lambda: env.vcore.read_namespaced_pod("only", ns)), timeout=120)
    wait("the node gone with the last pod on it", lambda: env.vcore.list_node().items == [], timeout=120,
         diagnose=lambda: str([n.metadata.name for n in env.vcore.list_node().items]))


def test_all_host_nodes_mirrored_and_daemonset_runs_one_pod_per_node(full: Env) -> None:
    """sync.fromHost.nodes.mode=all: every host node with its real labels and capacity; a DaemonSet gets
    exactly one Running, ready pod per host node."""
    host_nodes = {n.metadata.name: n for n in full.host_nodes()}

    def mirrored() -> dict[str, client.V1Node]:
        vnodes = {n.metadata.name: n for n in full.vcore.list_node().items}
        return vnodes if set(vnodes) == set(host_nodes) else {}

    vnodes = wait("every host node in the virtual cluster", mirrored, timeout=60, diagnose=full.diagnose())
    for name, hnode in host_nodes.items():
        vnode = vnodes[name]
        vlabels, hlabels = vnode.metadata.labels or {}, hnode.metadata.labels or {}
        assert vlabels == hlabels, (vlabels, hlabels)
        assert vlabels["kubernetes.io/hostname"] == hlabels["kubernetes.io/hostname"]
        assert FAKE_NODE_LABEL not in vlabels
        assert vnode.status.capacity == hnode.status.capacity, (vnode.status.capacity, hnode.status.capacity)
        assert vnode.status.allocatable == hnode.status.allocatable
        assert vnode.status.node_info.kubelet_version == hnode.status.node_info.kubelet_version
        assert (vnode.spec.taints or []) == (hnode.spec.taints or [])

    ns = full.namespace("ds")
    full.vapps.create_namespaced_daemon_set(ns, client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name="agent"),
        spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels={"app": "agent"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "agent"}),
                spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[container(
                    SHELL, ["sh", "-c", "touch /tmp/ready; exec sleep 3600"],
                    readiness_probe=client.V1Probe(_exec=client.V1ExecAction(command=["cat", "/tmp/ready"]),
                                                   period_seconds=2))])))))
    n = len(host_nodes)

    def ds_ready() -> client.V1DaemonSetStatus | None:
        st = full.vapps.read_namespaced_daemon_set("agent", ns).status
        ok = st.desired_number_scheduled == st.number_ready == st.current_number_scheduled == n
        return st if ok and st.number_available == n and not st.number_misscheduled else None

    status = wait(f"DaemonSet {ns}/agent with {n} ready pod(s)", ds_ready, timeout=300, every=2,
                  diagnose=full.diagnose(ns))
    print(f"DaemonSet status: {status.to_dict()}")
    pods = full.vcore.list_namespaced_pod(ns, label_selector="app=agent").items
    assert len(pods) == n, [p.metadata.name for p in pods]
    assert sorted(p.spec.node_name for p in pods) == sorted(host_nodes)
    for p in pods:
        assert p.status.phase == "Running" and all(c.ready for c in p.status.container_statuses), p.status
        hp = full.hcore.read_namespaced_pod(full.vc.host_name(p), full.hns)
        assert hp.spec.node_name == p.spec.node_name and hp.status.phase == "Running"


# ---------------------------------------------------------------------------------------------- 3. networking


def test_network_policies_block_allow_and_open_again(full: Env) -> None:
    """sync.toHost.networkPolicies.enabled: a deny-all ingress policy in the virtual namespace stops a client
    polling an httpd server; a policy allowing the client's label lets it through, deleting that blocks it again,
    and deleting deny-all opens the way. The host copies (selectors rewritten to the host copies of this
    namespace) exist exactly while the virtual policies do."""
    env = full
    ns = env.namespace("netpol")
    env.vcore.create_namespaced_pod(ns, http_server())
    env.vcore.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=8080, target_port=8080)])))
    env.wait_running(ns, "web")
    poll = ("i=0; while true; do i=$((i+1)); "
            "if out=$(timeout 5 wget -q -O- http://web:8080/ 2>&1) && [ \"$out\" = \"" + HELLO + "\" ]; "
            "then echo \"$i open\"; else echo \"$i closed\"; fi; sleep 1; done")
    env.vcore.create_namespaced_pod(ns, pod("client", container(SHELL, ["sh", "-c", poll])))
    env.wait_running(ns, "client")

    def lines() -> list[tuple[int, str]]:
        text = env.vcore.read_namespaced_pod_log("client", ns, container="main", tail_lines=200) or ""
        out = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1] in ("open", "closed"):
                out.append((int(parts[0]), parts[1]))
        return out

    def settled(state: str, after: int, run: int = 3) -> int | None:
        """The sequence number once `run` answers in a row after `after` are `state`."""
        seen = [(i, s) for i, s in lines() if i > after]
        if len(seen) >= run and all(s == state for _, s in seen[-run:]):
            return seen[-1][0]
        return None

    def last() -> int:
        seen = lines()
        return seen[-1][0] if seen else 0

    t0 = time.monotonic()
    mark = wait("the client to reach the server (open)", lambda: settled("open", 0), timeout=120,
                diagnose=env.diagnose(ns))

    hname = env.vc.host_name("NetworkPolicy", "deny-all", ns)
    env.vnet.create_namespaced_network_policy(ns, client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="deny-all"),
        spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector(), policy_types=["Ingress"])))
    t1 = time.monotonic()
    hnp = wait(f"host NetworkPolicy {hname}", lambda: env.hnet.read_namespaced_network_policy(hname, env.hns),
               timeout=60, diagnose=env.diagnose(ns))
    selector = hnp.spec.pod_selector
    assert selector.match_labels[MANAGED_BY] == env.release, selector
    assert selector.match_labels[NAMESPACE_LABEL] == ns, selector
    assert hnp.spec.policy_types == ["Ingress"] and not hnp.spec.ingress, hnp.spec
    ann = hnp.metadata.annotations or {}
    assert ann.get("vcluster.loft.sh/object-name") == "deny-all" and ann.get("vcluster.loft.sh/object-namespace") == ns
    # it selects the host copies of this namespace's pods, and nothing else in the host namespace
    matched = {p.metadata.name for p in env.hcore.list_namespaced_pod(
        env.hns, label_selector=",".join(f"{k}={v}" for k, v in selector.match_labels.items())).items}
    assert matched == {env.vc.host_name("Pod", "web", ns), env.vc.host_name("Pod", "client", ns)}, matched

    mark = wait("the policy to block the client (closed)", lambda: settled("closed", mark), timeout=120,
                diagnose=lambda: f"{lines()[-10:]}\n{env.diagnose(ns)()}")
    blocked_after = time.monotonic() - t1

    # a policy allowing the client's pods (by their virtual labels) opens the way for it alone; its peer
    # selector is rewritten to the host copies' label keys in this namespace
    env.vnet.create_namespaced_network_policy(ns, client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="allow-client"),
        spec=client.V1NetworkPolicySpec(
            pod_selector=client.V1LabelSelector(match_labels={"app": "web"}), policy_types=["Ingress"],
            ingress=[client.V1NetworkPolicyIngressRule(
                _from=[client.V1NetworkPolicyPeer(pod_selector=client.V1LabelSelector(
                    match_labels={"app": "client"}))],
                ports=[client.V1NetworkPolicyPort(port=8080, protocol="TCP")])])))
    allow_name = env.vc.host_name("NetworkPolicy", "allow-client", ns)
    allow = wait(f"host NetworkPolicy {allow_name}", lambda: env.hnet.read_namespaced_network_policy(
        allow_name, env.hns), timeout=60)
    peer = allow.spec.ingress[0]._from[0]
    assert peer.namespace_selector is None and "app" not in peer.pod_selector.match_labels, peer
    assert {p.metadata.name for p in env.hcore.list_namespaced_pod(env.hns, label_selector=",".join(
        f"{k}={v}" for k, v in peer.pod_selector.match_labels.items())).items} == {
            env.vc.host_name("Pod", "client", ns)}, peer
    mark = wait("the allow policy to let the client through (open)", lambda: settled("open", mark), timeout=120,
                diagnose=lambda: f"{lines()[-10:]}\n{env.diagnose(ns)()}")
    env.vnet.delete_namespaced_network_policy("allow-client", ns)
    wait(f"host NetworkPolicy {allow_name} gone", lambda: gone(lambda: env.hnet.read_namespaced_network_policy(
        allow_name, env.hns)), timeout=60)
    mark = wait("deny-all alone to block the client again (closed)", lambda: settled("closed", mark), timeout=120,
                diagnose=lambda: f"{lines()[-10:]}\n{env.diagnose(ns)()}")

    env.vnet.delete_namespaced_network_policy("deny-all", ns)
    t2 = time.monotonic()
    wait(f"host NetworkPolicy {hname} gone", lambda: gone(lambda: env.hnet.read_namespaced_network_policy(
        hname, env.hns)), timeout=60)
    wait("traffic to flow again (open)", lambda: settled("open", mark), timeout=120,
         diagnose=lambda: f"{lines()[-10:]}\n{env.diagnose(ns)()}")
    print(f"open after {t1 - t0:.1f}s; blocked {blocked_after:.1f}s after the policy was created; "
          f"open again {time.monotonic() - t2:.1f}s after it was deleted (last answer #{last()})")
    assert env.vnet.list_namespaced_network_policy(ns).items == []


def test_a_selectorless_service_routes_by_a_users_endpoint_slice(plain: Env) -> None:
    """A Service without selector whose only endpoints are an EndpointSlice the user made (no Endpoints: the
    conformance specs "... specified in multiple EndpointSlices"): the syncer copies the slice to the host,
    labelled with the host Service's name and its pod reference renamed, and a virtual pod reaches the server
    through the Service; deleting the slice deletes the copy."""
    env = plain
    ns = env.namespace("slices")
    env.vcore.create_namespaced_pod(ns, http_server())
    env.vcore.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="ext"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(name="http", port=80, target_port=8080)])))
    web = env.wait_running(ns, "web")
    vdiscovery = client.DiscoveryV1Api(env.vc.api_client)
    hdiscovery = client.DiscoveryV1Api(env.vc.host.api_client)
    t0 = time.monotonic()
    vdiscovery.create_namespaced_endpoint_slice(ns, client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(name="ext-1", labels={"kubernetes.io/service-name": "ext",
                                                           "endpointslice.kubernetes.io/managed-by": "e2e"}),
        address_type="IPv4",
        endpoints=[client.V1Endpoint(addresses=[web.status.pod_ip], conditions=client.V1EndpointConditions(
            ready=True), target_ref=client.V1ObjectReference(kind="Pod", name="web", namespace=ns))],
        ports=[client.DiscoveryV1EndpointPort(name="http", port=8080, protocol="TCP")]))
    hname = env.vc.host_name("EndpointSlice", "ext-1", ns)
    hslice = wait(f"host EndpointSlice {hname}", lambda: hdiscovery.read_namespaced_endpoint_slice(hname, env.hns),
                  timeout=60, diagnose=env.diagnose(ns))
    print(f"host copy of the slice after {time.monotonic() - t0:.1f}s")
    assert hslice.metadata.labels["kubernetes.io/service-name"] == env.vc.host_name("Service", "ext", ns)
    assert hslice.metadata.labels["endpointslice.kubernetes.io/managed-by"] == "vcluster-syncer.pytest-vcluster.io"
    assert [(e.addresses, e.target_ref.name, e.target_ref.namespace) for e in hslice.endpoints] == [
        ([web.status.pod_ip], env.vc.host_name("Pod", "web", ns), env.hns)]
    fetch = ("for i in $(seq 60); do out=$(timeout 5 wget -q -O- http://ext/ 2>&1) && [ \"$out\" = \"" + HELLO
             + "\" ] && echo \"answered after $i tries\" && exit 0; sleep 1; done; echo \"$out\"; exit 1")
    print(env.run_to_completion(ns, pod("client", container(SHELL, ["sh", "-c", fetch]), restart_policy="Never")))
    # settled: the copy the host stores equals what the syncer wants (no update after update)
    assert hdiscovery.read_namespaced_endpoint_slice(hname, env.hns).metadata.resource_version == \
        hslice.metadata.resource_version
    vdiscovery.delete_namespaced_endpoint_slice("ext-1", ns)
    wait(f"host EndpointSlice {hname} gone", lambda: gone(lambda: hdiscovery.read_namespaced_endpoint_slice(
        hname, env.hns)), timeout=60)


# ---------------------------------------------------------------------------------------------- 4. events


def test_host_events_about_synced_pods_appear_for_the_virtual_pods(plain: Env) -> None:
    """`kubectl get events` in the virtual cluster tells what the host did to synced pods: scheduled, image
    present, created, started; a failing readiness probe; an image that is not there (pull policy Never).
    Every event points at the virtual pod, and no message names the host copy."""
    env = plain
    ns = env.namespace("events")
    env.vcore.create_namespaced_pod(ns, pod("good", container(HTTP, ports=[client.V1ContainerPort(
        container_port=8080)])))
    env.vcore.create_namespaced_pod(ns, pod("unready", container(
        SHELL, ["sleep", "3600"],
        readiness_probe=client.V1Probe(_exec=client.V1ExecAction(command=["sh", "-c", "echo probe-says-no; exit 1"]),
                                       period_seconds=2, failure_threshold=1))))
    env.vcore.create_namespaced_pod(ns, pod("missing", container("pytest-vcluster.local/not-there:0.0")))
    uids = {name: env.vcore.read_namespaced_pod(name, ns).metadata.uid for name in ("good", "unready", "missing")}
    wanted = {
        "good": {"Scheduled", "Pulled", "Created", "Started"},
        "unready": {"Scheduled", "Started", "Unhealthy"},
        "missing": {"Scheduled", "ErrImageNeverPull", "Failed"},
    }

    def by_pod() -> dict[str, list[client.CoreV1Event]]:
        out: dict[str, list[client.CoreV1Event]] = {name: [] for name in wanted}
        for e in env.vcore.list_namespaced_event(ns).items:
            if e.involved_object.kind == "Pod" and e.involved_object.name in out:
                out[e.involved_object.name].append(e)
        return out

    def complete() -> dict[str, list[client.CoreV1Event]] | None:
        seen = by_pod()
        return seen if all(wanted[n] <= {e.reason for e in seen[n]} for n in wanted) else None

    seen = wait("host events of the three pods in the virtual cluster", complete, timeout=240, every=2,
                diagnose=lambda: f"virtual: { {n: sorted({e.reason for e in es}) for n, es in by_pod().items()} }\n"
                                 f"{env.diagnose(ns)()}")
    for name, evs in seen.items():
        hname = env.vc.host_name("Pod", name, ns)
        for e in evs:
            assert e.involved_object.namespace == ns and e.metadata.namespace == ns, e
            assert e.involved_object.uid == uids[name], (e.involved_object, uids[name])
            assert hname not in (e.message or "") and env.hns not in (e.message or ""), e.message
        print(f"{name}: {sorted({e.reason for e in evs})}")
    scheduled = next(e for e in seen["good"] if e.reason == "Scheduled")
    assert f"{ns}/good" in scheduled.message, scheduled.message
    unhealthy = next(e for e in seen["unready"] if e.reason == "Unhealthy")
    assert unhealthy.type == "Warning" and "Readiness probe failed" in unhealthy.message, unhealthy.message
    never = next(e for e in seen["missing"] if e.reason == "ErrImageNeverPull")
    assert never.type == "Warning" and "not-there" in never.message, never.message
    # the status comes back on its own path (host pod status -> syncer), not with the event: wait for it
    def waiting_reason() -> str | None:
        statuses = env.vcore.read_namespaced_pod("missing", ns).status.container_statuses or []
        reason = statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None
        return reason if reason == "ErrImageNeverPull" else None

    wait("virtual pod missing waiting with ErrImageNeverPull", waiting_reason, timeout=60, every=1,
         diagnose=env.diagnose(ns))

    out = subprocess.run(["kubectl", "--kubeconfig", str(env.vc.kubeconfig_path), "get", "events", "-n", ns,
                          "-o", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    listed = {(i["involvedObject"]["name"], i["reason"]) for i in json.loads(out.stdout)["items"]}
    assert {("good", "Started"), ("unready", "Unhealthy"), ("missing", "ErrImageNeverPull")} <= listed, listed
    table = subprocess.run(["kubectl", "--kubeconfig", str(env.vc.kubeconfig_path), "get", "events", "-n", ns],
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "pod/missing" in table.stdout and "ErrImageNeverPull" in table.stdout, table


# ---------------------------------------------------------------------------------------------- 5. teardown


def leftovers(host: Host, release: str, ns: str) -> list[str]:
    """Everything in the host that still belongs to the release or its namespace (events excepted)."""
    found: list[str] = []
    core = client.CoreV1Api(host.api_client)
    rbac = client.RbacAuthorizationV1Api(host.api_client)
    try:
        found.append(f"namespace {core.read_namespace(ns).metadata.name} ({core.read_namespace(ns).status.phase})")
    except client.ApiException as e:
        if e.status != 404:
            raise
    for kind, items in (("ClusterRole", rbac.list_cluster_role().items),
                        ("ClusterRoleBinding", rbac.list_cluster_role_binding().items)):
        for item in items:
            labels = item.metadata.labels or {}
            if labels.get(CLUSTER_SCOPED_LABEL) == ns or release in item.metadata.name:
                found.append(f"{kind} {item.metadata.name}")
    for crb in rbac.list_cluster_role_binding().items:
        for subject in crb.subjects or []:
            if subject.namespace == ns:
                found.append(f"ClusterRoleBinding {crb.metadata.name} -> {subject.kind} {ns}/{subject.name}")
    for pv in core.list_persistent_volume().items:
        ref = pv.spec.claim_ref
        if ref is not None and ref.namespace == ns:
            found.append(f"PersistentVolume {pv.metadata.name} ({pv.status.phase}) of claim {ns}/{ref.name}")
    # any other object anywhere, namespaced or cluster-scoped, named after the release or marked as its copy
    resources = subprocess.run(
        ["kubectl", "--kubeconfig", str(host.kubeconfig_path), "api-resources", "--verbs=list", "-o", "name"],
        capture_output=True, text=True, timeout=120)
    assert resources.returncode == 0, resources.stderr
    kinds = [r for r in resources.stdout.split() if r.split(".")[0] != "events"]

    def get(names: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", str(host.kubeconfig_path), "get", ",".join(names), "-A",
                               "-o", "json"], capture_output=True, text=True, timeout=300)

    items: list[dict[str, Any]] = []
    listed = get(kinds)
    if listed.returncode == 0:
        items = json.loads(listed.stdout)["items"]
    else:  # a kind went away meanwhile (someone else's CRD): one by one, skipping kinds no longer served
        for kind in kinds:
            one = get([kind])
            if one.returncode == 0:
                items += json.loads(one.stdout)["items"]
            else:
                assert "doesn't have a resource type" in one.stderr or "NotFound" in one.stderr, one.stderr
    for item in items:
        meta = item.get("metadata") or {}
        labels = meta.get("labels") or {}
        if (meta.get("namespace") == ns or release in meta.get("name", "") or labels.get(MANAGED_BY) == release
                or labels.get(CLUSTER_SCOPED_LABEL) == ns or ns in labels.values()):
            found.append(f"{item.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}")
    return sorted(set(found))


def test_teardown_with_every_option_on_leaves_nothing_in_the_host(host: Host) -> None:
    """Nodes mode all, StorageClasses and NetworkPolicies synced, a bound claim: after VCluster.delete(wait=True)
    no namespace, no ClusterRole/ClusterRoleBinding, no PersistentVolume and no other object of the release is
    left; the host's own nodes and StorageClasses are untouched."""
    host_core = client.CoreV1Api(host.api_client)
    host_nodes_before = sorted(n.metadata.name for n in host_core.list_node().items)
    host_classes_before = {sc.metadata.name: sc.metadata.uid
                           for sc in client.StorageV1Api(host.api_client).list_storage_class().items}
    vc = create(host, f"e2e-wl-down-{suffix()}", ALL_ON)
    release, ns = vc.release, vc.host_namespace
    try:
        env = Env(vc, host.api_client)
        rbac = env.hrbac
        selector = f"{CLUSTER_SCOPED_LABEL}={ns}"
        roles = [r.metadata.name for r in rbac.list_cluster_role(label_selector=selector).items]
        bindings = [b.metadata.name for b in rbac.list_cluster_role_binding(label_selector=selector).items]
        assert roles == [f"vc-{release}-{ns}"] and bindings == roles, (roles, bindings)

        vns = env.namespace("keep")
        env.vcore.create_namespaced_persistent_volume_claim(vns, claim("data", HOST_CLASS))
        env.vcore.create_namespaced_pod(vns, volume_pod("user", "data", "echo hi > /data/f; exec sleep 3600"))
        env.vcore.create_namespaced_config_map(vns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings"), data={"a": "b"}))
        env.vnet.create_namespaced_network_policy(vns, client.V1NetworkPolicy(
            metadata=client.V1ObjectMeta(name="deny-all"),
            spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector(), policy_types=["Ingress"])))
        env.wait_running(vns, "user")
        hpvc = wait("host claim Bound", lambda: (lambda c: c if c.status.phase == "Bound" else None)(
            env.hcore.read_namespaced_persistent_volume_claim(env.vc.host_name("PersistentVolumeClaim", "data", vns),
                                                              ns)), timeout=120)
        pv_name = hpvc.spec.volume_name
        wait("host NetworkPolicy", lambda: env.hnet.read_namespaced_network_policy(
            env.vc.host_name("NetworkPolicy", "deny-all", vns), ns), timeout=60)
        before = leftovers(host, release, ns)
        assert f"PersistentVolume {pv_name} (Bound) of claim {ns}/{hpvc.metadata.name}" in before, before
    finally:
        started = time.monotonic()
        vc.delete(wait=True, timeout=300)
        print(f"VCluster.delete(wait=True): {time.monotonic() - started:.1f}s")

    assert gone(lambda: host_core.read_namespace(ns)), f"host namespace {ns} still there"
    # local-path volumes of deleted claims are removed by the provisioner (a helper pod wipes the directory)
    wait(f"PersistentVolume {pv_name} deleted by the provisioner",
         lambda: gone(lambda: host_core.read_persistent_volume(pv_name)), timeout=180)
    remaining = wait("nothing of the release left in the host", lambda: not leftovers(host, release, ns) or None,
                     timeout=60, every=5, diagnose=lambda: "\n".join(leftovers(host, release, ns)))
    assert remaining
    print(f"host clean {time.monotonic() - started:.1f}s after delete started")
    assert sorted(n.metadata.name for n in host_core.list_node().items) == host_nodes_before
    assert {sc.metadata.name: sc.metadata.uid
            for sc in client.StorageV1Api(host.api_client).list_storage_class().items} == host_classes_before


PLUGIN_TEARDOWN_TEST = """
import json
import os
import time

import pytest
from kubernetes import client

ALL_ON = {all_on!r}


@pytest.mark.vcluster(set=ALL_ON, timeout={timeout})
def test_uses_everything(vcluster):
    core = client.CoreV1Api(vcluster.api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="app")))
    core.create_namespaced_persistent_volume_claim("app", client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], storage_class_name="{storage_class}",
            resources=client.V1VolumeResourceRequirements(requests={{"storage": "64Mi"}}))))
    core.create_namespaced_pod("app", client.V1Pod(
        metadata=client.V1ObjectMeta(name="user", labels={{"app": "user"}}),
        spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
            name="main", image="{image}", image_pull_policy="Never", command=["sleep", "3600"],
            volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")])],
            volumes=[client.V1Volume(name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                claim_name="data"))])))
    client.NetworkingV1Api(vcluster.api_client).create_namespaced_network_policy("app", client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="deny-all"),
        spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector(), policy_types=["Ingress"])))
    deadline = time.monotonic() + {timeout}
    while core.read_namespaced_pod("user", "app").status.phase != "Running":
        assert time.monotonic() < deadline, core.read_namespaced_pod("user", "app").status
        time.sleep(1)
    assert {{sc.metadata.name for sc in client.StorageV1Api(vcluster.api_client).list_storage_class().items}}
    claim = vcluster.host_name("PersistentVolumeClaim", "data", "app")
    host_core = vcluster.host.core_v1()
    volume = host_core.read_namespaced_persistent_volume_claim(claim, vcluster.host_namespace).spec.volume_name
    assert volume
    with open(os.path.join(os.path.dirname(__file__), "cluster.json"), "w") as fh:
        json.dump({{"release": vcluster.release, "namespace": vcluster.host_namespace, "claim": claim,
                   "volume": volume}}, fh)
"""


def test_plugin_teardown_with_every_option_on_leaves_nothing_in_the_host(
        pytester: pytest.Pytester, host_kubeconfig: Path, host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through the plugin: a test using the `vcluster` fixture with every option on (marker `set=`) and
    a bound claim; when its pytest session has ended, nothing of the cluster is left in the host."""
    for var in ("KUBECONFIG", "VCLUSTER_HOST", "VCLUSTER_HOST_KUBECONFIG", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
    pytester.makepyfile(PLUGIN_TEARDOWN_TEST.format(all_on=ALL_ON, timeout=int(CREATE_TIMEOUT),
                                                    storage_class=HOST_CLASS, image=SHELL))
    host_core = client.CoreV1Api(host.api_client)
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--vcluster-host=kubeconfig", f"--vcluster-host-kubeconfig={host_kubeconfig}",
        f"--vcluster-timeout={int(CREATE_TIMEOUT)}", "-v", timeout=900)
    print(f"inner pytest session (create, test, plugin teardown): {time.monotonic() - started:.1f}s")
    result.assert_outcomes(passed=1)
    made = json.loads((pytester.path / "cluster.json").read_text())
    release, ns = made["release"], made["namespace"]
    assert gone(lambda: host_core.read_namespace(ns)), f"host namespace {ns} still there after the session"
    volume = made["volume"]
    wait(f"PersistentVolume {volume} of claim {made['claim']} deleted by the provisioner",
         lambda: gone(lambda: host_core.read_persistent_volume(volume)), timeout=180)
    wait("nothing of the release left in the host", lambda: not leftovers(host, release, ns) or None,
         timeout=60, every=5, diagnose=lambda: "\n".join(leftovers(host, release, ns)))
    print(f"host clean {time.monotonic() - started:.1f}s after the inner session started")
