"""The Debian bookworm root of the kind node's base image, made by debootstrap (cached).

kind's images/base/Dockerfile starts FROM debian:bookworm-slim and installs
these packages with apt; no registry is reachable here, so the same root is
made with debootstrap from Debian's mirror instead.  containerd, runc's
wrapper, crictl and the CNI plugins are added when the base image is
assembled (kind_images.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ._util import HostError, run

# kind's base image packages (images/base/Dockerfile), less nfs-common/open-iscsi
# (network storage is not used here), plus Debian's runc (the real runtime behind
# the wrapper) and CNI plugins.
PACKAGES = (
    "systemd", "conntrack", "iptables", "nftables", "iproute2", "ethtool", "util-linux", "mount", "kmod",
    "libseccomp2", "pigz", "fuse-overlayfs", "bash", "ca-certificates", "curl", "jq", "procps",
    "runc", "containernetworking-plugins", "socat", "ebtables",
)
ROOTFS_VERSION = "1"  # bump to rebuild the cached root


def node_rootfs(cache: Path) -> Path:
    tarball = cache / "rootfs" / f"bookworm-kind-node-{ROOTFS_VERSION}.tar"
    if tarball.exists():
        return tarball
    if not shutil.which("debootstrap"):
        raise HostError("debootstrap is missing: apt-get install -y debootstrap (hack/install-deps does it)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kind-rootfs-", dir=tarball.parent) as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
             "bookworm", str(root), "http://deb.debian.org/debian"], quiet=True)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                     "usr/share/info", "usr/share/locale"):
            p = root / junk
            if p.is_dir():
                for child in p.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-cf", str(tarball) + ".tmp", "."], quiet=True)
        os.replace(str(tarball) + ".tmp", tarball)
    return tarball
