"""Pods: the host form of a virtual pod, and what may change later.

The host pod must run on the host while looking, from inside, like the virtual pod. Every field that
is dropped or rewritten says why next to the code, here or in the module named for its concern: downward
(fieldRefs), env (service environment), hosts (DNS and /etc/hosts), scheduling, tokens (service account
tokens), runtimeclass (a RuntimeClass the host lacks); status flows back in status.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .downward import host_annotations, rewrite_field_ref
from .env import service_env
from .hosts import alias_api_server, hosts_entry, hosts_mount, rewrite_hosts, translate_dns
from .metadata import host_metadata
from .names import host_name_for, hostname_for_pod, token_secret_name
from .podspec import CONTAINER_FIELDS, ROOT_CA_CONFIGMAP, SECRET_REF_VOLUMES, ephemeral_claim_name, is_token_projection
from .scheduling import translate_scheduling
from .settings import PodContext, TranslatorSettings
from .tokens import token_key

# ---------------------------------------------------------------- volumes

def _only_namespace_items(source: Mapping[str, Any]) -> bool:
    items = (source.get("downwardAPI") or {}).get("items") or []
    return bool(items) and all((i.get("fieldRef") or {}).get("fieldPath") == "metadata.namespace" for i in items)


def _translate_projected(volume: dict[str, Any], vns: str, token_secret: str, settings: TranslatorSettings) -> None:
    token_projection = is_token_projection(volume)
    new_sources = []
    for source in volume["projected"].get("sources") or []:
        source = copy.deepcopy(source)
        if "serviceAccountToken" in source:
            # The host kubelet would mint a *host* token. The syncer asks the virtual API server for a
            # token of the virtual service account, bound to the virtual pod, and keeps it in a Secret.
            # Each audience/lifetime has its own token (and key) in that Secret (see token_key).
            path = source["serviceAccountToken"].get("path") or "token"
            key = token_key(source["serviceAccountToken"])
            source = {"secret": {"name": token_secret, "items": [{"key": key, "path": path}]}}
        elif token_projection and (source.get("configMap") or {}).get("name") == ROOT_CA_CONFIGMAP:
            # kube-root-ca.crt next to a token is the CA for that token's API server: the virtual one's,
            # which the token Secret carries.
            items = [{"key": "ca.crt", "path": i.get("path", "ca.crt")}
                     for i in source["configMap"].get("items") or [{"key": "ca.crt", "path": "ca.crt"}]
                     if i.get("key") == "ca.crt"]
            source = {"secret": {"name": token_secret, "items": items}}
        elif token_projection and _only_namespace_items(source):
            # the namespace file next to a token: the virtual namespace, also in the token Secret
            items = [{"key": "namespace", "path": i.get("path", "namespace")}
                     for i in source["downwardAPI"]["items"]]
            source = {"secret": {"name": token_secret, "items": items}}
        elif "configMap" in source and source["configMap"].get("name"):
            source["configMap"]["name"] = host_name_for("ConfigMap", source["configMap"]["name"], vns, settings)
        elif "secret" in source and source["secret"].get("name"):
            source["secret"]["name"] = host_name_for("Secret", source["secret"]["name"], vns, settings)
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                rewrite_field_ref(item, settings)
        new_sources.append(source)
    volume["projected"]["sources"] = new_sources


def _translate_volumes(spec: dict[str, Any], vpod: Mapping[str, Any], token_secret: str,
                       settings: TranslatorSettings) -> None:
    vns = vpod["metadata"]["namespace"]
    for volume in spec.get("volumes") or []:
        if volume.get("configMap", {}).get("name"):
            volume["configMap"]["name"] = host_name_for("ConfigMap", volume["configMap"]["name"], vns, settings)
        if volume.get("secret", {}).get("secretName"):
            volume["secret"]["secretName"] = host_name_for("Secret", volume["secret"]["secretName"], vns, settings)
        if volume.get("persistentVolumeClaim", {}).get("claimName"):
            claim = volume["persistentVolumeClaim"]
            claim["claimName"] = host_name_for("PersistentVolumeClaim", claim["claimName"], vns, settings)
        csi_ref = (volume.get("csi") or {}).get("nodePublishSecretRef")
        if csi_ref and csi_ref.get("name"):
            csi_ref["name"] = host_name_for("Secret", csi_ref["name"], vns, settings)
        for plugin in SECRET_REF_VOLUMES:
            # Left as is, these would name a Secret of the host namespace N (the kubeconfig Secret vc-R, say),
            # which the kubelet would read and hand to the volume plugin.
            ref = (volume.get(plugin) or {}).get("secretRef")
            if ref and ref.get("name"):
                ref["name"] = host_name_for("Secret", ref["name"], vns, settings)
        if (volume.get("azureFile") or {}).get("secretName"):
            volume["azureFile"]["secretName"] = host_name_for("Secret", volume["azureFile"]["secretName"], vns,
                                                              settings)
        if volume.get("ephemeral"):
            # A generic ephemeral volume: the host's ephemeral-volume controller would create a claim in N from
            # the template as it is, volumeName (a host PersistentVolume, bound by name) and dataSource (a host
            # claim of N) included. The virtual controller makes the claim <pod>-<volume> in the virtual
            # cluster; it is synced like any claim (translate_pvc), and the host pod mounts its host copy.
            # (vcluster does the same.)
            volume.pop("ephemeral")
            volume["persistentVolumeClaim"] = {
                "claimName": host_name_for("PersistentVolumeClaim", ephemeral_claim_name(vpod, volume), vns, settings)}
        if "projected" in volume:
            _translate_projected(volume, vns, token_secret, settings)
        if "downwardAPI" in volume:
            for item in volume["downwardAPI"].get("items") or []:
                rewrite_field_ref(item, settings)


def _translate_container(container: dict[str, Any], vns: str, base_env: list[dict[str, str]],
                         settings: TranslatorSettings) -> None:
    env = []
    for var in container.get("env") or []:
        var = copy.deepcopy(var)
        source = var.get("valueFrom") or {}
        if source.get("configMapKeyRef", {}).get("name"):
            source["configMapKeyRef"]["name"] = host_name_for("ConfigMap", source["configMapKeyRef"]["name"], vns,
                                                              settings)
        if source.get("secretKeyRef", {}).get("name"):
            source["secretKeyRef"]["name"] = host_name_for("Secret", source["secretKeyRef"]["name"], vns, settings)
        rewrite_field_ref(source, settings)
        env.append(var)
    # Ours first, so $(FOO_SERVICE_HOST) in the user's env resolves as the kubelet would resolve it; a name
    # the user sets is left out (the user's value wins, as over the kubelet's injected variables).
    user_names = {v.get("name") for v in env}
    container["env"] = [v for v in base_env if v["name"] not in user_names] + env
    for env_from in container.get("envFrom") or []:
        if env_from.get("configMapRef", {}).get("name"):
            env_from["configMapRef"]["name"] = host_name_for("ConfigMap", env_from["configMapRef"]["name"], vns,
                                                             settings)
        if env_from.get("secretRef", {}).get("name"):
            env_from["secretRef"]["name"] = host_name_for("Secret", env_from["secretRef"]["name"], vns, settings)


# ---------------------------------------------------------------- the pod

def translate_pod(vpod: Mapping[str, Any], settings: TranslatorSettings, ctx: PodContext) -> dict[str, Any]:
    """The host pod for a virtual pod."""
    meta = vpod["metadata"]
    vname, vns = meta["name"], meta["namespace"]
    spec: dict[str, Any] = copy.deepcopy(vpod.get("spec") or {})
    token_secret = token_secret_name(vname, vns, settings)

    # Identity: the host pod runs as the one workload ServiceAccount, which has no rights; the host must not
    # mount its token. The virtual service account token arrives through the token Secret instead.
    spec["serviceAccountName"] = settings.workload_service_account
    spec.pop("serviceAccount", None)  # deprecated alias of serviceAccountName
    spec["automountServiceAccountToken"] = False

    _translate_volumes(spec, vpod, token_secret, settings)
    # Ephemeral containers cannot be part of a create; they are added through the ephemeralcontainers
    # subresource later (host_ephemeral_containers, ephemeral_containers_patch).
    spec.pop("ephemeralContainers", None)
    base_env = service_env(vpod, ctx)
    for field in CONTAINER_FIELDS:
        for container in spec.get(field) or []:
            _translate_container(container, vns, base_env, settings)
    for pull in spec.get("imagePullSecrets") or []:
        if pull.get("name"):
            pull["name"] = host_name_for("Secret", pull["name"], vns, settings)

    # The virtual Services' environment variables (FOO_SERVICE_HOST...) would be computed from host
    # Services in N (translated names, other namespaces' Services): wrong names and values. The virtual
    # ones are explicit env instead (service_env).
    spec["enableServiceLinks"] = False
    alias_api_server(spec, vns, settings, ctx)
    # The pod's hostname is its virtual name (the host pod's name is the translated one).
    if not spec.get("hostname"):
        hostname = hostname_for_pod(vname)
        if hostname:
            spec["hostname"] = hostname
    # subdomain names a virtual headless Service; on the host it would build an FQDN in namespace N that no
    # DNS server answers. Names of pods behind headless Services are served by the virtual DNS; the pod's own
    # FQDN line in /etc/hosts is written by an init container instead (rewrite_hosts).
    spec.pop("subdomain", None)
    entry = hosts_entry(vpod, settings)
    if entry:
        rewrite_hosts(spec, *entry, settings)
    # Priority classes are virtual objects and are not synced; the host admission plugin rejects a pod naming
    # an unknown class, or carrying a priority that does not match its class.
    for field in ("priorityClassName", "priority", "preemptionPolicy"):
        spec.pop(field, None)
    # Set by the virtual RuntimeClass admission; the host admission recomputes it and rejects a mismatch.
    spec.pop("overhead", None)
    translate_scheduling(spec, vns, settings, ctx)
    translate_dns(spec, vns, settings, ctx)

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": host_metadata(
            vpod, "Pod", host_name_for("Pod", vname, vns, settings), settings,
            translate_all_labels=True, extra_annotations=host_annotations(vpod),
        ),
        "spec": spec,
    }


# ---------------------------------------------------------------- ephemeral containers

def host_ephemeral_containers(vpod: Mapping[str, Any], settings: TranslatorSettings,
                              ctx: PodContext) -> list[dict[str, Any]]:
    """The virtual pod's ephemeral containers (kubectl debug) as the host pod needs them: env, envFrom and
    service environment translated like the other containers'; volume mounts name the same volumes."""
    vns = vpod["metadata"]["namespace"]
    base_env = service_env(vpod, ctx)
    out = []
    rewritten = hosts_entry(vpod, settings) is not None
    for container in (vpod.get("spec") or {}).get("ephemeralContainers") or []:
        container = copy.deepcopy(container)
        _translate_container(container, vns, base_env, settings)
        if rewritten:
            hosts_mount(container)
        out.append(container)
    return out


def ephemeral_containers_patch(wanted: list[dict[str, Any]], host_pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """Merge-patch for the host pod's ephemeralcontainers subresource (None: nothing to add). Ephemeral
    containers can only be added, never changed or removed: the host's own list is sent back unchanged,
    followed by the virtual ones it does not have yet."""
    have = list((host_pod.get("spec") or {}).get("ephemeralContainers") or [])
    names = {c.get("name") for c in have}
    added = [c for c in wanted if c.get("name") not in names]
    return {"spec": {"ephemeralContainers": have + added}} if added else None


# ---------------------------------------------------------------- updates and status

def pod_spec_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """Changes to the host pod spec the API server allows: container images, activeDeadlineSeconds,
    added tolerations, removed scheduling gates. Everything else in a pod spec is immutable."""
    dspec, aspec = desired.get("spec") or {}, actual.get("spec") or {}
    patch: dict[str, Any] = {}
    for field in ("containers", "initContainers"):
        dlist, alist = dspec.get(field) or [], aspec.get(field) or []
        if len(dlist) == len(alist) and any(
            d.get("image") != a.get("image") for d, a in zip(dlist, alist, strict=True)
        ):
            # a merge patch replaces lists: send the whole list with the new images
            patch[field] = [{**a, "image": d.get("image")} for d, a in zip(dlist, alist, strict=True)]
    deadline = dspec.get("activeDeadlineSeconds")
    if deadline and deadline != aspec.get("activeDeadlineSeconds"):
        patch["activeDeadlineSeconds"] = deadline
    dtol, atol = dspec.get("tolerations") or [], aspec.get("tolerations") or []
    added = [t for t in dtol if t not in atol]
    if added:
        patch["tolerations"] = atol + added  # only additions are allowed
    dgates, agates = dspec.get("schedulingGates") or [], aspec.get("schedulingGates") or []
    if agates and dgates != agates:
        remaining = [g for g in agates if g in dgates]  # gates may only be removed
        if remaining != agates:
            patch["schedulingGates"] = remaining
    return {"spec": patch} if patch else None

