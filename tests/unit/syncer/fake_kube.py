"""An in-memory stand-in for one API server, implementing vcluster_syncer.kube's ``Kube`` protocol.

It keeps the behaviour the syncer relies on honest: resourceVersions and watch events, AlreadyExists /
NotFound / uid preconditions, merge patches, status only through the status subresource, ClusterIP and
nodePort allocation (a requested IP that is taken is rejected), graceful deletion of bound pods, the
binding and token subresources, and 410 Gone for a compacted resourceVersion.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

from vcluster_syncer.kube import (
    AlreadyExists,
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    Kind,
    NotFound,
)

STATUS_SUBRESOURCE = {"pods", "services", "persistentvolumeclaims", "nodes", "namespaces"}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeKube:
    def __init__(self, name: str = "fake", clock: Any = time.time, ip_prefix: str = "10.96.0.") -> None:
        self.name = name
        self.clock = clock
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name) -> obj
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, plural, type, obj)
        self.compacted = 0
        self._rv = itertools.count(1)
        self._uid = itertools.count(1)
        self._ip = itertools.count(10)
        self._node_port = itertools.count(30000)
        self._ip_prefix = ip_prefix
        self._cond = threading.Condition()
        self.calls: list[tuple[str, str, str]] = []  # (verb, plural, name) for assertions
        self.forbidden: set[str] = set()  # plurals this client may not read
        # (verb, plural) -> error to raise instead of writing, e.g. ("create", "pods"): a quota, a webhook
        self.reject: dict[tuple[str, str], ApiError] = {}
        # RuntimeClasses this API server has (its RuntimeClass admission refuses pods naming another)
        self.runtime_classes: set[str] = set()
        self.unready: set[str] = set()  # /readyz checks that fail

    # ------------------------------------------------------------ helpers

    def _key(self, kind: Kind, namespace: str | None, name: str) -> tuple[str, str, str]:
        return (kind.plural, (namespace or "") if kind.namespaced else "", name)

    def _record(self, kind: Kind, event: str, obj: dict[str, Any]) -> None:
        rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(rv)
        self.log.append((rv, kind.plural, event, copy.deepcopy(obj)))
        self._cond.notify_all()

    def _now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))

    def _allocated_ips(self) -> set[str]:
        return {ip for (plural, _, _), o in self.objects.items() if plural == "services"
                for ip in (o.get("spec") or {}).get("clusterIPs") or [] if ip != "None"}

    def _allocated_node_ports(self) -> set[int]:
        return {p["nodePort"] for (plural, _, _), o in self.objects.items() if plural == "services"
                for p in (o.get("spec") or {}).get("ports") or [] if p.get("nodePort")}

    def _matches(self, obj: dict[str, Any], label_selector: str | None) -> bool:
        if not label_selector:
            return True
        labels = obj["metadata"].get("labels") or {}
        for term in label_selector.split(","):
            key, _, value = term.partition("=")
            if labels.get(key) != value:
                return False
        return True

    # ------------------------------------------------------------ Kube

    def list(self, kind: Kind, namespace: str | None = None,
             label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        with self._cond:
            if kind.plural in self.forbidden:
                raise Forbidden(403, "Forbidden", f"{kind.plural} is forbidden")
            items = [copy.deepcopy(o) for (plural, ns, _), o in sorted(self.objects.items())
                     if plural == kind.plural and (namespace is None or ns == namespace)
                     and self._matches(o, label_selector)]
            return items, str(self.log[-1][0] if self.log else 0)

    def watch(self, kind: Kind, resource_version: str, namespace: str | None = None,
              label_selector: str | None = None, timeout_seconds: int = 300) -> Iterator[tuple[str, dict[str, Any]]]:
        start = int(resource_version or 0)
        if start < self.compacted:
            raise Gone(410, "Expired", "too old resource version")
        deadline = time.monotonic() + timeout_seconds
        position = start
        while time.monotonic() < deadline:
            with self._cond:
                pending = [e for e in self.log if e[0] > position]
                if not pending:
                    self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
                    continue
            for rv, plural, event, obj in pending:
                position = rv
                if plural != kind.plural:
                    continue
                if namespace is not None and obj["metadata"].get("namespace") != namespace:
                    continue
                if not self._matches(obj, label_selector):
                    continue
                yield event, copy.deepcopy(obj)

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        with self._cond:
            if kind.plural in self.forbidden:
                raise Forbidden(403, "Forbidden", f"{kind.plural} is forbidden")
            obj = self.objects.get(self._key(kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def ready(self, check: str = "") -> bool:
        return not (self.unready and (not check or check in self.unready))

    def create(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            key = self._key(kind, meta.get("namespace"), meta["name"])
            self.calls.append(("create", kind.plural, meta["name"]))
            if ("create", kind.plural) in self.reject:
                raise self.reject[("create", kind.plural)]
            if key in self.objects:
                raise AlreadyExists(409, "AlreadyExists", f"{kind.plural} {meta['name']} already exists")
            runtime_class = (obj.get("spec") or {}).get("runtimeClassName") if kind.plural == "pods" else None
            if runtime_class and runtime_class not in self.runtime_classes:
                raise Forbidden(403, "Forbidden", f'pods "{meta["name"]}" is forbidden: pod rejected: '
                                                  f'RuntimeClass "{runtime_class}" not found')
            obj.setdefault("apiVersion", kind.api_version)
            obj.setdefault("kind", kind.kind)
            meta["uid"] = f"{self.name}-uid-{next(self._uid)}"
            meta["creationTimestamp"] = self._now()
            if kind.plural in STATUS_SUBRESOURCE and kind.plural != "nodes":
                obj.pop("status", None)
            if kind.plural == "pods":
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            if kind.plural == "services":
                self._allocate(obj)
            if kind.plural == "persistentvolumeclaims":
                obj["status"] = {"phase": "Pending"}
            self.objects[key] = obj
            self._record(kind, "ADDED", obj)
            return copy.deepcopy(obj)

    def _allocate(self, svc: dict[str, Any]) -> None:
        spec = svc.setdefault("spec", {})
        if spec.get("type") == "ExternalName":
            return
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            if ip in self._allocated_ips():
                raise Invalid(422, "Invalid", f"spec.clusterIP: Invalid value: {ip}: provided IP is already allocated")
        elif not ip:
            ip = f"{self._ip_prefix}{next(self._ip)}"
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            taken = self._allocated_node_ports()
            for port in spec.get("ports") or []:
                if port.get("nodePort") in taken:
                    raise Invalid(422, "Invalid", f"spec.ports.nodePort: Invalid value: {port['nodePort']}: "
                                                  "provided port is already allocated")
            for port in spec.get("ports") or []:
                while not port.get("nodePort") or port["nodePort"] in taken:
                    port["nodePort"] = next(self._node_port)

    def patch(self, kind: Kind, name: str, patch: dict[str, Any], namespace: str | None = None,
              subresource: str | None = None) -> dict[str, Any]:
        with self._cond:
            key = self._key(kind, namespace, name)
            self.calls.append(("patch" + (f"/{subresource}" if subresource else ""), kind.plural, name))
            if ("patch", kind.plural) in self.reject:
                raise self.reject[("patch", kind.plural)]
            if key not in self.objects:
                raise NotFound(404, "NotFound", f"{kind.plural} {name} not found")
            current = self.objects[key]
            expected = (patch.get("metadata") or {}).get("resourceVersion")
            if expected is not None and expected != current["metadata"].get("resourceVersion"):
                raise Conflict(409, "Conflict", f"the object has been modified; resourceVersion {expected} is stale")
            if subresource == "status":
                updated = copy.deepcopy(current)
                updated["status"] = merge_patch(current.get("status"), patch.get("status") or {})
            else:
                patch = dict(patch)
                if kind.plural in STATUS_SUBRESOURCE:
                    patch.pop("status", None)  # ignored outside the status subresource
                updated = merge_patch(current, patch)
                if kind.plural == "services":
                    old_ip = (current.get("spec") or {}).get("clusterIP")
                    # an ExternalName Service has no IP yet: becoming ClusterIP/NodePort gives it one
                    if (updated.get("spec") or {}).get("clusterIP") != old_ip and old_ip:
                        raise Invalid(422, "Invalid", "spec.clusterIP: field is immutable")
                for field in ("uid", "name", "namespace", "creationTimestamp"):
                    if field in current["metadata"]:
                        updated["metadata"][field] = current["metadata"][field]
            self.objects[key] = updated
            self._record(kind, "MODIFIED", updated)
            return copy.deepcopy(updated)

    def delete(self, kind: Kind, name: str, namespace: str | None = None, grace_period_seconds: int | None = None,
               uid: str | None = None) -> bool:
        with self._cond:
            key = self._key(kind, namespace, name)
            self.calls.append(("delete", kind.plural, name))
            obj = self.objects.get(key)
            if obj is None:
                return False
            if uid and obj["metadata"].get("uid") != uid:
                raise Conflict(409, "Conflict", "Precondition failed: UID in precondition does not match")
            graceful = (kind.plural == "pods" and (obj.get("spec") or {}).get("nodeName")
                        and grace_period_seconds != 0 and obj["status"].get("phase") not in ("Succeeded", "Failed"))
            if graceful:
                if not obj["metadata"].get("deletionTimestamp"):
                    obj["metadata"]["deletionTimestamp"] = self._now()
                    obj["metadata"]["deletionGracePeriodSeconds"] = (
                        grace_period_seconds if grace_period_seconds is not None else 30)
                    self._record(kind, "MODIFIED", obj)
                return True
            del self.objects[key]
            self._record(kind, "DELETED", obj)
            return True

    def post_subresource(self, kind: Kind, name: str, namespace: str | None, subresource: str,
                         body: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            self.calls.append((subresource, kind.plural, name))
            key = self._key(kind, namespace, name)
            obj = self.objects.get(key)
            if obj is None:
                raise NotFound(404, "NotFound", f"{kind.plural} {name} not found")
            if kind.plural == "pods" and subresource == "binding":
                if (obj.get("spec") or {}).get("nodeName"):
                    raise Conflict(409, "Conflict", f"pod {name} is already assigned to a node")
                obj["spec"]["nodeName"] = body["target"]["name"]
                self._record(kind, "MODIFIED", obj)
                return {"kind": "Status", "status": "Success"}
            if kind.plural == "serviceaccounts" and subresource == "token":
                seconds = body["spec"].get("expirationSeconds", 3600)
                expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock() + seconds))
                bound = body["spec"].get("boundObjectRef") or {}
                token = f"token-{name}-{bound.get('name')}-{next(self._uid)}"
                return {"kind": "TokenRequest", "status": {"token": token, "expirationTimestamp": expires}}
            raise ApiError(404, "NotFound", f"no subresource {subresource}")

    # ------------------------------------------------------------ test helpers (not part of Kube)

    def put(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object as another actor would (status allowed)."""
        status = obj.get("status")
        created = self.create(kind, obj)
        if status is not None:
            created = self.patch(kind, created["metadata"]["name"], {"status": status},
                                 created["metadata"].get("namespace"), subresource="status")
        return created

    def find(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.get(kind, name, namespace)

    def names(self, kind: Kind, namespace: str | None = None) -> list[str]:
        return [o["metadata"]["name"] for o in self.list(kind, namespace)[0]]

    def force_delete(self, kind: Kind, name: str, namespace: str | None = None) -> None:
        self.delete(kind, name, namespace, grace_period_seconds=0)

    def compact(self) -> None:
        with self._cond:
            self.compacted = self.log[-1][0] if self.log else 0
