"""What a failed reconcile means: try again soon, back off, or wait until the user changes the object.

``classify`` is the one place that decides; ``Syncer.process`` acts on its answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kube import ApiError


class Retry(Exception):
    """Not an error: try this key again after ``delay`` seconds (something it depends on is not there yet)."""

    def __init__(self, reason: str, delay: float = 1.0) -> None:
        super().__init__(reason)
        self.delay = delay


class Permanent(Exception):
    """The virtual object cannot be synced as it is (raised by parts for objects they cannot translate).
    Like a 422 from the host: reported on the object, tried again once the object changes."""


# Temporary: the same request may succeed later without anyone changing the virtual object.
#   0   the server was not reached (connection refused, TLS, timeout)
#   409 Conflict (stale resourceVersion, uid precondition) / AlreadyExists (the store lags behind)
#   410 Gone, 429 Too Many Requests, 5xx
#   404 NotFound (e.g. the host namespace or an owner is briefly missing; the store lags behind)
# Permanent: the host refuses this object as it is; retrying the same request gives the same answer.
#   400 Bad Request, 403 Forbidden (RBAC, admission, exceeded quota, LimitRange), 422 Invalid,
#   and anything else in 4xx that is not listed as temporary (405, 413, 415, ...).
TEMPORARY_STATUSES = frozenset({0, 404, 408, 409, 410, 425, 429})

RETRY, BACKOFF, PERMANENT = "retry", "backoff", "permanent"


@dataclass(frozen=True)
class Outcome:
    """``action``: RETRY (after ``delay``, no error), BACKOFF (temporary error: rate-limited retries) or
    PERMANENT (held until the virtual object changes). ``message``: what to tell the user ("" for RETRY)."""

    action: str
    delay: float = 0.0
    message: str = ""


def api_error_message(exc: ApiError) -> str:
    if exc.status == 0:
        return f"host API server not reached: {exc.reason}: {exc.message}".rstrip(": ")
    text = exc.message or exc.reason or "no message"
    return f"{exc.status} {exc.reason}: {text}" if exc.reason else f"{exc.status}: {text}"


def classify(exc: BaseException) -> Outcome:
    """How the syncer treats an exception raised while reconciling one key (a pure function)."""
    if isinstance(exc, Retry):
        return Outcome(RETRY, exc.delay)
    if isinstance(exc, Permanent):
        return Outcome(PERMANENT, message=str(exc))
    if isinstance(exc, ApiError):
        status = exc.status
        temporary = status in TEMPORARY_STATUSES or status >= 500 or not 400 <= status < 500
        return Outcome(BACKOFF if temporary else PERMANENT, message=api_error_message(exc))
    # A bug or an unexpected answer: back off (the next try may see different data) and say what it was.
    return Outcome(BACKOFF, message=f"{type(exc).__name__}: {exc}")
