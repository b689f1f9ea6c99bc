"""hack/host's local registry: where upstream image names land in it, containerd's mirror files, its config."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport, from the test extra
    import tomli as tomllib

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import cluster, registry  # noqa: E402
from _host.layout import REGISTRY_ADDRESS, Layout  # noqa: E402


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        # Docker Hub short names: library/ and :latest are implied.
        ("busybox", "library/busybox:latest"),
        ("busybox:1.36", "library/busybox:1.36"),
        ("library/busybox:1.36", "library/busybox:1.36"),
        ("docker.io/library/busybox:1.36", "library/busybox:1.36"),
        ("docker.io/busybox", "library/busybox:latest"),
        ("index.docker.io/library/busybox:1.36", "library/busybox:1.36"),
        ("foo/bar", "foo/bar:latest"),
        ("rancher/local-path-provisioner:v0.0.30", "rancher/local-path-provisioner:v0.0.30"),
        # Other registries: the registry is dropped, the path kept.
        ("registry.k8s.io/e2e-test-images/agnhost:2.53", "e2e-test-images/agnhost:2.53"),
        ("registry.k8s.io/pause:3.10", "pause:3.10"),
        ("k8s.gcr.io/pause", "pause:latest"),
        ("quay.io/prometheus/node-exporter:v1.8.0", "prometheus/node-exporter:v1.8.0"),
        ("ghcr.io/org/team/app:1", "org/team/app:1"),
        # Registries with ports, and localhost.
        ("localhost:5001/my-app:dev", "my-app:dev"),
        ("localhost:5001/my-app", "my-app:latest"),
        ("localhost/my-app:dev", "my-app:dev"),
        ("127.0.0.1:5001/team/my-app:dev", "team/my-app:dev"),
        ("myregistry:5000/app:1.0", "app:1.0"),
        # A port-less single-word first component is a Docker Hub user, not a registry.
        ("myregistry/app:1.0", "myregistry/app:1.0"),
        # Digests are kept as references by digest.
        ("busybox@sha256:" + "a" * 64, "library/busybox@sha256:" + "a" * 64),
        ("registry.k8s.io/pause:3.10@sha256:" + "b" * 64, "pause@sha256:" + "b" * 64),
    ],
)
def test_repository_path(image: str, expected: str) -> None:
    assert registry.repository_path(image) == expected


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("busybox", ("docker.io", "library/busybox", ":latest")),
        ("registry.k8s.io/e2e-test-images/agnhost:2.53", ("registry.k8s.io", "e2e-test-images/agnhost", ":2.53")),
        ("localhost:5001/my-app:dev", ("localhost:5001", "my-app", ":dev")),
        ("foo/bar", ("docker.io", "foo/bar", ":latest")),
    ],
)
def test_split_name(image: str, expected: tuple[str, str, str]) -> None:
    assert registry.split_name(image) == expected


@pytest.mark.parametrize("bad", ["", " busybox", "busybox ", "Busybox", "docker.io/", "a//b"])
def test_split_name_refuses_what_is_not_an_image_name(bad: str) -> None:
    with pytest.raises(ValueError, match="not an image name"):
        registry.split_name(bad)


def test_local_reference_is_where_a_pull_of_the_upstream_name_finds_it() -> None:
    assert registry.local_reference("docker.io/library/busybox:1.36") == f"{REGISTRY_ADDRESS}/library/busybox:1.36"
    assert registry.local_reference("busybox:1.36") == registry.local_reference("docker.io/library/busybox:1.36")


@pytest.mark.parametrize("name", registry.MIRRORED_REGISTRIES)
def test_hosts_toml_sends_pulls_and_resolves_to_the_local_registry_alone_over_http(name: str) -> None:
    doc = tomllib.loads(registry.hosts_toml(name))
    assert doc["host"] == {f"http://{REGISTRY_ADDRESS}": {"capabilities": ["pull", "resolve"]}}
    # The server (tried after the hosts) is the local registry too: nothing falls back to the network.
    assert doc["server"] == f"http://{REGISTRY_ADDRESS}"


def test_mirrored_registries_cover_the_upstreams_and_the_local_name() -> None:
    assert {"docker.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io", "quay.io", "ghcr.io", "localhost:5001"} == set(
        registry.MIRRORED_REGISTRIES
    )


def test_registry_config(tmp_path: Path) -> None:
    doc = yaml.safe_load(registry.config_yaml(tmp_path / "store"))
    assert doc["version"] == 0.1
    assert doc["storage"]["filesystem"] == {"rootdirectory": str(tmp_path / "store")}
    assert doc["storage"]["delete"] == {"enabled": True}
    assert doc["http"]["addr"] == REGISTRY_ADDRESS
    assert "auth" not in doc


def test_write_configs_writes_one_hosts_toml_per_registry_and_keeps_storage_in_the_cache(tmp_path: Path) -> None:
    layout = Layout(state=tmp_path / "state", run=tmp_path / "run", cache=tmp_path / "cache")
    registry.write_configs(layout)
    found = sorted(p.parent.name for p in registry.certs_d(layout).glob("*/hosts.toml"))
    assert found == sorted(registry.MIRRORED_REGISTRIES)
    assert registry.storage(layout).is_dir()
    assert registry.storage(layout).is_relative_to(layout.cache)
    config = yaml.safe_load(registry.config_file(layout).read_text())
    assert config["storage"]["filesystem"]["rootdirectory"] == str(registry.storage(layout))


def test_containerd_config_points_the_cri_at_the_certs_d(tmp_path: Path) -> None:
    layout = Layout(state=tmp_path / "state", run=tmp_path / "run", cache=tmp_path / "cache")
    doc = tomllib.loads(cluster.containerd_config(layout))
    assert doc["version"] == 2
    cri = doc["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["registry"] == {"config_path": str(registry.certs_d(layout))}
    # No mirrors of the deprecated kind beside config_path (containerd refuses both at once).
    assert "mirrors" not in cri["registry"]


def test_the_registry_is_a_host_process_stopped_before_the_runtime() -> None:
    order = cluster.PROCESS_ORDER
    assert order.index("registry") < order.index("dockerd") < order.index("containerd")
    # It is restarted alone when it stops: its data is in the cache, the workloads do not depend on it.
    assert "registry" not in cluster.CORE


def test_the_registry_comes_from_debians_package_installed_by_install_deps() -> None:
    assert registry.BINARY == Path("/usr/bin/docker-registry")
    deps = (Path(__file__).resolve().parents[2] / "hack" / "install-deps").read_text()
    assert " docker-registry" in deps


def test_push_forgets_containerds_copy_of_an_alias_but_keeps_an_image_built_under_its_upstream_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a fresh machine the host imports CoreDNS under ``registry.k8s.io/coredns/coredns`` and its pod runs it
    with imagePullPolicy Never: pushing that image under the same name must not remove it from containerd
    (it did, and a cold ``hack/host up`` waited for CoreDNS for ever). An alias pushed from another image
    (``busybox:1.36`` from our busybox) replaces whatever containerd pulled under the alias."""
    from _host import images

    coredns = "registry.k8s.io/coredns/coredns:v1.12.0"
    busybox, alias = "pytest-vcluster.local/busybox:1.35", "docker.io/library/busybox:1.36"
    removed: list[str] = []

    def docker(layout: Layout, *args: str, capture: bool = False, **kwargs: object) -> str:
        return "sha256:1 sha256:2" if args[:2] == ("image", "inspect") else ""

    def ctr(layout: Layout, *args: str, **kwargs: object) -> str:
        if args[:2] == ("images", "rm"):
            removed.extend(args[2:])
        return ""

    monkeypatch.setattr(images, "docker", docker)
    monkeypatch.setattr(images, "ctr", ctr)
    monkeypatch.setattr(images, "containerd_images", lambda layout: {coredns, busybox, alias})
    layout = Layout(state=tmp_path / "state", run=tmp_path / "run", cache=tmp_path / "cache")

    pushed = registry.push(layout, [(coredns, coredns), (alias, busybox)])

    assert pushed == [coredns, alias]
    assert removed == [alias]
