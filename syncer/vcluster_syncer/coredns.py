"""DNS inside the virtual cluster: CoreDNS, deployed *into the virtual cluster* by the syncer at startup.

The objects (ServiceAccount, ClusterRole/Binding ``system:coredns``, ConfigMap, Pod ``coredns`` and
Service ``kube-dns``, all in ``kube-system``) are plain virtual objects; the generic sync copies the CoreDNS
pod and the ``kube-dns`` Service to the host like any other, which gives:

- the pod the virtual ServiceAccount token and ``KUBERNETES_SERVICE_HOST`` of the virtual API server (the
  pod rewrite), so CoreDNS's ``kubernetes`` plugin watches the *virtual* Services and pods;
- ``kube-dns`` the ClusterIP of its host copy, which every other synced pod gets as its nameserver (the
  pod rewrite turns ``ClusterFirst`` into ``None`` + that IP). CoreDNS itself runs with ``dnsPolicy:
  Default`` (the host node's resolver, what ``forward . /etc/resolv.conf`` forwards to), which the rewrite
  leaves alone, so it never asks itself.

``kubernetes.default`` resolves to the virtual ``default/kubernetes`` Service, whose ClusterIP the syncer
sets to the host Service ``R`` (the virtual API server).

CoreDNS listens on 1053 (the Service maps 53 -> 1053): no NET_BIND_SERVICE capability, so it runs with all
capabilities dropped as an unprivileged user, which any host Pod Security level admits.

The syncer creates the *pod* itself, not a Deployment: DNS is on the critical path of a cluster's readiness,
and a Deployment would wait for the virtual controller-manager (started last), its Deployment and ReplicaSet
controllers and a ReplicaSet before the pod even exists (about a second more). The pod carries the hash of
its spec (annotation ``SPEC_HASH``): a different hash, or a pod that has ended, is replaced; ``keep`` applies
everything again every few seconds, so a deleted pod comes back, as it would with a Deployment. A
Deployment ``coredns`` of an older syncer is deleted.

``manifests`` is pure (tested in tests/unit/syncer/test_syncer_coredns.py); ``apply`` creates or patches
(idempotent: a restarted syncer changes nothing that is already right); ``ReadyWatcher`` tells readiness
when the ``kube-dns`` Endpoints have a ready address (the CoreDNS host pod is Ready).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .kube import (
    CONFIGMAPS,
    ENDPOINTS,
    NAMESPACES,
    PODS,
    SERVICEACCOUNTS,
    SERVICES,
    AlreadyExists,
    ApiError,
    Conflict,
    Kind,
    Kube,
)

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "registry.k8s.io/coredns/coredns:v1.12.0"
DEFAULT_RESOURCES: Mapping[str, Any] = {"requests": {"cpu": "2m", "memory": "16Mi"}}  # idle: 1-2m, 12 MiB
NAMESPACE = "kube-system"
NAME = "coredns"
SERVICE = "kube-dns"
CLUSTER_ROLE = "system:coredns"
DNS_PORT = 1053  # container port; the Service's port is 53
READY_PORT = 8181
HEALTH_PORT = 8080
SELECTOR = {"k8s-app": "kube-dns"}
LABELS = {"k8s-app": "kube-dns", "app.kubernetes.io/managed-by": "vcluster-syncer"}
SPEC_HASH = "vcluster.pytest-vcluster.io/coredns-spec"  # annotation of the pod: hash of the spec it was made from

DEPLOYMENTS = Kind("apps/v1", "Deployment", "deployments")
CLUSTER_ROLES = Kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", namespaced=False)
CLUSTER_ROLE_BINDINGS = Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings",
                             namespaced=False)


@dataclass(frozen=True)
class CoreDNSSettings:
    """From COREDNS_ENABLED / COREDNS_IMAGE / COREDNS_IMAGE_PULL_POLICY / COREDNS_RESOURCES (config.py)."""

    enabled: bool = False
    image: str = DEFAULT_IMAGE
    pull_policy: str = "IfNotPresent"
    cluster_domain: str = "cluster.local"
    resources: Mapping[str, Any] = field(default_factory=lambda: copy.deepcopy(dict(DEFAULT_RESOURCES)))


def corefile(cluster_domain: str) -> str:
    # No `loop` plugin: CoreDNS forwards to the host node's resolver (dnsPolicy Default), never to itself.
    # `ready` answers 200 once the kubernetes plugin has listed Services etc. from the virtual API server.
    return (
        f".:{DNS_PORT} {{\n"
        "    errors\n"
        f"    health :{HEALTH_PORT}\n"
        f"    ready :{READY_PORT}\n"
        f"    kubernetes {cluster_domain} in-addr.arpa ip6.arpa {{\n"
        "        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n"
        "        ttl 30\n"
        "    }\n"
        "    forward . /etc/resolv.conf\n"
        "    cache 30\n"
        "    loadbalance\n"
        "}\n"
    )


def _meta(name: str, namespace: str | None = NAMESPACE) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "labels": dict(LABELS)}
    if namespace:
        out["namespace"] = namespace
    return out


def manifests(settings: CoreDNSSettings) -> list[tuple[Kind, dict[str, Any]]]:
    """The virtual objects, in the order they must be applied (the pod's ServiceAccount and ConfigMap
    before the pod)."""
    service_account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME)}
    cluster_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(CLUSTER_ROLE, None),
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": _meta(CLUSTER_ROLE, None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
    }
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(NAME),
                  "data": {"Corefile": corefile(settings.cluster_domain)}}
    container: dict[str, Any] = {
        "name": "coredns",
        "image": settings.image,
        "imagePullPolicy": settings.pull_policy,
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": DNS_PORT, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": DNS_PORT, "protocol": "TCP"},
        ],
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
        # Probed every second: the syncer's readiness waits for this pod (see ReadyWatcher).
        "readinessProbe": {"httpGet": {"path": "/ready", "port": READY_PORT, "scheme": "HTTP"},
                           "periodSeconds": 1, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/health", "port": HEALTH_PORT, "scheme": "HTTP"},
                          "initialDelaySeconds": 60, "periodSeconds": 10, "timeoutSeconds": 5,
                          "successThreshold": 1, "failureThreshold": 5},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if settings.resources:
        container["resources"] = copy.deepcopy(dict(settings.resources))
    pod_spec = {
        "serviceAccountName": NAME,
        # The host node's resolver: the pod rewrite leaves Default alone (no loop through itself).
        "dnsPolicy": "Default",
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 5,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "config-volume", "configMap": {
            "name": NAME, "items": [{"key": "Corefile", "path": "Corefile"}]}}],
    }
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {**_meta(NAME), "annotations": {SPEC_HASH: spec_hash(pod_spec)}},
        "spec": pod_spec,
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {**_meta(SERVICE), "labels": {**LABELS, "kubernetes.io/name": "CoreDNS"}},
        # No clusterIP: the virtual API server picks one, then the syncer's Service sync re-creates the
        # Service with its host copy's ClusterIP (the address that routes).
        "spec": {
            "type": "ClusterIP",
            "selector": dict(SELECTOR),
            "ports": [
                {"name": "dns", "port": 53, "targetPort": DNS_PORT, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "targetPort": DNS_PORT, "protocol": "TCP"},
            ],
        },
    }
    return [
        (SERVICEACCOUNTS, service_account),
        (CLUSTER_ROLES, cluster_role),
        (CLUSTER_ROLE_BINDINGS, binding),
        (CONFIGMAPS, config_map),
        (PODS, pod),
        (SERVICES, service),
    ]


def spec_hash(spec: Mapping[str, Any]) -> str:
    """16 hex characters of sha256 over the canonical JSON of a pod spec."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- apply (I/O)

_APPLIED_FIELDS = ("metadata", "spec", "data", "rules", "roleRef", "subjects")


def differs(desired: Any, actual: Any) -> bool:
    """True when ``actual`` lacks something ``desired`` says. Dicts compare as subsets (the API server adds
    defaults and metadata), lists element by element with the same length."""
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return True
        return any(differs(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return True
        return any(differs(d, a) for d, a in zip(desired, actual, strict=True))
    return desired != actual


def update_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch bringing ``actual`` to ``desired`` (None: nothing to do). Lists are replaced whole, which
    is what a merge patch does; a Service's ClusterIP (set by the sync) is never part of it."""
    patch: dict[str, Any] = {}
    for key in _APPLIED_FIELDS:
        if key not in desired:
            continue
        if key == "metadata":
            labels = desired["metadata"].get("labels") or {}
            if differs(labels, (actual.get("metadata") or {}).get("labels")):
                patch["metadata"] = {"labels": dict(labels)}
        elif differs(desired[key], actual.get(key)):
            patch[key] = copy.deepcopy(desired[key])
    return patch or None


def _name_ns(kind: Kind, obj: Mapping[str, Any]) -> tuple[str, str | None]:
    meta = obj["metadata"]
    return meta["name"], meta.get("namespace") if kind.namespaced else None


def pod_current(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Is the existing pod the one ``desired`` describes (same spec hash), alive and not being deleted?"""
    meta = actual.get("metadata") or {}
    return (
        (meta.get("annotations") or {}).get(SPEC_HASH) == desired["metadata"]["annotations"][SPEC_HASH]
        and not meta.get("deletionTimestamp")
        and (actual.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    )


def _apply_pod(virtual: Kube, desired: dict[str, Any], actual: Mapping[str, Any] | None, what: str) -> str | None:
    """Create the pod, or replace one that is outdated or ended (a pod spec cannot be patched)."""
    if actual is not None:
        if pod_current(desired, actual):
            return None
        meta = actual.get("metadata") or {}
        if not meta.get("deletionTimestamp"):
            virtual.delete(PODS, NAME, NAMESPACE, grace_period_seconds=0, uid=meta.get("uid"))
        if virtual.get(PODS, NAME, NAMESPACE) is not None:
            raise Conflict(409, "Conflict", f"{what} is being deleted; created again once it is gone")
    virtual.create(PODS, desired)
    return f"{'replaced' if actual is not None else 'created'} {what}"


def apply(virtual: Kube, settings: CoreDNSSettings) -> list[str]:
    """Create or patch every CoreDNS object; returns what was created/updated ("created Pod
    kube-system/coredns"...). Raises ApiError (the caller retries: the API server or kube-system may not be
    there yet)."""
    done: list[str] = []
    if virtual.get(NAMESPACES, NAMESPACE) is None:
        # The API server makes kube-system a moment after it answers (its system-namespaces controller);
        # making it here does not wait for that. The controller takes an existing one as it is.
        try:
            virtual.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        except AlreadyExists:
            pass
    old = virtual.get(DEPLOYMENTS, NAME, NAMESPACE)  # made by an older syncer
    if old is not None and (old["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == \
            LABELS["app.kubernetes.io/managed-by"]:
        virtual.delete(DEPLOYMENTS, NAME, NAMESPACE)
        done.append(f"deleted Deployment {NAMESPACE}/{NAME}")
    for kind, desired in manifests(settings):
        name, namespace = _name_ns(kind, desired)
        what = f"{kind.kind} {namespace + '/' if namespace else ''}{name}"
        actual = virtual.get(kind, name, namespace)
        if kind is PODS:
            line = _apply_pod(virtual, desired, actual, what)
            if line:
                done.append(line)
            continue
        if actual is None:
            try:
                virtual.create(kind, desired)
                done.append(f"created {what}")
                continue
            except AlreadyExists:
                actual = virtual.get(kind, name, namespace)
                if actual is None:
                    raise
        patch = update_patch(desired, actual)
        if patch:
            virtual.patch(kind, name, patch, namespace)
            done.append(f"updated {what}")
    return done


def apply_until_done(virtual: Kube, settings: CoreDNSSettings, stopping: threading.Event,
                     interval: float = 0.25) -> bool:
    """``apply`` until it succeeds (False if ``stopping`` was set first)."""
    attempt = 0
    while not stopping.is_set():
        try:
            for line in apply(virtual, settings):
                log.info("coredns: %s", line)
            return True
        except ApiError as exc:
            attempt += 1
            (log.info if attempt % 10 == 1 else log.debug)("coredns: not applied yet: %s", exc)
            stopping.wait(interval)
    return False


def keep(virtual: Kube, settings: CoreDNSSettings, stopping: threading.Event, interval: float = 10.0) -> None:
    """``apply`` every ``interval`` seconds until ``stopping``: what a Deployment would do for a lost pod."""
    while not stopping.wait(interval):
        try:
            for line in apply(virtual, settings):
                log.info("coredns: %s", line)
        except ApiError as exc:
            log.debug("coredns: not applied: %s", exc)


def start_keeper(virtual: Kube, settings: CoreDNSSettings, stopping: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=keep, args=(virtual, settings, stopping), name="coredns-keep", daemon=True)
    thread.start()
    return thread


def endpoints_ready(endpoints: Mapping[str, Any] | None) -> bool:
    """Does the kube-dns Endpoints object list a ready address?"""
    return any(subset.get("addresses") for subset in (endpoints or {}).get("subsets") or [])


class ReadyWatcher:
    """Latches once the virtual ``kube-system/kube-dns`` Endpoints have a ready address. Readiness probes
    call ``ready()`` (cheap); a thread polls the virtual API server every ``interval`` seconds until then.
    Once ready it stays ready: a later CoreDNS restart must not take the virtual API server's pod out of
    its Service."""

    def __init__(self, virtual: Kube, interval: float = 0.25, clock: Callable[[], float] | None = None) -> None:
        import time

        self.virtual = virtual
        self.interval = interval
        self._clock = clock or time.monotonic
        self._ready = threading.Event()
        self.started_at = self._clock()
        self.ready_after: float | None = None

    def ready(self) -> bool:
        return self._ready.is_set()

    def check(self) -> bool:
        if self._ready.is_set():
            return True
        try:
            endpoints = self.virtual.get(ENDPOINTS, SERVICE, NAMESPACE)
        except ApiError as exc:
            log.debug("coredns: kube-dns endpoints: %s", exc)
            return False
        if endpoints_ready(endpoints):
            self.ready_after = self._clock() - self.started_at
            log.info("coredns: ready (%.1fs after the syncer applied it)", self.ready_after)
            self._ready.set()
        return self._ready.is_set()

    def run(self, stopping: threading.Event) -> None:
        self.started_at = self._clock()
        while not stopping.is_set() and not self.check():
            stopping.wait(self.interval)

    def start(self, stopping: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stopping,), name="coredns-ready", daemon=True)
        thread.start()
        return thread
