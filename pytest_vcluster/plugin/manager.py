"""Per-process bookkeeping: the host, the clusters made, their timings, teardown and leak checks."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core import cleanup as _cleanup
from ..core import labels as _labels
from ..core import naming as _naming
from ..core import pool as _pool
from ..core.cleanup import wait_namespaces_gone
from ..core.errors import ConfigError, ImageBuildError, SnapshotError, VClusterError
from ..core.host import Host, kind_state_dir, open_host
from ..core.images import ImageRef
from ..core.kubernetes import version_layer
from ..core.once import run_once
from ..core.settings import Settings, chart_version
from ..core.snapshot import Snapshot
from ..core.values import ClusterOptions, cluster_options, resolve_values
from ..core.vcluster import VCluster

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 300.0
LEAK_WAIT_SECONDS = 120.0
#: how long a test waits for a warming pool cluster before it makes a cold one
POOL_WAIT_SECONDS = 60.0
#: how long a reset may take before the cluster is deleted instead
RESET_TIMEOUT_SECONDS = 60.0
#: the fixtures whose clusters are recycled (one test each)
RECYCLED_FIXTURES = ("vcluster", "vcluster_factory")


@dataclass
class ClusterRecord:
    """What the reports say about one cluster (JSON-able, sent from xdist workers)."""

    name: str
    namespace: str
    fixture: str
    owner: str
    worker: str
    setup_seconds: float = 0.0
    teardown_seconds: float | None = None
    kept: bool = False
    kubeconfig: str | None = None
    port_forward_command: str | None = None
    #: claimed from the warm pool (``setup_seconds`` is then the claim and connection)
    pooled: bool = False


@dataclass
class Summary:
    """Everything the terminal summary shows; merged from all xdist workers."""

    host: str | None = None
    records: list[ClusterRecord] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stale_removed: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    pool: _pool.PoolStats = field(default_factory=_pool.PoolStats)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "records": [asdict(r) for r in self.records],
            "leaks": list(self.leaks),
            "errors": list(self.errors),
            "stale_removed": list(self.stale_removed),
            "templates": list(self.templates),
            "pool": asdict(self.pool),
        }

    def merge_dict(self, data: Mapping[str, Any]) -> None:
        if data.get("host") and not self.host:
            self.host = str(data["host"])
        self.records.extend(ClusterRecord(**r) for r in data.get("records", []))
        self.leaks.extend(data.get("leaks", []))
        self.errors.extend(data.get("errors", []))
        self.stale_removed.extend(data.get("stale_removed", []))
        self.templates.extend(data.get("templates", []))
        self.pool.merge(data.get("pool") or {})


class VClusterManager:
    """Creates virtual clusters on the session's host cluster and tears them down.

    Use ``with vcluster_manager.cluster(values={...}) as vc:`` from fixtures of any scope,
    or :meth:`create` / :meth:`release` for full control.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        run_id: str,
        worker: str,
        shared_dir: Callable[[], Path],
        workdir: Callable[[], Path],
        env: Mapping[str, str] | None = None,
        run_pid: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        #: the process that ends the run (the xdist controller): kind hosts count it as their user
        self.run_pid = run_pid or os.getpid()
        self._progress = progress or (lambda line: log.info("pytest-vcluster: %s", line))
        self._syncer_layer: dict[str, Any] | None = None
        self.run_id = run_id
        self.worker = worker
        self._shared_dir = shared_dir
        self._workdir = workdir
        self._env = dict(os.environ if env is None else env)
        self._names = _naming.NameGenerator(run_id, _naming.worker_part(worker))
        self._lock = threading.RLock()
        self._host: Host | None = None
        self._host_error: VClusterError | None = None
        self._helm: Any = None
        self._live: dict[str, VCluster] = {}
        self._records: dict[str, ClusterRecord] = {}
        self._deleted: list[str] = []
        self._owners: dict[str, list[str]] = {}
        self.summary = Summary()
        self._heartbeat_stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._pool_key: str | None = None
        self._filler: _pool.Filler | None = None
        self._pool_starter: threading.Thread | None = None
        #: clusters to recycle after their test: name -> pool key; resets under way: name -> thread
        self._recyclable: dict[str, str] = {}
        self._resetting: dict[str, threading.Thread] = {}
        self._resetting_keys: dict[str, str] = {}
        #: reset clusters this process holds for its next test, connected, by pool key (claimed with no host call)
        self._ready: dict[str, list[VCluster]] = {}
        #: this process runs no more tests: a released cluster is deleted, not reset (unless kept for the next run)
        self._no_more_tests = False
        #: notified when a reset of this process ends (a test waiting for a cluster claims it at once)
        self._reset_ended = threading.Condition()
        self._keys: dict[str, str] = {}

    # ------------------------------------------------------------------ host

    @property
    def host(self) -> Host:
        """The host cluster, opened on first use (kind: created once per run under a file lock)."""
        with self._lock:
            if self._host is not None:
                return self._host
            if self._host_error is not None:
                raise self._host_error
            try:
                host = open_host(
                    self.settings,
                    kind_state_dir(),
                    self._env,
                    run_id=self.run_id,
                    run_pid=self.run_pid,
                    progress=self._progress,
                )
                self.summary.host = f"{host.provider} {host.server} (Kubernetes {host.version})"
                self._remove_stale(host)
                self._syncer_layer = self._ensure_syncer_image(host)
            except VClusterError as exc:
                self._host_error = exc
                raise
            self._host = host
            return host

    def _ensure_syncer_image(self, host: Host) -> dict[str, Any]:
        """Once per run (first process to get the lock): make the host able to start the syncer image;
        returns the chart values selecting it (empty when the user's values choose the image)."""
        from ..core import images as _syncer_image

        if self.settings.syncer_image:
            return _syncer_image.parse_ref(self.settings.syncer_image).values()
        chosen = (self.settings.values.get("syncer") or {}).get("image") or {}
        if isinstance(chosen, Mapping) and (chosen.get("repository") or chosen.get("tag")):
            return {}

        def make(path: Path) -> ImageRef:
            ref = _syncer_image.ensure_on_host(host, base_image=self.settings.syncer_base_image,
                                               progress=self._progress)
            path.write_text(str(ref))
            return ref

        def read(path: Path) -> ImageRef:
            return _syncer_image.parse_ref(path.read_text().strip(), source=str(path))

        done = run_once(self._shared_dir(), "syncer-image", self.run_id, make=make, read=read, timeout=1800,
                        result="ref", failed=ImageBuildError)
        return done.value.values()

    def _remove_stale(self, host: Host) -> None:
        """Once per run (first process to get the lock): delete namespaces of dead runs."""

        def make(path: Path) -> list[str]:
            removed = _cleanup.remove_stale(
                host.core_v1(),
                my_host=_labels.hostname(),
                my_run=_labels.label_value(self.run_id),
                stale_after=self.settings.stale_after,
            )
            path.write_text("\n".join(removed))
            return removed

        done = run_once(self._shared_dir(), "stale-cleanup", self.run_id, make=make, read=lambda _path: [],
                        timeout=120, catch=())
        if done.made:
            self.summary.stale_removed.extend(done.value)

    def _get_helm(self) -> Any:
        from ..core.helm import Helm

        with self._lock:
            if self._helm is None:
                host = self.host
                self._helm = Helm(host.kubeconfig_path, host.context)
            return self._helm

    # ------------------------------------------------------------------ clusters

    def options(self, **options: Any) -> ClusterOptions:
        return cluster_options(options, where="vcluster_manager.cluster()")

    def create(
        self, options: ClusterOptions | None = None, *, owner: str = "", fixture: str = "vcluster_manager"
    ) -> VCluster:
        """Create one virtual cluster with the session's settings plus ``options`` (claimed from the
        warm pool when ``--vcluster-pool`` is on and ``options`` change nothing in the cluster)."""
        options = options or ClusterOptions()
        if isinstance(options.fork, str):
            raise ConfigError(
                f"{fixture}: fork={options.fork!r} names a fixture, which only @pytest.mark.vcluster and "
                "vcluster_factory look up: pass the Snapshot itself"
            )
        host = self.host
        recycle = self._recycles(options, fixture)
        unused = options.recycle is False
        eligible = self._pool_eligible(options) or recycle
        key = self.cluster_key(options) if eligible else None
        vc = self._from_pool(options, key, unused=unused) if key is not None else None
        pooled = vc is not None
        if vc is None:
            vc = self._create_cold(host, options, owner=owner, where=fixture, baseline=recycle)
        if recycle and key is not None:
            with self._lock:
                self._recyclable[vc.name] = key
        record = ClusterRecord(
            name=vc.name,
            namespace=vc.host_namespace,
            fixture=fixture,
            owner=owner,
            worker=self.worker,
            setup_seconds=round(vc.setup_seconds, 3),
            pooled=pooled,
        )
        with self._lock:
            self._live[vc.name] = vc
            self._records[vc.name] = record
            self._owners.setdefault(owner, []).append(vc.name)
            self.summary.records.append(record)
            if eligible:
                if pooled:
                    self.summary.pool.claimed += 1
                    self.summary.pool.reused += 1 if vc.resets else 0
                    self.summary.pool.acquire_seconds.append(record.setup_seconds)
                else:
                    self.summary.pool.cold += 1
        self._start_heartbeat()
        return vc

    def values_of(self, options: ClusterOptions, *, where: str = "vcluster") -> dict[str, Any]:
        """The chart values of a cluster of ``options``, resolved once
        (:func:`~pytest_vcluster.core.values.resolve_values`): a fork's values, the syncer image, the Kubernetes
        version's image tags (the options', else ``--vcluster-kubernetes``), the session's values, the options'.
        ``VCluster.create`` installs them as they are, over the service CIDR it discovers."""
        fork = options.fork.values if isinstance(options.fork, Snapshot) else None
        version = version_layer(options.chart or self.settings.chart_path(),
                                options.kubernetes or self.settings.kubernetes, fork_values=fork, where=where)
        return resolve_values(fork=fork, image=self._syncer_layer, kubernetes=version, settings=self.settings.values,
                              options=options, where=where)

    def _create_cold(
        self, host: Host, options: ClusterOptions, *, owner: str, where: str,
        labels: Mapping[str, str] | None = None, name: str | None = None, baseline: bool = False,
    ) -> VCluster:
        helm = self._get_helm()
        values = self.values_of(options, where=where)
        name = name or self._names.next()
        workdir = self._workdir()
        try:
            return VCluster.create(
                host,
                name=name,
                chart_values=values,
                chart=options.chart or self.settings.chart_path(),
                timeout=options.timeout or self.settings.timeout,
                connect=options.connect or self.settings.connect,
                labels=labels or _labels.namespace_labels(self.run_id, self.worker),
                workdir=workdir,
                helm=helm,
                keep_on_error=self.settings.keep_on_failure,
                fork=options.fork,
                baseline=baseline,
            )
        except VClusterError:
            with self._lock:
                if self.settings.keep_on_failure:
                    self.summary.errors.append(
                        f"kept host namespace {name} of a virtual cluster that failed to start ({owner}); "
                        f"delete it with: kubectl delete namespace {name}"
                    )
                else:
                    self._deleted.append(name)
            raise

    # ------------------------------------------------------------------ templates

    def template(self, name: str, prepare: Callable[[VCluster], Any], **options: Any) -> Snapshot:
        """The :class:`~pytest_vcluster.Snapshot` of a prepared cluster, made once per run: the first
        process to get the file lock (xdist workers share it) creates a cluster with ``options``, calls
        ``prepare(vc)`` (install CRDs, an operator, seed data...), takes its snapshot and deletes the
        cluster; the other processes read the snapshot from the run's shared directory. Forks start from
        it: ``vcluster_factory(fork=snapshot)`` or ``@pytest.mark.vcluster(fork="<fixture returning it>")``.
        A failed preparation fails every process that asks for the template, with its message."""
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", name):
            raise ConfigError(f"template name {name!r} is not valid: use 1-40 of a-z, 0-9 and '-'")
        parsed = cluster_options(options, where=f"vcluster_manager.template({name!r})")
        started = time.monotonic()

        def make(path: Path) -> Snapshot:
            nonlocal started
            started = time.monotonic()
            with self.cluster_of(parsed, owner=f"template {name}") as vc:
                prepare(vc)
                snapshot = vc.snapshot()
            snapshot.write(path)
            return snapshot

        done = run_once(self._shared_dir(), f"template-{name}", self.run_id, make=make, read=Snapshot.read,
                        timeout=3600, result="snapshot", failed=SnapshotError, catch=(Exception,), wrap=True,
                        describe=lambda exc: f"preparing template {name!r} failed: {type(exc).__name__}: {exc}")
        snapshot = done.value
        if not done.made:
            return snapshot
        with self._lock:
            self.summary.templates.append(
                f"template {name}: prepared in {time.monotonic() - started:.1f}s, {len(snapshot.keys)} objects, "
                f"{snapshot.size / 1024:.0f} KiB"
            )
        return snapshot

    @contextlib.contextmanager
    def cluster_of(self, options: ClusterOptions, *, owner: str) -> Iterator[VCluster]:
        vc = self.create(options, owner=owner, fixture="vcluster_manager")
        failed = False
        try:
            yield vc
        except BaseException:
            failed = True
            raise
        finally:
            self.release(vc, failed=failed)

    # ------------------------------------------------------------------ warm pool

    def _pool_eligible(self, options: ClusterOptions) -> bool:
        """Only clusters of exactly the session's options come from the pool (timeout/connect differ
        only in how the test waits and connects)."""
        return bool(self.settings.pool) and not (
            options.values or options.set or options.values_files or options.chart or options.fork
        )

    def _recycles(self, options: ClusterOptions, fixture: str) -> bool:
        """A cluster of one test (``vcluster``, ``vcluster_factory``) is recycled unless ``--vcluster-recycle=no``
        or ``recycle=False``; forks are not (their controllers start the template's pods again after each reset)."""
        return (self.settings.recycle and options.recycle is not False and fixture in RECYCLED_FIXTURES
                and options.fork is None)

    def pool_key(self) -> str:
        """The key of this session's pool: chart files, session values with the syncer image, version."""
        with self._lock:
            if self._pool_key is None:
                self._pool_key = self.cluster_key(ClusterOptions())
                self.summary.pool.key = self._pool_key
                self.summary.pool.size = self.settings.pool
            return self._pool_key

    def cluster_key(self, options: ClusterOptions) -> str:
        """What makes clusters interchangeable: the chart files, all chart values (with the syncer image) and
        the plugin's version. Clusters of one key are claimed from, and recycled into, one pool."""
        import json

        from ..core.version import __version__

        self.host  # noqa: B018 - the syncer image decides the values
        values = self.values_of(options)
        chart = options.chart or self.settings.chart_path()
        memo = f"{chart}\0{json.dumps(values, sort_keys=True, default=str)}"
        with self._lock:
            if memo not in self._keys:
                self._keys[memo] = _pool.pool_key(chart, values, __version__)
            return self._keys[memo]

    def _from_pool(self, options: ClusterOptions, key: str, *, unused: bool = False) -> VCluster | None:
        """Claim a free cluster of pool ``key`` (``unused``: one no test has used) and connect to it. Waits for
        a warming one or one being reset (at most :data:`POOL_WAIT_SECONDS`) when none is free; ``None``: make
        a cold one."""
        host = self.host
        core = host.core_v1()
        started = time.monotonic()
        timeout = options.timeout or self.settings.timeout
        starting = self._pool_starting() if key == self._pool_key else 0
        while True:
            if not unused:
                with self._lock:
                    held = self._ready.get(key)
                    vc = held.pop() if held else None
                if vc is not None:  # reset by this process: already connected, no host call
                    vc.setup_seconds = time.monotonic() - started
                    return vc
            try:
                claimed = _pool.claim_namespace(core, key, _labels.namespace_labels(self.run_id, self.worker),
                                                unused=unused)
                if claimed is None:
                    free, coming = _pool.counts(core, key, unused=unused)
                    coming += starting
                    if not unused:
                        with self._lock:
                            # one look at both: a reset hands its cluster on before it stops counting as
                            # resetting, so one that ended during the host calls above is found held here
                            if self._ready.get(key):
                                continue
                            coming += sum(1 for k in self._resetting_keys.values() if k == key)
                    if free == 0 and (coming == 0 or time.monotonic() - started > POOL_WAIT_SECONDS):
                        return None
                    with self._reset_ended:  # a reset of this process ending wakes this at once
                        self._reset_ended.wait(_pool.CLAIM_POLL)
                    starting = self._pool_starting() if key == self._pool_key else 0
                    continue
            except Exception as exc:  # noqa: BLE001 - the pool is an optimisation: fall back to a cold cluster
                log.warning("pytest-vcluster: pool claim failed, making a cold cluster: %s", exc)
                return None
            name = str(claimed.metadata.name)
            try:
                vc = VCluster.attach(host, name, connect=options.connect or self.settings.connect,
                                     workdir=self._workdir(), timeout=timeout)
            except VClusterError as exc:  # broken while it waited: drop it, try the next one
                log.warning("pytest-vcluster: dropping pool cluster %s: %s", name, exc)
                with contextlib.suppress(Exception):
                    core.delete_namespace(name, propagation_policy="Background", _request_timeout=30)
                with self._lock:
                    self._deleted.append(name)
                    self.summary.pool.errors.append(f"pool cluster {name} was broken when claimed: {exc}")
                continue
            with self._lock:
                filler = self._filler
            if filler is not None:  # this process fills the pool: refill now, not at its next look
                filler.wake()
            vc.setup_seconds = time.monotonic() - started
            vc.values = self.values_of(options)
            vc.chart_version = chart_version(options.chart or self.settings.chart_path())
            vc.resets = _pool.resets_of(claimed)
            return vc

    def _pool_starting(self) -> int:
        """Clusters the filler of this process is about to make (0 in xdist workers: the controller fills)."""
        with self._lock:
            starter, filler = self._pool_starter, self._filler
        if filler is not None:
            return filler.pending()
        return 1 if starter is not None and starter.is_alive() else 0

    def start_pool(self) -> None:
        """Start keeping ``--vcluster-pool`` clusters ready (call once per run, from the process that ends
        it); the host is opened in the background, so the session does not wait for it."""
        if not self.settings.pool or self._pool_starter is not None:
            return

        def start() -> None:
            try:
                key = self.pool_key()
            except VClusterError:
                return  # the tests report the host's error
            names = _naming.NameGenerator(self.run_id, "pool")

            def make(labels: Mapping[str, str]) -> VCluster:
                return self._create_cold(self.host, ClusterOptions(), owner="pool", where="--vcluster-pool",
                                         labels=labels, name=names.next(), baseline=self.settings.recycle)

            filler = _pool.Filler(
                core_v1=lambda: self.host.core_v1(),
                key=key,
                size=self.settings.pool,
                make=make,
                owner_labels=lambda: _labels.namespace_labels(self.run_id, "pool", pid=self.run_pid),
                stats=self.summary.pool,
                progress=self._progress,
            )
            with self._lock:  # started under the lock: finish() either sees the filler or it never starts
                if self._heartbeat_stop.is_set():
                    return
                filler.start()
                self._filler = filler

        self._pool_starter = threading.Thread(target=start, name="pytest-vcluster-pool-start", daemon=True)
        self._pool_starter.start()

    def _stop_pool(self) -> None:
        if self._pool_starter is not None:
            self._pool_starter.join(timeout=self.settings.timeout)
        with self._lock:
            filler = self._filler
        if filler is None:
            return
        try:
            deleted = filler.stop(keep=self.settings.pool_keep, timeout=self.settings.timeout)
        except Exception as exc:  # noqa: BLE001
            self.summary.errors.append(f"pool: cannot clean up: {exc}")
            return
        with self._lock:
            self._deleted.extend(deleted)

    def release(self, vc: VCluster, *, failed: bool = False) -> ClusterRecord | None:
        """Tear a cluster down: recycle it (reset it in the background, then hand it to the next test), delete
        its host namespace without waiting, or keep it when ``failed`` and ``--vcluster-keep-on-failure`` is set."""
        with self._lock:
            self._live.pop(vc.name, None)
            record = self._records.get(vc.name)
            key = self._recyclable.pop(vc.name, None)
        started = time.monotonic()
        kept = failed and self.settings.keep_on_failure
        if key is not None and not kept and self._no_more_tests and not self.settings.pool_keep:
            key = None  # no test of this process will take it: deleted below
        if key is not None and not kept:
            if vc.resets >= self.settings.recycle_max:
                with self._lock:
                    self.summary.pool.discarded.append(
                        f"{vc.name}: retired after {vc.resets} resets (--vcluster-recycle-max)")
            else:
                self._recycle(vc, key)
                if record is not None:
                    record.teardown_seconds = round(time.monotonic() - started, 3)
                return record
        if kept:
            kept_config = vc.write_standalone_kubeconfig(vc.kubeconfig_path.with_suffix(".kept.kubeconfig"))
            vc.disconnect()
            if record is not None:
                record.kept = True
                record.kubeconfig = str(kept_config)
                record.port_forward_command = vc.port_forward_command
        else:
            try:
                vc.delete(wait=False)
            except VClusterError as exc:
                self.summary.errors.append(str(exc))
            with self._lock:
                self._deleted.append(vc.host_namespace)
        if record is not None:
            record.teardown_seconds = round(time.monotonic() - started, 3)
        return record

    # ------------------------------------------------------------------ recycling

    def _recycle(self, vc: VCluster, key: str) -> None:
        """Reset the cluster in the background; this process keeps it for its next test (the host namespace keeps
        this process's labels, so nobody else claims it, and a killed run's clusters are reaped as its own)."""
        thread = threading.Thread(target=self._reset_one, args=(vc, key), name=f"pytest-vcluster-reset-{vc.name}",
                                  daemon=True)
        with self._lock:
            self._resetting[vc.name] = thread
            self._resetting_keys[vc.name] = key
        thread.start()

    def _reset_one(self, vc: VCluster, key: str) -> None:
        """Reset ``vc``, count the reset on its host namespace and hold a new handle for this process's next test;
        or, when this process already has a cluster of ``key`` for it (a spare it took from the pool meanwhile),
        make it a free cluster of the pool. Delete it when the reset fails or is unclean."""
        try:
            core = self.host.core_v1()
            # the pool's filler counts it as coming back: a spare taken meanwhile is not replaced by a cold start
            _pool.set_state(core, vc.host_namespace, _pool.pool_labels(key, _pool.RESETTING))
            report = vc.reset(timeout=RESET_TIMEOUT_SECONDS)
            with self._lock:
                hold = not self._ready.get(key) and key not in self._recyclable.values()
            fresh: VCluster | None = None
            if hold:
                _pool.set_state(core, vc.host_namespace, {
                    **_pool.pool_labels(key, _pool.CLAIMED), _pool.LABEL_RESETS: str(vc.resets)})
                fresh = vc._hand_on()
                fresh._mint_probe_tokens()  # for its next reset, while it waits for or serves the next test
            else:
                self._free_for_pool(vc, key)
            with self._lock:
                if fresh is not None:
                    self._ready.setdefault(key, []).append(fresh)
                self.summary.pool.recycled += 1
                self.summary.pool.reset_seconds.append(report.seconds)
        except Exception as exc:  # noqa: BLE001 - never hand on a cluster whose reset did not end clean
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("pytest-vcluster: deleting virtual cluster %s instead of recycling it: %s", vc.name, reason)
            with contextlib.suppress(Exception):
                vc.delete(wait=False)
            with self._lock:
                self.summary.pool.discarded.append(f"{vc.name}: {reason}")
                self._deleted.append(vc.host_namespace)
        finally:
            with self._lock:
                self._resetting.pop(vc.name, None)
                self._resetting_keys.pop(vc.name, None)
            with self._reset_ended:
                self._reset_ended.notify_all()

    def no_more_tests(self) -> None:
        """This process runs no more tests (its last one is being torn down): clusters released from now on are
        deleted rather than reset, unless ``--vcluster-pool-keep`` keeps them for the next run."""
        self._no_more_tests = True

    def wait_resets(self, timeout: float = RESET_TIMEOUT_SECONDS) -> None:
        """Wait (at most ``timeout``) until the resets this process started have ended."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._resetting.values())
            if not threads:
                return
            for thread in threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return

    def _free_for_pool(self, vc: VCluster, key: str) -> None:
        """Make a reset cluster a free cluster of pool ``key`` owned by the run (its sweep deletes or keeps it at
        the end; until then any process of the key may claim it), and let go of this process's handle."""
        vc.disconnect()
        vc.forget_local_files()
        owner = _labels.namespace_labels(self.run_id, "pool", pid=self.run_pid)
        _pool.set_state(self.host.core_v1(), vc.host_namespace, {
            **owner, **_pool.pool_labels(key, _pool.FREE), _pool.LABEL_RESETS: str(vc.resets)})

    def _hand_back_held(self) -> None:
        """At the end: the reset clusters this process holds become free clusters of the run (the process that
        ends the run deletes them, or keeps them with ``--vcluster-pool-keep``); resets still under way are
        deleted."""
        with self._lock:
            held = [(key, vc) for key, vcs in self._ready.items() for vc in vcs]
            self._ready.clear()
            stuck = list(self._resetting)
        for key, vc in held:
            try:
                self._free_for_pool(vc, key)
            except Exception as exc:  # noqa: BLE001
                with contextlib.suppress(Exception):
                    vc.delete(wait=False)
                with self._lock:
                    self.summary.pool.discarded.append(f"{vc.name}: cannot hand it back at the end: {exc}")
                    self._deleted.append(vc.host_namespace)
        for name in stuck:
            with contextlib.suppress(Exception):
                self.host.core_v1().delete_namespace(name, propagation_policy="Background", _request_timeout=30)
            with self._lock:
                self.summary.pool.discarded.append(f"{name}: its reset had not ended when the session did")
                self._deleted.append(name)

    def _sweep_recycled(self, recycled_elsewhere: bool) -> None:
        """The process that ends the run: delete the run's free clusters (or, with
        ``--vcluster-pool-keep``, keep the free ones for the next run). An xdist controller runs no test, so it
        opens the host for this only when its workers recycled clusters (``recycled_elsewhere``)."""
        if self.run_pid != os.getpid() or not self.settings.recycle:
            return
        host = self._host
        if host is None and recycled_elsewhere:
            try:
                host = self.host
            except VClusterError as exc:
                self.summary.errors.append(f"recycling: cannot delete this run's recycled clusters: {exc}")
                return
        if host is None:
            return
        core = host.core_v1()
        selector = f"{_labels.LABEL_RUN}={_labels.label_value(self.run_id)},{_pool.LABEL_POOL}"
        try:
            items = core.list_namespace(label_selector=selector, _request_timeout=15).items
        except Exception as exc:  # noqa: BLE001
            self.summary.errors.append(f"recycling: cannot list this run's clusters: {exc}")
            return
        for ns in items:
            state = (ns.metadata.labels or {}).get(_pool.LABEL_POOL_STATE)
            if ns.metadata.deletion_timestamp is not None or state != _pool.FREE:
                continue
            if state == _pool.FREE and self.settings.pool_keep:
                if (ns.metadata.labels or {}).get(_pool.LABEL_POOL_KEPT) == "true":
                    continue  # the pool's filler kept it already
                self.summary.pool.kept += _pool.keep_for_next_run(core, ns.metadata.name)
            elif _cleanup.delete_if_unchanged(core, ns):
                with self._lock:
                    self._deleted.append(ns.metadata.name)

    def cluster(self, **options: Any) -> contextlib.AbstractContextManager[VCluster]:
        """``with manager.cluster(values=..., set=..., timeout=..., fork=snapshot) as vc:`` -- deleted on
        exit (kept if the block raised and ``--vcluster-keep-on-failure`` is set)."""
        return self.cluster_of(self.options(**options), owner="vcluster_manager.cluster()")

    def clusters_of(self, owner: str) -> list[VCluster]:
        """The live clusters created for ``owner`` (a test's node id)."""
        with self._lock:
            return [self._live[n] for n in self._owners.get(owner, []) if n in self._live]

    def live_clusters(self) -> list[VCluster]:
        with self._lock:
            return list(self._live.values())

    # ------------------------------------------------------------------ heartbeat

    def _start_heartbeat(self) -> None:
        with self._lock:
            if self._heartbeat is not None:
                return
            self._heartbeat = threading.Thread(target=self._beat, name="pytest-vcluster-heartbeat", daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        """Refresh the heartbeat annotation of live namespaces so other machines see the run is alive."""
        while not self._heartbeat_stop.wait(HEARTBEAT_SECONDS):
            host = self._host
            if host is None:
                continue
            body = {"metadata": {"annotations": {_labels.ANNOTATION_HEARTBEAT: str(int(time.time()))}}}
            with self._lock:
                held = [vc for vcs in self._ready.values() for vc in vcs]
            for vc in [*self.live_clusters(), *held]:
                with contextlib.suppress(Exception):
                    host.core_v1().patch_namespace(vc.host_namespace, body, _request_timeout=10)

    # ------------------------------------------------------------------ end of session

    def finish(self, timeout: float = LEAK_WAIT_SECONDS, *, recycled_elsewhere: bool = False) -> list[str]:
        """Delete clusters still alive, wait for every namespace this process deleted to be gone,
        and return the leaked ones (also recorded in :attr:`summary`). ``recycled_elsewhere``: other processes
        of the run (xdist workers) recycled clusters, which the process ending the run deletes."""
        with self._lock:
            self._heartbeat_stop.set()
            self._recyclable.clear()  # clusters still alive now are deleted, not recycled
        self.wait_resets(RESET_TIMEOUT_SECONDS)
        if self._host is not None:
            self._hand_back_held()
        self._stop_pool()
        self._sweep_recycled(recycled_elsewhere)
        for vc in self.live_clusters():
            self.release(vc, failed=False)
        host = self._host
        if host is None:
            return []
        with self._lock:
            deleted = list(dict.fromkeys(self._deleted))
        leaks = wait_namespaces_gone(host.core_v1(), deleted, timeout) if deleted else []
        self.summary.leaks.extend(leaks)
        host.close()
        return leaks
