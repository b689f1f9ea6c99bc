"""The service environment of a host pod's containers: the variables the kubelet would inject in the virtual
cluster (FOO_SERVICE_HOST...), computed from the virtual Services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .settings import PodContext


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


def with_service_env(env: list[dict[str, Any]], base_env: list[dict[str, str]]) -> list[dict[str, Any]]:
    """A container's env with the service environment (service_env) first, so $(FOO_SERVICE_HOST) in the
    user's env resolves as the kubelet would resolve it; a name the user sets is left out (the user's value
    wins, as over the kubelet's injected variables)."""
    user_names = {v.get("name") for v in env}
    return [v for v in base_env if v["name"] not in user_names] + env


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

