"""Endpoints of selector-less Services (the host's endpoints controller makes the others), and the virtual
cluster's own Endpoints and EndpointSlice ``default/kubernetes`` (apiendpoints.py), never copied."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .. import apiendpoints, contract
from ..context import VIRTUAL, Context, UnknownPart
from ..coredns import own_ip
from ..kube import ENDPOINTS, ENDPOINTSLICES, SERVICES, AlreadyExists, Kind
from ..translate import services
from ..translate.metadata import virtual_ref
from ..translate.names import host_name_for
from .base import Obj, Part, VirtualToHost, meta, split_key
from .services import Services

log = logging.getLogger(__name__)

#: label the host's endpoints controller (v1.33+) puts on the Endpoints it makes for a Service with a selector
HOST_CONTROLLER_LABEL = "endpoints.kubernetes.io/managed-by"
HOST_CONTROLLER = "endpoint-controller"


def made_by_host_controller(hobj: Mapping[str, Any]) -> bool:
    """Host Endpoints the host's endpoints controller made for the host copy of a Service with a selector.

    They have the host Service's name (= the name our copy would have) and its labels, ``managed-by=R``
    included (the controller copies the Service's labels), so the syncer's label-filtered host informer sees
    them; but they carry none of the syncer's object annotations."""
    labels = (hobj.get("metadata") or {}).get("labels") or {}
    return virtual_ref(hobj) is None and labels.get(HOST_CONTROLLER_LABEL) == HOST_CONTROLLER


class Endpoints(VirtualToHost):
    name = "endpoints"
    kind = ENDPOINTS

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        # whether Endpoints are synced depends on their Service having a selector
        ctx.informer(VIRTUAL, SERVICES).add_handler(lambda key, old, new: ctx.enqueue(Endpoints, key))

    def wanted(self, ctx: Context, vobj: Obj) -> bool:
        return services.should_sync_endpoints(vobj, ctx.vstore(SERVICES).get(f"{meta(vobj)['namespace']}/"
                                                                             f"{meta(vobj)['name']}"))

    def host_name(self, ctx: Context, namespace: str, name: str) -> str:
        return host_name_for("Service", name, namespace, ctx.settings)  # exactly the host Service's name

    def to_host(self, ctx: Context, vobj: Obj) -> Obj:
        return services.translate_endpoints(vobj, ctx.settings)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return services.endpoints_patch(desired, actual)

    def reconcile(self, ctx: Context, key: str) -> None:
        # Every virtual Endpoints and Service event comes here, also those of Services with a selector, whose
        # host Endpoints belong to the host's endpoints controller: nothing to do for them, and nothing to
        # warn about (the generic reconcile would call them "someone else's object" on every event).
        hname = self.host_name(ctx, *split_key(key))
        hobj = ctx.hstore(self.kind).get(ctx.host_key(hname))
        if hobj is not None and made_by_host_controller(hobj):
            vobj = ctx.vstore(self.kind).get(key)
            if vobj is None or meta(vobj).get("deletionTimestamp") or not self.wanted(ctx, vobj):
                return
            # The Service lost its selector: the host controller leaves its last Endpoints behind, and ours
            # (the user's addresses) take their place.
            log.info("%s %s: replacing the host endpoints controller's %s with the virtual Endpoints",
                     self.name, key, hname)
            ctx.host.delete(self.kind, hname, ctx.settings.host_namespace, uid=meta(hobj).get("uid"))
            ctx.hstore(self.kind).remove(ctx.host_key(hname))
        super().reconcile(ctx, key)


def own_address(ctx: Context) -> str:
    """The IP of pod R-0, in which the syncer runs: the source address towards Service R's ClusterIP (a UDP
    connect sends nothing). Known from the first moment, unlike the pod's ``status.podIP``, which the kubelet
    may post seconds after the containers started; the same address (the e2e test compares them)."""
    if not ctx.api_service_ip:
        return ""
    try:
        return own_ip(ctx.api_service_ip, contract.SERVICE_PORT)
    except OSError as exc:
        log.debug("kubernetes-endpoints: no route to %s: %s", ctx.api_service_ip, exc)
        return ""


class KubernetesEndpoints(Part):
    """Keeps the virtual Endpoints and EndpointSlice ``default/kubernetes`` naming pod R-0 (apiendpoints.py):
    written at start, put back on any change or deletion. One key, ``default/kubernetes``."""

    name = "kubernetes-endpoints"

    def __init__(self, address: Callable[[Context], str] = own_address) -> None:
        self.address = address  # of pod R-0 (own_address; tests give one)
        self.pod_ip = ""  # fixed for the pod's lifetime, which is this syncer's
        self.warned = False  # that it is unknown (only outside a pod): once

    def setup(self, ctx: Context) -> None:
        cls = type(self)

        def on_change(key: str, old: Obj | None, new: Obj | None) -> None:
            if key == apiendpoints.KEY:
                ctx.enqueue(cls, key)

        # the Service too: re-created with Service R's ClusterIP, its Endpoints may go with the old one
        for kind in (ENDPOINTS, ENDPOINTSLICES, SERVICES):
            ctx.informer(VIRTUAL, kind).add_handler(on_change)

    def keys(self, ctx: Context) -> set[str]:
        return {apiendpoints.KEY}

    def reconcile(self, ctx: Context, key: str) -> None:
        if key != apiendpoints.KEY:
            return
        self.pod_ip = self.pod_ip or self.address(ctx)
        ip = self.pod_ip
        if not ip:
            (log.debug if self.warned else log.warning)(
                "%s: the address of pod %s is not known; default/kubernetes Endpoints not written", self.name,
                contract.control_plane_pod(ctx.settings.vcluster_name))
            self.warned = True
            return
        # The Service first, with Service R's ClusterIP: re-creating it (the API server makes it with another)
        # lets the controller-manager's endpoints controller delete the Endpoints of the deleted one. Written
        # before, they would be gone for a moment (put back on the event); so wait for the Service (the API
        # server makes it at start; its events bring this key back).
        if not self._service_ready(ctx, key):
            return
        for kind, desired in apiendpoints.manifests(ip):
            self._apply(ctx, kind, desired)

    def _service_ready(self, ctx: Context, key: str) -> bool:
        if not ctx.api_service_ip:
            return True  # nothing to wait for (not in a pod)

        def ip() -> str | None:
            return ((ctx.vstore(SERVICES).get(key) or {}).get("spec") or {}).get("clusterIP")

        if ip() not in (None, ctx.api_service_ip):
            try:
                ctx.sync_now(Services, key)
            except UnknownPart:
                return True  # no Services part: the Service is not ours to wait for
        return ip() == ctx.api_service_ip

    def _apply(self, ctx: Context, kind: Kind, desired: Obj) -> None:
        name, namespace = desired["metadata"]["name"], desired["metadata"]["namespace"]
        store = ctx.vstore(kind)
        actual = store.get(f"{namespace}/{name}")
        if actual is not None and apiendpoints.needs_recreate(desired, actual):
            ctx.virtual.delete(kind, name, namespace, uid=meta(actual).get("uid"))
            store.remove(f"{namespace}/{name}")
            actual = None
        if actual is None:
            try:
                store.put(ctx.virtual.create(kind, desired))
                log.info("%s: created %s %s/%s", self.name, kind.kind, namespace, name)
                return
            except AlreadyExists:  # the store lags behind
                actual = ctx.virtual.get(kind, name, namespace)
                if actual is None:
                    raise
        patch = apiendpoints.update_patch(desired, actual)
        if patch:
            store.put(ctx.virtual.patch(kind, name, patch, namespace))
            log.info("%s: updated %s %s/%s", self.name, kind.kind, namespace, name)

