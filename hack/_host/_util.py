"""Small helpers shared by the host tool: logging with timings, subprocesses, paths."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


class HostError(Exception):
    """A failure with a message meant for the person running hack/host."""


def cache_dir() -> Path:
    """Build outputs live here, outside the clone, so a second `up` builds nothing."""
    root = os.environ.get("PYTEST_VCLUSTER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pytest-vcluster"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dir() -> Path:
    """Everything a running host owns: PKI, configs, logs, etcd data, containerd state."""
    return Path(os.environ.get("PYTEST_VCLUSTER_HOST_STATE", "/var/lib/pytest-vcluster-host"))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Prints one progress line per step with its duration."""
    start = time.monotonic()
    log(f"==> {name} ...")
    try:
        yield
    except BaseException:
        log(f"<== {name}: FAILED after {time.monotonic() - start:.1f}s")
        raise
    log(f"<== {name}: {time.monotonic() - start:.1f}s")


def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    capture: bool = False,
    check: bool = True,
    input: str | bytes | None = None,
    quiet: bool = False,
) -> str:
    """Runs a command; on failure raises HostError with the command and its output tail."""
    kwargs: dict = {"env": dict(env) if env is not None else None, "cwd": cwd}
    data = input.encode() if isinstance(input, str) else input
    if capture or quiet:
        proc = subprocess.run(cmd, input=data, capture_output=True, **kwargs)
        out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    else:
        proc = subprocess.run(cmd, input=data, **kwargs)
        out, err = "", ""
    if check and proc.returncode != 0:
        tail = "\n".join((out + err).strip().splitlines()[-30:])
        raise HostError(f"command failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return out


def mounts_under(roots: Sequence[Path | str]) -> list[str]:
    """Mount points at or below any of ``roots`` (from /proc/self/mountinfo)."""
    prefixes = [str(r) for r in roots]
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].replace("\\040", " ")
        if any(mp == r or mp.startswith(r + "/") for r in prefixes):
            out.append(mp)
    return out


def unmount_all(mounts: Sequence[str]) -> None:
    """Unmount, deepest first; lazily where a plain unmount is refused (still busy)."""
    for mp in sorted(mounts, key=len, reverse=True):
        if subprocess.run(["umount", mp], capture_output=True).returncode:
            subprocess.run(["umount", "-l", mp], capture_output=True)


#: left out of a Debian root's tarball: only weight in an image
APT_CACHES = ("var/cache/apt/archives", "var/lib/apt/lists")
DOCS = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")


def debootstrap_tarball(cache: Path, name: str, packages: Sequence[str], *, slim: bool = False) -> Path:
    """A minimal Debian bookworm root with ``packages``, made by debootstrap once and kept as
    <cache>/rootfs/bookworm-<name>.tar, without the apt caches. ``slim`` (kind's node root): also without
    documentation, manuals and translations, their folders and apt's kept empty, and with the files'
    extended attributes."""
    tarball = cache / "rootfs" / f"bookworm-{name}.tar"
    if tarball.exists():
        return tarball
    if not shutil.which("debootstrap"):
        raise HostError("debootstrap is missing: apt-get install -y debootstrap (hack/install-deps does it)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"rootfs-{name}-", dir=tarball.parent) as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(packages),
             "bookworm", str(root), "http://deb.debian.org/debian"], quiet=True)
        if slim:
            for junk in (*APT_CACHES, *DOCS):
                _empty(root / junk)
        else:
            for junk in APT_CACHES:
                shutil.rmtree(root / junk, ignore_errors=True)
        xattrs = ["--xattrs"] if slim else []
        run(["tar", "-C", str(root), "--numeric-owner", *xattrs, "-cf", str(tarball) + ".tmp", "."], quiet=True)
        os.replace(str(tarball) + ".tmp", tarball)
    return tarball


def _empty(folder: Path) -> None:
    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
