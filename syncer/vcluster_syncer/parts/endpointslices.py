"""EndpointSlices users make for selector-less Services (translate/endpointslices.py says which and how).

The host informer sees, besides our copies, slices made by the host's controllers that carry managed-by=R
because they copy labels: the EndpointSlice controller's for host Services with a selector (the Service's
labels) and the mirroring controller's for our host Endpoints (the Endpoints' labels and annotations, so they
name a virtual object of kind Endpoints). The generic wiring looks only at host slices whose annotations name
a virtual EndpointSlice, and their names never are one of ours (``<service>-<5 random>``): neither kind is
ever touched.
"""

from __future__ import annotations

from ..context import VIRTUAL, Context
from ..kube import ENDPOINTSLICES, SERVICES
from ..translate import endpointslices
from .base import Obj, VirtualToHost


class EndpointSlices(VirtualToHost):
    name = "endpointslices"
    kind = ENDPOINTSLICES

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        cls, slices = type(self), ctx.vstore(ENDPOINTSLICES)

        # whether a slice is copied depends on its Service (there, without a selector)
        def on_service(key: str, old: Obj | None, new: Obj | None) -> None:
            for slice_key in endpointslices.slices_of_service(slices.list(), key):
                ctx.enqueue(cls, slice_key)

        ctx.informer(VIRTUAL, SERVICES).add_handler(on_service)

    def wanted(self, ctx: Context, vobj: Obj) -> bool:
        key = endpointslices.service_key(vobj)
        return endpointslices.should_sync_endpoint_slice(vobj, ctx.vstore(SERVICES).get(key) if key else None)

    def to_host(self, ctx: Context, vobj: Obj) -> Obj:
        return endpointslices.translate_endpoint_slice(vobj, ctx.settings)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return endpointslices.endpoint_slice_patch(desired, actual)

    def needs_recreate(self, desired: Obj, actual: Obj) -> bool:
        return endpointslices.needs_recreate(desired, actual)
