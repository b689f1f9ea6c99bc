"""NetworkPolicies (when SYNC_NETWORK_POLICIES is on).

A host policy lives in N and applies to pods of N, so every selector is rewritten to pick host copies:
  * ``podSelector`` (whom it applies to; peers in the policy's own namespace): translated label keys plus
    the markers of the policy's virtual namespace.
  * ``namespaceSelector`` in peers: there are no host namespaces per virtual namespace; the virtual
    namespaces it matches (by their labels) are resolved here into ``vcluster.loft.sh/namespace In [...]``.
    So the translation depends on the virtual namespaces' labels, and policies are re-translated when
    they change.
  * ``ipBlock`` peers and ports are addresses on the host network already and stay as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .metadata import (
    MANAGED_BY,
    add_to_selector,
    host_metadata,
    marker_labels,
    merge_diff,
    selector_for_namespaces,
    selector_matches,
    translate_label_selector,
)
from .names import host_name_for
from .settings import TranslatorSettings


def _merge(selector: dict[str, Any], scope: Mapping[str, Any]) -> dict[str, Any]:
    out = add_to_selector(selector, scope.get("matchLabels") or {})
    expressions = list(out.get("matchExpressions") or []) + list(scope.get("matchExpressions") or [])
    if expressions:
        out["matchExpressions"] = expressions
    return out


def _translate_peer(peer: Mapping[str, Any], vns: str, settings: TranslatorSettings,
                    namespaces: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    if "ipBlock" in peer:
        return copy.deepcopy(dict(peer))
    pods = translate_label_selector(peer.get("podSelector"), settings)
    if "namespaceSelector" in peer:
        matching = [ns for ns, labels in namespaces.items() if selector_matches(peer["namespaceSelector"], labels)]
        scope = selector_for_namespaces(matching, settings)
    else:
        scope = {"matchLabels": marker_labels(vns, settings)}
    # No namespaceSelector on the host: every host copy lives in N, the policy's own namespace.
    return {"podSelector": _merge(pods, scope)}


def translate_network_policy(vnp: Mapping[str, Any], settings: TranslatorSettings,
                             namespaces: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """``namespaces``: every virtual namespace with its labels."""
    meta = vnp["metadata"]
    vns = meta["namespace"]
    vspec = vnp.get("spec") or {}
    spec: dict[str, Any] = {
        "podSelector": _merge(translate_label_selector(vspec.get("podSelector"), settings),
                              {"matchLabels": marker_labels(vns, settings)}),
    }
    if vspec.get("policyTypes"):
        spec["policyTypes"] = list(vspec["policyTypes"])
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        rules = vspec.get(direction)
        if rules is None:
            continue
        out_rules = []
        for rule in rules:
            new = {k: copy.deepcopy(v) for k, v in rule.items() if k != peers_key}
            if rule.get(peers_key):
                new[peers_key] = [_translate_peer(p, vns, settings, namespaces) for p in rule[peers_key]]
            out_rules.append(new)
        spec[direction] = out_rules
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": host_metadata(vnp, "NetworkPolicy", host_name_for("NetworkPolicy", meta["name"], vns, settings),
                                  settings),
        "spec": spec,
    }


def network_policy_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """Merge-patch bringing the host policy's spec to the translated one."""
    diff = merge_diff(actual.get("spec") or {}, desired.get("spec") or {})
    return {"spec": diff} if diff else None


__all__ = ["translate_network_policy", "network_policy_patch", "MANAGED_BY"]
