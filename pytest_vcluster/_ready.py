"""Waiting until a virtual cluster is usable, and explaining why when it is not.

Ready means, in order: pod ``R-0`` is Ready, Secret ``vc-R`` exists, the virtual API server
answers, and ServiceAccount ``default/default`` exists in the virtual cluster.
Transient errors (connection refused/reset, TLS EOF, 429, 5xx) are retried; a 4xx is a
real error and is raised at once. Everything is bounded by one deadline.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import tenacity

from ._errors import NotReadyError

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
MAX_EVENTS = 30


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: network trouble, 429 and 5xx. False for 4xx and bugs."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        status = exc.status or 0
        return status == 0 or status == 429 or status >= 500
    try:
        import urllib3.exceptions

        if isinstance(exc, urllib3.exceptions.HTTPError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, (OSError, ssl.SSLError, socket.timeout, http.client.HTTPException, EOFError))


def describe_error(exc: BaseException) -> str:
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        text = f"HTTP {exc.status} {exc.reason}".strip()
        message = _status_message(exc.body)
        return f"{text}: {message}" if message else text
    reason = getattr(exc, "reason", None)
    if reason is not None:
        return f"{type(exc).__name__}: {reason}"
    return f"{type(exc).__name__}: {exc}"


def _status_message(body: Any) -> str | None:
    """The ``message`` of a Kubernetes ``Status`` response body, if any."""
    import json

    if not body:
        return None
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return None
    message = data.get("message") if isinstance(data, dict) else None
    return str(message) if message else None


class Deadline:
    """One time budget shared by all the conditions awaited for one cluster."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self.start = clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    @property
    def remaining(self) -> float:
        return max(0.0, self.timeout - self.elapsed)


class ConditionTimeout(Exception):
    def __init__(self, condition: str, waited: float, last: str) -> None:
        super().__init__(f"{condition}: not met after {waited:.1f}s")
        self.condition = condition
        self.waited = waited
        self.last = last


def wait_for(
    condition: str,
    check: Callable[[], bool],
    deadline: Deadline,
    *,
    state: Callable[[], str] | None = None,
    max_wait: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Call ``check`` until it returns True; retry transient errors; stop at the deadline.

    Raises :class:`ConditionTimeout` (with the last state or error) when time runs out, and
    re-raises a non-transient error at once.
    """
    last: dict[str, str] = {"value": "not checked yet"}

    def attempt() -> bool:
        try:
            ok = check()
        except BaseException as exc:
            last["value"] = describe_error(exc)
            raise
        last["value"] = state() if state is not None else "condition not met"
        return ok

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(max(deadline.remaining, 0.0)),
        wait=tenacity.wait_exponential(multiplier=0.2, min=0.2, max=max_wait),
        retry=tenacity.retry_if_exception(is_transient) | tenacity.retry_if_result(lambda ok: not ok),
        sleep=sleep,
        reraise=False,
    )
    try:
        retrying(attempt)
    except tenacity.RetryError:
        raise ConditionTimeout(condition, deadline.elapsed, last["value"]) from None


# --------------------------------------------------------------------------- checks on the host


def pod_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod is not None and pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


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


def container_logs(core_v1: Any, namespace: str, pod: Any, tail: int = LOG_TAIL_LINES) -> list[str]:
    lines: list[str] = []
    if pod is None:
        return lines
    containers = list(pod.spec.init_containers or []) + list(pod.spec.containers or [])
    for container in containers:
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
        pod = core_v1.read_namespaced_pod(f"{release}-0", namespace, _request_timeout=10)
    except ApiException as exc:
        lines.append(f"pod {release}-0: {describe_error(exc)}")
    except Exception as exc:  # noqa: BLE001
        lines.append(f"pod {release}-0: cannot read: {describe_error(exc)}")
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


def wait_host_side(core_v1: Any, namespace: str, release: str, deadline: Deadline) -> Any:
    """Wait for pod ``R-0`` Ready and Secret ``vc-R``; returns the secret."""
    from kubernetes.client.exceptions import ApiException

    pod_name = f"{release}-0"
    seen: dict[str, Any] = {"pod": None, "secret": None}

    def check_pod() -> bool:
        try:
            seen["pod"] = core_v1.read_namespaced_pod(pod_name, namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                seen["pod"] = None
                return False
            raise
        return pod_ready(seen["pod"])

    def check_secret() -> bool:
        try:
            seen["secret"] = core_v1.read_namespaced_secret(f"vc-{release}", namespace, _request_timeout=10)
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
    )
    wait_for(f"secret vc-{release} in host namespace {namespace}", check_secret, deadline)
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
