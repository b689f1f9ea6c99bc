"""SYNC_STORAGE_CLASSES: host StorageClasses mirrored into the virtual cluster (same names)."""

from __future__ import annotations

from ..context import HOST, VIRTUAL, Context
from ..kube import STORAGE_CLASSES
from ..translate import nodes
from .base import Part, meta


class StorageClasses(Part):
    name = "storageclasses"

    def setup(self, ctx: Context) -> None:
        ctx.informer(HOST, STORAGE_CLASSES).add_handler(lambda key, old, new: ctx.enqueue(StorageClasses, key))
        ctx.informer(VIRTUAL, STORAGE_CLASSES).add_handler(lambda key, old, new: ctx.enqueue(StorageClasses, key))

    def keys(self, ctx: Context) -> set[str]:
        return set(ctx.informer(HOST, STORAGE_CLASSES).store.keys()) | {
            meta(sc)["name"] for sc in ctx.vstore(STORAGE_CLASSES).list() if nodes.is_ours(sc, ctx.settings)
        }

    def reconcile(self, ctx: Context, name: str) -> None:
        hsc = ctx.informer(HOST, STORAGE_CLASSES).store.get(name)
        vsc = ctx.vstore(STORAGE_CLASSES).get(name)
        if vsc is not None and not nodes.is_ours(vsc, ctx.settings):
            return  # the user's own StorageClass of that name wins
        if hsc is None:
            if vsc is not None:
                ctx.virtual.delete(STORAGE_CLASSES, name)
                ctx.vstore(STORAGE_CLASSES).remove(name)
            return
        desired = nodes.mirrored_storage_class(hsc, ctx.settings)
        if vsc is not None and nodes.storage_class_needs_recreate(desired, vsc):
            ctx.virtual.delete(STORAGE_CLASSES, name)
            ctx.vstore(STORAGE_CLASSES).remove(name)
            vsc = None
        if vsc is None:
            ctx.vstore(STORAGE_CLASSES).put(ctx.virtual.create(STORAGE_CLASSES, desired))
            return
        patch = nodes.storage_class_patch(desired, vsc)
        if patch:
            ctx.vstore(STORAGE_CLASSES).put(ctx.virtual.patch(STORAGE_CLASSES, name, patch))
