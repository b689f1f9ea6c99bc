"""Waiting for a condition in a (virtual or host) cluster: the poll loop tests would otherwise write.

No pytest import: usable from any code. A timeout raises :class:`WaitTimeout` (a ``VClusterError``),
which names what was awaited, how long, and the last value or error seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import VClusterError

T = TypeVar("T")


class WaitTimeout(VClusterError):
    """A condition awaited with :func:`wait_until` / ``VCluster.wait`` did not come true in time."""


def _not_yet(exc: BaseException) -> str | None:
    """A description when ``exc`` means "not yet" (404, transient API or network trouble), else None."""
    from kubernetes.client.exceptions import ApiException

    from .ready import describe_error, is_transient

    if isinstance(exc, ApiException) and exc.status == 404:
        return describe_error(exc)
    if is_transient(exc):
        return describe_error(exc)
    return None


def _is_transient(exc: BaseException) -> bool:
    from .ready import is_transient

    return is_transient(exc)


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
    deadline = clock() + timeout
    last: Any = "not checked yet"
    last_error_was_transient = False
    while True:
        try:
            value = probe()
        except Exception as exc:  # noqa: BLE001 - sorted by _not_yet
            reason = _not_yet(exc)
            if reason is None:
                raise
            last = reason
            last_error_was_transient = _is_transient(exc)
        else:
            if value:
                return value
            last = value
            last_error_was_transient = False
        if clock() >= deadline:
            break
        sleep(interval)
    details = ""
    if isinstance(last, str) and last_error_was_transient:
        from .portforward import failing

        # a dropped connection through a port-forward hides its cause: name it
        details += "".join(f"\n{line}" for line in failing())
    if diagnose is not None:
        try:
            details = f"\n{diagnose()}"
        except Exception as exc:  # noqa: BLE001 - diagnostics must not hide the timeout
            details = f"\n(no diagnostics: {exc})"
    raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {last!r}{details}")
