"""The pure rules of recycling (pytest_vcluster.core.recycle): what a reset writes back and deletes, which host
objects a fresh cluster has, discovery, the stored baseline. The reset itself runs on the real host
(tests/e2e/test_recycle.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_plugin_pool import KEY, FakeCore

from pytest_vcluster import wait_until
from pytest_vcluster.core import labels as _labels
from pytest_vcluster.core import pool as _pool
from pytest_vcluster.core.recycle import (
    Baseline,
    ResetError,
    ResetReport,
    discovery_of,
    foreign,
    host_leftovers,
    reset_plan,
    service_account_uid,
    touched_resources,
    with_uid,
)
from pytest_vcluster.core.settings import Settings
from pytest_vcluster.core.values import ClusterOptions
from pytest_vcluster.plugin.manager import Summary, VClusterManager
from pytest_vcluster.plugin.report import recycle_line

UID_A = b"0b6f3c1e-2f7a-4c55-9d1e-1a2b3c4d5e6f"
UID_B = b"11111111-2222-4333-8444-555555555555"
UID_NEW = b"99999999-8888-4777-8666-555555555555"
#: a stored ServiceAccount as kube-apiserver writes it: "k8s\0", a runtime.Unknown, ObjectMeta with uid (field 5)
SA_PROTO = (b"k8s\x00\n\x14\n\x02v1\x12\x0eServiceAccount\x12M\nK\n\x07default\x12\x00\x1a\x07default\"\x00*$"
            + UID_A + b"2\x00")
SA_JSON = b'{"kind":"ServiceAccount","metadata":{"name":"robot","namespace":"team","uid":"' + UID_B + b'"}}'


def test_service_account_uid_in_protobuf_and_json() -> None:
    assert service_account_uid(SA_PROTO) == UID_A
    assert service_account_uid(SA_JSON) == UID_B
    assert service_account_uid(b"k8s\x00no uid here") is None


def test_with_uid_keeps_the_length_and_replaces_only_the_uid() -> None:
    replaced = with_uid(SA_PROTO, UID_NEW)
    assert replaced == SA_PROTO.replace(UID_A, UID_NEW)
    assert len(replaced) == len(SA_PROTO)
    assert service_account_uid(replaced) == UID_NEW
    assert with_uid(SA_JSON, UID_NEW) == b'{"kind":"ServiceAccount","metadata":{"name":"robot","namespace":"team",' \
                                         b'"uid":"99999999-8888-4777-8666-555555555555"}}'
    assert with_uid(b"no uid", UID_NEW) == b"no uid"


BASELINE = (
    (b"/registry/configmaps/default/a", b"one"),
    (b"/registry/events/default/e1", b"event"),
    (b"/registry/leases/kube-system/apiserver-x", b"renewed at 1"),
    (b"/registry/namespaces/default", b"ns"),
    (b"/registry/serviceaccounts/default/default", SA_PROTO),
)


def test_reset_plan_writes_back_deletes_added_and_rotates_every_service_account() -> None:
    current = {
        b"/registry/configmaps/default/a": b"changed",
        b"/registry/configmaps/team/b": b"added",
        b"/registry/events/default/e1": b"event, count 2",
        b"/registry/events/team/e2": b"added event",
        b"/registry/leases/kube-system/apiserver-x": b"renewed at 9",
        b"/registry/leases/kube-node-lease/node-1": b"added lease",
        b"/registry/namespaces/team": b"added namespace",
        b"/registry/serviceaccounts/default/default": SA_PROTO,
    }
    puts, deletes = reset_plan(BASELINE, current, rotate=True, new_uid=lambda: UID_NEW)
    assert puts == [
        (b"/registry/configmaps/default/a", b"one"),
        (b"/registry/namespaces/default", b"ns"),
        (b"/registry/serviceaccounts/default/default", SA_PROTO.replace(UID_A, UID_NEW)),
    ]
    assert deletes == [
        b"/registry/configmaps/team/b",
        b"/registry/events/team/e2",
        b"/registry/leases/kube-node-lease/node-1",
        b"/registry/namespaces/team",
    ]


def test_reset_plan_after_a_rotation_is_empty_and_repairs_a_changed_service_account() -> None:
    rotated = dict(BASELINE)
    rotated[b"/registry/serviceaccounts/default/default"] = SA_PROTO.replace(UID_A, UID_NEW)
    rotated[b"/registry/leases/kube-system/apiserver-x"] = b"renewed at 19"
    assert reset_plan(BASELINE, rotated, rotate=False) == ([], [])
    changed = dict(rotated)
    changed[b"/registry/serviceaccounts/default/default"] = SA_PROTO.replace(b"default", b"defauLt", 1)
    puts, deletes = reset_plan(BASELINE, changed, rotate=False, new_uid=lambda: UID_B)
    assert puts == [(b"/registry/serviceaccounts/default/default", SA_PROTO.replace(UID_A, UID_B))]
    assert deletes == []
    missing = dict(rotated)
    del missing[b"/registry/events/default/e1"]
    assert reset_plan(BASELINE, missing, rotate=False) == ([(b"/registry/events/default/e1", b"event")], [])


def test_touched_resources() -> None:
    assert touched_resources([
        b"/registry/admissionregistration.k8s.io/validatingwebhookconfigurations/deny",
        b"/registry/configmaps/default/a",
    ]) == {b"admissionregistration.k8s.io", b"validatingwebhookconfigurations", b"configmaps", b"default"}


def obj(name: str, *, managed: bool = False, vname: str | None = None, vns: str | None = None,
        labels: dict[str, str] | None = None, deleting: bool = False) -> dict[str, object]:
    meta_labels = dict(labels or {})
    annotations = {}
    if managed:
        meta_labels["vcluster.loft.sh/managed-by"] = "vc-r"
    if vname is not None:
        annotations = {"vcluster.loft.sh/object-name": vname, "vcluster.loft.sh/object-namespace": vns or ""}
    return {"metadata": {"name": name, "labels": meta_labels, "annotations": annotations,
                         "deletionTimestamp": "2026-12-06T00:00:00Z" if deleting else None}}


FRESH = Baseline(keys=((b"/registry/services/specs/kube-system/kube-dns", b"svc"),), discovery=frozenset(),
                 host={"Pod": frozenset({"vc-r-0"}), "Service": frozenset({"vc-r"}),
                       "Secret": frozenset({"vc-vc-r"})})


def test_host_leftovers_accepts_the_chart_and_copies_of_baseline_objects_only() -> None:
    objects = {
        "Pod": [obj("vc-r-0"), obj("web-x-default-x-vc-r", managed=True, vname="web", vns="default"),
                obj("gone-x-default-x-vc-r", managed=True, vname="gone", vns="default", deleting=True)],
        "Service": [obj("vc-r"),
                    obj("kube-dns-x-kube-system-x-vc-r", managed=True, vname="kube-dns", vns="kube-system"),
                    obj("web-x-default-x-vc-r", managed=True, vname="web", vns="default")],
        "Endpoints": [obj("vc-r"), obj("kube-dns-x-kube-system-x-vc-r", managed=True),
                      obj("web-x-default-x-vc-r", managed=True)],
        # mirrored by the host from our Endpoints copy: its labels and annotations copied
        "EndpointSlice": [obj("kube-dns-x-kube-system-x-vc-r-abcde", managed=True, vname="kube-dns",
                              vns="kube-system", labels={
                                  "kubernetes.io/service-name": "kube-dns-x-kube-system-x-vc-r",
                                  "endpointslice.kubernetes.io/managed-by":
                                      "endpointslicemirroring-controller.k8s.io"}),
                          obj("web-x-default-x-vc-r-fghij",
                              labels={"kubernetes.io/service-name": "web-x-default-x-vc-r"})],
        "Secret": [obj("vc-vc-r")],
    }
    assert host_leftovers(FRESH, objects, FRESH.key_set()) == [
        "EndpointSlice web-x-default-x-vc-r-fghij",
        "Endpoints web-x-default-x-vc-r",
        "Pod gone-x-default-x-vc-r",
        "Pod web-x-default-x-vc-r",
        "Service web-x-default-x-vc-r",
    ]
    assert foreign(FRESH, objects) == []
    clean = {kind: [o for o in items if "web" not in o["metadata"]["name"] and  # type: ignore[index]
                    "gone" not in o["metadata"]["name"]] for kind, items in objects.items()}  # type: ignore[index]
    assert host_leftovers(FRESH, clean, FRESH.key_set()) == []


def test_host_leftovers_and_the_syncers_endpoint_slices() -> None:
    """The syncer's copies of users' EndpointSlices (labelled with the host Service's name, as the host
    controllers' slices are) are judged by their virtual slice: a slice a test added, even to a baseline
    Service, is reported until the syncer has deleted its copy; a copy of a baseline slice is kept."""
    def copy_of(vname: str, service: str) -> dict[str, object]:
        return obj(f"{vname}-x-default-x-vc-r", managed=True, vname=vname, vns="default", labels={
            "kubernetes.io/service-name": service,
            "endpointslice.kubernetes.io/managed-by": "vcluster-syncer.pytest-vcluster.io"})

    objects = {
        "Pod": [obj("vc-r-0")], "Secret": [obj("vc-vc-r")],
        "Service": [obj("vc-r"),
                    obj("kube-dns-x-kube-system-x-vc-r", managed=True, vname="kube-dns", vns="kube-system")],
        "EndpointSlice": [copy_of("dns-extra", "kube-dns-x-kube-system-x-vc-r"),
                          copy_of("ext-1", "ext-x-default-x-vc-r"),
                          copy_of("dns-kept", "kube-dns-x-kube-system-x-vc-r")],
    }
    with_slice = Baseline(keys=(*FRESH.keys, (b"/registry/endpointslices/default/dns-kept", b"slice")),
                          discovery=FRESH.discovery, host=FRESH.host)
    assert host_leftovers(with_slice, objects, with_slice.key_set()) == [
        "EndpointSlice dns-extra-x-default-x-vc-r", "EndpointSlice ext-1-x-default-x-vc-r"]
    assert foreign(FRESH, objects) == []


def test_foreign_names_host_objects_nobody_removes() -> None:
    objects = {"ConfigMap": [obj("intruder")], "Pod": [obj("vc-r-0")], "Endpoints": [obj("someone-elses")]}
    assert foreign(FRESH, objects) == ["ConfigMap intruder"]


def test_discovery_of_an_aggregated_document() -> None:
    document = {"items": [
        {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
            {"resource": "deployments"}, {"resource": "statefulsets"}]}]},
        {"metadata": {"name": "example.com"}, "versions": [
            {"version": "v1", "resources": [{"resource": "widgets"}]},
            {"version": "v1beta1", "resources": []}]},
    ]}
    assert discovery_of(document) == frozenset(
        {"apps/v1/deployments", "apps/v1/statefulsets", "example.com/v1/widgets"})


def test_baseline_round_trip_and_a_bad_one() -> None:
    baseline = Baseline(keys=BASELINE, discovery=frozenset({"apps/v1/deployments"}),
                        host={"Pod": frozenset({"vc-r-0"})}, taken_at=1765000000.5)
    assert Baseline.from_bytes(baseline.to_bytes(), where="x") == baseline
    with pytest.raises(ResetError) as info:
        Baseline.from_bytes(b"not gzip", where="/pytest-vcluster/baseline in the etcd of vc-r")
    assert str(info.value) == ("/pytest-vcluster/baseline in the etcd of vc-r is not a pytest-vcluster baseline: "
                               "Not a gzipped file (b'no')")


# --------------------------------------------------------------------------- the manager's bookkeeping
# (in-memory namespaces with the API server's resourceVersion rule; a fake cluster whose reset succeeds,
# fails or is not reached)



class FakeCluster:
    def __init__(self, name: str, resets: int = 0, error: Exception | None = None) -> None:
        self.name = self.host_namespace = self.release = name
        self.resets = resets
        self.error = error
        self.calls: list[str] = []

    def reset(self, timeout: float = 60.0) -> ResetReport:
        self.calls.append("reset")
        if self.error is not None:
            raise self.error
        self.resets += 1
        return ResetReport(seconds=0.75)

    def disconnect(self) -> None:
        self.calls.append("disconnect")

    def forget_local_files(self) -> None:
        self.calls.append("forget")

    def delete(self, wait: bool = False) -> None:
        self.calls.append("delete")

    def _hand_on(self) -> FakeCluster:
        self.calls.append("hand on")
        return FakeCluster(self.name, resets=self.resets)

    def _mint_probe_tokens(self) -> None:
        self.calls.append("mint probe tokens")


def recycling_manager(tmp_path: Path, core: FakeCore, **settings: Any) -> VClusterManager:
    manager = VClusterManager(Settings(**settings), run_id="abcdef", worker="gw1", shared_dir=lambda: tmp_path,
                              workdir=lambda: tmp_path, env={}, run_pid=4242)
    manager._host = SimpleNamespace(core_v1=lambda: core, close=lambda: None)  # type: ignore[assignment]
    return manager


def release_recycled(tmp_path: Path, core: FakeCore, vc: FakeCluster) -> VClusterManager:
    """A manager of worker gw1 of run abcdef (pid 4242) that has just released ``vc``, a recyclable cluster."""
    core.add(vc.name, _labels.namespace_labels("abcdef", "gw1"))
    manager = recycling_manager(tmp_path, core)
    manager._recyclable[vc.name] = KEY
    manager.release(vc)  # type: ignore[arg-type]
    return manager


class CountingCore(FakeCore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __getattribute__(self, name: str) -> Any:
        if name.endswith("_namespace"):
            object.__setattr__(self, "calls", object.__getattribute__(self, "calls") + 1)
        return object.__getattribute__(self, name)


def test_a_reset_cluster_is_held_for_this_process_next_test_then_freed_at_the_end(tmp_path: Path) -> None:
    core = CountingCore()
    worker = _labels.namespace_labels("abcdef", "gw1")
    vc = FakeCluster("vc-a")
    manager = release_recycled(tmp_path, core, vc)
    manager.wait_resets(10)
    assert vc.calls == ["reset", "hand on"]
    labels = core.items["vc-a"].metadata.labels
    assert (labels[_labels.LABEL_POOL_STATE], labels[_labels.LABEL_RESETS], labels[_labels.LABEL_POOL]) == \
        ("claimed", "1", KEY), "the host must see it held by this process, reset once"
    assert (labels[_labels.LABEL_WORKER], labels[_labels.LABEL_PID]) == ("gw1", worker[_labels.LABEL_PID])
    assert (manager.summary.pool.recycled, manager.summary.pool.reset_seconds) == (1, [0.75])
    assert _pool.claim(core, KEY, {"x": "y"}) is None, "another process could claim a held cluster"
    assert manager._from_pool(ClusterOptions(), KEY, unused=True) is None, "a used cluster went to recycle=False"
    calls = core.calls
    again: Any = manager._from_pool(ClusterOptions(), KEY)
    assert again is not None and again is not vc and (again.name, again.resets) == ("vc-a", 1)
    assert again.calls == ["mint probe tokens"], "the next reset's probe tokens were not minted ahead"
    assert core.calls == calls, "claiming a held cluster called the host"
    manager._recyclable["vc-a"] = KEY
    manager.release(again)
    manager.finish(timeout=1)
    labels = core.items["vc-a"].metadata.labels
    assert (labels[_labels.LABEL_POOL_STATE], labels[_labels.LABEL_RESETS]) == ("free", "2")
    assert (labels[_labels.LABEL_RUN], labels[_labels.LABEL_WORKER], labels[_labels.LABEL_PID]) == \
        ("abcdef", "pool", "4242"), "at the end the run's sweep must own it"


def test_a_reset_cluster_goes_to_the_pool_when_this_process_has_one_for_its_next_test(tmp_path: Path) -> None:
    """While a cluster is reset, the pool's filler counts it as coming back; when the process's next test took a
    spare meanwhile, the reset cluster becomes a free cluster of the pool (owned by the run, for its sweep)
    instead of a second one held idle by this process, which made the filler start a cold cluster per spare."""
    core = FakeCore()
    vc = BlockedCluster("vc-a")
    manager = release_recycled(tmp_path, core, vc)
    wait_until("the reset to begin", lambda: core.items["vc-a"].metadata.labels.get(_labels.LABEL_POOL_STATE),
               timeout=10, interval=0.01)
    assert _pool._counts(core, KEY) == (0, 0, 1), "the filler must see it coming back"
    assert _pool.claim(core, KEY, {"x": "y"}) is None, "a cluster being reset was claimed"
    manager._recyclable["vc-spare"] = KEY  # the next test runs on a spare from the pool
    vc.go.set()
    manager.wait_resets(10)
    assert vc.calls == ["reset", "disconnect", "forget"]
    assert manager._ready == {}
    labels = core.items["vc-a"].metadata.labels
    assert (labels[_labels.LABEL_POOL_STATE], labels[_labels.LABEL_RESETS], labels[_labels.LABEL_POOL]) == \
        ("free", "1", KEY)
    assert (labels[_labels.LABEL_RUN], labels[_labels.LABEL_WORKER], labels[_labels.LABEL_PID]) == \
        ("abcdef", "pool", "4242")
    assert manager.summary.pool.recycled == 1
    assert _pool.claim(core, KEY, {"x": "y"}) == "vc-a"


class BlockedCluster(FakeCluster):
    """A cluster whose reset waits until ``go`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.go = threading.Event()

    def reset(self, timeout: float = 60.0) -> ResetReport:
        assert self.go.wait(10), "the reset was never let go"
        return super().reset(timeout)


class ResetEndsDuringTheLook(FakeCore):
    """The host answers the pool's look (claim, counts) only after the blocked reset has ended: the reset ends
    between the look at the held clusters and the count of resets still running."""

    def __init__(self, manager: list[VClusterManager], vc: BlockedCluster) -> None:
        super().__init__()
        self.manager, self.vc = manager, vc

    def list_namespace(self, label_selector: str, _request_timeout: Any = None) -> Any:
        if not self.vc.go.is_set():
            self.vc.go.set()
            self.manager[0].wait_resets(10)
        return super().list_namespace(label_selector, _request_timeout)


def test_a_reset_ending_while_the_next_test_looks_at_the_host_is_still_handed_on(tmp_path: Path) -> None:
    vc = BlockedCluster("vc-r")
    holder: list[VClusterManager] = []
    core = ResetEndsDuringTheLook(holder, vc)
    core.add("vc-r", _labels.namespace_labels("abcdef", "gw1"))
    manager = recycling_manager(tmp_path, core)
    holder.append(manager)
    manager._recyclable["vc-r"] = KEY
    manager.release(vc)  # type: ignore[arg-type]
    got: Any = manager._from_pool(ClusterOptions(), KEY)
    assert got is not None and got.name == "vc-r", "a cold cluster was made while the reset one was held"
    assert vc.calls == ["reset", "hand on"]


def test_a_failed_reset_deletes_the_cluster_and_says_why(tmp_path: Path) -> None:
    core = FakeCore()
    core.add("vc-b", _labels.namespace_labels("abcdef", "gw1"))
    manager = recycling_manager(tmp_path, core)
    vc = FakeCluster("vc-b", error=ResetError("virtual cluster vc-b was not fresh 60s after its reset began: x"))
    manager._recyclable["vc-b"] = KEY
    manager.release(vc)  # type: ignore[arg-type]
    manager.wait_resets(10)
    assert vc.calls == ["reset", "delete"]
    assert manager.summary.pool.discarded == ["vc-b: virtual cluster vc-b was not fresh 60s after its reset began: x"]
    assert manager._deleted == ["vc-b"]
    assert core.items["vc-b"].metadata.labels[_labels.LABEL_POOL_STATE] == _pool.RESETTING, \
        "marked free or held (the deletion removes it)"


@pytest.mark.parametrize(("pool_keep", "calls"), [(False, ["delete"]), (True, ["reset", "hand on"])])
def test_the_last_tests_cluster_is_deleted_not_reset_unless_kept(tmp_path: Path, pool_keep: bool,
                                                                  calls: list[str]) -> None:
    core = FakeCore()
    core.add("vc-d", _labels.namespace_labels("abcdef", "gw1"))
    manager = recycling_manager(tmp_path, core, pool_keep=pool_keep)
    vc = FakeCluster("vc-d")
    manager._recyclable["vc-d"] = KEY
    manager.no_more_tests()
    manager.release(vc)  # type: ignore[arg-type]
    manager.wait_resets(10)
    assert vc.calls == calls


def test_a_cluster_reset_recycle_max_times_is_retired(tmp_path: Path) -> None:
    core = FakeCore()
    core.add("vc-c", _labels.namespace_labels("abcdef", "gw1"))
    manager = recycling_manager(tmp_path, core, recycle_max=3)
    vc = FakeCluster("vc-c", resets=3)
    manager._recyclable["vc-c"] = KEY
    manager.release(vc)  # type: ignore[arg-type]
    assert vc.calls == ["delete"]
    assert manager.summary.pool.discarded == ["vc-c: retired after 3 resets (--vcluster-recycle-max)"]
    assert manager._deleted == ["vc-c"]


def test_the_run_end_sweep_deletes_or_keeps_the_runs_free_clusters_once(tmp_path: Path) -> None:
    owner = {**_labels.namespace_labels("abcdef", "pool", pid=4242)}
    core = FakeCore()
    core.add("vc-kept-by-filler", {**owner, **_pool.pool_labels(KEY, _pool.FREE), _labels.LABEL_POOL_KEPT: "true"})
    core.add("vc-recycled", {**owner, **_pool.pool_labels(KEY, _pool.FREE), _labels.LABEL_RESETS: "3"})
    core.add("vc-of-another-run", {**_labels.namespace_labels("zzzzzz", "pool"), **_pool.pool_labels(KEY, _pool.FREE)})
    keeping = recycling_manager(tmp_path, core, pool_keep=True)
    keeping.run_pid = os.getpid()
    keeping._sweep_recycled(recycled_elsewhere=False)
    assert keeping.summary.pool.kept == 1, "a cluster the filler kept was counted twice"
    assert core.items["vc-recycled"].metadata.labels[_labels.LABEL_POOL_KEPT] == "true"
    deleting = recycling_manager(tmp_path, core)
    deleting.run_pid = os.getpid()
    deleting._sweep_recycled(recycled_elsewhere=False)
    assert sorted(core.items) == ["vc-of-another-run"] and deleting._deleted == ["vc-kept-by-filler", "vc-recycled"]
    core.add("vc-recycled", {**owner, **_pool.pool_labels(KEY, _pool.FREE)})
    off = recycling_manager(tmp_path, core, recycle=False)
    off.run_pid = os.getpid()
    off._sweep_recycled(recycled_elsewhere=False)
    assert "vc-recycled" in core.items, "without recycling the filler alone ends the pool"


def test_recycle_line_of_the_terminal_summary() -> None:
    summary = Summary()
    summary.pool.recycled, summary.pool.reused = 3, 2
    summary.pool.reset_seconds = [0.5, 0.9, 2.25]
    summary.pool.discarded = ["vc-b: virtual cluster vc-b cannot be reset: host namespace vc-b holds ConfigMap x, "
                              "made neither by its chart nor by its syncer"]
    assert recycle_line(summary).splitlines() == [
        "recycling: 3 cluster(s) reset and handed on, reset p50 0.90s, max 2.25s, 2 test(s) got a recycled "
        "cluster, 1 deleted instead",
        "  deleted vc-b: virtual cluster vc-b cannot be reset: host namespace vc-b holds ConfigMap x, made neither "
        "by its chart nor by its syncer",
    ]
