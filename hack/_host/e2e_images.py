"""The images Kubernetes' e2e tests and users' manifests name, served by the host under upstream names.

Nothing is pulled here: each image is built from the same source as upstream
(agnhost and nnp from k8s.io/kubernetes at versions.KUBERNETES, sample-apiserver
from its module) on a Debian root made by debootstrap, or is a stand-in that keeps
the behaviour the specs and manifests rely on.  versions.SERVED_IMAGES lists every
upstream name with what stands behind it; hack/_host/images.py builds the local
images through its catalogue and hack/host pushes versions.MIRRORED_IMAGES into
its local registry.  A conformance suite of another version (versions.Suite) adds
the names its own manifest.go gives, with agnhost and nnp built at its version
(images.suite_images; hack/conformance serves them when a run asks for the suite).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from . import versions
from ._util import HostError, debootstrap_tarball, run
from .build import GoBuild

# Debian packages of the tools root: the tools upstream's agnhost installs from Alpine (bind-tools,
# curl, netcat-openbsd, iproute2, iperf, bash), jessie-dnsutils' dnsutils, and the Alpine base's
# busybox with the applets the e2e specs run in agnhost (wget, ping, ps).
TOOLS_PACKAGES = (
    "busybox", "ca-certificates", "curl", "dnsutils", "iperf", "iproute2", "iptables", "iputils-ping",
    "netcat-openbsd", "procps", "wget",
)


def agnhost_build(kubernetes: str = versions.KUBERNETES) -> GoBuild:
    """agnhost and nnp (the nonewprivs image's program) from Kubernetes' module at ``kubernetes`` (the host's
    version, or a conformance suite's: versions.Suite.kubernetes), as upstream builds them. Built in the wrapper
    module of that version's other builds (the host's Kubernetes, a control plane's, e2e.test): their compiled
    packages are shared."""
    return GoBuild(
        name="agnhost",
        module="k8s.io/kubernetes",
        version=kubernetes,
        packages=("k8s.io/kubernetes/test/images/agnhost", "k8s.io/kubernetes/test/images/nonewprivs"),
        ldflags="-s -w",
        staging_version=versions.staging_of(kubernetes),
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


def kubernetes_source(kubernetes: str = versions.KUBERNETES) -> Path:
    """The k8s.io/kubernetes module at ``kubernetes`` in the module cache (its test/images files go into images;
    agnhost_build(kubernetes) downloads it)."""
    modcache = run(["go", "env", "GOMODCACHE"], capture=True).strip()
    src = Path(modcache) / f"k8s.io/kubernetes@{kubernetes}"
    if not src.is_dir():
        raise HostError(f"{src} is missing: build Kubernetes {kubernetes} first (hack/host up builds the host's)")
    return src


def tools_rootfs(cache: Path) -> Path:
    """A Debian bookworm root (debootstrap minbase) with TOOLS_PACKAGES, cached as a tarball."""
    digest = hashlib.sha256(" ".join(TOOLS_PACKAGES).encode()).hexdigest()[:8]
    return debootstrap_tarball(cache, f"tools-{digest}", TOOLS_PACKAGES)


def busybox_binary(cache: Path) -> Path:
    """busybox versions.BUSYBOX built from upstream's source with ``make defconfig`` (cached).

    The tarball is checked against versions.BUSYBOX_SOURCE_SHA256. Dynamically linked with this
    machine's glibc (busybox_root puts those files in the image): a static glibc cannot load the NSS
    modules that resolve names.
    """
    out = cache / "bin" / f"busybox-{versions.BUSYBOX}-{versions.BUSYBOX_SOURCE_SHA256[:12]}" / "busybox"
    if out.exists():
        return out
    for tool in ("gcc", "make", "bzip2"):
        if not shutil.which(tool):
            raise HostError(f"{tool} is missing: apt-get install -y gcc make bzip2 (hack/install-deps does it)")
    with urllib.request.urlopen(versions.BUSYBOX_SOURCE, timeout=300) as r:
        data = r.read()
    if hashlib.sha256(data).hexdigest() != versions.BUSYBOX_SOURCE_SHA256:
        raise HostError(f"{versions.BUSYBOX_SOURCE}: SHA256 is not versions.BUSYBOX_SOURCE_SHA256")
    with tempfile.TemporaryDirectory(prefix="busybox-", dir=cache) as tmp:
        tarball = Path(tmp) / "busybox.tar.bz2"
        tarball.write_bytes(data)
        run(["tar", "-C", tmp, "-xjf", str(tarball)], quiet=True)
        src = Path(tmp) / f"busybox-{versions.BUSYBOX}"
        run(["make", "-C", str(src), "defconfig"], quiet=True)
        config = src / ".config"
        # tc needs the CBQ scheduler's kernel headers, gone from Linux 6.3's (Debian and Alpine drop it too).
        config.write_text(config.read_text().replace("CONFIG_TC=y", "# CONFIG_TC is not set"))
        run(["make", "-C", str(src), "oldconfig"], input="\n" * 200, quiet=True)  # defaults for what TC held
        run(["make", "-C", str(src), f"-j{os.cpu_count() or 2}", "busybox"], quiet=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / "busybox", out.with_suffix(".tmp"))
        os.replace(out.with_suffix(".tmp"), out)
    return out


#: what the busybox image needs besides busybox: name resolution through NSS (files, then DNS)
NSSWITCH = ("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\n"
            "services: files\n")


def busybox_root(cache: Path) -> Path:
    """A tarball of the busybox image's root (cached): busybox_binary, the glibc files it links (from
    this machine, which built it), /etc/nsswitch.conf, services and protocols. Both the host's and
    kind's image builders ADD it to an empty image."""
    binary = busybox_binary(cache)
    tarball = binary.parent / "busybox-root.tar"
    if tarball.exists():
        return tarball
    libs = [line.split("=>", 1)[1].split()[0] for line in run(["ldd", str(binary)], capture=True).splitlines()
            if "=>" in line and "/" in line.split("=>", 1)[1]]
    with tempfile.TemporaryDirectory(prefix="busybox-root-", dir=cache) as tmp:
        root = Path(tmp)
        for folder in ("bin", "lib/x86_64-linux-gnu", "lib64", "etc"):
            (root / folder).mkdir(parents=True)
        shutil.copy2(binary, root / "bin" / "busybox")
        for lib in libs:
            shutil.copy2(Path(lib).resolve(), root / "lib/x86_64-linux-gnu" / Path(lib).name)
        shutil.copy2(Path("/lib64/ld-linux-x86-64.so.2").resolve(), root / "lib64" / "ld-linux-x86-64.so.2")
        for name in ("services", "protocols"):
            shutil.copy2(Path("/etc") / name, root / "etc" / name)
        (root / "etc" / "nsswitch.conf").write_text(NSSWITCH)
        run(["tar", "-C", str(root), "--numeric-owner", "--owner=0", "--group=0", "-cf",
             str(tarball) + ".tmp", "bin", "lib", "lib64", "etc"], quiet=True)
        os.replace(str(tarball) + ".tmp", tarball)
    return tarball


def readme_table(records: tuple[versions.Served, ...] = versions.SERVED_IMAGES) -> str:
    """The README's table of the upstream names the host serves (Markdown), one row per local image and note
    (default: what it always serves; a suite's versions.Suite.images for the names hack/conformance adds)."""
    groups: dict[tuple[str, bool, str], list[str]] = {}
    for s in records:
        groups.setdefault((s.local, s.same, s.note), []).append(s.upstream)
    rows = ["| Upstream names | Local image | What it is | What it keeps / lacks |", "|---|---|---|---|"]
    for (local, same, note), names in groups.items():
        upstream = "<br>".join(f"`{n}`" for n in names)
        rows.append(f"| {upstream} | `{local}` | {'same source' if same else 'stand-in'} | {note} |")
    return "\n".join(rows) + "\n"
