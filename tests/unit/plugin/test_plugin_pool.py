"""The warm pool's pure parts: the key, the claim protocol (against an in-memory API with resourceVersion
preconditions, the API server's rule), the filler's arithmetic and its end-of-run clean-up."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from pytest_vcluster.core import cleanup as _cleanup
from pytest_vcluster.core import labels as _labels
from pytest_vcluster.core import pool as _pool
from pytest_vcluster.core.settings import Settings
from pytest_vcluster.plugin.manager import Summary
from pytest_vcluster.plugin.report import pool_line


class FakeCore:
    """Namespaces with resourceVersions: replace/delete with a stale version get 409, like the API server."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.version = 0
        self.lock = threading.Lock()

    def add(self, name: str, labels: dict[str, str]) -> None:
        with self.lock:
            self.version += 1
            self.items[name] = SimpleNamespace(metadata=SimpleNamespace(
                name=name, labels=dict(labels), resource_version=str(self.version), deletion_timestamp=None))

    def list_namespace(self, label_selector: str, _request_timeout: Any = None) -> Any:
        """``k=v`` and ``k`` (the label exists) terms, as the API server reads them."""
        terms = [part.partition("=") for part in label_selector.split(",")]
        with self.lock:
            items = [copy.deepcopy(ns) for ns in self.items.values()
                     if all((ns.metadata.labels or {}).get(k) == v if sep else k in (ns.metadata.labels or {})
                            for k, sep, v in terms)]
        return SimpleNamespace(items=items)

    def replace_namespace(self, name: str, body: Any, _request_timeout: Any = None) -> Any:
        with self.lock:
            current = self.items.get(name)
            if current is None:
                raise ApiException(status=404)
            if body.metadata.resource_version != current.metadata.resource_version:
                raise ApiException(status=409)
            self.version += 1
            current.metadata.labels = dict(body.metadata.labels)
            current.metadata.resource_version = str(self.version)
            return current

    def patch_namespace(self, name: str, body: Any, _request_timeout: Any = None) -> Any:
        with self.lock:
            current = self.items[name]
            for key, value in body["metadata"]["labels"].items():
                if value is None:
                    current.metadata.labels.pop(key, None)
                else:
                    current.metadata.labels[key] = value
            self.version += 1
            current.metadata.resource_version = str(self.version)

    def delete_namespace(self, name: str, body: Any = None, propagation_policy: Any = None,
                         _request_timeout: Any = None) -> None:
        with self.lock:
            current = self.items.get(name)
            if current is None:
                raise ApiException(status=404)
            wanted = getattr(getattr(body, "preconditions", None), "resource_version", None)
            if wanted is not None and wanted != current.metadata.resource_version:
                raise ApiException(status=409)
            del self.items[name]


KEY = "0123456789abcdef"


def owner(run: str, worker: str = "gw0") -> dict[str, str]:
    return _labels.namespace_labels(run, worker, pid=4242, host="me", created=1000)


def add_pool_cluster(core: FakeCore, name: str, state: str, run: str = "aaaaaa", created: int = 1000) -> None:
    core.add(name, {**_labels.namespace_labels(run, "pool", pid=1, host="me", created=created),
                    **_pool.pool_labels(KEY, state)})


def test_key_changes_with_values_chart_files_and_version(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("name: x\n")
    (chart / "templates" / "a.yaml").write_text("a: 1\n")
    base = _pool.pool_key(chart, {"a": {"b": 1}}, "1.0")
    assert len(base) == 16
    assert _pool.pool_key(chart, {"a": {"b": 1}}, "1.0") == base
    assert _pool.pool_key(chart, {"a": {"b": 2}}, "1.0") != base
    assert _pool.pool_key(chart, {"a": {"b": 1}}, "1.1") != base
    (chart / "templates" / "a.yaml").write_text("a: 2\n")
    assert _pool.pool_key(chart, {"a": {"b": 1}}, "1.0") != base


def test_claim_takes_the_oldest_free_cluster_and_makes_it_the_claimers() -> None:
    core = FakeCore()
    add_pool_cluster(core, "warming", _pool.WARMING, created=1)
    add_pool_cluster(core, "young", _pool.FREE, created=300)
    add_pool_cluster(core, "old", _pool.FREE, created=200)
    core.add("other-key", {**owner("bbbbbb"), **_pool.pool_labels("f" * 16, _pool.FREE)})
    assert _pool.claim(core, KEY, owner("cccccc")) == "old"
    labels = core.items["old"].metadata.labels
    assert labels[_labels.LABEL_RUN] == "cccccc"
    assert labels[_labels.LABEL_PID] == "4242"
    assert labels[_labels.LABEL_POOL_STATE] == _pool.CLAIMED
    assert _pool.claim(core, KEY, owner("cccccc")) == "young"
    assert _pool.claim(core, KEY, owner("cccccc")) is None
    assert _pool.counts(core, KEY) == (0, 1)


def test_claim_removes_the_kept_mark() -> None:
    core = FakeCore()
    add_pool_cluster(core, "kept", _pool.FREE)
    core.items["kept"].metadata.labels[_labels.LABEL_POOL_KEPT] = "true"
    assert _pool.claim(core, KEY, owner("cccccc")) == "kept"
    assert _labels.LABEL_POOL_KEPT not in core.items["kept"].metadata.labels


def test_a_lost_race_moves_on_to_the_next_free_cluster() -> None:
    core = FakeCore()
    add_pool_cluster(core, "first", _pool.FREE, created=1)
    add_pool_cluster(core, "second", _pool.FREE, created=2)
    listed = core.list_namespace

    def list_then_someone_claims_first(label_selector: str, _request_timeout: Any = None) -> Any:
        result = listed(label_selector)
        core.patch_namespace("first", {"metadata": {"labels": {_labels.LABEL_POOL_STATE: _pool.CLAIMED}}})
        core.list_namespace = listed  # type: ignore[method-assign]
        return result

    core.list_namespace = list_then_someone_claims_first  # type: ignore[method-assign]
    assert _pool.claim(core, KEY, owner("cccccc")) == "second"


def test_concurrent_claimers_never_get_the_same_cluster() -> None:
    core = FakeCore()
    for i in range(5):
        add_pool_cluster(core, f"c{i}", _pool.FREE, created=i)
    got: list[str | None] = []
    barrier = threading.Barrier(8)

    def claimer(i: int) -> None:
        barrier.wait()
        got.append(_pool.claim(core, KEY, owner(f"run{i}")))

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [name for name in got if name is not None]
    assert sorted(claimed) == [f"c{i}" for i in range(5)]
    assert got.count(None) == 3


def test_delete_if_unchanged_spares_a_cluster_claimed_since_it_was_listed() -> None:
    core = FakeCore()
    add_pool_cluster(core, "c", _pool.FREE)
    listed = core.list_namespace(f"{_labels.LABEL_POOL}={KEY}").items[0]
    assert _pool.claim(core, KEY, owner("cccccc")) == "c"
    assert not _cleanup.delete_if_unchanged(core, listed)
    assert "c" in core.items


class Made:
    def __init__(self, name: str) -> None:
        self.name = name
        self.disconnected = False

    def disconnect(self) -> None:
        self.disconnected = True


def make_filler(core: FakeCore, size: int, *, delay: float = 0.0) -> tuple[_pool.Filler, list[str]]:
    made: list[str] = []
    lock = threading.Lock()

    def make(labels: dict[str, str]) -> Made:
        with lock:
            name = f"p{len(made) + 1}"
            made.append(name)
        core.add(name, dict(labels))
        time.sleep(delay)
        return Made(name)

    filler = _pool.Filler(core_v1=lambda: core, key=KEY, size=size, make=make,
                          owner_labels=lambda: owner("mymrun", "pool"), stats=_pool.PoolStats())
    return filler, made


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


def test_filler_keeps_size_free_and_refills_after_a_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "FILL_INTERVAL", 0.02)
    core = FakeCore()
    filler, made = make_filler(core, 2)
    filler.start()
    wait_for(lambda: _pool.counts(core, KEY) == (2, 0))
    assert _pool.claim(core, KEY, owner("cccccc")) is not None
    wait_for(lambda: _pool.counts(core, KEY) == (2, 0))
    time.sleep(0.2)
    assert len(made) == 3, "the filler made more than it needed"
    deleted = filler.stop(keep=False, timeout=5)
    assert sorted(deleted) == sorted(n for n in made if core.items.get(n) is None)
    assert len(deleted) == 2
    assert filler.stats.made == 3
    assert filler.stats.deleted_unclaimed == 2


def test_filler_counts_free_clusters_of_other_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "FILL_INTERVAL", 0.02)
    core = FakeCore()
    add_pool_cluster(core, "kept-by-earlier-run", _pool.FREE, run="eeeeee")
    filler, made = make_filler(core, 2)
    filler.start()
    wait_for(lambda: _pool.counts(core, KEY) == (2, 0))
    filler.stop(keep=False, timeout=5)
    assert len(made) == 1
    assert "kept-by-earlier-run" in core.items, "a run deletes only the clusters its own pool made"


def test_filler_counts_clusters_being_reset_as_coming_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "FILL_INTERVAL", 0.02)
    core = FakeCore()
    add_pool_cluster(core, "being-reset", _pool.RESETTING, run="mymrun")
    add_pool_cluster(core, "in-use", _pool.CLAIMED, run="mymrun")
    filler, made = make_filler(core, 2)
    filler.start()
    wait_for(lambda: _pool.counts(core, KEY) == (1, 0))
    time.sleep(0.2)
    assert made == ["p1"], "a cluster being reset comes back: the filler made a cold one for it"
    core.patch_namespace("being-reset", {"metadata": {"labels": {_labels.LABEL_POOL_STATE: _pool.CLAIMED}}})
    wait_for(lambda: _pool.counts(core, KEY) == (2, 0))  # its process kept it: now the pool lacks one
    filler.stop(keep=False, timeout=5)
    assert made == ["p1", "p2"]


def test_filler_keep_waits_for_warming_and_marks_them_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "FILL_INTERVAL", 0.02)
    core = FakeCore()
    filler, made = make_filler(core, 1, delay=0.3)
    filler.start()
    wait_for(lambda: len(made) == 1)
    assert filler.stop(keep=True, timeout=5) == []
    labels = core.items["p1"].metadata.labels
    assert labels[_labels.LABEL_POOL_STATE] == _pool.FREE
    assert labels[_labels.LABEL_POOL_KEPT] == "true"
    assert filler.stats.kept == 1


def test_keep_tops_the_pool_up_before_leaving_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run ends right after the last claim: the pool it leaves is full anyway."""
    monkeypatch.setattr(_pool, "FILL_INTERVAL", 3600.0)  # the loop never looks again by itself
    core = FakeCore()
    filler, made = make_filler(core, 2)
    filler.start()
    wait_for(lambda: _pool.counts(core, KEY) == (2, 0))
    assert _pool.claim(core, KEY, owner("cccccc")) is not None
    filler.stop(keep=True, timeout=5)
    assert len(made) == 3
    kept = [n for n in made if core.items[n].metadata.labels.get(_labels.LABEL_POOL_KEPT) == "true"]
    assert len(kept) == 2


def test_pool_line_of_the_terminal_summary() -> None:
    summary = Summary()
    summary.pool.merge({"key": KEY, "size": 2, "made": 5, "claimed": 3, "cold": 1, "deleted_unclaimed": 2,
                        "acquire_seconds": [0.1, 0.2, 0.4]})
    line = pool_line(summary, Settings(pool=2))
    assert line == (f"pool (size 2, key {KEY}): 3 of 4 eligible cluster(s) claimed from the pool, "
                    "acquire p50 0.20s, max 0.40s, 1 cold, 5 made ahead of demand, 2 unclaimed deleted")
