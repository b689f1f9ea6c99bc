"""PersistentVolumeClaims: spec to the host, status back.

PersistentVolumes are not synced: the host provisions and binds the volume of the host claim, and the
virtual claim only mirrors the outcome in its status.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .metadata import host_metadata
from .names import host_name_for
from .settings import TranslatorSettings

__all__ = ["translate_pvc", "pvc_spec_patch", "pvc_status_patch"]


def translate_pvc(vpvc: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any]:
    meta = vpvc["metadata"]
    vns = meta["namespace"]
    spec = copy.deepcopy(vpvc.get("spec") or {})
    # volumeName names a virtual PersistentVolume, and there are none on the host side of this mapping:
    # the host binds the host claim to a host volume.
    spec.pop("volumeName", None)
    for field in ("dataSource", "dataSourceRef"):
        source = spec.get(field)
        if not source:
            continue
        if source.get("kind") == "PersistentVolumeClaim" and not source.get("apiGroup"):
            # cloning: the source claim is the host copy of the virtual one
            source["name"] = host_name_for("PersistentVolumeClaim", source["name"], source.get("namespace") or vns,
                                           settings)
            source.pop("namespace", None)
        else:
            # snapshots and populators name virtual objects that are not synced
            spec.pop(field)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": host_metadata(vpvc, "PersistentVolumeClaim",
                                  host_name_for("PersistentVolumeClaim", meta["name"], vns, settings), settings),
        "spec": spec,
    }


def pvc_spec_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """Only the storage request may change on a claim (volume expansion); the rest is immutable."""
    want = ((desired.get("spec") or {}).get("resources") or {}).get("requests") or {}
    have = ((actual.get("spec") or {}).get("resources") or {}).get("requests") or {}
    if want.get("storage") and want.get("storage") != have.get("storage"):
        return {"spec": {"resources": {"requests": {"storage": want["storage"]}}}}
    return None


def pvc_status_patch(host_pvc: Mapping[str, Any], vpvc: Mapping[str, Any]) -> dict[str, Any] | None:
    status = copy.deepcopy(host_pvc.get("status") or {})
    if not status:
        return None
    current = vpvc.get("status") or {}
    if all(current.get(k) == v for k, v in status.items()):
        return None
    return {"status": status}
