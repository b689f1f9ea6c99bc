"""What flows back from the host pod to the virtual pod: its status, and its binding to a node."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .hosts import HOSTS_CONTAINER
from .runtimeclass import RUNTIME_CLASS_CONTAINER

#: Init containers the syncer adds; the virtual pod never shows them.
HELPER_CONTAINERS = frozenset({HOSTS_CONTAINER, RUNTIME_CLASS_CONTAINER})


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
