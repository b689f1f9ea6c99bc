"""Readiness waiting and diagnostics (pytest_vcluster._ready) with fake API objects."""

from __future__ import annotations

import datetime
from types import SimpleNamespace as NS
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from pytest_vcluster import _ready
from pytest_vcluster._ready import ConditionTimeout, Deadline, is_transient, wait_for


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ApiException(status=0, reason="SSLError EOF"), True),
        (ApiException(status=429, reason="Too Many Requests"), True),
        (ApiException(status=500), True),
        (ApiException(status=503), True),
        (ApiException(status=400), False),
        (ApiException(status=401), False),
        (ApiException(status=403), False),
        (ApiException(status=404), False),
        (ApiException(status=422), False),
        (ConnectionRefusedError(), True),
        (ConnectionResetError(), True),
        (urllib3.exceptions.MaxRetryError(None, "/", reason="refused"), True),  # type: ignore[arg-type]
        (urllib3.exceptions.ProtocolError("reset"), True),
        (TimeoutError(), True),
        (ValueError("bug"), False),
        (KeyError("bug"), False),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_retries_transient_errors_then_succeeds() -> None:
    results: list[Any] = [ConnectionRefusedError("refused"), ApiException(status=503), False, True]
    calls = []

    def check() -> bool:
        calls.append(1)
        item = results.pop(0)
        if isinstance(item, BaseException):
            raise item
        return bool(item)

    wait_for("thing", check, Deadline(30), sleep=lambda s: None)
    assert len(calls) == 4


def test_wait_for_raises_4xx_at_once() -> None:
    calls = []

    def check() -> bool:
        calls.append(1)
        raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ApiException) as info:
        wait_for("thing", check, Deadline(30), sleep=lambda s: None)
    assert info.value.status == 403
    assert len(calls) == 1


def test_wait_for_times_out_with_condition_and_last_state() -> None:
    import time

    with pytest.raises(ConditionTimeout) as info:
        wait_for("pod r-0 to be Ready", lambda: False, Deadline(0.5), state=lambda: "phase Pending", max_wait=0.1)
    assert info.value.condition == "pod r-0 to be Ready"
    assert info.value.last == "phase Pending"
    assert 0.4 <= info.value.waited < 5
    del time


def test_wait_for_times_out_reporting_last_error() -> None:
    def check() -> bool:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ConditionTimeout) as info:
        wait_for("api", check, Deadline(0.3), max_wait=0.05)
    assert "ConnectionRefusedError" in info.value.last


def test_deadline_clock() -> None:
    clock = FakeClock()
    deadline = Deadline(10, clock=clock)
    clock.sleep(4)
    assert deadline.elapsed == 4
    assert deadline.remaining == 6
    clock.sleep(10)
    assert deadline.remaining == 0


def pod(ready: bool = False, waiting_reason: str | None = "ImagePullBackOff") -> Any:
    cs = NS(
        name="syncer", ready=ready, restart_count=2,
        state=NS(running=None, terminated=None,
                 waiting=NS(reason=waiting_reason, message='Back-off pulling image "does-not-exist/syncer"')),
    )
    return NS(
        metadata=NS(name="r-0"),
        spec=NS(node_name="node1", init_containers=[], containers=[NS(name="etcd"), NS(name="syncer")]),
        status=NS(
            phase="Pending",
            conditions=[NS(type="PodScheduled", status="True", reason=None, message=None),
                        NS(type="Ready", status="True" if ready else "False", reason="ContainersNotReady",
                           message="containers with unready status: [syncer]")],
            init_container_statuses=None,
            container_statuses=[cs],
        ),
    )


def test_pod_ready_and_state() -> None:
    assert _ready.pod_ready(pod(ready=True))
    assert not _ready.pod_ready(pod())
    assert not _ready.pod_ready(None)
    state = _ready.pod_state(pod())
    assert "phase Pending" in state
    assert "container syncer waiting: ImagePullBackOff" in state
    assert _ready.pod_state(None) == "pod not created yet"


class FakeCore:
    def __init__(self, the_pod: Any = None, events: list[Any] | None = None, log: str = "") -> None:
        self.the_pod = the_pod
        self.events = events or []
        self.log = log

    def read_namespaced_pod(self, name: str, namespace: str, **kw: Any) -> Any:
        if self.the_pod is None:
            raise ApiException(status=404, reason="Not Found")
        return self.the_pod

    def list_namespaced_event(self, namespace: str) -> Any:
        return NS(items=list(self.events))

    def read_namespaced_pod_log(self, name: str, namespace: str, container: str, tail_lines: int, **kw: Any) -> str:
        return "\n".join(f"{container} line {i}" for i in range(50))


def event(reason: str, message: str, seconds: int) -> Any:
    ts = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return NS(type="Warning", reason=reason, message=message, count=3, last_timestamp=ts, event_time=None,
              first_timestamp=ts, metadata=NS(creation_timestamp=ts),
              involved_object=NS(kind="Pod", name="r-0"))


def test_diagnostics_contains_status_events_and_log_tails() -> None:
    core = FakeCore(pod(), [event("Failed", "pull failed", 2), event("BackOff", "Back-off", 1)])
    text = _ready.diagnostics(core, "ns", "r")
    assert "pod r-0: phase Pending, node node1" in text
    assert "condition Ready=False (ContainersNotReady: containers with unready status: [syncer])" in text
    assert "container syncer: ready=False restarts=2 waiting (ImagePullBackOff" in text
    assert "events in host namespace ns:" in text
    assert text.index("BackOff") < text.index("pull failed")  # sorted by time
    assert "Warning Failed pod/r-0: pull failed (x3)" in text
    assert "last 20 log lines of container etcd:" in text
    assert "etcd line 49" in text and "etcd line 30" in text and "etcd line 29" not in text


def test_diagnostics_without_pod() -> None:
    text = _ready.diagnostics(FakeCore(None), "ns", "r")
    assert "pod r-0: HTTP 404 Not Found" in text
    assert "(no events)" in text


def test_not_ready_error_message() -> None:
    exc = ConditionTimeout("pod r-0 in host namespace ns to be Ready", 20.3, "phase Pending")
    err = _ready.not_ready_error("r", 20, exc, "DETAILS")
    text = str(err)
    assert text.startswith("virtual cluster r was not ready within 20s: waited 20.3s for pod r-0 in host "
                           "namespace ns to be Ready\nlast state: phase Pending\nDETAILS\n")
    assert "--vcluster-timeout" in text


def test_wait_host_side_with_fake_core() -> None:
    class Core(FakeCore):
        secret_reads = 0

        def read_namespaced_secret(self, name: str, namespace: str, **kw: Any) -> Any:
            Core.secret_reads += 1
            if Core.secret_reads < 2:
                raise ApiException(status=404)
            return NS(data={"config": ""})

    secret = _ready.wait_host_side(Core(pod(ready=True)), "ns", "r", Deadline(10))
    assert secret.data == {"config": ""}


def test_describe_error_includes_status_message() -> None:
    exc = ApiException(status=400, reason="Bad Request")
    exc.body = '{"kind":"Status","message":"container \\"etcd\\" is waiting to start: ContainerCreating"}'
    assert _ready.describe_error(exc) == 'HTTP 400 Bad Request: container "etcd" is waiting to start: ContainerCreating'
    assert _ready.describe_error(ApiException(status=404, reason="Not Found")) == "HTTP 404 Not Found"
    assert _ready.describe_error(ConnectionRefusedError("refused")) == "ConnectionRefusedError: refused"
