"""Users' EndpointSlices of selector-less Services (translate/endpointslices.py, parts/endpointslices.py): which
are copied, the host copy, its updates; the host controllers' own slices are never touched."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from syncer_testdata import SETTINGS
from test_syncer_loop import N, World
from vcluster_syncer import apiendpoints
from vcluster_syncer.kube import ENDPOINTS, ENDPOINTSLICES, SERVICES
from vcluster_syncer.translate.endpointslices import (
    endpoint_slice_patch,
    needs_recreate,
    service_key,
    should_sync_endpoint_slice,
    slices_of_service,
    translate_endpoint_slice,
)

SERVICE_NAME = "kubernetes.io/service-name"
SLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"


def service(name: str = "ext", namespace: str = "team", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace, "uid": "u"},
            "spec": {"ports": [{"name": "http", "port": 80}], **spec}}


def eslice(name: str = "ext-1", namespace: str = "team", service_name: str | None = "ext",
           managed_by: str | None = "e2e-example", endpoints: list[dict[str, Any]] | None = None,
           **fields: Any) -> dict[str, Any]:
    labels = {}
    if service_name is not None:
        labels[SERVICE_NAME] = service_name
    if managed_by is not None:
        labels[SLICE_MANAGED_BY] = managed_by
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": True}}] if endpoints is None
            else endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], **fields}


API_SLICE = next(obj for kind, obj in apiendpoints.manifests("10.244.0.7") if kind == ENDPOINTSLICES)


# ------------------------------------------------------------------ which slices are copied

@pytest.mark.parametrize(("vslice", "vsvc", "copied"), [
    (eslice(), service(), True),  # a user's slice of a selector-less Service
    (eslice(managed_by=None), service(), True),  # managed-by is optional
    (eslice(), service(type="ExternalName", externalName="example.com"), True),  # as its Endpoints would be
    (eslice(managed_by="endpointslice-controller.k8s.io"), service(), False),  # the virtual slice controller's
    (eslice(managed_by="endpointslicemirroring-controller.k8s.io"), service(), False),  # mirrored from Endpoints
    (eslice(), service(selector={"app": "web"}), False),  # the host's slice controller serves the host copy
    (eslice(), None, False),  # no such Service
    (eslice(service_name=None), service(), False),  # belongs to no Service
    (eslice(service_name="other"), service(), False),  # the Service given is not its own
    (eslice(namespace="other"), service(), False),  # nor is one of another namespace
    (API_SLICE, service("kubernetes", "default"), False),  # the virtual API server's (apiendpoints.py)
    (eslice("kubernetes", "default", "kubernetes"), service("kubernetes", "default"), False),
])
def test_which_slices_are_copied(vslice: dict[str, Any], vsvc: dict[str, Any] | None, copied: bool) -> None:
    assert should_sync_endpoint_slice(vslice, vsvc) is copied


@pytest.mark.parametrize(("vslice", "key"), [
    (eslice(), "team/ext"), (eslice(namespace="other", service_name="web"), "other/web"),
    (eslice(service_name=None), None), (eslice(service_name=""), None)])
def test_service_key(vslice: dict[str, Any], key: str | None) -> None:
    assert service_key(vslice) == key


def test_slices_of_service() -> None:
    slices = [eslice("b"), eslice("a"), eslice("c", service_name="web"), eslice("d", namespace="other"),
              eslice("e", service_name=None)]
    assert slices_of_service(slices, "team/ext") == ["team/a", "team/b"]
    assert slices_of_service(slices, "team/web") == ["team/c"]
    assert slices_of_service(slices, "team/none") == []


# ------------------------------------------------------------------ the host copy

VIRTUAL = {
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "ext-1", "namespace": "team", "uid": "s1", "resourceVersion": "7", "generation": 1,
                 "labels": {SERVICE_NAME: "ext", SLICE_MANAGED_BY: "e2e-example", "app": "x"},
                 "annotations": {"note": "n"},
                 "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "ext", "uid": "u"}]},
    "addressType": "IPv4",
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
    "endpoints": [
        {"addresses": ["10.244.0.9"], "conditions": {"ready": True, "serving": True, "terminating": False},
         "hostname": "web-0", "nodeName": "node1", "zone": "z1",
         "targetRef": {"kind": "Pod", "name": "web", "namespace": "team", "uid": "p1", "resourceVersion": "3"},
         "hints": {"forZones": [{"name": "z1"}], "forNodes": [{"name": "node1"}]},
         "deprecatedTopology": {"kubernetes.io/hostname": "node1"}},
        {"addresses": ["192.168.1.1"], "targetRef": {"kind": "Node", "name": "n"},
         "hints": {"forNodes": [{"name": "node1"}]}},
    ],
}
HOST = {
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {
        "name": "ext-1-x-team-x-vc", "namespace": "host-ns",
        "labels": {SERVICE_NAME: "ext-x-team-x-vc", SLICE_MANAGED_BY: "vcluster-syncer.pytest-vcluster.io",
                   "app": "x", "vcluster.loft.sh/managed-by": "vc", "vcluster.loft.sh/namespace": "team"},
        "annotations": {
            "note": "n",
            "vcluster.loft.sh/object-name": "ext-1", "vcluster.loft.sh/object-namespace": "team",
            "vcluster.loft.sh/object-uid": "s1", "vcluster.loft.sh/object-kind": "EndpointSlice",
            "vcluster.loft.sh/managed-annotations": "note",
            "vcluster.loft.sh/managed-labels": "app\nendpointslice.kubernetes.io/managed-by\n"
                                               "kubernetes.io/service-name\nvcluster.loft.sh/managed-by\n"
                                               "vcluster.loft.sh/namespace"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "vc", "uid": "svc-uid",
                             "controller": False, "blockOwnerDeletion": False}]},
    "addressType": "IPv4",
    "endpoints": [
        {"addresses": ["10.244.0.9"], "conditions": {"ready": True, "serving": True, "terminating": False},
         "hostname": "web-0", "nodeName": "node1", "zone": "z1",
         "targetRef": {"kind": "Pod", "name": "web-x-team-x-vc", "namespace": "host-ns"},
         "hints": {"forZones": [{"name": "z1"}]}},
        {"addresses": ["192.168.1.1"]},
    ],
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
}


def test_translate_endpoint_slice() -> None:
    before = copy.deepcopy(VIRTUAL)
    assert translate_endpoint_slice(VIRTUAL, SETTINGS) == HOST
    assert VIRTUAL == before  # not changed in place


def test_translate_empty_slice() -> None:
    out = translate_endpoint_slice(eslice(endpoints=[], ports=None), SETTINGS)
    assert (out["endpoints"], out["ports"]) == ([], [])


def _with(obj: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out.update(fields)
    return out


@pytest.mark.parametrize(("actual", "patch"), [
    (HOST, None),
    (_with(HOST, metadata={"name": "x", "resourceVersion": "9"}), None),  # metadata is compared generically
    (_with(HOST, endpoints=[{"addresses": ["10.244.0.1"]}]), {"endpoints": HOST["endpoints"]}),
    (_with(HOST, ports=[]), {"ports": HOST["ports"]}),
    (_with(HOST, endpoints=None, ports=None), {"endpoints": HOST["endpoints"], "ports": HOST["ports"]}),
])
def test_endpoint_slice_patch(actual: dict[str, Any], patch: dict[str, Any] | None) -> None:
    assert endpoint_slice_patch(HOST, actual) == patch


@pytest.mark.parametrize(("desired", "actual", "patch"), [
    ({"endpoints": [], "ports": []}, {}, None),  # the API server may leave empty lists out
    ({"endpoints": [], "ports": []}, {"endpoints": [{"addresses": ["1.1.1.1"]}]}, {"endpoints": []}),
])
def test_endpoint_slice_patch_empty(desired: dict[str, Any], actual: dict[str, Any],
                                    patch: dict[str, Any] | None) -> None:
    assert endpoint_slice_patch(desired, actual) == patch


@pytest.mark.parametrize(("actual_type", "recreate"), [("IPv4", False), ("IPv6", True), ("FQDN", True)])
def test_needs_recreate(actual_type: str, recreate: bool) -> None:
    assert needs_recreate(HOST, _with(HOST, addressType=actual_type)) is recreate


# ------------------------------------------------------------------ the loop

def host_slices(w: World) -> dict[str, dict[str, Any]]:
    return {name: w.host.get(ENDPOINTSLICES, name, N) for name in w.host.names(ENDPOINTSLICES, N)}


def slice_writes(w: World, since: int = 0) -> list[Any]:
    return [c for c in w.host.calls[since:] if c[0] in ("create", "patch", "delete") and c[1] == "endpointslices"]


@pytest.fixture
def world() -> World:
    w = World()
    w.virtual.create(SERVICES, service())
    w.virtual.create(SERVICES, service("web", selector={"app": "web"}))
    w.virtual.create(ENDPOINTSLICES, eslice())
    # what the virtual controllers make: the slice controller's for "web", the mirroring one's for "ext"
    w.virtual.create(ENDPOINTSLICES, eslice("web-abcde", service_name="web",
                                            managed_by="endpointslice-controller.k8s.io"))
    w.virtual.create(ENDPOINTSLICES, eslice("ext-fghij", managed_by="endpointslicemirroring-controller.k8s.io"))
    w.sync()
    return w


def test_only_users_slices_of_selectorless_services_reach_the_host(world: World) -> None:
    w = world
    assert list(host_slices(w)) == ["ext-1-x-team-x-vc"]
    hslice = host_slices(w)["ext-1-x-team-x-vc"]
    assert hslice["metadata"]["labels"][SERVICE_NAME] == "ext-x-team-x-vc"
    assert hslice["metadata"]["labels"][SLICE_MANAGED_BY] == "vcluster-syncer.pytest-vcluster.io"
    assert hslice["endpoints"] == [{"addresses": ["10.244.0.9"], "conditions": {"ready": True}}]
    assert w.host.get(SERVICES, "ext-x-team-x-vc", N) is not None


def test_a_selector_on_the_service_takes_the_copy_away_and_back(world: World) -> None:
    """Through the Service's events alone (no resync of every key)."""
    w = world
    w.virtual.patch(SERVICES, "ext", {"spec": {"selector": {"app": "ext"}}}, "team")
    w.syncer.relist_all()
    w.syncer.drain()
    assert host_slices(w) == {}
    w.virtual.patch(SERVICES, "ext", {"spec": {"selector": None}}, "team")
    w.syncer.relist_all()
    w.syncer.drain()
    assert list(host_slices(w)) == ["ext-1-x-team-x-vc"]


def test_updates_and_deletion_flow(world: World) -> None:
    w = world
    w.virtual.patch(ENDPOINTSLICES, "ext-1", {"endpoints": [{"addresses": ["10.244.0.10"]}],
                                              "metadata": {"labels": {"tier": "a"}}}, "team")
    w.sync()
    hslice = w.host.get(ENDPOINTSLICES, "ext-1-x-team-x-vc", N)
    assert hslice["endpoints"] == [{"addresses": ["10.244.0.10"]}]
    assert hslice["metadata"]["labels"]["tier"] == "a"
    w.virtual.delete(ENDPOINTSLICES, "ext-1", "team")
    w.sync()
    assert host_slices(w) == {}


def test_the_service_gone_takes_the_copy(world: World) -> None:
    w = world
    w.virtual.delete(SERVICES, "ext", "team")
    w.sync()
    assert host_slices(w) == {}


def test_a_slice_made_again_with_the_other_family_is_recreated(world: World) -> None:
    w = world
    w.virtual.delete(ENDPOINTSLICES, "ext-1", "team")
    w.virtual.create(ENDPOINTSLICES, eslice(addressType="IPv6", endpoints=[{"addresses": ["fd00::9"]}]))
    w.sync()
    assert w.host.get(ENDPOINTSLICES, "ext-1-x-team-x-vc", N)["addressType"] == "IPv6"


def test_the_host_controllers_slices_are_left_alone(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The host's slice controller's (for the host copy of "web": the Service's labels copied, managed-by=R
    included, no annotations) and its mirroring controller's (from our Endpoints copy: labels and annotations
    copied, so they name a virtual Endpoints): never patched, deleted or warned about, also across a restart."""
    w = world
    w.virtual.create(ENDPOINTS, {"metadata": {"name": "ext", "namespace": "team"},
                                 "subsets": [{"addresses": [{"ip": "192.168.5.5"}], "ports": [{"port": 80}]}]})
    w.sync()
    hep = w.host.get(ENDPOINTS, "ext-x-team-x-vc", N)
    controllers = {
        "web-x-team-x-vc-abcde": {
            "labels": {**w.host.get(SERVICES, "web-x-team-x-vc", N)["metadata"]["labels"],
                       SERVICE_NAME: "web-x-team-x-vc", SLICE_MANAGED_BY: "endpointslice-controller.k8s.io"}},
        "ext-x-team-x-vc-fghij": {
            "labels": {**hep["metadata"]["labels"], SERVICE_NAME: "ext-x-team-x-vc",
                       SLICE_MANAGED_BY: "endpointslicemirroring-controller.k8s.io"},
            "annotations": dict(hep["metadata"]["annotations"])},
    }
    for name, meta in controllers.items():
        w.host.create(ENDPOINTSLICES, {"metadata": {"name": name, "namespace": N, **meta}, "addressType": "IPv4",
                                       "endpoints": [{"addresses": ["10.244.0.3"]}]})
    before = {name: copy.deepcopy(host_slices(w)[name]) for name in controllers}
    calls = len(w.host.calls)
    with caplog.at_level(logging.INFO, logger="vcluster_syncer"):
        w.sync()
        w.restart()
        w.virtual.patch(SERVICES, "web", {"metadata": {"labels": {"x": "y"}}}, "team")
        w.sync()
    assert {name: host_slices(w)[name] for name in controllers} == before
    assert slice_writes(w, calls) == []
    assert not [r for r in caplog.records if "endpointslices" in r.getMessage()]
    assert sorted(host_slices(w)) == ["ext-1-x-team-x-vc", *sorted(controllers)]


def test_a_restart_neither_loses_nor_duplicates(world: World) -> None:
    w = world
    before = host_slices(w)
    calls = len(w.host.calls)
    w.restart()
    assert host_slices(w) == before
    assert slice_writes(w, calls) == []
