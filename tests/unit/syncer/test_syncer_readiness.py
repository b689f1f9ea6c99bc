"""The syncer's own readiness signal (vcluster_syncer/readiness.py): condition
contract.CONDITION_CLUSTER_READY on pod R-0, set once the virtual cluster is first ready."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from fake_kube import FakeKube
from vcluster_syncer import contract, readiness
from vcluster_syncer.kube import PODS, Forbidden

NS, POD = "n", "r-0"
NOW = "2026-12-02T10:00:00Z"
KUBELET_CONDITIONS = [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]


def host_with_pod(conditions: list[dict[str, Any]] | None = None) -> FakeKube:
    host = FakeKube("host")
    host.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD, "namespace": NS},
                       "spec": {"containers": [{"name": "syncer", "image": "s"}]}})
    if conditions is not None:
        host.patch(PODS, POD, {"status": {"conditions": conditions}}, NS, subresource="status")
    return host


def ours(status: str = "True") -> dict[str, Any]:
    return {"type": contract.CONDITION_CLUSTER_READY, "status": status, "lastTransitionTime": NOW,
            "reason": readiness.REASON, "message": readiness.MESSAGE}


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([], [ours()]),
        (KUBELET_CONDITIONS, [*KUBELET_CONDITIONS, ours()]),  # the kubelet's are carried as they are
        ([*KUBELET_CONDITIONS, ours("False")], [*KUBELET_CONDITIONS, ours()]),  # replaced, not doubled
        ([*KUBELET_CONDITIONS, ours()], None),  # already set: nothing to write
    ],
)
def test_condition_patch(conditions: list[dict[str, Any]], expected: list[dict[str, Any]] | None) -> None:
    pod = {"metadata": {"name": POD, "resourceVersion": "7"}, "status": {"conditions": conditions}}
    patch = readiness.condition_patch(pod, NOW)
    if expected is None:
        assert patch is None
    else:
        assert patch == {"metadata": {"resourceVersion": "7"}, "status": {"conditions": expected}}


def test_mark_ready_sets_the_condition_and_keeps_the_kubelets() -> None:
    host = host_with_pod(KUBELET_CONDITIONS)
    assert readiness.mark_ready(host, NS, POD, threading.Event(), lambda: NOW)
    assert host.get(PODS, POD, NS)["status"]["conditions"] == [*KUBELET_CONDITIONS, ours()]
    patches = [c for c in host.calls if c[0].startswith("patch")]
    assert readiness.mark_ready(host, NS, POD, threading.Event(), lambda: NOW)  # already set: no second write
    assert [c for c in host.calls if c[0].startswith("patch")] == patches


def test_mark_ready_reads_again_when_the_kubelet_wrote_in_between() -> None:
    host = host_with_pod(KUBELET_CONDITIONS)
    later = [*KUBELET_CONDITIONS[:1], {"type": "Ready", "status": "True"}]

    class KubeletRaces(FakeKube):
        raced = False

    real_get = host.get

    def get(kind: Any, name: str, namespace: str | None = None) -> Any:
        obj = real_get(kind, name, namespace)
        if not KubeletRaces.raced:  # the kubelet reports Ready after the syncer read the pod
            KubeletRaces.raced = True
            host.patch(PODS, POD, {"status": {"conditions": later}}, NS, subresource="status")
        return obj

    host.get = get  # type: ignore[method-assign]
    assert readiness.mark_ready(host, NS, POD, threading.Event(), lambda: NOW)
    assert host.get(PODS, POD, NS)["status"]["conditions"] == [*later, ours()]  # the kubelet's write survived


def test_mark_ready_gives_up_on_a_permanent_error(caplog: pytest.LogCaptureFixture) -> None:
    host = host_with_pod()
    host.reject[("patch", "pods")] = Forbidden(403, "Forbidden", "pods/status is forbidden")
    with caplog.at_level(logging.WARNING):
        assert not readiness.mark_ready(host, NS, POD, threading.Event(), lambda: NOW)
    assert [c[0] for c in host.calls].count("patch/status") == 1
    assert (f"readiness: cannot set condition {contract.CONDITION_CLUSTER_READY} on pod n/r-0: "
            "403 Forbidden: pods/status is forbidden; the plugin waits for its Ready condition") in caplog.messages


def test_mark_ready_without_its_pod_and_when_stopping() -> None:
    assert not readiness.mark_ready(FakeKube("host"), NS, POD, threading.Event(), lambda: NOW)
    stopping = threading.Event()
    stopping.set()
    host = host_with_pod()
    assert not readiness.mark_ready(host, NS, POD, stopping, lambda: NOW)
    assert not [c for c in host.calls if c[0].startswith("patch")]
