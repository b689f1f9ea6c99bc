"""Host names of virtual objects.

Scheme (the rule itself is ``vcluster_syncer/contract.py``, shared with the plugin; documented in
docs/architecture.md): ``<name>-x-<namespace>-x-<R>``. When that is longer than 63 it becomes the
first 52 characters (a trailing ``.`` dropped) + ``-`` + the first 10 hex characters of
sha256(full name). The hash covers the *full* name, so two different long names that share their
first 52 characters still get different host names, and the same virtual object always maps to the
same host name (a restarted syncer finds its objects again).

One limit, 63, for every kind we create on the host:
  * Service names must be DNS-1035 labels (<= 63).
  * Pod names may be 253 long, but the pod's hostname and the values of labels that controllers
    derive from pod names are limited to 63; 63 keeps host pods label-safe.
  * ConfigMaps, Secrets, PVCs and Endpoints could be 253 long; we still use 63 so that every kind
    follows one rule (an Endpoints object must have exactly its Service's name, and a reader of the
    host namespace can predict any name from the same rule).
"""

from __future__ import annotations

from ..contract import HASH_LEN, host_name, safe_concat, sha256_hex
from .settings import TranslatorSettings

__all__ = ["host_name", "host_name_for", "hostname_for_pod", "safe_concat", "token_secret_name", "translate_label_key"]


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
