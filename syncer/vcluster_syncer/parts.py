"""Per-resource parts of the reconcile loop: how to translate, compare and which way status flows.

``VirtualToHost`` holds the one generic reconcile (create / update / delete in both directions); the
subclasses only answer questions about their kind. ``Nodes``, ``StorageClasses`` and ``Events`` flow
the other way (host -> virtual) and are small reconciles of their own.
"""

from __future__ import annotations

import logging
from typing import Any

from .kube import (
    CONFIGMAPS,
    ENDPOINTS,
    EVENTS,
    NAMESPACES,
    NETWORK_POLICIES,
    NODES,
    PODS,
    PVCS,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    STORAGE_CLASSES,
    AlreadyExists,
    ApiError,
    Forbidden,
    Invalid,
    Kind,
    NotFound,
)
from .syncer import HOST, VIRTUAL, Retry, Syncer, parse_rfc3339
from .translate import configs, events, netpol, nodes, pods, pvcs, services
from .translate.metadata import (
    ANN_TOKEN_EXPIRATION,
    ANN_UID,
    FAKE_NODE_LABEL,
    KIND_TOKEN_SECRET,
    is_managed,
    metadata_patch,
    virtual_ref,
)
from .translate.names import host_name_for, token_secret_name
from .translate.podspec import referenced_configmaps, referenced_pvcs, referenced_secrets
from .translate.settings import PodContext

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

    def setup(self, s: Syncer) -> None:
        raise NotImplementedError

    def keys(self, s: Syncer) -> set[str]:
        raise NotImplementedError

    def reconcile(self, s: Syncer, key: str) -> None:
        raise NotImplementedError


# ====================================================================== virtual -> host

class VirtualToHost(Part):
    """A namespaced kind copied from the virtual cluster into N. Keys are virtual "namespace/name"."""

    kind: Kind = PODS
    kind_annotations: tuple[str, ...] = ()  # object-kind values of host objects that belong to this part

    # -- questions subclasses answer

    def wanted(self, s: Syncer, vobj: Obj) -> bool:
        """Should this virtual object have a host copy?"""
        return True

    def to_host(self, s: Syncer, vobj: Obj) -> Obj:
        raise NotImplementedError

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        """Merge-patch for the non-metadata part of the host copy (metadata is compared generically)."""
        return None

    def needs_recreate(self, desired: Obj, actual: Obj) -> bool:
        return False

    def after_sync(self, s: Syncer, vobj: Obj, hobj: Obj) -> None:
        """Host -> virtual: status and host-allocated fields."""

    def create_host(self, s: Syncer, vobj: Obj, desired: Obj) -> Obj:
        return s.host.create(self.kind, desired)

    def before_create(self, s: Syncer, vobj: Obj, desired: Obj) -> None:
        """Make what the host copy needs exist first."""

    def host_gone(self, s: Syncer, vobj: Obj) -> bool:
        """The host copy does not exist. True: handled (do not create it)."""
        return False

    def deleting(self, s: Syncer, vobj: Obj, hobj: Obj | None) -> bool:
        """The virtual object has a deletionTimestamp. True: handled. Default: treat as unwanted."""
        return False

    def unwanted(self, s: Syncer, vobj: Obj) -> None:
        """The virtual object exists but is not synced (hook for special objects)."""

    def cleanup(self, s: Syncer, namespace: str, name: str) -> None:
        """The virtual object is gone or unwanted and its host copy deleted: remove helpers."""

    # -- wiring

    def setup(self, s: Syncer) -> None:
        kind_annotations = self.kind_annotations or (self.kind.kind,)
        s.informer(VIRTUAL, self.kind).add_handler(lambda key, old, new: s.enqueue(self.name, key))

        def on_host(key: str, old: Obj | None, new: Obj | None) -> None:
            ref = virtual_ref(new or old or {})
            if ref and ref[0] in kind_annotations:
                s.enqueue(self.name, f"{ref[1]}/{ref[2]}")

        s.informer(HOST, self.kind).add_handler(on_host)

    def keys(self, s: Syncer) -> set[str]:
        keys = set(s.vstore(self.kind).keys())
        kind_annotations = self.kind_annotations or (self.kind.kind,)
        for hobj in s.hstore(self.kind).list():
            ref = virtual_ref(hobj)
            if ref and ref[0] in kind_annotations:
                keys.add(f"{ref[1]}/{ref[2]}")  # host copies whose virtual object may be gone
        return keys

    def host_name(self, s: Syncer, namespace: str, name: str) -> str:
        return host_name_for(self.kind.kind, name, namespace, s.settings)

    # -- the generic reconcile

    def reconcile(self, s: Syncer, key: str) -> None:
        vns, vname = split_key(key)
        vobj = s.vstore(self.kind).get(key)
        hname = self.host_name(s, vns, vname)
        hkey = s.host_key(hname)
        hobj = s.hstore(self.kind).get(hkey)
        if hobj is not None:
            ref = virtual_ref(hobj)
            if ref is None or ref[0] != self.kind.kind or (ref[1], ref[2]) != (vns, vname):
                log.warning("%s %s: host object %s belongs to %s, not to this object; leaving it alone",
                            self.name, key, hname, ref)
                return

        if vobj is not None and meta(vobj).get("deletionTimestamp") and self.deleting(s, vobj, hobj):
            return
        if vobj is None or meta(vobj).get("deletionTimestamp") or not self.wanted(s, vobj):
            if vobj is not None:
                self.unwanted(s, vobj)
            self._remove_host(s, key, hobj)
            return

        desired = self.to_host(s, vobj)
        if hobj is None:
            if self.host_gone(s, vobj):
                return
            self.before_create(s, vobj, desired)
            try:
                hobj = self.create_host(s, vobj, desired)
            except AlreadyExists:
                # the store lags behind (or the old copy is still terminating): look again later
                raise Retry(f"host {hname} exists already", 1.0) from None
            s.hstore(self.kind).put(hobj)
            log.info("%s %s: created host %s", self.name, key, hname)
        else:
            if self.needs_recreate(desired, hobj):
                log.info("%s %s: re-creating host %s", self.name, key, hname)
                s.host.delete(self.kind, hname, s.settings.host_namespace, uid=meta(hobj).get("uid"))
                raise Retry("waiting for the old host copy to go", 1.0)
            patch = merge_patches(metadata_patch(desired, hobj), self.spec_patch(desired, hobj))
            if patch:
                hobj = s.host.patch(self.kind, hname, patch, s.settings.host_namespace)
                s.hstore(self.kind).put(hobj)
                log.info("%s %s: updated host %s", self.name, key, hname)
        self.after_sync(s, vobj, hobj)

    def _remove_host(self, s: Syncer, key: str, hobj: Obj | None) -> None:
        vns, vname = split_key(key)
        if hobj is not None:
            # Deleting is the one step that cannot be undone: confirm with the API server that the
            # virtual object is really gone (the store may lag, e.g. while a Service is re-created).
            live = s.virtual.get(self.kind, vname, vns)
            if live is not None and not meta(live).get("deletionTimestamp") and self.wanted(s, live):
                s.vstore(self.kind).put(live)
                raise Retry("virtual object exists after all", 0.2)
            hname = meta(hobj)["name"]
            s.host.delete(self.kind, hname, s.settings.host_namespace, uid=meta(hobj).get("uid"))
            s.hstore(self.kind).remove(s.host_key(hname))
            log.info("%s %s: deleted host %s", self.name, key, hname)
        self.cleanup(s, vns, vname)


# ---------------------------------------------------------------------- Pods

class Pods(VirtualToHost):
    name = "pods"
    kind = PODS
    kind_annotations = ("Pod", KIND_TOKEN_SECRET)
    token_refresh_fraction = 0.2  # renew when less than this part of the token's lifetime is left

    def setup(self, s: Syncer) -> None:
        super().setup(s)
        s.informer(HOST, SECRETS).add_handler(self._on_host_secret(s))
        s.informer(VIRTUAL, PODS).add_handler(self._on_virtual_pod(s))
        s.informer(HOST, PODS).add_handler(self._on_host_pod(s))
        s.informer(VIRTUAL, SERVICES)  # kube-dns lookup
        s.informer(HOST, SERVICES)
        s.informer(VIRTUAL, NODES)
        s.informer(VIRTUAL, NAMESPACES)

    def keys(self, s: Syncer) -> set[str]:
        keys = super().keys(s)
        for secret in s.hstore(SECRETS).list():  # token Secrets whose pod may be gone
            ref = virtual_ref(secret)
            if ref and ref[0] == KIND_TOKEN_SECRET:
                keys.add(f"{ref[1]}/{ref[2]}")
        return keys

    def _on_host_secret(self, s: Syncer):  # type: ignore[no-untyped-def]
        def handler(key: str, old: Obj | None, new: Obj | None) -> None:
            ref = virtual_ref(new or old or {})
            if ref and ref[0] == KIND_TOKEN_SECRET:
                s.enqueue(self.name, f"{ref[1]}/{ref[2]}")
        return handler

    def _on_virtual_pod(self, s: Syncer):  # type: ignore[no-untyped-def]
        def handler(key: str, old: Obj | None, new: Obj | None) -> None:
            refs: dict[str, set[str]] = {}
            if new is not None:
                ns = meta(new)["namespace"]
                refs = {
                    "ConfigMap": {f"{ns}/{n}" for n in referenced_configmaps(new)},
                    "Secret": {f"{ns}/{n}" for n in referenced_secrets(new)},
                    "PersistentVolumeClaim": {f"{ns}/{n}" for n in referenced_pvcs(new)},
                }
            part_of = {"ConfigMap": "configmaps", "Secret": "secrets", "PersistentVolumeClaim": "pvcs"}
            for kind, ref_key in s.refs.update(key, refs):
                s.enqueue(part_of[kind], ref_key)
            for obj in (old, new):
                node = ((obj or {}).get("spec") or {}).get("nodeName")
                if node:
                    s.enqueue("nodes", node)
        return handler

    def _on_host_pod(self, s: Syncer):  # type: ignore[no-untyped-def]
        def handler(key: str, old: Obj | None, new: Obj | None) -> None:
            for obj in (old, new):
                node = ((obj or {}).get("spec") or {}).get("nodeName")
                if node:
                    s.enqueue("nodes", node)
        return handler

    # -- translation inputs

    def context(self, s: Syncer) -> PodContext:
        dns_ip = None
        if s.vstore(SERVICES).get("kube-system/kube-dns") is not None:
            hdns = s.hstore(SERVICES).get(s.host_key(host_name_for("Service", "kube-dns", "kube-system", s.settings)))
            dns_ip = ((hdns or {}).get("spec") or {}).get("clusterIP")
            if not dns_ip or dns_ip == "None":
                # a pod created now would get the host's DNS for good (dnsConfig is immutable)
                raise Retry("waiting for the host copy of kube-system/kube-dns", 1.0)
        host_nodes: frozenset[str] = frozenset()
        if s.has_informer(HOST, NODES):
            host_nodes = frozenset(s.informer(HOST, NODES).store.keys())
        fake_nodes = frozenset(
            meta(n)["name"] for n in s.vstore(NODES).list() if (meta(n).get("labels") or {}).get(FAKE_NODE_LABEL)
        )
        namespaces = {meta(n)["name"]: dict(meta(n).get("labels") or {}) for n in s.vstore(NAMESPACES).list()}
        return PodContext(api_service_ip=s.api_service_ip, dns_ip=dns_ip, host_node_names=host_nodes,
                          fake_node_names=fake_nodes, namespace_labels=namespaces)

    def to_host(self, s: Syncer, vobj: Obj) -> Obj:
        return pods.translate_pod(vobj, s.settings, self.context(s))

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return pods.pod_spec_patch(desired, actual)

    def needs_recreate(self, desired: Obj, actual: Obj) -> bool:
        # Same name, new virtual pod (a StatefulSet replaced it): the old host pod must go first.
        return meta(desired)["annotations"].get(ANN_UID) != (meta(actual).get("annotations") or {}).get(ANN_UID)

    def before_create(self, s: Syncer, vobj: Obj, desired: Obj) -> None:
        ns = meta(vobj)["namespace"]
        for name in referenced_configmaps(vobj):
            s.sync_now("configmaps", f"{ns}/{name}")
        for name in referenced_secrets(vobj):
            s.sync_now("secrets", f"{ns}/{name}")
        for name in referenced_pvcs(vobj):
            s.sync_now("pvcs", f"{ns}/{name}")
        self.ensure_token(s, vobj)

    def host_gone(self, s: Syncer, vobj: Obj) -> bool:
        if not pods.was_synced(vobj):
            return False
        # The host pod existed and is gone (evicted, deleted on the host): as vcluster does, the virtual
        # pod goes too, and its controller (if any) makes a new one.
        live = s.virtual.get(PODS, meta(vobj)["name"], meta(vobj)["namespace"])
        if live is None:
            return True
        hname = self.host_name(s, meta(vobj)["namespace"], meta(vobj)["name"])
        if s.host.get(PODS, hname, s.settings.host_namespace) is not None:
            raise Retry("host pod exists after all", 0.2)
        log.info("pods %s/%s: host pod is gone; deleting the virtual pod", meta(vobj)["namespace"], meta(vobj)["name"])
        s.virtual.delete(PODS, meta(vobj)["name"], meta(vobj)["namespace"], grace_period_seconds=0,
                         uid=meta(vobj).get("uid"))
        self.cleanup(s, meta(vobj)["namespace"], meta(vobj)["name"])
        return True

    def deleting(self, s: Syncer, vobj: Obj, hobj: Obj | None) -> bool:
        vmeta = meta(vobj)
        if hobj is None:
            # Nothing runs any more: finish the virtual deletion (there is no virtual kubelet to do it).
            s.virtual.delete(PODS, vmeta["name"], vmeta["namespace"], grace_period_seconds=0, uid=vmeta.get("uid"))
            self.cleanup(s, vmeta["namespace"], vmeta["name"])
            return True
        if not meta(hobj).get("deletionTimestamp"):
            grace = vmeta.get("deletionGracePeriodSeconds")
            s.host.delete(PODS, meta(hobj)["name"], s.settings.host_namespace, grace_period_seconds=grace,
                          uid=meta(hobj).get("uid"))
        self._copy_status(s, vobj, hobj)
        return True

    def after_sync(self, s: Syncer, vobj: Obj, hobj: Obj) -> None:
        self.ensure_token(s, vobj)
        node = (hobj.get("spec") or {}).get("nodeName")
        if node and not (vobj.get("spec") or {}).get("nodeName"):
            s.sync_now("nodes", node)  # the Node must exist first, or the pod GC deletes the virtual pod
            try:
                s.virtual.post_subresource(PODS, meta(vobj)["name"], meta(vobj)["namespace"], "binding",
                                           pods.binding(vobj, node))
                log.info("pods %s/%s: bound to %s", meta(vobj)["namespace"], meta(vobj)["name"], node)
            except ApiError as exc:
                if exc.status != 409:  # 409: bound already
                    raise
        self._copy_status(s, vobj, hobj)

    def _copy_status(self, s: Syncer, vobj: Obj, hobj: Obj) -> None:
        patch = pods.pod_status_patch(hobj, vobj)
        if patch:
            updated = s.virtual.patch(PODS, meta(vobj)["name"], patch, meta(vobj)["namespace"], subresource="status")
            s.vstore(PODS).put(updated)

    def cleanup(self, s: Syncer, namespace: str, name: str) -> None:
        secret = token_secret_name(name, namespace, s.settings)
        if s.hstore(SECRETS).get(s.host_key(secret)) is not None:
            s.host.delete(SECRETS, secret, s.settings.host_namespace)
            s.hstore(SECRETS).remove(s.host_key(secret))

    # -- the service account token

    def ensure_token(self, s: Syncer, vobj: Obj) -> None:
        if not pods.wants_token(vobj):
            return
        vmeta = meta(vobj)
        name = token_secret_name(vmeta["name"], vmeta["namespace"], s.settings)
        existing = s.hstore(SECRETS).get(s.host_key(name))
        now = s.clock()
        if existing is not None:
            ann = meta(existing).get("annotations") or {}
            expires = parse_rfc3339(ann.get(ANN_TOKEN_EXPIRATION))
            lifetime = pods.TOKEN_EXPIRATION_SECONDS
            margin = lifetime * self.token_refresh_fraction
            if ann.get(ANN_UID) == vmeta.get("uid") and expires and expires - now > margin:
                s.enqueue(self.name, f"{vmeta['namespace']}/{vmeta['name']}", delay=expires - now - margin + 1)
                return
        response = s.virtual.post_subresource(SERVICEACCOUNTS, pods.service_account_of(vobj), vmeta["namespace"],
                                              "token", pods.token_request(vobj))
        status = response.get("status") or {}
        body = pods.token_secret(vobj, status["token"], s.virtual_ca_pem, status.get("expirationTimestamp", ""),
                                 s.settings)
        if existing is None:
            try:
                created = s.host.create(SECRETS, body)
            except AlreadyExists:
                raise Retry("token secret exists already", 0.5) from None
        else:
            created = s.host.patch(SECRETS, name, {"metadata": {"annotations": meta(body)["annotations"]},
                                                   "data": body["data"]}, s.settings.host_namespace)
        s.hstore(SECRETS).put(created)
        log.info("pods %s/%s: token secret %s refreshed", vmeta["namespace"], vmeta["name"], name)


# ---------------------------------------------------------------------- Services and Endpoints

class Services(VirtualToHost):
    name = "services"
    kind = SERVICES

    def wanted(self, s: Syncer, vobj: Obj) -> bool:
        return services.should_sync_service(vobj)

    def to_host(self, s: Syncer, vobj: Obj) -> Obj:
        return services.translate_service(vobj, s.settings)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return services.service_spec_patch(desired, actual)

    def needs_recreate(self, desired: Obj, actual: Obj) -> bool:
        return services.needs_recreate_host(desired, actual)

    def create_host(self, s: Syncer, vobj: Obj, desired: Obj) -> Obj:
        # Ask the host for the ClusterIP the virtual API server already gave this Service (both use the
        # host's range): then the virtual Service keeps its IP and is never deleted and re-created under
        # its users' feet (e.g. `helm install --wait` reading it back). When the host has that IP taken,
        # let it choose, and after_sync moves the virtual Service to the host's IP.
        wanted_ip = services.host_ip_request(vobj, desired)
        if wanted_ip is None:
            return s.host.create(self.kind, desired)
        try:
            return s.host.create(self.kind, wanted_ip)
        except Invalid as exc:
            log.info("services %s: host cannot give ClusterIP %s (%s); the host chooses",
                     meta(desired)["name"], wanted_ip["spec"].get("clusterIP"), exc)
            return s.host.create(self.kind, desired)

    def unwanted(self, s: Syncer, vobj: Obj) -> None:
        # default/kubernetes: in-cluster clients that resolve kubernetes.default.svc through the virtual DNS
        # must reach the virtual API server, i.e. the host Service SERVICE_NAME.
        if (meta(vobj).get("namespace"), meta(vobj).get("name")) == services.API_SERVICE and s.api_service_ip:
            spec = vobj.get("spec") or {}
            if spec.get("clusterIP") != s.api_service_ip:
                self._recreate_virtual(s, vobj, {"spec": {"clusterIP": s.api_service_ip,
                                                          "clusterIPs": [s.api_service_ip]}})

    def after_sync(self, s: Syncer, vobj: Obj, hobj: Obj) -> None:
        if services.virtual_needs_new_ip(vobj, hobj):
            self._recreate_virtual(s, vobj, hobj)
            return
        vmeta = meta(vobj)
        patch = services.virtual_service_patch(vobj, hobj)
        if patch:
            s.vstore(SERVICES).put(s.virtual.patch(SERVICES, vmeta["name"], patch, vmeta["namespace"]))
        status = services.virtual_service_status_patch(vobj, hobj)
        if status:
            s.vstore(SERVICES).put(s.virtual.patch(SERVICES, vmeta["name"], status, vmeta["namespace"],
                                                   subresource="status"))

    def _recreate_virtual(self, s: Syncer, vobj: Obj, hobj: Obj) -> None:
        """The virtual Service's ClusterIP must be the host's (that is the address that routes), and a
        ClusterIP cannot change: delete and create it again with the host's IP."""
        vmeta = meta(vobj)
        body = services.recreated_virtual_service(vobj, hobj)
        log.info("services %s/%s: re-creating with ClusterIP %s", vmeta["namespace"], vmeta["name"],
                 body["spec"].get("clusterIP"))
        try:
            s.virtual.delete(SERVICES, vmeta["name"], vmeta["namespace"], uid=vmeta.get("uid"))
        except ApiError as exc:
            if exc.status == 409:  # uid precondition failed: it was re-created meanwhile
                raise Retry("virtual service changed", 0.2) from None
            raise
        try:
            created = s.virtual.create(SERVICES, body)
        except ApiError as exc:
            # e.g. the IP is still held by another virtual Service: never leave the user without their
            # Service; create it with any IP and try again later.
            log.warning("services %s/%s: cannot take ClusterIP %s (%s); retrying", vmeta["namespace"],
                        vmeta["name"], body["spec"].get("clusterIP"), exc)
            created = s.virtual.create(SERVICES, services.recreated_virtual_service(vobj, None))
            s.vstore(SERVICES).put(created)
            raise Retry("ClusterIP not available yet", 2.0) from exc
        s.vstore(SERVICES).put(created)


class Endpoints(VirtualToHost):
    name = "endpoints"
    kind = ENDPOINTS

    def setup(self, s: Syncer) -> None:
        super().setup(s)
        # whether Endpoints are synced depends on their Service having a selector
        s.informer(VIRTUAL, SERVICES).add_handler(lambda key, old, new: s.enqueue(self.name, key))

    def wanted(self, s: Syncer, vobj: Obj) -> bool:
        return services.should_sync_endpoints(vobj, s.vstore(SERVICES).get(f"{meta(vobj)['namespace']}/"
                                                                           f"{meta(vobj)['name']}"))

    def host_name(self, s: Syncer, namespace: str, name: str) -> str:
        return host_name_for("Service", name, namespace, s.settings)  # exactly the host Service's name

    def to_host(self, s: Syncer, vobj: Obj) -> Obj:
        return services.translate_endpoints(vobj, s.settings)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return services.endpoints_patch(desired, actual)


# ---------------------------------------------------------------------- ConfigMaps, Secrets, PVCs

class ConfigMaps(VirtualToHost):
    name = "configmaps"
    kind = CONFIGMAPS

    def wanted(self, s: Syncer, vobj: Obj) -> bool:
        key = f"{meta(vobj)['namespace']}/{meta(vobj)['name']}"
        return configs.should_sync(self.kind.kind, vobj, s.refs.referenced(self.kind.kind, key), s.settings)

    def to_host(self, s: Syncer, vobj: Obj) -> Obj:
        return configs.translate_configmap(vobj, s.settings)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return configs.data_patch(desired, actual)

    def needs_recreate(self, desired: Obj, actual: Obj) -> bool:
        return configs.needs_recreate(desired, actual)


class Secrets(ConfigMaps):
    name = "secrets"
    kind = SECRETS

    def to_host(self, s: Syncer, vobj: Obj) -> Obj:
        return configs.translate_secret(vobj, s.settings)


class PersistentVolumeClaims(VirtualToHost):
    name = "pvcs"
    kind = PVCS

    def to_host(self, s: Syncer, vobj: Obj) -> Obj:
        return pvcs.translate_pvc(vobj, s.settings)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return pvcs.pvc_spec_patch(desired, actual)

    def after_sync(self, s: Syncer, vobj: Obj, hobj: Obj) -> None:
        patch = pvcs.pvc_status_patch(hobj, vobj)
        if patch:
            vmeta = meta(vobj)
            s.vstore(PVCS).put(s.virtual.patch(PVCS, vmeta["name"], patch, vmeta["namespace"], subresource="status"))


class NetworkPolicies(VirtualToHost):
    name = "networkpolicies"
    kind = NETWORK_POLICIES

    def setup(self, s: Syncer) -> None:
        super().setup(s)

        # peers' namespaceSelectors are resolved against namespace labels: re-translate on changes
        def on_namespace(key: str, old: Obj | None, new: Obj | None) -> None:
            if (meta(old).get("labels") or {}) != (meta(new).get("labels") or {}) or old is None or new is None:
                for np_key in s.vstore(NETWORK_POLICIES).keys():
                    s.enqueue(self.name, np_key)

        s.informer(VIRTUAL, NAMESPACES).add_handler(on_namespace)

    def to_host(self, s: Syncer, vobj: Obj) -> Obj:
        namespaces = {meta(n)["name"]: dict(meta(n).get("labels") or {}) for n in s.vstore(NAMESPACES).list()}
        return netpol.translate_network_policy(vobj, s.settings, namespaces)

    def spec_patch(self, desired: Obj, actual: Obj) -> Obj | None:
        return netpol.network_policy_patch(desired, actual)


# ====================================================================== host -> virtual

class Nodes(Part):
    """Virtual Nodes for host nodes (fake ones for the nodes synced pods run on, or all of them)."""

    name = "nodes"
    heartbeat_interval = 15.0

    def setup(self, s: Syncer) -> None:
        s.informer(VIRTUAL, NODES).add_handler(lambda key, old, new: s.enqueue(self.name, key))
        s.informer(HOST, PODS)
        s.informer(VIRTUAL, PODS)
        if self.all_mode(s):
            s.informer(HOST, NODES).add_handler(lambda key, old, new: s.enqueue(self.name, key))

    @staticmethod
    def all_mode(s: Syncer) -> bool:
        return s.settings.nodes_mode == "all"

    def keys(self, s: Syncer) -> set[str]:
        keys = {n for n in (((p.get("spec") or {}).get("nodeName")) for p in s.hstore(PODS).list()) if n}
        keys.update(meta(n)["name"] for n in s.vstore(NODES).list() if nodes.is_ours(n, s.settings))
        if self.all_mode(s):
            keys.update(s.informer(HOST, NODES).store.keys())
        return keys

    def read_host_node(self, s: Syncer, name: str) -> Obj | None:
        """The host node, if the syncer may read nodes (its Role usually does not allow it)."""
        if s.has_informer(HOST, NODES):
            return s.informer(HOST, NODES).store.get(name)
        if s.host_nodes_readable is False:
            return None
        try:
            node = s.host.get(NODES, name)
            s.host_nodes_readable = True
            return node
        except Forbidden:
            log.info("host nodes are not readable; fake nodes get a nominal capacity")
            s.host_nodes_readable = False
            return None

    def reconcile(self, s: Syncer, name: str) -> None:
        vnode = s.vstore(NODES).get(name)
        if vnode is not None and not nodes.is_ours(vnode, s.settings):
            return  # a Node someone else made
        if self.all_mode(s):
            hnode = s.informer(HOST, NODES).store.get(name)
            desired = nodes.mirrored_node(hnode, s.settings) if hnode else None
        else:
            used = any(((p.get("spec") or {}).get("nodeName")) == name for p in s.hstore(PODS).list())
            desired = nodes.fake_node(name, self.read_host_node(s, name), s.now(), s.settings) if used else None

        if desired is None:
            if vnode is None:
                return
            if any(((p.get("spec") or {}).get("nodeName")) == name for p in s.vstore(PODS).list()):
                raise Retry("virtual pods are still bound to the node", 5.0)
            s.virtual.delete(NODES, name)
            s.vstore(NODES).remove(name)
            log.info("nodes %s: deleted", name)
            return
        if vnode is None:
            body = {k: v for k, v in desired.items() if k != "status"}
            try:
                vnode = s.virtual.create(NODES, body)
            except AlreadyExists:
                vnode = s.virtual.get(NODES, name)
                if vnode is None:
                    raise Retry("node vanished", 0.2) from None
            log.info("nodes %s: created", name)
        else:
            patch = nodes.node_patch(desired, vnode)
            if patch:
                vnode = s.virtual.patch(NODES, name, patch)
        if self.all_mode(s):  # the host kubelet's heartbeats are the ones to show
            due = (desired.get("status") or {}) != (vnode.get("status") or {})
        else:
            due = self.heartbeat_due(s, vnode)
        status = nodes.node_status_patch(desired, vnode, due)
        if status:
            vnode = s.virtual.patch(NODES, name, status, subresource="status")
        s.vstore(NODES).put(vnode)

    def heartbeat_due(self, s: Syncer, vnode: Obj) -> bool:
        for condition in (vnode.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                last = parse_rfc3339(condition.get("lastHeartbeatTime"))
                return last is None or s.clock() - last >= self.heartbeat_interval
        return True


class StorageClasses(Part):
    """SYNC_STORAGE_CLASSES: host StorageClasses mirrored into the virtual cluster (same names)."""

    name = "storageclasses"

    def setup(self, s: Syncer) -> None:
        s.informer(HOST, STORAGE_CLASSES).add_handler(lambda key, old, new: s.enqueue(self.name, key))
        s.informer(VIRTUAL, STORAGE_CLASSES).add_handler(lambda key, old, new: s.enqueue(self.name, key))

    def keys(self, s: Syncer) -> set[str]:
        return set(s.informer(HOST, STORAGE_CLASSES).store.keys()) | {
            meta(sc)["name"] for sc in s.vstore(STORAGE_CLASSES).list() if nodes.is_ours(sc, s.settings)
        }

    def reconcile(self, s: Syncer, name: str) -> None:
        hsc = s.informer(HOST, STORAGE_CLASSES).store.get(name)
        vsc = s.vstore(STORAGE_CLASSES).get(name)
        if vsc is not None and not nodes.is_ours(vsc, s.settings):
            return  # the user's own StorageClass of that name wins
        if hsc is None:
            if vsc is not None:
                s.virtual.delete(STORAGE_CLASSES, name)
                s.vstore(STORAGE_CLASSES).remove(name)
            return
        desired = nodes.mirrored_storage_class(hsc, s.settings)
        if vsc is not None and nodes.storage_class_needs_recreate(desired, vsc):
            s.virtual.delete(STORAGE_CLASSES, name)
            s.vstore(STORAGE_CLASSES).remove(name)
            vsc = None
        if vsc is None:
            s.vstore(STORAGE_CLASSES).put(s.virtual.create(STORAGE_CLASSES, desired))
            return
        patch = nodes.storage_class_patch(desired, vsc)
        if patch:
            s.vstore(STORAGE_CLASSES).put(s.virtual.patch(STORAGE_CLASSES, name, patch))


KIND_BY_NAME = {k.kind: k for k in (PODS, SERVICES, ENDPOINTS, CONFIGMAPS, SECRETS, PVCS)}


class Events(Part):
    """Host events about synced objects become virtual events about the virtual objects."""

    name = "events"

    def setup(self, s: Syncer) -> None:
        def on_event(key: str, old: Obj | None, new: Obj | None) -> None:
            if new is not None and events.involved_host_object(new, s.settings):
                s.enqueue(self.name, key)

        s.informer(HOST, EVENTS, managed_only=False).add_handler(on_event)

    def keys(self, s: Syncer) -> set[str]:
        return {
            f"{meta(e)['namespace']}/{meta(e)['name']}"
            for e in s.informer(HOST, EVENTS, managed_only=False).store.list()
            if events.involved_host_object(e, s.settings)
        }

    def reconcile(self, s: Syncer, key: str) -> None:
        hev = s.informer(HOST, EVENTS, managed_only=False).store.get(key)
        if hev is None:
            return  # host events expire; the virtual copy expires on its own
        involved = events.involved_host_object(hev, s.settings)
        if involved is None:
            return
        kind_name, hname = involved
        kind = KIND_BY_NAME[kind_name]
        hobj = s.hstore(kind).get(s.host_key(hname)) if s.has_informer(HOST, kind) else None
        if hobj is None:
            hobj = s.host.get(kind, hname, s.settings.host_namespace)
        if hobj is None or not is_managed(hobj, s.settings):
            return
        ref = virtual_ref(hobj)
        if ref is None or ref[0] != kind_name:
            return  # e.g. a token Secret: not a virtual object
        _, vns, vname, vuid = ref
        vobj = s.vstore(kind).get(f"{vns}/{vname}") if s.has_informer(VIRTUAL, kind) else None
        virtual_object = {"kind": kind_name, "apiVersion": "v1", "namespace": vns, "name": vname,
                          "uid": meta(vobj).get("uid") or vuid}
        desired = events.translate_event(hev, virtual_object, s.settings)
        existing = s.virtual.get(EVENTS, meta(desired)["name"], vns)
        try:
            if existing is None:
                s.virtual.create(EVENTS, desired)
            else:
                patch = events.event_patch(desired, existing)
                if patch:
                    s.virtual.patch(EVENTS, meta(desired)["name"], patch, vns)
        except (AlreadyExists, NotFound):
            pass  # raced with ourselves / the namespace is gone


def default_parts(settings: Any) -> list[Part]:
    parts: list[Part] = [Services(), Endpoints(), ConfigMaps(), Secrets(), PersistentVolumeClaims(), Pods(), Nodes(),
                         Events()]
    if settings.sync_network_policies:
        parts.append(NetworkPolicies())
    if settings.sync_storage_classes:
        parts.append(StorageClasses())
    return parts

