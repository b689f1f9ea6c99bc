"""hack/host's image catalogue and the upstream names it serves (versions.SERVED_IMAGES / MIRRORED_IMAGES)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import e2e_images, images, versions  # noqa: E402
from _host.layout import Layout  # noqa: E402

MIRRORED_REGISTRIES = {"docker.io", "registry.k8s.io", "k8s.gcr.io"}
# registry/path:tag, fully qualified, lower-case path components, a tag (no digests here).
UPSTREAM = re.compile(
    r"^(?P<registry>[a-z0-9.-]+\.[a-z]+)/(?P<path>[a-z0-9._-]+(?:/[a-z0-9._-]+)*):(?P<tag>[\w][\w.-]{0,127})$")


@pytest.fixture
def catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[images.Image]:
    """The catalogue with the slow builders replaced by files in tmp_path (the list itself is what is tested)."""
    def fake(name: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
        return path

    kube = tmp_path / "kubernetes"
    for rel in ("agnhost/porter/localhost.crt", "agnhost/porter/localhost.key", "kitten/html/kitten.jpg",
                "kitten/html/data.json", "nautilus/html/nautilus.jpg", "nautilus/html/data.json"):
        fake(f"kubernetes/test/images/{rel}")
    monkeypatch.setattr(images, "build_pause", lambda layout: fake("pause"))
    monkeypatch.setattr(images, "python_rootfs", lambda layout: fake("bookworm-python3.tar"))
    monkeypatch.setattr(e2e_images, "tools_rootfs", lambda cache: fake("bookworm-tools.tar"))
    monkeypatch.setattr(e2e_images, "kubernetes_source", lambda: kube)
    monkeypatch.setattr(e2e_images, "busybox_root", lambda cache: fake("busybox-root.tar"))
    monkeypatch.setattr(images, "go_build", lambda build: tmp_path / f"gobuild-{build.name}")
    bins = {name: fake(f"bin/{name}") for name in ("kube-apiserver", "kube-controller-manager", "etcd", "coredns")}
    layout = Layout(state=tmp_path / "state", run=tmp_path / "run", cache=tmp_path / "cache")
    return images.catalogue(bins, layout)


def test_every_mirrored_image_is_built_by_the_catalogue(catalogue: list[images.Image]) -> None:
    built = {image.name for image in catalogue}
    missing = {up: local for up, local in versions.MIRRORED_IMAGES.items() if local not in built}
    assert not missing


def test_mirrored_images_are_the_served_records() -> None:
    upstream = [s.upstream for s in versions.SERVED_IMAGES]
    assert len(upstream) == len(set(upstream)), "an upstream name is listed twice"
    assert versions.MIRRORED_IMAGES == {s.upstream: s.local for s in versions.SERVED_IMAGES}


@pytest.mark.parametrize("name", sorted(versions.MIRRORED_IMAGES))
def test_upstream_name_parses_and_is_mirrored(name: str) -> None:
    m = UPSTREAM.match(name)
    assert m, name
    assert m["registry"] in MIRRORED_REGISTRIES
    if m["registry"] == "docker.io" and "/" not in m["path"]:
        pytest.fail(f"{name}: Docker Hub's official images live under library/")


@pytest.mark.parametrize("served", versions.SERVED_IMAGES, ids=lambda s: s.upstream)
def test_each_served_image_says_what_it_is(served: versions.Served) -> None:
    assert served.note.strip()
    if served.same:
        # A faithful rebuild carries the upstream name itself (the chart's defaults name it).
        assert served.local.split("/", 1)[1].split(":")[0] in served.upstream
    else:
        # A stand-in never takes its upstream name in the host's docker: it is a project image or another tag.
        assert served.local != served.upstream
        assert served.local.startswith("pytest-vcluster.local/") or served.local in versions.MIRRORED_IMAGES
        assert len(served.note) > 40, "a stand-in's note says what it keeps and what it lacks"


def test_the_conformance_images_are_served() -> None:
    """The e2e-test-images conformance specs run (test/utils/image/manifest.go of versions.KUBERNETES)."""
    e2e = "registry.k8s.io/e2e-test-images/"
    wanted = {f"{e2e}agnhost:2.53", f"{e2e}busybox:1.36.1-1", f"{e2e}httpd:2.4.38-4", f"{e2e}httpd:2.4.39-4",
              f"{e2e}jessie-dnsutils:1.7", f"{e2e}kitten:1.7", f"{e2e}nautilus:1.7", f"{e2e}nginx:1.14-4",
              f"{e2e}nginx:1.15-4", f"{e2e}nonewprivs:1.3", f"{e2e}nonroot:1.4", f"{e2e}sample-apiserver:1.29.2",
              "registry.k8s.io/pause:3.10", "registry.k8s.io/etcd:3.5.21-0"}
    assert wanted <= set(versions.MIRRORED_IMAGES)
    assert versions.MIRRORED_IMAGES[f"{e2e}agnhost:{versions.AGNHOST}"] == versions.AGNHOST_IMAGE


def test_busybox_names_run_the_working_build() -> None:
    for name, local in versions.MIRRORED_IMAGES.items():
        if "/busybox:" in name:
            assert local == versions.SHELL_IMAGE


def _from_lines(dockerfile: str, build_args: dict[str, str] | None = None) -> list[str]:
    """The images a Dockerfile starts FROM, ``${ARG}`` resolved as docker does: the build argument, else the
    ARG line's default."""
    text = (images.DOCKERFILES / dockerfile).read_text()
    args = dict(line[4:].split("=", 1) for line in text.splitlines() if line.startswith("ARG ") and "=" in line)
    args.update(build_args or {})
    return [re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], line.split()[1])
            for line in text.splitlines() if line.startswith("FROM ")]


def test_catalogue_order_and_bases(catalogue: list[images.Image]) -> None:
    names = [image.name for image in catalogue]
    assert len(names) == len(set(names))
    for i, image in enumerate(catalogue):
        for base in image.base:
            assert base in names[:i], f"{image.name}: base {base} is not built before it"
        if image.dockerfile:
            assert (images.DOCKERFILES / image.dockerfile).is_file()
            # Every project image a Dockerfile starts FROM is a declared base (so its change rebuilds this one).
            text = (images.DOCKERFILES / image.dockerfile).read_text()
            stages = {line.split(" AS ")[1].strip() for line in text.splitlines()
                      if line.startswith("FROM ") and " AS " in line}
            for ref in _from_lines(image.dockerfile, image.build_args):
                if ref != "scratch" and ref not in stages:
                    assert ref in image.base, f"{image.dockerfile}: FROM {ref} is not in the base of {image.name}"
        else:
            assert not image.files


def test_copied_files_are_in_the_context(catalogue: list[images.Image]) -> None:
    for image in catalogue:
        if not image.dockerfile:
            continue
        for line in (images.DOCKERFILES / image.dockerfile).read_text().splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                for src in line.split()[1:-1]:
                    assert src in image.files, f"{image.dockerfile}: COPY {src} is not in the context of {image.name}"


def test_a_base_change_rebuilds_what_is_built_from_it(tmp_path: Path) -> None:
    base = images.Image("pytest-vcluster.local/base:1", "busybox.Dockerfile")
    child = images.Image("pytest-vcluster.local/child:1", "web.Dockerfile", base=(base.name,))
    assert images._key(child, {base.name: "a"}) != images._key(child, {base.name: "b"})
    assert images._key(child, {base.name: "a"}) == images._key(child, {base.name: "a"})
    # A rootfs image's key follows its tarball's name (the tarball's name follows its package list).
    a = images.Image("x:1", "", rootfs=tmp_path / "a.tar")
    b = images.Image("x:1", "", rootfs=tmp_path / "b.tar")
    assert images._key(a) != images._key(b)


def test_readme_table_lists_every_served_image() -> None:
    table = e2e_images.readme_table()
    rows = table.splitlines()[2:]
    listed = [name for row in rows for name in re.findall(r"`([^`]+)`", row.split(" | ")[0])]
    assert sorted(listed) == sorted(s.upstream for s in versions.SERVED_IMAGES)
    assert all(row.count(" | ") == 3 for row in rows)


def test_docs_show_the_generated_table() -> None:
    """docs/host.md (where the README's section on the test host moved) shows the table of served images."""
    host_doc = (Path(__file__).resolve().parents[2] / "docs" / "host.md").read_text()
    assert e2e_images.readme_table().rstrip("\n") in host_doc, "regenerate docs/host.md's table of served images"


def test_busybox_source_is_upstreams_tarball_pinned_by_checksum() -> None:
    assert versions.BUSYBOX_SOURCE.endswith(f"/busybox_{versions.BUSYBOX}.orig.tar.bz2")
    assert re.fullmatch(r"[0-9a-f]{64}", versions.BUSYBOX_SOURCE_SHA256)
