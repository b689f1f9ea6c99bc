"""The Debian bookworm root of the kind node's base image, made by debootstrap (cached).

kind's images/base/Dockerfile starts FROM debian:bookworm-slim and installs
these packages with apt; no registry is reachable here, so the same root is
made with debootstrap from Debian's mirror instead (_util.debootstrap_tarball,
as the host's roots are).  containerd, runc's wrapper, crictl and the CNI
plugins are added when the base image is assembled (kind.py's catalogue).
"""

from __future__ import annotations

from pathlib import Path

from ._util import debootstrap_tarball

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
    """<cache>/rootfs/bookworm-kind-node-<ROOTFS_VERSION>.tar (``cache``: kind's, a folder of the host's)."""
    return debootstrap_tarball(cache, f"kind-node-{ROOTFS_VERSION}", PACKAGES, slim=True)
