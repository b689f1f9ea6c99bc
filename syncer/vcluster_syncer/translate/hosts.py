"""How a host pod resolves names: its DNS configuration and its /etc/hosts (the FQDN line of a pod with a
subdomain, written by an init container)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .helpers import helper_container
from .names import hostname_for_pod
from .podspec import containers
from .settings import PodContext, TranslatorSettings

# ---------------------------------------------------------------- DNS

def translate_dns(spec: dict[str, Any], vns: str, settings: TranslatorSettings, ctx: PodContext) -> None:
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

def alias_api_server(spec: dict[str, Any], vns: str, settings: TranslatorSettings, ctx: PodContext) -> None:
    """kubernetes.default.svc must reach the virtual API server, also before/without the virtual DNS.
    (Host-network pods share the node's /etc/hosts; they are left alone.) The short name "kubernetes"
    resolves only in namespace default, as through cluster DNS (search path <ns>.svc...)."""
    if spec.get("hostNetwork"):
        return
    aliases = [a for a in spec.get("hostAliases") or [] if a.get("ip") != ctx.api_service_ip]
    svc = "kubernetes.default.svc"
    names = ["kubernetes"] if vns == "default" else []
    names += ["kubernetes.default", svc, f"{svc}.{settings.cluster_domain}"]
    aliases.append({"ip": ctx.api_service_ip, "hostnames": names})
    spec["hostAliases"] = aliases


#: Name of the init container that writes the pod's /etc/hosts, and of its emptyDir volume (vcluster's names).
HOSTS_CONTAINER = "vcluster-rewrite-hosts"
#: The kubelet's line "IP<TAB>hostname" for the pod's own address becomes "IP<TAB>fqdn<TAB>hostname", as the
#: kubelet writes it for a pod with a subdomain (GNU sed; $POD_HOSTNAME is a DNS label, so no regex characters).
_HOSTS_SCRIPT = ('sed -E "s/^([^#[:space:]]+)[[:space:]]+${POD_HOSTNAME}\\$/\\1\\t${POD_FQDN}\\t${POD_HOSTNAME}/" '
                 '/etc/hosts > /hosts/hosts')


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


def hosts_mount(container: dict[str, Any]) -> None:
    mounts = container.setdefault("volumeMounts", [])
    if not any(m.get("mountPath") == "/etc/hosts" for m in mounts):  # a container's own /etc/hosts wins
        mounts.append({"name": HOSTS_CONTAINER, "mountPath": "/etc/hosts", "subPath": "hosts"})


def rewrite_hosts(spec: dict[str, Any], hostname: str, fqdn: str, settings: TranslatorSettings) -> None:
    """An init container copies the kubelet's /etc/hosts with the FQDN added into an emptyDir, which every
    container mounts at /etc/hosts."""
    init = helper_container(HOSTS_CONTAINER, _HOSTS_SCRIPT, {"POD_HOSTNAME": hostname, "POD_FQDN": fqdn}, spec,
                            settings)
    init["volumeMounts"] = [{"name": HOSTS_CONTAINER, "mountPath": "/hosts"}]
    for container in containers(spec):
        hosts_mount(container)
    spec["initContainers"] = [init] + list(spec.get("initContainers") or [])
    spec["volumes"] = list(spec.get("volumes") or []) + [{"name": HOSTS_CONTAINER, "emptyDir": {}}]

