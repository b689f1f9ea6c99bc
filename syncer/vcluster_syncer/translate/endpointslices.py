"""EndpointSlices users make for a selector-less Service, copied to the host (kube-proxy routes by slices).

A selector-less Service may have its endpoints as an Endpoints object (copied by the Endpoints part: the host's
mirroring controller makes the host's slices from the copy) or as EndpointSlices only (the conformance specs
"... specified in multiple EndpointSlices"): nothing in a cluster turns slices into Endpoints, so those slices
themselves must reach the host. Which virtual slices are copied (``should_sync_endpoint_slice``):

* labelled ``kubernetes.io/service-name`` with a Service of the slice's namespace that is copied (not the
  virtual API server's ``default/kubernetes``, whose slice apiendpoints.py writes) and has no selector: the
  host's EndpointSlice controller makes the slices of the host copy of a Service with a selector;
* not managed by either virtual controller (``endpointslice.kubernetes.io/managed-by``): the EndpointSlice
  controller's are those of Services with a selector; the mirroring controller's are made from Endpoints, whose
  host copy the host's mirroring controller mirrors in turn.

The host copy (``translate_endpoint_slice``) has the host name of the slice, the usual translated metadata
(managed-by=R, the virtual object's annotations, owner Service R), ``kubernetes.io/service-name`` = the host
Service's name and ``managed-by`` = the syncer's (``contract.ENDPOINTSLICE_MANAGED_BY``), so neither host
controller touches it. addressType, ports and endpoints are copied: addresses are host pod IPs already, a
Pod's ``targetRef`` names its host copy (as in Endpoints), ``nodeName`` stays (virtual nodes have their host
node's name), ``zone`` and ``hints.forZones`` stay. Dropped: ``hints.forNodes`` (1.33's API server drops it
unless its alpha gate is on, so an update would never settle) and ``deprecatedTopology`` (the virtual node's
labels, deprecated).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from .. import contract
from .metadata import ANN_MANAGED_LABELS, host_metadata
from .names import host_name_for
from .services import API_SERVICE, should_sync_endpoints, translate_target_ref
from .settings import TranslatorSettings

#: the Service a slice belongs to (well-known label, discovery.k8s.io)
LABEL_SERVICE_NAME = contract.LABEL_SLICE_SERVICE_NAME
#: the controller that manages a slice; each controller touches only slices with its own value
LABEL_SLICE_MANAGED_BY = contract.LABEL_SLICE_MANAGED_BY
#: Endpoints carrying it ``true`` are not mirrored to slices
LABEL_SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
ENDPOINTSLICE_CONTROLLER = "endpointslice-controller.k8s.io"
MIRRORING_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
#: slices the virtual cluster's controllers make: never copied (module docstring)
VIRTUAL_CONTROLLERS = frozenset({ENDPOINTSLICE_CONTROLLER, MIRRORING_CONTROLLER})

#: fields of an endpoint copied to the host (the rest: module docstring)
ENDPOINT_FIELDS = ("addresses", "conditions", "hostname", "nodeName", "zone")


def service_key(vslice: Mapping[str, Any]) -> str | None:
    """``namespace/name`` of the Service the slice belongs to, None when it names none."""
    meta = vslice.get("metadata") or {}
    service = (meta.get("labels") or {}).get(LABEL_SERVICE_NAME)
    return f"{meta.get('namespace')}/{service}" if service else None


def slices_of_service(vslices: Iterable[Mapping[str, Any]], key: str) -> list[str]:
    """Keys of the slices that belong to Service ``key`` (``namespace/name``), sorted."""
    return sorted(f"{m.get('namespace')}/{m.get('name')}" for m in
                  ((s.get("metadata") or {}) for s in vslices if service_key(s) == key))


def should_sync_endpoint_slice(vslice: Mapping[str, Any], vsvc: Mapping[str, Any] | None) -> bool:
    """Whether a virtual slice gets a host copy (module docstring); ``vsvc`` is the Service that
    ``service_key(vslice)`` names, None if there is none."""
    meta = vslice.get("metadata") or {}
    labels = meta.get("labels") or {}
    if (meta.get("namespace"), meta.get("name")) == API_SERVICE or labels.get(LABEL_SLICE_MANAGED_BY) in \
            VIRTUAL_CONTROLLERS:
        return False
    smeta = (vsvc or {}).get("metadata") or {}
    if vsvc is None or service_key(vslice) != f"{smeta.get('namespace')}/{smeta.get('name')}":
        return False
    return should_sync_endpoints(vslice, vsvc)


def _translate_endpoint(endpoint: Mapping[str, Any], vns: str, settings: TranslatorSettings) -> dict[str, Any]:
    out = {k: copy.deepcopy(endpoint[k]) for k in ENDPOINT_FIELDS if endpoint.get(k) is not None}
    ref = translate_target_ref(endpoint["targetRef"], vns, settings) if endpoint.get("targetRef") else None
    if ref is not None:
        out["targetRef"] = ref
    zones = (endpoint.get("hints") or {}).get("forZones")
    if zones:
        out["hints"] = {"forZones": copy.deepcopy(zones)}
    return out


def translate_endpoint_slice(vslice: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any]:
    """The host copy of a virtual slice that ``should_sync_endpoint_slice`` accepts."""
    meta = vslice["metadata"]
    vns = meta["namespace"]
    hmeta = host_metadata(vslice, "EndpointSlice", host_name_for("EndpointSlice", meta["name"], vns, settings),
                          settings)
    hmeta["labels"][LABEL_SERVICE_NAME] = host_name_for("Service", meta["labels"][LABEL_SERVICE_NAME], vns, settings)
    hmeta["labels"][LABEL_SLICE_MANAGED_BY] = contract.ENDPOINTSLICE_MANAGED_BY
    hmeta["annotations"][ANN_MANAGED_LABELS] = "\n".join(sorted(hmeta["labels"]))
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": hmeta,
        "addressType": vslice.get("addressType"),
        "endpoints": [_translate_endpoint(e, vns, settings) for e in vslice.get("endpoints") or []],
        "ports": copy.deepcopy(vslice.get("ports") or []),
    }


def endpoint_slice_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """Merge patch bringing the host copy's endpoints and ports to ``desired`` (lists are replaced whole)."""
    patch = {field: copy.deepcopy(desired.get(field) or []) for field in ("endpoints", "ports")
             if (desired.get(field) or []) != (actual.get(field) or [])}
    return patch or None


def needs_recreate(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """addressType cannot change (a slice deleted and made again under its name with the other family)."""
    return desired.get("addressType") != actual.get("addressType")
