"""The chart's table of Kubernetes versions as the plugin reads it (pytest_vcluster.core.kubernetes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_vcluster.core.errors import ConfigError
from pytest_vcluster.core.kubernetes import ControlPlane, parse_table, versions_of
from pytest_vcluster.core.settings import default_chart_path

TABLE = {"default": "1.35", "versions": {"1.35": {"kubernetes": "v1.35.4", "etcd": "3.6.6-0"},
                                         "1.37": {"kubernetes": "v1.37.2", "etcd": "3.7.0-0"}}}


def test_the_shipped_table_has_every_minor_and_a_default_among_them() -> None:
    versions = versions_of(default_chart_path())
    assert list(versions.planes) == ["1.33", "1.34", "1.35", "1.36", "1.37"]
    assert versions.planes["1.37"] == ControlPlane("1.37", "v1.37.2", "3.7.0-0")
    assert versions.planes["1.35"] == ControlPlane("1.35", "v1.35.4", "3.6.6-0")
    assert versions.default in versions.planes


@pytest.mark.parametrize("asked", ["1.37", "v1.37", "v1.37.2", "1.37.2", " 1.37 "])
def test_a_minor_or_its_exact_patch_names_the_control_plane(asked: str) -> None:
    plane = parse_table(TABLE, source="t").get(asked, where="w")
    assert plane.values() == {"controlPlane": {
        "apiServer": {"image": {"tag": "v1.37.2"}},
        "controllerManager": {"image": {"tag": "v1.37.2"}},
        "etcd": {"image": {"tag": "3.7.0-0"}},
    }}


@pytest.mark.parametrize(("asked", "message"), [
    ("1.36", "w: Kubernetes '1.36' is not a supported virtual control plane; give one of '1.35', '1.37' "
             "(supported: 1.35 (v1.35.4), 1.37 (v1.37.2))"),
    ("latest", "w: Kubernetes 'latest' is not a supported virtual control plane; give one of '1.35', '1.37' "
               "(supported: 1.35 (v1.35.4), 1.37 (v1.37.2))"),
    ("v1.37.1", "w: Kubernetes 'v1.37.1' is not the supported patch of 1.37 (v1.37.2): give the minor ('1.37') "
                "or 'v1.37.2'"),
])
def test_a_version_the_table_lacks_is_refused_naming_it_and_the_supported_ones(asked: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_table(TABLE, source="t").get(asked, where="w")
    assert str(info.value) == message


def test_a_bad_table_and_a_chart_without_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^t: default '1.30' is not one of 1.35, 1.37$"):
        parse_table({**TABLE, "default": "1.30"}, source="t")
    with pytest.raises(ConfigError, match=r"^t: version '1.35' needs `kubernetes` and `etcd` image tags$"):
        parse_table({"default": "1.35", "versions": {"1.35": {"kubernetes": "v1.35.4"}}}, source="t")
    with pytest.raises(ConfigError) as info:
        versions_of(tmp_path)
    assert str(info.value) == (f"the chart at {tmp_path} has no kubernetes-versions.yaml (No such file or directory): "
                               "a Kubernetes version can be chosen by name only with pytest-vcluster's chart; set the "
                               "image tags as values")
