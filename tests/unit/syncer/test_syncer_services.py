from __future__ import annotations

from typing import Any

import pytest
from syncer_testdata import SETTINGS
from vcluster_syncer.translate.metadata import MANAGED_BY, NAMESPACE_LABEL
from vcluster_syncer.translate.names import translate_label_key
from vcluster_syncer.translate.services import (
    endpoints_patch,
    host_ip_request,
    host_node_port_request,
    needs_recreate_host,
    recreated_virtual_service,
    service_spec_patch,
    should_sync_endpoints,
    should_sync_service,
    translate_endpoints,
    translate_service,
    virtual_needs_new_ip,
    virtual_service_patch,
    virtual_service_status_patch,
)

K = lambda key: translate_label_key(key, SETTINGS)  # noqa: E731


def svc(spec: dict[str, Any], name: str = "web", namespace: str = "team", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "uid": "u", "resourceVersion": "5", **meta},
            "spec": spec}


def test_translate_service() -> None:
    v = svc({"type": "NodePort", "clusterIP": "10.96.1.1", "clusterIPs": ["10.96.1.1"], "selector": {"app": "web"},
             "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30001}],
             "externalIPs": ["1.2.3.4"], "sessionAffinity": "None"})
    h = translate_service(v, SETTINGS)
    assert h["metadata"]["name"] == "web-x-team-x-vc"
    spec = h["spec"]
    assert spec["selector"] == {K("app"): "web", MANAGED_BY: "vc", NAMESPACE_LABEL: "team"}
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    for dropped in ("clusterIP", "clusterIPs", "externalIPs"):
        assert dropped not in spec
    assert spec["type"] == "NodePort"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"clusterIP": "None", "selector": {"app": "db"}}, "None"),
        ({"ports": [{"port": 1}]}, None),  # selector-less: host allocates, no selector
    ],
)
def test_headless_and_selectorless(spec: dict[str, Any], expected: str | None) -> None:
    h = translate_service(svc(spec), SETTINGS)
    assert h["spec"].get("clusterIP") == expected
    assert ("selector" in h["spec"]) == bool(spec.get("selector"))


@pytest.mark.parametrize(
    ("namespace", "name", "synced"),
    [("default", "kubernetes", False), ("default", "web", True), ("kube-system", "kube-dns", True)],
)
def test_api_service_not_synced(namespace: str, name: str, synced: bool) -> None:
    assert should_sync_service(svc({}, name=name, namespace=namespace)) is synced


def test_cluster_ip_flows_back_by_recreate() -> None:
    v = svc({"clusterIP": "10.96.1.1", "clusterIPs": ["10.96.1.1"], "type": "NodePort",
             "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30001}]}, creationTimestamp="t")
    h = {"spec": {"clusterIP": "10.96.7.7", "clusterIPs": ["10.96.7.7"],
                  "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31999}]}}
    assert virtual_needs_new_ip(v, h)
    body = recreated_virtual_service(v, h)
    assert body["spec"]["clusterIP"] == "10.96.7.7" and body["spec"]["clusterIPs"] == ["10.96.7.7"]
    assert body["spec"]["ports"][0]["nodePort"] == 31999
    assert "resourceVersion" not in body["metadata"] and "uid" not in body["metadata"]
    assert "creationTimestamp" not in body["metadata"]
    fallback = recreated_virtual_service(v, None)
    assert "clusterIP" not in fallback["spec"]


@pytest.mark.parametrize(
    ("vspec", "hspec", "needed"),
    [
        ({"clusterIP": "10.96.7.7"}, {"clusterIP": "10.96.7.7"}, False),
        ({"clusterIP": "None"}, {"clusterIP": "None"}, False),
        ({"type": "ExternalName", "externalName": "x"}, {"type": "ExternalName"}, False),
        ({"clusterIP": "10.96.1.1"}, {}, False),  # host not allocated yet
    ],
)
def test_no_recreate_needed(vspec: dict[str, Any], hspec: dict[str, Any], needed: bool) -> None:
    assert virtual_needs_new_ip(svc(vspec), {"spec": hspec}) is needed


def test_node_ports_and_load_balancer_flow_back() -> None:
    v = svc({"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30001}]})
    h = {"spec": {"ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]},
         "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}}
    assert virtual_service_patch(v, h) == {"spec": {"ports": [{"port": 80, "nodePort": 31000}]}}
    assert virtual_service_status_patch(v, h) == {"status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}}
    assert virtual_service_patch(svc({"ports": [{"port": 80}]}), h) is None


def test_service_update_keeps_host_fields() -> None:
    desired = translate_service(svc({"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}),
                                SETTINGS)
    actual = {"spec": {**desired["spec"], "clusterIP": "10.96.7.7", "clusterIPs": ["10.96.7.7"]}}
    assert service_spec_patch(desired, actual) is None
    changed = translate_service(svc({"selector": {"app": "api"}, "ports": [{"port": 81, "protocol": "TCP"}]}),
                                SETTINGS)
    patch = service_spec_patch(changed, actual)
    assert patch is not None
    assert patch["spec"]["selector"][K("app")] == "api"
    assert patch["spec"]["ports"] == [{"port": 81, "protocol": "TCP"}]
    assert "clusterIP" not in patch["spec"]


# ------------------------------------------------------------ Endpoints

def eps(subsets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext", "namespace": "team", "uid": "e"},
            "subsets": subsets}


@pytest.mark.parametrize(
    ("service", "synced"),
    [
        (svc({"ports": [{"port": 80}]}, name="ext"), True),
        (svc({"selector": {"app": "x"}}, name="ext"), False),
        (None, False),
        (svc({}, name="kubernetes", namespace="default"), False),
    ],
)
def test_endpoints_only_for_selectorless_services(service: dict[str, Any] | None, synced: bool) -> None:
    assert should_sync_endpoints(eps([]), service) is synced


def test_translate_endpoints() -> None:
    v = eps([{"addresses": [{"ip": "10.244.0.9", "targetRef": {"kind": "Pod", "name": "web", "namespace": "team",
                                                                "uid": "x"}},
                            {"ip": "192.168.1.1"}],
              "notReadyAddresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "Node", "name": "n"}}],
              "ports": [{"port": 80}]}])
    h = translate_endpoints(v, SETTINGS)
    assert h["metadata"]["name"] == "ext-x-team-x-vc"  # same as the host Service
    subset = h["subsets"][0]
    assert subset["addresses"][0] == {"ip": "10.244.0.9", "targetRef": {"kind": "Pod", "name": "web-x-team-x-vc",
                                                                        "namespace": "host-ns"}}
    assert subset["addresses"][1] == {"ip": "192.168.1.1"}
    assert subset["notReadyAddresses"] == [{"ip": "10.0.0.1"}]
    assert subset["ports"] == [{"port": 80}]
    assert endpoints_patch(h, h) is None
    assert endpoints_patch(translate_endpoints(eps([]), SETTINGS), h) == {"subsets": []}


@pytest.mark.parametrize(
    ("vspec", "wanted"),
    [
        ({"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [{"port": 80}]}, "10.96.0.20"),
        ({"clusterIP": "10.96.0.21", "ports": [{"port": 80}]}, "10.96.0.21"),
        ({"clusterIP": "None", "ports": [{"port": 80}]}, None),  # headless: nothing to ask for
        ({"type": "ExternalName", "externalName": "example.org"}, None),
        ({"ports": [{"port": 80}]}, None),  # not allocated yet
    ],
)
def test_host_ip_request_asks_for_the_virtual_ip(vspec: dict[str, Any], wanted: str | None) -> None:
    vsvc = svc(vspec)
    desired = translate_service(vsvc, SETTINGS)
    body = host_ip_request(vsvc, desired)
    if wanted is None:
        assert body is None
    else:
        assert body is not None and body["spec"]["clusterIP"] == wanted
        assert body["spec"].get("clusterIPs") == vspec.get("clusterIPs")
        assert "clusterIP" not in desired["spec"]  # the plain translation is left untouched


@pytest.mark.parametrize(
    ("vspec", "wanted"),
    [
        ({"type": "NodePort", "clusterIP": "10.96.0.20",
          "ports": [{"port": 80, "nodePort": 30080}, {"port": 80, "protocol": "UDP", "nodePort": 30081}]},
         [30080, 30081]),
        ({"type": "LoadBalancer", "clusterIP": "10.96.0.20", "ports": [{"port": 443, "nodePort": 31443}]}, [31443]),
        ({"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": [{"port": 80}]}, None),  # no nodePorts
        ({"type": "NodePort", "ports": [{"port": 80}]}, None),  # not allocated yet
    ],
)
def test_host_node_port_request_asks_for_the_virtual_node_ports(vspec: dict[str, Any],
                                                                 wanted: list[int] | None) -> None:
    vsvc = svc(vspec)
    desired = translate_service(vsvc, SETTINGS)
    assert all("nodePort" not in p for p in desired["spec"]["ports"])  # the plain translation lets the host choose
    body = host_node_port_request(vsvc, desired)
    if wanted is None:
        assert body is None
    else:
        assert body is not None and [p["nodePort"] for p in body["spec"]["ports"]] == wanted
        assert all("nodePort" not in p for p in desired["spec"]["ports"])  # untouched


@pytest.mark.parametrize(
    ("old", "new", "recreate"),
    [
        ({"type": "ExternalName", "externalName": "a.example"}, {"type": "ClusterIP", "clusterIP": "10.96.0.9"}, True),
        ({"type": "ClusterIP", "clusterIP": "10.96.0.9"}, {"type": "ExternalName", "externalName": "a.example"}, True),
        ({"type": "ExternalName", "externalName": "a.example"}, {"type": "ExternalName", "externalName": "b"}, False),
        ({"type": "ClusterIP", "clusterIP": "10.96.0.9"}, {"type": "NodePort", "clusterIP": "10.96.0.9"}, False),
        ({"type": "ClusterIP", "clusterIP": "10.96.0.9"}, {"type": "ClusterIP", "clusterIP": "None"}, True),
    ],
)
def test_needs_recreate_host(old: dict[str, Any], new: dict[str, Any], recreate: bool) -> None:
    actual = translate_service(svc({**old, "ports": [{"port": 80}]}), SETTINGS)
    desired = translate_service(svc({**new, "ports": [{"port": 80}]}), SETTINGS)
    assert needs_recreate_host(desired, actual) is recreate
