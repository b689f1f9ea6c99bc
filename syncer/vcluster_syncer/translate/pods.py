"""Pods: the host form of a virtual pod, what may change later, and status flowing back.

The host pod must run on the host while looking, from inside, like the virtual pod. Every field that
is dropped or rewritten says why next to the code.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from .metadata import (
    ANN_ANNOTATIONS,
    ANN_LABELS,
    ANN_NAME,
    ANN_NAMESPACE,
    ANN_SERVICE_ACCOUNT,
    ANN_TOKEN_EXPIRATION,
    ANN_UID,
    FAKE_NODE_LABEL,
    KIND_TOKEN_SECRET,
    add_to_selector,
    format_map,
    host_metadata,
    marker_labels,
    selector_for_namespaces,
    selector_matches,
    translate_label_selector,
)
from .names import host_name_for, hostname_for_pod, token_secret_name, translate_label_key
from .podspec import CONTAINER_FIELDS, ROOT_CA_CONFIGMAP, SECRET_REF_VOLUMES, ephemeral_claim_name, is_token_projection
from .settings import PodContext, TranslatorSettings

HOSTNAME_LABEL = "kubernetes.io/hostname"
TOKEN_EXPIRATION_SECONDS = 3600
#: expirationSeconds of the kube-api-access-* projection the ServiceAccount admission injects
ADMISSION_TOKEN_SECONDS = 3607

_LABEL_FIELD = re.compile(r"^metadata\.labels\['(.+)'\]$")


# ---------------------------------------------------------------- downward API

def rewrite_field_path(path: str, settings: TranslatorSettings) -> str:
    """Make a downward-API fieldPath report the virtual value on the host pod."""
    simple = {
        # The host pod's own name/namespace/uid/serviceAccountName are the translated ones; the
        # virtual values live in annotations of the host pod.
        "metadata.name": ANN_NAME,
        "metadata.namespace": ANN_NAMESPACE,
        "metadata.uid": ANN_UID,
        "spec.serviceAccountName": ANN_SERVICE_ACCOUNT,
        # Whole-map fields: the host maps carry translated keys and syncer annotations; the
        # annotations below hold the virtual maps pre-formatted the way the kubelet writes them.
        "metadata.labels": ANN_LABELS,
        "metadata.annotations": ANN_ANNOTATIONS,
    }
    if path in simple:
        return f"metadata.annotations['{simple[path]}']"
    match = _LABEL_FIELD.match(path)
    if match:
        # One label: same value, under its translated key.
        return f"metadata.labels['{translate_label_key(match.group(1), settings)}']"
    # metadata.annotations['k'] (copied verbatim), spec.nodeName (fake nodes carry host node names),
    # status.podIP(s) and status.hostIP(s) (the host's are the real ones) need no change.
    return path


def _rewrite_field_ref(holder: dict[str, Any], settings: TranslatorSettings) -> None:
    ref = holder.get("fieldRef")
    if ref and ref.get("fieldPath"):
        ref["fieldPath"] = rewrite_field_path(ref["fieldPath"], settings)


def _reads_all_annotations(spec: Mapping[str, Any]) -> bool:
    def items_of(volume: Mapping[str, Any]) -> list[dict[str, Any]]:
        out = list((volume.get("downwardAPI") or {}).get("items") or [])
        for source in (volume.get("projected") or {}).get("sources") or []:
            out.extend((source.get("downwardAPI") or {}).get("items") or [])
        return out

    for volume in spec.get("volumes") or []:
        for item in items_of(volume):
            if (item.get("fieldRef") or {}).get("fieldPath") == "metadata.annotations":
                return True
    return False


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
                _rewrite_field_ref(item, settings)
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
                _rewrite_field_ref(item, settings)


# ---------------------------------------------------------------- containers

def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def _has_cluster_ip(service: Mapping[str, Any]) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def service_link_env(service: Mapping[str, Any]) -> list[dict[str, str]]:
    """The variables the kubelet makes for one Service (k8s.io/kubernetes pkg/kubelet/envvars FromServices):
    FOO_SERVICE_HOST, FOO_SERVICE_PORT, FOO_SERVICE_PORT_<NAME> per named port, and the Docker-link ones
    FOO_PORT, FOO_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]. None for a Service without a ClusterIP."""
    spec = service.get("spec") or {}
    ports = spec.get("ports") or []
    if not _has_cluster_ip(service) or not ports:
        return []
    ip = spec["clusterIP"]
    prefix = _env_name(service["metadata"]["name"])
    out = [(f"{prefix}_SERVICE_HOST", ip), (f"{prefix}_SERVICE_PORT", str(ports[0].get("port")))]
    out += [(f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}", str(p.get("port"))) for p in ports if p.get("name")]
    host = f"[{ip}]" if ":" in ip else ip  # net.JoinHostPort
    for index, port in enumerate(ports):
        protocol = port.get("protocol") or "TCP"
        url = f"{protocol.lower()}://{host}:{port.get('port')}"
        if index == 0:
            out.append((f"{prefix}_PORT", url))
        port_prefix = f"{prefix}_PORT_{port.get('port')}_{protocol.upper()}"
        out += [(port_prefix, url), (f"{port_prefix}_PROTO", protocol.lower()),
                (f"{port_prefix}_PORT", str(port.get("port"))), (f"{port_prefix}_ADDR", ip)]
    return [{"name": name, "value": value} for name, value in out]


def _api_service(api_ip: str) -> dict[str, Any]:
    """The virtual default/kubernetes Service as the pods see it: Service R's ClusterIP, port 443 "https"."""
    return {"metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": api_ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}


def api_server_env(api_ip: str) -> list[dict[str, str]]:
    """In-cluster clients find "their" API server through these: make them reach the virtual one.

    The kubelet injects the *host* API server here; explicit container env wins over injected values.
    """
    return service_link_env(_api_service(api_ip))


def service_env(vpod: Mapping[str, Any], ctx: PodContext) -> list[dict[str, str]]:
    """The service environment the kubelet would give a container of this pod in the virtual cluster.

    The kubelet's rule (getServiceEnvVarMap): the master Service default/kubernetes always; with
    enableServiceLinks true or unset, every Service of the pod's namespace that has a ClusterIP too (a
    Service named kubernetes there replaces the master one). The host kubelet would compute them from the
    host Services of N (translated names, other namespaces' Services), so the host pod has
    enableServiceLinks false and gets these as explicit env instead. Sorted by name (a stable host spec).
    """
    vns = vpod["metadata"]["namespace"]
    by_name: dict[str, Mapping[str, Any]] = {"kubernetes": _api_service(ctx.api_service_ip)}
    if (vpod.get("spec") or {}).get("enableServiceLinks") is not False:
        for service in ctx.services:
            smeta = service.get("metadata") or {}
            if smeta.get("namespace", vns) != vns or not _has_cluster_ip(service):
                continue
            if vns == "default" and smeta.get("name") == "kubernetes":
                continue  # the master Service itself: Service R's ClusterIP, above
            by_name[smeta["name"]] = service
    env = {var["name"]: var for service in by_name.values() for var in service_link_env(service)}
    return [env[name] for name in sorted(env)]


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
        _rewrite_field_ref(source, settings)
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


# ---------------------------------------------------------------- scheduling

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


def _translate_scheduling(spec: dict[str, Any], vns: str, settings: TranslatorSettings, ctx: PodContext) -> None:
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


# ---------------------------------------------------------------- DNS

def _translate_dns(spec: dict[str, Any], vns: str, settings: TranslatorSettings, ctx: PodContext) -> None:
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    uses_cluster_dns = policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network)
    if not ctx.dns_ip or not uses_cluster_dns:
        # No virtual DNS server (the host's answers, without virtual names), or the pod does not use
        # cluster DNS at all: nothing to change.
        return
    # "Cluster DNS" of a virtual pod is the virtual CoreDNS, reached through its host Service. The host
    # kubelet would write the host DNS server and host search path (N.svc...), so spell it out instead,
    # the way the kubelet would for a pod in the virtual namespace.
    domain = settings.cluster_domain
    user = spec.get("dnsConfig") or {}
    nameservers = [ctx.dns_ip] + [s for s in user.get("nameservers") or [] if s != ctx.dns_ip]
    searches = [f"{vns}.svc.{domain}", f"svc.{domain}", domain]
    searches += [s for s in user.get("searches") or [] if s not in searches]
    options: list[dict[str, Any]] = [{"name": "ndots", "value": "5"}]
    for option in user.get("options") or []:
        options = [o for o in options if o["name"] != option.get("name")] + [option]
    spec["dnsPolicy"] = "None"
    spec["dnsConfig"] = {"nameservers": nameservers[:3], "searches": searches[:32], "options": options}


# ---------------------------------------------------------------- /etc/hosts

#: Name of the init container that writes the pod's /etc/hosts, and of its emptyDir volume (vcluster's names).
HOSTS_CONTAINER = "vcluster-rewrite-hosts"
#: The kubelet's line "IP<TAB>hostname" for the pod's own address becomes "IP<TAB>fqdn<TAB>hostname", as the
#: kubelet writes it for a pod with a subdomain (GNU sed; $POD_HOSTNAME is a DNS label, so no regex characters).
_HOSTS_SCRIPT = ('sed -E "s/^([^#[:space:]]+)[[:space:]]+${POD_HOSTNAME}\\$/\\1\\t${POD_FQDN}\\t${POD_HOSTNAME}/" '
                 '/etc/hosts > /hosts/hosts')
_NOBODY = 65534


def hosts_entry(vpod: Mapping[str, Any], settings: TranslatorSettings) -> tuple[str, str] | None:
    """(hostname, FQDN) the pod's /etc/hosts must list when the host kubelet cannot write it: a pod with a
    subdomain gets ``<hostname>.<subdomain>.<namespace>.svc.<domain>`` from its kubelet, which on the host
    would name the host namespace. None: nothing to rewrite (no subdomain, host network, no image set)."""
    spec = vpod.get("spec") or {}
    subdomain = spec.get("subdomain")
    if not subdomain or spec.get("hostNetwork") or not settings.syncer_image:
        return None
    meta = vpod["metadata"]
    hostname = spec.get("hostname") or hostname_for_pod(meta["name"])
    if not hostname:
        return None
    return hostname, f"{hostname}.{subdomain}.{meta['namespace']}.svc.{settings.cluster_domain}"


def _hosts_mount(container: dict[str, Any]) -> None:
    mounts = container.setdefault("volumeMounts", [])
    if not any(m.get("mountPath") == "/etc/hosts" for m in mounts):  # a container's own /etc/hosts wins
        mounts.append({"name": HOSTS_CONTAINER, "mountPath": "/etc/hosts", "subPath": "hosts"})


_RESTRICTED = {  # Pod Security "restricted", whatever the pod's own settings
    "runAsNonRoot": True, "runAsUser": _NOBODY, "runAsGroup": _NOBODY, "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}


def _helper_container(name: str, script: str, env: dict[str, str], spec: Mapping[str, Any],
                      settings: TranslatorSettings) -> dict[str, Any]:
    """An init container of the syncer's own image (on the node already; it has sh and sed). It runs as nobody
    with nothing allowed (restricted Pod Security) and asks for what the pod's first container asks for, so the
    pod's resource requests and QoS class stay what they were."""
    first = (spec.get("containers") or [{}])[0]
    resources = {k: v for k, v in (first.get("resources") or {}).items() if k in ("requests", "limits")}
    return {
        "name": name,
        "image": settings.syncer_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": copy.deepcopy(resources),
        "securityContext": copy.deepcopy(_RESTRICTED),
    }


def _rewrite_hosts(spec: dict[str, Any], hostname: str, fqdn: str, settings: TranslatorSettings) -> None:
    """An init container copies the kubelet's /etc/hosts with the FQDN added into an emptyDir, which every
    container mounts at /etc/hosts."""
    init = _helper_container(HOSTS_CONTAINER, _HOSTS_SCRIPT, {"POD_HOSTNAME": hostname, "POD_FQDN": fqdn}, spec,
                             settings)
    init["volumeMounts"] = [{"name": HOSTS_CONTAINER, "mountPath": "/hosts"}]
    for field in CONTAINER_FIELDS:
        for container in spec.get(field) or []:
            _hosts_mount(container)
    spec["initContainers"] = [init] + list(spec.get("initContainers") or [])
    spec["volumes"] = list(spec.get("volumes") or []) + [{"name": HOSTS_CONTAINER, "emptyDir": {}}]


# ---------------------------------------------------------------- a RuntimeClass the host lacks

#: Init container holding a host pod whose RuntimeClass the host does not have (blocked_for_runtime_class).
RUNTIME_CLASS_CONTAINER = "vcluster-unknown-runtime-class"
#: Init containers the syncer adds; the virtual pod never shows them.
HELPER_CONTAINERS = frozenset({HOSTS_CONTAINER, RUNTIME_CLASS_CONTAINER})
#: It says why and waits until the pod is deleted (sh as PID 1 would ignore SIGTERM without the trap).
_HOLD_SCRIPT = 'trap "exit 0" TERM; echo "$MESSAGE" >&2; sleep infinity & wait'
_RUNTIME_CLASS_REFUSED = re.compile(r'RuntimeClass "([^"]+)" not found')


def refused_runtime_class(message: str, desired: Mapping[str, Any]) -> str | None:
    """The host pod's RuntimeClass if the host's RuntimeClass admission refused the pod for not having it
    (its message: 'pod rejected: RuntimeClass "x" not found'), else None."""
    name = (desired.get("spec") or {}).get("runtimeClassName")
    match = _RUNTIME_CLASS_REFUSED.search(message or "")
    return name if name and match and match.group(1) == name else None


def blocked_for_runtime_class(desired: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any] | None:
    """The host pod for a virtual pod whose RuntimeClass (a virtual object) the host does not have, or None
    without the syncer's image. On a real cluster such a pod is scheduled, and then its node cannot create
    the sandbox (no such runtime handler): it stays Pending. The host pod is scheduled too, without the
    RuntimeClass, and an init container that only waits keeps its containers from ever running under the
    host's default runtime instead of the one asked for."""
    if not settings.syncer_image:
        return None
    out = copy.deepcopy(dict(desired))
    spec = out["spec"]
    name = spec.pop("runtimeClassName")
    message = (f"RuntimeClass {name!r} does not exist in the host cluster: the pod's containers cannot run "
               "(create it on the host with the same name and handler)")
    init = _helper_container(RUNTIME_CLASS_CONTAINER, _HOLD_SCRIPT, {"MESSAGE": message}, spec, settings)
    spec["initContainers"] = [init] + list(spec.get("initContainers") or [])
    return out


# ---------------------------------------------------------------- the pod

def wants_token(vpod: Mapping[str, Any]) -> bool:
    """Does the host pod need a token Secret (the virtual pod mounts a service account token)?"""
    return any(is_token_projection(v) for v in (vpod.get("spec") or {}).get("volumes") or [])


def host_annotations(vpod: Mapping[str, Any]) -> dict[str, str]:
    """Annotations holding virtual values for the downward API (see rewrite_field_path)."""
    meta, spec = vpod.get("metadata") or {}, vpod.get("spec") or {}
    out = {
        ANN_LABELS: format_map(meta.get("labels")),
        ANN_SERVICE_ACCOUNT: spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
    }
    if _reads_all_annotations(spec):
        # Only when a volume renders all annotations: this doubles the size of the annotations.
        out[ANN_ANNOTATIONS] = format_map(meta.get("annotations"))
    return out


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
    # kubernetes.default.svc must reach the virtual API server, also before/without the virtual DNS.
    # (Host-network pods share the node's /etc/hosts; they are left alone.) The short name "kubernetes"
    # resolves only in namespace default, as through cluster DNS (search path <ns>.svc...).
    if not spec.get("hostNetwork"):
        aliases = [a for a in spec.get("hostAliases") or [] if a.get("ip") != ctx.api_service_ip]
        svc = "kubernetes.default.svc"
        names = ["kubernetes"] if vns == "default" else []
        names += ["kubernetes.default", svc, f"{svc}.{settings.cluster_domain}"]
        aliases.append({"ip": ctx.api_service_ip, "hostnames": names})
        spec["hostAliases"] = aliases
    # The pod's hostname is its virtual name (the host pod's name is the translated one).
    if not spec.get("hostname"):
        hostname = hostname_for_pod(vname)
        if hostname:
            spec["hostname"] = hostname
    # subdomain names a virtual headless Service; on the host it would build an FQDN in namespace N that no
    # DNS server answers. Names of pods behind headless Services are served by the virtual DNS; the pod's own
    # FQDN line in /etc/hosts is written by an init container instead (_rewrite_hosts).
    spec.pop("subdomain", None)
    entry = hosts_entry(vpod, settings)
    if entry:
        _rewrite_hosts(spec, *entry, settings)
    # Priority classes are virtual objects and are not synced; the host admission plugin rejects a pod naming
    # an unknown class, or carrying a priority that does not match its class.
    for field in ("priorityClassName", "priority", "preemptionPolicy"):
        spec.pop(field, None)
    # Set by the virtual RuntimeClass admission; the host admission recomputes it and rejects a mismatch.
    spec.pop("overhead", None)
    _translate_scheduling(spec, vns, settings, ctx)
    _translate_dns(spec, vns, settings, ctx)

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
            _hosts_mount(container)
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


def pod_status_patch(host_pod: Mapping[str, Any], vpod: Mapping[str, Any]) -> dict[str, Any] | None:
    """Status of the host pod for the virtual pod (None: already equal). Only the kubelet writes pod
    status, and there is no kubelet in the virtual cluster: the host's status is the truth."""
    status = copy.deepcopy(host_pod.get("status") or {})
    status.pop("nominatedNodeName", None)  # refers to host scheduling decisions
    if not status:
        return None
    current = vpod.get("status") or {}
    if "initContainerStatuses" in status:  # the virtual pod has none of the syncer's helpers
        status["initContainerStatuses"] = [s for s in status["initContainerStatuses"]
                                           if s.get("name") not in HELPER_CONTAINERS]
    # Conditions are merged by type, as the API server's strategic merge would: the host's win for the types
    # it reports; types only the virtual cluster sets are kept (DisruptionTarget, written by the virtual
    # API server's eviction or taint manager before the pod is deleted and read by Job pod failure policies).
    host_types = {c.get("type") for c in status.get("conditions") or []}
    virtual_only = [c for c in current.get("conditions") or [] if c.get("type") not in host_types]
    if virtual_only:
        status["conditions"] = list(status.get("conditions") or []) + virtual_only
    if all(current.get(k) == v for k, v in status.items()):
        return None
    return {"status": status}


def was_synced(vpod: Mapping[str, Any]) -> bool:
    """Has this virtual pod had a host copy? Nobody but the syncer writes scheduling or start data into a
    virtual pod's status (no scheduler, no kubelet there), so if it has some, a host pod existed."""
    status = vpod.get("status") or {}
    if status.get("startTime") or status.get("hostIP"):
        return True
    return any(c.get("type") == "PodScheduled" for c in status.get("conditions") or [])


def binding(vpod: Mapping[str, Any], node_name: str) -> dict[str, Any]:
    """Body for the pods/binding subresource."""
    meta = vpod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    }


def token_key(projection: Mapping[str, Any]) -> str:
    """The token Secret's key for one serviceAccountToken projection: "token" for the API server's own
    audience and the admission's default lifetime (kube-api-access-*), else one key per audience+lifetime."""
    audience = projection.get("audience") or ""
    seconds = projection.get("expirationSeconds")
    if not audience and seconds in (None, TOKEN_EXPIRATION_SECONDS, ADMISSION_TOKEN_SECONDS):
        return "token"
    return "token-" + hashlib.sha256(f"{audience}\n{seconds or ''}".encode()).hexdigest()[:10]


def token_request(vpod: Mapping[str, Any], expiration_seconds: int = TOKEN_EXPIRATION_SECONDS,
                  audience: str | None = None) -> dict[str, Any]:
    """TokenRequest for the virtual pod's service account, bound to the virtual pod (dies with it)."""
    meta = vpod["metadata"]
    spec: dict[str, Any] = {
        "expirationSeconds": expiration_seconds,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta.get("uid")},
    }
    if audience:
        spec["audiences"] = [audience]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def token_requests(vpod: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Token Secret key -> the TokenRequest for it: one per distinct audience/lifetime among the pod's
    serviceAccountToken projections, each with its own audience and expirationSeconds, as the kubelet asks."""
    out: dict[str, dict[str, Any]] = {}
    for volume in (vpod.get("spec") or {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            projection = source.get("serviceAccountToken")
            if projection is None:
                continue
            key = token_key(projection)
            if key in out:
                continue
            seconds = TOKEN_EXPIRATION_SECONDS if key == "token" else int(
                projection.get("expirationSeconds") or TOKEN_EXPIRATION_SECONDS)
            out[key] = token_request(vpod, seconds, projection.get("audience") or None)
    return out


def token_node(token: str) -> str | None:
    """The node a service account token is bound to (claim kubernetes.io.node.name); None if it has none or is
    not a JWT. The virtual API server adds it to tokens requested for a pod bound to a node."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    node = ((payload.get("kubernetes.io") or {}) if isinstance(payload, dict) else {}).get("node") or {}
    return node.get("name") if isinstance(node, dict) else None


def service_account_of(vpod: Mapping[str, Any]) -> str:
    spec = vpod.get("spec") or {}
    return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def token_secret(vpod: Mapping[str, Any], tokens: Mapping[str, str], ca_pem: str, expiration: str,
                 settings: TranslatorSettings) -> dict[str, Any]:
    """The host Secret the host pod mounts at /var/run/secrets/kubernetes.io/serviceaccount (and wherever it
    projects other tokens). ``tokens``: key (token_key) -> token; ``expiration``: the earliest one's."""
    meta = vpod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": host_metadata(
            {"metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid", "")}},
            KIND_TOKEN_SECRET, token_secret_name(meta["name"], meta["namespace"], settings), settings,
            extra_annotations={ANN_TOKEN_EXPIRATION: expiration},
        ),
        "data": {**{key: _b64(token) for key, token in tokens.items()},
                 "ca.crt": _b64(ca_pem), "namespace": _b64(meta["namespace"])},
    }

