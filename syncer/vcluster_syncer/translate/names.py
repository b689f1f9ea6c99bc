"""Host names of virtual objects.

Scheme (shared with docs/architecture.md): ``<name>-x-<namespace>-x-<R>``. When that is longer than
the kind's limit it becomes the first 52 characters + ``-`` + the first 10 hex characters of
sha256(full name). The hash covers the *full* name, so two different long names that share their
first 52 characters still get different host names, and the same virtual object always maps to the
same host name (a restarted syncer finds its objects again).

Limit per kind: 63 for every kind we create on the host.
  * Service names must be DNS-1035 labels (<= 63).
  * Pod names may be 253 long, but the pod's hostname and the values of labels that controllers
    derive from pod names are limited to 63; 63 keeps host pods label-safe.
  * ConfigMaps, Secrets, PVCs and Endpoints could be 253 long; we still use 63 so that every kind
    follows one rule (an Endpoints object must have exactly its Service's name, and a reader of the
    host namespace can predict any name from the same rule).
"""

from __future__ import annotations

import hashlib

from .settings import TranslatorSettings

HASH_PREFIX_LEN = 52
HASH_LEN = 10
DEFAULT_LIMIT = 63


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def safe_concat(full: str, limit: int = DEFAULT_LIMIT) -> str:
    """Return ``full`` if it fits ``limit``, else its 52-character prefix, ``-`` and 10 hex of its sha256."""
    if len(full) <= limit:
        return full
    short = full[:HASH_PREFIX_LEN] + "-" + sha256_hex(full)[:HASH_LEN]
    # A prefix ending in "." would produce ".-", which is not a valid DNS subdomain; collapse it.
    return short.replace(".-", "-")


def host_name(name: str, namespace: str, vcluster: str, limit: int = DEFAULT_LIMIT) -> str:
    """Host name of the namespaced virtual object ``namespace/name`` of virtual cluster ``vcluster``."""
    return safe_concat(f"{name}-x-{namespace}-x-{vcluster}", limit)


def host_name_for(kind: str, name: str, namespace: str, settings: TranslatorSettings) -> str:
    """Host name of a virtual object of ``kind``. Every kind follows the same rule and limit (module
    docstring); ``kind`` says at the call site which object is meant."""
    return host_name(name, namespace, settings.vcluster_name)


def token_secret_name(pod_name: str, namespace: str, settings: TranslatorSettings) -> str:
    """Host Secret holding the virtual service account token of one pod."""
    return host_name(f"{pod_name}-sa-token", namespace, settings.vcluster_name)


def translate_label_key(key: str, settings: TranslatorSettings) -> str:
    """Host form of a virtual label key: ``vcluster.loft.sh/label-<R>-x-<sha256(key)[:10]>``.

    The name part of a label key is limited to 63 characters; a long release name is hashed again
    with the same rule as object names.
    """
    return "vcluster.loft.sh/" + safe_concat(f"label-{settings.vcluster_name}-x-{sha256_hex(key)[:HASH_LEN]}")


def hostname_for_pod(name: str) -> str | None:
    """A pod hostname (DNS-1123 label) derived from the virtual pod name, as the kubelet would, or None."""
    candidate = name[:63].rstrip("-.")
    if not candidate or "." in candidate:
        return None
    return candidate
