"""Pods: the host pod, its service account token Secret, status and scheduling back to the virtual pod."""

from __future__ import annotations

import base64
import binascii
import logging

from ..context import HOST, VIRTUAL, Context, parse_rfc3339
from ..engine import Handler
from ..errors import Retry
from ..kube import NAMESPACES, NODES, PODS, SECRETS, SERVICEACCOUNTS, SERVICES, AlreadyExists, ApiError
from ..translate import pods, runtimeclass
from ..translate.metadata import ANN_TOKEN_EXPIRATION, ANN_UID, FAKE_NODE_LABEL, KIND_TOKEN_SECRET, virtual_ref
from ..translate.names import host_name_for, token_secret_name
from ..translate.podspec import service_account_of
from ..translate.references import referenced_configmaps, referenced_pvcs, referenced_secrets
from ..translate.settings import PodContext
from ..translate.status import binding, pod_status_patch, was_synced
from ..translate.tokens import token_node, token_requests, token_secret
from .base import Obj, VirtualToHost, meta
from .configmaps import ConfigMaps
from .nodes import Nodes
from .pvcs import PersistentVolumeClaims
from .secrets import Secrets

log = logging.getLogger(__name__)

#: the part that syncs each kind of object a pod refers to
REFERENCED = {"ConfigMap": ConfigMaps, "Secret": Secrets, "PersistentVolumeClaim": PersistentVolumeClaims}


def _enqueue_nodes(ctx: Context, *versions: Obj | None) -> None:
    """The Nodes a pod's versions (a change's old and new) are bound to."""
    for obj in versions:
        node = ((obj or {}).get("spec") or {}).get("nodeName")
        if node:
            ctx.enqueue(Nodes, node)


class Pods(VirtualToHost):
    name = "pods"
    kind = PODS
    kind_annotations = ("Pod", KIND_TOKEN_SECRET)
    token_refresh_fraction = 0.2  # renew when less than this part of the token's lifetime is left
    #: how long a new host pod waits for the host copy of a new virtual Service of its namespace (its
    #: ClusterIP goes into the pod's service environment, which cannot change later)
    service_ip_wait = 30.0

    def __init__(self) -> None:
        # virtual pod key -> the nodeName its current token was requested for ("" = unbound)
        self._token_nodes: dict[str, str] = {}

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

    def _on_host_secret(self, ctx: Context) -> Handler:
        def handler(key: str, old: Obj | None, new: Obj | None) -> None:
            ref = virtual_ref(new or old or {})
            if ref and ref[0] == KIND_TOKEN_SECRET:
                ctx.enqueue(Pods, f"{ref[1]}/{ref[2]}")
        return handler

    def _on_virtual_pod(self, ctx: Context) -> Handler:
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
            _enqueue_nodes(ctx, old, new)
        return handler

    def _on_host_pod(self, ctx: Context) -> Handler:
        def handler(key: str, old: Obj | None, new: Obj | None) -> None:
            _enqueue_nodes(ctx, old, new)
        return handler

    # -- translation inputs

    def context(self, ctx: Context, vobj: Obj | None = None, creating: bool = False) -> PodContext:
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
        services = self._namespace_services(ctx, meta(vobj)["namespace"], creating) if vobj is not None else ()
        return PodContext(api_service_ip=ctx.api_service_ip, dns_ip=dns_ip, host_node_names=host_nodes,
                          fake_node_names=fake_nodes, namespace_labels=namespaces, services=services)

    def _namespace_services(self, ctx: Context, vns: str, creating: bool) -> tuple[Obj, ...]:
        """The virtual Services of namespace vns with their host copy's ClusterIP (the virtual Service is
        re-created with it moments after the host copy exists). ``creating``: a Service made just before the
        pod (the usual order) that has no host copy yet is waited for, a while."""
        out = []
        for vsvc in ctx.vstore(SERVICES).list():
            vmeta = meta(vsvc)
            if vmeta.get("namespace") != vns or not ((vsvc.get("spec") or {}).get("clusterIP") or "").strip():
                continue
            if (vsvc.get("spec") or {}).get("clusterIP") == "None" or (vns, vmeta["name"]) == ("default", "kubernetes"):
                out.append(vsvc)
                continue
            hsvc = ctx.hstore(SERVICES).get(ctx.host_key(host_name_for("Service", vmeta["name"], vns, ctx.settings)))
            host_ip = ((hsvc or {}).get("spec") or {}).get("clusterIP")
            if host_ip and host_ip != "None":
                out.append({**vsvc, "spec": {**vsvc["spec"], "clusterIP": host_ip}})
                continue
            created = parse_rfc3339(vmeta.get("creationTimestamp"))
            if creating and created is not None and ctx.clock() - created < self.service_ip_wait:
                raise Retry(f"waiting for the host copy of Service {vns}/{vmeta['name']}", 1.0)
            out.append(vsvc)
        return tuple(out)

    def to_host(self, ctx: Context, vobj: Obj) -> Obj:
        hname = self.host_name(ctx, meta(vobj)["namespace"], meta(vobj)["name"])
        creating = ctx.hstore(PODS).get(ctx.host_key(hname)) is None
        return pods.translate_pod(vobj, ctx.settings, self.context(ctx, vobj, creating))

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return pods.pod_spec_patch(desired, actual)

    def needs_recreate(self, desired: Obj, actual: Obj) -> bool:
        # Same name, new virtual pod (a StatefulSet replaced it): the old host pod must go first.
        return bool(meta(desired)["annotations"].get(ANN_UID) != (meta(actual).get("annotations") or {}).get(ANN_UID))

    # -- the reconcile's special cases

    def sync(self, ctx: Context, key: str, vobj: Obj | None, hobj: Obj | None) -> None:
        if vobj is not None and meta(vobj).get("deletionTimestamp"):
            self._deleting(ctx, vobj, hobj)
            return
        if vobj is not None and hobj is None and self._host_gone(ctx, vobj):
            return
        super().sync(ctx, key, vobj, hobj)

    def create_host(self, ctx: Context, vobj: Obj, desired: Obj) -> Obj:
        self._sync_references(ctx, vobj)  # what the pod mounts must exist on the host first
        self.ensure_token(ctx, vobj)
        try:
            return super().create_host(ctx, vobj, desired)
        except ApiError as exc:
            # A RuntimeClass made in the virtual cluster, which the host does not have: the pod is scheduled
            # and held, as a node without the runtime handler would (runtimeclass.blocked_for_runtime_class).
            name = runtimeclass.refused_runtime_class(exc.message, desired) if exc.status == 403 else None
            blocked = runtimeclass.blocked_for_runtime_class(desired, ctx.settings) if name else None
            if blocked is None:
                raise
        message = f'RuntimeClass "{name}" does not exist in the host cluster; the pod cannot run there'
        log.info("pods %s/%s: %s", meta(vobj)["namespace"], meta(vobj)["name"], message)
        ctx.events.warning(vobj, "FailedCreatePodSandBox", message)
        return ctx.host.create(PODS, blocked)

    def _sync_references(self, ctx: Context, vobj: Obj) -> None:
        ns = meta(vobj)["namespace"]
        for name in referenced_configmaps(vobj):
            ctx.sync_now(ConfigMaps, f"{ns}/{name}")
        for name in referenced_secrets(vobj):
            ctx.sync_now(Secrets, f"{ns}/{name}")
        for name in referenced_pvcs(vobj):
            ctx.sync_now(PersistentVolumeClaims, f"{ns}/{name}")

    def _host_gone(self, ctx: Context, vobj: Obj) -> bool:
        """The host pod does not exist. True: handled (do not create it)."""
        if not was_synced(vobj):
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
        node = (hobj.get("spec") or {}).get("nodeName")
        if node and not (vobj.get("spec") or {}).get("nodeName"):
            ctx.sync_now(Nodes, node)  # the Node must exist first, or the pod GC deletes the virtual pod
            try:
                ctx.virtual.post_subresource(PODS, meta(vobj)["name"], meta(vobj)["namespace"], "binding",
                                             binding(vobj, node))
                log.info("pods %s/%s: bound to %s", meta(vobj)["namespace"], meta(vobj)["name"], node)
            except ApiError as exc:
                if exc.status != 409:  # 409: bound already
                    raise
            else:
                # bound now: the token can carry the node claim (ensure_token)
                vobj = {**vobj, "spec": {**(vobj.get("spec") or {}), "nodeName": node}}
        self.ensure_token(ctx, vobj)
        hobj = self._add_ephemeral_containers(ctx, vobj, hobj)
        self._copy_status(ctx, vobj, hobj)

    def _add_ephemeral_containers(self, ctx: Context, vobj: Obj, hobj: Obj) -> Obj:
        """Ephemeral containers added to the virtual pod (kubectl debug) go to the host pod through its
        ephemeralcontainers subresource (the only way to add them); their statuses come back with the status."""
        if not (vobj.get("spec") or {}).get("ephemeralContainers"):
            return hobj
        wanted = pods.host_ephemeral_containers(vobj, ctx.settings, self.context(ctx, vobj))
        patch = pods.ephemeral_containers_patch(wanted, hobj)
        if patch is None:
            return hobj
        self._sync_references(ctx, vobj)  # Secrets/ConfigMaps the new container's env names
        hobj = ctx.host.patch(PODS, meta(hobj)["name"], patch, ctx.settings.host_namespace,
                              subresource="ephemeralcontainers")
        ctx.hstore(PODS).put(hobj)
        log.info("pods %s/%s: ephemeral containers added to the host pod", meta(vobj)["namespace"],
                 meta(vobj)["name"])
        return hobj

    def _copy_status(self, ctx: Context, vobj: Obj, hobj: Obj) -> None:
        patch = pod_status_patch(hobj, vobj)
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
        self._token_nodes.pop(f"{namespace}/{name}", None)
        secret = token_secret_name(name, namespace, ctx.settings)
        if ctx.hstore(SECRETS).get(ctx.host_key(secret)) is not None:
            ctx.host.delete(SECRETS, secret, ctx.settings.host_namespace)
            ctx.hstore(SECRETS).remove(ctx.host_key(secret))

    # -- the service account token

    def ensure_token(self, ctx: Context, vobj: Obj) -> None:
        """The token Secret of a pod that mounts service account tokens: one token per projection's audience and
        lifetime (token_requests), renewed before it expires and once the virtual pod is bound to a node
        (the virtual API server then adds the node claim, kubernetes.io.node.name, as for a kubelet's token)."""
        requests = token_requests(vobj)
        if not requests:
            return
        vmeta = meta(vobj)
        key = f"{vmeta['namespace']}/{vmeta['name']}"
        node = (vobj.get("spec") or {}).get("nodeName") or ""
        name = token_secret_name(vmeta["name"], vmeta["namespace"], ctx.settings)
        existing = ctx.hstore(SECRETS).get(ctx.host_key(name))
        now = ctx.clock()
        if existing is not None:
            ann = meta(existing).get("annotations") or {}
            expires = parse_rfc3339(ann.get(ANN_TOKEN_EXPIRATION))
            lifetime = min(r["spec"]["expirationSeconds"] for r in requests.values())
            margin = lifetime * self.token_refresh_fraction
            if (ann.get(ANN_UID) == vmeta.get("uid") and expires and expires - now > margin
                    and set(requests) <= set(existing.get("data") or {}) and self._token_node(key, existing) == node):
                ctx.enqueue(Pods, key, expires - now - margin + 1)
                return
        tokens: dict[str, str] = {}
        expirations: list[str] = []
        for data_key, request in requests.items():
            response = ctx.virtual.post_subresource(SERVICEACCOUNTS, service_account_of(vobj),
                                                    vmeta["namespace"], "token", request)
            status = response.get("status") or {}
            tokens[data_key] = status["token"]
            expirations.append(status.get("expirationTimestamp", ""))
        expiration = min(expirations, key=lambda e: parse_rfc3339(e) or 0.0)
        body = token_secret(vobj, tokens, ctx.virtual_ca_pem, expiration, ctx.settings)
        if existing is None:
            try:
                created = ctx.host.create(SECRETS, body)
            except AlreadyExists:
                raise Retry("token secret exists already", 0.5) from None
        else:
            created = ctx.host.patch(SECRETS, name, {"metadata": {"annotations": meta(body)["annotations"]},
                                                     "data": body["data"]}, ctx.settings.host_namespace)
        ctx.hstore(SECRETS).put(created)
        self._token_nodes[key] = node
        log.info("pods %s: token secret %s refreshed%s", key, name, f" (node {node})" if node else "")
        if existing is not None:
            self._nudge_kubelet(ctx, vobj, expiration)

    def _token_node(self, key: str, secret: Obj) -> str:
        """The node the Secret's token was requested for: remembered, or (after a restart) its node claim."""
        if key not in self._token_nodes:
            try:
                token = base64.b64decode((secret.get("data") or {}).get("token") or "").decode("utf-8", "replace")
            except (ValueError, binascii.Error):
                token = ""
            self._token_nodes[key] = token_node(token) or ""
        return self._token_nodes[key]

    def _nudge_kubelet(self, ctx: Context, vobj: Obj, expiration: str) -> None:
        """The host kubelet rewrites a mounted Secret's files on its next sync of the pod (up to a minute or
        more away); a change to the host pod makes that sync (and the remount) happen now."""
        hname = self.host_name(ctx, meta(vobj)["namespace"], meta(vobj)["name"])
        if ctx.hstore(PODS).get(ctx.host_key(hname)) is None:
            return
        try:
            hobj = ctx.host.patch(PODS, hname, {"metadata": {"annotations": {ANN_TOKEN_EXPIRATION: expiration}}},
                                  ctx.settings.host_namespace)
        except ApiError as exc:
            if exc.status != 404:
                raise
            return
        ctx.hstore(PODS).put(hobj)
