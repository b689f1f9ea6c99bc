"""The part interface and the generic virtual -> host reconcile.

A part owns one kind of work: its informers and handlers (``setup``), the keys to look at after a
(re)list (``keys``) and one key's reconcile. It sees only the ``Context`` and refers to other parts by
class. State a part needs between reconciles lives in the part instance (one instance per syncer).
"""

from __future__ import annotations

import logging
from typing import Any

from ..context import HOST, VIRTUAL, Context
from ..errors import Retry
from ..kube import PODS, AlreadyExists, Kind
from ..translate.metadata import metadata_patch, virtual_ref
from ..translate.names import host_name_for

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def meta(obj: Obj | None) -> dict[str, Any]:
    return (obj or {}).get("metadata") or {}


def split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name


def merge_patches(*patches: Obj | None) -> Obj | None:
    out: Obj = {}
    for patch in patches:
        for key, value in (patch or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out or None


class Part:
    name = ""
    #: seconds between re-enqueueing every key of this part (e.g. node heartbeats); None: only the full resync
    resync_every: float | None = None

    def setup(self, ctx: Context) -> None:
        """Create the informers this part reads and register handlers that enqueue its keys."""
        raise NotImplementedError

    def keys(self, ctx: Context) -> set[str]:
        """Every key that may need work (after a list, and on the periodic full resync)."""
        raise NotImplementedError

    def reconcile(self, ctx: Context, key: str) -> None:
        raise NotImplementedError

    def ready(self, ctx: Context) -> bool:
        """This part's share of the cluster's readiness (``Syncer.ready``), asked on every probe: keep it cheap
        (the stores, no API call)."""
        return True

    def subject(self, ctx: Context, key: str) -> Obj | None:
        """The virtual object a key is about: a failed sync is reported on it (a ``SyncError`` event), and a
        permanent failure is held until it changes. None: nothing to report on."""
        return None


# ====================================================================== virtual -> host

class VirtualToHost(Part):
    """A namespaced kind copied from the virtual cluster into N. Keys are virtual "namespace/name".

    Subclasses answer questions (``wanted``, ``to_host``, ``spec_patch``, ``needs_recreate``) and may
    extend three steps: ``create_host`` (make the host copy, and what it needs first), ``after_sync``
    (host -> virtual: status, host-allocated fields) and ``remove_host`` (delete the host copy and helpers).
    Kinds with special cases (pods that are terminating, the default/kubernetes Service) override ``sync``,
    the decision between those steps, and call ``super().sync`` for the ordinary case.
    """

    kind: Kind = PODS
    kind_annotations: tuple[str, ...] = ()  # object-kind values of host objects that belong to this part

    # -- questions subclasses answer

    def wanted(self, ctx: Context, vobj: Obj) -> bool:
        """Should this virtual object have a host copy?"""
        return True

    def to_host(self, ctx: Context, vobj: Obj) -> Obj:
        raise NotImplementedError

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        """Merge-patch for the non-metadata part of the host copy (metadata is compared generically)."""
        return None

    def needs_recreate(self, desired: Obj, actual: Obj) -> bool:
        return False

    # -- steps subclasses may extend

    def create_host(self, ctx: Context, vobj: Obj, desired: Obj) -> Obj:
        return ctx.host.create(self.kind, desired)

    def after_sync(self, ctx: Context, vobj: Obj, hobj: Obj) -> None:
        """Host -> virtual: status and host-allocated fields."""

    def remove_host(self, ctx: Context, key: str, hobj: Obj | None) -> None:
        """The virtual object is gone or unwanted: delete the host copy (if any)."""
        vns, vname = split_key(key)
        if hobj is None:
            return
        # Deleting is the one step that cannot be undone: confirm with the API server that the
        # virtual object is really gone (the store may lag, e.g. while a Service is re-created).
        live = ctx.virtual.get(self.kind, vname, vns)
        if live is not None and not meta(live).get("deletionTimestamp") and self.wanted(ctx, live):
            ctx.vstore(self.kind).put(live)
            raise Retry("virtual object exists after all", 0.2)
        hname = meta(hobj)["name"]
        ctx.host.delete(self.kind, hname, ctx.settings.host_namespace, uid=meta(hobj).get("uid"))
        ctx.hstore(self.kind).remove(ctx.host_key(hname))
        log.info("%s %s: deleted host %s", self.name, key, hname)

    # -- wiring

    def _kind_annotations(self) -> tuple[str, ...]:
        return self.kind_annotations or (self.kind.kind,)

    def setup(self, ctx: Context) -> None:
        cls, kind_annotations = type(self), self._kind_annotations()
        ctx.informer(VIRTUAL, self.kind).add_handler(lambda key, old, new: ctx.enqueue(cls, key))

        def on_host(key: str, old: Obj | None, new: Obj | None) -> None:
            ref = virtual_ref(new or old or {})
            if ref and ref[0] in kind_annotations:
                ctx.enqueue(cls, f"{ref[1]}/{ref[2]}")

        ctx.informer(HOST, self.kind).add_handler(on_host)

    def keys(self, ctx: Context) -> set[str]:
        keys = set(ctx.vstore(self.kind).keys())
        kind_annotations = self._kind_annotations()
        for hobj in ctx.hstore(self.kind).list():
            ref = virtual_ref(hobj)
            if ref and ref[0] in kind_annotations:
                keys.add(f"{ref[1]}/{ref[2]}")  # host copies whose virtual object may be gone
        return keys

    def ready(self, ctx: Context) -> bool:
        """This part's share of the cluster's readiness (``Syncer.ready``), asked on every probe: keep it cheap
        (the stores, no API call)."""
        return True

    def subject(self, ctx: Context, key: str) -> Obj | None:
        return ctx.vstore(self.kind).get(key)

    def host_name(self, ctx: Context, namespace: str, name: str) -> str:
        return host_name_for(self.kind.kind, name, namespace, ctx.settings)

    # -- the generic reconcile

    def reconcile(self, ctx: Context, key: str) -> None:
        vns, vname = split_key(key)
        vobj = ctx.vstore(self.kind).get(key)
        hname = self.host_name(ctx, vns, vname)
        hobj = ctx.hstore(self.kind).get(ctx.host_key(hname))
        if hobj is not None:
            ref = virtual_ref(hobj)
            if ref is None or ref[0] != self.kind.kind or (ref[1], ref[2]) != (vns, vname):
                log.warning("%s %s: host object %s belongs to %s, not to this object; leaving it alone",
                            self.name, key, hname, ref)
                return
        self.sync(ctx, key, vobj, hobj)

    def sync(self, ctx: Context, key: str, vobj: Obj | None, hobj: Obj | None) -> None:
        """Bring the host copy ``hobj`` in line with the virtual object ``vobj`` (either may be None)."""
        if vobj is None or meta(vobj).get("deletionTimestamp") or not self.wanted(ctx, vobj):
            self.remove_host(ctx, key, hobj)
            return
        hname = self.host_name(ctx, *split_key(key))
        desired = self.to_host(ctx, vobj)
        if hobj is None:
            try:
                hobj = self.create_host(ctx, vobj, desired)
            except AlreadyExists:
                # the store lags behind (or the old copy is still terminating): look again later
                raise Retry(f"host {hname} exists already", 1.0) from None
            ctx.hstore(self.kind).put(hobj)
            log.info("%s %s: created host %s", self.name, key, hname)
        else:
            if self.needs_recreate(desired, hobj):
                log.info("%s %s: re-creating host %s", self.name, key, hname)
                ctx.host.delete(self.kind, hname, ctx.settings.host_namespace, uid=meta(hobj).get("uid"))
                raise Retry("waiting for the old host copy to go", 1.0)
            patch = merge_patches(metadata_patch(desired, hobj), self.spec_patch(desired, hobj))
            if patch:
                hobj = ctx.host.patch(self.kind, hname, patch, ctx.settings.host_namespace)
                ctx.hstore(self.kind).put(hobj)
                log.info("%s %s: updated host %s", self.name, key, hname)
        self.after_sync(ctx, vobj, hobj)
