"""The syncer image that travels with the package: references, content tags, and what the host is given."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_vcluster.core import images as _syncer_image
from pytest_vcluster.core.errors import VClusterError
from pytest_vcluster.core.images import ImageRef, content_hash, ensure_on_host, parse_ref

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reg.example.com/team/syncer:v1", ImageRef("reg.example.com/team/syncer", "v1")),
        ("localhost:5000/syncer:0.1.0-abc", ImageRef("localhost:5000/syncer", "0.1.0-abc")),
        ("syncer:dev", ImageRef("syncer", "dev")),
    ],
)
def test_parse_ref(text: str, expected: ImageRef) -> None:
    assert parse_ref(text) == expected
    assert str(parse_ref(text)) == text


@pytest.mark.parametrize(
    "text", ["reg.example.com/syncer", "localhost:5000/syncer", "reg/syncer@sha256:" + "a" * 64, "Reg/Syncer:v1", ""]
)
def test_parse_ref_refuses_untagged_digest_and_uppercase(text: str) -> None:
    with pytest.raises(VClusterError, match=r"^--vcluster-syncer-image='.*' is not valid: give REPOSITORY:TAG"):
        parse_ref(text)


def test_ref_values_select_the_syncer_image() -> None:
    assert ImageRef("r/s", "t").values() == {"syncer": {"image": {"repository": "r/s", "tag": "t"}}}


def _copy_source(tmp_path: Path) -> Path:
    src = tmp_path / "syncer"
    ignore = shutil.ignore_patterns("__pycache__", ".wheels", "*.egg-info")
    shutil.copytree(_syncer_image.source_dir(), src, ignore=ignore)
    return src


def test_content_hash_follows_the_source_and_base(tmp_path: Path) -> None:
    src = _copy_source(tmp_path)
    first = content_hash(src, "base:1")
    assert content_hash(src, "base:1") == first
    assert content_hash(src, "base:2") != first
    (src / "vcluster_syncer" / "__pycache__").mkdir(exist_ok=True)
    (src / "vcluster_syncer" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    (src / ".wheels").mkdir(exist_ok=True)
    (src / ".wheels" / "x.whl").write_bytes(b"junk")
    assert content_hash(src, "base:1") == first  # caches and build leftovers do not count
    engine = src / "vcluster_syncer" / "engine.py"
    engine.write_text(engine.read_text() + "\n# changed\n")
    assert content_hash(src, "base:1") != first
    (src / "Dockerfile").write_text("FROM scratch\n")
    assert content_hash(src, "base:1") != first


def test_default_ref_uses_the_charts_repository_and_package_version() -> None:
    import yaml

    ref, digest = _syncer_image.default_ref("base:1")
    values = yaml.safe_load((REPO / "chart" / "values.yaml").read_text())
    assert ref.repository == values["syncer"]["image"]["repository"]
    from pytest_vcluster import __version__

    assert ref.tag == f"{__version__}-{digest[:12]}"
    assert digest == content_hash(REPO / "syncer", "base:1")


def test_tag_for_local_versions() -> None:
    assert _syncer_image.tag_for("1.2.3+local.1", "f" * 64) == "1.2.3_local.1-ffffffffffff"


def test_wheel_ships_the_syncer_source_with_the_same_hash(tmp_path: Path) -> None:
    """The wheel carries the syncer source; the image built from a pip-installed plugin has the checkout's tag."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("pytest_vcluster-*.whl"))
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(unpacked)
    assert "pytest_vcluster/_syncer/Dockerfile" in names
    assert "pytest_vcluster/_syncer/vcluster_syncer/__main__.py" in names
    assert not [n for n in names if n.endswith(".pyc") or "/.wheels/" in n]
    shipped = unpacked / "pytest_vcluster" / "_syncer"
    assert content_hash(shipped, "b") == content_hash(REPO / "syncer", "b")


# --------------------------------------------------------------------------- the host


def _node(*names: str) -> Any:
    return SimpleNamespace(status=SimpleNamespace(images=[SimpleNamespace(names=list(names))]))


class FakeCore:
    def __init__(self, nodes: list[Any]) -> None:
        self.nodes = nodes

    def list_node(self, **kw: Any) -> Any:
        return SimpleNamespace(items=self.nodes)


class FakeHost:
    def __init__(self, core: FakeCore, provider: str = "kubeconfig", kind_cluster: str | None = None,
                 image_loader: str | None = None) -> None:
        self.core, self.provider, self.kind_cluster, self.image_loader = core, provider, kind_cluster, image_loader
        self.loaded: list[str] = []

    def core_v1(self) -> FakeCore:
        return self.core

    def load_image(self, name: str) -> None:
        self.loaded.append(name)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records docker builds instead of running them; the local docker holds what was built."""
    builds: list[str] = []
    monkeypatch.setattr(_syncer_image, "docker_binary", lambda: "/bin/docker")
    monkeypatch.setattr(_syncer_image, "docker_has", lambda ref, docker=None: str(ref) in builds)
    monkeypatch.setattr(_syncer_image, "build", lambda ref, **kw: builds.append(str(ref)))
    return builds


def test_image_on_every_node_is_not_built_or_loaded(built: list[str]) -> None:
    ref, _ = _syncer_image.default_ref("b")
    host = FakeHost(FakeCore([_node("x", str(ref)), _node(str(ref))]), provider="kind", kind_cluster="k")
    lines: list[str] = []
    assert ensure_on_host(host, base_image="b", progress=lines.append) == ref  # type: ignore[arg-type]
    assert (built, host.loaded) == ([], [])
    assert lines == [f"syncer image {ref}: already on the host"]


def test_kind_host_builds_then_loads(built: list[str]) -> None:
    ref, _ = _syncer_image.default_ref("b")
    host = FakeHost(FakeCore([_node(str(ref)), _node("other")]), provider="kind", kind_cluster="k")
    lines: list[str] = []
    ensure_on_host(host, base_image="b", progress=lines.append)  # type: ignore[arg-type]
    assert built == [str(ref)] and host.loaded == [str(ref)]
    assert f"syncer image {ref}: loading with kind load into cluster k" in lines
    ensure_on_host(host, base_image="b", progress=lines.append)  # type: ignore[arg-type]
    assert built == [str(ref)]  # the local docker has it now: loaded again, not rebuilt
    assert host.loaded == [str(ref), str(ref)]


def test_loader_host_builds_then_loads(built: list[str]) -> None:
    ref, _ = _syncer_image.default_ref("b")
    host = FakeHost(FakeCore([_node()]), image_loader="hack/host load-image")
    ensure_on_host(host, base_image="b", progress=lambda _: None)  # type: ignore[arg-type]
    assert built == [str(ref)] and host.loaded == [str(ref)]


def test_host_without_a_way_to_load_pulls(built: list[str]) -> None:
    ref, _ = _syncer_image.default_ref("b")
    host = FakeHost(FakeCore([_node()]))
    lines: list[str] = []
    assert ensure_on_host(host, base_image="b", progress=lines.append) == ref  # type: ignore[arg-type]
    assert (built, host.loaded) == ([], [])
    assert lines == [f"syncer image {ref}: not on the host's nodes; they will pull it"]


def test_missing_docker_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_syncer_image.shutil, "which", lambda name: None)
    with pytest.raises(VClusterError, match=r"^building the syncer image needs the `docker` command, which is not on "
                                            r"PATH: install docker, or pass --vcluster-syncer-image=REF"):
        _syncer_image.docker_binary()


def test_cli_help_lists_push() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest_vcluster", "syncer-image", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "--push REF" in proc.stdout and "--base-image REF" in proc.stdout


# --------------------------------------------------------------------------- once per run, in the manager


def _manager(tmp_path: Path, worker: str, **settings: Any) -> Any:
    from pytest_vcluster.core.settings import Settings
    from pytest_vcluster.plugin.manager import VClusterManager

    return VClusterManager(Settings(**settings), run_id="abcdef", worker=worker, shared_dir=lambda: tmp_path / "shared",
                           workdir=lambda: tmp_path / worker, env={}, progress=lambda _: None)


def test_manager_ensures_the_image_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_ensure(host: Any, *, base_image: str, progress: Any) -> ImageRef:
        calls.append(base_image)
        return ImageRef("r/s", "1-abc")

    monkeypatch.setattr(_syncer_image, "ensure_on_host", fake_ensure)
    gw0, gw1 = _manager(tmp_path, "gw0", syncer_base_image="b:1"), _manager(tmp_path, "gw1", syncer_base_image="b:1")
    expected = {"syncer": {"image": {"repository": "r/s", "tag": "1-abc"}}}
    assert gw0._ensure_syncer_image(object()) == expected
    assert gw1._ensure_syncer_image(object()) == expected  # the other xdist worker reuses the result
    assert calls == ["b:1"]


def test_manager_uses_the_given_image_or_the_users_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_syncer_image, "ensure_on_host", lambda *a, **k: pytest.fail("must not build"))
    given = _manager(tmp_path, "m", syncer_image="reg.example.com/s:v2")
    assert given._ensure_syncer_image(object()) == {"syncer": {"image": {"repository": "reg.example.com/s",
                                                                          "tag": "v2"}}}
    users = _manager(tmp_path, "m", values={"syncer": {"image": {"tag": "mine"}}})
    assert users._ensure_syncer_image(object()) == {}


def test_a_failed_build_is_reported_to_every_worker_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def failing(host: Any, *, base_image: str, progress: Any) -> ImageRef:
        calls.append(base_image)
        raise _syncer_image.ImageBuildError("pip download failed")

    monkeypatch.setattr(_syncer_image, "ensure_on_host", failing)
    for worker in ("gw0", "gw1"):
        with pytest.raises(VClusterError, match="^pip download failed$"):
            _manager(tmp_path, worker)._ensure_syncer_image(object())
    assert len(calls) == 1


def test_wheels_fetched_for_every_manylinux_tag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    commands: list[list[str]] = []

    def fake_run(command: list[str], **kw: Any) -> str:
        commands.append(command)
        if "wheel" in command:
            (tmp_path / "vcluster_syncer-0.1.0-py3-none-any.whl").write_text("")
        return ""

    monkeypatch.setattr(_syncer_image, "_run", fake_run)
    _syncer_image.fetch_wheels(tmp_path, tmp_path, "x86_64", lambda _: None)
    download = commands[-1]
    platforms = [download[i + 1] for i, arg in enumerate(download) if arg == "--platform"]
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux2014_x86_64" in platforms
    assert "manylinux_2_34_x86_64" in platforms  # today's cryptography wheels


def test_chart_values_of_a_syncer_image_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """``VCluster.create(host, syncer_image=...)``: None keeps the chart's image, a REPOSITORY:TAG is used as given,
    "auto" puts this package's image on the host first (what hack/conformance and hack/bench use)."""
    host = object()
    assert _syncer_image.chart_values(host, None) == {}  # type: ignore[arg-type]
    assert _syncer_image.chart_values(host, "reg.example.com/s:v1") == {  # type: ignore[arg-type]
        "syncer": {"image": {"repository": "reg.example.com/s", "tag": "v1"}}}
    seen: list[Any] = []

    def ensure_on_host(on: Any, *, base_image: str, progress: Any) -> Any:
        seen.append((on, base_image))
        return _syncer_image.ImageRef("local/syncer", "0-abc")

    monkeypatch.setattr(_syncer_image, "ensure_on_host", ensure_on_host)
    assert _syncer_image.chart_values(host, "auto", base_image="py:3.11") == {  # type: ignore[arg-type]
        "syncer": {"image": {"repository": "local/syncer", "tag": "0-abc"}}}
    assert seen == [(host, "py:3.11")]
