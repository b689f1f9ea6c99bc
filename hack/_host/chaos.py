"""Crashing a container of a host pod for chaos tests: SIGKILL to its task in the host's containerd.

The kubelet sees a container that died (exit 137) and restarts it as after a real crash; the pod, its
sandbox and its emptyDir volumes stay.
"""

from __future__ import annotations

import json

from . import cluster, images
from ._util import HostError
from .layout import Layout


def container_id(layout: Layout, namespace: str, pod: str, container: str) -> str:
    """The containerd ID of the running ``container`` of host pod ``namespace/pod``."""
    status = json.loads(cluster.kubectl(layout, "get", "pod", "-n", namespace, pod, "-o", "json"))["status"]
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") == container:
            if "running" not in (cs.get("state") or {}) or not cs.get("containerID"):
                raise HostError(f"container {container} of pod {namespace}/{pod} is not running: {cs.get('state')}")
            return str(cs["containerID"]).split("://", 1)[-1]
    raise HostError(f"pod {namespace}/{pod} has no container {container!r}")


def kill_container(layout: Layout, namespace: str, pod: str, container: str) -> str:
    """SIGKILL the task of ``container`` (a crash, not a stop); returns the container ID."""
    cid = container_id(layout, namespace, pod, container)
    images.ctr(layout, "tasks", "kill", "--signal", "SIGKILL", cid)
    return cid
