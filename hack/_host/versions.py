"""Pinned versions of everything the host cluster is built from.

The host's own Kubernetes stays on 1.33: our machines run cgroup v1 (hybrid), which 1.35's
kubelet refuses.  The etcd, CoreDNS and pause versions are the ones kubeadm
1.33 pins (cmd/kubeadm/app/constants), so the images we build carry the exact
names a user's cluster would pull.

A virtual control plane has no kubelet: it runs any minor of CONTROL_PLANES, the table in
chart/kubernetes-versions.yaml (the one source; the chart ships it).  hack/host builds a minor's
kube-apiserver, kube-controller-manager and etcd images when a run asks for it (``hack/host images
--kubernetes 1.37,1.35``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

KUBERNETES = "v1.33.13"


def staging_of(kubernetes: str) -> str:
    """k8s.io/kubernetes publishes its staging modules (k8s.io/api, client-go, ...) as v0.<minor>.<patch> of the
    same release: ``v1.37.2`` -> ``v0.37.2``."""
    return "v0." + kubernetes.split(".", 1)[1]


KUBERNETES_STAGING = staging_of(KUBERNETES)
ETCD = "v3.5.24"
ETCD_IMAGE_TAG = "3.5.24-0"

TABLE_FILE = Path(__file__).resolve().parents[2] / "chart" / "kubernetes-versions.yaml"


@dataclass(frozen=True)
class ControlPlane:
    """One supported minor of the virtual control plane: its Kubernetes patch and the etcd kubeadm pairs."""

    minor: str  # "1.37"
    kubernetes: str  # "v1.37.2": the kube-apiserver and kube-controller-manager image tag
    etcd_tag: str  # "3.7.0-0": the etcd image tag

    @property
    def staging(self) -> str:
        """The version of the published staging modules (k8s.io/api, client-go, ...) of this release."""
        return staging_of(self.kubernetes)

    @property
    def etcd(self) -> str:
        """The go.etcd.io/etcd/server/v3 version behind the image tag (``3.7.0-0`` -> ``v3.7.0``)."""
        return "v" + self.etcd_tag.rsplit("-", 1)[0]

    @property
    def apiserver_image(self) -> str:
        return f"registry.k8s.io/kube-apiserver:{self.kubernetes}"

    @property
    def controller_manager_image(self) -> str:
        return f"registry.k8s.io/kube-controller-manager:{self.kubernetes}"

    @property
    def etcd_image(self) -> str:
        return f"registry.k8s.io/etcd:{self.etcd_tag}"

    @property
    def images(self) -> tuple[str, str, str]:
        return (self.apiserver_image, self.controller_manager_image, self.etcd_image)

    def chart_values(self) -> dict[str, str]:
        """The chart values (``--set`` paths) that make a virtual cluster of this minor."""
        return {
            "controlPlane.apiServer.image.tag": self.kubernetes,
            "controlPlane.controllerManager.image.tag": self.kubernetes,
            "controlPlane.etcd.image.tag": self.etcd_tag,
        }


def read_table(text: str) -> tuple[str, dict[str, ControlPlane]]:
    """(default minor, minor -> ControlPlane) of kubernetes-versions.yaml.

    Reads the file's own shape (top-level ``default`` and ``versions``, one mapping per minor, plain or
    double-quoted scalars, ``#`` comments) without PyYAML, which a fresh machine's python3 may lack; a unit
    test checks the result against PyYAML's.
    """
    default = ""
    table: dict[str, dict[str, str]] = {}
    section = minor = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        m = re.fullmatch(r'( *)("?)([^":]+)\2:(?: +"?([^"]*)"?)?', line)
        if not m:
            raise ValueError(f"{TABLE_FILE.name}:{number}: cannot read {raw!r}")
        indent, key, value = len(m.group(1)), m.group(3), m.group(4)
        if indent == 0:
            section = key
            if key == "default":
                default = value or ""
            elif key != "versions" or value:
                raise ValueError(f"{TABLE_FILE.name}:{number}: unknown key {key!r}")
        elif section == "versions" and indent == 2 and value is None:
            minor = key
            table[minor] = {}
        elif section == "versions" and indent == 4 and minor is not None and value:
            table[minor][key] = value
        else:
            raise ValueError(f"{TABLE_FILE.name}:{number}: unexpected {raw!r}")
    planes = {k: ControlPlane(k, v["kubernetes"], v["etcd"]) for k, v in table.items()}
    if default not in planes:
        raise ValueError(f"{TABLE_FILE.name}: default {default!r} is not one of {sorted(planes)}")
    return default, planes


DEFAULT_MINOR, CONTROL_PLANES = read_table(TABLE_FILE.read_text())
# What hack/host up builds and serves besides the chart's default when a run names no version
# (VCLUSTER_HOST_KUBERNETES), and what the e2e tests ask for: the oldest minor upstream still supports, the one
# version CI builds cold besides the default (each more costs 4.5-6.5 minutes cold, docs/speed.md). Every minor
# ran on our host on 2026-12-07 (test_kubernetes_versions with VCLUSTER_E2E_KUBERNETES=all).
HOST_DEFAULT_KUBERNETES = "1.35"


def control_plane(version: str) -> ControlPlane:
    """The table's entry for ``version``: a minor (``1.35``, ``v1.35``) or its exact patch (``v1.35.4``)."""
    v = version.strip().lstrip("v")
    minor = ".".join(v.split(".")[:2])
    plane = CONTROL_PLANES.get(minor)
    if plane is None or (v.count(".") == 2 and plane.kubernetes != "v" + v):
        supported = ", ".join(f"{k} ({p.kubernetes})" for k, p in CONTROL_PLANES.items())
        raise ValueError(f"Kubernetes {version!r} is not a supported virtual control plane; supported: {supported}")
    return plane


def requested_control_planes(spec: str | None = None) -> list[ControlPlane]:
    """The control planes a comma-separated list names (``1.37,1.35``; ``all`` for every minor); without one,
    the VCLUSTER_HOST_KUBERNETES environment variable's, else HOST_DEFAULT_KUBERNETES."""
    if spec is None:
        spec = os.environ.get("VCLUSTER_HOST_KUBERNETES") or HOST_DEFAULT_KUBERNETES
    if spec.strip() == "all":
        return list(CONTROL_PLANES.values())
    out: list[ControlPlane] = []
    for part in spec.split(","):
        if part.strip():
            plane = control_plane(part)
            if plane not in out:
                out.append(plane)
    return out
COREDNS = "v1.12.0"
PAUSE = "3.10"
HELM = "v3.19.0"
KIND = "v0.30.0"
LOCAL_PATH_PROVISIONER = "v0.0.30"
# Only its network-policy firewall runs: the bridge CNI enforces no NetworkPolicy.
KUBE_ROUTER = "v2.1.0"

# Images built locally and imported into the host's containerd.
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE}"
APISERVER_IMAGE = f"registry.k8s.io/kube-apiserver:{KUBERNETES}"
CONTROLLER_MANAGER_IMAGE = f"registry.k8s.io/kube-controller-manager:{KUBERNETES}"
ETCD_IMAGE = f"registry.k8s.io/etcd:{ETCD_IMAGE_TAG}"
COREDNS_IMAGE = f"registry.k8s.io/coredns/coredns:{COREDNS}"
LOCAL_PATH_IMAGE = f"docker.io/rancher/local-path-provisioner:{LOCAL_PATH_PROVISIONER}"
# Project-built images (no upstream counterpart is pulled here).
PYTHON_IMAGE = "pytest-vcluster.local/python:3.11-bookworm"
SHELL_IMAGE = "pytest-vcluster.local/busybox:1.35"
HTTP_IMAGE = "pytest-vcluster.local/httpd:1.35"

# busybox for the shell image: built from upstream's source (as Debian's archive keeps the tarball) with
# upstream's defconfig, as docker-library's busybox image is. Debian's own busybox packages differ from
# upstream where test manifests notice: bookworm's 1.35 crashes in `wget -T`, and Debian reverts ash's
# keeping of environment variables with names like `data-1` (the ConfigMap/Secret env conformance specs).
BUSYBOX = "1.37.0"
BUSYBOX_SOURCE = f"http://deb.debian.org/debian/pool/main/b/busybox/busybox_{BUSYBOX}.orig.tar.bz2"
BUSYBOX_SOURCE_SHA256 = "3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4"
# Project-built images behind the upstream names below (hack/_host/e2e_images.py, hack/images/).
AGNHOST = "2.53"  # the version test/utils/image/manifest.go of KUBERNETES names
DEBIAN_TOOLS_IMAGE = "pytest-vcluster.local/debian-tools:bookworm"
AGNHOST_IMAGE = f"pytest-vcluster.local/agnhost:{AGNHOST}"
JESSIE_DNSUTILS_IMAGE = "pytest-vcluster.local/jessie-dnsutils:1.7"
WEB_HTTPD_IMAGE = "pytest-vcluster.local/web:httpd"
WEB_NGINX_IMAGE = "pytest-vcluster.local/web:nginx"
KITTEN_IMAGE = "pytest-vcluster.local/kitten:1.7"
NAUTILUS_IMAGE = "pytest-vcluster.local/nautilus:1.7"
NONEWPRIVS_IMAGE = "pytest-vcluster.local/nonewprivs:1.3"
NONROOT_IMAGE = "pytest-vcluster.local/nonroot:1.4"
# The proxy refuses k8s.io/sample-apiserver v0.33.10-v0.33.13; v0.33.0 serves the same API.
SAMPLE_APISERVER = "v0.33.0"
SAMPLE_APISERVER_IMAGE = "pytest-vcluster.local/sample-apiserver:1.29.2"


@dataclass(frozen=True)
class Served:
    """One upstream image name the host serves, and what stands behind it.

    ``same`` is True when the local image is built from the same source at the same version as
    upstream's (a faithful rebuild); otherwise it is a stand-in and ``note`` says what it keeps
    and what it lacks.  The README's table is generated from these records.
    """

    upstream: str
    local: str
    same: bool
    note: str


_BUSYBOX_NOTE = (f"busybox {BUSYBOX} built from upstream's source with its defconfig, dynamically linked with "
                 "bookworm's glibc (`hosts: files dns`), every applet in /bin as upstream's image: sh, wget, "
                 "nslookup, nc, httpd, sysctl ... (the 1.37 binary also behind the 1.35/1.36 tags)")
# The web stand-ins: image -> (the real server's document root, its default page).
WEB_PAGES: dict[str, tuple[str, str]] = {
    WEB_HTTPD_IMAGE: ("/usr/local/apache2/htdocs", "<html><body><h1>It works!</h1></body></html>"),
    WEB_NGINX_IMAGE: ("/usr/share/nginx/html", "Welcome to nginx!"),
}


def _web_note(image: str) -> str:
    root, page = WEB_PAGES[image]
    return (f"busybox httpd on port 80 serving {root} (index.html: {page!r}); keeps the port, the document root and "
            "the page; lacks the real server's modules, config files and binary")


SERVED_IMAGES: tuple[Served, ...] = (
    *(Served(f"docker.io/library/busybox:{tag}", SHELL_IMAGE, False, _BUSYBOX_NOTE)
      for tag in ("latest", "stable", "1.35", "1.36", "1.36.1", "1.37")),
    Served("registry.k8s.io/e2e-test-images/busybox:1.36.1-1", SHELL_IMAGE, False, _BUSYBOX_NOTE),
    Served(f"registry.k8s.io/e2e-test-images/agnhost:{AGNHOST}", AGNHOST_IMAGE, False,
           f"agnhost built from k8s.io/kubernetes {KUBERNETES} (upstream's {AGNHOST} source, same subcommands, "
           "ENTRYPOINT /agnhost, CMD pause, agnhost-2, /uploads, porter's certificates, uid 1000 / gid 50000); "
           "base is Debian bookworm (curl, nc, dig, ip, iptables, iperf, bash) instead of Alpine, "
           "/coredns is our CoreDNS " + COREDNS + " instead of 1.6.2"),
    Served("registry.k8s.io/e2e-test-images/jessie-dnsutils:1.7", JESSIE_DNSUTILS_IMAGE, False,
           "Debian bookworm (not jessie) with dnsutils (dig, nslookup, host), curl, bash and /coredns"),
    *(Served(name, WEB_HTTPD_IMAGE, False, _web_note(WEB_HTTPD_IMAGE))
      for name in ("registry.k8s.io/e2e-test-images/httpd:2.4.38-4", "registry.k8s.io/e2e-test-images/httpd:2.4.39-4",
                   "docker.io/library/httpd:2.4")),
    *(Served(name, WEB_NGINX_IMAGE, False, _web_note(WEB_NGINX_IMAGE))
      for name in ("registry.k8s.io/e2e-test-images/nginx:1.14-4", "registry.k8s.io/e2e-test-images/nginx:1.15-4",
                   "docker.io/library/nginx:latest", "docker.io/library/nginx:1.25")),
    Served("registry.k8s.io/e2e-test-images/kitten:1.7", KITTEN_IMAGE, False,
           "as upstream: our agnhost plus kitten.jpg and data.json from the Kubernetes module, CMD test-webserver"),
    Served("registry.k8s.io/e2e-test-images/nautilus:1.7", NAUTILUS_IMAGE, False,
           "as upstream: our agnhost plus nautilus.jpg and data.json from the Kubernetes module, CMD test-webserver"),
    Served("registry.k8s.io/e2e-test-images/nonewprivs:1.3", NONEWPRIVS_IMAGE, False,
           "nnp built from the Kubernetes module, setuid root at /usr/local/bin/nnp, CMD nnp; base is our busybox "
           "instead of Alpine 3.6"),
    Served("registry.k8s.io/e2e-test-images/nonroot:1.4", NONROOT_IMAGE, False,
           "Debian bookworm with USER 1234, as upstream's debian-base image"),
    Served("registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2", SAMPLE_APISERVER_IMAGE, False,
           f"k8s.io/sample-apiserver {SAMPLE_APISERVER} (the proxy refuses the 1.33 patch releases), ENTRYPOINT "
           "/sample-apiserver; upstream's 1.29.2 serves the same wardle.example.com API; base is our busybox"),
    # Built from the same sources at the same versions as upstream: served under their own names.
    Served(PAUSE_IMAGE, PAUSE_IMAGE, True, "Kubernetes' pause.c, compiled statically"),
    Served(f"k8s.gcr.io/pause:{PAUSE}", PAUSE_IMAGE, True, "Kubernetes' pause.c, compiled statically"),
    Served(APISERVER_IMAGE, APISERVER_IMAGE, True, "built from k8s.io/kubernetes"),
    Served(CONTROLLER_MANAGER_IMAGE, CONTROLLER_MANAGER_IMAGE, True, "built from k8s.io/kubernetes"),
    Served(ETCD_IMAGE, ETCD_IMAGE, True, "built from go.etcd.io/etcd/server/v3"),
    # The e2e framework's etcd (test/utils/image/manifest.go): the Aggregator spec runs it beside sample-apiserver.
    Served("registry.k8s.io/etcd:3.5.21-0", ETCD_IMAGE, False,
           f"our etcd {ETCD} (built from go.etcd.io/etcd/server/v3, /usr/local/bin/etcd) behind the 3.5.21-0 tag"),
    Served(COREDNS_IMAGE, COREDNS_IMAGE, True, "built from github.com/coredns/coredns"),
)

# Images hack/host serves from its local registry under upstream names (the host's containerd mirrors
# the upstream registries to it: registry.MIRRORED_REGISTRIES): upstream name -> the image built here.
MIRRORED_IMAGES: dict[str, str] = {s.upstream: s.local for s in SERVED_IMAGES}


# ---------------------------------------------------------------- conformance suites (hack/conformance)


@dataclass(frozen=True)
class Suite:
    """Kubernetes' end-to-end suite (e2e.test) of one minor, as hack/conformance builds and runs it.

    A suite matches its API server: hack/conformance runs a minor's own e2e.test against a virtual cluster of
    that minor.  ``images`` are the upstream names its test/utils/image/manifest.go names beyond what the host
    always serves (SERVED_IMAGES: the host's own version's set); hack/conformance builds and pushes them when a
    run asks for the suite (cached per version), so ``hack/host up`` never pays for them.
    """

    minor: str  # "1.37": a minor of CONTROL_PLANES
    kubernetes: str  # "v1.37.2": the k8s.io/kubernetes version e2e.test (and agnhost, nnp) are built from
    ginkgo: str  # the ginkgo CLI at the version that release's go.mod requires (CLI and library must agree)
    agnhost: str  # the agnhost tag its manifest.go names (Agnhost)
    # The k8s.io/sample-apiserver version to build with, when the proxy refuses the release's own.
    sample_apiserver: str | None
    images: tuple[Served, ...] = ()

    @property
    def staging(self) -> str:
        return staging_of(self.kubernetes)

    @property
    def agnhost_image(self) -> str:
        """The local image behind registry.k8s.io/e2e-test-images/agnhost:<agnhost>."""
        return f"pytest-vcluster.local/agnhost:{self.agnhost}"


_E2E = "registry.k8s.io/e2e-test-images"
# v1.37.2's own builds (hack/_host/images.suite_images), tagged as upstream's images they stand for.
AGNHOST_137_IMAGE = "pytest-vcluster.local/agnhost:2.66.1"
KITTEN_137_IMAGE = "pytest-vcluster.local/kitten:1.8"
NAUTILUS_137_IMAGE = "pytest-vcluster.local/nautilus:1.8"
NONEWPRIVS_137_IMAGE = "pytest-vcluster.local/nonewprivs:1.4"

# test/utils/image/manifest.go of k8s.io/kubernetes v1.37.2 (initImageConfigs), the names not in SERVED_IMAGES
# that its conformance specs pull: Agnhost 2.66.1, AgnhostPrev 2.55 (kubectl's agnhost-rc manifests), BusyBox
# 1.37.0-2, GlibcDnsTesting 2.1.1 (replaces jessie-dnsutils), Kitten/Nautilus 1.8, Nginx 1.27.0-2 and NginxNew
# 1.28.0-2 (replace httpd and the old nginx tags), Nonewprivs 1.4, NonRoot 1.5, Pause 3.10.2, Etcd 3.7.0-0 (the
# 1.37 control plane's own image, which hack/conformance serves first). APIServer sample-apiserver:1.29.2 is
# unchanged (SERVED_IMAGES). The rest (node-perf, volume/*, perl, ...) no conformance spec uses, as in 1.33.
SUITE_137_IMAGES: tuple[Served, ...] = (
    Served(f"{_E2E}/agnhost:2.66.1", AGNHOST_137_IMAGE, False,
           "agnhost built from k8s.io/kubernetes v1.37.2 (upstream's 2.66.1 source, same subcommands, ENTRYPOINT "
           "/agnhost, CMD pause, agnhost-2, /uploads, porter's certificates, uid 1000 / gid 50000); base is Debian "
           "bookworm (curl, nc, dig, ip, iptables, iperf, bash) instead of Alpine 3.21, /coredns is our CoreDNS "
           f"{COREDNS} instead of 1.6.2; lacks socat and the fake-registry-server's /var/registry (only "
           "non-conformance specs use them)"),
    Served(f"{_E2E}/agnhost:2.55", AGNHOST_IMAGE, False,
           f"our agnhost {AGNHOST} (built from k8s.io/kubernetes {KUBERNETES}) behind the 2.55 tag: the 1.37 suite "
           "runs it as the previous agnhost of kubectl's agnhost-rc and agnhost-deployment3 manifests"),
    Served(f"{_E2E}/busybox:1.37.0-2", SHELL_IMAGE, False, _BUSYBOX_NOTE),
    Served(f"{_E2E}/glibc-dns-testing:2.1.1", JESSIE_DNSUTILS_IMAGE, False,
           "our jessie-dnsutils stand-in: Debian bookworm with dnsutils (dig, nslookup, host), getent (glibc), "
           "curl, bash and /coredns; upstream's is debian:bookworm-slim with dnsutils and CoreDNS 1.5.0"),
    *(Served(f"{_E2E}/nginx:{tag}", WEB_NGINX_IMAGE, False, _web_note(WEB_NGINX_IMAGE))
      for tag in ("1.27.0-2", "1.28.0-2")),
    Served(f"{_E2E}/kitten:1.8", KITTEN_137_IMAGE, False,
           "as upstream: our agnhost 2.66.1 plus kitten.jpg and data.json from k8s.io/kubernetes v1.37.2, CMD "
           "test-webserver"),
    Served(f"{_E2E}/nautilus:1.8", NAUTILUS_137_IMAGE, False,
           "as upstream: our agnhost 2.66.1 plus nautilus.jpg and data.json from k8s.io/kubernetes v1.37.2, CMD "
           "test-webserver"),
    Served(f"{_E2E}/nonewprivs:1.4", NONEWPRIVS_137_IMAGE, False,
           "nnp built from k8s.io/kubernetes v1.37.2, setuid root at /usr/local/bin/nnp, CMD nnp; base is our "
           "busybox instead of Alpine 3.22"),
    Served(f"{_E2E}/nonroot:1.5", NONROOT_IMAGE, False,
           "our nonroot 1.4 stand-in: Debian bookworm with USER 1234, as upstream's 1.5 (debian-base "
           "bookworm-v1.0.6, USER 1234)"),
    Served("registry.k8s.io/pause:3.10.2", PAUSE_IMAGE, False,
           f"our pause {PAUSE} (Kubernetes' pause.c, compiled statically) behind the 3.10.2 tag: pause.c is the "
           "same file in v1.33.13 and v1.37.2, 3.10.1 and 3.10.2 changed only the Windows image's base"),
    Served("registry.k8s.io/etcd:3.7.0-0", CONTROL_PLANES["1.37"].etcd_image, True,
           "the 1.37 virtual control plane's etcd, built from go.etcd.io/etcd/server/v3 v3.7.0; the Aggregator "
           "spec runs it beside sample-apiserver"),
)

#: the suites hack/conformance builds, per minor: the host's own (its images are SERVED_IMAGES) and the chart's
#: default. Another minor needs its manifest.go's image set recorded here first.
SUITES: dict[str, Suite] = {
    "1.33": Suite("1.33", KUBERNETES, "v2.21.0", AGNHOST, SAMPLE_APISERVER),
    # v1.37.2's go.mod requires github.com/onsi/ginkgo/v2 v2.32.0; the proxy serves k8s.io/sample-apiserver v0.37.2.
    "1.37": Suite("1.37", "v1.37.2", "v2.32.0", "2.66.1", None, SUITE_137_IMAGES),
}
#: the minor of the host's own Kubernetes (its kubelet, its API server): "1.33"
HOST_MINOR = ".".join(KUBERNETES.lstrip("v").split(".")[:2])


def suite(version: str) -> Suite:
    """The suite of ``version``: a minor or its exact patch, as control_plane() reads it; a ValueError names the
    minors that have one."""
    plane = control_plane(version)
    found = SUITES.get(plane.minor)
    if found is None:
        raise ValueError(f"no conformance suite recorded for Kubernetes {plane.minor} (its e2e images are not in "
                         f"hack/_host/versions.py SUITES); suites: {', '.join(SUITES)}")
    return found
