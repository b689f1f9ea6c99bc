"""The syncer image: built from the syncer source shipped inside the package, tagged by its content.

The wheel carries the syncer's source and Dockerfile (``pytest_vcluster/_syncer``; in a checkout,
``syncer/``). The image reference is ``<repository>:<package version>-<content hash>``: the hash
covers every file the image is built from and the base image, so an upgraded or edited plugin never
runs an old syncer. The build reaches no package index: the wheels the image installs are fetched on
this machine by pip (for the image's Python and CPU), then installed from the build context.

No pytest import on this path: ``python -m pytest_vcluster syncer-image`` uses it too.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files
from .errors import ConfigError, ImageBuildError
from .run import complete, require, run
from .settings import DEFAULT_SYNCER_BASE_IMAGE, default_chart_path

if TYPE_CHECKING:
    from .host import Host

#: the base image of the syncer (Python :data:`IMAGE_PYTHON`); ``--vcluster-syncer-base-image`` changes it
DEFAULT_BASE_IMAGE = DEFAULT_SYNCER_BASE_IMAGE
#: the Python version of the base image: the wheels are fetched for it
IMAGE_PYTHON = "3.11"
#: the manylinux tags a Debian bookworm base image (glibc 2.36) runs, newest first; listed one by one
#: because older pips do not expand ``--platform manylinux_2_36_x86_64`` to the older tags
IMAGE_MANYLINUX = (
    "manylinux_2_36", "manylinux_2_34", "manylinux_2_31", "manylinux_2_28", "manylinux_2_27", "manylinux_2_24",
    "manylinux_2_17", "manylinux2014", "manylinux_2_12", "manylinux2010", "manylinux_2_5", "manylinux1",
)
#: image label holding the content hash the image was built from
CONTENT_LABEL = "io.pytest-vcluster.syncer.content"

_BUILD_FILES = ("Dockerfile", "pyproject.toml", "README.md")
_SKIP_PARTS = {"__pycache__", ".wheels"}
_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageRef:
    """An image reference split the way the chart's ``image`` blocks want it."""

    repository: str
    tag: str

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"

    def values(self) -> dict[str, dict[str, dict[str, str]]]:
        """Chart values selecting this image for the syncer container."""
        return {"syncer": {"image": {"repository": self.repository, "tag": self.tag}}}


def parse_ref(text: str, *, source: str = "--vcluster-syncer-image") -> ImageRef:
    """``registry/repo:tag`` -> :class:`ImageRef`.

    A reference without a tag is refused (``latest`` is what makes test runs use stale syncers), and so
    is a digest: the chart's image blocks take a repository and a tag.
    """
    ref = text.strip()
    example = "registry.example.com/team/syncer:v1"
    if "@" in ref or not has_tag(ref):
        raise ConfigError(
            f"{source}={text!r} is not valid: give REPOSITORY:TAG, e.g. {example} "
            "(build and push one with: python -m pytest_vcluster syncer-image --push REPOSITORY)"
        )
    repository, _, tag = ref.rpartition(":")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag) or not re.fullmatch(r"[a-z0-9./_:-]+", repository):
        raise ConfigError(
            f"{source}={text!r} is not valid: give REPOSITORY:TAG with a lowercase repository, e.g. {example}"
        )
    return ImageRef(repository, tag)


def has_tag(ref: str) -> bool:
    last = ref.rsplit("/", 1)[-1]
    return ":" in last


# --------------------------------------------------------------------------- source and tag


def source_dir() -> Path:
    """The syncer source shipped with pytest-vcluster (Dockerfile and ``vcluster_syncer/``, :data:`files.SYNCER`)."""
    src = files.package_file(*files.SYNCER[:2], holding=files.SYNCER[2])
    if src is None:
        raise ImageBuildError(
            "the syncer source shipped with pytest-vcluster was not found (looked in "
            f"{files.looked_in(*files.SYNCER[:2])}): reinstall pytest-vcluster, "
            "or pass --vcluster-syncer-image=REF of an image you built"
        )
    return src


def source_files(src: Path) -> Iterator[Path]:
    """The files an image is built from, in a stable order (relative to ``src``)."""
    for name in _BUILD_FILES:
        if (src / name).is_file():
            yield Path(name)
    for path in sorted((src / "vcluster_syncer").rglob("*")):
        rel = path.relative_to(src)
        if path.is_file() and not _SKIP_PARTS.intersection(rel.parts) and path.suffix not in (".pyc", ".pyo"):
            yield rel


def content_hash(src: Path, base_image: str) -> str:
    """sha256 over the base image's name and every build file's path and bytes."""
    digest = hashlib.sha256()
    digest.update(f"base {base_image}\n".encode())
    for rel in source_files(src):
        data = (src / rel).read_bytes()
        digest.update(f"{rel.as_posix()} {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def package_version() -> str:
    from .version import __version__

    return __version__


def default_repository() -> str:
    """The chart's default ``syncer.image.repository`` (read from the shipped chart: one source of truth)."""
    import yaml

    values = yaml.safe_load((default_chart_path() / "values.yaml").read_text())
    return str(values["syncer"]["image"]["repository"])


def tag_for(version: str, digest: str) -> str:
    """``<version>-<first 12 hex of the content hash>`` (``+`` of a local version becomes ``_``)."""
    return f"{version.replace('+', '_')}-{digest[:12]}"


def default_ref(base_image: str = DEFAULT_BASE_IMAGE, repository: str | None = None) -> tuple[ImageRef, str]:
    """The reference this package's syncer is built under, and its content hash."""
    digest = content_hash(source_dir(), base_image)
    return ImageRef(repository or default_repository(), tag_for(package_version(), digest)), digest


# --------------------------------------------------------------------------- docker


def docker_binary() -> str:
    return require("docker", "building the syncer image needs the `docker` command, which is not on PATH: install "
                             "docker, or pass --vcluster-syncer-image=REF of an image the host can pull")


def _run(command: list[str], *, what: str, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    return run(command, what=what, timeout=timeout, env=env, error=ImageBuildError)


def docker_has(ref: ImageRef | str, docker: str | None = None) -> bool:
    """True when the local docker holds the image."""
    proc = complete([docker or docker_binary(), "image", "inspect", "--format", "{{.Id}}", str(ref)],
                    what=f"asking docker for the image {ref}", timeout=60, error=ImageBuildError)
    return proc.returncode == 0


def docker_arch(docker: str) -> str:
    """The CPU of the docker engine (``x86_64`` or ``aarch64``), for the wheels to fetch."""
    raw = _run([docker, "version", "--format", "{{.Server.Arch}}"], what="asking docker its CPU", timeout=60).strip()
    return _ARCH.get(raw, _ARCH.get(platform.machine(), platform.machine()))


def _build_env(docker: str) -> dict[str, str]:
    """Without the buildx plugin the docker client needs the classic builder."""
    env = dict(os.environ)
    if "DOCKER_BUILDKIT" not in env:
        has_buildx = complete([docker, "buildx", "version"], what="asking docker for buildx", timeout=60,
                              error=ImageBuildError).returncode == 0
        if not has_buildx:
            env["DOCKER_BUILDKIT"] = "0"
    return env


def fetch_wheels(src: Path, dest: Path, arch: str, progress: Progress) -> None:
    """The syncer's wheel and its dependencies' wheels for the image's Python and CPU, into ``dest``."""
    import sys

    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    dest.mkdir(parents=True, exist_ok=True)
    progress("building the syncer wheel")
    _run([*pip, "wheel", "--no-deps", "-q", "-w", str(dest), str(src)], what="building the syncer wheel")
    wheels = sorted(dest.glob("vcluster_syncer-*.whl"))
    if not wheels:
        raise ImageBuildError(f"building the syncer wheel left no vcluster_syncer wheel in {dest}")
    progress(f"fetching its dependencies for Python {IMAGE_PYTHON} on {arch}")
    _run(
        [
            *pip, "download", "-q", "--only-binary=:all:", "--dest", str(dest),
            "--python-version", IMAGE_PYTHON, "--implementation", "cp",
            *[arg for tag in IMAGE_MANYLINUX for arg in ("--platform", f"{tag}_{arch}")], str(wheels[-1]),
        ],
        what="fetching the syncer's dependencies (pip download)",
    )


def build(
    ref: ImageRef,
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
    digest: str | None = None,
    progress: Progress = lambda _line: None,
) -> None:
    """Build the syncer image ``ref`` with the local docker from the shipped source."""
    docker = docker_binary()
    src = source_dir()
    digest = digest or content_hash(src, base_image)
    with tempfile.TemporaryDirectory(prefix="pytest-vcluster-syncer-") as tmp:
        context = Path(tmp) / "context"
        context.mkdir()
        for rel in source_files(src):
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, context / rel)
        fetch_wheels(context, context / ".wheels", docker_arch(docker), progress)
        progress(f"docker build {ref} (base {base_image})")
        _run(
            [
                docker, "build", "-q", "--network", "host",
                "--build-arg", f"BASE_IMAGE={base_image}", "--build-arg", "WHEELS_ONLY=1",
                "--label", f"{CONTENT_LABEL}={digest}", "-t", str(ref), str(context),
            ],
            what=f"building the syncer image {ref}",
            env=_build_env(docker),
        )


def push(ref: ImageRef, progress: Progress = lambda _line: None) -> None:
    progress(f"docker push {ref}")
    _run([docker_binary(), "push", str(ref)], what=f"pushing the syncer image {ref}")


def tag(source: ImageRef, target: ImageRef) -> None:
    _run([docker_binary(), "tag", str(source), str(target)], what=f"tagging {source} as {target}")


# --------------------------------------------------------------------------- the host


def on_every_node(core_v1: Any, ref: ImageRef) -> bool | None:
    """True when every node of the host reports the image (``status.images``: what the kubelet holds); ``None``
    when the host does not let the plugin list nodes (a restricted CI account needs no such right)."""
    from kubernetes.client.exceptions import ApiException

    try:
        nodes = core_v1.list_node(_request_timeout=30).items
    except ApiException as exc:
        if exc.status == 403:
            return None
        raise
    if not nodes:
        return False
    wanted = str(ref)
    for node in nodes:
        names = {name for image in (node.status.images or []) for name in (image.names or [])}
        if wanted not in names:
            return False
    return True


def chart_values(host: Host, syncer_image: str | None, *, base_image: str = DEFAULT_BASE_IMAGE,
                 progress: Progress | None = None) -> dict[str, Any]:
    """The chart values selecting the syncer image ``syncer_image``: none for ``None`` (the chart's default);
    for ``"auto"`` this package's image, made startable on the host first (:func:`ensure_on_host`); else the
    ``REPOSITORY:TAG`` given."""
    if syncer_image is None:
        return {}
    if syncer_image == "auto":
        return ensure_on_host(host, base_image=base_image, progress=progress or (lambda _line: None)).values()
    return parse_ref(syncer_image, source="syncer_image").values()


def ensure_on_host(host: Host, *, base_image: str = DEFAULT_BASE_IMAGE, progress: Progress) -> ImageRef:
    """Make the host able to start this package's syncer image, and return its reference.

    Already on every node: nothing to do. A kind host: build it (if the local docker lacks it) and
    ``kind load`` it. A host with an image loader: build it and hand it to the loader. Any other host
    must pull it: the reference is returned as is, and a failed pull is reported within seconds by
    the readiness check, with the fix.
    """
    import time

    ref, digest = default_ref(base_image)
    core = host.core_v1()
    present = on_every_node(core, ref)
    if present:
        progress(f"syncer image {ref}: already on the host")
        return ref
    if present is None:
        progress(f"syncer image {ref}: the host does not let this account list nodes; not checking them")
    provider = host.provider
    can_load = (provider == "kind" and host.kind_cluster) or host.image_loader
    if not can_load:
        progress(f"syncer image {ref}: not on the host's nodes; they will pull it")
        return ref
    started = time.monotonic()
    docker = docker_binary()
    if docker_has(ref, docker):
        progress(f"syncer image {ref}: found in the local docker")
    else:
        build(ref, base_image=base_image, digest=digest, progress=lambda line: progress(f"syncer image: {line}"))
        progress(f"syncer image {ref}: built in {time.monotonic() - started:.1f}s")
    loaded = time.monotonic()
    how = f"kind load into cluster {host.kind_cluster}" if provider == "kind" else "the image loader"
    progress(f"syncer image {ref}: loading with {how}")
    host.load_image(str(ref))
    progress(f"syncer image {ref}: loaded in {time.monotonic() - loaded:.1f}s")
    return ref
