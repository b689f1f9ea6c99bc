"""Virtual Nodes for host nodes: fake ones for the nodes the cluster's pods run on (synced pods, and pod R-0
when it runs CoreDNS), or (SYNC_NODES_MODE=all) mirrors of every host node. Host -> virtual."""

from __future__ import annotations

import logging

from ..context import HOST, VIRTUAL, Context, parse_rfc3339
from ..errors import Retry
from ..kube import NODES, PODS, AlreadyExists, Forbidden
from ..translate import nodes
from .base import Obj, Part, meta

log = logging.getLogger(__name__)


class Nodes(Part):
    name = "nodes"
    heartbeat_interval = 15.0
    # A virtual node-lifecycle controller, if one runs, expects a heartbeat within 40 s.
    resync_every = 10.0

    def __init__(self) -> None:
        self.host_nodes_readable: bool | None = None  # may the syncer get host nodes? unknown until tried

    def setup(self, ctx: Context) -> None:
        ctx.informer(VIRTUAL, NODES).add_handler(lambda key, old, new: ctx.enqueue(Nodes, key))
        ctx.informer(HOST, PODS)
        ctx.informer(VIRTUAL, PODS)
        if self.all_mode(ctx):
            ctx.informer(HOST, NODES).add_handler(lambda key, old, new: ctx.enqueue(Nodes, key))

    @staticmethod
    def all_mode(ctx: Context) -> bool:
        return ctx.settings.nodes_mode == "all"

    def keys(self, ctx: Context) -> set[str]:
        host_pods = ctx.hstore(PODS).list()
        if self.all_mode(ctx):
            keys = {n for n in (((p.get("spec") or {}).get("nodeName")) for p in host_pods) if n}
            keys.update(ctx.informer(HOST, NODES).store.keys())
        else:
            keys = nodes.shown_nodes(host_pods, ctx.settings)
        keys.update(meta(n)["name"] for n in ctx.vstore(NODES).list() if nodes.is_ours(n, ctx.settings))
        return keys

    def ready(self, ctx: Context) -> bool:
        """SYNC_NODES_MODE=synced: the node of the cluster's CoreDNS is shown, Ready. It is a key of the first
        sync already; this holds the cluster's readiness when that reconcile failed, until a retry succeeds."""
        name = ctx.settings.coredns_node
        if not name or self.all_mode(ctx):
            return True
        vnode = ctx.vstore(NODES).get(name)
        return vnode is not None and nodes.is_ready(vnode)

    def read_host_node(self, ctx: Context, name: str) -> Obj | None:
        """The host node, if the syncer may read nodes (its Role usually does not allow it)."""
        if ctx.has_informer(HOST, NODES):
            return ctx.informer(HOST, NODES).store.get(name)
        if self.host_nodes_readable is False:
            return None
        try:
            node = ctx.host.get(NODES, name)
            self.host_nodes_readable = True
            return node
        except Forbidden:
            log.info("host nodes are not readable; fake nodes get a nominal capacity and their pods' hostIPs")
            self.host_nodes_readable = False
            return None

    def reconcile(self, ctx: Context, name: str) -> None:
        vnode = ctx.vstore(NODES).get(name)
        if vnode is not None and not nodes.is_ours(vnode, ctx.settings):
            return  # a Node someone else made
        if self.all_mode(ctx):
            hnode = ctx.informer(HOST, NODES).store.get(name)
            desired = nodes.mirrored_node(hnode, ctx.settings) if hnode else None
        else:
            host_pods = ctx.hstore(PODS).list()
            used = name in nodes.shown_nodes(host_pods, ctx.settings)
            # InternalIPs from the pods' hostIPs when the node is not readable; host pod events (hostIP set)
            # enqueue the node (Pods._on_host_pod), so it gets them as soon as a pod reports one
            desired = nodes.fake_node(name, self.read_host_node(ctx, name), ctx.now(), ctx.settings,
                                      nodes.known_host_ips(host_pods, name, ctx.settings)) if used else None

        if desired is None:
            if vnode is None:
                return
            if any(((p.get("spec") or {}).get("nodeName")) == name for p in ctx.vstore(PODS).list()):
                raise Retry("virtual pods are still bound to the node", 5.0)
            ctx.virtual.delete(NODES, name)
            ctx.vstore(NODES).remove(name)
            log.info("nodes %s: deleted", name)
            return
        if vnode is None:
            body = {k: v for k, v in desired.items() if k != "status"}
            try:
                vnode = ctx.virtual.create(NODES, body)
            except AlreadyExists:
                vnode = ctx.virtual.get(NODES, name)
                if vnode is None:
                    raise Retry("node vanished", 0.2) from None
            log.info("nodes %s: created", name)
        else:
            patch = nodes.node_patch(desired, vnode)
            if patch:
                vnode = ctx.virtual.patch(NODES, name, patch)
        if self.all_mode(ctx):  # the host kubelet's heartbeats are the ones to show
            due = (desired.get("status") or {}) != (vnode.get("status") or {})
        else:
            due = self.heartbeat_due(ctx, vnode)
        status = nodes.node_status_patch(desired, vnode, due)
        if status:
            vnode = ctx.virtual.patch(NODES, name, status, subresource="status")
        ctx.vstore(NODES).put(vnode)

    def heartbeat_due(self, ctx: Context, vnode: Obj) -> bool:
        for condition in (vnode.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                last = parse_rfc3339(condition.get("lastHeartbeatTime"))
                return last is None or ctx.clock() - last >= self.heartbeat_interval
        return True
