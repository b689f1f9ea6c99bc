"""The decision which leftover namespaces belong to dead runs (pytest_vcluster.core.cleanup)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_vcluster.core import cleanup as _cleanup
from pytest_vcluster.core import labels as _labels
from pytest_vcluster.core.cleanup import decide

NOW = 1_700_000_000.0
HOUR = 3600.0


def labels(run: str = "aaaaaa", host: str = "me", pid: int = 100, created: float = NOW - 60) -> dict[str, str]:
    return {
        _labels.LABEL_RUN: run,
        _labels.LABEL_WORKER: "gw0",
        _labels.LABEL_PID: str(pid),
        _labels.LABEL_HOST: host,
        _labels.LABEL_CREATED: str(int(created)),
    }


def run_decide(lbls: dict[str, str] | None, annotations: dict[str, str] | None = None, *, alive: bool = True,
               my_run: str = "zzzzzz") -> _cleanup.Decision:
    return decide(lbls, annotations, now=NOW, my_host="me", my_run=my_run, stale_after=2 * HOUR,
                  pid_alive=lambda pid, created: alive)


def test_same_host_dead_pid_is_stale() -> None:
    assert run_decide(labels(), alive=False).stale


def test_same_host_live_pid_is_kept_even_when_old() -> None:
    d = run_decide(labels(created=NOW - 100 * HOUR), alive=True)
    assert not d.stale
    assert "alive" in d.reason


def test_own_run_never_touched() -> None:
    assert not run_decide(labels(run="zzzzzz"), alive=False).stale


def test_other_host_young_is_kept() -> None:
    assert not run_decide(labels(host="other", created=NOW - HOUR), alive=False).stale


def test_other_host_old_is_stale() -> None:
    d = run_decide(labels(host="other", created=NOW - 3 * HOUR))
    assert d.stale
    assert "other" in d.reason


def test_other_host_old_with_recent_heartbeat_is_kept() -> None:
    d = run_decide(labels(host="other", created=NOW - 30 * HOUR),
                   {_labels.ANNOTATION_HEARTBEAT: str(int(NOW - 600))})
    assert not d.stale


def test_other_host_pid_is_not_checked() -> None:
    calls: list[int] = []
    decide(labels(host="other"), None, now=NOW, my_host="me", my_run="x", stale_after=HOUR,
           pid_alive=lambda pid, created: calls.append(pid) or False)
    assert calls == []


@pytest.mark.parametrize("missing", [_labels.LABEL_HOST, _labels.LABEL_CREATED, _labels.LABEL_PID])
def test_incomplete_labels_are_kept(missing: str) -> None:
    lbls = labels(created=NOW - 100 * HOUR)
    del lbls[missing]
    assert not run_decide(lbls, alive=False).stale


def test_malformed_created_is_kept() -> None:
    lbls = labels(host="other")
    lbls[_labels.LABEL_CREATED] = "yesterday"
    assert not run_decide(lbls).stale


def _pool(lbls: dict[str, str], state: str, kept: bool = False) -> dict[str, str]:
    lbls = {**lbls, _labels.LABEL_POOL: "k" * 16, _labels.LABEL_POOL_STATE: state}
    if kept:
        lbls[_labels.LABEL_POOL_KEPT] = "true"
    return lbls


def test_free_pool_cluster_of_a_dead_run_is_stale_of_a_live_run_kept() -> None:
    assert run_decide(_pool(labels(), "free"), alive=False).stale
    assert not run_decide(_pool(labels(), "free"), alive=True).stale


def test_kept_pool_cluster_survives_its_dead_run_until_stale_after() -> None:
    young = run_decide(_pool(labels(created=NOW - HOUR), "free", kept=True), alive=False)
    assert not young.stale
    assert young.reason == "kept pool cluster, unclaimed for 3600s"
    old = run_decide(_pool(labels(host="other", created=NOW - 3 * HOUR), "free", kept=True), alive=True)
    assert old.stale
    assert old.reason == "kept pool cluster unclaimed for 10800s (> 7200s)"


def test_foreign_namespace_is_kept() -> None:
    assert not run_decide({"team": "x"}, alive=False).stale
    assert not run_decide(None, alive=False).stale


def _ns(name: str, lbls: dict[str, str] | None, deleting: bool = False) -> Any:
    return SimpleNamespace(metadata=SimpleNamespace(name=name, labels=lbls, annotations=None,
                                                    deletion_timestamp="now" if deleting else None,
                                                    resource_version=f"rv-{name}"))


def test_stale_namespaces_filters_and_skips_terminating() -> None:
    items = [
        _ns("dead", labels(pid=1)),
        _ns("alive", labels(pid=2)),
        _ns("terminating", labels(pid=1), deleting=True),
        _ns("old-remote", labels(host="far", created=NOW - 5 * HOUR)),
        _ns("foreign", None),
    ]
    result = _cleanup.stale_namespaces(items, my_host="me", my_run="x", stale_after=2 * HOUR, now=NOW,
                                       pid_alive=lambda pid, created: pid == 2)
    assert [name for name, _ in result] == ["dead", "old-remote"]


def test_pid_alive_for_this_process() -> None:
    assert _cleanup.pid_alive(os.getpid(), time.time())


def test_pid_alive_for_reaped_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not _cleanup.pid_alive(proc.pid, time.time())


def test_pid_reused_by_younger_process_counts_as_dead() -> None:
    # this process started long after a namespace "created" a day ago
    assert not _cleanup.pid_alive(os.getpid(), time.time() - 86400) or not os.path.exists("/proc/stat")


def test_pid_zero_or_negative() -> None:
    assert not _cleanup.pid_alive(0, NOW)
    assert not _cleanup.pid_alive(-5, NOW)


class FakeCore:
    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.deleted: list[str] = []

    def list_namespace(self, label_selector: str) -> Any:
        assert label_selector == _labels.SELECTOR
        return SimpleNamespace(items=self.items)

    def delete_namespace(self, name: str, body: Any, _request_timeout: Any = None) -> None:
        assert body.propagation_policy == "Background"
        assert body.preconditions.resource_version == f"rv-{name}"  # only the version that was listed
        self.deleted.append(name)


def test_remove_stale_deletes_only_dead() -> None:
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    now = time.time()
    core = FakeCore([
        _ns("dead", labels(host="me", pid=dead_pid.pid, created=now - 10)),
        _ns("mine-alive", labels(host="me", pid=os.getpid(), created=now)),
    ])
    removed = _cleanup.remove_stale(core, my_host="me", my_run="x", stale_after=2 * HOUR)
    assert removed == core.deleted == ["dead"]


def test_labels_are_valid_label_values() -> None:
    lbls = _labels.namespace_labels("abc123", "gw0", pid=42, host="My Host!.local.", created=NOW)
    assert lbls == {
        _labels.LABEL_RUN: "abc123",
        _labels.LABEL_WORKER: "gw0",
        _labels.LABEL_PID: "42",
        _labels.LABEL_HOST: "My-Host-.local",
        _labels.LABEL_CREATED: str(int(NOW)),
    }
    assert len(_labels.label_value("x" * 100)) == 63
