"""Informers (list + watch + relist on 410) and the work queue; one threaded end-to-end run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_kube import FakeKube
from test_syncer_loop import World, vpod
from vcluster_syncer.engine import Informer, Store, WorkQueue
from vcluster_syncer.kube import CONFIGMAPS, PODS, Gone, Kind


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def cm(name: str, ns: str = "a") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "data": {}}


# ------------------------------------------------------------------ WorkQueue

def test_queue_dedupes_pending_keys() -> None:
    q = WorkQueue()
    for _ in range(3):
        q.add("k")
    assert q.get(timeout=0) == "k"
    assert q.get(timeout=0) is None
    q.done("k")


def test_key_added_while_processing_comes_back_after_done() -> None:
    q = WorkQueue()
    q.add("k")
    item = q.get(timeout=0)
    q.add("k")
    assert q.get(timeout=0) is None  # never handed out twice at once
    q.done(item)
    assert q.get(timeout=0) == "k"


def test_claim_waits_for_the_worker_and_consumes_pending() -> None:
    q = WorkQueue()
    q.add("k")
    item = q.get(timeout=0)
    claimed = threading.Event()

    def inline() -> None:
        q.claim("k")
        claimed.set()

    thread = threading.Thread(target=inline)
    thread.start()
    time.sleep(0.05)
    assert not claimed.is_set()
    q.done(item)
    thread.join(1)
    assert claimed.is_set()
    q.add("k")  # pending while claimed
    q.done("k")
    assert q.get(timeout=0) == "k"


def test_add_after_and_rate_limit() -> None:
    q = WorkQueue()
    q.add_after("k", 0.05)
    assert q.get(timeout=0) is None
    assert q.get(timeout=1) == "k"
    q.done("k")
    assert q.add_rate_limited("x", base=0.01) == 0.01
    assert q.add_rate_limited("x", base=0.01) == 0.02
    q.forget("x")
    assert q.add_rate_limited("x", base=0.01) == 0.01


def test_no_concurrent_processing_of_one_key() -> None:
    q = WorkQueue()
    active: set[str] = set()
    overlaps: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            item = q.get(timeout=0.05)
            if item is None:
                continue
            with lock:
                if item in active:
                    overlaps.append(str(item))
                active.add(str(item))
            time.sleep(0.001)
            with lock:
                active.discard(str(item))
            q.done(item)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(300):
        q.add(f"k{i % 3}")
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert overlaps == []


# ------------------------------------------------------------------ Store and Informer

def test_store_ignores_older_versions() -> None:
    store = Store()
    store.put({"metadata": {"name": "a", "resourceVersion": "5"}})
    store.put({"metadata": {"name": "a", "resourceVersion": "4"}})
    assert store.get("a")["metadata"]["resourceVersion"] == "5"


def test_informer_lists_then_watches_in_order() -> None:
    kube = FakeKube()
    kube.create(CONFIGMAPS, cm("one"))
    seen: list[tuple[str, str | None]] = []
    informer = Informer(kube, CONFIGMAPS, watch_timeout=1)
    informer.add_handler(lambda key, old, new: seen.append((key, (new or {}).get("data", {}).get("v"))))
    informer.start()
    try:
        assert informer.synced.wait(2)
        kube.create(CONFIGMAPS, cm("two"))
        for v in ("1", "2", "3"):
            kube.patch(CONFIGMAPS, "two", {"data": {"v": v}}, "a")
        kube.delete(CONFIGMAPS, "one", "a")
        wait_for(lambda: informer.store.get("a/one") is None and
                 (informer.store.get("a/two") or {}).get("data", {}).get("v") == "3")
        assert [v for k, v in seen if k == "a/two"] == [None, "1", "2", "3"]
        assert seen[-1] == ("a/one", None)
    finally:
        informer.stop()


class GoneOnceKube(FakeKube):
    """The first watch finds its resourceVersion compacted away."""

    def __init__(self) -> None:
        super().__init__()
        self.lists = 0
        self.gone_sent = False

    def list(self, kind: Kind, namespace: str | None = None,
             label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        return super().list(kind, namespace, label_selector)

    def watch(self, kind: Kind, resource_version: str, namespace: str | None = None,
              label_selector: str | None = None, timeout_seconds: int = 300) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self.gone_sent:
            self.gone_sent = True
            self.create(CONFIGMAPS, cm("missed"))  # happened while the watch was gone
            raise Gone(410, "Expired", "too old resource version")
        return super().watch(kind, resource_version, namespace, label_selector, timeout_seconds)


def test_informer_lists_again_after_gone() -> None:
    kube = GoneOnceKube()
    informer = Informer(kube, CONFIGMAPS, watch_timeout=1)
    informer.start()
    try:
        wait_for(lambda: informer.store.get("a/missed") is not None)
        assert kube.lists == 2
    finally:
        informer.stop()


# ------------------------------------------------------------------ threaded run

def test_threaded_syncer_end_to_end() -> None:
    w = World()
    for informer in w.syncer.informers.values():
        informer.watch_timeout = 1
    w.syncer.start()
    try:
        wait_for(w.syncer.first_sync_done.is_set)
        w.syncer.wait_for_default_service_account()
        assert w.syncer.ready()
        w.virtual.create(PODS, vpod())
        wait_for(lambda: w.host.get(PODS, "web-x-team-x-vc", "host-ns") is not None)
        w.schedule("web-x-team-x-vc")
        wait_for(lambda: (w.virtual.get(PODS, "web", "team") or {}).get("spec", {}).get("nodeName") == "node1")
        w.virtual.force_delete(PODS, "web", "team")
        # the host pod is bound, so it terminates gracefully (the fake has no kubelet to finish that)
        wait_for(lambda: (w.host.get(PODS, "web-x-team-x-vc", "host-ns") or {}).get("metadata", {}).get(
            "deletionTimestamp"))
    finally:
        w.syncer.stop()


@pytest.mark.parametrize("count", [20])
def test_threaded_many_objects(count: int) -> None:
    w = World(sync_all_configmaps=True)
    w.syncer.start()
    try:
        for i in range(count):
            w.virtual.create(CONFIGMAPS, cm(f"c{i}", "team"))
        wait_for(lambda: len(w.host.names(CONFIGMAPS, "host-ns")) == count)
    finally:
        w.syncer.stop()
