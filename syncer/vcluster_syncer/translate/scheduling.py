"""Scheduling of a host pod: nodeName, node selectors, pod (anti-)affinity and topology spread, made to
mean on the host what they mean in the virtual cluster."""

from __future__ import annotations

import copy
from typing import Any

from .metadata import (
    FAKE_NODE_LABEL,
    add_to_selector,
    marker_labels,
    selector_for_namespaces,
    selector_matches,
    translate_label_selector,
)
from .names import translate_label_key
from .settings import PodContext, TranslatorSettings

HOSTNAME_LABEL = "kubernetes.io/hostname"


def _translate_pod_selector_term(term: dict[str, Any], vns: str, settings: TranslatorSettings,
                                 ctx: PodContext) -> dict[str, Any]:
    """A pod (anti-)affinity term: pod labels translated; the namespaces it looks at become marker labels."""
    term = copy.deepcopy(term)
    selector = translate_label_selector(term.get("labelSelector"), settings)
    if term.get("namespaceSelector") is not None:
        namespaces = [ns for ns, labels in ctx.namespace_labels.items()
                      if selector_matches(term["namespaceSelector"], labels)]
        namespaces.extend(term.get("namespaces") or [])
        scope = selector_for_namespaces(namespaces, settings)
    else:
        scope = selector_for_namespaces(term.get("namespaces") or [vns], settings)
    selector = add_to_selector(selector, scope.get("matchLabels") or {})
    selector.setdefault("matchExpressions", []).extend(scope.get("matchExpressions") or [])
    term["labelSelector"] = selector
    # All host copies live in N, the pod's own namespace: the namespace scope is in the selector now.
    term.pop("namespaceSelector", None)
    term.pop("namespaces", None)
    for field in ("matchLabelKeys", "mismatchLabelKeys"):
        if term.get(field):
            term[field] = [translate_label_key(k, settings) for k in term[field]]
    return term


def _translate_affinity(affinity: dict[str, Any], vns: str, settings: TranslatorSettings, ctx: PodContext) -> None:
    for kind in ("podAffinity", "podAntiAffinity"):
        block = affinity.get(kind)
        if not block:
            continue
        required = block.get("requiredDuringSchedulingIgnoredDuringExecution")
        if required:
            block["requiredDuringSchedulingIgnoredDuringExecution"] = [
                _translate_pod_selector_term(t, vns, settings, ctx) for t in required
            ]
        preferred = block.get("preferredDuringSchedulingIgnoredDuringExecution")
        if preferred:
            block["preferredDuringSchedulingIgnoredDuringExecution"] = [
                {**p, "podAffinityTerm": _translate_pod_selector_term(p["podAffinityTerm"], vns, settings, ctx)}
                for p in preferred
            ]


def translate_scheduling(spec: dict[str, Any], vns: str, settings: TranslatorSettings, ctx: PodContext) -> None:
    node_name = spec.get("nodeName")
    if node_name and node_name not in ctx.host_node_names | ctx.fake_node_names:
        # A nodeName the host does not know: pinning the host pod to it would leave it Pending forever; the
        # host scheduler places it instead. A host node the syncer sees, or a fake node (it stands for the
        # host node of the same name while synced pods run there), is kept: the pod goes straight to that
        # node's kubelet, which admits it or fails it (a taken hostPort: the StatefulSet spec "Should
        # recreate evicted statefulset" waits for exactly that).
        spec.pop("nodeName")
    selector = spec.get("nodeSelector")
    if selector:
        kept = {}
        for key, value in selector.items():
            if key == FAKE_NODE_LABEL:
                continue  # only fake (virtual) nodes carry this label; no host node has it
            if key == HOSTNAME_LABEL and value in ctx.fake_node_names and value not in ctx.host_node_names:
                continue  # names a fake node, same reasoning as nodeName
            kept[key] = value
        if kept:
            spec["nodeSelector"] = kept
        else:
            spec.pop("nodeSelector")
    if spec.get("affinity"):
        _translate_affinity(spec["affinity"], vns, settings, ctx)
    for constraint in spec.get("topologySpreadConstraints") or []:
        # Spreading counts pods matching the selector in the pod's namespace (N on the host): restrict it
        # to the host copies of this virtual namespace.
        constraint["labelSelector"] = add_to_selector(
            translate_label_selector(constraint.get("labelSelector"), settings), marker_labels(vns, settings))
        if constraint.get("matchLabelKeys"):
            constraint["matchLabelKeys"] = [translate_label_key(k, settings) for k in constraint["matchLabelKeys"]]

