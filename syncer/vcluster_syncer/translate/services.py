"""Services and the Endpoints of selector-less Services.

Direction of each field:
  * virtual -> host: type, ports (without nodePort), selector (translated), session affinity, traffic
    policies, IP families, publishNotReadyAddresses, load balancer settings.
  * host -> virtual: spec.clusterIP(s) (the host allocates the IP that really routes; the virtual
    Service is re-created with it), nodePorts (the host allocates them too), status.loadBalancer. The host
    copy is first created asking for the virtual Service's ClusterIP and nodePorts (host_ip_request,
    host_node_port_request), so that usually nothing has to move.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .metadata import host_metadata, strip_runtime_metadata, translate_selector_map
from .names import host_name_for
from .settings import TranslatorSettings

# The virtual API server owns default/kubernetes (it points at itself); it is never copied to the host.
API_SERVICE = ("default", "kubernetes")

COPIED_SPEC_FIELDS = (
    "type",
    "sessionAffinity",
    "sessionAffinityConfig",
    "publishNotReadyAddresses",
    "externalTrafficPolicy",
    "internalTrafficPolicy",
    "ipFamilies",
    "ipFamilyPolicy",
    "loadBalancerClass",
    "loadBalancerSourceRanges",
    "allocateLoadBalancerNodePorts",
    "externalName",
    "trafficDistribution",
)


def should_sync_service(vsvc: Mapping[str, Any]) -> bool:
    meta = vsvc.get("metadata") or {}
    return (meta.get("namespace"), meta.get("name")) != API_SERVICE


def is_headless(svc: Mapping[str, Any]) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def translate_service(vsvc: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any]:
    meta, vspec = vsvc["metadata"], vsvc.get("spec") or {}
    vns = meta["namespace"]
    spec: dict[str, Any] = {k: copy.deepcopy(vspec[k]) for k in COPIED_SPEC_FIELDS if vspec.get(k) is not None}
    ports = []
    for port in vspec.get("ports") or []:
        port = dict(port)
        # nodePorts are allocated by the virtual API server from the same range the host uses, without
        # knowing the host's allocations: let the host allocate, and copy its choice back.
        port.pop("nodePort", None)
        ports.append(port)
    if ports:
        spec["ports"] = ports
    if vspec.get("selector"):
        # Select the host copies of this virtual namespace's pods (see metadata.py for the label scheme).
        spec["selector"] = translate_selector_map(vspec["selector"], vns, settings)
    if is_headless(vsvc):
        spec["clusterIP"] = "None"  # headless stays headless; otherwise the host allocates the IP
    # Dropped: externalIPs. Host-side external IPs would capture traffic for arbitrary addresses on every
    # host node (CVE-2020-8554); a virtual cluster user must not be able to do that.
    # Dropped: loadBalancerIP (deprecated, a host-level decision) and healthCheckNodePort (host allocates).
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": host_metadata(vsvc, "Service", host_name_for("Service", meta["name"], vns, settings), settings),
        "spec": spec,
    }


def _comparable_ports(ports: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for port in ports or []:
        port = {k: v for k, v in port.items() if k != "nodePort"}
        port.setdefault("protocol", "TCP")
        out.append(port)
    return out


def service_spec_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """Merge-patch bringing the host Service spec to ``desired`` (host-owned fields are left alone)."""
    dspec, aspec = desired.get("spec") or {}, actual.get("spec") or {}
    patch: dict[str, Any] = {}
    for field in ("type", "sessionAffinity", "publishNotReadyAddresses", "externalName", "internalTrafficPolicy",
                  "externalTrafficPolicy", "loadBalancerSourceRanges", "trafficDistribution"):
        if field in dspec and dspec[field] != aspec.get(field):
            patch[field] = dspec[field]
    if (dspec.get("selector") or None) != (aspec.get("selector") or None):
        patch["selector"] = dspec.get("selector")
    if _comparable_ports(dspec.get("ports")) != _comparable_ports(aspec.get("ports")):
        # keep the host's nodePorts for ports that stay
        host_node_ports = {
            (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in aspec.get("ports") or []
        }
        ports = []
        for port in dspec.get("ports") or []:
            port = dict(port)
            node_port = host_node_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if node_port and dspec.get("type") in ("NodePort", "LoadBalancer"):
                port["nodePort"] = node_port
            ports.append(port)
        patch["ports"] = ports
    return {"spec": patch} if patch else None


def host_ip_request(vsvc: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """``desired`` asking the host for the virtual Service's ClusterIP(s), or None when there is none to ask
    for (headless, ExternalName, not allocated yet)."""
    vspec = vsvc.get("spec") or {}
    ip = vspec.get("clusterIP")
    if not ip or ip == "None" or vspec.get("type") == "ExternalName" or is_headless(desired):
        return None
    body = copy.deepcopy(dict(desired))
    body["spec"]["clusterIP"] = ip
    if vspec.get("clusterIPs"):
        body["spec"]["clusterIPs"] = list(vspec["clusterIPs"])
    return body


def host_node_port_request(vsvc: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any] | None:
    """``body`` also asking the host for the nodePorts the virtual API server allocated (NodePort and
    LoadBalancer Services), or None when there are none. A client reads the nodePort from the create
    response (the conformance spec "functioning NodePort service" dials it at once): it must be the one
    that works on the host, not one the syncer replaces moments later."""
    vspec = vsvc.get("spec") or {}
    if vspec.get("type") not in ("NodePort", "LoadBalancer"):
        return None
    out = copy.deepcopy(dict(body))
    return out if _copy_node_ports(out.setdefault("spec", {}), vspec) else None


def _external_name(svc: Mapping[str, Any]) -> bool:
    return (svc.get("spec") or {}).get("type") == "ExternalName"


def needs_recreate_host(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Headless-ness (clusterIP None) and IP families cannot change in place. A change to or from
    ExternalName is made by re-creating too: an ExternalName Service that becomes ClusterIP/NodePort would
    get new addresses from the host in place, while the client holds the ones of its update response (the
    conformance specs "change the type from ExternalName to ClusterIP/NodePort" dial those at once); the new
    host copy asks for them (host_ip_request, host_node_port_request)."""
    return is_headless(desired) != is_headless(actual) or _external_name(desired) != _external_name(actual)


def virtual_needs_new_ip(vsvc: Mapping[str, Any], hsvc: Mapping[str, Any]) -> bool:
    """Does the virtual Service have to be re-created with the host's ClusterIP?"""
    vspec, hspec = vsvc.get("spec") or {}, hsvc.get("spec") or {}
    host_ip = hspec.get("clusterIP")
    if not host_ip or host_ip == "None" or vspec.get("type") == "ExternalName":
        return False
    return bool(vspec.get("clusterIP") != host_ip)


def recreated_virtual_service(vsvc: Mapping[str, Any], hsvc: Mapping[str, Any] | None) -> dict[str, Any]:
    """Body for re-creating the virtual Service with the host's ClusterIP(s) (``hsvc`` None: let it allocate)."""
    out = strip_runtime_metadata(vsvc)
    spec = out.setdefault("spec", {})
    if hsvc is None:
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
        return out
    hspec = hsvc.get("spec") or {}
    spec["clusterIP"] = hspec.get("clusterIP")
    if hspec.get("clusterIPs"):
        spec["clusterIPs"] = list(hspec["clusterIPs"])
    else:
        spec.pop("clusterIPs", None)
    _copy_node_ports(spec, hspec)
    return out


def _copy_node_ports(vspec: dict[str, Any], hspec: Mapping[str, Any]) -> bool:
    """Sets the nodePorts of ``vspec``'s ports to those of ``hspec``'s same port and protocol (either way:
    host -> virtual, or virtual -> a host body); True if any changed."""
    by_key = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in hspec.get("ports") or []}
    changed = False
    for port in vspec.get("ports") or []:
        node_port = by_key.get((port.get("port"), port.get("protocol", "TCP")))
        if node_port and port.get("nodePort") != node_port:
            port["nodePort"] = node_port
            changed = True
    return changed


def virtual_service_patch(vsvc: Mapping[str, Any], hsvc: Mapping[str, Any]) -> dict[str, Any] | None:
    """nodePorts the host allocated (spec patch on the virtual Service), or None."""
    vspec = copy.deepcopy(vsvc.get("spec") or {})
    if vspec.get("type") not in ("NodePort", "LoadBalancer"):
        return None
    if _copy_node_ports(vspec, hsvc.get("spec") or {}):
        return {"spec": {"ports": vspec["ports"]}}
    return None


def virtual_service_status_patch(vsvc: Mapping[str, Any], hsvc: Mapping[str, Any]) -> dict[str, Any] | None:
    """status.loadBalancer of the host Service (its real ingress IPs)."""
    want = (hsvc.get("status") or {}).get("loadBalancer") or {}
    have = (vsvc.get("status") or {}).get("loadBalancer") or {}
    if want == have:
        return None
    return {"status": {"loadBalancer": want}}


# ---------------------------------------------------------------- Endpoints

def should_sync_endpoints(vep: Mapping[str, Any], vsvc: Mapping[str, Any] | None) -> bool:
    """Only Endpoints of a selector-less Service are user-made; others the host computes from host pods."""
    if vsvc is None or not should_sync_service(vsvc):
        return False
    return not (vsvc.get("spec") or {}).get("selector")


def translate_target_ref(ref: Mapping[str, Any], vns: str, settings: TranslatorSettings) -> dict[str, Any] | None:
    """The host form of the ``targetRef`` of an Endpoints address or an EndpointSlice endpoint (``vns``: the
    namespace of the Endpoints or slice): a Pod's names its host copy (host name, namespace N, without the
    virtual pod's uid and resourceVersion); any other names a virtual object the host does not have: None."""
    if ref.get("kind") != "Pod" or not ref.get("name"):
        return None
    out = {k: v for k, v in ref.items() if k not in ("uid", "resourceVersion")}
    out["name"] = host_name_for("Pod", ref["name"], ref.get("namespace") or vns, settings)
    out["namespace"] = settings.host_namespace
    return out


def _translate_address(address: Mapping[str, Any], vns: str, settings: TranslatorSettings) -> dict[str, Any]:
    out = dict(address)  # nodeName as it is: virtual nodes have their host node's name
    if address.get("targetRef"):
        ref = translate_target_ref(address["targetRef"], vns, settings)
        if ref is None:
            out.pop("targetRef")
        else:
            out["targetRef"] = ref
    return out


def translate_endpoints(vep: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any]:
    meta = vep["metadata"]
    vns = meta["namespace"]
    subsets = []
    for subset in vep.get("subsets") or []:
        new = dict(subset)
        for field in ("addresses", "notReadyAddresses"):
            if subset.get(field):
                new[field] = [_translate_address(a, vns, settings) for a in subset[field]]
        subsets.append(new)
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        # Same name as the host Service: that is how Endpoints belong to their Service.
        "metadata": host_metadata(vep, "Endpoints", host_name_for("Service", meta["name"], vns, settings), settings),
    }
    if subsets:
        out["subsets"] = subsets
    return out


def endpoints_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    if (desired.get("subsets") or []) == (actual.get("subsets") or []):
        return None
    return {"subsets": desired.get("subsets") or []}
