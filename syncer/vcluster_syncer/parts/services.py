"""Services: the host Service first, then the virtual one takes the host's ClusterIP; default/kubernetes
points at the virtual API server's host Service."""

from __future__ import annotations

import logging

from ..context import Context
from ..errors import Retry
from ..kube import SERVICES, ApiError, Invalid
from ..translate import services
from .base import Obj, VirtualToHost, meta

log = logging.getLogger(__name__)


class Services(VirtualToHost):
    name = "services"
    kind = SERVICES

    def wanted(self, ctx: Context, vobj: Obj) -> bool:
        return services.should_sync_service(vobj)

    def to_host(self, ctx: Context, vobj: Obj) -> Obj:
        return services.translate_service(vobj, ctx.settings)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return services.service_spec_patch(desired, actual)

    def needs_recreate(self, desired: Obj, actual: Obj) -> bool:
        return services.needs_recreate_host(desired, actual)

    def create_host(self, ctx: Context, vobj: Obj, desired: Obj) -> Obj:
        # Ask the host for the ClusterIP the virtual API server already gave this Service (both use the
        # host's range): then the virtual Service keeps its IP and is never deleted and re-created under
        # its users' feet (e.g. `helm install --wait` reading it back). When the host has that IP taken,
        # let it choose, and after_sync moves the virtual Service to the host's IP.
        # The same for the nodePorts of a NodePort/LoadBalancer Service (the ranges are the same too).
        # Most wanted first: the IP and the ports, the IP, the ports, nothing.
        attempts: list[Obj] = []
        for body in (services.host_ip_request(vobj, desired), desired):
            if body is not None:
                attempts += [b for b in (services.host_node_port_request(vobj, body), body) if b is not None]
        for body in attempts[:-1]:
            try:
                return ctx.host.create(self.kind, body)
            except Invalid as exc:
                log.info("services %s: host cannot give ClusterIP %s / nodePorts %s (%s); asking for less",
                         meta(desired)["name"], body["spec"].get("clusterIP") or "(any)",
                         [p.get("nodePort") for p in body["spec"].get("ports") or []], exc)
        return ctx.host.create(self.kind, attempts[-1])

    def sync(self, ctx: Context, key: str, vobj: Obj | None, hobj: Obj | None) -> None:
        # default/kubernetes (never copied): in-cluster clients that resolve kubernetes.default.svc through
        # the virtual DNS must reach the virtual API server, i.e. the host Service SERVICE_NAME.
        if (vobj is not None and (meta(vobj).get("namespace"), meta(vobj).get("name")) == services.API_SERVICE
                and (meta(vobj).get("deletionTimestamp") or not self.wanted(ctx, vobj)) and ctx.api_service_ip):
            spec = vobj.get("spec") or {}
            if spec.get("clusterIP") != ctx.api_service_ip:
                self._recreate_virtual(ctx, vobj, {"spec": {"clusterIP": ctx.api_service_ip,
                                                            "clusterIPs": [ctx.api_service_ip]}})
        super().sync(ctx, key, vobj, hobj)

    def after_sync(self, ctx: Context, vobj: Obj, hobj: Obj) -> None:
        if services.virtual_needs_new_ip(vobj, hobj):
            self._recreate_virtual(ctx, vobj, hobj)
            return
        vmeta = meta(vobj)
        patch = services.virtual_service_patch(vobj, hobj)
        if patch:
            ctx.vstore(SERVICES).put(ctx.virtual.patch(SERVICES, vmeta["name"], patch, vmeta["namespace"]))
        status = services.virtual_service_status_patch(vobj, hobj)
        if status:
            ctx.vstore(SERVICES).put(ctx.virtual.patch(SERVICES, vmeta["name"], status, vmeta["namespace"],
                                                       subresource="status"))

    def _recreate_virtual(self, ctx: Context, vobj: Obj, hobj: Obj) -> None:
        """The virtual Service's ClusterIP must be the host's (that is the address that routes), and a
        ClusterIP cannot change: delete and create it again with the host's IP."""
        vmeta = meta(vobj)
        body = services.recreated_virtual_service(vobj, hobj)
        log.info("services %s/%s: re-creating with ClusterIP %s", vmeta["namespace"], vmeta["name"],
                 body["spec"].get("clusterIP"))
        try:
            ctx.virtual.delete(SERVICES, vmeta["name"], vmeta["namespace"], uid=vmeta.get("uid"))
        except ApiError as exc:
            if exc.status == 409:  # uid precondition failed: it was re-created meanwhile
                raise Retry("virtual service changed", 0.2) from None
            raise
        try:
            created = ctx.virtual.create(SERVICES, body)
        except ApiError as exc:
            # e.g. the IP is still held by another virtual Service: never leave the user without their
            # Service; create it with any IP and try again later.
            log.warning("services %s/%s: cannot take ClusterIP %s (%s); retrying", vmeta["namespace"],
                        vmeta["name"], body["spec"].get("clusterIP"), exc)
            created = ctx.virtual.create(SERVICES, services.recreated_virtual_service(vobj, None))
            ctx.vstore(SERVICES).put(created)
            raise Retry("ClusterIP not available yet", 2.0) from exc
        ctx.vstore(SERVICES).put(created)
