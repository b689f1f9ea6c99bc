"""Labels and annotations put on the host namespaces this plugin creates."""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Mapping

from .contract import contract

PREFIX = contract.PLUGIN_DOMAIN
LABEL_RUN = f"{PREFIX}/run"
LABEL_WORKER = f"{PREFIX}/worker"
LABEL_PID = f"{PREFIX}/pid"
LABEL_HOST = f"{PREFIX}/host"
LABEL_CREATED = f"{PREFIX}/created"
#: Annotation refreshed while the run is alive (unix time); see ``_cleanup``.
ANNOTATION_HEARTBEAT = f"{PREFIX}/heartbeat"

#: Warm pool (``_pool``): the pool key, the state (warming/free/claimed), kept for the next run.
LABEL_POOL = f"{PREFIX}/pool"
LABEL_POOL_STATE = f"{PREFIX}/pool-state"
LABEL_POOL_KEPT = f"{PREFIX}/pool-kept"
#: Recycling: how many times the cluster was reset (absent on a never-used cluster).
LABEL_RESETS = f"{PREFIX}/resets"

#: Selects every namespace made by this plugin.
SELECTOR = LABEL_RUN

_INVALID = re.compile(r"[^A-Za-z0-9._-]+")


def label_value(value: str) -> str:
    """``value`` made a valid label value: ``[A-Za-z0-9._-]``, at most 63, alphanumeric at both ends."""
    cleaned = _INVALID.sub("-", value)[:63]
    return cleaned.strip("-._")


def hostname() -> str:
    """This machine's host name as a label value (the same on every call)."""
    return label_value(socket.gethostname()) or "unknown"


def namespace_labels(
    run_id: str,
    worker: str,
    *,
    pid: int | None = None,
    host: str | None = None,
    created: float | None = None,
) -> dict[str, str]:
    """The labels of a host namespace created by this process."""
    return {
        LABEL_RUN: label_value(run_id),
        LABEL_WORKER: label_value(worker),
        LABEL_PID: str(os.getpid() if pid is None else pid),
        LABEL_HOST: label_value(host) if host is not None else hostname(),
        LABEL_CREATED: str(int(time.time() if created is None else created)),
    }


def parse_int(labels: Mapping[str, str] | None, key: str) -> int | None:
    """An integer label or annotation, ``None`` when missing or malformed."""
    if not labels:
        return None
    raw = labels.get(key)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None
