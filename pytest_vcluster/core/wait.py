"""Waiting for a condition: the one poll loop of the package, and the waits built on it.

:func:`poll` calls a check until it returns something truthy, within a :class:`Deadline`: errors that mean
"not yet" (transient API or network trouble, and whatever the caller adds, e.g. a 404) are remembered and
retried, any other error is raised at once, and the pause between attempts is the caller's (fixed or
growing). On it:

* :func:`wait_until` (public, also ``VCluster.wait``): a probe's truthy value; :class:`WaitTimeout` naming
  what was awaited, the last value or error, why a port-forward could not open its stream, and ``diagnose()``;
* :func:`wait_for`: one readiness condition of a cluster, sharing its deadline with the others
  (:class:`ConditionTimeout`, turned into ``NotReadyError`` by the caller);
* the waits for deleted namespaces (``cleanup.wait_namespaces_gone``) and for a reset's probes (``recycle``).

No pytest import: usable from any code.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import ConditionTimeout, WaitTimeout

T = TypeVar("T")

__all__ = ["ConditionTimeout", "Deadline", "Expired", "WaitTimeout", "describe_error", "fixed", "growing",
           "is_transient", "poll", "wait_for", "wait_until"]


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
    """One line for an error: ``HTTP 404 Not Found: <the Status message>``, or ``Type: reason``."""
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


def is_not_found(exc: BaseException) -> bool:
    from kubernetes.client.exceptions import ApiException

    return isinstance(exc, ApiException) and exc.status == 404


class Deadline:
    """One time budget, shared by all the conditions awaited for one thing."""

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

    @property
    def passed(self) -> bool:
        return self.clock() >= self.start + self.timeout


class Expired(Exception):
    """:func:`poll` ran out of time; ``last`` is the last value or error description seen, ``transient`` whether
    it was a transient error."""

    def __init__(self, last: Any, *, waited: float, transient: bool) -> None:
        super().__init__(f"not met after {waited:.1f}s (last seen: {last!r})")
        self.last = last
        self.waited = waited
        self.transient = transient


#: the pause before attempt ``n + 1`` (``n`` from 1), given the time left
Pause = Callable[[int, float], float]


def fixed(interval: float) -> Pause:
    """The same pause every time."""
    return lambda _attempt, _left: interval


def growing(first: float, factor: float, most: float, *, within_deadline: bool = False) -> Pause:
    """``first``, then each pause ``factor`` times the one before, at most ``most`` (and, ``within_deadline``,
    never past the deadline)."""

    def pause(attempt: int, left: float) -> float:
        length = min(first * factor ** (attempt - 1), most)
        return min(length, left) if within_deadline else length

    return pause


def poll(
    check: Callable[[], T],
    deadline: Deadline,
    *,
    pause: Pause,
    not_yet: Callable[[BaseException], bool] = is_transient,
    seen: Callable[[T], Any] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    An error for which ``not_yet(error)`` is true counts as "not yet" (its :func:`describe_error` is what was
    seen); any other error is raised at once. A falsy value is seen as ``seen(value)`` (the value itself
    without ``seen``). When the deadline has passed after an attempt: :class:`Expired` with what was last seen.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            value = check()
        except Exception as exc:  # noqa: BLE001 - sorted by not_yet
            if not not_yet(exc):
                raise
            last: Any = describe_error(exc)
            transient = is_transient(exc)
        else:
            if value:
                return value
            last = seen(value) if seen is not None else value
            transient = False
        if deadline.passed:
            raise Expired(last, waited=deadline.elapsed, transient=transient)
        (sleep or time.sleep)(pause(attempt, deadline.remaining))


def wait_for(
    condition: str,
    check: Callable[[], bool],
    deadline: Deadline,
    *,
    state: Callable[[], str] | None = None,
    max_wait: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Call ``check`` until it returns True; retry transient errors (pauses from 0.2 s doubling to ``max_wait``);
    stop at the deadline with :class:`ConditionTimeout` (the last state, or the last error); re-raise any other
    error at once."""
    try:
        poll(check, deadline, pause=growing(0.2, 2, max_wait), sleep=sleep,
             seen=lambda _ok: state() if state is not None else "condition not met")
    except Expired as exc:
        raise ConditionTimeout(condition, deadline.elapsed, str(exc.last)) from None


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.5,
    diagnose: Callable[[], str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``probe`` until it returns something truthy, and return that.

    API 404s and transient errors (connection trouble, 429, 5xx) count as "not yet"; any other error
    is raised at once. On timeout: :class:`WaitTimeout` naming ``what``, the last value or error, why a
    port-forward could not open its stream (when the last error was a dropped connection) and what
    ``diagnose()`` reports.
    """
    try:
        value = poll(probe, Deadline(timeout, clock), pause=fixed(interval), sleep=sleep,
                     not_yet=lambda exc: is_not_found(exc) or is_transient(exc))
    except Expired as exc:
        details = ""
        if isinstance(exc.last, str) and exc.transient:
            from .portforward import failing

            # a dropped connection through a port-forward hides its cause: name it
            details += "".join(f"\n{line}" for line in failing())
        if diagnose is not None:
            try:
                details += f"\n{diagnose()}"
            except Exception as error:  # noqa: BLE001 - diagnostics must not hide the timeout
                details += f"\n(no diagnostics: {error})"
        raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {exc.last!r}{details}") \
            from None
    assert value is not None  # poll returns truthy values only
    return value
