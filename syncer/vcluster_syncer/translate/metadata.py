"""Labels, annotations and owner references of host objects; label selector translation.

Label scheme (decided here, documented in syncer/README.md):
  * Host **pods** get every user label key rewritten to ``vcluster.loft.sh/label-<R>-x-<hash(key)>``
    (value unchanged) plus ``vcluster.loft.sh/managed-by=R`` and ``vcluster.loft.sh/namespace=<vns>``.
    Host selectors made by the syncer (Services, NetworkPolicies, affinity terms) are translated the
    same way and always carry both marker labels, so they select only the host copies of pods from
    the right virtual namespace of the right virtual cluster. Conversely, host-side selectors that
    the syncer did not write (the chart's own Service ``R`` and StatefulSet, anything else in ``N``)
    can never select a synced pod by accident, whatever labels users put on virtual pods.
    The original labels stay readable in the annotation ``vcluster.loft.sh/labels``.
  * Other kinds keep user labels verbatim (nothing on the host selects them by label), except keys in
    the reserved ``vcluster.loft.sh`` domain, which are rewritten to the hashed form so that a user can
    never forge the marker labels the syncer uses to find its objects.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from .. import contract
from .names import translate_label_key
from .settings import TranslatorSettings

# The keys others read too (the plugin, tests, users of `kubectl get -l`) are in the contract.
DOMAIN = contract.SYNCER_DOMAIN
MANAGED_BY = contract.LABEL_MANAGED_BY
NAMESPACE_LABEL = contract.LABEL_NAMESPACE
FAKE_NODE_LABEL = contract.LABEL_FAKE_NODE

ANN_NAME = contract.ANNOTATION_OBJECT_NAME
ANN_NAMESPACE = contract.ANNOTATION_OBJECT_NAMESPACE
ANN_UID = contract.ANNOTATION_OBJECT_UID
ANN_KIND = contract.ANNOTATION_OBJECT_KIND
ANN_LABELS = f"{DOMAIN}/labels"  # virtual labels in the kubelet's downward-API file format
ANN_ANNOTATIONS = f"{DOMAIN}/annotations"  # virtual annotations, same format (only when a pod reads them)
ANN_SERVICE_ACCOUNT = f"{DOMAIN}/service-account-name"
ANN_MANAGED_ANNOTATIONS = f"{DOMAIN}/managed-annotations"  # user annotation keys the syncer copied
ANN_MANAGED_LABELS = f"{DOMAIN}/managed-labels"  # host label keys the syncer set
ANN_TOKEN_EXPIRATION = f"{DOMAIN}/token-expiration"
ANN_HOST_OBJECT = f"{DOMAIN}/host-object"  # on virtual objects mirrored from the host (nodes, storage classes)

KIND_TOKEN_SECRET = "ServiceAccountToken"  # object-kind of the per-pod token Secrets

# Virtual annotations never copied to the host: large and meaningless there.
DROPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


def is_reserved_key(key: str) -> bool:
    prefix, sep, _ = key.rpartition("/")
    return bool(sep) and (prefix == DOMAIN or prefix.endswith("." + DOMAIN))


def owner_references(settings: TranslatorSettings) -> list[dict[str, Any]]:
    """Every host object points at the host Service SERVICE_NAME (not as controller: nothing reconciles them)."""
    if not settings.service_uid:
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": settings.owner_service,
            "uid": settings.service_uid,
            "controller": False,
            "blockOwnerDeletion": False,
        }
    ]


def marker_labels(virtual_namespace: str, settings: TranslatorSettings) -> dict[str, str]:
    return {MANAGED_BY: settings.vcluster_name, NAMESPACE_LABEL: virtual_namespace}


def host_labels(
    virtual_labels: Mapping[str, str] | None,
    virtual_namespace: str,
    settings: TranslatorSettings,
    *,
    translate_all: bool,
) -> dict[str, str]:
    """Host labels: user labels (all keys translated for pods, only reserved ones otherwise) + markers."""
    out: dict[str, str] = {}
    for key, value in (virtual_labels or {}).items():
        if translate_all or is_reserved_key(key):
            out[translate_label_key(key, settings)] = value
        else:
            out[key] = value
    out.update(marker_labels(virtual_namespace, settings))
    return out


def translate_selector_map(
    selector: Mapping[str, str] | None, virtual_namespace: str, settings: TranslatorSettings
) -> dict[str, str]:
    """A Service-style ``{key: value}`` pod selector in host form (keys translated, markers added)."""
    out = {translate_label_key(k, settings): v for k, v in (selector or {}).items()}
    out.update(marker_labels(virtual_namespace, settings))
    return out


def translate_label_selector(selector: Mapping[str, Any] | None, settings: TranslatorSettings) -> dict[str, Any]:
    """A ``LabelSelector`` over pod labels with every key translated (markers are added by callers)."""
    selector = selector or {}
    out: dict[str, Any] = {}
    match_labels = selector.get("matchLabels") or {}
    if match_labels:
        out["matchLabels"] = {translate_label_key(k, settings): v for k, v in match_labels.items()}
    expressions = selector.get("matchExpressions") or []
    if expressions:
        out["matchExpressions"] = [
            {**expr, "key": translate_label_key(expr["key"], settings)} for expr in expressions
        ]
    return out


def add_to_selector(selector: dict[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    out = copy.deepcopy(selector)
    out.setdefault("matchLabels", {}).update(labels)
    return out


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Evaluate a LabelSelector (``None`` matches nothing, ``{}`` matches everything)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_for_namespaces(namespaces: Iterable[str], settings: TranslatorSettings) -> dict[str, Any]:
    """A pod selector for the host copies of pods in the given virtual namespaces (none: matches nothing)."""
    names = sorted(set(namespaces))
    if not names:
        # An empty "In" list is invalid; managed-by=R together with managed-by DoesNotExist matches no pod.
        return {
            "matchLabels": {MANAGED_BY: settings.vcluster_name},
            "matchExpressions": [{"key": MANAGED_BY, "operator": "DoesNotExist"}],
        }
    return {
        "matchLabels": {MANAGED_BY: settings.vcluster_name},
        "matchExpressions": [{"key": NAMESPACE_LABEL, "operator": "In", "values": names}],
    }


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def go_quote(value: str) -> str:
    """Quote like Go's %q (what the kubelet uses when it writes downward-API label/annotation files)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_map(values: Mapping[str, str] | None) -> str:
    """The kubelet's downward-API format: sorted ``key="value"`` lines."""
    return "\n".join(f"{k}={go_quote(v)}" for k, v in sorted((values or {}).items()))


def host_metadata(
    vobj: Mapping[str, Any],
    kind: str,
    name: str,
    settings: TranslatorSettings,
    *,
    translate_all_labels: bool = False,
    extra_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Metadata of the host copy: name, namespace N, labels, annotations pointing back, owner reference."""
    vmeta = vobj.get("metadata") or {}
    vns = vmeta.get("namespace", "")
    labels = host_labels(vmeta.get("labels"), vns, settings, translate_all=translate_all_labels)
    user_annotations = {
        k: v
        for k, v in (vmeta.get("annotations") or {}).items()
        if k not in DROPPED_ANNOTATIONS and not is_reserved_key(k)
    }
    annotations = dict(user_annotations)
    annotations.update(extra_annotations or {})
    annotations.update(
        {
            ANN_NAME: vmeta.get("name", ""),
            ANN_NAMESPACE: vns,
            ANN_UID: vmeta.get("uid", ""),
            ANN_KIND: kind,
            ANN_MANAGED_ANNOTATIONS: "\n".join(sorted(user_annotations)),
            ANN_MANAGED_LABELS: "\n".join(sorted(labels)),
        }
    )
    meta: dict[str, Any] = {
        "name": name,
        "namespace": settings.host_namespace,
        "labels": labels,
        "annotations": annotations,
    }
    owners = owner_references(settings)
    if owners:
        meta["ownerReferences"] = owners
    return meta


def _managed_keys(annotations: Mapping[str, str], key: str) -> set[str]:
    return {k for k in (annotations.get(key) or "").split("\n") if k}


def metadata_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """Merge-patch for labels/annotations of a host object so it matches ``desired``.

    Keys other parties added to the host object (host controllers annotate PVCs, for example) are left
    alone: only keys the syncer set before (remembered in the managed-* annotations) are removed.
    """
    dmeta, ameta = desired.get("metadata") or {}, actual.get("metadata") or {}
    patch: dict[str, Any] = {}
    a_ann = ameta.get("annotations") or {}
    for field, managed_key in (("labels", ANN_MANAGED_LABELS), ("annotations", ANN_MANAGED_ANNOTATIONS)):
        want: Mapping[str, str] = dmeta.get(field) or {}
        have: Mapping[str, str] = ameta.get(field) or {}
        changes: dict[str, str | None] = {k: v for k, v in want.items() if have.get(k) != v}
        previously = _managed_keys(a_ann, managed_key)
        for key in previously - set(want):
            if key in have:
                changes[key] = None
        if changes:
            patch[field] = changes
    return {"metadata": patch} if patch else None


def virtual_ref(host_obj: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
    """(kind, namespace, name, uid) of the virtual object a host object was made from, if any."""
    ann = (host_obj.get("metadata") or {}).get("annotations") or {}
    if ANN_NAME not in ann or ANN_NAMESPACE not in ann:
        return None
    return ann.get(ANN_KIND, ""), ann[ANN_NAMESPACE], ann[ANN_NAME], ann.get(ANN_UID, "")


def is_managed(host_obj: Mapping[str, Any], settings: TranslatorSettings) -> bool:
    labels = (host_obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY) == settings.vcluster_name


def strip_runtime_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``obj`` without server-set metadata and status (to re-create it)."""
    out = copy.deepcopy(dict(obj))
    meta = out.get("metadata") or {}
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
                "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(key, None)
    out.pop("status", None)
    return out


def merge_diff(have: Any, want: Any) -> Any:
    """JSON merge patch (RFC 7386) turning ``have`` into ``want``; ``None`` when they are equal.

    Maps are diffed key by key (removed keys become null); anything else, lists included, is replaced.
    """
    if isinstance(have, Mapping) and isinstance(want, Mapping):
        patch: dict[str, Any] = {}
        for key, value in want.items():
            if key not in have:
                if value is not None:
                    patch[key] = copy.deepcopy(value)
            elif value is None:
                if have[key] is not None:
                    patch[key] = None
            else:
                sub = merge_diff(have[key], value)
                if sub is not None:
                    patch[key] = sub
        for key in have:
            if key not in want:
                patch[key] = None
        return patch or None
    if have == want:
        return None
    return copy.deepcopy(want) if want is not None else None
