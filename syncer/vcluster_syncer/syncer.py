"""The syncer: informers on both API servers, one work queue, the processing of queue items, readiness.

Per-resource behaviour lives in parts (the ``parts`` package), which see only a ``Context``. This module
knows no particular kind or part: queue items are (part class, key), and a part that wants periodic
attention says so (``Part.resync_every``).

Failures (``errors.classify``): ``Retry`` comes back after its delay; a temporary error backs off; a
permanent one (the host refuses the object: 400, 403, 422) is held until the virtual object changes (or,
for a host-side fix such as a raised quota, until ``permanent_retry`` seconds have passed). Both are told
to the user as a ``SyncError`` Warning event on the virtual object: permanent ones at once, temporary
ones from the ``EVENT_AFTER_FAILURES``-th failure in a row on (one blip is not worth a warning).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any, cast

from .context import Context, Informers, UnknownPart
from .engine import Informer, WorkQueue
from .errors import PERMANENT, RETRY, Retry, classify
from .kube import SERVICEACCOUNTS, SERVICES, ApiError, Kube
from .recorder import SYNC_ERROR, EventRecorder
from .translate.settings import TranslatorSettings

log = logging.getLogger(__name__)

EVENT_AFTER_FAILURES = 3


def _version(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid", "")), str(meta.get("resourceVersion", ""))


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
        permanent_retry: float = 300.0,
    ) -> None:
        self.settings = settings
        self.virtual = virtual
        self.host = host
        self.clock = clock
        self.workers = workers
        self.permanent_retry = permanent_retry
        self.queue = WorkQueue()
        self._informers = Informers(settings, virtual, host)
        self.context = Context(
            settings, virtual, host, informers=self._informers,
            events=EventRecorder(virtual, clock, instance=settings.vcluster_name),
            enqueue=self.enqueue, sync_now=self.sync_now, clock=clock,
            virtual_ca_pem=virtual_ca_pem, api_service_ip=api_service_ip,
        )
        self.parts: dict[type, Any] = {}  # part class -> part
        # permanent failures: item -> (version of the virtual object that failed, when)
        self._held: dict[Hashable, tuple[tuple[str, str], float]] = {}
        self._held_lock = threading.Lock()
        self._initial: set[Hashable] = set()
        self._initial_lock = threading.Lock()
        self.first_sync_done = threading.Event()
        self.default_service_account = threading.Event()
        # more conditions of readiness, asked on every probe (keep them cheap), e.g. CoreDNS (coredns.py)
        self.readiness_gates: list[Callable[[], bool]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ wiring

    @property
    def informers(self) -> dict[tuple[str, str], Informer]:
        return self._informers.by_key

    def add_part(self, part: Any) -> None:
        cls = type(part)
        if cls in self.parts:
            raise ValueError(f"part {cls.__name__} added twice")
        self.parts[cls] = part
        part.setup(self.context)

    def _part(self, part_class: type) -> Any:
        try:
            return self.parts[part_class]
        except KeyError:
            raise UnknownPart(f"{getattr(part_class, '__name__', part_class)} is not a part of this syncer "
                              f"(parts: {', '.join(sorted(c.__name__ for c in self.parts))})") from None

    def enqueue(self, part_class: type, key: str, delay: float = 0) -> None:
        self._part(part_class)
        self.queue.add_after((part_class, key), delay)

    # ------------------------------------------------------------ processing

    def process(self, item: Hashable) -> None:
        """Reconcile one (part class, key) item; the caller holds it (queue.get or queue.claim)."""
        part_class, key = cast("tuple[type, str]", item)  # the queue holds (part class, key) items
        part = self._part(part_class)
        subject = None
        try:
            subject = part.subject(self.context, key)
            if self._still_held(item, subject):
                return
            part.reconcile(self.context, key)
            self.queue.forget(item)
            with self._held_lock:
                self._held.pop(item, None)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and reported
            self._failed(part, item, key, subject, exc)
        finally:
            with self._initial_lock:
                if item in self._initial:
                    self._initial.discard(item)
                    if not self._initial:
                        log.info("first full sync done")
                        self.first_sync_done.set()

    def _process_and_release(self, item: Hashable) -> None:
        """Process an item this thread holds (queue.get or queue.claim), then let the queue hand it out again."""
        try:
            self.process(item)
        finally:
            self.queue.done(item)

    def _still_held(self, item: Hashable, subject: dict[str, Any] | None) -> bool:
        """A permanent failure of this very object version, recently: do not try again yet."""
        with self._held_lock:
            held = self._held.get(item)
            if held is None:
                return False
            version, since = held
            if subject is not None and _version(subject) == version and self.clock() - since < self.permanent_retry:
                return True
            del self._held[item]
            return False

    def _failed(self, part: Any, item: Hashable, key: str, subject: dict[str, Any] | None, exc: Exception) -> None:
        outcome = classify(exc)
        if outcome.action == RETRY:
            log.debug("%s %s: %s (again in %.1fs)", part.name, key, exc, outcome.delay)
            self.queue.add_after(item, outcome.delay)
            return
        if outcome.action == PERMANENT and subject is not None:
            self.queue.forget(item)
            with self._held_lock:
                self._held[item] = (_version(subject), self.clock())
            log.warning("%s %s: %s (not retried until the object changes)", part.name, key, outcome.message)
            self.context.events.warning(subject, SYNC_ERROR, f"Error syncing to host cluster: {outcome.message}")
            return
        # temporary (or permanent without a virtual object to watch for changes): back off
        delay = self.queue.add_rate_limited(item)
        if isinstance(exc, ApiError):
            log.warning("%s %s: %s (again in %.1fs)", part.name, key, outcome.message, delay)
        else:  # a bug, or a Permanent without an object: the traceback helps
            log.error("%s %s failed (again in %.1fs)", part.name, key, delay, exc_info=exc)
        if subject is not None and self.queue.failures(item) >= EVENT_AFTER_FAILURES:
            self.context.events.warning(subject, SYNC_ERROR, f"Error syncing to host cluster: {outcome.message}")

    def sync_now(self, part_class: type, key: str) -> None:
        """Reconcile another key inline (a dependency), with the same one-at-a-time guarantee."""
        self._part(part_class)
        item = (part_class, key)
        self.queue.claim(item)
        self._process_and_release(item)

    def all_items(self, parts: Iterable[type] | None = None) -> set[Hashable]:
        items: set[Hashable] = set()
        for cls in (self.parts if parts is None else parts):
            items.update((cls, key) for key in self._part(cls).keys(self.context))
        return items

    def enqueue_all(self, parts: Iterable[type] | None = None) -> set[Hashable]:
        items = self.all_items(parts)
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
                and all(part.ready(self.context) for part in list(self.parts.values()))
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
            self._process_and_release(item)
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
        self._informers.frozen = True
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
            self._process_and_release(item)

    def _periodic(self, tick: float = 1.0, full_interval: float = 300.0) -> None:
        """Parts' own resyncs (``resync_every``, e.g. node heartbeats) and a full resync every few minutes
        (token refresh, drift nobody told us about)."""
        last_full = self.clock()
        last: dict[type, float] = {cls: last_full for cls in self.parts}
        while not self._stop.wait(tick):
            if not self.default_service_account.is_set():
                self.check_default_service_account()
            now = self.clock()
            due = [cls for cls, part in self.parts.items()
                   if part.resync_every is not None and now - last[cls] >= part.resync_every]
            for cls in due:
                last[cls] = now
            if due:
                self.enqueue_all(due)
            if now - last_full >= full_interval:
                last_full = now
                self.enqueue_all()

    def wait_for_default_service_account(self, stopping: threading.Event | None = None, interval: float = 1.0) -> None:
        """Until ServiceAccount ``default/default`` exists (asked every ``interval`` seconds), or ``stopping`` (else
        :meth:`stop`) is set."""
        stop = stopping or self._stop
        while not stop.is_set() and not self.check_default_service_account():
            stop.wait(interval)

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
