"""The warm pool: ready virtual clusters made ahead of demand, claimed atomically through the host API.

A pool cluster is an ordinary virtual cluster whose host namespace carries three more labels:

* ``/pool``: the pool key, a digest of what makes clusters interchangeable (the chart's files, the
  session's chart values, the plugin's version). Only a test asking for exactly the session's
  options claims from the pool of that key; any other test gets a cold cluster.
* ``/pool-state``: ``warming`` while the filler makes it, ``free`` once it is ready, ``claimed``
  once a test owns it. A cluster is claimed once and deleted after its test, never reused.
* ``/pool-kept``: ``true`` on free clusters a run left for the next one (``--vcluster-pool-keep``).

**Claim** = one ``replace`` of the namespace carrying the ``resourceVersion`` that was listed: the
API server accepts it for exactly one claimer (the others get 409 Conflict and try the next one).
The claim also rewrites the run/worker/pid/created labels to the claimer's, so from that instant the
claimer's run owns the cluster: teardown, heartbeat and the orphan reaper treat it as the claimer's.
Deletions of free clusters (end of run, reaper) carry the same precondition, so a claim and a
deletion never both win.

The pool is shared by every process that computes the same key on the same host: the xdist workers
of a run and concurrent runs. One filler per run (the process that ends the run: the xdist controller
or the only process) keeps ``size`` clusters free or warming, making up to ``size`` at once.

No pytest import here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import cleanup as _cleanup
from . import labels as _labels

log = logging.getLogger(__name__)

LABEL_POOL = _labels.LABEL_POOL
LABEL_POOL_STATE = _labels.LABEL_POOL_STATE
LABEL_POOL_KEPT = _labels.LABEL_POOL_KEPT
WARMING, FREE, CLAIMED = "warming", "free", "claimed"
#: a recycled cluster being reset: free again soon (for its process's next test or for the pool)
RESETTING = "resetting"
#: how many times a cluster was reset (absent: never used)
LABEL_RESETS = _labels.LABEL_RESETS
#: how often the filler looks at the pool (a claim in this process wakes it at once)
FILL_INTERVAL = 1.0
#: how often a claimer that found only warming clusters looks again
CLAIM_POLL = 0.2


def pool_key(chart: Path, values: Mapping[str, Any], version: str) -> str:
    """16 hex characters identifying interchangeable clusters: chart files, chart values, plugin version."""
    digest = hashlib.sha256()
    digest.update(version.encode())
    digest.update(json.dumps(values, sort_keys=True, default=str).encode())
    files = [chart] if chart.is_file() else sorted(p for p in chart.rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(chart) if path != chart else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def pool_labels(key: str, state: str) -> dict[str, str]:
    return {LABEL_POOL: key, LABEL_POOL_STATE: state}


def _created(ns: Any) -> int:
    return _labels.parse_int(ns.metadata.labels, _labels.LABEL_CREATED) or 0


def _live(core_v1: Any, selector: str) -> list[Any]:
    """Namespaces matching ``selector`` that are not being deleted, oldest first."""
    items = core_v1.list_namespace(label_selector=selector, _request_timeout=15).items
    return sorted((ns for ns in items if ns.metadata.deletion_timestamp is None), key=_created)


def _listed(core_v1: Any, key: str, state: str) -> list[Any]:
    return _live(core_v1, f"{LABEL_POOL}={key},{LABEL_POOL_STATE}={state}")


def counts(core_v1: Any, key: str, *, unused: bool = False) -> tuple[int, int]:
    """``(free, coming)`` clusters of pool ``key`` on the host (all runs): free ones, and those warming (free
    soon). ``unused``: only clusters no test has used (free and never reset, or warming)."""
    free, warming, _resetting = _counts(core_v1, key, unused=unused)
    return free, warming


def _counts(core_v1: Any, key: str, *, unused: bool = False) -> tuple[int, int, int]:
    """``(free, warming, resetting)`` clusters of pool ``key`` on the host (all runs)."""
    free = warming = resetting = 0
    for ns in _live(core_v1, f"{LABEL_POOL}={key}"):
        state = (ns.metadata.labels or {}).get(LABEL_POOL_STATE)
        if state == FREE and not (unused and resets_of(ns)):
            free += 1
        elif state == WARMING:
            warming += 1
        elif state == RESETTING:
            resetting += 1
    return free, warming, resetting


def resets_of(ns: Any) -> int:
    """How often the cluster of namespace ``ns`` was reset (0: never used by a test)."""
    return _labels.parse_int(ns.metadata.labels, LABEL_RESETS) or 0


def claim(core_v1: Any, key: str, owner_labels: Mapping[str, str], *, unused: bool = False) -> str | None:
    """Claim the oldest free cluster of pool ``key``: its namespace (= release) name, or ``None``.
    ``unused``: only a cluster no test has used (never reset).

    Atomic: the namespace is replaced with the ``resourceVersion`` it was listed with, so of two
    claimers of one cluster exactly one succeeds; the loser tries the next free cluster.
    """
    claimed = claim_namespace(core_v1, key, owner_labels, unused=unused)
    return None if claimed is None else str(claimed.metadata.name)


def claim_namespace(core_v1: Any, key: str, owner_labels: Mapping[str, str], *, unused: bool = False) -> Any:
    """:func:`claim`, returning the claimed namespace object (its labels count its resets)."""
    from kubernetes.client.exceptions import ApiException

    for ns in _listed(core_v1, key, FREE):
        if unused and resets_of(ns):
            continue
        labels = dict(ns.metadata.labels or {})
        labels.update(owner_labels)
        labels[LABEL_POOL_STATE] = CLAIMED
        labels.pop(LABEL_POOL_KEPT, None)
        ns.metadata.labels = labels
        try:
            return core_v1.replace_namespace(ns.metadata.name, ns, _request_timeout=15)
        except ApiException as exc:
            if exc.status in (404, 409):  # someone else claimed or deleted it first
                continue
            raise
    return None


def set_state(core_v1: Any, name: str, labels: Mapping[str, str | None]) -> None:
    core_v1.patch_namespace(name, {"metadata": {"labels": dict(labels)}}, _request_timeout=15)


def keep_for_next_run(core_v1: Any, name: str) -> bool:
    """Mark free cluster ``name`` kept for the next run (``--vcluster-pool-keep``), its age counted from now
    (the reaper removes kept clusters unclaimed for ``--vcluster-stale-after``). False when that failed."""
    try:
        set_state(core_v1, name, {LABEL_POOL_KEPT: "true", _labels.LABEL_CREATED: str(int(time.time()))})
    except Exception:  # noqa: BLE001 - e.g. deleted meanwhile: nothing to keep
        return False
    return True


@dataclass
class PoolStats:
    """What the terminal summary says about the pool (JSON-able; merged from xdist workers)."""

    size: int = 0
    key: str = ""
    made: int = 0
    failed: int = 0
    deleted_unclaimed: int = 0
    kept: int = 0
    claimed: int = 0
    cold: int = 0
    acquire_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: recycling: clusters reset and handed on, their reset times, claims of recycled clusters
    recycled: int = 0
    reset_seconds: list[float] = field(default_factory=list)
    reused: int = 0
    #: clusters deleted instead of recycled, and why (a failed or unclean reset, retired after --vcluster-recycle-max)
    discarded: list[str] = field(default_factory=list)

    def merge(self, data: Mapping[str, Any]) -> None:
        self.size = self.size or int(data.get("size", 0))
        self.key = self.key or str(data.get("key", ""))
        for name in ("made", "failed", "deleted_unclaimed", "kept", "claimed", "cold", "recycled", "reused"):
            setattr(self, name, getattr(self, name) + int(data.get(name, 0)))
        self.acquire_seconds.extend(data.get("acquire_seconds", []))
        self.errors.extend(data.get("errors", []))
        self.reset_seconds.extend(data.get("reset_seconds", []))
        self.discarded.extend(data.get("discarded", []))


class Filler:
    """Keeps ``size`` clusters of pool ``key`` free or warming on the host, from a background thread.

    ``make(labels)`` creates one ready cluster whose namespace carries ``labels`` and returns a handle
    with ``name`` and ``disconnect()``; ``owner_labels()`` are the labels of this run's namespaces.
    """

    def __init__(
        self,
        *,
        core_v1: Callable[[], Any],
        key: str,
        size: int,
        make: Callable[[Mapping[str, str]], Any],
        owner_labels: Callable[[], Mapping[str, str]],
        stats: PoolStats,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self._core = core_v1
        self.key = key
        self.size = size
        self._make = make
        self._owner_labels = owner_labels
        self.stats = stats
        self._progress = progress or (lambda line: log.info("pytest-vcluster: %s", line))
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._inflight: dict[int, threading.Thread] = {}
        self._thread: threading.Thread | None = None
        self._counter = 0
        self._keep = False
        self._deleted: list[str] = []

    def start(self) -> None:
        """Start making the missing clusters now, then keep the pool full from a background thread."""
        self._fill()
        self._thread = threading.Thread(target=self._loop, name="pytest-vcluster-pool", daemon=True)
        self._thread.start()

    def pending(self) -> int:
        """Clusters this filler is making (their namespaces may not exist yet)."""
        with self._lock:
            return len(self._inflight)

    def wake(self) -> None:
        """Look at the pool now (a cluster was just claimed)."""
        self._wake.set()

    def _fill(self) -> None:
        """Start making as many clusters as the pool lacks (free, warming and resetting ones of every run count:
        a recycled cluster being reset comes back, to its process's next test or to the pool, so a spare a test
        took meanwhile is not replaced by a cold start)."""
        try:
            free, warming, resetting = _counts(self._core(), self.key)
        except Exception as exc:  # noqa: BLE001 - the host is unreachable now: try again later
            log.debug("pytest-vcluster: pool: %s", exc)
            return
        with self._lock:
            mine = len(self._inflight)
            missing = min(self.size - free - resetting - max(warming, mine), self.size - mine)
            for _ in range(max(0, missing)):
                self._counter += 1
                thread = threading.Thread(target=self._make_one, args=(self._counter,),
                                          name=f"pytest-vcluster-pool-{self._counter}", daemon=True)
                self._inflight[self._counter] = thread
                thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FILL_INTERVAL)
            self._wake.clear()
            if not self._stop.is_set():
                self._fill()

    def _make_one(self, number: int) -> None:
        try:
            labels = {**self._owner_labels(), **pool_labels(self.key, WARMING)}
            vc = self._make(labels)
            vc.disconnect()
            with self._lock:
                self.stats.made += 1
                drop = self._stop.is_set() and not self._keep
                if drop:
                    self._deleted.append(vc.name)
            core = self._core()
            if drop:  # the run ended while it warmed
                core.delete_namespace(vc.name, propagation_policy="Background", _request_timeout=15)
            else:
                set_state(core, vc.name, {LABEL_POOL_STATE: FREE})
        except Exception as exc:  # noqa: BLE001 - reported in the summary; tests fall back to cold clusters
            if not self._stop.is_set():
                with self._lock:
                    self.stats.failed += 1
                    if len(self.stats.errors) < 3:
                        self.stats.errors.append(f"pool: a cluster failed to start: {str(exc).splitlines()[0]}")
                self._stop.wait(5.0)  # do not spin on a host that cannot start clusters
        finally:
            with self._lock:
                self._inflight.pop(number, None)
            self._wake.set()

    def stop(self, *, keep: bool, timeout: float) -> list[str]:
        """Stop filling. ``keep``: wait (up to ``timeout``) for the clusters still warming, then mark this
        run's free clusters kept for the next run. Else delete this run's warming and free clusters.
        Returns the namespaces deleted (the caller waits for them to be gone)."""
        with self._lock:
            self._keep = keep
        if keep:  # leave a full pool: start what a last claim took (the loop may not have looked yet)
            self._fill()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            threads = list(self._inflight.values())
        core = self._core()
        if keep:
            if threads:
                self._progress(f"pool: waiting for {len(threads)} warming cluster(s) to keep them for the next run")
            deadline = time.monotonic() + timeout
            for thread in threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        else:  # interrupt the clusters still warming: their VCluster.create fails and cleans up
            for ns in _listed(core, self.key, WARMING):
                if self._is_mine(ns) and _cleanup.delete_if_unchanged(core, ns):
                    with self._lock:
                        self._deleted.append(ns.metadata.name)
            # Join them (up to ``timeout``): a daemon thread still inside VCluster.create when the interpreter
            # shuts down may write to stderr then, which aborts the process (SIGABRT) after a green run.
            deadline = time.monotonic() + timeout
            for thread in threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for ns in _listed(core, self.key, FREE):
            if not self._is_mine(ns):
                continue
            if keep:
                self.stats.kept += keep_for_next_run(core, ns.metadata.name)
            elif _cleanup.delete_if_unchanged(core, ns):
                with self._lock:
                    self._deleted.append(ns.metadata.name)
                    self.stats.deleted_unclaimed += 1
        with self._lock:
            return list(self._deleted)

    def _is_mine(self, ns: Any) -> bool:
        """A cluster this run's filler made and nobody claimed (a claim rewrites the run label)."""
        return (ns.metadata.labels or {}).get(_labels.LABEL_RUN) == self._owner_labels().get(_labels.LABEL_RUN)
