"""The shape of a pod spec: its containers of every type, its token projections, its generic ephemeral volumes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"


def containers(spec: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for field in CONTAINER_FIELDS:
        yield from spec.get(field) or []


def service_account_of(pod: Mapping[str, Any]) -> str:
    spec = pod.get("spec") or {}
    return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"


def is_token_projection(volume: Mapping[str, Any]) -> bool:
    """A projected volume with a serviceAccountToken source (the API server injects one as kube-api-access-*).

    Its token, its kube-root-ca.crt certificate and its namespace file are served from the per-pod
    token Secret on the host, so the configmap it names is not a reference that needs syncing.
    """
    sources = ((volume.get("projected") or {}).get("sources")) or []
    return any("serviceAccountToken" in source for source in sources)


def ephemeral_claim_name(pod: Mapping[str, Any], volume: Mapping[str, Any]) -> str:
    """The claim the (virtual) ephemeral-volume controller makes for a generic ephemeral volume."""
    return f"{(pod.get('metadata') or {}).get('name', '')}-{volume.get('name', '')}"
