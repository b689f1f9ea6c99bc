"""ConfigMaps and Secrets: which ones to sync, and their host form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .metadata import host_metadata
from .names import host_name_for
from .settings import TranslatorSettings

__all__ = [
    "translate_configmap",
    "translate_secret",
    "data_patch",
    "needs_recreate",
    "should_sync",
]

# Secret types whose meaning depends on host-side state the host copy would not have.
SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"


def should_sync(kind: str, vobj: Mapping[str, Any], referenced: bool, settings: TranslatorSettings) -> bool:
    """ConfigMaps/Secrets go to the host when a pod uses them, or all of them when the switch is on."""
    if kind == "ConfigMap":
        return settings.sync_all_configmaps or referenced
    return settings.sync_all_secrets or referenced


def translate_configmap(vcm: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any]:
    meta = vcm["metadata"]
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": host_metadata(
            vcm, "ConfigMap", host_name_for("ConfigMap", meta["name"], meta["namespace"], settings), settings),
    }
    for field in ("data", "binaryData", "immutable"):
        if field in vcm and vcm[field] is not None:
            out[field] = vcm[field]
    return out


def translate_secret(vsecret: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any]:
    meta = vsecret["metadata"]
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": host_metadata(
            vsecret, "Secret", host_name_for("Secret", meta["name"], meta["namespace"], settings), settings),
        "type": vsecret.get("type") or "Opaque",
    }
    if out["type"] == SERVICE_ACCOUNT_TOKEN_TYPE:
        # The host's token controller would validate this Secret against a *host* ServiceAccount of the
        # same name (and delete it when that does not exist). The data is a virtual token: keep it as Opaque.
        out["type"] = "Opaque"
    for field in ("data", "immutable"):
        if field in vsecret and vsecret[field] is not None:
            out[field] = vsecret[field]
    return out


def needs_recreate(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Type is immutable, and so is the data of an immutable object: those changes need delete + create."""
    if desired.get("type") != actual.get("type") and desired.get("kind") == "Secret":
        return True
    if actual.get("immutable"):
        return any(desired.get(f) != actual.get(f) for f in ("data", "binaryData", "immutable"))
    return False


def data_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """Merge-patch replacing data/binaryData/immutable of the host copy (None: nothing to do)."""
    patch: dict[str, Any] = {}
    for field in ("data", "binaryData"):
        want = desired.get(field) or {}
        have = actual.get(field) or {}
        if want != have:
            # merge patch on a map: set changed keys, null removed ones
            patch[field] = {**{k: v for k, v in want.items() if have.get(k) != v},
                            **{k: None for k in have if k not in want}}
    if bool(desired.get("immutable")) != bool(actual.get("immutable")):
        patch["immutable"] = desired.get("immutable")
    return patch or None
