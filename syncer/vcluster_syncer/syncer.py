"""The syncer: informers on both API servers, one work queue, one generic reconcile loop, readiness.

Per-resource behaviour lives in small ``Part`` classes (parts.py). This module knows nothing about any
particular kind beyond wiring: which informers exist and which keys an event touches.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING

from .engine import Informer, Store, WorkQueue
from .kube import SERVICEACCOUNTS, SERVICES, ApiError, Kind, Kube
from .translate.metadata import MANAGED_BY
from .translate.settings import TranslatorSettings

if TYPE_CHECKING:
    from .parts import Part

log = logging.getLogger(__name__)

VIRTUAL, HOST = "virtual", "host"


class Retry(Exception):
    """Not an error: try this key again after ``delay`` seconds (something it depends on is not there yet)."""

    def __init__(self, reason: str, delay: float = 1.0) -> None:
        super().__init__(reason)
        self.delay = delay


def rfc3339(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class ReferenceIndex:
    """Which virtual pods use which ConfigMaps/Secrets/PVCs (kind -> "ns/name" -> set of pod keys)."""

    def __init__(self) -> None:
        self._by_pod: dict[str, dict[str, set[str]]] = {}
        self._by_object: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()

    def update(self, pod_key: str, refs: dict[str, set[str]]) -> set[tuple[str, str]]:
        """Record the pod's references (``{}`` when it is gone); returns the (kind, key) pairs that changed."""
        with self._lock:
            old = self._by_pod.pop(pod_key, {})
            if refs:
                self._by_pod[pod_key] = refs
            changed: set[tuple[str, str]] = set()
            for kind in set(old) | set(refs):
                before, after = old.get(kind, set()), refs.get(kind, set())
                for key in before - after:
                    self._by_object.get((kind, key), set()).discard(pod_key)
                    changed.add((kind, key))
                for key in after - before:
                    self._by_object.setdefault((kind, key), set()).add(pod_key)
                    changed.add((kind, key))
            return changed

    def referenced(self, kind: str, key: str) -> bool:
        with self._lock:
            return bool(self._by_object.get((kind, key)))


class Syncer:
    def __init__(
        self,
        settings: TranslatorSettings,
        virtual: Kube,
        host: Kube,
        *,
        virtual_ca_pem: str = "",
        api_service_ip: str = "",
        clock: Callable[[], float] = time.time,
        workers: int = 4,
    ) -> None:
        self.settings = settings
        self.virtual = virtual
        self.host = host
        self.virtual_ca_pem = virtual_ca_pem
        self.api_service_ip = api_service_ip
        self.clock = clock
        self.workers = workers
        self.queue = WorkQueue()
        self.refs = ReferenceIndex()
        self.parts: dict[str, Part] = {}
        self.informers: dict[tuple[str, str], Informer] = {}
        self.host_nodes_readable: bool | None = None  # unknown until tried
        self._initial: set[Hashable] = set()
        self._initial_lock = threading.Lock()
        self.first_sync_done = threading.Event()
        self.default_service_account = threading.Event()
        # more conditions of readiness, asked on every probe (keep them cheap), e.g. CoreDNS (coredns.py)
        self.readiness_gates: list[Callable[[], bool]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False

    # ------------------------------------------------------------ wiring

    def now(self) -> str:
        return rfc3339(self.clock())

    def add_part(self, part: Part) -> None:
        self.parts[part.name] = part
        part.setup(self)

    def informer(self, side: str, kind: Kind, *, managed_only: bool = True) -> Informer:
        """The informer of ``kind`` on one side (created on first use). Host informers watch N only, and
        only objects labelled managed-by=R unless ``managed_only`` is False."""
        key = (side, kind.plural)
        if key not in self.informers:
            if self._started:
                # an informer made now would never be started: its empty store would mislead reconciles
                raise RuntimeError(f"informer {side}/{kind.plural} must be created in a part's setup()")
            if side == VIRTUAL:
                informer = Informer(self.virtual, kind, name=f"virtual/{kind.plural}")
            else:
                selector = f"{MANAGED_BY}={self.settings.vcluster_name}" if managed_only and kind.namespaced else None
                namespace = self.settings.host_namespace if kind.namespaced else None
                informer = Informer(self.host, kind, namespace=namespace, label_selector=selector,
                                    name=f"host/{kind.plural}")
            self.informers[key] = informer
        return self.informers[key]

    def has_informer(self, side: str, kind: Kind) -> bool:
        return (side, kind.plural) in self.informers

    def vstore(self, kind: Kind) -> Store:
        return self.informer(VIRTUAL, kind).store

    def hstore(self, kind: Kind) -> Store:
        return self.informer(HOST, kind).store

    def host_key(self, name: str) -> str:
        return f"{self.settings.host_namespace}/{name}"

    def enqueue(self, part_name: str, key: str, delay: float = 0) -> None:
        if part_name in self.parts:
            self.queue.add_after((part_name, key), delay)

    # ------------------------------------------------------------ processing

    def process(self, item: Hashable) -> None:
        """Reconcile one (part, key) item; the caller holds it (queue.get or queue.claim)."""
        part_name, key = item  # type: ignore[misc]
        part = self.parts[part_name]
        try:
            part.reconcile(self, key)
            self.queue.forget(item)
        except Retry as retry:
            log.debug("%s %s: %s (again in %.1fs)", part_name, key, retry, retry.delay)
            self.queue.add_after(item, retry.delay)
        except ApiError as exc:
            delay = self.queue.add_rate_limited(item)
            log.warning("%s %s: %s (again in %.1fs)", part_name, key, exc, delay)
        except Exception:
            delay = self.queue.add_rate_limited(item)
            log.exception("%s %s failed (again in %.1fs)", part_name, key, delay)
        finally:
            with self._initial_lock:
                if item in self._initial:
                    self._initial.discard(item)
                    if not self._initial:
                        log.info("first full sync done")
                        self.first_sync_done.set()

    def sync_now(self, part_name: str, key: str) -> None:
        """Reconcile another key inline (a dependency), with the same one-at-a-time guarantee."""
        if part_name not in self.parts:
            return
        item = (part_name, key)
        self.queue.claim(item)
        try:
            self.process(item)
        finally:
            self.queue.done(item)

    def all_items(self) -> set[Hashable]:
        items: set[Hashable] = set()
        for name, part in self.parts.items():
            items.update((name, key) for key in part.keys(self))
        return items

    def enqueue_all(self, parts: Iterable[str] | None = None) -> set[Hashable]:
        wanted = set(parts) if parts is not None else None
        items = {i for i in self.all_items() if wanted is None or i[0] in wanted}  # type: ignore[index]
        for item in items:
            self.queue.add(item)
        return items

    def mark_initial(self, items: set[Hashable]) -> None:
        with self._initial_lock:
            self._initial = set(items)
            if not self._initial:
                self.first_sync_done.set()

    # ------------------------------------------------------------ readiness

    def check_default_service_account(self) -> bool:
        try:
            if self.virtual.get(SERVICEACCOUNTS, "default", "default") is not None:
                self.default_service_account.set()
        except ApiError as exc:
            log.debug("default/default ServiceAccount: %s", exc)
        return self.default_service_account.is_set()

    def ready(self) -> bool:
        return (self.first_sync_done.is_set() and self.default_service_account.is_set()
                and all(gate() for gate in self.readiness_gates))

    # ------------------------------------------------------------ synchronous driving (tests, debugging)

    def relist_all(self) -> None:
        for informer in self.informers.values():
            informer.relist()

    def drain(self, max_items: int = 10_000, delayed_rounds: int = 10) -> int:
        """Process queued items in this thread until none is left; returns how many were processed.
        Delayed retries are made due at once, at most ``delayed_rounds`` times (a retry loop ends)."""
        processed = 0
        while processed < max_items:
            item = self.queue.get(timeout=0)
            if item is None:
                if delayed_rounds > 0 and self.queue.promote_all_delayed():
                    delayed_rounds -= 1
                    continue
                return processed
            try:
                self.process(item)
            finally:
                self.queue.done(item)
            processed += 1
        raise RuntimeError(f"queue did not settle after {max_items} items")

    def sync_once(self) -> None:
        """List everything, reconcile everything (what a fresh start does), without threads."""
        self.relist_all()
        self.mark_initial(self.enqueue_all())
        self.drain()
        self.check_default_service_account()

    # ------------------------------------------------------------ threads

    def start(self) -> None:
        self._started = True
        for informer in self.informers.values():
            informer.start()
        for informer in self.informers.values():
            while not informer.synced.wait(1.0):
                if self._stop.is_set():
                    return
                log.info("waiting for the first list of %s", informer.name)
        self.mark_initial(self.enqueue_all())
        for i in range(self.workers):
            self._spawn(self._worker, f"worker-{i}")
        self._spawn(self._periodic, "periodic")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _worker(self) -> None:
        while not self._stop.is_set():
            item = self.queue.get(timeout=1.0)
            if item is None:
                continue
            try:
                self.process(item)
            finally:
                self.queue.done(item)

    def _periodic(self, node_interval: float = 10.0, full_interval: float = 300.0) -> None:
        """Node heartbeats (a virtual node-lifecycle controller, if one runs, expects one within 40 s) and a
        full resync every few minutes (token refresh, drift nobody told us about)."""
        last_full = self.clock()
        while not self._stop.wait(node_interval):
            if not self.default_service_account.is_set():
                self.check_default_service_account()
            self.enqueue_all(["nodes"])
            if self.clock() - last_full >= full_interval:
                last_full = self.clock()
                self.enqueue_all()

    def wait_for_default_service_account(self) -> None:
        while not self._stop.is_set() and not self.check_default_service_account():
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()
        for informer in self.informers.values():
            informer.stop()


def api_service_ip(host: Kube, settings: TranslatorSettings) -> tuple[str, str]:
    """ClusterIP and uid of the host Service SERVICE_NAME (the owner of every synced object)."""
    svc = host.get(SERVICES, settings.owner_service, settings.host_namespace)
    if svc is None:
        raise Retry(f"host Service {settings.host_namespace}/{settings.owner_service} not found", 2.0)
    return (svc.get("spec") or {}).get("clusterIP", ""), (svc.get("metadata") or {}).get("uid", "")

