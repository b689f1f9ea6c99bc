"""Virtual nodes' addresses: the host node's real InternalIPs (a pod's hostIP/hostPort name them) and a
Hostname address that is the fake kubelet (the API server prefers Hostname for kubelet calls)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from syncer_testdata import SETTINGS
from test_syncer_loop import World, vpod
from vcluster_syncer.kube import NODES, PODS
from vcluster_syncer.translate.nodes import fake_node, kubelet_status, mirrored_node, pod_host_ips

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
