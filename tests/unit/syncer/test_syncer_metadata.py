from __future__ import annotations

from typing import Any

import pytest
from syncer_testdata import SETTINGS, pod
from vcluster_syncer.translate.metadata import (
    ANN_KIND,
    ANN_MANAGED_ANNOTATIONS,
    ANN_NAME,
    ANN_NAMESPACE,
    ANN_UID,
    MANAGED_BY,
    NAMESPACE_LABEL,
    format_map,
    host_labels,
    host_metadata,
    is_managed,
    merge_diff,
    metadata_patch,
    selector_for_namespaces,
    selector_matches,
    translate_selector_map,
    virtual_ref,
)
from vcluster_syncer.translate.names import translate_label_key

K = lambda key: translate_label_key(key, SETTINGS)  # noqa: E731


@pytest.mark.parametrize(
    ("labels", "translate_all", "expected"),
    [
        ({"app": "web"}, True, {K("app"): "web"}),
        ({"app": "web"}, False, {"app": "web"}),
        # users cannot forge the markers: reserved keys are always hashed
        ({MANAGED_BY: "other", NAMESPACE_LABEL: "kube-system"}, False,
         {K(MANAGED_BY): "other", K(NAMESPACE_LABEL): "kube-system"}),
        ({"sub.vcluster.loft.sh/x": "1"}, False, {K("sub.vcluster.loft.sh/x"): "1"}),
        ({"notvcluster.loft.sh/x": "1"}, False, {"notvcluster.loft.sh/x": "1"}),
        (None, True, {}),
    ],
)
def test_host_labels(labels: dict[str, str] | None, translate_all: bool, expected: dict[str, str]) -> None:
    out = host_labels(labels, "team", SETTINGS, translate_all=translate_all)
    assert out == {**expected, MANAGED_BY: "vc", NAMESPACE_LABEL: "team"}


def test_service_selector_selects_only_this_namespace() -> None:
    selector = translate_selector_map({"app": "web"}, "team", SETTINGS)
    mine = host_labels({"app": "web", "tier": "x"}, "team", SETTINGS, translate_all=True)
    other_ns = host_labels({"app": "web"}, "other", SETTINGS, translate_all=True)
    plain = {"app": "web"}  # e.g. the chart's own pods in N
    assert all(mine.get(k) == v for k, v in selector.items())
    assert not all(other_ns.get(k) == v for k, v in selector.items())
    assert not all(plain.get(k) == v for k, v in selector.items())


def test_host_metadata_points_back() -> None:
    vobj = {"metadata": {"name": "cm", "namespace": "team", "uid": "u1", "labels": {"a": "b"},
                         "annotations": {"note": "x", "kubectl.kubernetes.io/last-applied-configuration": "{}",
                                         ANN_NAME: "forged"}}}
    meta = host_metadata(vobj, "ConfigMap", "cm-x-team-x-vc", SETTINGS)
    assert meta["name"] == "cm-x-team-x-vc" and meta["namespace"] == "host-ns"
    assert meta["labels"] == {"a": "b", MANAGED_BY: "vc", NAMESPACE_LABEL: "team"}
    ann = meta["annotations"]
    assert ann[ANN_NAME] == "cm" and ann[ANN_NAMESPACE] == "team" and ann[ANN_UID] == "u1"
    assert ann[ANN_KIND] == "ConfigMap"
    assert ann["note"] == "x" and "kubectl.kubernetes.io/last-applied-configuration" not in ann
    assert ann[ANN_MANAGED_ANNOTATIONS] == "note"
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "vc", "uid": "svc-uid",
                                        "controller": False, "blockOwnerDeletion": False}]
    host = {"metadata": meta}
    assert virtual_ref(host) == ("ConfigMap", "team", "cm", "u1")
    assert is_managed(host, SETTINGS)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {"a": "1"}, True),
        (None, {"a": "1"}, False),
        ({"matchLabels": {"a": "1"}}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
    ],
)
def test_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


def test_selector_for_no_namespace_matches_nothing() -> None:
    sel = selector_for_namespaces([], SETTINGS)
    assert not selector_matches(sel, {MANAGED_BY: "vc", NAMESPACE_LABEL: "team"})
    sel = selector_for_namespaces(["b", "a"], SETTINGS)
    assert sel["matchExpressions"][0]["values"] == ["a", "b"]
    assert selector_matches(sel, {MANAGED_BY: "vc", NAMESPACE_LABEL: "a"})


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, ""),
        ({"b": "2", "a": "1"}, 'a="1"\nb="2"'),
        ({"q": 'say "hi"\n'}, 'q="say \\"hi\\"\\n"'),
    ],
)
def test_format_map_like_kubelet(values: dict[str, str], expected: str) -> None:
    assert format_map(values) == expected


def test_metadata_patch_keeps_foreign_keys_and_removes_ours() -> None:
    v1 = pod(labels={"app": "web"}, annotations={"a": "1", "b": "2"})
    v2 = pod(labels={"app": "api"}, annotations={"a": "1"})
    actual = {"metadata": host_metadata(v1, "Pod", "web-x-team-x-vc", SETTINGS)}
    actual["metadata"]["annotations"]["host-controller/added"] = "yes"
    assert metadata_patch({"metadata": host_metadata(v1, "Pod", "web-x-team-x-vc", SETTINGS)}, actual) is None
    patch = metadata_patch({"metadata": host_metadata(v2, "Pod", "web-x-team-x-vc", SETTINGS)}, actual)
    assert patch is not None
    assert patch["metadata"]["labels"] == {"app": "api"}
    assert patch["metadata"]["annotations"]["b"] is None
    assert "host-controller/added" not in patch["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("have", "want", "patch"),
    [
        ({"a": 1}, {"a": 1}, None),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, {"a": {"y": None}}),
        ({"l": [1, 2]}, {"l": [1]}, {"l": [1]}),
        ({}, {"n": None}, None),
    ],
)
def test_merge_diff(have: dict[str, Any], want: dict[str, Any], patch: dict[str, Any] | None) -> None:
    assert merge_diff(have, want) == patch
