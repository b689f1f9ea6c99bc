"""Watching and queueing: informers (list, then watch from the list's resourceVersion, list again on
410 Gone) that keep a local store, and a work queue that never hands out the same key twice at once.

Event handlers only enqueue keys; reconciling reads the newest state from the stores, so events of one
object are applied in order however many of them arrive while the key waits or is being processed.
"""

from __future__ import annotations

import builtins
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from .kube import ApiError, Gone, Kind, Kube

log = logging.getLogger(__name__)

Handler = Callable[[str, "dict[str, Any] | None", "dict[str, Any] | None"], None]


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def _rv(obj: dict[str, Any] | None) -> int | None:
    value = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class Store:
    """Thread-safe map key -> object of one kind on one API server."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(key)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())

    # (builtins.list: in this class, "list" is the method above)
    def keys(self) -> builtins.list[str]:
        with self._lock:
            return list(self._items)

    def put(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Store ``obj`` unless the stored copy is newer; returns the previous copy."""
        key = object_key(obj)
        with self._lock:
            old = self._items.get(key)
            new_rv, old_rv = _rv(obj), _rv(old)
            if old is not None and new_rv is not None and old_rv is not None and new_rv < old_rv:
                return old
            self._items[key] = obj
            return old

    def remove(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.pop(key, None)

    def replace(self, objs: builtins.list[dict[str, Any]]
                ) -> builtins.list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
        """Set the whole content (after a list); returns the changes as (key, old, new)."""
        fresh = {object_key(o): o for o in objs}
        with self._lock:
            old_items, self._items = self._items, fresh
        changes: builtins.list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = []
        for key, gone in old_items.items():
            if key not in fresh:
                changes.append((key, gone, None))
        for key, new in fresh.items():
            old = old_items.get(key)
            if old is None or _rv(old) != _rv(new) or _rv(new) is None:
                changes.append((key, old, new))
        return changes


class Informer:
    """Keeps a Store of one kind in sync with an API server and calls handlers on every change."""

    def __init__(self, kube: Kube, kind: Kind, namespace: str | None = None, label_selector: str | None = None,
                 name: str = "", watch_timeout: int = 300) -> None:
        self.kube = kube
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.name = name or f"{getattr(kube, 'name', 'kube')}/{kind.plural}"
        self.store = Store()
        self.handlers: list[Handler] = []
        self.synced = threading.Event()
        self.watch_timeout = watch_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def _notify(self, key: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for handler in self.handlers:
            try:
                handler(key, old, new)
            except Exception:  # a handler bug must not stop the informer
                log.exception("%s: handler failed for %s", self.name, key)

    def relist(self) -> str:
        """List everything, replace the store, notify the differences; returns the list's resourceVersion."""
        items, resource_version = self.kube.list(self.kind, self.namespace, self.label_selector)
        for key, old, new in self.store.replace(items):
            self._notify(key, old, new)
        self.synced.set()
        return resource_version

    def apply(self, event_type: str, obj: dict[str, Any]) -> None:
        key = object_key(obj)
        if event_type == "DELETED":
            old = self.store.remove(key)
            self._notify(key, old, None)
        else:
            old = self.store.put(obj)
            self._notify(key, old, obj)

    def run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                resource_version = self.relist()
                backoff = 1.0
                while not self._stop.is_set():
                    for event_type, obj in self.kube.watch(self.kind, resource_version, self.namespace,
                                                           self.label_selector, self.watch_timeout):
                        new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                        if event_type in ("ADDED", "MODIFIED", "DELETED"):
                            obj.setdefault("apiVersion", self.kind.api_version)
                            obj.setdefault("kind", self.kind.kind)
                            self.apply(event_type, obj)
                        if new_rv:
                            resource_version = new_rv
                        if self._stop.is_set():
                            return
                    # the server ended the watch (timeout): watch again from where we are
            except Gone:
                log.info("%s: resourceVersion too old, listing again", self.name)
            except ApiError as exc:
                log.warning("%s: %s; retrying in %.0fs", self.name, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff())
            except Exception:
                log.exception("%s: watch failed; retrying in %.0fs", self.name, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff())

    def _max_backoff(self) -> float:
        # Before the first list the API server is probably still starting (same pod): keep trying often.
        return 30.0 if self.synced.is_set() else 2.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"informer {self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


class WorkQueue:
    """A set of pending keys handed to one worker at a time per key (like client-go's workqueue).

    A key added while it is being processed is processed again afterwards, never concurrently.
    ``claim`` lets a worker process another key inline (e.g. a pod's ConfigMap before the pod) with the
    same guarantee.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, float] = {}  # earliest pending due time per delayed item
        self._seq = itertools.count()
        self._failures: dict[Hashable, int] = {}
        self._shutdown = False

    def add(self, item: Hashable) -> None:
        with self._cond:
            self._add_locked(item)

    def _add_locked(self, item: Hashable) -> None:
        if self._shutdown or item in self._dirty:
            return
        self._dirty.add(item)
        if item not in self._processing:
            self._queue.append(item)
            self._cond.notify()

    def add_after(self, item: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(item)
            return
        due = time.monotonic() + delay
        with self._cond:
            if self._due.get(item, float("inf")) <= due:
                return  # it comes back earlier anyway
            self._due[item] = due
            heapq.heappush(self._delayed, (due, next(self._seq), item))
            self._cond.notify()

    def add_rate_limited(self, item: Hashable, base: float = 0.5, cap: float = 60.0) -> float:
        with self._cond:
            failures = self._failures.get(item, 0)
            self._failures[item] = failures + 1
        delay = min(base * 2.0 ** failures, cap)
        self.add_after(item, delay)
        return delay

    def failures(self, item: Hashable) -> int:
        """How many times in a row ``item`` failed (``add_rate_limited`` since the last ``forget``)."""
        with self._cond:
            return self._failures.get(item, 0)

    def forget(self, item: Hashable) -> None:
        with self._cond:
            self._failures.pop(item, None)

    def _promote_due_locked(self) -> float | None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, item = heapq.heappop(self._delayed)
            if self._due.get(item) == due:
                del self._due[item]
            self._add_locked(item)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self, timeout: float | None = None) -> Hashable | None:
        """Next key to process (then call ``done``), or None on timeout/shutdown."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                next_due = self._promote_due_locked()
                if self._queue:
                    item = self._queue.popleft()
                    self._dirty.discard(item)
                    self._processing.add(item)
                    return item
                if self._shutdown:
                    return None
                wait = next_due
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)

    def claim(self, item: Hashable) -> None:
        """Mark ``item`` as being processed by the caller, waiting while someone else processes it."""
        with self._cond:
            while item in self._processing:
                self._cond.wait()
            if item in self._dirty:  # pending: the caller's processing satisfies it
                self._dirty.discard(item)
                try:
                    self._queue.remove(item)
                except ValueError:
                    pass
            self._processing.add(item)

    def done(self, item: Hashable) -> None:
        with self._cond:
            self._processing.discard(item)
            if item in self._dirty:
                self._queue.append(item)
            self._cond.notify_all()

    def promote_all_delayed(self) -> bool:
        """Make every delayed key due now (synchronous driving in tests); True if there were any."""
        with self._cond:
            if not self._delayed:
                return False
            delayed, self._delayed = self._delayed, []
            self._due.clear()
            for _, _, item in sorted(delayed):
                self._add_locked(item)
            return True

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
