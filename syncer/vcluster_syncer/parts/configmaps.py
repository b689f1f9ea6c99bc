"""ConfigMaps: those pods use (or all of them with SYNC_ALL_CONFIGMAPS)."""

from __future__ import annotations

from ..context import Context
from ..kube import CONFIGMAPS
from ..translate import configs
from .base import Obj, VirtualToHost, meta


class ConfigMaps(VirtualToHost):
    name = "configmaps"
    kind = CONFIGMAPS

    def wanted(self, ctx: Context, vobj: Obj) -> bool:
        key = f"{meta(vobj)['namespace']}/{meta(vobj)['name']}"
        return configs.should_sync(self.kind.kind, vobj, ctx.refs.referenced(self.kind.kind, key), ctx.settings)

    def to_host(self, ctx: Context, vobj: Obj) -> Obj:
        return configs.translate_configmap(vobj, ctx.settings)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return configs.data_patch(desired, actual)

    def needs_recreate(self, desired: Obj, actual: Obj) -> bool:
        return configs.needs_recreate(desired, actual)
