"""Once per run, whichever process gets there first: the one "run once" of the package.

xdist workers (and the controller) share a directory; a step that must happen once per run (build the
syncer image, remove dead runs' namespaces, prepare a template) runs under a file lock in the first process
that takes it, which leaves its result in a file named after the run. The others, once they get the lock,
read that file. A failure leaves an error file instead, and every later process raises the same message at
once, without trying again. :func:`locked` is the lock alone (the kind host's set-up and tear-down).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from .errors import VClusterError

T = TypeVar("T")


@contextlib.contextmanager
def locked(lock: Path, timeout: float) -> Iterator[None]:
    """Hold the file lock ``lock`` (created with its directory), waiting at most ``timeout`` seconds for it."""
    from filelock import FileLock

    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock), timeout=timeout):
        yield


@dataclass(frozen=True)
class Done(Generic[T]):
    """What :func:`run_once` returns: the step's ``value``, and whether this process ``made`` it."""

    value: T
    made: bool


def run_once(
    shared: Path,
    step: str,
    run_id: str,
    *,
    make: Callable[[Path], T],
    read: Callable[[Path], T],
    timeout: float,
    result: str = "done",
    failed: Callable[[str], Exception] = VClusterError,
    catch: tuple[type[BaseException], ...] = (VClusterError,),
    describe: Callable[[BaseException], str] = str,
    wrap: bool = False,
) -> Done[T]:
    """Under lock ``shared/<step>.lock``: raise ``failed(<message>)`` when ``shared/<step>-<run_id>.error`` exists,
    return ``read(path)`` when the result file ``shared/<step>-<run_id>.<result>`` exists, else ``make(path)``
    (which writes the result file) and return its value (``made``).

    An error of ``catch`` raised by ``make`` writes ``describe(error)`` to the error file and is raised again;
    ``wrap``: ``failed(<message>)`` is raised instead, from it.
    """
    path = shared / f"{step}-{run_id}.{result}"
    error = shared / f"{step}-{run_id}.error"
    with locked(shared / f"{step}.lock", timeout):
        if error.exists():  # another process tried already: the same error, at once
            raise failed(error.read_text())
        if path.exists():
            return Done(read(path), made=False)
        try:
            value = make(path)
        except catch as exc:
            message = describe(exc)
            error.write_text(message)
            if wrap:
                raise failed(message) from exc
            raise
        return Done(value, made=True)
