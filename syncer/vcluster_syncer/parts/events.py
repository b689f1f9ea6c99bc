"""Host events about synced objects become virtual events about the virtual objects (SYNC_EVENTS)."""

from __future__ import annotations

from ..context import HOST, VIRTUAL, Context
from ..kube import CONFIGMAPS, ENDPOINTS, EVENTS, PODS, PVCS, SECRETS, SERVICES, AlreadyExists, NotFound
from ..translate import events
from ..translate.metadata import is_managed, virtual_ref
from .base import Obj, Part, meta

KIND_BY_NAME = {k.kind: k for k in (PODS, SERVICES, ENDPOINTS, CONFIGMAPS, SECRETS, PVCS)}


class Events(Part):
    name = "events"

    def setup(self, ctx: Context) -> None:
        def on_event(key: str, old: Obj | None, new: Obj | None) -> None:
            if new is not None and events.involved_host_object(new, ctx.settings):
                ctx.enqueue(Events, key)

        ctx.informer(HOST, EVENTS, managed_only=False).add_handler(on_event)

    def keys(self, ctx: Context) -> set[str]:
        return {
            f"{meta(e)['namespace']}/{meta(e)['name']}"
            for e in ctx.informer(HOST, EVENTS, managed_only=False).store.list()
            if events.involved_host_object(e, ctx.settings)
        }

    def reconcile(self, ctx: Context, key: str) -> None:
        hev = ctx.informer(HOST, EVENTS, managed_only=False).store.get(key)
        if hev is None:
            return  # host events expire; the virtual copy expires on its own
        involved = events.involved_host_object(hev, ctx.settings)
        if involved is None:
            return
        kind_name, hname = involved
        kind = KIND_BY_NAME[kind_name]
        hobj = ctx.hstore(kind).get(ctx.host_key(hname)) if ctx.has_informer(HOST, kind) else None
        if hobj is None:
            hobj = ctx.host.get(kind, hname, ctx.settings.host_namespace)
        if hobj is None or not is_managed(hobj, ctx.settings):
            return
        ref = virtual_ref(hobj)
        if ref is None or ref[0] != kind_name:
            return  # e.g. a token Secret: not a virtual object
        _, vns, vname, vuid = ref
        vobj = ctx.vstore(kind).get(f"{vns}/{vname}") if ctx.has_informer(VIRTUAL, kind) else None
        virtual_object = {"kind": kind_name, "apiVersion": "v1", "namespace": vns, "name": vname,
                          "uid": meta(vobj).get("uid") or vuid}
        desired = events.translate_event(hev, virtual_object, ctx.settings)
        existing = ctx.virtual.get(EVENTS, meta(desired)["name"], vns)
        try:
            if existing is None:
                ctx.virtual.create(EVENTS, desired)
            else:
                patch = events.event_patch(desired, existing)
                if patch:
                    ctx.virtual.patch(EVENTS, meta(desired)["name"], patch, vns)
        except (AlreadyExists, NotFound):
            pass  # raced with ourselves / the namespace is gone
