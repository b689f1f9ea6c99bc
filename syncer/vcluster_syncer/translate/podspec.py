"""Walking a pod spec: containers of every type, volumes, and the references they hold."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
#: volume plugins naming a Secret of the pod's namespace in ``<plugin>.secretRef.name`` (the kubelet reads it
#: for the plugin); on the host that namespace is N, so the name must be the virtual Secret's host name.
SECRET_REF_VOLUMES = ("cephfs", "rbd", "iscsi", "flexVolume", "scaleIO", "storageos")


def containers(spec: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for field in CONTAINER_FIELDS:
        yield from spec.get(field) or []


def is_token_projection(volume: Mapping[str, Any]) -> bool:
    """A projected volume with a serviceAccountToken source (the API server injects one as kube-api-access-*).

    Its token, its kube-root-ca.crt certificate and its namespace file are served from the per-pod
    token Secret on the host, so the configmap it names is not a reference that needs syncing.
    """
    sources = ((volume.get("projected") or {}).get("sources")) or []
    return any("serviceAccountToken" in source for source in sources)


def _projected_refs(volume: Mapping[str, Any], kind: str) -> Iterator[str]:
    token_projection = is_token_projection(volume)
    for source in ((volume.get("projected") or {}).get("sources")) or []:
        ref = source.get(kind)
        if not ref or not ref.get("name"):
            continue
        if token_projection and kind == "configMap" and ref["name"] == ROOT_CA_CONFIGMAP:
            continue
        yield ref["name"]


def referenced_configmaps(pod: Mapping[str, Any]) -> set[str]:
    """Names of ConfigMaps a pod uses: volumes, projected sources, env valueFrom, envFrom."""
    spec = pod.get("spec") or {}
    names: set[str] = set()
    for volume in spec.get("volumes") or []:
        if (volume.get("configMap") or {}).get("name"):
            names.add(volume["configMap"]["name"])
        names.update(_projected_refs(volume, "configMap"))
    for container in containers(spec):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef") or {}
            if ref.get("name"):
                names.add(ref["name"])
        for env_from in container.get("envFrom") or []:
            ref = env_from.get("configMapRef") or {}
            if ref.get("name"):
                names.add(ref["name"])
    return names


def referenced_secrets(pod: Mapping[str, Any]) -> set[str]:
    """Names of Secrets a pod uses: volumes, projected sources, env, envFrom, imagePullSecrets, CSI secrets."""
    spec = pod.get("spec") or {}
    names: set[str] = set()
    for volume in spec.get("volumes") or []:
        if (volume.get("secret") or {}).get("secretName"):
            names.add(volume["secret"]["secretName"])
        csi_ref = (volume.get("csi") or {}).get("nodePublishSecretRef") or {}
        if csi_ref.get("name"):
            names.add(csi_ref["name"])
        names.update(_projected_refs(volume, "secret"))
        for plugin in SECRET_REF_VOLUMES:
            ref = (volume.get(plugin) or {}).get("secretRef") or {}
            if ref.get("name"):
                names.add(ref["name"])
        if (volume.get("azureFile") or {}).get("secretName"):
            names.add(volume["azureFile"]["secretName"])
    for container in containers(spec):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("name"):
                names.add(ref["name"])
        for env_from in container.get("envFrom") or []:
            ref = env_from.get("secretRef") or {}
            if ref.get("name"):
                names.add(ref["name"])
    for pull in spec.get("imagePullSecrets") or []:
        if pull.get("name"):
            names.add(pull["name"])
    return names


def ephemeral_claim_name(pod: Mapping[str, Any], volume: Mapping[str, Any]) -> str:
    """The claim the (virtual) ephemeral-volume controller makes for a generic ephemeral volume."""
    return f"{(pod.get('metadata') or {}).get('name', '')}-{volume.get('name', '')}"


def referenced_pvcs(pod: Mapping[str, Any]) -> set[str]:
    """Claims a pod uses: persistentVolumeClaim volumes and the claims of its generic ephemeral volumes."""
    spec = pod.get("spec") or {}
    names = set()
    for volume in spec.get("volumes") or []:
        if (volume.get("persistentVolumeClaim") or {}).get("claimName"):
            names.add(volume["persistentVolumeClaim"]["claimName"])
        elif volume.get("ephemeral"):
            names.add(ephemeral_claim_name(pod, volume))
    return names
