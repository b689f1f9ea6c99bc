"""A pod's references to objects of its namespace: ConfigMaps, Secrets and PersistentVolumeClaims.

One walker (pod_references, container_references) lists every place in a pod spec that names such an object.
It serves both reading them (the objects to sync before the pod: referenced_configmaps, referenced_secrets,
referenced_pvcs) and rewriting them to the host copies' names (rewrite_references), so a place the walker
learns is read and rewritten alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .names import host_name_for
from .podspec import CONTAINER_FIELDS, ROOT_CA_CONFIGMAP, ephemeral_claim_name, is_token_projection
from .settings import TranslatorSettings

CONFIGMAP = "ConfigMap"
SECRET = "Secret"
PVC = "PersistentVolumeClaim"
#: volume plugins naming a Secret of the pod's namespace in ``<plugin>.secretRef.name`` (the kubelet reads it
#: for the plugin); on the host that namespace is N, so the name must be the virtual Secret's host name.
SECRET_REF_VOLUMES = ("cephfs", "rbd", "iscsi", "flexVolume", "scaleIO", "storageos")


@dataclass(frozen=True)
class Ref:
    """One place in a pod spec that names an object of the pod's namespace."""

    kind: str  # CONFIGMAP, SECRET or PVC
    name: str  # the virtual object's name
    site: str  # where, as a path into the pod spec: "volumes[0].secret.secretName"
    #: puts the host copy's name in that place (the walked spec must be one the caller may change)
    set_name: Callable[[str], None] = field(compare=False, repr=False)


def _at(kind: str, holder: Any, key: str, site: str) -> Iterator[Ref]:
    """The reference holder[key], if there is a name there."""
    name = holder.get(key) if isinstance(holder, dict) else None
    if name:
        def set_name(host: str) -> None:
            holder[key] = host
        yield Ref(kind, name, site, set_name)


def _mount_claim(volume: dict[str, Any], host: str) -> None:
    """A generic ephemeral volume: the host's ephemeral-volume controller would create a claim in N from the
    template as it is, volumeName (a host PersistentVolume, bound by name) and dataSource (a host claim of N)
    included. The virtual controller makes the claim <pod>-<volume> in the virtual cluster; it is synced like
    any claim (translate_pvc), and the host pod mounts its host copy. (vcluster does the same.)"""
    volume.pop("ephemeral")
    volume["persistentVolumeClaim"] = {"claimName": host}


def _volume_references(volume: dict[str, Any], at: str, pod: Mapping[str, Any]) -> Iterator[Ref]:
    yield from _at(CONFIGMAP, volume.get("configMap"), "name", f"{at}.configMap.name")
    yield from _at(SECRET, volume.get("secret"), "secretName", f"{at}.secret.secretName")
    yield from _at(SECRET, (volume.get("csi") or {}).get("nodePublishSecretRef"), "name",
                   f"{at}.csi.nodePublishSecretRef.name")
    for plugin in SECRET_REF_VOLUMES:
        # Left as is, these would name a Secret of the host namespace N (the kubeconfig Secret vc-R, say),
        # which the kubelet would read and hand to the volume plugin.
        yield from _at(SECRET, (volume.get(plugin) or {}).get("secretRef"), "name", f"{at}.{plugin}.secretRef.name")
    yield from _at(SECRET, volume.get("azureFile"), "secretName", f"{at}.azureFile.secretName")
    token_projection = is_token_projection(volume)
    for index, source in enumerate((volume.get("projected") or {}).get("sources") or []):
        configmap = source.get("configMap")
        if not (token_projection and (configmap or {}).get("name") == ROOT_CA_CONFIGMAP):
            # (kube-root-ca.crt next to a token is served from the token Secret, tokens.serve_tokens)
            yield from _at(CONFIGMAP, configmap, "name", f"{at}.projected.sources[{index}].configMap.name")
        yield from _at(SECRET, source.get("secret"), "name", f"{at}.projected.sources[{index}].secret.name")
    if (volume.get("persistentVolumeClaim") or {}).get("claimName"):
        yield from _at(PVC, volume["persistentVolumeClaim"], "claimName", f"{at}.persistentVolumeClaim.claimName")
    elif volume.get("ephemeral"):
        yield Ref(PVC, ephemeral_claim_name(pod, volume), f"{at}.ephemeral",
                  lambda host: _mount_claim(volume, host))


def container_references(container: Mapping[str, Any], at: str = "") -> list[Ref]:
    """The references of one container (of any type): env valueFrom and envFrom. ``at``: the container's
    path, for Ref.site."""
    refs: list[Ref] = []
    for index, var in enumerate(container.get("env") or []):
        source = var.get("valueFrom") or {}
        site = f"{at}env[{index}].valueFrom"
        refs += _at(CONFIGMAP, source.get("configMapKeyRef"), "name", f"{site}.configMapKeyRef.name")
        refs += _at(SECRET, source.get("secretKeyRef"), "name", f"{site}.secretKeyRef.name")
    for index, env_from in enumerate(container.get("envFrom") or []):
        refs += _at(CONFIGMAP, env_from.get("configMapRef"), "name", f"{at}envFrom[{index}].configMapRef.name")
        refs += _at(SECRET, env_from.get("secretRef"), "name", f"{at}envFrom[{index}].secretRef.name")
    return refs


def pod_references(pod: Mapping[str, Any]) -> list[Ref]:
    """Every reference of a pod: volumes (plain, projected, plugin secrets, claims, generic ephemeral volumes),
    containers of every type, imagePullSecrets. A list made before any name changes, so rewriting the
    references cannot disturb the walk."""
    spec = pod.get("spec") or {}
    refs: list[Ref] = []
    for index, volume in enumerate(spec.get("volumes") or []):
        refs += _volume_references(volume, f"volumes[{index}]", pod)
    for field_name in CONTAINER_FIELDS:
        for index, container in enumerate(spec.get(field_name) or []):
            refs += container_references(container, f"{field_name}[{index}].")
    for index, pull in enumerate(spec.get("imagePullSecrets") or []):
        refs += _at(SECRET, pull, "name", f"imagePullSecrets[{index}].name")
    return refs


def _names(pod: Mapping[str, Any], kind: str) -> set[str]:
    return {ref.name for ref in pod_references(pod) if ref.kind == kind}


def referenced_configmaps(pod: Mapping[str, Any]) -> set[str]:
    """Names of the ConfigMaps a pod uses."""
    return _names(pod, CONFIGMAP)


def referenced_secrets(pod: Mapping[str, Any]) -> set[str]:
    """Names of the Secrets a pod uses."""
    return _names(pod, SECRET)


def referenced_pvcs(pod: Mapping[str, Any]) -> set[str]:
    """Names of the claims a pod uses (a generic ephemeral volume's: the one its controller makes)."""
    return _names(pod, PVC)


def rewrite_references(refs: Iterable[Ref], namespace: str, settings: TranslatorSettings) -> None:
    """Each reference names the host copy of the object of the virtual namespace it names."""
    for ref in refs:
        ref.set_name(host_name_for(ref.kind, ref.name, namespace, settings))
