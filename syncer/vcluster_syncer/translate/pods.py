"""Pods: the host form of a virtual pod, and what may change later.

The host pod must run on the host while looking, from inside, like the virtual pod. Every field that
is dropped or rewritten says why next to the code, here or in the module named for its concern:
references (the ConfigMaps, Secrets and claims it names), downward (fieldRefs), env (service
environment), hosts (DNS and /etc/hosts), scheduling, tokens (service account tokens), runtimeclass
(a RuntimeClass the host lacks); status flows back in status.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .downward import host_annotations, rewrite_env_field_refs, rewrite_volume_field_refs
from .env import service_env, with_service_env
from .hosts import alias_api_server, hosts_entry, hosts_mount, rewrite_hosts, translate_dns
from .metadata import host_metadata
from .names import host_name_for, hostname_for_pod, token_secret_name
from .podspec import containers
from .references import container_references, pod_references, rewrite_references
from .scheduling import translate_scheduling
from .settings import PodContext, TranslatorSettings
from .tokens import serve_tokens


def _translate_container(container: dict[str, Any], base_env: list[dict[str, str]],
                         settings: TranslatorSettings) -> None:
    """A container's env, past its references: downward fieldRefs report the virtual values, and the service
    environment the kubelet would inject comes first."""
    rewrite_env_field_refs(container, settings)
    container["env"] = with_service_env(container.get("env") or [], base_env)


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

    # Ephemeral containers cannot be part of a create; they are added through the ephemeralcontainers
    # subresource later (host_ephemeral_containers, ephemeral_containers_patch).
    spec.pop("ephemeralContainers", None)
    # Every ConfigMap, Secret and claim the pod names is the host copy of the virtual one (references.py);
    # then the service account token projections read the token Secret (tokens.py), and the remaining
    # downward API fieldRefs the virtual values (downward.py).
    rewrite_references(pod_references({"metadata": meta, "spec": spec}), vns, settings)
    serve_tokens(spec, token_secret)
    rewrite_volume_field_refs(spec, settings)
    base_env = service_env(vpod, ctx)
    for container in containers(spec):
        _translate_container(container, base_env, settings)

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
        rewrite_references(container_references(container), vns, settings)
        _translate_container(container, base_env, settings)
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


# ---------------------------------------------------------------- updates

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

