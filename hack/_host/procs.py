"""Processes and daemons, shared by hack/host (cluster.py) and hack/kind (kind.py).

Starting a daemon in a session of its own with its output in a log, finding it again by a pid file,
waiting for it to answer, stopping it, asking a docker daemon whether it answers, and finding what
daemons leave behind on the machine (runtime shims, cgroup trees).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ._util import HostError

CGROUP_ROOT = Path("/sys/fs/cgroup")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def pid_from(pidfile: Path) -> int | None:
    """The pid written in ``pidfile`` if that process runs, else None."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid`` (empty when it is gone, or a kernel thread)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def spawn(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> int:
    """Starts ``argv`` in a session of its own (so it and its children can be stopped as a group),
    its stdout and stderr appended to ``log``; returns its pid. ``env``: the whole environment
    (default: this process's)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as logf:
        p = subprocess.Popen(
            list(argv), stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None, start_new_session=True, close_fds=True,
        )
    return p.pid


def log_tail(log: Path, lines: int = 25) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_for(what: str, check: Callable[[], object], timeout: float, *, log: Path | None = None,
             running: Callable[[], object] | None = None) -> None:
    """Polls check() until it is truthy. ``log``: the log of the daemon awaited (named by its file), whose
    last lines a failure shows; ``running``: whether that daemon still runs (it ending fails at once)."""
    name = log.stem if log else None
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if log and running and not running():
            raise HostError(f"{name} exited while waiting for {what}; last log lines:\n{log_tail(log)}")
        try:
            if check():
                return
        except Exception as e:  # noqa: BLE001 - the last error is reported on timeout
            last = e
        time.sleep(0.3)
    tail = f"\nlast log lines of {name}:\n{log_tail(log)}" if log else ""
    raise HostError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last}){tail}")


def stop_pid(pid: int, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL after ``timeout``: to its process group when it leads one (started in a
    session of its own), else to the process alone (e.g. a daemon's child); a zombie counts as gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):  # not a group leader, or not ours to signal
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.1)


def docker_ping(sock: Path, timeout: float = 3) -> bool:
    """Whether the docker daemon at unix socket ``sock`` answers its /_ping."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(str(sock))
        s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        return b"200 OK" in s.recv(100)
    except OSError:
        return False
    finally:
        s.close()


def pids_of(programs: Iterable[str], marker: str) -> list[int]:
    """Processes whose program's name ends with one of ``programs`` and whose command line holds ``marker``
    (e.g. the runtime shims of a containerd, which outlive it, found by its socket's path)."""
    ends = tuple(programs)
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        cmd = cmdline(int(d.name))
        if cmd and cmd[0].endswith(ends) and any(marker in arg for arg in cmd):
            pids.append(int(d.name))
    return pids


def cgroups_named(names: Iterable[str]) -> list[Path]:
    """The cgroup trees ``names`` at the top of every (v1) controller that has them."""
    names = tuple(names)
    found = []
    for controller in CGROUP_ROOT.iterdir() if CGROUP_ROOT.exists() else []:
        found += [controller / n for n in names if (controller / n).is_dir()]
    return found


def remove_cgroups(trees: Iterable[Path]) -> None:
    """Removes the (empty) cgroups of each tree, deepest first; one still in use stays."""
    for base in trees:
        dirs = sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for d in [*dirs, base]:
            try:
                d.rmdir()
            except OSError:
                pass
