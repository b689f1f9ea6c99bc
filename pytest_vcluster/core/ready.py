"""Waiting until a virtual cluster is usable, and explaining why when it is not.

Ready means, in order: pod ``R-0`` is Ready, Secret ``vc-R`` exists, the virtual API server
answers, and ServiceAccount ``default/default`` exists in the virtual cluster.
Transient errors (connection refused/reset, TLS EOF, 429, 5xx) are retried; a 4xx is a
real error and is raised at once. Everything is bounded by one deadline.

A pod that cannot become ready by itself fails at once instead of at the deadline: a container
(or init container) waiting with ImagePullBackOff, InvalidImageName or ErrImageNeverPull, with
ErrImagePull for longer than :data:`IMAGE_PULL_GRACE`, or in CrashLoopBackOff after
:data:`CRASH_LOOP_RESTARTS` restarts raises :class:`ImageError` / :class:`ContainerStartError`
naming the container, the image, the kubelet's message and the fix for the host's kind.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .contract import contract
from .errors import ConditionTimeout, ContainerStartError, ImageError, NotReadyError
from .wait import Deadline, describe_error, wait_for

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
MAX_EVENTS = 30
#: the longest pause between two reads of pod ``R-0`` while waiting for it to be Ready (one cheap GET;
#: the back-off of the other waits, 2 s, would leave a Ready pod unseen for 1 s on average)
POD_MAX_WAIT = 0.5


# --------------------------------------------------------------------------- checks on the host


def _conditions(pod: Any) -> list[Any]:
    return (pod.status.conditions if pod is not None and pod.status else None) or []


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in _conditions(pod))


def cluster_ready(pod: Any) -> bool:
    """Pod ``R-0`` Ready, or its syncer has set :data:`contract.CONDITION_CLUSTER_READY` and the pod has
    not turned unready since: the cluster was ready (first sync, ``default/default``, DNS) up to a
    readiness-probe period before the kubelet says so. The syncer's mark stays once set; a Ready=False
    newer than it (a pod that was Ready and broke) is not ready."""
    if pod_ready(pod):
        return True
    conditions = {c.type: c for c in _conditions(pod)}
    mark = conditions.get(contract.CONDITION_CLUSTER_READY)
    if mark is None or mark.status != "True":
        return False
    unready = conditions.get("Ready")
    since = getattr(unready, "last_transition_time", None)
    marked = getattr(mark, "last_transition_time", None)
    return since is None or marked is None or since <= marked


def pod_state(pod: Any) -> str:
    """One line: phase, unready containers and their waiting/terminated reasons."""
    if pod is None:
        return "pod not created yet"
    status = pod.status
    parts = [f"phase {status.phase if status else 'unknown'}"]
    for cs in (status.container_statuses or []) if status else []:
        if cs.ready:
            continue
        detail = "not ready"
        if cs.state and cs.state.waiting:
            detail = f"waiting: {cs.state.waiting.reason or ''} {cs.state.waiting.message or ''}".strip()
        elif cs.state and cs.state.terminated:
            detail = f"terminated: {cs.state.terminated.reason or ''} (exit {cs.state.terminated.exit_code})"
        elif cs.state and cs.state.running:
            detail = "running, not ready"
        parts.append(f"container {cs.name} {detail}")
    return "; ".join(parts)


def describe_pod(pod: Any) -> list[str]:
    if pod is None:
        return ["pod: not found"]
    status = pod.status
    lines = [f"pod {pod.metadata.name}: phase {status.phase if status else 'unknown'}, node {pod.spec.node_name}"]
    for c in (status.conditions or []) if status else []:
        why = f" ({c.reason}: {c.message})" if c.reason or c.message else ""
        lines.append(f"  condition {c.type}={c.status}{why}")
    statuses = list((status.init_container_statuses or []) if status else []) + list(
        (status.container_statuses or []) if status else []
    )
    for cs in statuses:
        state = "unknown"
        if cs.state and cs.state.running:
            state = f"running since {cs.state.running.started_at}"
        elif cs.state and cs.state.waiting:
            state = f"waiting ({cs.state.waiting.reason}: {cs.state.waiting.message})"
        elif cs.state and cs.state.terminated:
            t = cs.state.terminated
            state = f"terminated ({t.reason}, exit {t.exit_code}: {t.message})"
        lines.append(f"  container {cs.name}: ready={cs.ready} restarts={cs.restart_count} {state}")
    return lines


def _event_time(event: Any) -> float:
    for attr in ("last_timestamp", "event_time", "first_timestamp"):
        value = getattr(event, attr, None)
        if value is not None:
            try:
                return float(value.timestamp())
            except (AttributeError, ValueError, OSError):
                continue
    meta = getattr(event, "metadata", None)
    created = getattr(meta, "creation_timestamp", None)
    return float(created.timestamp()) if created is not None else 0.0


def namespace_events(core_v1: Any, namespace: str, limit: int = MAX_EVENTS) -> list[str]:
    events = core_v1.list_namespaced_event(namespace).items
    events.sort(key=_event_time)
    lines = []
    for ev in events[-limit:]:
        obj = ev.involved_object
        count = f" (x{ev.count})" if ev.count and ev.count > 1 else ""
        lines.append(f"  {ev.type} {ev.reason} {obj.kind.lower()}/{obj.name}: {(ev.message or '').strip()}{count}")
    return lines or ["  (no events)"]


def virtual_warnings(virtual_core_v1: Any, limit: int = MAX_EVENTS) -> list[str]:
    """Warning events inside the virtual cluster, newest last: the syncer's ``SyncError`` events say why
    an object was not copied to the host (as ``kubectl describe`` shows them)."""
    events = virtual_core_v1.list_event_for_all_namespaces(field_selector="type=Warning", _request_timeout=10).items
    events.sort(key=_event_time)
    lines = []
    for ev in events[-limit:]:
        obj = ev.involved_object
        where = f"{obj.namespace}/" if obj.namespace else ""
        count = f" (x{ev.count})" if ev.count and ev.count > 1 else ""
        lines.append(f"  {ev.reason} {obj.kind.lower()}/{where}{obj.name}: {(ev.message or '').strip()}{count}")
    return lines or ["  (none)"]


def container_logs(
    core_v1: Any,
    namespace: str,
    pod: Any,
    tail: int = LOG_TAIL_LINES,
    *,
    only: Collection[str] | None = None,
) -> list[str]:
    """The last ``tail`` log lines of each container of ``pod`` (of those named in ``only``, if given)."""
    lines: list[str] = []
    if pod is None:
        return lines
    containers = list(pod.spec.init_containers or []) + list(pod.spec.containers or [])
    for container in containers:
        if only is not None and container.name not in only:
            continue
        try:
            text = core_v1.read_namespaced_pod_log(
                pod.metadata.name, namespace, container=container.name, tail_lines=tail, _request_timeout=10
            )
        except Exception as exc:  # noqa: BLE001 - diagnostics are best effort
            text = f"(no log: {describe_error(exc)})"
        lines.append(f"last {tail} log lines of container {container.name}:")
        lines.extend(f"  | {line}" for line in (text or "(empty)").rstrip("\n").splitlines()[-tail:])
    return lines


def diagnostics(core_v1: Any, namespace: str, release: str) -> str:
    """Pod status and conditions, namespace events and container log tails (best effort)."""
    from kubernetes.client.exceptions import ApiException

    lines: list[str] = []
    pod = None
    try:
        pod = core_v1.read_namespaced_pod(contract.control_plane_pod(release), namespace, _request_timeout=10)
    except ApiException as exc:
        lines.append(f"pod {contract.control_plane_pod(release)}: {describe_error(exc)}")
    except Exception as exc:  # noqa: BLE001
        lines.append(f"pod {contract.control_plane_pod(release)}: cannot read: {describe_error(exc)}")
    if pod is not None:
        lines.extend(describe_pod(pod))
    lines.append(f"events in host namespace {namespace}:")
    try:
        lines.extend(namespace_events(core_v1, namespace))
    except Exception as exc:  # noqa: BLE001
        lines.append(f"  (cannot list events: {describe_error(exc)})")
    try:
        lines.extend(container_logs(core_v1, namespace, pod))
    except Exception as exc:  # noqa: BLE001
        lines.append(f"(cannot read logs: {describe_error(exc)})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- pods that cannot start

#: waiting reasons saying a container's image cannot be had or used
IMAGE_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CRASH_LOOP = "CrashLoopBackOff"
#: ErrImagePull may be a passing registry hiccup: it counts once seen this long (ImagePullBackOff counts at once)
IMAGE_PULL_GRACE = 10.0
#: CrashLoopBackOff counts from this many restarts on: one early exit (e.g. a component that gave up
#: waiting for the API server on a busy host) is followed by a 10 s back-off and then usually works
CRASH_LOOP_RESTARTS = 2
#: the chart value of each container's image
CHART_IMAGE_VALUES = {
    "etcd": "controlPlane.etcd.image",
    "kube-apiserver": "controlPlane.apiServer.image",
    "kube-controller-manager": "controlPlane.controllerManager.image",
    "syncer": "syncer.image",
    "coredns": "coredns.image",
}


@dataclass(frozen=True)
class Problem:
    """Why a container of the pod cannot start: its name, image, waiting reason and the kubelet's message."""

    container: str
    image: str
    reason: str
    message: str
    init: bool = False

    @property
    def is_image(self) -> bool:
        return self.reason in IMAGE_REASONS


def _statuses(pod: Any) -> list[tuple[Any, bool]]:
    """``(container status, is init container)`` of all containers, init containers first."""
    status = pod.status if pod is not None else None
    if status is None:
        return []
    return [(cs, True) for cs in status.init_container_statuses or []] + [
        (cs, False) for cs in status.container_statuses or []
    ]


def _waiting_reason(cs: Any) -> str | None:
    waiting = cs.state.waiting if cs.state is not None else None
    return waiting.reason if waiting is not None else None


def _image_of(pod: Any, cs: Any, init: bool) -> str:
    """The image as the pod spec names it (what must be loaded or pushed), else as the status names it."""
    spec = pod.spec
    containers = (spec.init_containers if init else spec.containers) if spec is not None else None
    for container in containers or []:
        if container.name == cs.name and container.image:
            return str(container.image)
    return str(cs.image or "(unknown image)")


def pull_errors_seen(pod: Any, now: float, first_seen: Mapping[str, float]) -> dict[str, float]:
    """Since when each container now waiting with ErrImagePull has been seen so (a new mapping).

    Containers no longer in ErrImagePull are dropped, so their grace starts anew if it comes back.
    """
    return {
        cs.name: first_seen.get(cs.name, now)
        for cs, _ in _statuses(pod)
        if _waiting_reason(cs) == "ErrImagePull"
    }


def image_problem(
    pod: Any, now: float, first_seen: Mapping[str, float], *, grace: float = IMAGE_PULL_GRACE
) -> Problem | None:
    """The first container (init containers first) that will not start by itself, or None.

    ``first_seen`` maps container names to the time their ErrImagePull was first seen (see
    :func:`pull_errors_seen`); ErrImagePull counts only once older than ``grace``.
    """
    for cs, init in _statuses(pod):
        reason = _waiting_reason(cs)
        if reason == "ErrImagePull":
            since = first_seen.get(cs.name)
            if since is None or now - since <= grace:
                continue
        elif reason == CRASH_LOOP:
            if (cs.restart_count or 0) < CRASH_LOOP_RESTARTS:
                continue
        elif reason not in IMAGE_REASONS:
            continue
        message = (cs.state.waiting.message or "").strip()
        return Problem(cs.name, _image_of(pod, cs, init), str(reason), message, init)
    return None


def fix_for(provider: str, kind_cluster: str | None, image: str, reason: str, *, container: str | None = None) -> str:
    """What to do about ``reason`` for ``image`` on a host of kind ``provider`` (``kind`` or ``kubeconfig``)."""
    if reason == CRASH_LOOP:
        return (
            "the container starts and exits again: its last log lines below say why "
            "(often a wrong chart value or an image built for something else)"
        )
    value = CHART_IMAGE_VALUES.get(container or "syncer", "syncer.image")
    if value == "syncer.image":
        other = "pass --vcluster-syncer-image=REF"
    else:
        other = f"set --vcluster-set {value}.repository=REPO --vcluster-set {value}.tag=TAG"
    if reason == "InvalidImageName":
        return f"{image} is not a valid image reference: {other} with a valid one"
    if provider == "kind":
        return (
            f"load the image into the kind cluster with "
            f"`kind load docker-image {image} --name {kind_cluster or 'kind'}` "
            f"(the plugin itself loads its syncer image), or {other} for an image the nodes can pull"
        )
    build = ""
    if value == "syncer.image":
        build = " (build and push it with `python -m pytest_vcluster syncer-image --push REF`)"
    return (
        f"push the image to a registry the host's nodes can pull from and {other}{build}, "
        "or pass --vcluster-image-loader=COMMAND to let the plugin load it"
    )


def container_start_error(name: str, problem: Problem, fix: str, log_tail: list[str], details: str) -> NotReadyError:
    """:class:`ImageError` (image reasons) or :class:`ContainerStartError` (CrashLoopBackOff); first line is short."""
    what = f"{'init container' if problem.init else 'container'} {problem.container}"
    lines = [
        f"virtual cluster {name} cannot start: {what} is in {problem.reason} (image {problem.image})",
        f"kubelet says: {problem.message or '(nothing)'}",
        f"fix: {fix}",
        *log_tail,
        details,
    ]
    cls = ImageError if problem.is_image else ContainerStartError
    return cls("\n".join(lines))


def _start_error(
    core_v1: Any, namespace: str, release: str, pod: Any, problem: Problem, provider: str, kind_cluster: str | None
) -> NotReadyError:
    fix = fix_for(provider, kind_cluster, problem.image, problem.reason, container=problem.container)
    log_tail: list[str] = []
    if problem.reason == CRASH_LOOP:
        try:
            log_tail = container_logs(core_v1, namespace, pod, only=[problem.container])
        except Exception as exc:  # noqa: BLE001 - diagnostics are best effort
            log_tail = [f"(cannot read the log of container {problem.container}: {describe_error(exc)})"]
    return container_start_error(release, problem, fix, log_tail, diagnostics(core_v1, namespace, release))


def wait_host_side(
    core_v1: Any,
    namespace: str,
    release: str,
    deadline: Deadline,
    *,
    provider: str = "kubeconfig",
    kind_cluster: str | None = None,
) -> Any:
    """Wait for pod ``R-0`` Ready and Secret ``vc-R``; returns the secret.

    Raises :class:`ImageError` / :class:`ContainerStartError` at once (not at the deadline) when a
    container cannot start (see :func:`image_problem`); ``provider`` and ``kind_cluster`` choose the
    advice in its message.
    """
    from kubernetes.client.exceptions import ApiException

    pod_name = contract.control_plane_pod(release)
    secret_name = contract.kubeconfig_secret_name(release)
    seen: dict[str, Any] = {"pod": None, "secret": None, "pulls": {}}

    def check_pod() -> bool:
        try:
            seen["pod"] = core_v1.read_namespaced_pod(pod_name, namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                seen["pod"] = None
                return False
            raise
        pod = seen["pod"]
        if cluster_ready(pod):
            return True
        now = deadline.clock()
        seen["pulls"] = pull_errors_seen(pod, now, seen["pulls"])
        problem = image_problem(pod, now, seen["pulls"])
        if problem is not None:
            raise _start_error(core_v1, namespace, release, pod, problem, provider, kind_cluster)
        return False

    def check_secret() -> bool:
        try:
            seen["secret"] = core_v1.read_namespaced_secret(secret_name, namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    wait_for(
        f"pod {pod_name} in host namespace {namespace} to be Ready",
        check_pod,
        deadline,
        state=lambda: pod_state(seen["pod"]),
        max_wait=POD_MAX_WAIT,
    )
    wait_for(f"secret {secret_name} in host namespace {namespace}", check_secret, deadline)
    return seen["secret"]


def wait_virtual_side(virtual_api: Any, server: str, deadline: Deadline) -> None:
    """Wait for the virtual API server to answer and ServiceAccount ``default/default`` to exist."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    def check_api() -> bool:
        client.VersionApi(virtual_api).get_code(_request_timeout=10)
        return True

    def check_sa() -> bool:
        try:
            client.CoreV1Api(virtual_api).read_namespaced_service_account("default", "default", _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    wait_for(f"the virtual API server (via {server}) to answer", check_api, deadline)
    wait_for("ServiceAccount default/default in the virtual cluster", check_sa, deadline)


def not_ready_error(name: str, timeout: float, exc: ConditionTimeout, details: str) -> NotReadyError:
    return NotReadyError(
        f"virtual cluster {name} was not ready within {timeout:.0f}s: "
        f"waited {exc.waited:.1f}s for {exc.condition}\n"
        f"last state: {exc.last}\n"
        f"{details}\n"
        "Raise the limit with --vcluster-timeout or @pytest.mark.vcluster(timeout=...) if the host is just slow."
    )
