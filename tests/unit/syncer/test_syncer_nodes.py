"""Virtual nodes' addresses: the host node's real InternalIPs (a pod's hostIP/hostPort name them) and a
Hostname address that is the fake kubelet (the API server prefers Hostname for kubelet calls)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from syncer_testdata import SETTINGS
from test_syncer_loop import World, vpod
from vcluster_syncer.kube import NODES, PODS, ApiError
from vcluster_syncer.translate.metadata import FAKE_NODE_LABEL
from vcluster_syncer.translate.nodes import (
    fake_node,
    is_ready,
    known_host_ips,
    kubelet_status,
    mirrored_node,
    pod_host_ips,
    shown_nodes,
)

NOW = "2024-01-01T00:00:00Z"
KUBELET = {"type": "Hostname", "address": "127.0.0.1"}


def ip(address: str, kind: str = "InternalIP") -> dict[str, str]:
    return {"type": kind, "address": address}


def host_node(*addresses: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "4"}, "addresses": list(addresses)}}


def host_pod(name: str, node: str | None, host_ip: str | None = None, host_ips: list[str] | None = None,
             ns: str = "host-ns") -> dict[str, Any]:
    status: dict[str, Any] = {}
    if host_ip:
        status["hostIP"] = host_ip
    if host_ips is not None:
        status["hostIPs"] = [{"ip": i} for i in host_ips]
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"nodeName": node} if node else {},
            "status": status}


@pytest.mark.parametrize(("node", "host_ips", "expected"), [
    pytest.param(None, [], [KUBELET], id="unreadable node, no pod reported an IP yet: no InternalIP"),
    pytest.param(None, ["192.168.0.2"], [ip("192.168.0.2"), KUBELET], id="unreadable node, IP from pods"),
    pytest.param(None, ["192.168.0.2", "fd00::2"], [ip("192.168.0.2"), ip("fd00::2"), KUBELET],
                 id="unreadable node, dual-stack hostIPs"),
    pytest.param(None, ["127.0.0.1"], [ip("127.0.0.1"), KUBELET],
                 id="InternalIP equal to the kubelet address is not a duplicate (other type)"),
    pytest.param(host_node(ip("10.0.0.5"), ip("n1", "Hostname")), [], [ip("10.0.0.5"), KUBELET],
                 id="readable node: its InternalIP, not its Hostname"),
    pytest.param(host_node(ip("10.0.0.5"), ip("1.2.3.4", "ExternalIP")), ["192.168.0.9"], [ip("10.0.0.5"), KUBELET],
                 id="readable node wins over pods' hostIP; only InternalIPs copied"),
    pytest.param(host_node(ip("n1", "Hostname")), ["192.168.0.2"], [ip("192.168.0.2"), KUBELET],
                 id="readable node without InternalIP: pods' hostIP"),
    pytest.param({"metadata": {"name": "n1"}, "status": {}}, ["192.168.0.2"], [ip("192.168.0.2"), KUBELET],
                 id="readable node without addresses: pods' hostIP"),
])
def test_fake_node_addresses(node: dict[str, Any] | None, host_ips: list[str],
                             expected: list[dict[str, str]]) -> None:
    status = fake_node("n1", node, NOW, SETTINGS, host_ips)["status"]
    assert status["addresses"] == expected
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}


@pytest.mark.parametrize(("addresses", "expected"), [
    pytest.param([ip("10.0.0.5"), ip("n1", "Hostname")], [ip("10.0.0.5"), KUBELET], id="kind-like node"),
    pytest.param([ip("10.0.0.5"), ip("fd00::5"), ip("34.1.2.3", "ExternalIP"), ip("n1.internal", "InternalDNS"),
                  ip("n1", "Hostname"), ip("n1-alias", "Hostname")],
                 [ip("10.0.0.5"), ip("fd00::5"), ip("34.1.2.3", "ExternalIP"), ip("n1.internal", "InternalDNS"),
                  KUBELET], id="cloud node: every Hostname replaced, the rest kept for display"),
    pytest.param([ip("10.0.0.5"), ip("10.0.0.5"), ip("127.0.0.1", "Hostname")], [ip("10.0.0.5"), KUBELET],
                 id="no duplicates"),
    pytest.param([], [KUBELET], id="no addresses"),
])
def test_mirrored_node_addresses(addresses: list[dict[str, str]], expected: list[dict[str, str]]) -> None:
    node = mirrored_node({"metadata": {"name": "n1"}, "status": {"addresses": addresses,
                                                                 "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}},
                         SETTINGS)
    assert node["status"]["addresses"] == expected
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}


def test_kubelet_address_setting() -> None:
    other = replace(SETTINGS, kubelet_address="10.1.2.3", kubelet_port=11250)
    assert kubelet_status(other, [ip("10.0.0.5")]) == {
        "addresses": [ip("10.0.0.5"), ip("10.1.2.3", "Hostname")],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 11250}}}


@pytest.mark.parametrize(("pods", "expected"), [
    pytest.param([], [], id="no pods"),
    pytest.param([host_pod("a", "n1")], [], id="pod not reported yet"),
    pytest.param([host_pod("a", "n2", "10.0.0.9"), host_pod("b", None, "10.0.0.8")], [], id="pods elsewhere"),
    pytest.param([host_pod("a", "n1", "10.0.0.5")], ["10.0.0.5"], id="hostIP only"),
    pytest.param([host_pod("a", "n1", "10.0.0.5", ["10.0.0.5", "fd00::5"])], ["10.0.0.5", "fd00::5"],
                 id="hostIPs win"),
    pytest.param([host_pod("b", "n1", "10.0.0.7"), host_pod("a", "n1"), host_pod("c", "n1", "10.0.0.6")],
                 ["10.0.0.7"], id="first pod by name that reported one, whatever the list order"),
])
def test_pod_host_ips(pods: list[dict[str, Any]], expected: list[str]) -> None:
    assert pod_host_ips(pods, "n1") == expected
    assert pod_host_ips(list(reversed(pods)), "n1") == expected


# ---------------------------------------------------------------- the Nodes part, against fake API servers

def test_fake_node_gets_internal_ip_once_a_pod_reports_it() -> None:
    w = World()
    w.host.forbidden.add("nodes")
    w.sync()
    w.virtual.create(PODS, vpod())
    w.sync()
    w.host.patch(PODS, "web-x-team-x-vc", {"spec": {"nodeName": "node1"}}, "host-ns")
    w.sync()
    assert w.virtual.get(NODES, "node1")["status"]["addresses"] == [KUBELET]
    w.host.patch(PODS, "web-x-team-x-vc", {"status": {"phase": "Pending", "hostIP": "192.168.0.2",
                                                      "hostIPs": [{"ip": "192.168.0.2"}]}},
                 "host-ns", subresource="status")
    w.sync()
    assert w.virtual.get(NODES, "node1")["status"]["addresses"] == [ip("192.168.0.2"), KUBELET]
    assert w.virtual.get(PODS, "web", "team")["status"]["hostIP"] == "192.168.0.2"


def test_fake_node_internal_ip_from_readable_host_node() -> None:
    w = World()
    w.host.put(NODES, host_node(ip("10.0.0.5"), ip("n1", "Hostname")))
    w.sync()
    w.virtual.create(PODS, vpod())
    w.sync()
    w.schedule("web-x-team-x-vc", "n1")  # the pod reports hostIP 192.168.0.2: the node's own address wins
    w.sync()
    assert w.virtual.get(NODES, "n1")["status"]["addresses"] == [ip("10.0.0.5"), KUBELET]


def test_all_mode_node_keeps_internal_ip() -> None:
    w = World(nodes_mode="all")
    w.host.put(NODES, host_node(ip("10.0.0.5"), ip("n1", "Hostname")))
    w.sync()
    assert w.virtual.get(NODES, "n1")["status"]["addresses"] == [ip("10.0.0.5"), KUBELET]


# ---------------------------------------------------------------- the node of CoreDNS (pod R-0's host node)

CORE = replace(SETTINGS, coredns_node="n1", coredns_node_ips=("10.0.0.5",))


@pytest.mark.parametrize(("settings", "pods", "expected"), [
    pytest.param(SETTINGS, [], set(), id="no CoreDNS, no pods: none"),
    pytest.param(SETTINGS, [host_pod("a", "n2"), host_pod("b", None), host_pod("c", "n2")], {"n2"},
                 id="no CoreDNS: the nodes of scheduled synced pods"),
    pytest.param(CORE, [], {"n1"}, id="fresh cluster: the node of CoreDNS"),
    pytest.param(CORE, [host_pod("a", "n2"), host_pod("b", "n1")], {"n1", "n2"}, id="both, once"),
])
def test_shown_nodes(settings: Any, pods: list[dict[str, Any]], expected: set[str]) -> None:
    assert shown_nodes(pods, settings) == expected


@pytest.mark.parametrize(("node", "pods", "expected"), [
    pytest.param("n1", [], ["10.0.0.5"], id="node of CoreDNS, no pods: R-0's hostIP"),
    pytest.param("n1", [host_pod("a", "n1")], ["10.0.0.5"], id="its pods have not reported one: R-0's hostIP"),
    pytest.param("n1", [host_pod("a", "n1", "10.0.0.5", ["10.0.0.5", "fd00::5"])], ["10.0.0.5", "fd00::5"],
                 id="its pods' hostIPs (dual-stack) win"),
    pytest.param("n2", [], [], id="another node: nothing known"),
    pytest.param("n2", [host_pod("a", "n2", "10.0.0.9")], ["10.0.0.9"], id="another node: its pods'"),
])
def test_known_host_ips(node: str, pods: list[dict[str, Any]], expected: list[str]) -> None:
    assert known_host_ips(pods, node, CORE) == expected


@pytest.mark.parametrize(("conditions", "expected"), [
    pytest.param(None, False, id="no status"),
    pytest.param([{"type": "MemoryPressure", "status": "False"}], False, id="no Ready condition"),
    pytest.param([{"type": "Ready", "status": "False"}], False, id="Ready False"),
    pytest.param([{"type": "Ready", "status": "Unknown"}], False, id="Ready Unknown"),
    pytest.param([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}], True,
                 id="Ready True"),
])
def test_is_ready(conditions: list[dict[str, str]] | None, expected: bool) -> None:
    node: dict[str, Any] = {"metadata": {"name": "n1"}}
    if conditions is not None:
        node["status"] = {"conditions": conditions}
    assert is_ready(node) is expected


def coredns_world(**settings: Any) -> World:
    w = World(coredns_node="n1", coredns_node_ips=("10.0.0.5",), **settings)
    w.host.forbidden.add("nodes")  # the chart's Role: host nodes are not readable
    return w


def test_fresh_cluster_shows_the_node_of_coredns_ready_by_its_first_sync() -> None:
    w = coredns_world()
    assert not w.syncer.ready()
    w.syncer.sync_once()  # one first sync, as at start: no second round needed
    assert w.syncer.ready()
    assert w.virtual.names(NODES) == ["n1"]
    node = w.virtual.get(NODES, "n1")
    assert node["metadata"]["labels"][FAKE_NODE_LABEL] == "true"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert [(c["type"], c["status"]) for c in node["status"]["conditions"]] == [("Ready", "True")]
    assert node["status"]["addresses"] == [ip("10.0.0.5"), KUBELET]
    assert node.get("spec", {}).get("taints") is None


def test_node_of_coredns_stays_without_pods_and_others_go_with_theirs() -> None:
    w = coredns_world()
    w.sync()
    w.virtual.create(PODS, vpod("here"))
    w.virtual.create(PODS, vpod("there"))
    w.sync()
    w.schedule("here-x-team-x-vc", "n1")
    w.schedule("there-x-team-x-vc", "n2")
    w.sync()
    assert w.virtual.names(NODES) == ["n1", "n2"]
    for name in ("here", "there"):
        w.virtual.delete(PODS, name, "team", grace_period_seconds=0)
        w.host.force_delete(PODS, f"{name}-x-team-x-vc", "host-ns")
    w.sync()
    assert w.virtual.names(NODES) == ["n1"]
    assert is_ready(w.virtual.get(NODES, "n1"))


def test_node_of_coredns_gets_its_heartbeat_without_pods() -> None:
    w = coredns_world()
    w.sync()
    first = w.virtual.get(NODES, "n1")["status"]["conditions"][0]
    w.clock.t += 20  # past heartbeat_interval (15 s)
    w.sync()
    later = w.virtual.get(NODES, "n1")["status"]["conditions"][0]
    assert (first["lastHeartbeatTime"], later["lastHeartbeatTime"]) == ("2023-11-14T22:13:20Z", "2023-11-14T22:13:40Z")
    assert later["lastTransitionTime"] == first["lastTransitionTime"] == "2023-11-14T22:13:20Z"


def test_a_stale_node_of_ours_goes_in_the_first_sync() -> None:
    """A fake node in etcd that neither R-0 nor a pod of the cluster runs on (written there before this syncer
    started: snapshots leave Nodes out, so a fork does not get its template's) goes in the first sync."""
    w = coredns_world()
    w.virtual.put(NODES, fake_node("template-node", None, NOW, CORE))
    w.syncer.sync_once()
    assert w.virtual.names(NODES) == ["n1"]
    assert w.syncer.ready()


def test_someone_elses_node_is_left_alone() -> None:
    w = coredns_world()
    w.virtual.put(NODES, {"metadata": {"name": "theirs"}, "status": {}})
    w.sync()
    assert w.virtual.names(NODES) == ["n1", "theirs"]


def test_readiness_waits_for_the_node_when_its_first_reconcile_fails() -> None:
    w = coredns_world()
    create = w.virtual.create
    refusing = {"on": True}

    def refuse_nodes(kind: Any, obj: dict[str, Any]) -> dict[str, Any]:
        if kind == NODES and refusing["on"]:
            raise ApiError(500, "InternalError", "etcd busy")
        return create(kind, obj)

    w.virtual.create = refuse_nodes  # type: ignore[method-assign]
    w.syncer.sync_once()
    assert w.syncer.first_sync_done.is_set() and w.syncer.default_service_account.is_set()
    assert not w.syncer.ready()
    refusing["on"] = False
    w.syncer.sync_once()
    assert w.syncer.ready() and w.virtual.names(NODES) == ["n1"]


def test_all_mode_is_unchanged_by_the_node_of_coredns() -> None:
    """SYNC_NODES_MODE=all mirrors the host's nodes, R-0's among them, as they are; a node R-0 names that the
    host does not list is not made up, and readiness does not wait for it."""
    w = World(nodes_mode="all", coredns_node="n1", coredns_node_ips=("10.0.0.5",))
    w.host.put(NODES, host_node(ip("10.0.0.6"), ip("n1", "Hostname")))
    w.sync()
    node = w.virtual.get(NODES, "n1")
    assert FAKE_NODE_LABEL not in node["metadata"].get("labels", {})
    assert node["status"]["addresses"] == [ip("10.0.0.6"), KUBELET]
    other = World(nodes_mode="all", coredns_node="gone", coredns_node_ips=("10.0.0.5",))
    other.sync()
    assert other.virtual.names(NODES) == [] and other.syncer.ready()
