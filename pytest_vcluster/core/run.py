"""Running the tools pytest-vcluster needs to completion (kind, docker, pip, kubectl, helm, an image loader): one
runner, one way to find a tool.

Long-running processes (a port-forward) are not run here. No pytest import here.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Mapping

from .errors import CommandError, MissingToolError, VClusterError

#: lines of a failed command's output a message quotes (its end: where the reason is)
OUTPUT_LINES = 15


def require(tool: str, message: str) -> str:
    """The path of ``tool`` on PATH; a :class:`MissingToolError` with ``message`` (what needs it, how to get it)
    when it is not there."""
    path = shutil.which(tool)
    if path is None:
        raise MissingToolError(message)
    return path


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")


def _tail(output: str) -> str:
    """The end of ``output`` for a message: after a space when it is one line, on lines of its own otherwise."""
    text = "\n".join(output.strip().splitlines()[-OUTPUT_LINES:]) or "(no output)"
    return ("\n" if "\n" in text else " ") + text


def _error(error: type[VClusterError], message: str, command: list[str], returncode: int | None,
           stdout: str = "", stderr: str = "") -> VClusterError:
    """``error(message)``; a :class:`CommandError` also gets the command, its exit code and output."""
    if issubclass(error, CommandError):
        return error(message, command=command, returncode=returncode, stdout=stdout, stderr=stderr)
    return error(message)


def complete(
    command: list[str],
    *,
    what: str = "",
    input: str | None = None,
    timeout: float = 900,
    env: Mapping[str, str] | None = None,
    error: type[VClusterError] = CommandError,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to its end (``input`` on its stdin); the completed process, whatever its exit code.

    ``error`` (naming ``what`` when given, and the command) when it cannot start or does not finish within
    ``timeout`` seconds (with the end of what it wrote to stderr by then)."""
    shown = shlex.join(command)
    prefix = f"{what}: " if what else ""
    try:
        return subprocess.run(command, input=input, capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=dict(env) if env is not None else None)
    except subprocess.TimeoutExpired as exc:
        out, err = _text(exc.stdout), _text(exc.stderr)
        said = f":{_tail(err)}" if err.strip() else ""
        raise _error(error, f"{prefix}`{shown}` did not finish within {timeout:.0f}s{said}", command, None,
                     out, err) from None
    except OSError as exc:
        raise _error(error, f"{prefix}cannot run `{shown}`: {exc}", command, None) from None


def run(
    command: list[str],
    *,
    what: str = "",
    input: str | None = None,
    check: bool = True,
    timeout: float = 900,
    env: Mapping[str, str] | None = None,
    error: type[VClusterError] = CommandError,
) -> str:
    """Run ``command`` to its end (``input`` on its stdin); its stdout.

    ``error`` when it cannot start or does not finish within ``timeout`` seconds (see :func:`complete`), or, with
    ``check``, exits non-zero: ``[what: ]`command` failed (exit N): <the end of stderr, else of stdout>``. A
    :class:`CommandError` (the default) also carries the command, the exit code, stdout and stderr."""
    proc = complete(command, what=what, input=input, timeout=timeout, env=env, error=error)
    if check and proc.returncode != 0:
        prefix = f"{what}: " if what else ""
        raise _error(error, f"{prefix}`{shlex.join(command)}` failed (exit {proc.returncode}):"
                            f"{_tail(proc.stderr or proc.stdout)}",
                     command, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout
