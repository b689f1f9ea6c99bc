"""Images for the host, built locally with docker and imported into its containerd.

No registry is reachable, so every image a pod of the host runs is built here:
the control-plane images under their upstream names (built from the same
sources at the same versions, so the chart's defaults run unchanged), the
pause image under the exact name of containerd's sandbox image, a Debian base
with Python 3 (from debootstrap) for the syncer, small test workloads, and the
images behind the upstream names the host's registry serves (busybox, agnhost and
the other e2e-test-images: hack/_host/e2e_images.py, versions.SERVED_IMAGES).
Dockerfiles live in hack/images/.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import e2e_images, versions
from ._util import HostError, debootstrap_tarball, run, step
from .build import go_build
from .layout import Layout

HERE = Path(__file__).resolve().parent
DOCKERFILES = HERE.parent / "images"


@dataclass(frozen=True)
class Image:
    name: str
    dockerfile: str
    # files copied into the build context: context name -> source path
    files: dict[str, Path] = field(default_factory=dict)
    # images this one is built FROM (built first)
    base: tuple[str, ...] = ()
    build_args: dict[str, str] = field(default_factory=dict)
    # a root file system tarball imported as the image (no Dockerfile), and its image config
    rootfs: Path | None = None
    changes: tuple[str, ...] = ()


def docker(layout: Layout, *args: str, capture: bool = False, input: bytes | None = None) -> str:
    env = dict(os.environ, DOCKER_HOST=f"unix://{layout.docker_socket}", DOCKER_BUILDKIT="0")
    # Debian's client matches Debian's engine; a newer client elsewhere on PATH
    # insists on buildx for `build`.
    client = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
    return run([client, *args], env=env, capture=capture, input=input, quiet=not capture)


def ctr(layout: Layout, *args: str, capture: bool = True, stdin: int | None = None) -> str:
    return run(["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io", *args], capture=capture)


def build_pause(layout: Layout) -> Path:
    """Compiles Kubernetes' own pause.c (from the k8s.io/kubernetes module) statically."""
    out = layout.cache / "bin" / f"pause-{versions.PAUSE}" / "pause"
    if out.exists():
        return out
    modcache = run(["go", "env", "GOMODCACHE"], capture=True).strip()
    src = Path(modcache) / f"k8s.io/kubernetes@{versions.KUBERNETES}" / "build/pause/linux/pause.c"
    if not src.exists():
        raise HostError(f"{src} is missing: build Kubernetes first (hack/host up builds it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    run(["gcc", "-Os", "-Wall", "-Werror", "-static", f'-DVERSION=v{versions.PAUSE}-pytest-vcluster',
         "-o", str(out), str(src)], quiet=True)
    run(["strip", str(out)], quiet=True)
    return out


def python_rootfs(layout: Layout) -> Path:
    """A minimal Debian bookworm root with python3 and pip, made by debootstrap (cached)."""
    return debootstrap_tarball(layout.cache, "python3", ("python3", "python3-pip", "python3-venv", "ca-certificates"))


def catalogue(binaries: dict[str, Path], layout: Layout) -> list[Image]:
    """Every image the host offers, in build order (an image's base comes before it)."""
    with step("tools root, busybox, agnhost, sample-apiserver (cached)"):
        tools = e2e_images.tools_rootfs(layout.cache)
        busybox = e2e_images.busybox_root(layout.cache)
        agnhost = go_build(e2e_images.agnhost_build())
        sample_apiserver = go_build(e2e_images.sample_apiserver_build())
    pages = e2e_images.kubernetes_source() / "test/images"
    return [
        Image(versions.DEBIAN_TOOLS_IMAGE, "", rootfs=tools, changes=('CMD ["bash"]', "ENV LANG=C.UTF-8")),
        Image(versions.PAUSE_IMAGE, "pause.Dockerfile", {"pause": build_pause(layout)}),
        Image(versions.APISERVER_IMAGE, "kube-component.Dockerfile", {"component": binaries["kube-apiserver"]},
              build_args={"NAME": "kube-apiserver"}),
        Image(versions.CONTROLLER_MANAGER_IMAGE, "kube-component.Dockerfile",
              {"component": binaries["kube-controller-manager"]}, build_args={"NAME": "kube-controller-manager"}),
        Image(versions.ETCD_IMAGE, "etcd.Dockerfile", {"etcd": binaries["etcd"]}),
        Image(versions.COREDNS_IMAGE, "coredns.Dockerfile", {"coredns": binaries["coredns"]}),
        Image(versions.SHELL_IMAGE, "busybox.Dockerfile", {"busybox-root.tar": busybox}),
        Image(versions.HTTP_IMAGE, "httpd.Dockerfile", {}, base=(versions.SHELL_IMAGE,)),
        *(Image(name, "web.Dockerfile", base=(versions.SHELL_IMAGE,), build_args={"DOCROOT": root, "PAGE": page})
          for name, (root, page) in versions.WEB_PAGES.items()),
        _agnhost_image(versions.AGNHOST_IMAGE, agnhost, pages, binaries["coredns"]),
        Image(versions.JESSIE_DNSUTILS_IMAGE, "jessie-dnsutils.Dockerfile", {"coredns": binaries["coredns"]},
              base=(versions.DEBIAN_TOOLS_IMAGE,)),
        *_agnhost_pages(pages, versions.AGNHOST_IMAGE, ((versions.KITTEN_IMAGE, "kitten"),
                                                         (versions.NAUTILUS_IMAGE, "nautilus"))),
        _nonewprivs_image(versions.NONEWPRIVS_IMAGE, agnhost),
        Image(versions.NONROOT_IMAGE, "nonroot.Dockerfile", base=(versions.DEBIAN_TOOLS_IMAGE,)),
        Image(versions.SAMPLE_APISERVER_IMAGE, "sample-apiserver.Dockerfile",
              {"sample-apiserver": sample_apiserver / "sample-apiserver"}, base=(versions.SHELL_IMAGE,)),
        Image(versions.PYTHON_IMAGE, "", rootfs=python_rootfs(layout), changes=('CMD ["python3"]', "ENV LANG=C.UTF-8")),
    ]


def _agnhost_image(name: str, agnhost: Path, pages: Path, coredns: Path) -> Image:
    """agnhost on the tools root: ``agnhost`` (the folder of an agnhost_build) with porter's certificates from
    ``pages`` (test/images of the same Kubernetes module) and our CoreDNS."""
    return Image(name, "agnhost.Dockerfile",
                 {"agnhost": agnhost / "agnhost", "coredns": coredns,
                  "localhost.crt": pages / "agnhost/porter/localhost.crt",
                  "localhost.key": pages / "agnhost/porter/localhost.key"},
                 base=(versions.DEBIAN_TOOLS_IMAGE,))


def _nonewprivs_image(name: str, agnhost: Path) -> Image:
    """nnp (built with agnhost, in the folder ``agnhost``) on our busybox."""
    return Image(name, "nonewprivs.Dockerfile", {"nnp": agnhost / "nonewprivs"}, base=(versions.SHELL_IMAGE,))


def _agnhost_pages(pages: Path, agnhost: str, names: tuple[tuple[str, str], ...]) -> list[Image]:
    """kitten and nautilus: ``agnhost`` (a local image) plus the page's picture and data.json from ``pages``
    (test/images of the Kubernetes module the agnhost is built from)."""
    return [Image(name, "agnhost-page.Dockerfile",
                  {"picture.jpg": pages / f"{page}/html/{page}.jpg", "data.json": pages / f"{page}/html/data.json"},
                  base=(agnhost,), build_args={"AGNHOST": agnhost, "NAME": page})
            for name, page in names]


def suite_images(suite: versions.Suite, binaries: dict[str, Path]) -> list[Image]:
    """The images a conformance suite needs built beyond the host's catalogue (``binaries``: the host's, for
    CoreDNS): agnhost and nnp from the suite's own k8s.io/kubernetes version, then the kitten, nautilus and
    nonewprivs images of suite.images on them. Every other name of suite.images stands for an image of the
    catalogue. Empty for the host's own suite (the catalogue has its images)."""
    wanted = sorted({s.local for s in suite.images} - _CATALOGUE_E2E)
    if suite.agnhost_image not in wanted:
        return []
    with step(f"agnhost and nnp {suite.kubernetes} (cached)"):
        agnhost = go_build(e2e_images.agnhost_build(suite.kubernetes))
    pages = e2e_images.kubernetes_source(suite.kubernetes) / "test/images"

    def named(name: str) -> list[str]:
        return [local for local in wanted if local.startswith(f"pytest-vcluster.local/{name}:")]

    return [
        _agnhost_image(suite.agnhost_image, agnhost, pages, binaries["coredns"]),
        *_agnhost_pages(pages, suite.agnhost_image,
                        tuple((local, page) for page in ("kitten", "nautilus") for local in named(page))),
        *(_nonewprivs_image(local, agnhost) for local in named("nonewprivs")),
    ]


#: the catalogue's images built from the host's Kubernetes (a suite's record may name one as its stand-in)
_CATALOGUE_E2E = frozenset({versions.AGNHOST_IMAGE, versions.KITTEN_IMAGE, versions.NAUTILUS_IMAGE,
                            versions.NONEWPRIVS_IMAGE})


def _key(image: Image, base_keys: dict[str, str] | None = None) -> str:
    """What an image is built from: a change of any part (its base's key included) rebuilds it."""
    h = hashlib.sha256(image.name.encode())
    if image.dockerfile:
        h.update((DOCKERFILES / image.dockerfile).read_bytes())
    h.update(repr(sorted(image.build_args.items())).encode())
    for name, path in sorted(image.files.items()):
        st = path.stat()
        h.update(f"{name}:{st.st_size}:{int(st.st_mtime)}".encode())
    if image.rootfs is not None:
        h.update(f"rootfs:{image.rootfs.name}:{image.changes!r}".encode())
    for base in image.base:
        h.update(f"base:{(base_keys or {}).get(base, '')}".encode())
    return h.hexdigest()[:16]


def _stamp(layout: Layout, kind: str, image: str) -> Path:
    safe = image.replace("/", "_").replace(":", "_")
    return layout.cache / "image-stamps" / kind / safe


def docker_images(layout: Layout) -> set[str]:
    out = docker(layout, "images", "--format", "{{.Repository}}:{{.Tag}}", capture=True)
    return {line.strip() for line in out.splitlines() if line.strip()}


def control_plane_images(plane: versions.ControlPlane, binaries: dict[str, Path]) -> list[Image]:
    """One minor's virtual control-plane images under upstream's names (``binaries``:
    build.build_control_plane(plane)).  The host's own version's are in the catalogue too: same images."""
    return [
        Image(plane.apiserver_image, "kube-component.Dockerfile", {"component": binaries["kube-apiserver"]},
              build_args={"NAME": "kube-apiserver"}),
        Image(plane.controller_manager_image, "kube-component.Dockerfile",
              {"component": binaries["kube-controller-manager"]}, build_args={"NAME": "kube-controller-manager"}),
        Image(plane.etcd_image, "etcd.Dockerfile", {"etcd": binaries["etcd"]}),
    ]


def build_images(layout: Layout, binaries: dict[str, Path], todo: list[Image] | None = None) -> list[str]:
    """Builds what changed of ``todo`` (default: the catalogue); returns the names of all its images."""
    present = docker_images(layout)
    names = []
    keys: dict[str, str] = {}
    for image in catalogue(binaries, layout) if todo is None else todo:
        names.append(image.name)
        for base in image.base:
            if base not in keys:  # a base built before, outside ``todo`` (a suite's agnhost on the tools root)
                base_stamp = _stamp(layout, "docker", base)
                keys[base] = base_stamp.read_text() if base_stamp.exists() else ""
        stamp = _stamp(layout, "docker", image.name)
        key = keys[image.name] = _key(image, keys)
        if image.name in present and stamp.exists() and stamp.read_text() == key:
            continue
        with step(f"image {image.name}"):
            if image.rootfs is not None:
                docker_import(layout, image.rootfs, image.name, image.changes)
            else:
                with tempfile.TemporaryDirectory(prefix="ctx-") as tmp:
                    ctx = Path(tmp)
                    for name, src in image.files.items():
                        shutil.copy2(src, ctx / name)
                    shutil.copy2(DOCKERFILES / image.dockerfile, ctx / "Dockerfile")
                    args = [a for k, v in image.build_args.items() for a in ("--build-arg", f"{k}={v}")]
                    docker(layout, "build", "-q", "--network", "host", *args, "-t", image.name, str(ctx))
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key)
    return names


def docker_import(layout: Layout, tarball: Path, name: str, changes: tuple[str, ...]) -> None:
    with open(tarball, "rb") as f:
        env = dict(os.environ, DOCKER_HOST=f"unix://{layout.docker_socket}")
        args = [a for c in changes for a in ("--change", c)]
        proc = subprocess.run(["/usr/bin/docker", "import", *args, "-", name], stdin=f, env=env, capture_output=True)
        if proc.returncode:
            raise HostError(f"docker import failed: {proc.stderr.decode()}")


def containerd_images(layout: Layout) -> set[str]:
    return {line.strip() for line in ctr(layout, "images", "ls", "-q").splitlines() if line.strip()}


def docker_image_id(layout: Layout, name: str) -> str:
    return docker(layout, "image", "inspect", "--format", "{{.Id}}", name, capture=True).strip()


def import_images(layout: Layout, names: list[str], *, force: bool = False) -> list[str]:
    """Copies images from docker into the host's containerd when missing or changed."""
    present = containerd_images(layout)
    todo = []
    for name in names:
        stamp = _stamp(layout, "containerd", name)
        image_id = docker_image_id(layout, name)
        if force or name not in present or not stamp.exists() or stamp.read_text() != image_id:
            todo.append((name, image_id, stamp))
    if not todo:
        return []
    with step(f"import {len(todo)} image(s) into containerd"):
        env = dict(os.environ, DOCKER_HOST=f"unix://{layout.docker_socket}")
        save = subprocess.Popen(["/usr/bin/docker", "save", *[t[0] for t in todo]], stdout=subprocess.PIPE, env=env)
        imp = subprocess.run(
            ["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io", "images", "import",
             "--no-unpack", "-"], stdin=save.stdout, capture_output=True)
        save.wait()
        if save.returncode or imp.returncode:
            raise HostError(f"image import failed: {imp.stderr.decode()[-2000:]}")
    for _name, image_id, stamp in todo:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(image_id)
    return [t[0] for t in todo]


def remove_images(layout: Layout, names: list[str]) -> None:
    """Removes images from the host's containerd and docker (e.g. to prove a test path loads them itself)."""
    present = containerd_images(layout)
    for name in names:
        if name in present:
            ctr(layout, "images", "rm", name)
        _stamp(layout, "containerd", name).unlink(missing_ok=True)
        env = dict(os.environ, DOCKER_HOST=f"unix://{layout.docker_socket}")
        subprocess.run(["/usr/bin/docker", "image", "rm", "-f", name], env=env, capture_output=True)


def docker_passthrough(layout: Layout, args: list[str]) -> int:
    """Runs the docker CLI against the host's image builder (e.g. to build the syncer image)."""
    env = dict(os.environ, DOCKER_HOST=f"unix://{layout.docker_socket}", DOCKER_BUILDKIT="0")
    client = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
    return subprocess.run([client, *args], env=env).returncode
