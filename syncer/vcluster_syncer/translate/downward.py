"""The downward API: fieldRefs of a host pod (env and volumes) report the virtual pod's values.

The host pod's own name, namespace, uid, service account, labels and annotations are the host's; the virtual
values travel in annotations of the host pod (host_annotations), and each fieldPath is pointed at them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .metadata import ANN_ANNOTATIONS, ANN_LABELS, ANN_NAME, ANN_NAMESPACE, ANN_SERVICE_ACCOUNT, ANN_UID, format_map
from .names import translate_label_key
from .podspec import service_account_of
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


def _volume_field_refs(spec: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The fieldRefs of the pod's downwardAPI volumes and projected downwardAPI sources."""
    for volume in spec.get("volumes") or []:
        items = list((volume.get("downwardAPI") or {}).get("items") or [])
        for source in (volume.get("projected") or {}).get("sources") or []:
            items.extend((source.get("downwardAPI") or {}).get("items") or [])
        for item in items:
            if (item.get("fieldRef") or {}).get("fieldPath"):
                yield item["fieldRef"]


def _env_field_refs(container: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for var in container.get("env") or []:
        if ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath"):
            yield var["valueFrom"]["fieldRef"]


def rewrite_volume_field_refs(spec: Mapping[str, Any], settings: TranslatorSettings) -> None:
    for ref in _volume_field_refs(spec):
        ref["fieldPath"] = rewrite_field_path(ref["fieldPath"], settings)


def rewrite_env_field_refs(container: Mapping[str, Any], settings: TranslatorSettings) -> None:
    for ref in _env_field_refs(container):
        ref["fieldPath"] = rewrite_field_path(ref["fieldPath"], settings)


def _reads_all_annotations(spec: Mapping[str, Any]) -> bool:
    return any(ref["fieldPath"] == "metadata.annotations" for ref in _volume_field_refs(spec))


def host_annotations(vpod: Mapping[str, Any]) -> dict[str, str]:
    """Annotations holding virtual values for the downward API (see rewrite_field_path)."""
    meta, spec = vpod.get("metadata") or {}, vpod.get("spec") or {}
    out = {
        ANN_LABELS: format_map(meta.get("labels")),
        ANN_SERVICE_ACCOUNT: service_account_of(vpod),
    }
    if _reads_all_annotations(spec):
        # Only when a volume renders all annotations: this doubles the size of the annotations.
        out[ANN_ANNOTATIONS] = format_map(meta.get("annotations"))
    return out

