"""hack/_host/procs.py (the daemons of hack/host and hack/kind) and the Debian roots both make
(_util.debootstrap_tarball), without a host: real short-lived processes, a fake debootstrap."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import _util, procs  # noqa: E402
from _host._util import HostError  # noqa: E402


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while procs.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_spawned_daemon_is_found_by_its_pid_file_logs_and_stops(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "sleeper.log"
    pid = procs.spawn(["sh", "-c", "echo started; exec sleep 60"], log, env={"PATH": os.environ["PATH"]})
    pidfile = tmp_path / "sleeper.pid"
    pidfile.write_text(str(pid))
    assert procs.pid_from(pidfile) == pid
    assert os.getsid(pid) == pid  # a session of its own: stop_pid signals its group
    procs.wait_for("its first line", lambda: "started" in log.read_text(), 10, log=log, running=lambda: True)
    assert procs.log_tail(log) == "started"
    procs.stop_pid(pid, timeout=5)
    _wait_gone(pid)
    assert procs.pid_from(pidfile) is None
    assert procs.pid_from(tmp_path / "missing.pid") is None


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not procs.alive(child.pid)
    child.wait()


def test_waiting_for_a_daemon_that_exits_fails_at_once_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "dockerd.log"
    pid = procs.spawn(["sh", "-c", "echo cannot start: address in use; exit 3"], log)
    started = time.monotonic()
    with pytest.raises(HostError, match="dockerd exited while waiting for an answer") as err:
        procs.wait_for("an answer", lambda: False, 30, log=log, running=lambda: procs.alive(pid))
    assert time.monotonic() - started < 10
    assert "cannot start: address in use" in str(err.value)


def test_a_timeout_names_what_was_awaited_the_last_error_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "etcd.log"
    log.write_text("".join(f"line {i}\n" for i in range(40)))

    def check() -> bool:
        raise ConnectionRefusedError("refused")

    with pytest.raises(HostError) as err:
        procs.wait_for("etcd /health", check, 0.5, log=log, running=lambda: True)
    text = str(err.value)
    assert text.startswith("timed out after 0s waiting for etcd /health (last error: refused)")
    assert "last log lines of etcd:" in text and "line 39" in text and "line 14" not in text
    assert procs.log_tail(tmp_path / "none.log") == "(no log)"


def test_a_docker_socket_that_is_not_there_does_not_answer(tmp_path: Path) -> None:
    assert procs.docker_ping(tmp_path / "docker.sock") is False


def test_processes_are_found_by_program_and_marker(tmp_path: Path) -> None:
    marker = str(tmp_path / "containerd.sock")
    argv = ["/bin/sh", "-c", "sleep 60; true", marker]  # the shell stays, with the marker on its command line
    pid = procs.spawn(argv, tmp_path / "sh.log")
    try:
        # Popen returns once the exec has begun (the error pipe closes): for a moment after, the kernel
        # has not yet set the new command line and /proc/PID/cmdline reads empty (seen on a loaded machine).
        procs.wait_for("the shell's command line", lambda: procs.cmdline(pid) == argv, timeout=10)
        assert pid in procs.pids_of(["containerd-shim-runc-v2", "/sh"], marker)
        assert pid not in procs.pids_of(["containerd-shim-runc-v2"], marker)
        assert pid not in procs.pids_of(["/sh"], str(tmp_path / "other.sock"))
        assert procs.cmdline(pid) == argv
    finally:
        procs.stop_pid(pid, timeout=5)


def test_cgroup_trees_are_found_by_name_and_removed_deepest_first(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(procs, "CGROUP_ROOT", tmp_path)
    for controller in ("memory", "cpu"):
        (tmp_path / controller / "kubepods" / "burstable" / "pod1").mkdir(parents=True)
    (tmp_path / "memory" / "kubepods.slice").mkdir()
    (tmp_path / "memory" / "system.slice").mkdir()
    busy = tmp_path / "cpu" / "kubepods" / "besteffort"
    busy.mkdir()
    (busy / "tasks").write_text("1\n")  # a cgroup in use: rmdir fails, it stays
    trees = procs.cgroups_named(["kubepods", "kubepods.slice"])
    assert sorted(str(t.relative_to(tmp_path)) for t in trees) == [
        "cpu/kubepods", "memory/kubepods", "memory/kubepods.slice"]
    procs.remove_cgroups(trees)
    assert not (tmp_path / "memory" / "kubepods").exists() and not (tmp_path / "memory" / "kubepods.slice").exists()
    assert busy.exists() and not (tmp_path / "cpu" / "kubepods" / "burstable").exists()
    assert (tmp_path / "memory" / "system.slice").exists()


FAKE_DEBOOTSTRAP = """#!/bin/sh
# fake debootstrap: $1 --variant, $2 --include=..., $3 suite, $4 target
set -e
mkdir -p "$4/etc" "$4/var/cache/apt/archives" "$4/var/lib/apt/lists" "$4/usr/share/doc/bash" "$4/usr/share/man/man1"
echo "$2" > "$4/etc/included"
touch "$4/var/cache/apt/archives/bash.deb" "$4/var/lib/apt/lists/bookworm_Packages" \
      "$4/usr/share/doc/bash/copyright" "$4/usr/share/man/man1/bash.1.gz"
echo "$*" >> "$COUNT"
"""


@pytest.fixture
def fake_debootstrap(tmp_path: Path, monkeypatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "debootstrap"
    script.write_text(FAKE_DEBOOTSTRAP)
    script.chmod(0o755)
    count = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("COUNT", str(count))
    return count


def _names(tarball: Path) -> set[str]:
    with tarfile.open(tarball) as t:
        return {m.name.removeprefix("./").rstrip("/") for m in t}


def test_a_debian_root_is_made_once_without_the_apt_caches(tmp_path: Path, fake_debootstrap: Path) -> None:
    cache = tmp_path / "cache"
    tarball = _util.debootstrap_tarball(cache, "python3", ("python3", "ca-certificates"))
    assert tarball == cache / "rootfs" / "bookworm-python3.tar"
    names = _names(tarball)
    assert "etc/included" in names and "usr/share/doc/bash/copyright" in names
    assert not any(n.startswith(("var/cache/apt/archives", "var/lib/apt/lists")) for n in names)
    assert _util.debootstrap_tarball(cache, "python3", ("python3", "ca-certificates")) == tarball
    assert len(fake_debootstrap.read_text().splitlines()) == 1  # made once
    assert "--include=python3,ca-certificates" in fake_debootstrap.read_text()
    assert sorted(p.name for p in tarball.parent.iterdir()) == ["bookworm-python3.tar"]  # no temporary left


def test_a_slim_root_keeps_empty_folders_for_caches_and_docs(tmp_path: Path, fake_debootstrap: Path) -> None:
    tarball = _util.debootstrap_tarball(tmp_path / "kind", "kind-node-1", ("systemd",), slim=True)
    assert tarball == tmp_path / "kind" / "rootfs" / "bookworm-kind-node-1.tar"
    names = _names(tarball)
    for folder in (*_util.APT_CACHES, "usr/share/doc", "usr/share/man"):
        assert folder in names
        assert not any(n.startswith(folder + "/") for n in names)
    assert "etc/included" in names
