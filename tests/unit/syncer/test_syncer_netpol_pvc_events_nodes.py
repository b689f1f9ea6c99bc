from __future__ import annotations

from typing import Any

import pytest
from syncer_testdata import SETTINGS
from vcluster_syncer.translate.events import event_patch, involved_host_object, translate_event, virtual_event_name
from vcluster_syncer.translate.metadata import FAKE_NODE_LABEL, MANAGED_BY, NAMESPACE_LABEL, selector_matches
from vcluster_syncer.translate.names import translate_label_key
from vcluster_syncer.translate.netpol import network_policy_patch, translate_network_policy
from vcluster_syncer.translate.nodes import (
    NOMINAL_CAPACITY,
    fake_node,
    mirrored_node,
    mirrored_storage_class,
    node_status_patch,
    storage_class_needs_recreate,
)
from vcluster_syncer.translate.pvcs import pvc_spec_patch, pvc_status_patch, translate_pvc

K = lambda key: translate_label_key(key, SETTINGS)  # noqa: E731
NAMESPACES = {"team": {"kubernetes.io/metadata.name": "team", "env": "prod"},
              "other": {"kubernetes.io/metadata.name": "other", "env": "dev"}}


def host_pod_labels(namespace: str, **labels: str) -> dict[str, str]:
    return {**{K(k): v for k, v in labels.items()}, MANAGED_BY: "vc", NAMESPACE_LABEL: namespace}


def netpol(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "np", "namespace": "team", "uid": "n"}, "spec": spec}


# ------------------------------------------------------------ NetworkPolicies

def test_pod_selector_selects_host_copies_of_namespace() -> None:
    h = translate_network_policy(netpol({"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]}),
                                 SETTINGS, NAMESPACES)
    assert h["metadata"]["name"] == "np-x-team-x-vc" and h["metadata"]["namespace"] == "host-ns"
    sel = h["spec"]["podSelector"]
    assert selector_matches(sel, host_pod_labels("team", app="db"))
    assert not selector_matches(sel, host_pod_labels("other", app="db"))
    assert not selector_matches(sel, {"app": "db"})  # host pods that are not synced copies
    assert h["spec"]["policyTypes"] == ["Ingress"]


def test_empty_pod_selector_means_whole_virtual_namespace() -> None:
    h = translate_network_policy(netpol({"podSelector": {}, "ingress": []}), SETTINGS, NAMESPACES)
    assert selector_matches(h["spec"]["podSelector"], host_pod_labels("team", any="x"))
    assert not selector_matches(h["spec"]["podSelector"], host_pod_labels("other"))
    assert h["spec"]["ingress"] == []  # deny all stays deny all


@pytest.mark.parametrize(
    ("peer", "allowed", "denied"),
    [
        ({"podSelector": {"matchLabels": {"app": "web"}}},
         [host_pod_labels("team", app="web")], [host_pod_labels("other", app="web"), host_pod_labels("team")]),
        ({"namespaceSelector": {"matchLabels": {"env": "dev"}}},
         [host_pod_labels("other", app="x")], [host_pod_labels("team", app="x")]),
        ({"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}},
         [host_pod_labels("team", app="web"), host_pod_labels("other", app="web")], [host_pod_labels("other")]),
        ({"namespaceSelector": {"matchLabels": {"env": "none"}}}, [], [host_pod_labels("team")]),
    ],
)
def test_peers(peer: dict[str, Any], allowed: list[dict[str, str]], denied: list[dict[str, str]]) -> None:
    h = translate_network_policy(netpol({"podSelector": {}, "ingress": [{"from": [peer], "ports": [{"port": 80}]}]}),
                                 SETTINGS, NAMESPACES)
    rule = h["spec"]["ingress"][0]
    assert rule["ports"] == [{"port": 80}]
    out_peer = rule["from"][0]
    assert set(out_peer) == {"podSelector"}  # never a namespaceSelector on the host
    for labels in allowed:
        assert selector_matches(out_peer["podSelector"], labels)
    for labels in denied:
        assert not selector_matches(out_peer["podSelector"], labels)


def test_ip_block_and_egress_kept() -> None:
    peer = {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}
    h = translate_network_policy(netpol({"podSelector": {}, "egress": [{"to": [peer]}], "policyTypes": ["Egress"]}),
                                 SETTINGS, NAMESPACES)
    assert h["spec"]["egress"] == [{"to": [peer]}]


def test_network_policy_patch() -> None:
    a = translate_network_policy(netpol({"podSelector": {"matchLabels": {"app": "a"}}}), SETTINGS, NAMESPACES)
    b = translate_network_policy(netpol({"podSelector": {"matchLabels": {"app": "b"}}}), SETTINGS, NAMESPACES)
    assert network_policy_patch(a, a) is None
    assert network_policy_patch(b, a) == {"spec": {"podSelector": {"matchLabels": {K("app"): "b"}}}}


# ------------------------------------------------------------ PVCs

def test_translate_pvc() -> None:
    v = {"metadata": {"name": "data", "namespace": "team", "uid": "p"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                  "storageClassName": "local-path", "volumeName": "pvc-123",
                  "dataSource": {"kind": "PersistentVolumeClaim", "name": "src"},
                  "dataSourceRef": {"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": "s"}}}
    h = translate_pvc(v, SETTINGS)
    assert h["metadata"]["name"] == "data-x-team-x-vc"
    spec = h["spec"]
    assert "volumeName" not in spec and "dataSourceRef" not in spec
    assert spec["dataSource"] == {"kind": "PersistentVolumeClaim", "name": "src-x-team-x-vc"}
    assert spec["storageClassName"] == "local-path"
    bigger = {**v, "spec": {**v["spec"], "resources": {"requests": {"storage": "2Gi"}}}}
    expected = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    assert pvc_spec_patch(translate_pvc(bigger, SETTINGS), h) == expected
    assert pvc_spec_patch(h, h) is None


def test_pvc_status_back() -> None:
    host = {"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}}
    assert pvc_status_patch(host, {"status": {"phase": "Pending"}}) == {"status": host["status"]}
    assert pvc_status_patch(host, host) is None


# ------------------------------------------------------------ Events

def host_event(**fields: Any) -> dict[str, Any]:
    base = {"metadata": {"name": "web-x-team-x-vc.17a2b3c4d5", "namespace": "host-ns"},
            "involvedObject": {"kind": "Pod", "namespace": "host-ns", "name": "web-x-team-x-vc", "uid": "host-uid",
                               "apiVersion": "v1", "fieldPath": "spec.containers{c}"},
            "reason": "Scheduled", "message": "Successfully assigned host-ns/web-x-team-x-vc to node1",
            "type": "Normal", "count": 1, "source": {"component": "default-scheduler"},
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z"}
    base.update(fields)
    return base


VIRTUAL = {"kind": "Pod", "apiVersion": "v1", "namespace": "team", "name": "web", "uid": "virtual-uid"}


def test_translate_event() -> None:
    ev = translate_event(host_event(), VIRTUAL, SETTINGS)
    assert ev["metadata"]["name"] == "web.17a2b3c4d5" and ev["metadata"]["namespace"] == "team"
    assert ev["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "team", "name": "web",
                                    "uid": "virtual-uid", "fieldPath": "spec.containers{c}"}
    assert ev["message"] == "Successfully assigned team/web to node1"
    assert ev["reason"] == "Scheduled" and ev["count"] == 1 and ev["type"] == "Normal"
    assert ev["reportingComponent"] == "default-scheduler"


@pytest.mark.parametrize(
    ("involved", "expected"),
    [
        ({"kind": "Pod", "namespace": "host-ns", "name": "p"}, ("Pod", "p")),
        ({"kind": "PersistentVolumeClaim", "namespace": "host-ns", "name": "c"}, ("PersistentVolumeClaim", "c")),
        ({"kind": "Pod", "namespace": "elsewhere", "name": "p"}, None),
        ({"kind": "Node", "name": "node1"}, None),
        ({"kind": "StatefulSet", "namespace": "host-ns", "name": "vc"}, None),
    ],
)
def test_involved_host_object(involved: dict[str, str], expected: tuple[str, str] | None) -> None:
    assert involved_host_object({"involvedObject": involved}, SETTINGS) == expected


def test_repeated_event_patch() -> None:
    first = translate_event(host_event(), VIRTUAL, SETTINGS)
    again = translate_event(host_event(count=3, lastTimestamp="2024-01-01T00:05:00Z"), VIRTUAL, SETTINGS)
    assert event_patch(again, first) == {"count": 3, "lastTimestamp": "2024-01-01T00:05:00Z"}
    assert event_patch(first, first) is None
    assert virtual_event_name("x.abc", "y") == "y.abc"


# ------------------------------------------------------------ Nodes and StorageClasses

def test_fake_node_nominal_and_copied() -> None:
    node = fake_node("node1", None, "2024-01-01T00:00:00Z", SETTINGS)
    assert node["metadata"]["labels"][FAKE_NODE_LABEL] == "true"
    assert node["status"]["capacity"] == NOMINAL_CAPACITY
    assert node["status"]["conditions"][0]["type"] == "Ready" and node["status"]["conditions"][0]["status"] == "True"
    host = {"metadata": {"name": "node1", "labels": {"kubernetes.io/arch": "arm64"}},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "allocatable": {"cpu": "1900m", "memory": "3Gi", "pods": "110"}}}
    node = fake_node("node1", host, "2024-01-01T00:00:00Z", SETTINGS)
    assert node["status"]["capacity"]["cpu"] == "2" and node["status"]["allocatable"]["cpu"] == "1900m"
    assert node["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"


def test_node_status_heartbeat() -> None:
    old = fake_node("n", None, "2024-01-01T00:00:00Z", SETTINGS)
    new = fake_node("n", None, "2024-01-01T00:01:00Z", SETTINGS)
    assert node_status_patch(new, old, heartbeat_due=False) is None
    patch = node_status_patch(new, old, heartbeat_due=True)
    assert patch is not None
    condition = patch["status"]["conditions"][0]
    assert condition["lastHeartbeatTime"] == "2024-01-01T00:01:00Z"
    assert condition["lastTransitionTime"] == "2024-01-01T00:00:00Z"


def test_mirrored_node_all_mode() -> None:
    host = {"metadata": {"name": "n1", "labels": {"zone": "a"}, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "providerID": "x"},
            "status": {"capacity": {"cpu": "4"}, "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}},
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.5"},
                                     {"type": "Hostname", "address": "n1"}]}}
    node = mirrored_node(host, SETTINGS)
    assert node["metadata"]["labels"] == {"zone": "a"}
    assert node["metadata"]["annotations"][MANAGED_BY] == "vc"
    assert node["spec"] == {"taints": [{"key": "k", "effect": "NoSchedule"}]}
    # kubelet calls (logs, exec...) go to the syncer's fake kubelet (Hostname), not to the host's kubelet; the
    # InternalIP stays the host node's
    assert node["status"] == {
        "capacity": {"cpu": "4"},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}, {"type": "Hostname", "address": "127.0.0.1"}],
    }


def test_mirrored_storage_class() -> None:
    host = {"metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"}
    sc = mirrored_storage_class(host, SETTINGS)
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["provisioner"] == "rancher.io/local-path"
    assert not storage_class_needs_recreate(sc, sc)
    assert storage_class_needs_recreate({**sc, "reclaimPolicy": "Retain"}, sc)
