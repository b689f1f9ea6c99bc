"""PersistentVolumeClaims: bound by the host's provisioner; status flows back."""

from __future__ import annotations

from ..context import Context
from ..kube import PVCS
from ..translate import pvcs
from .base import Obj, VirtualToHost, meta


class PersistentVolumeClaims(VirtualToHost):
    name = "pvcs"
    kind = PVCS

    def to_host(self, ctx: Context, vobj: Obj) -> Obj:
        return pvcs.translate_pvc(vobj, ctx.settings)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return pvcs.pvc_spec_patch(desired, actual)

    def after_sync(self, ctx: Context, vobj: Obj, hobj: Obj) -> None:
        patch = pvcs.pvc_status_patch(hobj, vobj)
        if patch:
            vmeta = meta(vobj)
            ctx.vstore(PVCS).put(ctx.virtual.patch(PVCS, vmeta["name"], patch, vmeta["namespace"],
                                                   subresource="status"))
