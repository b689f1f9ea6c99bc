"""Inputs of the pure translation functions.

Every translation function takes the virtual object as a plain dict plus one of these frozen
dataclasses; nothing is read from module globals, so the same functions serve several syncers
(and the tests) side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import contract


@dataclass(frozen=True)
class TranslatorSettings:
    """Static facts of one syncer, read once from the environment."""

    vcluster_name: str  # release name R
    host_namespace: str  # host namespace N
    service_name: str = ""  # host Service owning every synced object (defaults to R)
    service_uid: str = ""  # its uid, for ownerReferences ("" = no ownerReference)
    workload_service_account: str = ""  # host ServiceAccount every synced pod runs as
    cluster_domain: str = "cluster.local"
    sync_all_configmaps: bool = False
    sync_all_secrets: bool = False
    sync_network_policies: bool = False
    nodes_mode: str = "synced"  # "synced" (fake nodes for used host nodes) or "all"
    sync_storage_classes: bool = False
    sync_events: bool = True  # copy host events about synced objects into the virtual cluster
    # where virtual nodes send the virtual API server's kubelet calls (logs, exec...): the syncer's kubelet.py
    kubelet_address: str = contract.KUBELET_ADDRESS
    kubelet_port: int = contract.KUBELET_PORT
    # the syncer's own image, which runs the helper init containers of host pods (helpers.py; "" = none)
    syncer_image: str = ""
    # host node of pod R-0 when it runs the cluster's CoreDNS ("" = none): shown as a fake Node from the start,
    # like the node of a synced pod (nodes.py); its IP (the pod's status.hostIP) until the node is readable
    coredns_node: str = ""
    coredns_node_ips: tuple[str, ...] = ()

    @property
    def owner_service(self) -> str:
        return self.service_name or self.vcluster_name


@dataclass(frozen=True)
class PodContext:
    """Cluster facts a pod translation depends on (they change at run time, so they are not settings)."""

    api_service_ip: str  # host ClusterIP of Service SERVICE_NAME: the virtual API server as seen from the host
    dns_ip: str | None = None  # host ClusterIP of the virtual kube-system/kube-dns Service, if any
    host_node_names: frozenset[str] = frozenset()  # host nodes the syncer can see (empty if it may not read nodes)
    fake_node_names: frozenset[str] = frozenset()  # virtual nodes that are fake (label vcluster.loft.sh/fake-node)
    # virtual namespace -> its labels; needed to resolve namespaceSelectors in pod affinity terms
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # virtual Services of the pod's namespace (spec.clusterIP = the host copy's), for the service environment
    # variables the kubelet would inject (FOO_SERVICE_HOST...); see env.service_env
    services: tuple[Mapping[str, Any], ...] = ()
