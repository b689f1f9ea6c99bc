"""The virtual cluster's own Endpoints and EndpointSlice default/kubernetes (vcluster_syncer/apiendpoints.py and
parts/endpoints.py KubernetesEndpoints): pod R-0's IP and port 6443, put back when changed or deleted, never on
the host; and the Endpoints part leaving the host endpoints controller's Endpoints alone, quietly."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from test_syncer_loop import N, World
from vcluster_syncer import apiendpoints, contract
from vcluster_syncer.kube import ENDPOINTS, ENDPOINTSLICES, SERVICES
from vcluster_syncer.parts import default_parts
from vcluster_syncer.parts.endpoints import (
    HOST_CONTROLLER,
    HOST_CONTROLLER_LABEL,
    KubernetesEndpoints,
    made_by_host_controller,
    own_address,
)
from vcluster_syncer.syncer import Syncer
from vcluster_syncer.translate.metadata import virtual_ref

IP = "10.244.0.7"


def by_kind(ip: str = IP) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for _, obj in apiendpoints.manifests(ip)}


# ------------------------------------------------------------------ pure functions

@pytest.mark.parametrize(("api_service_ip", "address"), [
    ("127.0.0.1", "127.0.0.1"),  # the source address the kernel picks towards that IP (in R-0: the pod's IP)
    ("", ""),  # no Service R known (not in a pod): nothing is written
])
def test_own_address(api_service_ip: str, address: str) -> None:
    assert own_address(SimpleNamespace(api_service_ip=api_service_ip)) == address  # type: ignore[arg-type]


@pytest.mark.parametrize(("ip", "family"), [(IP, "IPv4"), ("fd00:10:244::7", "IPv6")])
def test_manifests(ip: str, family: str) -> None:
    made = apiendpoints.manifests(ip)
    assert [(kind.kind, obj["metadata"]["namespace"], obj["metadata"]["name"]) for kind, obj in made] == [
        ("Endpoints", "default", "kubernetes"), ("EndpointSlice", "default", "kubernetes")]
    for kind, obj in made:
        assert (obj["apiVersion"], obj["kind"]) == (kind.api_version, kind.kind)
    eps, eps_slice = (obj for _, obj in made)
    # as the API server's own reconciler writes them: its address, its secure port named https
    assert eps["subsets"] == [{"addresses": [{"ip": ip}],
                               "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    assert contract.API_PORT == 6443
    assert eps["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    assert eps_slice["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes",
                                               "endpointslice.kubernetes.io/managed-by": apiendpoints.MANAGED_BY}
    assert apiendpoints.MANAGED_BY not in ("endpointslice-controller.k8s.io",
                                           "endpointslicemirroring-controller.k8s.io")
    assert eps_slice["addressType"] == family
    assert eps_slice["endpoints"] == [{"addresses": [ip], "conditions": {"ready": True}}]
    assert eps_slice["ports"] == [{"name": "https", "port": 6443, "protocol": "TCP"}]
    assert "ownerReferences" not in eps_slice["metadata"]  # survives the re-creation of the Service
    assert slice_matches_endpoints(eps, [eps_slice])


def test_manifests_are_fresh_copies() -> None:
    a, b = by_kind(), by_kind()
    a["Endpoints"]["subsets"][0]["ports"][0]["port"] = 1
    a["EndpointSlice"]["ports"][0]["port"] = 1
    assert b["Endpoints"]["subsets"][0]["ports"][0]["port"] == 6443
    assert b["EndpointSlice"]["ports"][0]["port"] == 6443


def _served(obj: dict[str, Any], **extra_labels: str) -> dict[str, Any]:
    """As the API server returns it: metadata and defaults added."""
    out = copy.deepcopy(obj)
    out["metadata"].update(uid="u1", resourceVersion="5", creationTimestamp="2026-01-01T00:00:00Z")
    out["metadata"]["labels"].update(extra_labels)
    if out["kind"] == "EndpointSlice":
        for endpoint in out["endpoints"]:
            endpoint["conditions"].update(serving=True, terminating=False)
    return out


def _with(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    target = out
    for step in path[:-1]:
        target = target[step]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


_DROP = object()
EPS, SLICE = by_kind()["Endpoints"], by_kind()["EndpointSlice"]


@pytest.mark.parametrize(("desired", "actual", "expected"), [
    # as served, with more labels of someone else: nothing to do
    (EPS, _served(EPS), None),
    (SLICE, _served(SLICE, team="x"), None),
    # our label removed or changed: set again, other labels stay (merge patch)
    (EPS, _with(_served(EPS), ("metadata", "labels"), {}),
     {"metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}}),
    (SLICE, _with(_served(SLICE), ("metadata", "labels", "endpointslice.kubernetes.io/managed-by"),
                  "endpointslicemirroring-controller.k8s.io"),
     {"metadata": {"labels": dict(SLICE["metadata"]["labels"])}}),
    # another address, an address more, another port, no subsets: the whole list again
    (EPS, _with(_served(EPS), ("subsets", 0, "addresses"), [{"ip": "10.244.0.99"}]), {"subsets": EPS["subsets"]}),
    (EPS, _with(_served(EPS), ("subsets", 0, "addresses"), [{"ip": IP}, {"ip": "10.244.0.99"}]),
     {"subsets": EPS["subsets"]}),
    (EPS, _with(_served(EPS), ("subsets", 0, "ports", 0, "port"), 443), {"subsets": EPS["subsets"]}),
    (EPS, _with(_served(EPS), ("subsets",), _DROP), {"subsets": EPS["subsets"]}),
    (SLICE, _with(_served(SLICE), ("endpoints", 0, "conditions", "ready"), False), {"endpoints": SLICE["endpoints"]}),
    (SLICE, _with(_served(SLICE), ("endpoints",), []), {"endpoints": SLICE["endpoints"]}),
    (SLICE, _with(_served(SLICE), ("ports", 0, "name"), "http"), {"ports": SLICE["ports"]}),
])
def test_update_patch(desired: dict[str, Any], actual: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert apiendpoints.update_patch(desired, actual) == expected


@pytest.mark.parametrize(("desired", "actual", "recreate"), [
    (SLICE, _served(SLICE), False),
    (SLICE, _with(_served(SLICE), ("addressType",), "IPv6"), True),  # addressType is immutable
    (EPS, _served(EPS), False),
])
def test_needs_recreate(desired: dict[str, Any], actual: dict[str, Any], recreate: bool) -> None:
    assert apiendpoints.needs_recreate(desired, actual) is recreate


def slice_matches_endpoints(endpoints: Mapping[str, Any], slices: list[Mapping[str, Any]]) -> bool:
    """The tests' oracle, what conformance checks ("should have Endpoints and EndpointSlices pointing to API
    Server"): the set of addresses (ready and not) and of ports of the Endpoints equals that of the slices of their
    address family."""
    ep_addresses: set[str] = set()
    ep_ports: set[int] = set()
    for subset in endpoints.get("subsets") or []:
        for field in ("addresses", "notReadyAddresses"):
            ep_addresses.update(a.get("ip") for a in subset.get(field) or [])
        ep_ports.update(p.get("port") for p in subset.get("ports") or [])
    family = apiendpoints.address_type(next(iter(ep_addresses), "") or "")
    sl_addresses: set[str] = set()
    sl_ports: set[int] = set()
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType") != family:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            sl_addresses.update(endpoint.get("addresses") or [])
        sl_ports.update(p.get("port") for p in endpoint_slice.get("ports") or [] if p.get("port") is not None)
    return bool(ep_addresses) and ep_addresses == sl_addresses and ep_ports == sl_ports


@pytest.mark.parametrize(("endpoints", "slices", "equal"), [
    (EPS, [SLICE], True),
    (EPS, [SLICE, _with(SLICE, ("addressType",), "IPv6")], True),  # other families are not compared
    (EPS, [], False),
    (EPS, [_with(SLICE, ("endpoints", 0, "addresses"), ["10.244.0.99"])], False),
    (EPS, [_with(SLICE, ("ports", 0, "port"), 443)], False),
    ({"subsets": [{"notReadyAddresses": [{"ip": IP}], "ports": [{"port": 6443}]}]}, [SLICE], True),
    ({"subsets": []}, [SLICE], False),
])
def test_slice_matches_endpoints(endpoints: dict[str, Any], slices: list[dict[str, Any]], equal: bool) -> None:
    assert slice_matches_endpoints(endpoints, slices) is equal


@pytest.mark.parametrize(("labels", "annotations", "host_controllers"), [
    ({HOST_CONTROLLER_LABEL: HOST_CONTROLLER, "vcluster.loft.sh/managed-by": "vc"}, {}, True),
    ({"vcluster.loft.sh/managed-by": "vc"}, {}, False),  # not recognisably the controller's: left alone, warned
    ({HOST_CONTROLLER_LABEL: HOST_CONTROLLER}, {"vcluster.loft.sh/object-name": "web",
                                                "vcluster.loft.sh/object-namespace": "team"}, False),  # ours
])
def test_made_by_host_controller(labels: dict[str, str], annotations: dict[str, str], host_controllers: bool) -> None:
    assert made_by_host_controller({"metadata": {"labels": labels, "annotations": annotations}}) is host_controllers


# ------------------------------------------------------------------ the loop: a virtual and a host API server

class PodWorld(World):
    """World whose syncer runs in a pod R-0 with IP ``ip`` (the address source is the one thing faked)."""

    def __init__(self, ip: str = IP) -> None:
        self.ip = ip
        super().__init__()

    def new_syncer(self) -> Syncer:
        syncer = Syncer(self.settings, self.virtual, self.host, virtual_ca_pem="VIRTUAL-CA",
                        api_service_ip=self.api_ip, clock=self.clock)
        for part in default_parts(self.settings):
            syncer.add_part(KubernetesEndpoints(address=lambda ctx: self.ip)
                            if isinstance(part, KubernetesEndpoints) else part)
        return syncer


def world_with_pod(ip: str = IP) -> World:
    w = PodWorld(ip)
    # what the virtual API server makes at start (the syncer gives it Service R's ClusterIP)
    w.virtual.create(SERVICES, {"metadata": {"name": "kubernetes", "namespace": "default"},
                                "spec": {"clusterIP": "10.96.1.1", "ports": [{"name": "https", "port": 443,
                                                                               "targetPort": 6443}]}})
    w.sync()
    return w


def virtual_pair(w: World) -> tuple[dict[str, Any], dict[str, Any]]:
    return w.virtual.get(ENDPOINTS, "kubernetes", "default"), w.virtual.get(ENDPOINTSLICES, "kubernetes", "default")


def assert_points_at_pod(w: World, ip: str = IP) -> None:
    eps, eps_slice = virtual_pair(w)
    assert eps is not None and eps_slice is not None
    assert apiendpoints.update_patch(by_kind(ip)["Endpoints"], eps) is None
    assert apiendpoints.update_patch(by_kind(ip)["EndpointSlice"], eps_slice) is None
    assert slice_matches_endpoints(eps, [eps_slice])
    assert w.virtual.get(SERVICES, "kubernetes", "default")["spec"]["clusterIP"] == w.api_ip


def assert_nothing_on_host(w: World) -> None:
    for plural, _ns, name in w.host.objects:
        assert "kubernetes-x-default" not in name, (plural, name)
    for obj in w.host.objects.values():
        assert virtual_ref(obj) is None or virtual_ref(obj)[1:3] != ("default", "kubernetes"), obj


def test_written_at_start_and_never_copied() -> None:
    w = world_with_pod()
    assert_points_at_pod(w)
    assert_nothing_on_host(w)


def test_deleted_or_changed_come_back() -> None:
    w = world_with_pod()
    w.virtual.delete(ENDPOINTS, "kubernetes", "default")
    w.virtual.delete(ENDPOINTSLICES, "kubernetes", "default")
    w.sync()
    assert_points_at_pod(w)
    w.virtual.patch(ENDPOINTS, "kubernetes", {"subsets": [{"addresses": [{"ip": "1.2.3.4"}], "ports": [{"port": 1}]}]},
                    "default")
    w.virtual.patch(ENDPOINTSLICES, "kubernetes", {"metadata": {"labels": {
        "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"}},
        "endpoints": [{"addresses": ["1.2.3.4"]}]}, "default")
    w.sync()
    assert_points_at_pod(w)
    assert_nothing_on_host(w)


def test_a_restart_changes_nothing() -> None:
    w = world_with_pod()
    before = virtual_pair(w)
    writes = len(w.virtual.log)
    w.restart()
    assert virtual_pair(w) == before
    assert len(w.virtual.log) == writes


def test_slice_of_the_other_family_is_recreated() -> None:
    w = world_with_pod()
    w.virtual.delete(ENDPOINTSLICES, "kubernetes", "default")
    w.virtual.create(ENDPOINTSLICES, _with(by_kind()["EndpointSlice"], ("addressType",), "IPv6"))
    w.sync()
    assert_points_at_pod(w)


def test_without_the_pods_address_nothing_is_written(caplog: pytest.LogCaptureFixture) -> None:
    w = PodWorld("")
    with caplog.at_level(logging.WARNING, logger="vcluster_syncer"):
        w.sync()
        w.syncer.enqueue_all()
        w.syncer.drain()
    assert virtual_pair(w) == (None, None)
    assert len([r for r in caplog.records if "not known" in r.getMessage()]) == 1  # said once


def test_written_once_the_service_has_service_rs_cluster_ip() -> None:
    """Not before: re-creating the Service lets the endpoints controller delete the old one's Endpoints."""
    w = PodWorld()
    w.sync()
    assert virtual_pair(w) == (None, None)  # the API server has not made default/kubernetes yet
    w.virtual.create(SERVICES, {"metadata": {"name": "kubernetes", "namespace": "default"},
                                "spec": {"clusterIP": "10.96.1.1", "ports": [{"name": "https", "port": 443}]}})
    w.sync()
    assert_points_at_pod(w)
    svc_writes = [e for e in w.virtual.log if e[1] == "services" and e[3]["metadata"]["name"] == "kubernetes"]
    eps_writes = [e for e in w.virtual.log if e[1] == "endpoints" and e[3]["metadata"]["name"] == "kubernetes"]
    assert eps_writes[0][0] > svc_writes[-1][0]  # after the re-creation
    assert [e[2] for e in eps_writes] == ["ADDED"]


def test_the_default_part_finds_its_own_address() -> None:
    [part] = [p for p in default_parts(World().settings) if isinstance(p, KubernetesEndpoints)]
    assert part.address is own_address


# ------------------------------------------------------------------ Endpoints of Services with a selector

def host_controller_endpoints(w: World, name: str = "web-x-team-x-vc") -> dict[str, Any]:
    """What the host's endpoints controller makes for the host copy of a Service with a selector: the host
    Service's name and labels (managed-by=R included, so the syncer's host informer sees it), its own label."""
    return w.host.create(ENDPOINTS, {"metadata": {"name": name, "namespace": N, "labels": {
        "vcluster.loft.sh/managed-by": "vc", "vcluster.loft.sh/namespace": "team",
        HOST_CONTROLLER_LABEL: HOST_CONTROLLER}}, "subsets": [{"addresses": [{"ip": "10.244.0.50"}],
                                                               "ports": [{"port": 80}]}]})


def test_endpoints_of_a_service_with_selector_are_left_alone_quietly(caplog: pytest.LogCaptureFixture) -> None:
    w = World()
    w.virtual.create(SERVICES, {"metadata": {"name": "web", "namespace": "team"},
                                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    w.sync()
    w.virtual.create(ENDPOINTS, {"metadata": {"name": "web", "namespace": "team"},
                                 "subsets": [{"addresses": [{"ip": "10.244.0.50"}], "ports": [{"port": 80}]}]})
    hobj = host_controller_endpoints(w)
    with caplog.at_level(logging.INFO, logger="vcluster_syncer"):
        w.sync()
        w.syncer.enqueue_all()
        w.syncer.drain()
    about_web = [r.getMessage() for r in caplog.records if r.getMessage().startswith("endpoints team/web")]
    assert about_web == []
    assert w.host.get(ENDPOINTS, "web-x-team-x-vc", N) == hobj  # untouched


def test_service_losing_its_selector_gets_the_users_endpoints_on_the_host() -> None:
    w = World()
    w.virtual.create(SERVICES, {"metadata": {"name": "web", "namespace": "team"},
                                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    w.sync()
    host_controller_endpoints(w)
    w.virtual.patch(SERVICES, "web", {"spec": {"selector": None}}, "team")
    w.virtual.create(ENDPOINTS, {"metadata": {"name": "web", "namespace": "team"},
                                 "subsets": [{"addresses": [{"ip": "192.168.5.5"}], "ports": [{"port": 80}]}]})
    w.sync()
    hobj = w.host.get(ENDPOINTS, "web-x-team-x-vc", N)
    assert virtual_ref(hobj)[:3] == ("Endpoints", "team", "web")
    assert hobj["subsets"][0]["addresses"] == [{"ip": "192.168.5.5"}]


def test_endpoints_of_someone_else_still_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    w = World()
    w.virtual.create(SERVICES, {"metadata": {"name": "ext", "namespace": "team"}, "spec": {"ports": [{"port": 80}]}})
    w.sync()
    w.host.create(ENDPOINTS, {"metadata": {"name": "ext-x-team-x-vc", "namespace": N,
                                           "labels": {"vcluster.loft.sh/managed-by": "vc"}}})
    w.virtual.create(ENDPOINTS, {"metadata": {"name": "ext", "namespace": "team"},
                                 "subsets": [{"addresses": [{"ip": "192.168.5.5"}], "ports": [{"port": 80}]}]})
    with caplog.at_level(logging.WARNING, logger="vcluster_syncer"):
        w.sync()
    assert any("belongs to None" in r.getMessage() for r in caplog.records)
