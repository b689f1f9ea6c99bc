"""Endpoints and EndpointSlice ``default/kubernetes`` of the virtual cluster: where the virtual API server is.

On a real cluster the API server writes them itself (its endpoint reconciler: its advertise address and
secure port, Endpoints labelled ``endpointslice.kubernetes.io/skip-mirror=true`` and an EndpointSlice of the
same name labelled ``kubernetes.io/service-name=kubernetes``). The virtual API server runs with
``--endpoint-reconciler-type=none`` (chart): its own choice of address would be right only by accident, and
the syncer already owns the rest of ``default/kubernetes`` (the Service gets the ClusterIP of host Service
``R``, see parts/services.py). So the syncer writes them (parts/endpoints.py ``KubernetesEndpoints``):

- the address is the IP of pod ``R-0`` (the syncer's own: the source address towards Service ``R``) and the
  port ``contract.API_PORT`` (6443, name ``https``, TCP): exactly what the host's Endpoints of Service ``R``
  list, i.e. where the virtual ``kubernetes`` ClusterIP (= ``R``'s) really leads, and what the API server's
  own reconciler would advertise (the pod's IP, its secure port);
- the Endpoints carry ``skip-mirror=true`` so the virtual controller-manager's EndpointSliceMirroring
  controller does not make a second slice of them, and the EndpointSlice carries
  ``endpointslice.kubernetes.io/managed-by`` = ``MANAGED_BY`` so neither the EndpointSlice controller nor the
  mirroring controller (each touches only slices with its own value) takes it over; it has no owner
  reference, so the re-creation of the Service (new ClusterIP) does not garbage-collect it;
- they are put back whenever they are deleted or differ (informer events), and never copied to the host
  (the Endpoints part copies Endpoints only of Services it copies, and ``default/kubernetes`` is not one).

The functions here are pure (tests/unit/syncer/test_syncer_kubernetes_endpoints.py).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from . import contract
from .coredns import differs
from .kube import ENDPOINTS, ENDPOINTSLICES, Kind
from .translate.endpointslices import LABEL_SERVICE_NAME, LABEL_SKIP_MIRROR, LABEL_SLICE_MANAGED_BY

NAMESPACE, NAME = "default", "kubernetes"
KEY = f"{NAMESPACE}/{NAME}"
PORT_NAME = "https"  # as the API server names it (and Service R's port)

#: our value of LABEL_SLICE_MANAGED_BY (the controllers' are endpointslice-controller.k8s.io and
#: endpointslicemirroring-controller.k8s.io); the host copies of users' slices carry it too
MANAGED_BY = contract.ENDPOINTSLICE_MANAGED_BY


def address_type(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def manifests(ip: str, port: int = contract.API_PORT) -> list[tuple[Kind, dict[str, Any]]]:
    """The virtual Endpoints and EndpointSlice ``default/kubernetes`` naming the API server at ``ip:port``,
    in the order they are applied."""
    ports = [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]
    endpoints = {
        "apiVersion": ENDPOINTS.api_version, "kind": ENDPOINTS.kind,
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {LABEL_SKIP_MIRROR: "true"}},
        "subsets": [{"addresses": [{"ip": ip}], "ports": copy.deepcopy(ports)}],
    }
    endpoint_slice = {
        "apiVersion": ENDPOINTSLICES.api_version, "kind": ENDPOINTSLICES.kind,
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {LABEL_SERVICE_NAME: NAME, LABEL_SLICE_MANAGED_BY: MANAGED_BY}},
        "addressType": address_type(ip),
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": copy.deepcopy(ports),
    }
    return [(ENDPOINTS, endpoints), (ENDPOINTSLICES, endpoint_slice)]


def needs_recreate(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """An EndpointSlice's addressType cannot change (e.g. an IPv4 slice while the pod's IP is IPv6)."""
    return "addressType" in desired and desired["addressType"] != actual.get("addressType")


def update_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch bringing ``actual`` to ``desired`` (None: nothing to do). Our labels are set (other
    labels stay); every other field we set is replaced whole when it lacks something we want or has more
    elements (an address someone added)."""
    patch: dict[str, Any] = {}
    labels = (desired.get("metadata") or {}).get("labels") or {}
    if differs(labels, (actual.get("metadata") or {}).get("labels")):
        patch["metadata"] = {"labels": dict(labels)}
    for field, value in desired.items():
        if field in ("apiVersion", "kind", "metadata", "addressType"):
            continue
        if differs(value, actual.get(field)):
            patch[field] = copy.deepcopy(value)
    return patch or None
