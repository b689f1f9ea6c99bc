"""NetworkPolicies (SYNC_NETWORK_POLICIES): selectors translated to the host copies' labels."""

from __future__ import annotations

from ..context import VIRTUAL, Context
from ..kube import NAMESPACES, NETWORK_POLICIES
from ..translate import netpol
from .base import Obj, VirtualToHost, meta


class NetworkPolicies(VirtualToHost):
    name = "networkpolicies"
    kind = NETWORK_POLICIES

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)

        # peers' namespaceSelectors are resolved against namespace labels: re-translate on changes
        def on_namespace(key: str, old: Obj | None, new: Obj | None) -> None:
            if (meta(old).get("labels") or {}) != (meta(new).get("labels") or {}) or old is None or new is None:
                for np_key in ctx.vstore(NETWORK_POLICIES).keys():
                    ctx.enqueue(NetworkPolicies, np_key)

        ctx.informer(VIRTUAL, NAMESPACES).add_handler(on_namespace)

    def to_host(self, ctx: Context, vobj: Obj) -> Obj:
        namespaces = {meta(n)["name"]: dict(meta(n).get("labels") or {}) for n in ctx.vstore(NAMESPACES).list()}
        return netpol.translate_network_policy(vobj, ctx.settings, namespaces)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return netpol.network_policy_patch(desired, actual)
