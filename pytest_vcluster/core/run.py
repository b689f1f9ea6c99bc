"""Running the tools pytest-vcluster needs (kind, docker, pip): one runner, one way to find a tool.

No pytest import here.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Mapping

from .errors import MissingToolError, VClusterError

#: lines of a failed command's output a message quotes (its end: where the reason is)
OUTPUT_LINES = 15


def require(tool: str, message: str) -> str:
    """The path of ``tool`` on PATH; a :class:`MissingToolError` with ``message`` (what needs it, how to get it)
    when it is not there."""
    path = shutil.which(tool)
    if path is None:
        raise MissingToolError(message)
    return path


def run(
    command: list[str],
    *,
    what: str,
    timeout: float = 900,
    env: Mapping[str, str] | None = None,
    error: type[VClusterError] = VClusterError,
) -> str:
    """Run ``command``; its stdout. ``error`` (naming ``what``, the command, the exit code and the end of its
    output) when it cannot start, fails or does not finish within ``timeout`` seconds."""
    shown = shlex.join(command)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=dict(env) if env is not None else None)
    except subprocess.TimeoutExpired:
        raise error(f"{what}: `{shown}` did not finish within {timeout:.0f}s") from None
    except OSError as exc:
        raise error(f"{what}: cannot run `{shown}`: {exc}") from None
    if proc.returncode != 0:
        output = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-OUTPUT_LINES:])
        sep = "\n" if "\n" in output else " "
        raise error(f"{what}: `{shown}` failed (exit {proc.returncode}):{sep}{output}")
    return proc.stdout
