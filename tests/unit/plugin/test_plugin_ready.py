"""Readiness waiting and diagnostics (pytest_vcluster.core.ready) with fake API objects."""

from __future__ import annotations

import datetime
from types import SimpleNamespace as NS
from typing import TYPE_CHECKING, Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from pytest_vcluster.core import ready as _ready
from pytest_vcluster.core.contract import contract
from pytest_vcluster.core.wait import ConditionTimeout, Deadline, is_transient, wait_for

if TYPE_CHECKING:
    from conftest import FakeClock


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


def test_deadline_clock(clock: FakeClock) -> None:
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


T0 = datetime.datetime(2026, 12, 2, 10, 0, 0, tzinfo=datetime.timezone.utc)


def marked_pod(status: str = "True", marked_at: int = 5, unready_since: int | None = 1) -> Any:
    """pod() (Ready=False since T0 + unready_since) with the syncer's condition set at T0 + marked_at."""
    p = pod()
    ready = p.status.conditions[1]
    ready.last_transition_time = None if unready_since is None else T0 + datetime.timedelta(seconds=unready_since)
    p.status.conditions.append(NS(type=contract.CONDITION_CLUSTER_READY, status=status,
                                  last_transition_time=T0 + datetime.timedelta(seconds=marked_at)))
    return p


@pytest.mark.parametrize(
    ("the_pod", "ready"),
    [
        (marked_pod(), True),  # marked after the pod's initial Ready=False: ready before the kubelet says so
        (marked_pod(marked_at=1), True),  # the same second
        (marked_pod(unready_since=None), True),
        (marked_pod(unready_since=9), False),  # Ready, then broke after the mark: the mark stays, not ready
        (marked_pod(status="False"), False),
        (pod(ready=True), True),
        (pod(), False),
        (None, False),
    ],
)
def test_cluster_ready_on_the_syncers_condition_before_the_kubelets_ready(the_pod: Any, ready: bool) -> None:
    assert _ready.cluster_ready(the_pod) is ready


def test_wait_host_side_returns_on_the_syncers_condition() -> None:
    marked = marked_pod()

    class Core(FakeCore):
        def read_namespaced_secret(self, name: str, namespace: str, **kw: Any) -> Any:
            return NS(data={"config": ""})

    assert _ready.wait_host_side(Core(marked), "ns", "r", Deadline(1)).data == {"config": ""}


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


# --------------------------------------------------------------------------- pods that cannot start

SYNCER_IMAGE = "pytest-vcluster.local/does-not-exist:0.1.0"


Waits = dict[str, tuple[str, str]]


def k8s_pod(waiting: Waits | None = None, *, init_waiting: Waits | None = None, restarts: int = 0,
            running: tuple[str, ...] = ()) -> Any:
    """A V1Pod ``r-0`` with containers etcd and syncer (and init container init-certs when given).

    ``waiting`` maps container names to (reason, message); ``running`` names running containers.
    """
    from kubernetes import client

    def status(name: str, image: str, state: client.V1ContainerState, ready: bool = False) -> Any:
        return client.V1ContainerStatus(name=name, image=image, image_id="", ready=ready, restart_count=restarts,
                                        state=state)

    def statuses(names: dict[str, str], waits: Waits) -> list[Any]:
        out = []
        for name, image in names.items():
            if name in waits:
                reason, message = waits[name]
                state = client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason=reason, message=message))
            elif name in running:
                state = client.V1ContainerState(running=client.V1ContainerStateRunning())
            else:
                state = client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason="ContainerCreating"))
            # the status names the image as the runtime normalised it; the spec as the chart wrote it
            out.append(status(name, f"docker.io/{image}", state))
        return out

    containers = {"etcd": "registry.k8s.io/etcd:3.5.24-0", "syncer": SYNCER_IMAGE}
    inits = {"init-certs": "registry.k8s.io/busybox:bad"} if init_waiting is not None else {}
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="r-0"),
        spec=client.V1PodSpec(
            node_name="node1",
            containers=[client.V1Container(name=n, image=i) for n, i in containers.items()],
            init_containers=[client.V1Container(name=n, image=i) for n, i in inits.items()] or None,
        ),
        status=client.V1PodStatus(
            phase="Pending",
            container_statuses=statuses(containers, waiting or {}),
            init_container_statuses=statuses(inits, init_waiting or {}) or None,
        ),
    )


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"])
def test_image_problem_at_once(reason: str) -> None:
    the_pod = k8s_pod({"syncer": (reason, f"kubelet: {reason} for the image")}, running=("etcd",))
    problem = _ready.image_problem(the_pod, now=100.0, first_seen={})
    assert problem == _ready.Problem("syncer", SYNCER_IMAGE, reason, f"kubelet: {reason} for the image", init=False)
    assert problem.is_image


def test_err_image_pull_counts_only_after_the_grace() -> None:
    the_pod = k8s_pod({"syncer": ("ErrImagePull", "rpc error: dial tcp: lookup pytest-vcluster.local: no such host")})
    seen = _ready.pull_errors_seen(the_pod, 100.0, {})
    assert seen == {"syncer": 100.0}
    assert _ready.image_problem(the_pod, 100.0, seen) is None
    seen = _ready.pull_errors_seen(the_pod, 110.0, seen)
    assert seen == {"syncer": 100.0}  # first seen stays
    assert _ready.image_problem(the_pod, 110.0, seen) is None  # exactly the grace: not yet
    problem = _ready.image_problem(the_pod, 110.5, seen)
    assert problem is not None and problem.reason == "ErrImagePull" and problem.container == "syncer"
    assert "no such host" in problem.message
    # a custom grace
    assert _ready.image_problem(the_pod, 101.0, seen, grace=0.5) is not None


def test_err_image_pull_grace_starts_anew_after_the_container_recovered() -> None:
    pulling = k8s_pod({"syncer": ("ErrImagePull", "timeout")})
    seen = _ready.pull_errors_seen(pulling, 100.0, {})
    recovered = k8s_pod(running=("etcd", "syncer"))
    seen = _ready.pull_errors_seen(recovered, 105.0, seen)
    assert seen == {}
    seen = _ready.pull_errors_seen(pulling, 108.0, seen)
    assert seen == {"syncer": 108.0}
    assert _ready.image_problem(pulling, 115.0, seen) is None


def test_err_image_pull_without_first_seen_is_not_a_problem_yet() -> None:
    the_pod = k8s_pod({"syncer": ("ErrImagePull", "timeout")})
    assert _ready.image_problem(the_pod, 1000.0, {}) is None


def test_err_image_pull_turning_into_back_off_counts_at_once() -> None:
    seen = _ready.pull_errors_seen(k8s_pod({"syncer": ("ErrImagePull", "no such host")}), 100.0, {})
    backing_off = k8s_pod({"syncer": ("ImagePullBackOff", f'Back-off pulling image "{SYNCER_IMAGE}"')})
    seen = _ready.pull_errors_seen(backing_off, 101.0, seen)
    problem = _ready.image_problem(backing_off, 101.0, seen)
    assert problem is not None and problem.reason == "ImagePullBackOff"


def test_crash_loop_counts_after_repeated_restarts() -> None:
    once = k8s_pod({"etcd": ("CrashLoopBackOff", "back-off 10s restarting failed container=etcd")}, restarts=1)
    assert _ready.image_problem(once, 100.0, {}) is None  # one early exit is not yet a loop
    again = k8s_pod({"etcd": ("CrashLoopBackOff", "back-off 20s restarting failed container=etcd")}, restarts=2)
    problem = _ready.image_problem(again, 100.0, {})
    assert problem == _ready.Problem("etcd", "registry.k8s.io/etcd:3.5.24-0", "CrashLoopBackOff",
                                     "back-off 20s restarting failed container=etcd")
    assert not problem.is_image


@pytest.mark.parametrize("reason", ["ContainerCreating", "PodInitializing", None])
def test_starting_containers_are_no_problem(reason: str | None) -> None:
    the_pod = k8s_pod({"syncer": (reason, "")} if reason else None, running=("etcd",))  # type: ignore[dict-item]
    assert _ready.image_problem(the_pod, 100.0, {}) is None
    assert _ready.image_problem(None, 100.0, {}) is None
    assert _ready.image_problem(k8s_pod(running=("etcd", "syncer")), 100.0, {}) is None


def test_init_container_problem_is_found_first() -> None:
    the_pod = k8s_pod({"syncer": ("ImagePullBackOff", "syncer")},
                      init_waiting={"init-certs": ("InvalidImageName", 'Failed to apply default image tag "x"')})
    problem = _ready.image_problem(the_pod, 100.0, {})
    assert problem == _ready.Problem("init-certs", "registry.k8s.io/busybox:bad", "InvalidImageName",
                                     'Failed to apply default image tag "x"', init=True)


def test_init_container_err_image_pull_has_a_grace_too() -> None:
    the_pod = k8s_pod(init_waiting={"init-certs": ("ErrImagePull", "no such host")})
    seen = _ready.pull_errors_seen(the_pod, 100.0, {})
    assert seen == {"init-certs": 100.0}
    assert _ready.image_problem(the_pod, 105.0, seen) is None
    problem = _ready.image_problem(the_pod, 111.0, seen)
    assert problem is not None and problem.init and problem.container == "init-certs"


def test_image_of_falls_back_to_the_status_image() -> None:
    the_pod = k8s_pod({"syncer": ("ImagePullBackOff", "x")})
    the_pod.spec.containers = []
    problem = _ready.image_problem(the_pod, 100.0, {})
    assert problem is not None and problem.image == f"docker.io/{SYNCER_IMAGE}"


def test_fix_for_kind_host() -> None:
    fix = _ready.fix_for("kind", "pv-test", SYNCER_IMAGE, "ImagePullBackOff", container="syncer")
    assert f"`kind load docker-image {SYNCER_IMAGE} --name pv-test`" in fix
    assert "--vcluster-syncer-image=REF" in fix
    assert "(the plugin itself loads its syncer image)" in fix
    assert "--vcluster-image-loader" not in fix


def test_fix_for_kubeconfig_host() -> None:
    fix = _ready.fix_for("kubeconfig", None, SYNCER_IMAGE, "ErrImagePull", container="syncer")
    assert "push the image to a registry the host's nodes can pull from" in fix
    assert "--vcluster-syncer-image=REF" in fix
    assert "`python -m pytest_vcluster syncer-image --push REF`" in fix
    assert "--vcluster-image-loader=COMMAND" in fix
    assert "kind load" not in fix
    # the default provider is kubeconfig advice, also without a container name
    assert _ready.fix_for("kubeconfig", None, SYNCER_IMAGE, "ErrImageNeverPull") == fix


def test_fix_for_a_control_plane_image_names_its_chart_value() -> None:
    image = "registry.k8s.io/etcd:no-such-tag"
    fix = _ready.fix_for("kubeconfig", None, image, "ImagePullBackOff", container="etcd")
    assert ("--vcluster-set controlPlane.etcd.image.repository=REPO "
            "--vcluster-set controlPlane.etcd.image.tag=TAG") in fix
    assert "syncer-image" not in fix
    kind_fix = _ready.fix_for("kind", "k", image, "ImagePullBackOff", container="kube-apiserver")
    assert f"kind load docker-image {image} --name k" in kind_fix
    assert "controlPlane.apiServer.image.tag=TAG" in kind_fix


def test_fix_for_invalid_image_name_and_crash_loop() -> None:
    fix = _ready.fix_for("kind", "k", "Bad//Name", "InvalidImageName", container="syncer")
    assert fix == "Bad//Name is not a valid image reference: pass --vcluster-syncer-image=REF with a valid one"
    crash = _ready.fix_for("kind", "k", SYNCER_IMAGE, "CrashLoopBackOff", container="syncer")
    assert "log lines below" in crash
    assert "kind load" not in crash and "syncer-image" not in crash and "registry" not in crash


class StartCore(FakeCore):
    """A host whose pod ``r-0`` goes through the given states, one per read; it never gets a secret."""

    def __init__(self, pods: list[Any], clock: FakeClock) -> None:
        super().__init__(pods[0])
        self.pods = list(pods)
        self.clock = clock
        self.pod_reads = 0
        self.log_reads: list[str] = []

    def read_namespaced_pod(self, name: str, namespace: str, **kw: Any) -> Any:
        self.pod_reads += 1
        if len(self.pods) > 1:
            self.the_pod = self.pods.pop(0)
        return self.the_pod

    def read_namespaced_pod_log(self, name: str, namespace: str, container: str, tail_lines: int, **kw: Any) -> str:
        self.log_reads.append(container)
        return super().read_namespaced_pod_log(name, namespace, container, tail_lines)

    def read_namespaced_secret(self, name: str, namespace: str, **kw: Any) -> Any:
        raise AssertionError("the secret is not awaited before the pod is Ready")


def test_wait_host_side_raises_image_error_at_once_with_message_and_diagnostics(clock: FakeClock) -> None:
    import fnmatch

    from pytest_vcluster import ImageError, NotReadyError

    creating = k8s_pod(running=("etcd",))
    pulling = k8s_pod({"syncer": ("ErrImagePull", "failed to resolve reference: no such host")}, running=("etcd",))
    core = StartCore([creating, pulling, pulling, pulling], clock)
    deadline = Deadline(180, clock=clock)
    with pytest.raises(ImageError) as info:
        wait_host_side_with_fake_sleep(core, deadline, clock, provider="kind", kind_cluster="pv")
    assert isinstance(info.value, NotReadyError)
    lines = str(info.value).splitlines()
    assert fnmatch.fnmatch(lines[0], "virtual cluster r cannot start: container syncer is in ErrImagePull "
                                     f"(image {SYNCER_IMAGE})")
    assert lines[1] == "kubelet says: failed to resolve reference: no such host"
    assert lines[2].startswith(f"fix: load the image into the kind cluster with `kind load docker-image {SYNCER_IMAGE} "
                               "--name pv`")
    assert lines[3] == "pod r-0: phase Pending, node node1"  # the diagnostics, as for a timeout
    assert "events in host namespace ns:" in lines
    assert 10 < deadline.elapsed < 15  # the grace, then the next poll: long before the timeout


def wait_host_side_with_fake_sleep(core: Any, deadline: Deadline, clock: FakeClock, **kw: Any) -> Any:
    """wait_host_side with its sleeps advancing the fake clock instead of waiting."""
    import unittest.mock

    real = _ready.wait_for

    def fake_wait_for(*args: Any, **kwargs: Any) -> None:
        real(*args, sleep=clock.sleep, **kwargs)

    with unittest.mock.patch.object(_ready, "wait_for", fake_wait_for):
        return _ready.wait_host_side(core, "ns", "r", deadline, **kw)


def test_wait_host_side_crash_loop_error_carries_the_log_tail(clock: FakeClock) -> None:
    from pytest_vcluster import ContainerStartError, ImageError

    crashing = k8s_pod({"etcd": ("CrashLoopBackOff", "back-off 20s restarting failed container=etcd")},
                       restarts=2, running=("syncer",))
    core = StartCore([crashing], clock)
    with pytest.raises(ContainerStartError) as info:
        wait_host_side_with_fake_sleep(core, Deadline(180, clock=clock), clock)
    assert not isinstance(info.value, ImageError)
    lines = str(info.value).splitlines()
    assert lines[0] == ("virtual cluster r cannot start: container etcd is in CrashLoopBackOff "
                        "(image registry.k8s.io/etcd:3.5.24-0)")
    assert lines[1] == "kubelet says: back-off 20s restarting failed container=etcd"
    assert lines[2].startswith("fix: the container starts and exits again: its last log lines below say why")
    assert lines[3] == "last 20 log lines of container etcd:"
    assert lines[4:24] == [f"  | etcd line {i}" for i in range(30, 50)]
    assert lines[24] == "pod r-0: phase Pending, node node1"
    assert core.pod_reads == 2  # the check, then the diagnostics: not retried


def test_wait_host_side_kubeconfig_advice_by_default(clock: FakeClock) -> None:
    from pytest_vcluster import ImageError

    core = StartCore([k8s_pod({"syncer": ("ImagePullBackOff", 'Back-off pulling image "x"')})], clock)
    with pytest.raises(ImageError) as info:
        wait_host_side_with_fake_sleep(core, Deadline(180, clock=clock), clock)
    text = str(info.value)
    assert "fix: push the image to a registry the host's nodes can pull from" in text
    assert clock.now < 1  # at once


def test_virtual_warnings_name_reason_object_and_count() -> None:
    from types import SimpleNamespace

    from kubernetes import client

    def event(reason: str, name: str, namespace: str | None, message: str, count: int, at: int) -> Any:
        import datetime

        return client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"e{at}"), reason=reason, message=message, count=count, type="Warning",
            involved_object=client.V1ObjectReference(kind="Pod", name=name, namespace=namespace),
            last_timestamp=datetime.datetime.fromtimestamp(at, tz=datetime.timezone.utc),
        )

    seen: dict[str, Any] = {}

    class VirtualCore:
        def list_event_for_all_namespaces(self, **kw: Any) -> Any:
            seen.update(kw)
            return SimpleNamespace(items=[
                event("SyncError", "web", "team", "Error syncing to host cluster: 403 Forbidden: quota", 3, 20),
                event("FailedScheduling", "db", "team", "0/1 nodes", 1, 10),
            ])

    assert _ready.virtual_warnings(VirtualCore()) == [
        "  FailedScheduling pod/team/db: 0/1 nodes",
        "  SyncError pod/team/web: Error syncing to host cluster: 403 Forbidden: quota (x3)",
    ]
    assert seen["field_selector"] == "type=Warning"
