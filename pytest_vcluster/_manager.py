"""Per-process bookkeeping: the host, the clusters made, their timings, teardown and leak checks."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import _cleanup, _labels, _naming
from ._config import ClusterOptions, Settings, cluster_options, deep_merge, options_values
from ._errors import VClusterError
from ._hostprovider import Host, kind_state_dir, open_host
from .vcluster import VCluster, wait_namespaces_gone

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 300.0
LEAK_WAIT_SECONDS = 120.0


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


@dataclass
class Summary:
    """Everything the terminal summary shows; merged from all xdist workers."""

    host: str | None = None
    records: list[ClusterRecord] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stale_removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "records": [asdict(r) for r in self.records],
            "leaks": list(self.leaks),
            "errors": list(self.errors),
            "stale_removed": list(self.stale_removed),
        }

    def merge_dict(self, data: Mapping[str, Any]) -> None:
        if data.get("host") and not self.host:
            self.host = str(data["host"])
        self.records.extend(ClusterRecord(**r) for r in data.get("records", []))
        self.leaks.extend(data.get("leaks", []))
        self.errors.extend(data.get("errors", []))
        self.stale_removed.extend(data.get("stale_removed", []))


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
        from filelock import FileLock

        from . import _syncer_image

        if self.settings.syncer_image:
            return _syncer_image.parse_ref(self.settings.syncer_image).values()
        chosen = (self.settings.values.get("syncer") or {}).get("image") or {}
        if isinstance(chosen, Mapping) and (chosen.get("repository") or chosen.get("tag")):
            return {}
        shared = self._shared_dir()
        shared.mkdir(parents=True, exist_ok=True)
        marker = shared / f"syncer-image-{self.run_id}.ref"
        failed = shared / f"syncer-image-{self.run_id}.error"
        with FileLock(str(shared / "syncer-image.lock"), timeout=1800):
            if failed.exists():  # another xdist worker tried already: the same error, at once
                raise _syncer_image.ImageBuildError(failed.read_text())
            if marker.exists():
                ref = _syncer_image.parse_ref(marker.read_text().strip(), source=str(marker))
            else:
                try:
                    ref = _syncer_image.ensure_on_host(
                        host, base_image=self.settings.syncer_base_image, progress=self._progress
                    )
                except VClusterError as exc:
                    failed.write_text(str(exc))
                    raise
                marker.write_text(str(ref))
        return ref.values()

    def _remove_stale(self, host: Host) -> None:
        """Once per run (first process to get the lock): delete namespaces of dead runs."""
        from filelock import FileLock

        shared = self._shared_dir()
        shared.mkdir(parents=True, exist_ok=True)
        marker = shared / f"stale-cleanup-{self.run_id}.done"
        with FileLock(str(shared / "stale-cleanup.lock"), timeout=120):
            if marker.exists():
                return
            removed = _cleanup.remove_stale(
                host.core_v1(),
                my_host=_labels.hostname(),
                my_run=_labels.label_value(self.run_id),
                stale_after=self.settings.stale_after,
            )
            marker.write_text("\n".join(removed))
        self.summary.stale_removed.extend(removed)

    def _get_helm(self) -> Any:
        from ._helm import Helm

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
        """Create one virtual cluster with the session's settings plus ``options``."""
        options = options or ClusterOptions()
        host = self.host
        helm = self._get_helm()
        values = deep_merge(self._syncer_layer, self.settings.values, options_values(options, where=fixture))
        name = self._names.next()
        workdir = self._workdir()
        try:
            vc = VCluster.create(
                host,
                name=name,
                values=values,
                chart=options.chart or self.settings.chart_path(),
                timeout=options.timeout or self.settings.timeout,
                connect=options.connect or self.settings.connect,
                labels=_labels.namespace_labels(self.run_id, self.worker),
                workdir=workdir,
                helm=helm,
                keep_on_error=self.settings.keep_on_failure,
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
        record = ClusterRecord(
            name=vc.name,
            namespace=vc.host_namespace,
            fixture=fixture,
            owner=owner,
            worker=self.worker,
            setup_seconds=round(vc.setup_seconds, 3),
        )
        with self._lock:
            self._live[vc.name] = vc
            self._records[vc.name] = record
            self._owners.setdefault(owner, []).append(vc.name)
            self.summary.records.append(record)
        self._start_heartbeat()
        return vc

    def release(self, vc: VCluster, *, failed: bool = False) -> ClusterRecord | None:
        """Tear a cluster down: delete its host namespace without waiting, or keep it when ``failed``
        and ``--vcluster-keep-on-failure`` is set."""
        with self._lock:
            self._live.pop(vc.name, None)
            record = self._records.get(vc.name)
        started = time.monotonic()
        if failed and self.settings.keep_on_failure:
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

    @contextlib.contextmanager
    def cluster(self, **options: Any) -> Iterator[VCluster]:
        """``with manager.cluster(values=..., set=..., timeout=...) as vc:`` -- deleted on exit
        (kept if the block raised and ``--vcluster-keep-on-failure`` is set)."""
        parsed = self.options(**options)
        vc = self.create(parsed, owner="vcluster_manager.cluster()", fixture="vcluster_manager")
        failed = False
        try:
            yield vc
        except BaseException:
            failed = True
            raise
        finally:
            self.release(vc, failed=failed)

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
            for vc in self.live_clusters():
                with contextlib.suppress(Exception):
                    host.core_v1().patch_namespace(vc.host_namespace, body, _request_timeout=10)

    # ------------------------------------------------------------------ end of session

    def finish(self, timeout: float = LEAK_WAIT_SECONDS) -> list[str]:
        """Delete clusters still alive, wait for every namespace this process deleted to be gone,
        and return the leaked ones (also recorded in :attr:`summary`)."""
        self._heartbeat_stop.set()
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
