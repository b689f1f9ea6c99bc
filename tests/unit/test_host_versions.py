"""The table of virtual control-plane versions (chart/kubernetes-versions.yaml) as hack/_host/versions.py
reads it, and the builds and images hack/host makes of it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack"))
from _host import build, images, versions  # noqa: E402

TABLE = REPO / "chart" / "kubernetes-versions.yaml"


def test_versions_py_reads_the_table_as_yaml_does() -> None:
    """hack/_host reads the file without PyYAML (a fresh machine's python3 may lack it): same result."""
    data = yaml.safe_load(TABLE.read_text())
    assert set(data) == {"default", "versions"}
    assert versions.DEFAULT_MINOR == data["default"]
    assert {m: (p.kubernetes, p.etcd_tag) for m, p in versions.CONTROL_PLANES.items()} == {
        m: (v["kubernetes"], v["etcd"]) for m, v in data["versions"].items()
    }
    assert all(set(v) == {"kubernetes", "etcd"} for v in data["versions"].values())


def test_table_lists_each_supported_minor_with_its_patch_and_paired_etcd() -> None:
    """1.33 (the host's own version) to 1.37; each patch belongs to its minor, each etcd is a kubeadm tag."""
    assert list(versions.CONTROL_PLANES) == ["1.33", "1.34", "1.35", "1.36", "1.37"]
    for minor, plane in versions.CONTROL_PLANES.items():
        assert plane.minor == minor
        assert re.fullmatch(rf"v{re.escape(minor)}\.\d+", plane.kubernetes), plane
        assert re.fullmatch(r"3\.\d+\.\d+-0", plane.etcd_tag), plane
    # The host's own Kubernetes and etcd are the 1.33 entry: those binaries are built once for both.
    host = versions.CONTROL_PLANES["1.33"]
    assert (host.kubernetes, host.etcd, host.etcd_tag) == (versions.KUBERNETES, versions.ETCD, versions.ETCD_IMAGE_TAG)
    assert versions.CONTROL_PLANES["1.37"].etcd_tag == "3.7.0-0"  # kubeadm v1.37.2's DefaultEtcdVersion


def test_chart_defaults_are_the_default_minor_of_the_table() -> None:
    values = yaml.safe_load((REPO / "chart" / "values.yaml").read_text())["controlPlane"]
    plane = versions.CONTROL_PLANES[versions.DEFAULT_MINOR]
    assert values["apiServer"]["image"]["tag"] == plane.kubernetes
    assert values["controllerManager"]["image"]["tag"] == plane.kubernetes
    assert values["etcd"]["image"]["tag"] == plane.etcd_tag
    assert {values[c]["image"]["repository"] for c in ("apiServer", "controllerManager", "etcd")} == {
        i.rsplit(":", 1)[0] for i in plane.images
    }


def test_control_plane_accepts_a_minor_or_its_exact_patch() -> None:
    plane = versions.CONTROL_PLANES["1.35"]
    assert versions.control_plane("1.35") is plane
    assert versions.control_plane("v1.35") is plane
    assert versions.control_plane(plane.kubernetes) is plane
    assert plane.images == ("registry.k8s.io/kube-apiserver:" + plane.kubernetes,
                            "registry.k8s.io/kube-controller-manager:" + plane.kubernetes,
                            "registry.k8s.io/etcd:" + plane.etcd_tag)
    assert plane.chart_values() == {
        "controlPlane.apiServer.image.tag": plane.kubernetes,
        "controlPlane.controllerManager.image.tag": plane.kubernetes,
        "controlPlane.etcd.image.tag": plane.etcd_tag,
    }


@pytest.mark.parametrize("bad", ["1.30", "1.38", "v1.35.0", "latest", ""])
def test_an_unsupported_version_names_the_supported_ones(bad: str) -> None:
    with pytest.raises(ValueError, match=r"supported: 1\.33 \(v1\.33\.13\), 1\.34 .* 1\.37 \(v1\.37\.\d+\)"):
        versions.control_plane(bad)


def test_requested_control_planes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VCLUSTER_HOST_KUBERNETES", raising=False)
    assert [p.minor for p in versions.requested_control_planes()] == ["1.35"]
    monkeypatch.setenv("VCLUSTER_HOST_KUBERNETES", "1.36, 1.34,1.36")
    assert [p.minor for p in versions.requested_control_planes()] == ["1.36", "1.34"]
    assert [p.minor for p in versions.requested_control_planes("all")] == list(versions.CONTROL_PLANES)
    assert versions.requested_control_planes("") == []


def test_the_table_reader_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="unknown key 'extra'"):
        versions.read_table('default: "1.33"\nextra: 1\nversions:\n')
    with pytest.raises(ValueError, match="default '1.40' is not one of"):
        versions.read_table('default: "1.40"\nversions:\n  "1.33":\n    kubernetes: v1.33.1\n    etcd: 3.5.0-0\n')


def test_each_minor_builds_its_components_at_its_versions() -> None:
    """kube-apiserver and kube-controller-manager from k8s.io/kubernetes at the patch (staging modules at
    v0.<minor>.<patch>), etcd from its server module at the tag's version; the host's version reuses the
    host's builds."""
    assert build.control_plane_builds(versions.CONTROL_PLANES["1.33"]) == []
    for minor in ("1.34", "1.35", "1.36", "1.37"):
        plane = versions.CONTROL_PLANES[minor]
        kube, etcd = build.control_plane_builds(plane)
        assert (kube.module, kube.version, kube.staging_version) == (
            "k8s.io/kubernetes", plane.kubernetes, "v0." + plane.kubernetes[3:])
        assert [p.rsplit("/", 1)[1] for p in kube.packages] == ["kube-apiserver", "kube-controller-manager"]
        assert f"gitVersion={plane.kubernetes} " in kube.ldflags and f"gitMinor={minor[2:]} " in kube.ldflags
        assert (etcd.module, etcd.version) == ("go.etcd.io/etcd/server/v3", "v" + plane.etcd_tag[:-2])
    # Cache folders (name-version-key) differ per version.
    keys = {(b.name, b.version, b.key())
            for p in versions.CONTROL_PLANES.values() for b in build.control_plane_builds(p)}
    assert len(keys) == 8


def test_the_1_37_build_key_is_the_one_already_cached() -> None:
    """The first v1.37.2 build (2026-12-07) was made with these fields: a change of them rebuilds it (~25 min)."""
    (kube, _etcd) = build.control_plane_builds(versions.CONTROL_PLANES["1.37"])
    assert kube.name == "kubernetes-cp" and kube.key() == "3d65a09b87e2"


def test_control_plane_images_use_upstream_names_and_the_host_dockerfiles(tmp_path: Path) -> None:
    plane = versions.CONTROL_PLANES["1.36"]
    bins = {n: tmp_path / n for n in ("kube-apiserver", "kube-controller-manager", "etcd")}
    imgs = images.control_plane_images(plane, bins)
    assert tuple(i.name for i in imgs) == plane.images
    assert [i.dockerfile for i in imgs] == ["kube-component.Dockerfile", "kube-component.Dockerfile", "etcd.Dockerfile"]
    assert imgs[0].files == {"component": bins["kube-apiserver"]} and imgs[0].build_args == {"NAME": "kube-apiserver"}
    assert imgs[2].files == {"etcd": bins["etcd"]}


def test_kind_preloads_the_charts_default_and_the_served_control_planes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind node has its own version's images; the chart's default minor's and VCLUSTER_HOST_KUBERNETES' (what
    hack/host serves, the examples' versions) are preloaded beside them, each once."""
    from _host import kind

    planes = versions.CONTROL_PLANES
    monkeypatch.setattr(versions, "DEFAULT_MINOR", "1.33")
    monkeypatch.setenv("VCLUSTER_HOST_KUBERNETES", "1.33")
    assert kind.preloaded_control_planes() == []
    monkeypatch.setenv("VCLUSTER_HOST_KUBERNETES", "1.37,1.35")
    assert kind.preloaded_control_planes() == [planes["1.37"], planes["1.35"]]
    monkeypatch.setattr(versions, "DEFAULT_MINOR", "1.37")
    assert kind.preloaded_control_planes() == [planes["1.37"], planes["1.35"]]
    monkeypatch.setattr(versions, "DEFAULT_MINOR", "1.36")
    assert kind.preloaded_control_planes() == [planes["1.36"], planes["1.37"], planes["1.35"]]


def test_host_up_serves_the_requested_control_planes_and_the_charts_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from _host import cluster
    from _host._util import HostError

    monkeypatch.delenv("VCLUSTER_HOST_KUBERNETES", raising=False)
    default = versions.CONTROL_PLANES[versions.DEFAULT_MINOR]
    planes = cluster.host_control_planes()
    assert [p.minor for p in planes if p is not default] == ["1.35"] and default in planes
    monkeypatch.setattr(versions, "DEFAULT_MINOR", "1.33")
    monkeypatch.setenv("VCLUSTER_HOST_KUBERNETES", "1.36")
    assert cluster.host_control_planes() == [versions.CONTROL_PLANES["1.33"], versions.CONTROL_PLANES["1.36"]]
    monkeypatch.setenv("VCLUSTER_HOST_KUBERNETES", "1.36,1.33")
    assert [p.minor for p in cluster.host_control_planes()] == ["1.36", "1.33"]
    monkeypatch.setenv("VCLUSTER_HOST_KUBERNETES", "1.29")
    with pytest.raises(HostError, match="VCLUSTER_HOST_KUBERNETES: Kubernetes '1.29' is not a supported"):
        cluster.host_control_planes()
