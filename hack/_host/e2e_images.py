"""The images Kubernetes' e2e tests and users' manifests name, served by the host under upstream names.

Nothing is pulled here: each image is built from the same source as upstream
(agnhost and nnp from k8s.io/kubernetes at versions.KUBERNETES, sample-apiserver
from its module) on a Debian root made by debootstrap, or is a stand-in that keeps
the behaviour the specs and manifests rely on.  versions.SERVED_IMAGES lists every
upstream name with what stands behind it; hack/_host/images.py builds the local
images through its catalogue and hack/host pushes versions.MIRRORED_IMAGES into
its local registry.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from . import versions
from ._util import HostError, run
from .build import GoBuild

# Debian packages of the tools root: the tools upstream's agnhost installs from Alpine (bind-tools,
# curl, netcat-openbsd, iproute2, iperf, bash), jessie-dnsutils' dnsutils, Alpine's busybox applets
# the e2e specs run in agnhost (wget, ping, ps), and Debian's dynamic busybox for the busybox image.
TOOLS_PACKAGES = (
    "busybox", "ca-certificates", "curl", "dnsutils", "iperf", "iproute2", "iptables", "iputils-ping",
    "netcat-openbsd", "procps", "wget",
)


def agnhost_build() -> GoBuild:
    """agnhost and nnp (the nonewprivs image's program) from Kubernetes' module, as upstream builds them."""
    return GoBuild(
        name="agnhost",
        module="k8s.io/kubernetes",
        version=versions.KUBERNETES,
        packages=("k8s.io/kubernetes/test/images/agnhost", "k8s.io/kubernetes/test/images/nonewprivs"),
        ldflags="-s -w",
        staging_version=versions.KUBERNETES_STAGING,
    )


def sample_apiserver_build() -> GoBuild:
    """k8s.io/sample-apiserver's main package, built inside the Kubernetes wrapper module.

    The proxy refuses its v0.33.10-v0.33.13, so the module itself is v0.33.0 while every library it
    uses (k8s.io/apiserver, client-go, ...) is the v1.33.13 one the host's binaries were built from:
    their compiled packages are reused, so this costs about a minute on a cold machine instead of
    about 7 for v0.33.0's own dependency tree. e2e.test uses the same pairing for its wardle types.
    """
    return GoBuild(
        name="sample-apiserver",
        module="k8s.io/kubernetes",
        version=versions.KUBERNETES,
        packages=("k8s.io/sample-apiserver",),
        ldflags="-s -w",
        staging_version=versions.KUBERNETES_STAGING,
        module_versions=(("k8s.io/sample-apiserver", versions.SAMPLE_APISERVER),),
    )


def kubernetes_source() -> Path:
    """The k8s.io/kubernetes module in the module cache (its test/images files go into images)."""
    modcache = run(["go", "env", "GOMODCACHE"], capture=True).strip()
    src = Path(modcache) / f"k8s.io/kubernetes@{versions.KUBERNETES}"
    if not src.is_dir():
        raise HostError(f"{src} is missing: build Kubernetes first (hack/host up builds it)")
    return src


def tools_rootfs(cache: Path) -> Path:
    """A Debian bookworm root (debootstrap minbase) with TOOLS_PACKAGES, cached as a tarball."""
    digest = hashlib.sha256(" ".join(TOOLS_PACKAGES).encode()).hexdigest()[:8]
    tarball = cache / "rootfs" / f"bookworm-tools-{digest}.tar"
    if tarball.exists():
        return tarball
    if not shutil.which("debootstrap"):
        raise HostError("debootstrap is missing: apt-get install -y debootstrap (hack/install-deps does it)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=cache) as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(TOOLS_PACKAGES),
             "bookworm", str(root), "http://deb.debian.org/debian"], quiet=True)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(root / junk, ignore_errors=True)
        run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball) + ".tmp", "."], quiet=True)
        os.replace(str(tarball) + ".tmp", tarball)
    return tarball


DEBIAN_MIRROR = "http://deb.debian.org/debian"


def _packages_index(text: str, wanted: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """The Filename and SHA256 of each wanted package in a Debian Packages index."""
    found: dict[str, dict[str, str]] = {}
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Package") in wanted and fields["Package"] not in found:
            found[fields["Package"]] = {"Filename": fields["Filename"], "SHA256": fields["SHA256"]}
    missing = set(wanted) - set(found)
    if missing:
        raise HostError(f"Debian's Packages index has no {', '.join(sorted(missing))}")
    return found


def busybox_debs(cache: Path) -> dict[str, Path]:
    """busybox and the libc6 it needs from Debian versions.BUSYBOX_SUITE, downloaded once and checked.

    Bookworm's busybox 1.35 crashes in `wget -T` (any address); the busybox of Debian 13 (1.37, the
    version of upstream's busybox:latest) does not, and needs its glibc (2.38 or later).
    """
    wanted = ("busybox", "libc6")
    folder = cache / "debs" / versions.BUSYBOX_SUITE
    resolved = folder / "resolved.json"
    if resolved.exists():
        paths = {name: folder / Path(f).name for name, f in json.loads(resolved.read_text()).items()}
        if set(paths) == set(wanted) and all(p.exists() for p in paths.values()):
            return paths
    folder.mkdir(parents=True, exist_ok=True)
    url = f"{DEBIAN_MIRROR}/dists/{versions.BUSYBOX_SUITE}/main/binary-amd64/Packages.xz"
    with urllib.request.urlopen(url, timeout=120) as r:
        index = _packages_index(lzma.decompress(r.read()).decode(errors="replace"), wanted)
    paths = {}
    for name, entry in index.items():
        with urllib.request.urlopen(f"{DEBIAN_MIRROR}/{entry['Filename']}", timeout=300) as r:
            data = r.read()
        if hashlib.sha256(data).hexdigest() != entry["SHA256"]:
            raise HostError(f"{entry['Filename']}: SHA256 differs from Debian's Packages index")
        path = paths[name] = folder / Path(entry["Filename"]).name
        path.with_suffix(".tmp").write_bytes(data)
        os.replace(path.with_suffix(".tmp"), path)
    resolved.write_text(json.dumps({name: index[name]["Filename"] for name in wanted}))
    return paths


def readme_table() -> str:
    """The README's table of the upstream names the host serves (Markdown), one row per local image and note."""
    groups: dict[tuple[str, bool, str], list[str]] = {}
    for s in versions.SERVED_IMAGES:
        groups.setdefault((s.local, s.same, s.note), []).append(s.upstream)
    rows = ["| Upstream names | Local image | What it is | What it keeps / lacks |", "|---|---|---|---|"]
    for (local, same, note), names in groups.items():
        upstream = "<br>".join(f"`{n}`" for n in names)
        rows.append(f"| {upstream} | `{local}` | {'same source' if same else 'stand-in'} | {note} |")
    return "\n".join(rows) + "\n"
