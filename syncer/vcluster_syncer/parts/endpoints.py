"""Endpoints of selector-less Services (the host's endpoints controller makes the others)."""

from __future__ import annotations

from ..context import VIRTUAL, Context
from ..kube import ENDPOINTS, SERVICES
from ..translate import services
from ..translate.names import host_name_for
from .base import Obj, VirtualToHost, meta


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
