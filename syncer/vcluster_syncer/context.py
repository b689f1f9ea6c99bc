"""What a part gets from the syncer: the ``Context`` (clients, settings, informers, the enqueue
function, the event recorder) and nothing else. Parts never see the ``Syncer``.

Parts are named by their class: ``ctx.enqueue(Nodes, "node1")``. Enqueueing a part that is not
running (not in this syncer) raises ``UnknownPart``: a misspelt or unregistered dependency is a bug
to see at once, not a silently dropped key.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from .engine import Informer, Store
from .kube import Kind, Kube
from .recorder import EventRecorder, rfc3339
from .translate.metadata import MANAGED_BY
from .translate.settings import TranslatorSettings

VIRTUAL, HOST = "virtual", "host"

__all__ = ["HOST", "VIRTUAL", "Context", "Informers", "ReferenceIndex", "UnknownPart", "parse_rfc3339", "rfc3339"]


class UnknownPart(LookupError):
    """A part class that this syncer does not run."""


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


class Informers:
    """The informers of one syncer, made on first use during the parts' ``setup``. Host informers watch N
    only, and only objects labelled managed-by=R unless ``managed_only`` is False."""

    def __init__(self, settings: TranslatorSettings, virtual: Kube, host: Kube) -> None:
        self.settings = settings
        self.virtual = virtual
        self.host = host
        self.by_key: dict[tuple[str, str], Informer] = {}
        self.frozen = False

    def get(self, side: str, kind: Kind, *, managed_only: bool = True) -> Informer:
        key = (side, kind.plural)
        if key not in self.by_key:
            if self.frozen:
                # an informer made now would never be started: its empty store would mislead reconciles
                raise RuntimeError(f"informer {side}/{kind.plural} must be created in a part's setup()")
            if side == VIRTUAL:
                informer = Informer(self.virtual, kind, name=f"virtual/{kind.plural}")
            else:
                selector = f"{MANAGED_BY}={self.settings.vcluster_name}" if managed_only and kind.namespaced else None
                namespace = self.settings.host_namespace if kind.namespaced else None
                informer = Informer(self.host, kind, namespace=namespace, label_selector=selector,
                                    name=f"host/{kind.plural}")
            self.by_key[key] = informer
        return self.by_key[key]

    def has(self, side: str, kind: Kind) -> bool:
        return (side, kind.plural) in self.by_key


class Context:
    """Everything a part may use. ``enqueue(part_class, key, delay)`` queues a key of a part;
    ``sync_now(part_class, key)`` reconciles a dependency inline; ``events`` posts Warning events on
    virtual objects."""

    def __init__(
        self,
        settings: TranslatorSettings,
        virtual: Kube,
        host: Kube,
        *,
        informers: Informers,
        events: EventRecorder,
        enqueue: Callable[[type, str, float], None],
        sync_now: Callable[[type, str], None],
        clock: Callable[[], float],
        virtual_ca_pem: str = "",
        api_service_ip: str = "",
    ) -> None:
        self.settings = settings
        self.virtual = virtual
        self.host = host
        self.informers = informers
        self.events = events
        self.refs = ReferenceIndex()
        self.clock = clock
        self.virtual_ca_pem = virtual_ca_pem
        self.api_service_ip = api_service_ip
        self._enqueue = enqueue
        self._sync_now = sync_now

    def enqueue(self, part: type, key: str, delay: float = 0) -> None:
        self._enqueue(part, key, delay)

    def sync_now(self, part: type, key: str) -> None:
        self._sync_now(part, key)

    def informer(self, side: str, kind: Kind, *, managed_only: bool = True) -> Informer:
        return self.informers.get(side, kind, managed_only=managed_only)

    def has_informer(self, side: str, kind: Kind) -> bool:
        return self.informers.has(side, kind)

    def vstore(self, kind: Kind) -> Store:
        return self.informers.get(VIRTUAL, kind).store

    def hstore(self, kind: Kind) -> Store:
        return self.informers.get(HOST, kind).store

    def host_key(self, name: str) -> str:
        return f"{self.settings.host_namespace}/{name}"

    def now(self) -> str:
        return rfc3339(self.clock())


Obj = dict[str, Any]
