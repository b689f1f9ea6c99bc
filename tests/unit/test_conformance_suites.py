"""hack/conformance per Kubernetes version: which suite a run builds (hack/_conformance.select_suite), its Go builds
(e2e.test, ginkgo, agnhost/nnp: hack/_host/build.py, e2e_images.py), the images it has the host serve
(versions.Suite.images, images.suite_images) and its sample file. Pure: nothing is built or run."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack"))
from _host import build, e2e_images, images, versions  # noqa: E402
from _host.layout import Layout  # noqa: E402

if "_conformance" not in sys.modules:  # test_conformance_report may have loaded it
    _spec = importlib.util.spec_from_file_location("_conformance", REPO / "hack" / "_conformance.py")
    assert _spec is not None and _spec.loader is not None
    sys.modules["_conformance"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["_conformance"])
conf = sys.modules["_conformance"]

E2E = "registry.k8s.io/e2e-test-images"


# ------------------------------------------------------------------ which suite a run builds


@pytest.mark.parametrize(("kubernetes", "target", "minor"), [
    # No --kubernetes: the chart's default minor (what users' virtual clusters run; CI's --target vcluster) ...
    (None, "vcluster", "1.37"),
    (None, "both", "1.37"),
    # ... except the host alone, which runs its own version's suite (the host is 1.33).
    (None, "host", "1.33"),
    ("1.33", "vcluster", "1.33"),
    ("1.33", "both", "1.33"),
    ("v1.33.13", "host", "1.33"),
    ("1.37", "host", "1.37"),
    ("v1.37", "vcluster", "1.37"),
    ("v1.37.2", "both", "1.37"),
])
def test_select_suite(kubernetes: str | None, target: str, minor: str) -> None:
    assert versions.DEFAULT_MINOR == "1.37" and versions.HOST_MINOR == "1.33"
    assert conf.select_suite(kubernetes, target) is versions.SUITES[minor]


@pytest.mark.parametrize(("kubernetes", "message"), [
    ("1.35", r"no conformance suite recorded for Kubernetes 1\.35 .*; suites: 1\.33, 1\.37$"),
    ("1.29", r"Kubernetes '1\.29' is not a supported virtual control plane"),
    ("v1.37.1", r"Kubernetes 'v1\.37\.1' is not a supported virtual control plane"),
])
def test_a_version_without_a_suite_is_refused(kubernetes: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        conf.select_suite(kubernetes, "vcluster")


def test_main_names_a_version_without_a_suite_before_anything_runs(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        conf.main(["--kubernetes", "1.36", "--report-dir", str(tmp_path / "reports")])
    assert exc.value.code == 2
    assert "hack/conformance: error: --kubernetes: no conformance suite recorded for Kubernetes 1.36" in (
        capsys.readouterr().err)
    assert not (tmp_path / "reports").exists()


def test_the_suites_are_pinned() -> None:
    """Each suite is its minor's control-plane patch (a new patch in the table needs its manifest.go rechecked),
    with the ginkgo its go.mod requires and the agnhost its manifest.go names."""
    got = {m: (s.kubernetes, s.ginkgo, s.agnhost, s.sample_apiserver) for m, s in versions.SUITES.items()}
    assert got == {
        "1.33": ("v1.33.13", "v2.21.0", "2.53", "v0.33.0"),
        "1.37": ("v1.37.2", "v2.32.0", "2.66.1", None),
    }
    for minor, suite in versions.SUITES.items():
        assert suite.minor == minor
        assert suite.kubernetes == versions.CONTROL_PLANES[minor].kubernetes
        assert suite.staging == versions.CONTROL_PLANES[minor].staging
    # The host's own suite is what the host always serves: no images of its own.
    assert versions.SUITES[versions.HOST_MINOR].images == ()
    assert versions.SUITES[versions.HOST_MINOR].agnhost_image == versions.AGNHOST_IMAGE


# ------------------------------------------------------------------ its Go builds


def test_the_host_suites_builds_keep_their_cache_keys() -> None:
    """conformance_builds() without a suite is the host's, as before: the same keys (cached e2e.test stays)."""
    e2e, ginkgo = build.conformance_builds()
    assert build.conformance_builds(versions.SUITES["1.33"]) == [e2e, ginkgo]
    assert (e2e.version, e2e.key(), ginkgo.version, ginkgo.key()) == ("v1.33.13", "517d2924597f", "v2.21.0",
                                                                      "f62b2a01d0a5")
    assert e2e.module_versions == (("k8s.io/sample-apiserver", "v0.33.0"),)
    assert e2e_images.agnhost_build().key() == "98ecafbbf3bc"
    assert e2e_images.agnhost_build() == e2e_images.agnhost_build(versions.KUBERNETES)


def test_the_137_suite_builds_at_v1_37_2() -> None:
    e2e, ginkgo, kubectl = build.conformance_builds(versions.SUITES["1.37"])
    assert (e2e.name, e2e.module, e2e.version, e2e.packages, e2e.staging_version) == (
        "e2e", "k8s.io/kubernetes", "v1.37.2", ("k8s.io/kubernetes/test/e2e",), "v0.37.2")
    assert e2e.test_package and e2e.module_versions == ()  # the proxy serves k8s.io/sample-apiserver v0.37.2
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2 " in e2e.ldflags
    assert "-X k8s.io/component-base/version.gitMinor=37 " in e2e.ldflags
    assert (ginkgo.module, ginkgo.version, ginkgo.packages) == (
        "github.com/onsi/ginkgo/v2", "v2.32.0", ("github.com/onsi/ginkgo/v2/ginkgo",))
    assert (e2e.key(), ginkgo.key()) == ("372666d55567", "80545f37170f")
    # Its own kubectl (the host's is v1.33.13, out of kubectl's one-minor skew against a 1.37 API server).
    assert (kubectl.name, kubectl.version, kubectl.packages, kubectl.ldflags, kubectl.staging_version) == (
        "kubectl", "v1.37.2", ("k8s.io/kubernetes/cmd/kubectl",), e2e.ldflags, "v0.37.2")
    assert not kubectl.test_package
    agnhost = e2e_images.agnhost_build("v1.37.2")
    assert (agnhost.version, agnhost.staging_version, agnhost.key()) == ("v1.37.2", "v0.37.2", "01fc8e627eca")
    assert agnhost.packages == e2e_images.agnhost_build().packages


def test_the_137_suite_shares_the_wrapper_module_of_the_137_control_plane() -> None:
    """e2e.test, agnhost and kube-apiserver of v1.37.2 resolve the same dependency versions (one wrapper go.mod
    but for its module line): Go's build cache shares their compiled packages, so CI's 1.37 control-plane build
    does most of the suite's."""
    upstream = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/onsi/ginkgo/v2 v2.32.0
\tk8s.io/api v0.0.0
\tk8s.io/sample-apiserver v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/sample-apiserver => ./staging/src/k8s.io/sample-apiserver
)
"""
    suite = versions.SUITES["1.37"]
    (kube_cp, _etcd) = build.control_plane_builds(versions.CONTROL_PLANES["1.37"])
    e2e, _ginkgo, kubectl = build.conformance_builds(suite)
    gomods = {build.wrapper_gomod(b, upstream).split("\n", 1)[1]
              for b in (e2e, kubectl, e2e_images.agnhost_build(suite.kubernetes), kube_cp)}
    assert len(gomods) == 1
    (gomod,) = gomods
    assert "\tk8s.io/sample-apiserver => k8s.io/sample-apiserver v0.37.2\n" in gomod


# ------------------------------------------------------------------ the images it has the host serve


def test_the_137_suite_serves_its_manifests_names() -> None:
    """test/utils/image/manifest.go of v1.37.2: every name its conformance specs pull is served (always, or for
    this suite), each by the image pinned here."""
    suite = versions.SUITES["1.37"]
    records = {s.upstream: s.local for s in suite.images}
    assert records == {
        f"{E2E}/agnhost:2.66.1": "pytest-vcluster.local/agnhost:2.66.1",
        f"{E2E}/agnhost:2.55": versions.AGNHOST_IMAGE,
        f"{E2E}/busybox:1.37.0-2": versions.SHELL_IMAGE,
        f"{E2E}/glibc-dns-testing:2.1.1": versions.JESSIE_DNSUTILS_IMAGE,
        f"{E2E}/nginx:1.27.0-2": versions.WEB_NGINX_IMAGE,
        f"{E2E}/nginx:1.28.0-2": versions.WEB_NGINX_IMAGE,
        f"{E2E}/kitten:1.8": "pytest-vcluster.local/kitten:1.8",
        f"{E2E}/nautilus:1.8": "pytest-vcluster.local/nautilus:1.8",
        f"{E2E}/nonewprivs:1.4": "pytest-vcluster.local/nonewprivs:1.4",
        f"{E2E}/nonroot:1.5": versions.NONROOT_IMAGE,
        "registry.k8s.io/pause:3.10.2": versions.PAUSE_IMAGE,
        "registry.k8s.io/etcd:3.7.0-0": "registry.k8s.io/etcd:3.7.0-0",
    }
    # sample-apiserver:1.29.2 is the same name in both manifests: always served.
    assert f"{E2E}/sample-apiserver:1.29.2" in versions.MIRRORED_IMAGES
    # Nothing the host always serves is served again, or differently.
    assert not set(records) & set(versions.MIRRORED_IMAGES)
    assert suite.agnhost_image == "pytest-vcluster.local/agnhost:2.66.1"


@pytest.mark.parametrize("served", [s for suite in versions.SUITES.values() for s in suite.images],
                         ids=lambda s: s.upstream)
def test_each_suite_image_says_what_it_is(served: versions.Served) -> None:
    assert re.fullmatch(r"(registry\.k8s\.io)/[a-z0-9./-]+:[\w.-]+", served.upstream), served.upstream
    assert served.note.strip()
    if served.same:
        assert served.local == served.upstream
    else:
        assert served.local != served.upstream
        assert served.local.startswith("pytest-vcluster.local/") or served.local in versions.MIRRORED_IMAGES
        assert len(served.note) > 40, "a stand-in's note says what it keeps and what it lacks"


@pytest.fixture
def fake_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """agnhost's build and the module's test/images as files in tmp_path; records what was built."""
    built: dict[str, Path] = {}

    def go_build(b: build.GoBuild) -> Path:
        built[f"{b.name}@{b.version}"] = tmp_path / f"gobuild-{b.name}-{b.version}"
        return built[f"{b.name}@{b.version}"]

    monkeypatch.setattr(images, "go_build", go_build)
    monkeypatch.setattr(e2e_images, "kubernetes_source", lambda version=versions.KUBERNETES: tmp_path / version)
    return built


def test_suite_images_builds_agnhost_and_its_images_at_the_suites_version(tmp_path: Path,
                                                                          fake_builds: dict[str, Path]) -> None:
    suite = versions.SUITES["1.37"]
    coredns = tmp_path / "coredns"
    todo = images.suite_images(suite, {"coredns": coredns})
    assert list(fake_builds) == ["agnhost@v1.37.2"]
    agnhost, pages = fake_builds["agnhost@v1.37.2"], tmp_path / "v1.37.2" / "test/images"
    assert [(i.name, i.dockerfile, i.base) for i in todo] == [
        ("pytest-vcluster.local/agnhost:2.66.1", "agnhost.Dockerfile", (versions.DEBIAN_TOOLS_IMAGE,)),
        ("pytest-vcluster.local/kitten:1.8", "agnhost-page.Dockerfile", ("pytest-vcluster.local/agnhost:2.66.1",)),
        ("pytest-vcluster.local/nautilus:1.8", "agnhost-page.Dockerfile", ("pytest-vcluster.local/agnhost:2.66.1",)),
        ("pytest-vcluster.local/nonewprivs:1.4", "nonewprivs.Dockerfile", (versions.SHELL_IMAGE,)),
    ]
    assert todo[0].files == {"agnhost": agnhost / "agnhost", "coredns": coredns,
                             "localhost.crt": pages / "agnhost/porter/localhost.crt",
                             "localhost.key": pages / "agnhost/porter/localhost.key"}
    assert todo[1].files == {"picture.jpg": pages / "kitten/html/kitten.jpg",
                             "data.json": pages / "kitten/html/data.json"}
    assert todo[1].build_args == {"AGNHOST": "pytest-vcluster.local/agnhost:2.66.1", "NAME": "kitten"}
    assert todo[3].files == {"nnp": agnhost / "nonewprivs"}
    # Every local name of the suite's records is built here or by the host's catalogue.
    catalogue_names = {versions.AGNHOST_IMAGE, versions.SHELL_IMAGE, versions.JESSIE_DNSUTILS_IMAGE,
                       versions.WEB_NGINX_IMAGE, versions.NONROOT_IMAGE, versions.PAUSE_IMAGE}
    assert {s.local for s in suite.images} == {i.name for i in todo} | catalogue_names | {
        versions.CONTROL_PLANES["1.37"].etcd_image}


def test_the_host_suite_builds_nothing_of_its_own(fake_builds: dict[str, Path]) -> None:
    assert images.suite_images(versions.SUITES["1.33"], {}) == []
    assert fake_builds == {}


def test_a_base_outside_the_build_list_keys_its_images_by_its_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    fake_builds: dict[str, Path]) -> None:
    """The suite's agnhost is built FROM the catalogue's tools image: a rebuilt tools image (a new stamp) rebuilds
    it, as within the catalogue."""
    layout = Layout(state=tmp_path / "state", run=tmp_path / "run", cache=tmp_path / "cache")
    built: list[str] = []
    monkeypatch.setattr(images, "docker_images", lambda layout: set())
    monkeypatch.setattr(images, "docker", lambda layout, *args, **kw: built.append(args[-2]) or "")
    coredns = tmp_path / "coredns"
    coredns.write_text("x")
    agnhost = fake_builds.setdefault("agnhost@v1.37.2", tmp_path / "gobuild-agnhost-v1.37.2")
    agnhost.mkdir(parents=True, exist_ok=True)
    (agnhost / "agnhost").write_text("a")
    pages = tmp_path / "v1.37.2" / "test/images/agnhost/porter"
    pages.mkdir(parents=True)
    for name in ("localhost.crt", "localhost.key"):
        (pages / name).write_text(name)
    todo = [images.suite_images(versions.SUITES["1.37"], {"coredns": coredns})[0]]
    tools_stamp = images._stamp(layout, "docker", versions.DEBIAN_TOOLS_IMAGE)
    tools_stamp.parent.mkdir(parents=True)
    keys = []
    for tools_key in ("one", "two"):
        tools_stamp.write_text(tools_key)
        images.build_images(layout, {}, todo)
        keys.append(images._stamp(layout, "docker", todo[0].name).read_text())
    assert keys[0] != keys[1]
    assert keys[0] == images._key(todo[0], {versions.DEBIAN_TOOLS_IMAGE: "one"})
    assert built == [todo[0].name] * 2


def test_the_page_dockerfile_builds_on_the_agnhost_it_is_given() -> None:
    text = (images.DOCKERFILES / "agnhost-page.Dockerfile").read_text()
    assert "ARG AGNHOST=pytest-vcluster.local/agnhost:2.53\nFROM ${AGNHOST}\n" in text
    assert versions.AGNHOST_IMAGE == "pytest-vcluster.local/agnhost:2.53"


def test_the_suite_tables_render() -> None:
    table = e2e_images.readme_table(versions.SUITES["1.37"].images)
    rows = table.splitlines()[2:]
    listed = [name for row in rows for name in re.findall(r"`([^`]+)`", row.split(" | ")[0])]
    assert sorted(listed) == sorted(s.upstream for s in versions.SUITES["1.37"].images)
    doc = (REPO / "docs" / "conformance.md").read_text()
    assert table.rstrip("\n") in doc, "regenerate docs/conformance.md's table of the 1.37 suite's images"


# ------------------------------------------------------------------ its sample


def _specs(path: Path) -> list[str]:
    return conf.read_sample(path)


def test_each_suite_has_a_sample_of_the_same_specs() -> None:
    """One sample per suite, the same 78 specs under each version's names: 1.37's framework moves
    [NodeConformance] after [Conformance] and drops [MinimumKubeletVersion:1.21], the Aggregator spec gained
    [LinuxOnly], two specs moved to "[sig-network] API Server"."""
    for minor in versions.SUITES:
        assert conf.sample_file(minor) == REPO / "hack" / f"conformance-sample-{minor}.txt"
        assert conf.sample_file(minor).is_file()
    old, new = _specs(conf.sample_file("1.33")), _specs(conf.sample_file("1.37"))
    assert len(old) == len(set(old)) == len(new) == len(set(new)) == 78
    moved = {
        "[sig-network] EndpointSlice should have Endpoints and EndpointSlices pointing to API Server [Conformance]":
            "[sig-network] API Server should have Endpoints and EndpointSlices pointing to API Server [Conformance]",
        "[sig-network] Services should provide secure master service [Conformance]":
            "[sig-network] API Server should provide secure master service [Conformance]",
    }

    def as_137(name: str) -> str:
        if name in moved:
            return moved[name]
        name = name.replace(" [MinimumKubeletVersion:1.21]", "")
        if "Sample API Server using the current Aggregator" in name:
            name = name.replace(" [Conformance]", " [LinuxOnly] [Conformance]")
        if "[NodeConformance]" in name:
            name = name.replace(" [NodeConformance]", "").replace(" [Conformance]", "")
            name += " [Conformance] [NodeConformance]"
        return name

    assert sorted(as_137(n) for n in old) == sorted(new)
    assert sum(as_137(n) != n for n in old) == 25
    for name in new:
        assert not re.search(r"\[(Serial|Disruptive|Slow)\]", name), name
