"""Service account tokens of a host pod: the virtual API server's tokens, requested by the syncer and kept
in a host Secret per pod, which the host pod mounts where the virtual pod's projections would be."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .metadata import ANN_TOKEN_EXPIRATION, KIND_TOKEN_SECRET, host_metadata
from .names import token_secret_name
from .podspec import ROOT_CA_CONFIGMAP, is_token_projection
from .settings import TranslatorSettings

TOKEN_EXPIRATION_SECONDS = 3600
#: expirationSeconds of the kube-api-access-* projection the ServiceAccount admission injects
ADMISSION_TOKEN_SECONDS = 3607


def _only_namespace_items(source: Mapping[str, Any]) -> bool:
    items = (source.get("downwardAPI") or {}).get("items") or []
    return bool(items) and all((i.get("fieldRef") or {}).get("fieldPath") == "metadata.namespace" for i in items)


def _from_token_secret(source: dict[str, Any], token_secret: str) -> dict[str, Any]:
    if "serviceAccountToken" in source:
        # The host kubelet would mint a *host* token. The syncer asks the virtual API server for a
        # token of the virtual service account, bound to the virtual pod, and keeps it in a Secret.
        # Each audience/lifetime has its own token (and key) in that Secret (see token_key).
        path = source["serviceAccountToken"].get("path") or "token"
        key = token_key(source["serviceAccountToken"])
        return {"secret": {"name": token_secret, "items": [{"key": key, "path": path}]}}
    if (source.get("configMap") or {}).get("name") == ROOT_CA_CONFIGMAP:
        # kube-root-ca.crt next to a token is the CA for that token's API server: the virtual one's,
        # which the token Secret carries.
        items = [{"key": "ca.crt", "path": i.get("path", "ca.crt")}
                 for i in source["configMap"].get("items") or [{"key": "ca.crt", "path": "ca.crt"}]
                 if i.get("key") == "ca.crt"]
        return {"secret": {"name": token_secret, "items": items}}
    if _only_namespace_items(source):
        # the namespace file next to a token: the virtual namespace, also in the token Secret
        items = [{"key": "namespace", "path": i.get("path", "namespace")} for i in source["downwardAPI"]["items"]]
        return {"secret": {"name": token_secret, "items": items}}
    return source


def serve_tokens(spec: dict[str, Any], token_secret: str) -> None:
    """A projected volume with service account tokens reads them, and the CA and namespace files next to them,
    from the pod's token Secret (token_secret). Its other sources are left as they are."""
    for volume in spec.get("volumes") or []:
        if is_token_projection(volume):
            volume["projected"]["sources"] = [_from_token_secret(s, token_secret)
                                              for s in volume["projected"]["sources"]]


def token_key(projection: Mapping[str, Any]) -> str:
    """The token Secret's key for one serviceAccountToken projection: "token" for the API server's own
    audience and the admission's default lifetime (kube-api-access-*), else one key per audience+lifetime."""
    audience = projection.get("audience") or ""
    seconds = projection.get("expirationSeconds")
    if not audience and seconds in (None, TOKEN_EXPIRATION_SECONDS, ADMISSION_TOKEN_SECONDS):
        return "token"
    return "token-" + hashlib.sha256(f"{audience}\n{seconds or ''}".encode()).hexdigest()[:10]


def token_request(vpod: Mapping[str, Any], expiration_seconds: int = TOKEN_EXPIRATION_SECONDS,
                  audience: str | None = None) -> dict[str, Any]:
    """TokenRequest for the virtual pod's service account, bound to the virtual pod (dies with it)."""
    meta = vpod["metadata"]
    spec: dict[str, Any] = {
        "expirationSeconds": expiration_seconds,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta.get("uid")},
    }
    if audience:
        spec["audiences"] = [audience]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def token_requests(vpod: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Token Secret key -> the TokenRequest for it: one per distinct audience/lifetime among the pod's
    serviceAccountToken projections, each with its own audience and expirationSeconds, as the kubelet asks."""
    out: dict[str, dict[str, Any]] = {}
    for volume in (vpod.get("spec") or {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            projection = source.get("serviceAccountToken")
            if projection is None:
                continue
            key = token_key(projection)
            if key in out:
                continue
            seconds = TOKEN_EXPIRATION_SECONDS if key == "token" else int(
                projection.get("expirationSeconds") or TOKEN_EXPIRATION_SECONDS)
            out[key] = token_request(vpod, seconds, projection.get("audience") or None)
    return out


def token_node(token: str) -> str | None:
    """The node a service account token is bound to (claim kubernetes.io.node.name); None if it has none or is
    not a JWT. The virtual API server adds it to tokens requested for a pod bound to a node."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    node = ((payload.get("kubernetes.io") or {}) if isinstance(payload, dict) else {}).get("node") or {}
    return node.get("name") if isinstance(node, dict) else None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def token_secret(vpod: Mapping[str, Any], tokens: Mapping[str, str], ca_pem: str, expiration: str,
                 settings: TranslatorSettings) -> dict[str, Any]:
    """The host Secret the host pod mounts at /var/run/secrets/kubernetes.io/serviceaccount (and wherever it
    projects other tokens). ``tokens``: key (token_key) -> token; ``expiration``: the earliest one's."""
    meta = vpod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": host_metadata(
            {"metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid", "")}},
            KIND_TOKEN_SECRET, token_secret_name(meta["name"], meta["namespace"], settings), settings,
            extra_annotations={ANN_TOKEN_EXPIRATION: expiration},
        ),
        "data": {**{key: _b64(token) for key, token in tokens.items()},
                 "ca.crt": _b64(ca_pem), "namespace": _b64(meta["namespace"])},
    }

