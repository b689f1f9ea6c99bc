from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from syncer_testdata import SETTINGS, pod, token_volume
from vcluster_syncer.translate.configs import (
    data_patch,
    needs_recreate,
    should_sync,
    translate_configmap,
    translate_secret,
)
from vcluster_syncer.translate.references import referenced_configmaps, referenced_pvcs, referenced_secrets


def c(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "i", **fields}


@pytest.mark.parametrize(
    ("spec", "configmaps", "secrets"),
    [
        ({"containers": [c()]}, set(), set()),
        ({"containers": [c()], "volumes": [{"name": "v", "configMap": {"name": "cm1"}}]}, {"cm1"}, set()),
        ({"containers": [c()], "volumes": [{"name": "v", "secret": {"secretName": "s1"}}]}, set(), {"s1"}),
        ({"containers": [c()], "volumes": [{"name": "p", "projected": {"sources": [
            {"configMap": {"name": "cm2"}}, {"secret": {"name": "s2"}}]}}]}, {"cm2"}, {"s2"}),
        ({"containers": [c(env=[{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm3", "key": "k"}}},
                                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "k"}}}])]},
         {"cm3"}, {"s3"}),
        ({"containers": [c(envFrom=[{"configMapRef": {"name": "cm4"}}, {"secretRef": {"name": "s4"}}])]},
         {"cm4"}, {"s4"}),
        ({"containers": [c()], "initContainers": [c(envFrom=[{"configMapRef": {"name": "cm5"}}])]}, {"cm5"}, set()),
        ({"containers": [c()], "imagePullSecrets": [{"name": "pull"}]}, set(), {"pull"}),
        ({"containers": [c()], "volumes": [{"name": "v", "csi": {"driver": "d",
                                                                 "nodePublishSecretRef": {"name": "csi"}}}]},
         set(), {"csi"}),
        ({"containers": [c()], "volumes": [{"name": "v", "flexVolume": {"driver": "d", "secretRef": {"name": "f"}}},
                                           {"name": "w", "azureFile": {"secretName": "az", "shareName": "x"}}]},
         set(), {"f", "az"}),
        # the injected token projection does not need kube-root-ca.crt on the host
        ({"containers": [c()], "volumes": [token_volume()]}, set(), set()),
    ],
)
def test_references(spec: dict[str, Any], configmaps: set[str], secrets: set[str]) -> None:
    vpod = pod(spec=spec)
    assert referenced_configmaps(vpod) == configmaps
    assert referenced_secrets(vpod) == secrets


def test_pvc_references() -> None:
    vpod = pod(spec={"containers": [c()], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                                                      {"name": "e", "emptyDir": {}},
                                                      {"name": "tmp", "ephemeral": {"volumeClaimTemplate": {}}}]})
    assert referenced_pvcs(vpod) == {"data", "web-tmp"}


@pytest.mark.parametrize(
    ("kind", "referenced", "all_cm", "all_secrets", "expected"),
    [
        ("ConfigMap", False, False, False, False),
        ("ConfigMap", True, False, False, True),
        ("ConfigMap", False, True, False, True),
        ("Secret", False, True, False, False),
        ("Secret", False, False, True, True),
        ("Secret", True, False, False, True),
    ],
)
def test_should_sync(kind: str, referenced: bool, all_cm: bool, all_secrets: bool, expected: bool) -> None:
    settings = replace(SETTINGS, sync_all_configmaps=all_cm, sync_all_secrets=all_secrets)
    assert should_sync(kind, {}, referenced, settings) is expected


def test_translate_configmap_and_secret() -> None:
    cm = {"metadata": {"name": "cfg", "namespace": "team", "uid": "1"}, "data": {"a": "1"}, "binaryData": {"b": "AA=="}}
    h = translate_configmap(cm, SETTINGS)
    assert h["metadata"]["name"] == "cfg-x-team-x-vc"
    assert h["data"] == {"a": "1"} and h["binaryData"] == {"b": "AA=="}
    secret = {"metadata": {"name": "tok", "namespace": "team", "uid": "2"},
              "type": "kubernetes.io/service-account-token", "data": {"token": "eA=="}}
    hs = translate_secret(secret, SETTINGS)
    assert hs["type"] == "Opaque" and hs["data"] == {"token": "eA=="}
    tls = translate_secret({**secret, "type": "kubernetes.io/tls"}, SETTINGS)
    assert tls["type"] == "kubernetes.io/tls"


def test_data_patch_and_recreate() -> None:
    old = {"kind": "ConfigMap", "data": {"a": "1", "b": "2"}}
    new = {"kind": "ConfigMap", "data": {"a": "9"}}
    assert data_patch(new, old) == {"data": {"a": "9", "b": None}}
    assert data_patch(old, old) is None
    assert not needs_recreate(new, old)
    assert needs_recreate(new, {**old, "immutable": True})
    assert needs_recreate({"kind": "Secret", "type": "Opaque"}, {"kind": "Secret", "type": "kubernetes.io/tls"})
