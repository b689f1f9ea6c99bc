"""The syncer tells the plugin that the virtual cluster is ready, without waiting for the kubelet.

Pod R-0 turns Ready only when the kubelet next probes the syncer's /readyz (every second) and then
reports it; the plugin would read that up to about 1.5 s after the cluster was ready. So once
:meth:`Syncer.ready` first holds (first sync done, default/default exists, DNS answers, CoreDNS's node
shown), the syncer sets condition :data:`contract.CONDITION_CLUSTER_READY` (status True) on its own pod,
and the plugin's ``VCluster.create`` returns on it. The kubelet keeps conditions it does not own. The condition says
"has been ready": it stays True when a container restarts later; the pod's Ready condition is the
health signal after that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from . import contract
from .errors import BACKOFF, classify
from .kube import PODS, ApiError, Conflict, Kube

log = logging.getLogger(__name__)

REASON = "VirtualClusterReady"
MESSAGE = "first sync done, ServiceAccount default/default exists, DNS answers, its node is shown"


def condition_patch(pod: dict[str, Any], now: str) -> dict[str, Any] | None:
    """A merge patch of ``pod``'s status adding :data:`contract.CONDITION_CLUSTER_READY` (True), or None
    when it is already True.

    A merge patch replaces the conditions list as a whole: it carries the pod's other conditions as they
    are, and its ``resourceVersion`` so that a kubelet update in between makes it fail (409) rather than
    drop that update.
    """
    conditions = (pod.get("status") or {}).get("conditions") or []
    if any(c.get("type") == contract.CONDITION_CLUSTER_READY and c.get("status") == "True" for c in conditions):
        return None
    ours = {"type": contract.CONDITION_CLUSTER_READY, "status": "True", "lastTransitionTime": now,
            "reason": REASON, "message": MESSAGE}
    kept = [c for c in conditions if c.get("type") != contract.CONDITION_CLUSTER_READY]
    return {"metadata": {"resourceVersion": pod["metadata"]["resourceVersion"]},
            "status": {"conditions": [*kept, ours]}}


def mark_ready(host: Kube, namespace: str, pod_name: str, stopping: threading.Event, now: Callable[[], str],
               *, attempts: int = 20, pause: float = 0.1) -> bool:
    """Set the condition on pod ``namespace/pod_name``; True once it is set (or was already).

    A conflict (the kubelet wrote in between) is retried at once, other API errors after ``pause``, at
    most ``attempts`` times in all; then, or on a permanent error (e.g. 403), it gives up with a
    warning: the plugin then waits for the pod's Ready condition, as before.
    """
    for _ in range(attempts):
        if stopping.is_set():
            return False
        try:
            pod = host.get(PODS, pod_name, namespace)
            if pod is None:
                log.warning("readiness: pod %s/%s not found; the plugin waits for its Ready condition",
                            namespace, pod_name)
                return False
            patch = condition_patch(pod, now())
            if patch is not None:
                host.patch(PODS, pod_name, patch, namespace, subresource="status")
            log.info("readiness: condition %s set on pod %s/%s", contract.CONDITION_CLUSTER_READY, namespace,
                     pod_name)
            return True
        except Conflict:
            continue
        except ApiError as exc:
            if classify(exc).action != BACKOFF:
                log.warning("readiness: cannot set condition %s on pod %s/%s: %s; the plugin waits for its "
                            "Ready condition", contract.CONDITION_CLUSTER_READY, namespace, pod_name, exc)
                return False
            log.debug("readiness: %s; retrying", exc)
            stopping.wait(pause)
    log.warning("readiness: condition %s not set on pod %s/%s after %d attempts; the plugin waits for its "
                "Ready condition", contract.CONDITION_CLUSTER_READY, namespace, pod_name, attempts)
    return False
