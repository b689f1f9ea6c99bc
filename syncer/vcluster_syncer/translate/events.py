"""Host events about synced objects, re-told in the virtual cluster about the virtual object.

The host event's involvedObject is a host copy (kind + translated name in N). Its annotations name the
virtual object; the virtual event points at that object and host names in the message are replaced by
the virtual ones (a message like "Successfully assigned N/web-x-ns-x-R to node1" would otherwise leak the
host naming into the virtual cluster).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .metadata import ANN_HOST_OBJECT
from .settings import TranslatorSettings

SYNCED_EVENT_KINDS = frozenset({"Pod", "Service", "Endpoints", "ConfigMap", "Secret", "PersistentVolumeClaim"})

COPIED_FIELDS = ("reason", "type", "count", "firstTimestamp", "lastTimestamp", "eventTime", "series", "action",
                 "reportingComponent", "reportingInstance", "source", "related")


def involved_host_object(host_event: Mapping[str, Any], settings: TranslatorSettings) -> tuple[str, str] | None:
    """(kind, host name) of the host object an event is about, if it can be a synced object."""
    involved = host_event.get("involvedObject") or {}
    if involved.get("namespace") != settings.host_namespace or involved.get("kind") not in SYNCED_EVENT_KINDS:
        return None
    if not involved.get("name"):
        return None
    return involved["kind"], involved["name"]


def virtual_event_name(host_event_name: str, virtual_object_name: str) -> str:
    """``<virtual object>.<suffix of the host event name>`` (event names are ``<object>.<unique hex>``)."""
    suffix = host_event_name.rsplit(".", 1)[-1]
    return f"{virtual_object_name}.{suffix}"[:253]


def translate_event(
    host_event: Mapping[str, Any],
    virtual_object: Mapping[str, str],
    settings: TranslatorSettings,
) -> dict[str, Any]:
    """``virtual_object``: kind, apiVersion, namespace, name, uid of the virtual object the host one copies."""
    involved = host_event.get("involvedObject") or {}
    host_name = involved.get("name", "")
    vns, vname = virtual_object["namespace"], virtual_object["name"]
    message = host_event.get("message") or ""
    if host_name:
        message = message.replace(f"{settings.host_namespace}/{host_name}", f"{vns}/{vname}")
        message = message.replace(host_name, vname)
    new_involved: dict[str, Any] = {
        "apiVersion": virtual_object.get("apiVersion", involved.get("apiVersion", "v1")),
        "kind": virtual_object.get("kind", involved.get("kind")),
        "namespace": vns,
        "name": vname,
    }
    if virtual_object.get("uid"):
        new_involved["uid"] = virtual_object["uid"]
    if involved.get("fieldPath"):
        new_involved["fieldPath"] = involved["fieldPath"]  # e.g. spec.containers{web}: same in both
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": virtual_event_name(host_event["metadata"]["name"], vname),
            "namespace": vns,
            "annotations": {ANN_HOST_OBJECT: f"{settings.host_namespace}/{host_event['metadata']['name']}"},
        },
        "involvedObject": new_involved,
        "message": message,
    }
    for field in COPIED_FIELDS:
        if host_event.get(field) is not None:
            out[field] = host_event[field]
    out.pop("related", None)  # names a host object
    if not out.get("reportingComponent"):
        out["reportingComponent"] = ((host_event.get("source") or {}).get("component")) or "vcluster-syncer"
    return out


def event_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """Repeated events only change count, times and message."""
    patch = {k: desired.get(k) for k in ("count", "lastTimestamp", "message", "series", "eventTime")
             if desired.get(k) is not None and desired.get(k) != actual.get(k)}
    return patch or None
