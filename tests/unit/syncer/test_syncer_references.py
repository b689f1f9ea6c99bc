"""The one reference walker (translate/references.py): what it reads at each site of a pod spec, and that the
host pod has the host copy's name at exactly that site."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from syncer_testdata import CTX, SETTINGS, pod, token_volume
from vcluster_syncer.translate.pods import host_ephemeral_containers, translate_pod
from vcluster_syncer.translate.references import (
    container_references,
    pod_references,
    referenced_configmaps,
    referenced_pvcs,
    referenced_secrets,
    rewrite_references,
)

C = {"name": "c", "image": "i"}


def vol(**source: Any) -> dict[str, Any]:
    return {"volumes": [{"name": "v", **source}]}


def at(obj: Any, site: str) -> Any:
    """The value at a site such as "volumes[0].secret.secretName"."""
    for name, index in re.findall(r"([^.\[\]]+)(?:\[(\d+)\])?", site):
        obj = obj[name]
        if index:
            obj = obj[int(index)]
    return obj


# spec fragment (of pod web in namespace team, container C unless it names its own), what the walker reads
# there (kind, name, site), and the name at that site of the host pod (host_site: where it differs).
SITES = [
    (vol(configMap={"name": "cfg"}), ("ConfigMap", "cfg", "volumes[0].configMap.name"), "cfg-x-team-x-vc"),
    (vol(secret={"secretName": "s"}), ("Secret", "s", "volumes[0].secret.secretName"), "s-x-team-x-vc"),
    (vol(csi={"driver": "d", "nodePublishSecretRef": {"name": "csi"}}),
     ("Secret", "csi", "volumes[0].csi.nodePublishSecretRef.name"), "csi-x-team-x-vc"),
    (vol(cephfs={"monitors": ["m"], "secretRef": {"name": "ceph"}}),
     ("Secret", "ceph", "volumes[0].cephfs.secretRef.name"), "ceph-x-team-x-vc"),
    (vol(rbd={"monitors": ["m"], "image": "i", "secretRef": {"name": "rbd"}}),
     ("Secret", "rbd", "volumes[0].rbd.secretRef.name"), "rbd-x-team-x-vc"),
    (vol(iscsi={"targetPortal": "1.2.3.4", "iqn": "iqn.x", "lun": 0, "secretRef": {"name": "iscsi"}}),
     ("Secret", "iscsi", "volumes[0].iscsi.secretRef.name"), "iscsi-x-team-x-vc"),
    (vol(flexVolume={"driver": "d", "secretRef": {"name": "vc-vc"}}),
     ("Secret", "vc-vc", "volumes[0].flexVolume.secretRef.name"), "vc-vc-x-team-x-vc"),
    (vol(scaleIO={"gateway": "g", "system": "s", "secretRef": {"name": "sio"}}),
     ("Secret", "sio", "volumes[0].scaleIO.secretRef.name"), "sio-x-team-x-vc"),
    (vol(storageos={"volumeName": "v", "secretRef": {"name": "sos"}}),
     ("Secret", "sos", "volumes[0].storageos.secretRef.name"), "sos-x-team-x-vc"),
    (vol(azureFile={"secretName": "az", "shareName": "x"}),
     ("Secret", "az", "volumes[0].azureFile.secretName"), "az-x-team-x-vc"),
    (vol(projected={"sources": [{"downwardAPI": {"items": []}}, {"configMap": {"name": "pcm"}}]}),
     ("ConfigMap", "pcm", "volumes[0].projected.sources[1].configMap.name"), "pcm-x-team-x-vc"),
    (vol(projected={"sources": [{"secret": {"name": "ps"}}]}),
     ("Secret", "ps", "volumes[0].projected.sources[0].secret.name"), "ps-x-team-x-vc"),
    # kube-root-ca.crt without a token next to it is an ordinary ConfigMap
    (vol(projected={"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}),
     ("ConfigMap", "kube-root-ca.crt", "volumes[0].projected.sources[0].configMap.name"),
     "kube-root-ca.crt-x-team-x-vc"),
    # a Secret next to a token is a reference; the token, CA and namespace sources are not (token_volume)
    ({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}},
                                                          {"secret": {"name": "extra"}}]}}]},
     ("Secret", "extra", "volumes[0].projected.sources[1].secret.name"), "extra-x-team-x-vc"),
    (vol(persistentVolumeClaim={"claimName": "data"}),
     ("PersistentVolumeClaim", "data", "volumes[0].persistentVolumeClaim.claimName"), "data-x-team-x-vc"),
    (vol(ephemeral={"volumeClaimTemplate": {"spec": {}}}),
     ("PersistentVolumeClaim", "web-v", "volumes[0].ephemeral"),
     ("volumes[0].persistentVolumeClaim.claimName", "web-v-x-team-x-vc")),
    ({"containers": [{**C, "env": [{"name": "A", "value": "x"},
                                   {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "ecm", "key": "k"}}}]}]},
     ("ConfigMap", "ecm", "containers[0].env[1].valueFrom.configMapKeyRef.name"),
     # on the host the 8 KUBERNETES_* variables of the service environment come first
     ("containers[0].env[9].valueFrom.configMapKeyRef.name", "ecm-x-team-x-vc")),
    ({"containers": [C], "initContainers": [{**C, "env": [{"name": "A", "valueFrom": {"secretKeyRef": {
        "name": "es", "key": "k"}}}]}]},
     ("Secret", "es", "initContainers[0].env[0].valueFrom.secretKeyRef.name"),
     ("initContainers[0].env[8].valueFrom.secretKeyRef.name", "es-x-team-x-vc")),
    ({"containers": [C, {**C, "name": "d", "envFrom": [{"configMapRef": {"name": "efcm"}}]}]},
     ("ConfigMap", "efcm", "containers[1].envFrom[0].configMapRef.name"), "efcm-x-team-x-vc"),
    ({"containers": [{**C, "envFrom": [{"prefix": "P_"}, {"secretRef": {"name": "efs"}}]}]},
     ("Secret", "efs", "containers[0].envFrom[1].secretRef.name"), "efs-x-team-x-vc"),
    # the host pod gets ephemeral containers later, through host_ephemeral_containers
    ({"containers": [C], "ephemeralContainers": [{**C, "name": "dbg", "envFrom": [{"secretRef": {"name": "dbg"}}]}]},
     ("Secret", "dbg", "ephemeralContainers[0].envFrom[0].secretRef.name"), "dbg-x-team-x-vc"),
    ({"containers": [C], "imagePullSecrets": [{"name": "pull"}]},
     ("Secret", "pull", "imagePullSecrets[0].name"), "pull-x-team-x-vc"),
]


def with_container(spec: dict[str, Any]) -> dict[str, Any]:
    return {"containers": [C], **copy.deepcopy(spec)}


@pytest.mark.parametrize(("spec", "read", "host"), SITES, ids=[row[1][2] for row in SITES])
def test_each_site_is_read_and_rewritten(spec: dict[str, Any], read: tuple[str, str, str],
                                         host: str | tuple[str, str]) -> None:
    vpod = pod(spec=with_container(spec))
    assert [(r.kind, r.name, r.site) for r in pod_references(vpod)] == [read]
    kind, name, site = read
    host_site, host_name = host if isinstance(host, tuple) else (site, host)
    if site.startswith("ephemeralContainers[0]."):
        assert at(host_ephemeral_containers(vpod, SETTINGS, CTX)[0], site.split(".", 1)[1]) == host_name
    else:
        assert at(translate_pod(vpod, SETTINGS, CTX)["spec"], host_site) == host_name
    by_kind = {"ConfigMap": referenced_configmaps, "Secret": referenced_secrets,
               "PersistentVolumeClaim": referenced_pvcs}
    assert {k: f(vpod) for k, f in by_kind.items()} == {k: {name} if k == kind else set() for k in by_kind}


@pytest.mark.parametrize(
    "spec",
    [
        {"volumes": [token_volume()]},  # token, kube-root-ca.crt and namespace: served from the token Secret
        vol(emptyDir={}),
        vol(downwardAPI={"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}),
        vol(configMap={}),  # no name: nothing to sync or rename
        vol(secret={"secretName": ""}),
        vol(configMap=None),
        {"containers": [{**C, "env": [{"name": "A", "value": "x"},
                                      {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]},
        {"imagePullSecrets": [{}]},
    ],
)
def test_not_a_reference(spec: dict[str, Any]) -> None:
    assert pod_references(pod(spec=with_container(spec))) == []


def test_rewrite_changes_exactly_the_sites_read() -> None:
    """All sites in one pod: rewriting what the walker read changes those places, to the host names, and
    nothing else (the ephemeral volume, which becomes a claim, has its own row above)."""
    spec: dict[str, Any] = {"volumes": [], "containers": [], "initContainers": [], "ephemeralContainers": [],
                            "imagePullSecrets": []}
    for row_spec, _, _ in SITES:
        if "ephemeral" in str(row_spec.get("volumes")):
            continue
        for field, items in row_spec.items():
            spec[field] += copy.deepcopy(items)
    vpod = pod(spec=spec)
    refs = pod_references(vpod)
    host = copy.deepcopy(vpod)
    rewrite_references(pod_references(host), "team", SETTINGS)

    def leaves(obj: Any, path: str = "") -> dict[str, Any]:
        if isinstance(obj, dict):
            return {k: v for key, value in obj.items()
                    for k, v in leaves(value, f"{path}.{key}" if path else key).items()}
        if isinstance(obj, list):
            return {k: v for i, value in enumerate(obj) for k, v in leaves(value, f"{path}[{i}]").items()}
        return {path: obj}

    before, after = leaves(vpod["spec"]), leaves(host["spec"])
    assert before.keys() == after.keys()
    changed = {path: after[path] for path in before if before[path] != after[path]}
    assert changed == {r.site: f"{r.name}-x-team-x-vc" for r in refs}
    assert len(refs) == len(SITES) - 1


def test_container_references_name_their_container() -> None:
    container = {**C, "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    assert [r.site for r in container_references(container)] == ["env[0].valueFrom.secretKeyRef.name"]
    assert [r.site for r in container_references(container, "ephemeralContainers[2].")] == [
        "ephemeralContainers[2].env[0].valueFrom.secretKeyRef.name"]


def test_reading_changes_nothing() -> None:
    vpod = pod(spec=with_container({"volumes": [{"name": "v", "ephemeral": {"volumeClaimTemplate": {}}},
                                                {"name": "w", "secret": {"secretName": "s"}}]}))
    before = copy.deepcopy(vpod)
    assert referenced_pvcs(vpod) == {"web-v"} and referenced_secrets(vpod) == {"s"}
    assert vpod == before
