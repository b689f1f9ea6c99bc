"""The syncer's environment (set by the chart; see docs/architecture.md), validated."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import contract
from .coredns import CoreDNSSettings
from .translate.settings import TranslatorSettings


class ConfigError(ValueError):
    """A missing or invalid environment variable; the message names it."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def log_level(text: str, source: str = "environment variable LOG_LEVEL") -> str:
    """``text`` as a logging level name (any case; empty means INFO)."""
    level = text.strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ConfigError(f"{source} must be one of {', '.join(LOG_LEVELS)} (any case), not {text!r}")
    return level


@dataclass(frozen=True)
class Config:
    vcluster_name: str
    host_namespace: str
    virtual_server: str
    virtual_token_file: str
    virtual_ca_file: str
    service_name: str
    workload_service_account: str
    sync_all_configmaps: bool
    sync_all_secrets: bool
    sync_network_policies: bool
    sync_nodes_mode: str
    sync_storage_classes: bool
    cluster_domain: str
    health_port: int
    log_level: str
    kubelet_address: str = contract.KUBELET_ADDRESS  # the fake kubelet (kubelet.py), reached by the pod alone
    kubelet_port: int = contract.KUBELET_PORT  # 0: no kubelet server (no logs/exec/port-forward)
    # its serving certificate and key (PEM files from the chart); empty: a self-signed one made at start
    kubelet_cert_file: str = ""
    kubelet_key_file: str = ""
    coredns: CoreDNSSettings = field(default_factory=CoreDNSSettings)  # DNS in the virtual cluster (coredns.py)
    sync_events: bool = True  # host events about synced objects -> virtual events (parts/events.py)
    syncer_image: str = ""  # the syncer's own image, for helper init containers of host pods (translate/helpers.py)
    # the host node running pod R-0 and its IP (downward API; "" when run outside the chart)
    node_name: str = ""
    host_ip: str = ""

    def settings(self, service_uid: str) -> TranslatorSettings:
        return TranslatorSettings(
            vcluster_name=self.vcluster_name,
            host_namespace=self.host_namespace,
            service_name=self.service_name,
            service_uid=service_uid,
            workload_service_account=self.workload_service_account,
            cluster_domain=self.cluster_domain,
            sync_all_configmaps=self.sync_all_configmaps,
            sync_all_secrets=self.sync_all_secrets,
            sync_network_policies=self.sync_network_policies,
            nodes_mode=self.sync_nodes_mode,
            sync_storage_classes=self.sync_storage_classes,
            sync_events=self.sync_events,
            kubelet_address=self.kubelet_address,
            kubelet_port=self.kubelet_port,
            syncer_image=self.syncer_image,
            # R-0 runs CoreDNS: its node is shown as the node of a pod of the cluster (vcluster shows the node
            # of its CoreDNS pod); without CoreDNS no pod of the cluster runs there until a test's does
            coredns_node=self.node_name if self.coredns.enabled else "",
            coredns_node_ips=(self.host_ip,) if self.coredns.enabled and self.node_name and self.host_ip else (),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required but not set")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise ConfigError(f"environment variable {name} must be 'true' or 'false', not {env[name]!r}")


def _file(env: Mapping[str, str], name: str, check_files: bool) -> str:
    path = _required(env, name)
    if check_files and not os.path.isfile(path):
        raise ConfigError(f"environment variable {name} names {path!r}, which is not a readable file")
    return path


def _optional_file(env: Mapping[str, str], name: str, check_files: bool) -> str:
    return _file(env, name, check_files) if env.get(name, "").strip() else ""


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip() or str(default)
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError(f"environment variable {name} must be a port number, not {text!r}")
    return port


def _coredns(env: Mapping[str, str], cluster_domain: str) -> CoreDNSSettings:
    """COREDNS_ENABLED (default false). The pod IP, where CoreDNS listens, is found at start (__main__)."""
    return CoreDNSSettings(enabled=_bool(env, contract.ENV_COREDNS_ENABLED), cluster_domain=cluster_domain)


def load_config(env: Mapping[str, str], *, check_files: bool = True) -> Config:
    name = _required(env, contract.ENV_VCLUSTER_NAME)
    server = _required(env, contract.ENV_VIRTUAL_SERVER)
    if not server.startswith(("https://", "http://")):
        raise ConfigError(
            f"environment variable VIRTUAL_SERVER must be a URL like https://127.0.0.1:6443, not {server!r}")
    mode = env.get(contract.ENV_SYNC_NODES_MODE, "synced").strip() or "synced"
    if mode not in ("synced", "all"):
        raise ConfigError(f"environment variable SYNC_NODES_MODE must be 'synced' or 'all', not {mode!r}")
    port_text = env.get(contract.ENV_HEALTH_PORT, "").strip() or str(contract.HEALTH_PORT)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"environment variable HEALTH_PORT must be a port number, not {port_text!r}") from None
    return Config(
        vcluster_name=name,
        host_namespace=_required(env, contract.ENV_HOST_NAMESPACE),
        virtual_server=server,
        virtual_token_file=_file(env, contract.ENV_VIRTUAL_TOKEN_FILE, check_files),
        virtual_ca_file=_file(env, contract.ENV_VIRTUAL_CA_FILE, check_files),
        service_name=env.get(contract.ENV_SERVICE_NAME, "").strip() or name,
        workload_service_account=(env.get(contract.ENV_WORKLOAD_SERVICE_ACCOUNT, "").strip()
                                  or contract.workload_service_account(name)),
        sync_all_configmaps=_bool(env, contract.ENV_SYNC_ALL_CONFIGMAPS),
        sync_all_secrets=_bool(env, contract.ENV_SYNC_ALL_SECRETS),
        sync_network_policies=_bool(env, contract.ENV_SYNC_NETWORK_POLICIES),
        sync_nodes_mode=mode,
        sync_storage_classes=_bool(env, contract.ENV_SYNC_STORAGE_CLASSES),
        sync_events=_bool(env, contract.ENV_SYNC_EVENTS, default=True),
        cluster_domain=env.get(contract.ENV_CLUSTER_DOMAIN, "").strip() or "cluster.local",
        health_port=port,
        log_level=log_level(env.get(contract.ENV_LOG_LEVEL, "")),
        kubelet_address=env.get(contract.ENV_KUBELET_ADDRESS, "").strip() or contract.KUBELET_ADDRESS,
        kubelet_port=_port(env, contract.ENV_KUBELET_PORT, contract.KUBELET_PORT),
        kubelet_cert_file=_optional_file(env, contract.ENV_KUBELET_CERT_FILE, check_files),
        kubelet_key_file=_optional_file(env, contract.ENV_KUBELET_KEY_FILE, check_files),
        syncer_image=env.get(contract.ENV_SYNCER_IMAGE, "").strip(),
        node_name=env.get(contract.ENV_NODE_NAME, "").strip(),
        host_ip=env.get(contract.ENV_HOST_IP, "").strip(),
        coredns=_coredns(env, env.get(contract.ENV_CLUSTER_DOMAIN, "").strip() or "cluster.local"),
    )
