"""Unit tests of option resolution and validation (pytest_vcluster.plugin.options, core.settings, core.values)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pytest_vcluster
from pytest_vcluster.core import files
from pytest_vcluster.core.errors import ConfigError
from pytest_vcluster.core.settings import Settings, default_chart_path, parse_duration
from pytest_vcluster.core.values import ClusterOptions, cluster_options, deep_merge, options_values, parse_set
from pytest_vcluster.plugin import options as _config
from pytest_vcluster.plugin.options import resolve


def _resolve(tmp_path: Path, cli: dict[str, Any] | None = None, ini: dict[str, Any] | None = None,
             env: dict[str, str] | None = None) -> Settings:
    return resolve(cli or {}, ini or {}, env or {}, cwd=tmp_path, inidir=tmp_path)


def test_defaults(tmp_path: Path) -> None:
    s = _resolve(tmp_path)
    assert s.host == "auto"
    assert s.host_kubeconfig is None
    assert s.timeout == 180.0
    assert s.connect == "auto"
    assert s.stale_after == 7200.0
    assert s.kind_cluster == "pytest-vcluster"
    assert not s.kind_keep and not s.keep_on_failure
    assert s.values == {}


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = _resolve(tmp_path)
    with pytest.raises(AttributeError):
        s.host = "kind"  # type: ignore[misc]


def test_bad_host_names_value_and_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError,
                       match=r"--vcluster-host='foo' is not valid: use one of auto, kubeconfig, kind"):
        _resolve(tmp_path, cli={"vcluster_host": "foo"})


def test_bad_host_from_env_names_env_var(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"VCLUSTER_HOST='bar' is not valid"):
        _resolve(tmp_path, env={"VCLUSTER_HOST": "bar"})


def test_bad_host_from_ini_names_ini_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ini option vcluster_host='baz' is not valid"):
        _resolve(tmp_path, ini={"vcluster_host": "baz"})


def test_precedence_cli_env_ini(tmp_path: Path) -> None:
    assert _resolve(tmp_path, cli={"vcluster_timeout": "10"}, env={"VCLUSTER_TIMEOUT": "20"},
                    ini={"vcluster_timeout": "30"}).timeout == 10
    assert _resolve(tmp_path, env={"VCLUSTER_TIMEOUT": "20"}, ini={"vcluster_timeout": "30"}).timeout == 20
    assert _resolve(tmp_path, ini={"vcluster_timeout": "30"}).timeout == 30


@pytest.mark.parametrize(("raw", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1.5", 1.5)])
def test_durations(raw: str, seconds: float) -> None:
    assert parse_duration(raw, source="--x") == seconds


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "10d", ""])
def test_bad_durations(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"--vcluster-timeout=.* is not valid: give a positive number"):
        parse_duration(raw, source="--vcluster-timeout")


def test_kubeconfig_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--vcluster-host-kubeconfig: kubeconfig file not found: .*nope"):
        _resolve(tmp_path, cli={"vcluster_host_kubeconfig": "nope"})


def test_kubeconfig_from_env_relative_to_cwd(tmp_path: Path) -> None:
    (tmp_path / "kc").write_text("apiVersion: v1\n")
    s = _resolve(tmp_path, env={"VCLUSTER_HOST_KUBECONFIG": "kc"})
    assert s.host_kubeconfig == (tmp_path / "kc").resolve()


def test_kubeconfig_with_kind_is_contradictory(tmp_path: Path) -> None:
    (tmp_path / "kc").write_text("apiVersion: v1\n")
    with pytest.raises(ConfigError, match="cannot be used with --vcluster-host=kind"):
        _resolve(tmp_path, cli={"vcluster_host": "kind", "vcluster_host_kubeconfig": "kc"})


def test_values_files_and_sets_merge_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("syncer:\n  image:\n    tag: a\n    repository: r\nx: 1\n")
    (tmp_path / "b.yaml").write_text("syncer:\n  image:\n    tag: b\n")
    s = _resolve(
        tmp_path,
        cli={"vcluster_values": ["b.yaml"], "vcluster_set": ["x=2", "syncer.debug=true"]},
        ini={"vcluster_values": ["a.yaml"]},
    )
    assert s.values == {"syncer": {"image": {"tag": "b", "repository": "r"}, "debug": True}, "x": 2}
    assert [p.name for p in s.values_files] == ["a.yaml", "b.yaml"]
    assert s.set_values == ("x=2", "syncer.debug=true")


def test_values_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--vcluster-values: file not found: .*missing.yaml: pass the path"):
        _resolve(tmp_path, cli={"vcluster_values": ["missing.yaml"]})


def test_values_file_not_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a YAML mapping"):
        _resolve(tmp_path, cli={"vcluster_values": ["list.yaml"]})


def test_empty_values_file_is_fine(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    assert _resolve(tmp_path, cli={"vcluster_values": ["empty.yaml"]}).values == {}


def test_bad_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--vcluster-set 'novalue' is not valid: expected KEY=VALUE"):
        _resolve(tmp_path, cli={"vcluster_set": ["novalue"]})


def test_bad_connect(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--vcluster-connect='tunnel' is not valid: use one of auto, "
                                                 r"port-forward, service"):
        _resolve(tmp_path, cli={"vcluster_connect": "tunnel"})


def test_bad_kind_cluster_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--vcluster-kind-cluster='Bad_Name' is not valid"):
        _resolve(tmp_path, cli={"vcluster_kind_cluster": "Bad_Name"})


def test_bool_options(tmp_path: Path) -> None:
    s = _resolve(tmp_path, cli={"vcluster_kind_keep": True}, ini={"vcluster_keep_on_failure": True})
    assert s.kind_keep and s.keep_on_failure


def test_chart_option_needs_chart_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--vcluster-chart: no Helm chart at .*nochart"):
        _resolve(tmp_path, cli={"vcluster_chart": "nochart"})
    (tmp_path / "chart").mkdir()
    (tmp_path / "chart" / "Chart.yaml").write_text("name: c\nversion: 1.2.3\n")
    s = _resolve(tmp_path, cli={"vcluster_chart": "chart"})
    assert s.chart_path() == (tmp_path / "chart").resolve()


def test_default_chart_candidates_wheel_then_checkout() -> None:
    package_dir = Path(pytest_vcluster.__file__).resolve().parent
    assert files.candidates("chart") == [package_dir / "chart", package_dir.parent / "chart"]


def test_default_chart_missing_is_usage_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(files, "PACKAGE_DIR", tmp_path / "a")
    with pytest.raises(ConfigError, match="chart shipped with the package was not found"):
        default_chart_path()
    (tmp_path / "chart").mkdir()
    (tmp_path / "chart" / "Chart.yaml").write_text("name: x\n")
    assert default_chart_path() == tmp_path / "chart"


# ----------------------------------------------------------------------------- --set parsing


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("a=b", {"a": "b"}),
        ("a.b.c=1", {"a": {"b": {"c": 1}}}),
        ("a=true,b=false,c=null", {"a": True, "b": False, "c": None}),
        ("a=1.5", {"a": "1.5"}),
        ("a=007", {"a": "007"}),
        ("a=-3", {"a": -3}),
        ("a=", {"a": ""}),
        ("a=x=y", {"a": "x=y"}),
        (r"a\.b=1", {"a.b": 1}),
        (r"a=x\,y", {"a": "x,y"}),
        ("list[1]=x", {"list": [None, "x"]}),
        ("l[0].name=n", {"l": [{"name": "n"}]}),
        ("syncer.image.repository=does-not-exist", {"syncer": {"image": {"repository": "does-not-exist"}}}),
    ],
)
def test_parse_set(expr: str, expected: dict[str, Any]) -> None:
    assert parse_set(expr) == expected


@pytest.mark.parametrize("expr", ["novalue", "=x", "a..b=1", "a[x]=1"])
def test_parse_set_errors(expr: str) -> None:
    with pytest.raises(ConfigError, match="is not valid"):
        parse_set(expr)


def test_deep_merge_replaces_lists_and_does_not_alias() -> None:
    base = {"a": {"b": 1, "l": [1, 2]}, "c": 1}
    merged = deep_merge(base, {"a": {"l": [3]}}, None, {"d": {"e": 1}})
    assert merged == {"a": {"b": 1, "l": [3]}, "c": 1, "d": {"e": 1}}
    merged["a"]["b"] = 99
    assert base["a"]["b"] == 1


# ----------------------------------------------------------------------------- per-cluster options


def test_cluster_options_unknown_keyword_names_allowed() -> None:
    with pytest.raises(ConfigError) as info:
        cluster_options({"valuez": {}}, where="@pytest.mark.vcluster")
    assert str(info.value) == (
        "@pytest.mark.vcluster: unknown keyword valuez; allowed keywords: "
        "values, set, values_files, timeout, chart, connect, recycle, kubernetes, fork"
    )


def test_cluster_options_values_and_set(tmp_path: Path) -> None:
    (tmp_path / "v.yaml").write_text("a: {b: 1, c: 1}\n")
    opts = cluster_options(
        {"values_files": [tmp_path / "v.yaml"], "values": {"a": {"c": 2}}, "set": {"a.d": "x"}, "timeout": 30},
        where="w",
    )
    assert opts.timeout == 30
    assert options_values(opts) == {"a": {"b": 1, "c": 2, "d": "x"}}


def test_cluster_options_set_as_list_uses_helm_typing() -> None:
    opts = cluster_options({"set": ["a.b=true", "n=3"]}, where="w")
    assert options_values(opts) == {"a": {"b": True}, "n": 3}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"values": [1]}, "values= must be a dict"),
        ({"timeout": "soon"}, "is not valid: give a positive number"),
        ({"timeout": True}, "timeout= must be a number"),
        ({"connect": "x"}, "use one of auto, port-forward, service"),
        ({"set": 3}, "set= must be a dict"),
        ({"set": ["novalue"]}, "expected KEY=VALUE"),
        ({"chart": "/does/not/exist"}, "no Helm chart at"),
        ({"values_files": ["/does/not/exist.yaml"]}, "file not found"),
    ],
)
def test_cluster_options_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cluster_options(options, where="w")


def test_empty_cluster_options() -> None:
    assert cluster_options({}, where="w") == ClusterOptions()
    assert options_values(ClusterOptions()) == {}


def test_syncer_and_kind_image_options(tmp_path: Path) -> None:
    env = {"VCLUSTER_SYNCER_IMAGE": "reg.example.com/s:v1", "VCLUSTER_KIND_IMAGE": "local/node:v1"}
    s = _resolve(tmp_path, env=env,
                 cli={"vcluster_syncer_base_image": "local/python:3.11"})
    assert (s.syncer_image, s.kind_image, s.syncer_base_image) == ("reg.example.com/s:v1", "local/node:v1",
                                                                    "local/python:3.11")
    assert _resolve(tmp_path).syncer_base_image == "python:3.11-slim-bookworm"


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({"vcluster_syncer_image": "reg.example.com/s"},
         "--vcluster-syncer-image='reg.example.com/s' is not valid: give REPOSITORY:TAG, e.g. "
         "registry.example.com/team/syncer:v1 (build and push one with: "
         "python -m pytest_vcluster syncer-image --push REPOSITORY)"),
        ({"vcluster_kind_image": "kindest/node"},
         "--vcluster-kind-image='kindest/node' is not valid: give a kind node image with its tag, "
         "e.g. kindest/node:v1.33.4"),
        ({"vcluster_kind_image": "kindest/node:v1", "vcluster_host": "kubeconfig"},
         "--vcluster-kind-image cannot be used with --vcluster-host=kubeconfig: it is the node image of a kind host"),
        ({"vcluster_syncer_base_image": "Not An Image"},
         "--vcluster-syncer-base-image='Not An Image' is not valid: give an image reference with Python 3.11, "
         "e.g. python:3.11-slim-bookworm"),
    ],
)
def test_bad_image_options(tmp_path: Path, cli: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _resolve(tmp_path, cli=cli)
    assert str(info.value) == message


KIND_CONFIG = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n"
KIND_CONFIG_FIX = ("pass a kind cluster config (kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4; "
                   "https://kind.sigs.k8s.io/docs/user/configuration/), or leave the option out for kind's one-node "
                   "default")


def test_kind_config_from_cli_env_and_ini(tmp_path: Path) -> None:
    """--vcluster-kind-config, VCLUSTER_KIND_CONFIG and ini vcluster_kind_config: a path relative to the working
    directory (command line, environment) or to the ini file's directory (ini), in that precedence."""
    (tmp_path / "ini").mkdir()
    for name in ("cli.yaml", "env.yaml", "ini/ini.yaml"):
        (tmp_path / name).write_text(KIND_CONFIG)
    assert _resolve(tmp_path).kind_config is None

    def resolved(**layers: Any) -> Path | None:
        return resolve(layers.get("cli", {}), layers.get("ini", {}), layers.get("env", {}), cwd=tmp_path,
                       inidir=tmp_path / "ini").kind_config

    assert resolved(ini={"vcluster_kind_config": "ini.yaml"}) == tmp_path / "ini" / "ini.yaml"
    assert resolved(ini={"vcluster_kind_config": "ini.yaml"}, env={"VCLUSTER_KIND_CONFIG": "env.yaml"}) == (
        tmp_path / "env.yaml")
    assert resolved(ini={"vcluster_kind_config": "ini.yaml"}, env={"VCLUSTER_KIND_CONFIG": "env.yaml"},
                    cli={"vcluster_kind_config": "cli.yaml"}) == tmp_path / "cli.yaml"
    assert resolved(cli={"vcluster_kind_config": "cli.yaml", "vcluster_host": "kind"}) == tmp_path / "cli.yaml"


def _kind_config_error(tmp_path: Path, **layers: Any) -> str:
    with pytest.raises(ConfigError) as info:
        resolve(layers.get("cli", {}), layers.get("ini", {}), layers.get("env", {}), cwd=tmp_path, inidir=tmp_path)
    return str(info.value)


def test_kind_config_missing_names_the_value_and_the_fix(tmp_path: Path) -> None:
    assert _kind_config_error(tmp_path, cli={"vcluster_kind_config": "nodes.yaml"}) == (
        f"--vcluster-kind-config: kind cluster config not found: {tmp_path / 'nodes.yaml'}: {KIND_CONFIG_FIX}")
    assert _kind_config_error(tmp_path, env={"VCLUSTER_KIND_CONFIG": "gone.yaml"}) == (
        f"VCLUSTER_KIND_CONFIG: kind cluster config not found: {tmp_path / 'gone.yaml'}: {KIND_CONFIG_FIX}")
    assert _kind_config_error(tmp_path, ini={"vcluster_kind_config": "x.yaml"}) == (
        f"ini option vcluster_kind_config: kind cluster config not found: {tmp_path / 'x.yaml'}: {KIND_CONFIG_FIX}")


def test_kind_config_unreadable_or_not_a_kind_cluster(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    assert _kind_config_error(tmp_path, cli={"vcluster_kind_config": "folder"}) == (
        f"--vcluster-kind-config: cannot read kind cluster config {tmp_path / 'folder'}: Is a directory: "
        f"{KIND_CONFIG_FIX}")
    (tmp_path / "bad.yaml").write_text("kind: [Cluster\n")
    assert _kind_config_error(tmp_path, cli={"vcluster_kind_config": "bad.yaml"}) == (
        f"--vcluster-kind-config: cannot read kind cluster config {tmp_path / 'bad.yaml'} as YAML: expected ',' or "
        "']', but got '<stream end>' at line 2, column 1: fix the file, or leave the option out for kind's one-node "
        "default")
    (tmp_path / "values.yaml").write_text("replicas: 2\n")
    assert _kind_config_error(tmp_path, cli={"vcluster_kind_config": "values.yaml"}) == (
        f"--vcluster-kind-config: {tmp_path / 'values.yaml'} is not a kind cluster config (kind None, apiVersion ''): "
        f"{KIND_CONFIG_FIX}")
    (tmp_path / "list.yaml").write_text("- a\n")
    assert _kind_config_error(tmp_path, cli={"vcluster_kind_config": "list.yaml"}) == (
        f"--vcluster-kind-config: {tmp_path / 'list.yaml'} is not a kind cluster config (a YAML list): "
        f"{KIND_CONFIG_FIX}")


def test_kind_config_refused_with_a_kubeconfig_host(tmp_path: Path) -> None:
    (tmp_path / "kind.yaml").write_text(KIND_CONFIG)
    assert _kind_config_error(tmp_path, cli={"vcluster_host": "kubeconfig", "vcluster_kind_config": "kind.yaml"}) == (
        "--vcluster-kind-config cannot be used with --vcluster-host=kubeconfig: it is the cluster config of a kind "
        "host")


def test_library_path_imports_no_pytest() -> None:
    """``VCluster.create`` and the rest of the core are usable without pytest: no core module imports it, nor
    does ``python -m pytest_vcluster`` (the manager's bookkeeping is the pytest layer's, ``pytest_vcluster.plugin``)."""
    import subprocess
    import sys

    import pytest_vcluster.core

    modules = sorted(f"pytest_vcluster.core.{p.stem}" for p in Path(pytest_vcluster.core.__file__).parent.glob("*.py")
                     if p.stem != "__init__")
    assert "pytest_vcluster.core.vcluster" in modules
    code = (
        "import sys\n"
        f"import {', '.join(modules)}, pytest_vcluster.__main__\n"
        "print(sorted(m for m in sys.modules if m == 'pytest' or m.startswith('_pytest')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_set_parsed_the_same_everywhere() -> None:
    """The marker, the factory, the manager and VCluster.create share one parser (Helm typing for strings)."""
    from pytest_vcluster.core.values import set_values

    assert options_values(cluster_options({"set": ["a=1,b=2"]}, where="w")) == {"a": 1, "b": 2}
    assert set_values(["a=1,b=2"]) == {"a": 1, "b": 2}
    assert parse_set("a=1,b=2") == {"a": 1, "b": 2}


def test_every_option_record_is_complete() -> None:
    flags = [o.flag for o in _config.OPTIONS]
    assert len(set(flags)) == len(flags)
    for option in _config.OPTIONS:
        assert option.flag == "--" + option.dest.replace("_", "-")
        assert option.field in Settings.__dataclass_fields__, option
        assert option.repeat or option.parse is not None, option


def test_pool_from_each_source(tmp_path: Path) -> None:
    assert _resolve(tmp_path).pool == 0
    assert _resolve(tmp_path, cli={"vcluster_pool": "2"}).pool == 2
    assert _resolve(tmp_path, env={"VCLUSTER_POOL": "3"}).pool == 3
    assert _resolve(tmp_path, ini={"vcluster_pool": "1"}, env={"VCLUSTER_POOL": "4"}).pool == 4
    assert _resolve(tmp_path, ini={"vcluster_pool_keep": True}).pool_keep
    assert _resolve(tmp_path, env={"VCLUSTER_POOL_KEEP": "1"}).pool_keep


@pytest.mark.parametrize("raw", ["-1", "two", "21", "1.5"])
def test_bad_pool_size_names_value_and_range(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        _resolve(tmp_path, cli={"vcluster_pool": raw})
    assert str(info.value) == (f"--vcluster-pool={raw!r} is not valid: give the number of ready clusters to keep, "
                               "0 to 20 (e.g. 2: one per xdist worker)")


def test_the_kubernetes_option_takes_a_minor_of_the_charts_table(tmp_path: Path) -> None:
    assert _resolve(tmp_path).kubernetes is None
    assert _resolve(tmp_path, cli={"vcluster_kubernetes": "v1.37.2"}).kubernetes == "1.37"
    assert _resolve(tmp_path, env={"VCLUSTER_KUBERNETES": "1.35"}).kubernetes == "1.35"
    assert _resolve(tmp_path, ini={"vcluster_kubernetes": "1.36"}).kubernetes == "1.36"
    with pytest.raises(ConfigError) as info:
        _resolve(tmp_path, cli={"vcluster_kubernetes": "1.32"})
    assert str(info.value) == (
        "--vcluster-kubernetes: Kubernetes '1.32' is not a supported virtual control plane; give one of '1.33', "
        "'1.34', '1.35', '1.36', '1.37' (supported: 1.33 (v1.33.13), 1.34 (v1.34.4), 1.35 (v1.35.4), 1.36 (v1.36.3), "
        "1.37 (v1.37.2))")
    with pytest.raises(ConfigError, match=r"^@pytest.mark.vcluster: kubernetes=1.35 is not valid: give the version "
                                          r"as a string, e.g. kubernetes='1.35'$"):
        cluster_options({"kubernetes": 1.35}, where="@pytest.mark.vcluster")
