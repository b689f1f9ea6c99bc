"""Failures that explain themselves: which errors are retried, which are held until the virtual object
changes, and the SyncError Warning events on virtual objects (errors.py, recorder.py, Syncer.process)."""

from __future__ import annotations

from typing import Any

import pytest
from fake_kube import FakeKube
from test_syncer_loop import N, World, vpod
from vcluster_syncer.errors import BACKOFF, PERMANENT, RETRY, Permanent, Retry, classify
from vcluster_syncer.kube import (
    CONFIGMAPS,
    EVENTS,
    PODS,
    AlreadyExists,
    ApiError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    error_for,
)
from vcluster_syncer.recorder import EventRecorder, event_name, warning_event

QUOTA = ('pods "web-x-team-x-vc" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, '
         'limited: pods=1')


# ------------------------------------------------------------------ classification (pure)

@pytest.mark.parametrize(
    ("exc", "action"),
    [
        (Retry("waiting", 2.5), RETRY),
        (Permanent("cannot translate"), PERMANENT),
        (Invalid(422, "Invalid", "spec.containers[0].image: Required value"), PERMANENT),
        (Forbidden(403, "Forbidden", QUOTA), PERMANENT),
        (ApiError(400, "BadRequest", "json: cannot unmarshal"), PERMANENT),
        (ApiError(405, "MethodNotAllowed", ""), PERMANENT),
        (ApiError(413, "RequestEntityTooLarge", ""), PERMANENT),
        (ApiError(0, "ConnectionRefusedError", "[Errno 111] Connection refused"), BACKOFF),
        (NotFound(404, "NotFound", 'namespaces "n" not found'), BACKOFF),
        (Conflict(409, "Conflict", "the object has been modified"), BACKOFF),
        (AlreadyExists(409, "AlreadyExists", "exists"), BACKOFF),
        (ApiError(429, "TooManyRequests", "slow down"), BACKOFF),
        (ApiError(500, "InternalError", "etcdserver: request timed out"), BACKOFF),
        (ApiError(503, "ServiceUnavailable", ""), BACKOFF),
        (ApiError(504, "Timeout", ""), BACKOFF),
        (KeyError("spec"), BACKOFF),
        (RuntimeError("bug"), BACKOFF),
    ],
)
def test_classify(exc: BaseException, action: str) -> None:
    assert classify(exc).action == action


@pytest.mark.parametrize("status", [400, 403, 422])
def test_error_for_statuses_the_host_refuses_are_permanent(status: int) -> None:
    assert classify(error_for(status, "X", "m")).action == PERMANENT


def test_classify_keeps_delay_and_message() -> None:
    assert classify(Retry("x", 2.5)).delay == 2.5
    assert classify(Retry("x", 2.5)).message == ""
    assert classify(Forbidden(403, "Forbidden", QUOTA)).message == f"403 Forbidden: {QUOTA}"
    assert "not reached" in classify(ApiError(0, "ConnectionRefusedError", "refused")).message
    assert classify(KeyError("spec")).message == "KeyError: 'spec'"


# ------------------------------------------------------------------ the event recorder

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team", "uid": "u1",
                                                       "resourceVersion": "7"}}


def test_warning_event_body() -> None:
    ev = warning_event(POD, "SyncError", "boom", "2024-01-01T00:00:00Z")
    assert ev["type"] == "Warning" and ev["reason"] == "SyncError" and ev["message"] == "boom"
    assert ev["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "team", "name": "web",
                                    "uid": "u1", "resourceVersion": "7"}
    assert ev["metadata"]["namespace"] == "team" and ev["metadata"]["name"].startswith("web.")
    assert ev["count"] == 1 and ev["source"] == {"component": "vcluster-syncer"}


def test_event_names_stable_and_distinct() -> None:
    assert event_name(POD, "SyncError", "a") == event_name(POD, "SyncError", "a")
    assert event_name(POD, "SyncError", "a") != event_name(POD, "SyncError", "b")
    other = {"metadata": {**POD["metadata"], "uid": "u2"}}
    assert event_name(POD, "SyncError", "a") != event_name(other, "SyncError", "a")
    long = {"metadata": {"name": "p" * 253, "uid": "u"}}
    assert len(event_name(long, "SyncError", "a")) <= 253


def test_recorder_deduplicates_by_counting() -> None:
    virtual = FakeKube("virtual")
    recorder = EventRecorder(virtual, lambda: 1_700_000_000.0)
    for _ in range(3):
        recorder.warning(POD, "SyncError", "boom")
    recorder.warning(POD, "SyncError", "another")
    events = sorted(virtual.list(EVENTS, "team")[0], key=lambda e: e["message"])
    assert [(e["message"], e["count"]) for e in events] == [("another", 1), ("boom", 3)]


def test_recorder_never_raises() -> None:
    virtual = FakeKube("virtual")
    virtual.reject[("create", "events")] = Forbidden(403, "Forbidden", "namespace team is being terminated")
    EventRecorder(virtual, lambda: 0.0).warning(POD, "SyncError", "boom")
    assert virtual.list(EVENTS, "team")[0] == []


# ------------------------------------------------------------------ the loop

@pytest.fixture(name="world")
def synced_world() -> World:
    w = World()
    w.sync()
    return w


def sync_errors(w: World, ns: str = "team") -> list[dict[str, Any]]:
    return [e for e in w.virtual.list(EVENTS, ns)[0] if e["reason"] == "SyncError"]


def creates(w: World, plural: str = "pods") -> int:
    return sum(1 for c in w.host.calls if c[:2] == ("create", plural))


def test_host_forbidden_is_reported_on_the_virtual_pod_and_held(world: World) -> None:
    w = world
    w.host.reject[("create", "pods")] = Forbidden(403, "Forbidden", QUOTA)
    w.virtual.create(PODS, vpod())
    w.sync()
    (event,) = sync_errors(w)
    vpod_now = w.virtual.get(PODS, "web", "team")
    assert event["type"] == "Warning"
    assert event["involvedObject"]["uid"] == vpod_now["metadata"]["uid"]
    assert event["involvedObject"]["kind"] == "Pod" and event["involvedObject"]["name"] == "web"
    assert "exceeded quota" in event["message"] and event["message"].startswith("Error syncing to host cluster")
    tries = creates(w)
    # more rounds (relists, delayed retries made due): no new try, no new event
    w.syncer.sync_once()
    w.syncer.sync_once()
    assert creates(w) == tries
    assert [e["count"] for e in sync_errors(w)] == [1]


def test_held_pod_is_tried_again_when_it_changes(world: World) -> None:
    w = world
    w.host.reject[("create", "pods")] = Forbidden(403, "Forbidden", QUOTA)
    w.virtual.create(PODS, vpod())
    w.sync()
    tries = creates(w)
    w.virtual.patch(PODS, "web", {"metadata": {"labels": {"try": "2"}}}, "team")
    w.syncer.sync_once()
    assert creates(w) == tries + 1
    assert [e["count"] for e in sync_errors(w)] == [2]  # same message: one event, counted
    del w.host.reject[("create", "pods")]
    w.virtual.patch(PODS, "web", {"metadata": {"labels": {"try": "3"}}}, "team")
    w.sync()
    assert w.host.get(PODS, "web-x-team-x-vc", N) is not None


def test_held_pod_is_tried_again_after_a_while(world: World) -> None:
    """A host-side fix (a raised quota) does not change the virtual object: the hold ends after a while."""
    w = world
    w.host.reject[("create", "pods")] = Forbidden(403, "Forbidden", QUOTA)
    w.virtual.create(PODS, vpod())
    w.sync()
    del w.host.reject[("create", "pods")]
    w.syncer.sync_once()
    assert w.host.get(PODS, "web-x-team-x-vc", N) is None
    w.clock.t += w.syncer.permanent_retry
    w.sync()
    assert w.host.get(PODS, "web-x-team-x-vc", N) is not None


def test_invalid_configmap_reported_on_configmap() -> None:
    w = World(sync_all_configmaps=True)
    w.sync()
    w.host.reject[("create", "configmaps")] = Invalid(422, "Invalid", 'ConfigMap "x" is invalid: data: Too long')
    w.virtual.create(CONFIGMAPS, {"metadata": {"name": "big", "namespace": "team"}, "data": {"a": "1"}})
    w.sync()
    (event,) = sync_errors(w)
    assert event["involvedObject"]["kind"] == "ConfigMap" and event["involvedObject"]["name"] == "big"
    assert "422 Invalid" in event["message"]


def test_temporary_errors_are_retried_and_reported_after_a_few(world: World) -> None:
    w = world
    w.host.reject[("create", "pods")] = ApiError(500, "InternalError", "etcdserver: request timed out")
    w.virtual.create(PODS, vpod())
    w.syncer.relist_all()
    w.syncer.enqueue_all()
    w.syncer.drain(delayed_rounds=1)
    assert creates(w) == 2 and sync_errors(w) == []  # a blip is not worth a warning
    w.syncer.drain(delayed_rounds=5)
    assert creates(w) > 3
    (event,) = sync_errors(w)
    assert "500 InternalError: etcdserver: request timed out" in event["message"] and event["count"] >= 2
    del w.host.reject[("create", "pods")]
    w.sync()
    assert w.host.get(PODS, "web-x-team-x-vc", N) is not None


def test_conflicts_are_retried(world: World) -> None:
    w = world
    w.virtual.create(PODS, vpod())
    w.sync()
    w.host.reject[("patch", "pods")] = Conflict(409, "Conflict", "the object has been modified")
    w.virtual.patch(PODS, "web", {"metadata": {"labels": {"app": "web2"}}}, "team")
    w.syncer.relist_all()
    w.syncer.enqueue_all()
    w.syncer.drain(delayed_rounds=1)
    del w.host.reject[("patch", "pods")]
    w.sync()
    assert "web2" in w.host.get(PODS, "web-x-team-x-vc", N)["metadata"]["labels"].values()


def test_successful_sync_after_failure_clears_the_hold(world: World) -> None:
    w = world
    w.host.reject[("create", "pods")] = Forbidden(403, "Forbidden", QUOTA)
    w.virtual.create(PODS, vpod())
    w.sync()
    del w.host.reject[("create", "pods")]
    w.virtual.patch(PODS, "web", {"metadata": {"labels": {"fixed": "yes"}}}, "team")
    w.sync()
    assert w.syncer._held == {}
