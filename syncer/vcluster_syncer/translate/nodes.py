"""Nodes and StorageClasses mirrored from the host into the virtual cluster.

SYNC_NODES_MODE=synced (default): a *fake* virtual Node for each host node that runs the cluster's pods:
synced pods, and pod R-0 when it runs the cluster's CoreDNS (so a fresh cluster shows one Node, as
vcluster shows the node of its CoreDNS pod). The syncer usually may not read host nodes (its Role is
limited to N); when it can, the node's capacity and allocatable are copied, otherwise a nominal capacity is
used. The Node exists so that a virtual pod can be bound (pods/binding) to the node its host copy runs on,
and is deleted when none of the cluster's pods runs there. Its InternalIP is the host node's (read from the
node, or from its pods' status.hostIPs, or R-0's hostIP).

SYNC_NODES_MODE=all: every host node is mirrored with its real labels, taints, capacity and conditions.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from .metadata import ANN_HOST_OBJECT, FAKE_NODE_LABEL, MANAGED_BY
from .settings import TranslatorSettings

NOMINAL_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
FAKE_KUBELET_VERSION = "v1.33.0"


def ready_condition(heartbeat: str, transition: str | None = None) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "host node of synced pods (mirrored by the vcluster syncer)",
        "lastHeartbeatTime": heartbeat,
        "lastTransitionTime": transition or heartbeat,
    }


def _ownership(settings: TranslatorSettings) -> dict[str, str]:
    return {ANN_HOST_OBJECT: "true", MANAGED_BY: settings.vcluster_name}


def pod_host_ips(host_pods: Iterable[Mapping[str, Any]], node: str) -> list[str]:
    """Host node ``node``'s InternalIPs as its kubelet reports them in a synced host pod's ``status.hostIPs``
    (or ``hostIP``): the kubelet sets them to its node's InternalIPs (first IPv4 and IPv6). Read from the
    first such pod by namespace/name, so the answer does not depend on list order; [] while no pod running
    there has reported one."""
    def key(pod: Mapping[str, Any]) -> tuple[str, str]:
        m = pod.get("metadata") or {}
        return (m.get("namespace") or "", m.get("name") or "")

    for pod in sorted((p for p in host_pods if ((p.get("spec") or {}).get("nodeName")) == node), key=key):
        status = pod.get("status") or {}
        ips = [h["ip"] for h in status.get("hostIPs") or [] if h.get("ip")]
        if not ips and status.get("hostIP"):
            ips = [status["hostIP"]]
        if ips:
            return ips
    return []


def shown_nodes(host_pods: Iterable[Mapping[str, Any]], settings: TranslatorSettings) -> set[str]:
    """SYNC_NODES_MODE=synced: the host nodes the virtual cluster shows: those running synced pods
    (``host_pods``), and the node of pod R-0 when it runs the cluster's CoreDNS."""
    names = {n for n in (((p.get("spec") or {}).get("nodeName")) for p in host_pods) if n}
    if settings.coredns_node:
        names.add(settings.coredns_node)
    return names


def known_host_ips(host_pods: Iterable[Mapping[str, Any]], node: str, settings: TranslatorSettings) -> list[str]:
    """Host node ``node``'s InternalIPs as far as the syncer knows them without reading the node: its synced
    pods' (:func:`pod_host_ips`, dual-stack when the host is), else, for the node of pod R-0, R-0's hostIP."""
    return pod_host_ips(host_pods, node) or (list(settings.coredns_node_ips) if node == settings.coredns_node else [])


def is_ready(vnode: Mapping[str, Any]) -> bool:
    """The node's Ready condition is True."""
    conditions = ((vnode.get("status") or {}).get("conditions")) or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def kubelet_status(
    settings: TranslatorSettings, addresses: Iterable[Mapping[str, Any]] = (), internal_ips: Iterable[str] = ()
) -> dict[str, Any]:
    """Node status fields that send the virtual API server's kubelet calls (pods/log, exec, attach,
    portforward) to the syncer's kubelet server (kubelet.py): a Hostname address whose value is the fake
    kubelet's address (vcluster uses ``<node>.nodes.vcluster.com`` Hostname addresses the same way) and
    the kubelet port. The chart runs the API server with ``--kubelet-preferred-address-types=Hostname``.

    The InternalIPs stay the host node's real ones (``addresses`` of a readable host node, or
    ``internal_ips`` read from its pods' hostIPs): a pod's ``hostIP``/``hostPort`` names them, as on the host.
    A mirrored node's own Hostname address is replaced; its other addresses (ExternalIP...) are kept for
    display. Duplicates are dropped (the API server rejects them)."""
    out: list[dict[str, Any]] = []
    candidates = [dict(a) for a in addresses if a.get("type") != "Hostname"]
    candidates += [{"type": "InternalIP", "address": ip} for ip in internal_ips]
    candidates.append({"type": "Hostname", "address": settings.kubelet_address})
    for address in candidates:
        if address not in out:
            out.append(address)
    return {"addresses": out, "daemonEndpoints": {"kubeletEndpoint": {"Port": settings.kubelet_port}}}


def fake_node(
    name: str, host_node: Mapping[str, Any] | None, now: str, settings: TranslatorSettings,
    host_ips: Iterable[str] = (),
) -> dict[str, Any]:
    """A virtual Node standing in for host node ``name`` (``host_node`` when the syncer may read it).
    Its InternalIPs are the host node's, or else ``host_ips`` (``pod_host_ips``: what its pods report); a
    node whose IP is not known yet has none until it is."""
    host_status = (host_node or {}).get("status") or {}
    internal = [a for a in host_status.get("addresses") or [] if a.get("type") == "InternalIP" and a.get("address")]
    host_labels = ((host_node or {}).get("metadata") or {}).get("labels") or {}
    capacity = dict(host_status.get("capacity") or NOMINAL_CAPACITY)
    allocatable = dict(host_status.get("allocatable") or capacity)
    labels = {
        FAKE_NODE_LABEL: "true",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": host_labels.get("kubernetes.io/os", "linux"),
        "kubernetes.io/arch": host_labels.get("kubernetes.io/arch", "amd64"),
        "beta.kubernetes.io/os": host_labels.get("kubernetes.io/os", "linux"),
        "beta.kubernetes.io/arch": host_labels.get("kubernetes.io/arch", "amd64"),
    }
    node_info = dict(host_status.get("nodeInfo") or {})
    node_info.setdefault("kubeletVersion", FAKE_KUBELET_VERSION)
    for key in ("architecture", "operatingSystem"):
        node_info.setdefault(key, labels["kubernetes.io/arch" if key == "architecture" else "kubernetes.io/os"])
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": _ownership(settings)},
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [ready_condition(now)],
            "nodeInfo": node_info,
            "phase": "Running",
            **kubelet_status(settings, internal, () if internal else host_ips),
        },
    }


def mirrored_node(host_node: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any]:
    """SYNC_NODES_MODE=all: the host node as it is (labels, taints, status), marked as mirrored."""
    meta = host_node.get("metadata") or {}
    spec = host_node.get("spec") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if not k.startswith("node.alpha.kubernetes.io/") and not k.startswith("volumes.kubernetes.io/")}
    annotations.update(_ownership(settings))
    status = copy.deepcopy(host_node.get("status") or {})
    # the host's kubelet endpoint and images are not served by the virtual cluster; its kubelet calls go
    # to the syncer (Hostname address); its InternalIPs are kept
    status.pop("images", None)
    status.update(kubelet_status(settings, status.get("addresses") or ()))
    out_spec: dict[str, Any] = {}
    for key in ("taints", "unschedulable", "podCIDR", "podCIDRs"):
        if spec.get(key):
            out_spec[key] = copy.deepcopy(spec[key])
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": meta["name"], "labels": dict(meta.get("labels") or {}), "annotations": annotations},
        "spec": out_spec,
        "status": status,
    }


def is_ours(vnode: Mapping[str, Any], settings: TranslatorSettings) -> bool:
    ann = (vnode.get("metadata") or {}).get("annotations") or {}
    labels = (vnode.get("metadata") or {}).get("labels") or {}
    return ann.get(MANAGED_BY) == settings.vcluster_name or labels.get(FAKE_NODE_LABEL) == "true"


def node_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """Labels/annotations/spec changes (status is written separately, through the status subresource)."""
    patch: dict[str, Any] = {}
    dmeta, ameta = desired.get("metadata") or {}, actual.get("metadata") or {}
    meta: dict[str, Any] = {}
    for field in ("labels", "annotations"):
        changes = {k: v for k, v in (dmeta.get(field) or {}).items() if (ameta.get(field) or {}).get(k) != v}
        if changes:
            meta[field] = changes
    if meta:
        patch["metadata"] = meta
    dspec, aspec = desired.get("spec") or {}, actual.get("spec") or {}
    spec = {k: v for k, v in dspec.items() if aspec.get(k) != v}
    spec.update({k: None for k in ("taints", "unschedulable") if k in aspec and k not in dspec})
    if spec:
        patch["spec"] = spec
    return patch or None


def _without_heartbeats(conditions: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k not in ("lastHeartbeatTime", "lastTransitionTime")}
            for c in conditions or []]


def node_status_patch(
    desired: Mapping[str, Any], actual: Mapping[str, Any], heartbeat_due: bool
) -> dict[str, Any] | None:
    """Status for the virtual node when it changed, or when the heartbeat must be refreshed."""
    dstatus, astatus = desired.get("status") or {}, actual.get("status") or {}
    changed = any(
        (_without_heartbeats(v) if k == "conditions" else v)
        != (_without_heartbeats(astatus.get(k)) if k == "conditions" else astatus.get(k))
        for k, v in dstatus.items()
    )
    if not changed and not heartbeat_due:
        return None
    status = copy.deepcopy(dict(dstatus))
    # keep transition times of conditions whose status did not change
    previous = {c.get("type"): c for c in astatus.get("conditions") or []}
    for condition in status.get("conditions") or []:
        old = previous.get(condition.get("type"))
        if old and old.get("status") == condition.get("status") and old.get("lastTransitionTime"):
            condition["lastTransitionTime"] = old["lastTransitionTime"]
    return {"status": status}


# ---------------------------------------------------------------- StorageClasses

STORAGE_CLASS_FIELDS = ("provisioner", "parameters", "reclaimPolicy", "mountOptions", "allowVolumeExpansion",
                        "volumeBindingMode", "allowedTopologies")


def mirrored_storage_class(host_sc: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any]:
    """A host StorageClass in the virtual cluster, same name (claims name it; their host copies use it)."""
    meta = host_sc.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    annotations.update(_ownership(settings))
    out: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": meta["name"], "labels": dict(meta.get("labels") or {}), "annotations": annotations},
    }
    for field in STORAGE_CLASS_FIELDS:
        if host_sc.get(field) is not None:
            out[field] = copy.deepcopy(host_sc[field])
    return out


def storage_class_needs_recreate(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Everything but metadata and allowVolumeExpansion is immutable in a StorageClass."""
    return any(desired.get(f) != actual.get(f) for f in STORAGE_CLASS_FIELDS if f != "allowVolumeExpansion")


def storage_class_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    patch = node_patch({"metadata": desired.get("metadata")}, {"metadata": actual.get("metadata")}) or {}
    if desired.get("allowVolumeExpansion") != actual.get("allowVolumeExpansion"):
        patch["allowVolumeExpansion"] = desired.get("allowVolumeExpansion")
    return patch or None
