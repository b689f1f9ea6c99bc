"""Warning events on virtual objects (``SyncError``): why an object has no working host copy.

Shown by ``kubectl describe`` and ``kubectl get events`` in the virtual cluster, as vcluster does. One
event per (object incarnation, reason, message): a repeated failure increments its ``count`` and
``lastTimestamp`` instead of adding an event per retry. The event's name is derived from those, so a
restarted syncer finds and updates the same event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from .kube import EVENTS, AlreadyExists, ApiError, Kube, NotFound

log = logging.getLogger(__name__)

COMPONENT = "vcluster-syncer"
SYNC_ERROR = "SyncError"
MAX_MESSAGE = 1024  # the API server truncates longer event messages anyway


def rfc3339(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_name(obj: dict[str, Any], reason: str, message: str) -> str:
    meta = obj.get("metadata") or {}
    digest = hashlib.sha256(f"{meta.get('uid', '')}\0{reason}\0{message}".encode()).hexdigest()[:16]
    return f"{meta['name'][:253 - 17]}.{digest}"


def warning_event(obj: dict[str, Any], reason: str, message: str, now: str, instance: str = "") -> dict[str, Any]:
    """A new core/v1 Warning Event about ``obj`` (a namespaced virtual object with kind and apiVersion)."""
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(obj, reason, message), "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", "v1"),
            "kind": obj.get("kind", ""),
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "type": "Warning",
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
    }


class EventRecorder:
    """Posts Warning events about virtual objects to the virtual API server; never raises."""

    def __init__(self, virtual: Kube, clock: Callable[[], float], instance: str = "") -> None:
        self.virtual = virtual
        self.clock = clock
        self.instance = instance

    def warning(self, obj: dict[str, Any], reason: str, message: str) -> None:
        now = rfc3339(self.clock())
        body = warning_event(obj, reason, message, now, self.instance)
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        try:
            for _ in range(3):
                existing = self.virtual.get(EVENTS, name, namespace)
                if existing is None:
                    try:
                        self.virtual.create(EVENTS, body)
                        return
                    except AlreadyExists:
                        continue
                try:
                    self.virtual.patch(EVENTS, name, {"count": int(existing.get("count") or 1) + 1,
                                                      "lastTimestamp": now}, namespace)
                    return
                except NotFound:
                    continue  # expired meanwhile: create it again
        except ApiError as exc:  # e.g. the namespace is being deleted: the event does not matter then
            log.debug("event %s/%s (%s): %s", namespace, name, reason, exc)
