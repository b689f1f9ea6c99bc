"""Pods: the host pod, its service account token Secret, status and scheduling back to the virtual pod."""

from __future__ import annotations

import logging

from ..context import HOST, VIRTUAL, Context, parse_rfc3339
from ..errors import Retry
from ..kube import NAMESPACES, NODES, PODS, SECRETS, SERVICEACCOUNTS, SERVICES, AlreadyExists, ApiError
from ..translate import pods
from ..translate.metadata import ANN_TOKEN_EXPIRATION, ANN_UID, FAKE_NODE_LABEL, KIND_TOKEN_SECRET, virtual_ref
from ..translate.names import host_name_for, token_secret_name
from ..translate.podspec import referenced_configmaps, referenced_pvcs, referenced_secrets
from ..translate.settings import PodContext
from .base import Obj, VirtualToHost, meta
from .configmaps import ConfigMaps
from .nodes import Nodes
from .pvcs import PersistentVolumeClaims
from .secrets import Secrets

log = logging.getLogger(__name__)

#: the part that syncs each kind of object a pod refers to
REFERENCED = {"ConfigMap": ConfigMaps, "Secret": Secrets, "PersistentVolumeClaim": PersistentVolumeClaims}


class Pods(VirtualToHost):
    name = "pods"
    kind = PODS
    kind_annotations = ("Pod", KIND_TOKEN_SECRET)
    token_refresh_fraction = 0.2  # renew when less than this part of the token's lifetime is left

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        ctx.informer(HOST, SECRETS).add_handler(self._on_host_secret(ctx))
        ctx.informer(VIRTUAL, PODS).add_handler(self._on_virtual_pod(ctx))
        ctx.informer(HOST, PODS).add_handler(self._on_host_pod(ctx))
        ctx.informer(VIRTUAL, SERVICES)  # kube-dns lookup
        ctx.informer(HOST, SERVICES)
        ctx.informer(VIRTUAL, NODES)
        ctx.informer(VIRTUAL, NAMESPACES)

    def keys(self, ctx: Context) -> set[str]:
        keys = super().keys(ctx)
        for secret in ctx.hstore(SECRETS).list():  # token Secrets whose pod may be gone
            ref = virtual_ref(secret)
            if ref and ref[0] == KIND_TOKEN_SECRET:
                keys.add(f"{ref[1]}/{ref[2]}")
        return keys

    def _on_host_secret(self, ctx: Context):  # type: ignore[no-untyped-def]
        def handler(key: str, old: Obj | None, new: Obj | None) -> None:
            ref = virtual_ref(new or old or {})
            if ref and ref[0] == KIND_TOKEN_SECRET:
                ctx.enqueue(Pods, f"{ref[1]}/{ref[2]}")
        return handler

    def _on_virtual_pod(self, ctx: Context):  # type: ignore[no-untyped-def]
        def handler(key: str, old: Obj | None, new: Obj | None) -> None:
            refs: dict[str, set[str]] = {}
            if new is not None:
                ns = meta(new)["namespace"]
                refs = {
                    "ConfigMap": {f"{ns}/{n}" for n in referenced_configmaps(new)},
                    "Secret": {f"{ns}/{n}" for n in referenced_secrets(new)},
                    "PersistentVolumeClaim": {f"{ns}/{n}" for n in referenced_pvcs(new)},
                }
            for kind, ref_key in ctx.refs.update(key, refs):
                ctx.enqueue(REFERENCED[kind], ref_key)
            for obj in (old, new):
                node = ((obj or {}).get("spec") or {}).get("nodeName")
                if node:
                    ctx.enqueue(Nodes, node)
        return handler

    def _on_host_pod(self, ctx: Context):  # type: ignore[no-untyped-def]
        def handler(key: str, old: Obj | None, new: Obj | None) -> None:
            for obj in (old, new):
                node = ((obj or {}).get("spec") or {}).get("nodeName")
                if node:
                    ctx.enqueue(Nodes, node)
        return handler

    # -- translation inputs

    def context(self, ctx: Context) -> PodContext:
        dns_ip = None
        if ctx.vstore(SERVICES).get("kube-system/kube-dns") is not None:
            hdns = ctx.hstore(SERVICES).get(ctx.host_key(host_name_for("Service", "kube-dns", "kube-system",
                                                                        ctx.settings)))
            dns_ip = ((hdns or {}).get("spec") or {}).get("clusterIP")
            if not dns_ip or dns_ip == "None":
                # a pod created now would get the host's DNS for good (dnsConfig is immutable)
                raise Retry("waiting for the host copy of kube-system/kube-dns", 1.0)
        host_nodes: frozenset[str] = frozenset()
        if ctx.has_informer(HOST, NODES):
            host_nodes = frozenset(ctx.informer(HOST, NODES).store.keys())
        fake_nodes = frozenset(
            meta(n)["name"] for n in ctx.vstore(NODES).list() if (meta(n).get("labels") or {}).get(FAKE_NODE_LABEL)
        )
        namespaces = {meta(n)["name"]: dict(meta(n).get("labels") or {}) for n in ctx.vstore(NAMESPACES).list()}
        return PodContext(api_service_ip=ctx.api_service_ip, dns_ip=dns_ip, host_node_names=host_nodes,
                          fake_node_names=fake_nodes, namespace_labels=namespaces)

    def to_host(self, ctx: Context, vobj: Obj) -> Obj:
        return pods.translate_pod(vobj, ctx.settings, self.context(ctx))

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return pods.pod_spec_patch(desired, actual)

    def needs_recreate(self, desired: Obj, actual: Obj) -> bool:
        # Same name, new virtual pod (a StatefulSet replaced it): the old host pod must go first.
        return meta(desired)["annotations"].get(ANN_UID) != (meta(actual).get("annotations") or {}).get(ANN_UID)

    # -- the reconcile's special cases

    def sync(self, ctx: Context, key: str, vobj: Obj | None, hobj: Obj | None) -> None:
        if vobj is not None and meta(vobj).get("deletionTimestamp"):
            self._deleting(ctx, vobj, hobj)
            return
        if vobj is not None and hobj is None and self._host_gone(ctx, vobj):
            return
        super().sync(ctx, key, vobj, hobj)

    def create_host(self, ctx: Context, vobj: Obj, desired: Obj) -> Obj:
        # what the pod mounts must exist on the host first
        ns = meta(vobj)["namespace"]
        for name in referenced_configmaps(vobj):
            ctx.sync_now(ConfigMaps, f"{ns}/{name}")
        for name in referenced_secrets(vobj):
            ctx.sync_now(Secrets, f"{ns}/{name}")
        for name in referenced_pvcs(vobj):
            ctx.sync_now(PersistentVolumeClaims, f"{ns}/{name}")
        self.ensure_token(ctx, vobj)
        return super().create_host(ctx, vobj, desired)

    def _host_gone(self, ctx: Context, vobj: Obj) -> bool:
        """The host pod does not exist. True: handled (do not create it)."""
        if not pods.was_synced(vobj):
            return False
        # The host pod existed and is gone (evicted, deleted on the host): as vcluster does, the virtual
        # pod goes too, and its controller (if any) makes a new one.
        live = ctx.virtual.get(PODS, meta(vobj)["name"], meta(vobj)["namespace"])
        if live is None:
            return True
        hname = self.host_name(ctx, meta(vobj)["namespace"], meta(vobj)["name"])
        if ctx.host.get(PODS, hname, ctx.settings.host_namespace) is not None:
            raise Retry("host pod exists after all", 0.2)
        log.info("pods %s/%s: host pod is gone; deleting the virtual pod", meta(vobj)["namespace"], meta(vobj)["name"])
        ctx.virtual.delete(PODS, meta(vobj)["name"], meta(vobj)["namespace"], grace_period_seconds=0,
                           uid=meta(vobj).get("uid"))
        self._cleanup(ctx, meta(vobj)["namespace"], meta(vobj)["name"])
        return True

    def _deleting(self, ctx: Context, vobj: Obj, hobj: Obj | None) -> None:
        vmeta = meta(vobj)
        if hobj is None:
            # Nothing runs any more: finish the virtual deletion (there is no virtual kubelet to do it).
            ctx.virtual.delete(PODS, vmeta["name"], vmeta["namespace"], grace_period_seconds=0, uid=vmeta.get("uid"))
            self._cleanup(ctx, vmeta["namespace"], vmeta["name"])
            return
        if not meta(hobj).get("deletionTimestamp"):
            grace = vmeta.get("deletionGracePeriodSeconds")
            ctx.host.delete(PODS, meta(hobj)["name"], ctx.settings.host_namespace, grace_period_seconds=grace,
                            uid=meta(hobj).get("uid"))
        self._copy_status(ctx, vobj, hobj)

    def after_sync(self, ctx: Context, vobj: Obj, hobj: Obj) -> None:
        self.ensure_token(ctx, vobj)
        node = (hobj.get("spec") or {}).get("nodeName")
        if node and not (vobj.get("spec") or {}).get("nodeName"):
            ctx.sync_now(Nodes, node)  # the Node must exist first, or the pod GC deletes the virtual pod
            try:
                ctx.virtual.post_subresource(PODS, meta(vobj)["name"], meta(vobj)["namespace"], "binding",
                                             pods.binding(vobj, node))
                log.info("pods %s/%s: bound to %s", meta(vobj)["namespace"], meta(vobj)["name"], node)
            except ApiError as exc:
                if exc.status != 409:  # 409: bound already
                    raise
        self._copy_status(ctx, vobj, hobj)

    def _copy_status(self, ctx: Context, vobj: Obj, hobj: Obj) -> None:
        patch = pods.pod_status_patch(hobj, vobj)
        if patch:
            updated = ctx.virtual.patch(PODS, meta(vobj)["name"], patch, meta(vobj)["namespace"],
                                        subresource="status")
            ctx.vstore(PODS).put(updated)

    def remove_host(self, ctx: Context, key: str, hobj: Obj | None) -> None:
        super().remove_host(ctx, key, hobj)
        namespace, _, name = key.partition("/")
        self._cleanup(ctx, namespace, name)

    def _cleanup(self, ctx: Context, namespace: str, name: str) -> None:
        """The virtual pod is gone or its host pod deleted: remove its token Secret."""
        secret = token_secret_name(name, namespace, ctx.settings)
        if ctx.hstore(SECRETS).get(ctx.host_key(secret)) is not None:
            ctx.host.delete(SECRETS, secret, ctx.settings.host_namespace)
            ctx.hstore(SECRETS).remove(ctx.host_key(secret))

    # -- the service account token

    def ensure_token(self, ctx: Context, vobj: Obj) -> None:
        if not pods.wants_token(vobj):
            return
        vmeta = meta(vobj)
        name = token_secret_name(vmeta["name"], vmeta["namespace"], ctx.settings)
        existing = ctx.hstore(SECRETS).get(ctx.host_key(name))
        now = ctx.clock()
        if existing is not None:
            ann = meta(existing).get("annotations") or {}
            expires = parse_rfc3339(ann.get(ANN_TOKEN_EXPIRATION))
            lifetime = pods.TOKEN_EXPIRATION_SECONDS
            margin = lifetime * self.token_refresh_fraction
            if ann.get(ANN_UID) == vmeta.get("uid") and expires and expires - now > margin:
                ctx.enqueue(Pods, f"{vmeta['namespace']}/{vmeta['name']}", expires - now - margin + 1)
                return
        response = ctx.virtual.post_subresource(SERVICEACCOUNTS, pods.service_account_of(vobj), vmeta["namespace"],
                                                "token", pods.token_request(vobj))
        status = response.get("status") or {}
        body = pods.token_secret(vobj, status["token"], ctx.virtual_ca_pem, status.get("expirationTimestamp", ""),
                                 ctx.settings)
        if existing is None:
            try:
                created = ctx.host.create(SECRETS, body)
            except AlreadyExists:
                raise Retry("token secret exists already", 0.5) from None
        else:
            created = ctx.host.patch(SECRETS, name, {"metadata": {"annotations": meta(body)["annotations"]},
                                                     "data": body["data"]}, ctx.settings.host_namespace)
        ctx.hstore(SECRETS).put(created)
        log.info("pods %s/%s: token secret %s refreshed", vmeta["namespace"], vmeta["name"], name)
