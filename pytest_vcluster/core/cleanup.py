"""Removing the host namespaces that killed runs left behind.

Only namespaces whose run is certainly dead are deleted:

* same machine (label ``/host`` equals ours): the process in label ``/pid`` is not alive
  (or it is a different, younger process that reused the pid);
* another machine: the namespace is older than ``stale_after`` seconds, counted from the
  later of label ``/created`` and annotation ``/heartbeat`` (live runs refresh it).

Warm-pool clusters a run kept for the next one (label ``/pool-kept``) are deleted only when
unclaimed for longer than ``stale_after`` (label ``/created`` is the time they were kept).
A claim rewrites the labels to the claimer's, so claimed clusters follow the claimer's run.

Namespaces of this run, namespaces without complete labels, and namespaces already being
deleted are never touched; the deletion carries the listed ``resourceVersion``, so a namespace
changed meanwhile (e.g. a pool cluster just claimed by a live run) is left alone.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import labels as _labels
from .contract import contract
from .wait import Deadline, Expired, growing, poll

log = logging.getLogger(__name__)

PidAlive = Callable[[int, float], bool]


@dataclass(frozen=True)
class Decision:
    stale: bool
    reason: str


def decide(
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None = None,
    *,
    now: float,
    my_host: str,
    my_run: str,
    stale_after: float,
    pid_alive: PidAlive,
) -> Decision:
    """Whether a namespace with these labels belongs to a dead run (pure function)."""
    labels = labels or {}
    run = labels.get(_labels.LABEL_RUN)
    if not run:
        return Decision(False, "not created by pytest-vcluster")
    if run == my_run:
        return Decision(False, "belongs to this run")
    host = labels.get(_labels.LABEL_HOST)
    created = _labels.parse_int(labels, _labels.LABEL_CREATED)
    if not host or created is None:
        return Decision(False, "incomplete labels")
    heartbeat = _labels.parse_int(annotations, _labels.ANNOTATION_HEARTBEAT)
    last_alive = max(created, heartbeat or 0)
    if labels.get(_labels.LABEL_POOL_KEPT) == "true":
        idle = now - last_alive
        if idle > stale_after:
            return Decision(True, f"kept pool cluster unclaimed for {int(idle)}s (> {int(stale_after)}s)")
        return Decision(False, f"kept pool cluster, unclaimed for {int(idle)}s")
    if host == my_host:
        pid = _labels.parse_int(labels, _labels.LABEL_PID)
        if pid is None:
            return Decision(False, "incomplete labels")
        if pid_alive(pid, float(created)):
            return Decision(False, f"process {pid} on this machine is alive")
        return Decision(True, f"process {pid} on this machine is gone")
    age = now - last_alive
    if age > stale_after:
        return Decision(True, f"from machine {host}, last alive {int(age)}s ago (> {int(stale_after)}s)")
    return Decision(False, f"from machine {host}, last alive {int(age)}s ago")


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _process_start_time(pid: int) -> float | None:
    """Unix start time of ``pid`` from /proc (Linux), ``None`` when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    try:
        fields = stat[stat.rindex(")") + 2 :].split()
        start_ticks = int(fields[19])  # field 22 of the full line
    except (ValueError, IndexError):
        return None
    boot = _boot_time()
    if boot is None:
        return None
    return boot + start_ticks / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int, created: float) -> bool:
    """True when ``pid`` runs and may be the process that created the namespace at ``created``.

    A process that started clearly after ``created`` reused the pid, so the creator is dead.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return True
    started = _process_start_time(pid)
    if started is not None and started > created + 5:
        return False
    return True


def stale_namespaces(
    namespaces: Iterable[Any],
    *,
    my_host: str,
    my_run: str,
    stale_after: float,
    now: float | None = None,
    pid_alive: PidAlive = pid_alive,
) -> list[tuple[str, str]]:
    """``(name, reason)`` of the namespaces (kubernetes ``V1Namespace`` objects) to delete."""
    now = time.time() if now is None else now
    result = []
    for ns in namespaces:
        meta = ns.metadata
        if meta is None or meta.name is None or meta.deletion_timestamp is not None:
            continue
        decision = decide(
            meta.labels,
            meta.annotations,
            now=now,
            my_host=my_host,
            my_run=my_run,
            stale_after=stale_after,
            pid_alive=pid_alive,
        )
        if decision.stale:
            result.append((meta.name, decision.reason))
    return result


def delete_if_unchanged(core_v1: Any, ns: Any) -> bool:
    """Delete namespace ``ns`` (a listed ``V1Namespace``) only if nobody changed it since it was listed,
    e.g. claimed it from the warm pool: the deletion carries its ``resourceVersion``; then the chart's
    cluster-scoped objects of that cluster, which outlive the namespace. False when it was changed (409) or is
    gone (404); other API errors are raised."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    body = client.V1DeleteOptions(
        propagation_policy="Background",
        preconditions=client.V1Preconditions(resource_version=ns.metadata.resource_version),
    )
    try:
        core_v1.delete_namespace(ns.metadata.name, body=body, _request_timeout=15)
    except ApiException as exc:
        if exc.status in (404, 409):
            return False
        raise
    delete_cluster_scoped(getattr(core_v1, "api_client", None), ns.metadata.name)
    return True


def remove_stale(core_v1: Any, *, my_host: str, my_run: str, stale_after: float) -> list[str]:
    """Delete the host namespaces of dead runs; returns their names. Errors are logged, not raised."""
    from kubernetes.client.exceptions import ApiException

    try:
        listing = core_v1.list_namespace(label_selector=_labels.SELECTOR)
    except ApiException as exc:  # e.g. no permission to list namespaces
        log.warning("pytest-vcluster: cannot list namespaces to remove leftovers: %s", exc.reason)
        return []
    by_name = {ns.metadata.name: ns for ns in listing.items}
    removed = []
    for name, reason in stale_namespaces(
        listing.items, my_host=my_host, my_run=my_run, stale_after=stale_after
    ):
        try:
            if not delete_if_unchanged(core_v1, by_name[name]):
                continue
        except ApiException as exc:
            log.warning("pytest-vcluster: cannot delete leftover namespace %s: %s", name, exc.reason)
            continue
        log.info("pytest-vcluster: deleted leftover namespace %s (%s)", name, reason)
        removed.append(name)
    return removed


#: label the chart puts on its cluster-scoped objects (they outlive the namespace)
CLUSTER_SCOPED_LABEL = contract.CLUSTER_SCOPED_LABEL


def delete_cluster_scoped(host_api_client: Any, namespace: str) -> None:
    """Delete the chart's ClusterRoles/ClusterRoleBindings of the cluster in ``namespace`` (best effort)."""
    from kubernetes import client

    if host_api_client is None:
        return
    rbac = client.RbacAuthorizationV1Api(host_api_client)
    selector = f"{CLUSTER_SCOPED_LABEL}={namespace}"
    for delete in (rbac.delete_collection_cluster_role_binding, rbac.delete_collection_cluster_role):
        try:
            delete(label_selector=selector, _request_timeout=30)
        except Exception as exc:  # noqa: BLE001 - e.g. no permission: nothing of ours can exist then
            log.debug("pytest-vcluster: %s(%s): %s", delete.__name__, selector, exc)


def wait_namespaces_gone(core_v1: Any, names: Sequence[str], timeout: float) -> list[str]:
    """Poll until the namespaces are gone (pauses from 0.5 s growing to 5 s); returns those still present at the
    timeout."""
    remaining = list(names)

    def gone() -> bool:
        remaining[:] = [name for name in remaining if _present(core_v1, name)]
        return not remaining

    try:
        poll(gone, Deadline(timeout), pause=growing(0.5, 1.5, 5.0, within_deadline=True), not_yet=lambda _exc: False)
    except Expired:
        pass
    return remaining


def _present(core_v1: Any, name: str) -> bool:
    """False once namespace ``name`` is gone (404); any other answer or error counts as still there."""
    from kubernetes.client.exceptions import ApiException

    try:
        core_v1.read_namespace(name, _request_timeout=10)
    except ApiException as exc:
        return bool(exc.status != 404)
    except Exception:  # noqa: BLE001 - transient; check again
        return True
    return True
