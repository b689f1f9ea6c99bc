"""The downward API: fieldRefs of a host pod (env and volumes) report the virtual pod's values.

The host pod's own name, namespace, uid, service account, labels and annotations are the host's; the virtual
values travel in annotations of the host pod (host_annotations), and each fieldPath is pointed at them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .metadata import ANN_ANNOTATIONS, ANN_LABELS, ANN_NAME, ANN_NAMESPACE, ANN_SERVICE_ACCOUNT, ANN_UID, format_map
from .names import translate_label_key
from .settings import TranslatorSettings

_LABEL_FIELD = re.compile(r"^metadata\.labels\['(.+)'\]$")


def rewrite_field_path(path: str, settings: TranslatorSettings) -> str:
    """Make a downward-API fieldPath report the virtual value on the host pod."""
    simple = {
        # The host pod's own name/namespace/uid/serviceAccountName are the translated ones; the
        # virtual values live in annotations of the host pod.
        "metadata.name": ANN_NAME,
        "metadata.namespace": ANN_NAMESPACE,
        "metadata.uid": ANN_UID,
        "spec.serviceAccountName": ANN_SERVICE_ACCOUNT,
        # Whole-map fields: the host maps carry translated keys and syncer annotations; the
        # annotations below hold the virtual maps pre-formatted the way the kubelet writes them.
        "metadata.labels": ANN_LABELS,
        "metadata.annotations": ANN_ANNOTATIONS,
    }
    if path in simple:
        return f"metadata.annotations['{simple[path]}']"
    match = _LABEL_FIELD.match(path)
    if match:
        # One label: same value, under its translated key.
        return f"metadata.labels['{translate_label_key(match.group(1), settings)}']"
    # metadata.annotations['k'] (copied verbatim), spec.nodeName (fake nodes carry host node names),
    # status.podIP(s) and status.hostIP(s) (the host's are the real ones) need no change.
    return path


def rewrite_field_ref(holder: dict[str, Any], settings: TranslatorSettings) -> None:
    ref = holder.get("fieldRef")
    if ref and ref.get("fieldPath"):
        ref["fieldPath"] = rewrite_field_path(ref["fieldPath"], settings)


def _reads_all_annotations(spec: Mapping[str, Any]) -> bool:
    def items_of(volume: Mapping[str, Any]) -> list[dict[str, Any]]:
        out = list((volume.get("downwardAPI") or {}).get("items") or [])
        for source in (volume.get("projected") or {}).get("sources") or []:
            out.extend((source.get("downwardAPI") or {}).get("items") or [])
        return out

    for volume in spec.get("volumes") or []:
        for item in items_of(volume):
            if (item.get("fieldRef") or {}).get("fieldPath") == "metadata.annotations":
                return True
    return False


def host_annotations(vpod: Mapping[str, Any]) -> dict[str, str]:
    """Annotations holding virtual values for the downward API (see rewrite_field_path)."""
    meta, spec = vpod.get("metadata") or {}, vpod.get("spec") or {}
    out = {
        ANN_LABELS: format_map(meta.get("labels")),
        ANN_SERVICE_ACCOUNT: spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
    }
    if _reads_all_annotations(spec):
        # Only when a volume renders all annotations: this doubles the size of the annotations.
        out[ANN_ANNOTATIONS] = format_map(meta.get("annotations"))
    return out

