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


def _host_copy(vobj: Mapping[str, Any], kind: str, fields: tuple[str, ...], settings: TranslatorSettings,
               **extra: Any) -> dict[str, Any]:
    """The host copy of a ConfigMap or Secret: host name and metadata, ``extra`` top-level fields, and the
    ``fields`` the virtual object sets."""
    meta = vobj["metadata"]
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": host_metadata(
            vobj, kind, host_name_for(kind, meta["name"], meta["namespace"], settings), settings),
        **extra,
    }
    for field in fields:
        if field in vobj and vobj[field] is not None:
            out[field] = vobj[field]
    return out


def translate_configmap(vcm: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any]:
    return _host_copy(vcm, "ConfigMap", ("data", "binaryData", "immutable"), settings)


def translate_secret(vsecret: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any]:
    secret_type = vsecret.get("type") or "Opaque"
    if secret_type == SERVICE_ACCOUNT_TOKEN_TYPE:
        # The host's token controller would validate this Secret against a *host* ServiceAccount of the
        # same name (and delete it when that does not exist). The data is a virtual token: keep it as Opaque.
        secret_type = "Opaque"
    return _host_copy(vsecret, "Secret", ("data", "immutable"), settings, type=secret_type)


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
