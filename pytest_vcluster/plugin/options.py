"""The plugin's option table: every option is one :class:`Option` record in :data:`OPTIONS`.

A record drives the command-line flag, the ini key, the environment variable (where natural), the help
text and the parsing. Precedence: command line, then environment, then ini file, then default. Repeatable
options (``--vcluster-values``, ``--vcluster-set``) add to the ini values. :func:`resolve` validates them
into the core's :class:`~pytest_vcluster.core.settings.Settings`; bad input raises :class:`ConfigError`,
which the plugin turns into a usage error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, yaml_problem
from ..core.kubernetes import versions_of
from ..core.settings import (
    CONNECT_CHOICES,
    DEFAULT_KIND_CLUSTER,
    DEFAULT_RECYCLE_MAX,
    DEFAULT_SYNCER_BASE_IMAGE,
    DEFAULT_TIMEOUT,
    HOST_CHOICES,
    Settings,
    as_bool,
    choice,
    default_chart_path,
    parse_duration,
)
from ..core.values import CLUSTER_KEYWORDS, deep_merge, load_values_file, parse_set

# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class _Raw:
    value: Any
    source: str
    base: Path | None  # directory relative paths are resolved against


def _path(raw: _Raw) -> Path:
    path = Path(str(raw.value)).expanduser()
    if not path.is_absolute() and raw.base is not None:
        path = raw.base / path
    return path.resolve()


def _list(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [line.strip() for line in raw.splitlines() if line.strip()]
    return [str(item) for item in raw if str(item).strip()]


_IMAGE = re.compile(r"[a-z0-9][a-z0-9./_:@-]*")


def _host(raw: _Raw, so_far: Mapping[str, Any]) -> str:
    return choice(raw.value, HOST_CHOICES, source=raw.source)


def _host_kubeconfig(raw: _Raw, so_far: Mapping[str, Any]) -> Path:
    path = _path(raw)
    if not path.is_file():
        raise ConfigError(
            f"{raw.source}: kubeconfig file not found: {path}: pass the kubeconfig of the host cluster, "
            "or use --vcluster-host=kind"
        )
    if so_far.get("host", "auto") == "kind":
        raise ConfigError(
            f"{raw.source} cannot be used with --vcluster-host=kind: use --vcluster-host=kubeconfig or auto"
        )
    return path


def _text(raw: _Raw, so_far: Mapping[str, Any]) -> str:
    return str(raw.value).strip()


def _kind_cluster(raw: _Raw, so_far: Mapping[str, Any]) -> str:
    name = str(raw.value).strip()
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 50:
        raise ConfigError(
            f"{raw.source}={raw.value!r} is not valid: use lowercase letters, digits and '-' (at most 50)"
        )
    return name


def _bool(raw: _Raw, so_far: Mapping[str, Any]) -> bool:
    return as_bool(raw.value, source=raw.source)


def _chart(raw: _Raw, so_far: Mapping[str, Any]) -> Path:
    chart = _path(raw)
    if not (chart / "Chart.yaml").is_file() and not (chart.is_file() and chart.suffix in (".tgz", ".gz")):
        raise ConfigError(
            f"{raw.source}: no Helm chart at {chart} (no Chart.yaml): pass a chart directory or .tgz, "
            "or leave the option out to use the chart shipped with pytest-vcluster"
        )
    return chart


def _kubernetes(raw: _Raw, so_far: Mapping[str, Any]) -> str:
    """A version of the chart's table (the chart of ``--vcluster-chart``, parsed before), as its minor."""
    chart = so_far.get("chart") or default_chart_path()
    return versions_of(chart).get(str(raw.value), where=raw.source).minor


def _duration(raw: _Raw, so_far: Mapping[str, Any]) -> float:
    return parse_duration(raw.value, source=raw.source)


def _connect(raw: _Raw, so_far: Mapping[str, Any]) -> str:
    return choice(raw.value, CONNECT_CHOICES, source=raw.source)


def _syncer_image_ref(raw: _Raw, so_far: Mapping[str, Any]) -> str:
    from ..core.images import parse_ref

    return str(parse_ref(str(raw.value), source=raw.source))


def _syncer_base_image(raw: _Raw, so_far: Mapping[str, Any]) -> str:
    base = str(raw.value).strip()
    if not _IMAGE.fullmatch(base):
        raise ConfigError(
            f"{raw.source}={raw.value!r} is not valid: give an image reference with Python 3.11, "
            f"e.g. {DEFAULT_SYNCER_BASE_IMAGE}"
        )
    return base


def _kind_image(raw: _Raw, so_far: Mapping[str, Any]) -> str:
    image = str(raw.value).strip()
    if not _IMAGE.fullmatch(image) or ":" not in image.rsplit("/", 1)[-1]:
        raise ConfigError(
            f"{raw.source}={raw.value!r} is not valid: give a kind node image with its tag, e.g. kindest/node:v1.33.4"
        )
    if so_far.get("host") == "kubeconfig":
        raise ConfigError(
            f"{raw.source} cannot be used with --vcluster-host=kubeconfig: it is the node image of a kind host"
        )
    return image


KIND_CONFIG_FIX = ("pass a kind cluster config (kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4; "
                   "https://kind.sigs.k8s.io/docs/user/configuration/), or leave the option out for kind's one-node "
                   "default")


def _kind_config(raw: _Raw, so_far: Mapping[str, Any]) -> Path:
    """kind's own cluster config (``kind create cluster --config``): an existing, readable YAML file holding a
    kind ``Cluster``, checked here rather than minutes later by kind."""
    import yaml

    path = _path(raw)
    if so_far.get("host") == "kubeconfig":
        raise ConfigError(
            f"{raw.source} cannot be used with --vcluster-host=kubeconfig: it is the cluster config of a kind host"
        )
    if not path.exists():
        raise ConfigError(f"{raw.source}: kind cluster config not found: {path}: {KIND_CONFIG_FIX}")
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{raw.source}: cannot read kind cluster config {path}: {exc.strerror or exc}: "
                          f"{KIND_CONFIG_FIX}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problem = yaml_problem(exc) if isinstance(exc, yaml.YAMLError) else "not UTF-8 text"
        raise ConfigError(f"{raw.source}: cannot read kind cluster config {path} as YAML: {problem}: fix the file, or "
                          "leave the option out for kind's one-node default") from None
    kind = data.get("kind") if isinstance(data, dict) else None
    api = str(data.get("apiVersion") or "") if isinstance(data, dict) else ""
    if kind != "Cluster" or not api.startswith("kind.x-k8s.io/"):
        found = f"kind {kind!r}, apiVersion {api!r}" if isinstance(data, dict) else f"a YAML {type(data).__name__}"
        raise ConfigError(f"{raw.source}: {path} is not a kind cluster config ({found}): {KIND_CONFIG_FIX}")
    return path


MAX_POOL = 20


def _pool_size(raw: _Raw, so_far: Mapping[str, Any]) -> int:
    text = str(raw.value).strip()
    if not re.fullmatch(r"\d+", text) or int(text) > MAX_POOL:
        raise ConfigError(
            f"{raw.source}={raw.value!r} is not valid: give the number of ready clusters to keep, "
            f"0 to {MAX_POOL} (e.g. 2: one per xdist worker)"
        )
    return int(text)


def _recycle_max(raw: _Raw, so_far: Mapping[str, Any]) -> int:
    text = str(raw.value).strip()
    if not re.fullmatch(r"[1-9]\d{0,5}", text):
        raise ConfigError(
            f"{raw.source}={raw.value!r} is not valid: give how many times a cluster may be reset before it is "
            f"deleted, a whole number from 1 (e.g. {DEFAULT_RECYCLE_MAX})"
        )
    return int(text)


@dataclass(frozen=True)
class Option:
    """One option of the plugin: flag ``--vcluster-x-y``, ini key ``vcluster_x_y``, env ``VCLUSTER_X_Y``.

    ``field`` names the :class:`Settings` attribute it sets; ``parse`` validates one raw value (it sees the
    values parsed before it, in :data:`OPTIONS` order). ``repeat``: a repeatable option whose values add to the
    ini file's (``values``/``set``, parsed together by :func:`resolve`).
    """

    name: str
    field: str
    help: str
    metavar: str | None = None
    env: bool = True
    flag_only: bool = False  # a switch: store_true on the command line, bool in the ini file
    repeat: bool = False
    parse: Callable[[_Raw, Mapping[str, Any]], Any] | None = None

    @property
    def dest(self) -> str:
        return f"vcluster_{self.name.replace('-', '_')}"

    @property
    def flag(self) -> str:
        return f"--vcluster-{self.name}"

    @property
    def ini_key(self) -> str:
        return self.dest

    @property
    def env_var(self) -> str | None:
        return self.dest.upper() if self.env else None

    @property
    def ini_type(self) -> str | None:
        return "bool" if self.flag_only else "linelist" if self.repeat else None


#: Every option of the plugin, in the order they are parsed and listed in ``pytest --help``.
OPTIONS: tuple[Option, ...] = (
    Option("host", "host",
           "host cluster: auto (the host kubeconfig if given, else kind; $KUBECONFIG and ~/.kube/config are never "
           "used implicitly), kubeconfig, or kind. Default: auto.",
           metavar="{auto,kubeconfig,kind}", parse=_host),
    Option("host-kubeconfig", "host_kubeconfig",
           'kubeconfig of the host cluster; $KUBECONFIG is not used implicitly: pass '
           '--vcluster-host-kubeconfig="$KUBECONFIG" to use it.',
           metavar="PATH", parse=_host_kubeconfig),
    Option("host-context", "host_context", "context of the host kubeconfig to use (default: its current context).",
           metavar="NAME", parse=_text),
    Option("kind-cluster", "kind_cluster",
           f"kind cluster used as host: reused if present, else created. Default: {DEFAULT_KIND_CLUSTER}.",
           metavar="NAME", parse=_kind_cluster),
    Option("kind-keep", "kind_keep", "keep the kind cluster this run created (default: delete it at the end).",
           env=False, flag_only=True, parse=_bool),
    Option("kind-image", "kind_image",
           "node image of the kind cluster this run creates (kind create cluster --image). Default: kind's own.",
           metavar="REF", parse=_kind_image),
    Option("kind-config", "kind_config",
           "kind's own cluster config for the kind cluster this run creates (kind create cluster --config), e.g. "
           "one control-plane and two worker nodes; a cluster that exists already is used as it is. "
           "Default: kind's one-node cluster.",
           metavar="FILE", parse=_kind_config),
    Option("chart", "chart", "Helm chart of the virtual cluster (default: the chart shipped with pytest-vcluster).",
           metavar="PATH", parse=_chart),
    Option("kubernetes", "kubernetes",
           "Kubernetes version of the virtual control planes: a minor of the chart's table (kubernetes-versions.yaml), "
           "e.g. 1.35; @pytest.mark.vcluster(kubernetes=...) sets one cluster's. Default: the chart's default.",
           metavar="VERSION", parse=_kubernetes),
    Option("values", "values_files", "extra chart values file (repeatable; later files win).",
           metavar="FILE", env=False, repeat=True),
    Option("set", "set_values", "extra chart value, Helm --set syntax (repeatable), e.g. syncer.logLevel=debug.",
           metavar="KEY=VALUE", env=False, repeat=True),
    Option("timeout", "timeout",
           f"seconds to wait for a virtual cluster to be ready. Default: {DEFAULT_TIMEOUT:.0f}.",
           metavar="SECONDS", parse=_duration),
    Option("keep-on-failure", "keep_on_failure", "keep the virtual clusters of failed tests and print how to connect.",
           env=False, flag_only=True, parse=_bool),
    Option("connect", "connect",
           "how to reach a virtual API server: auto, port-forward (through the host API server), or service "
           "(its Service DNS name, when the tests run inside the host cluster). Default: auto.",
           metavar="{auto,port-forward,service}", parse=_connect),
    Option("pool", "pool",
           "keep N virtual clusters of the session's options ready ahead of demand, shared by the xdist workers "
           "and by concurrent runs on the same host; a test whose options differ gets a cold cluster. Default: 0.",
           metavar="N", parse=_pool_size),
    Option("pool-keep", "pool_keep",
           "leave the pool's unclaimed clusters for the next run (a second `pytest -k one_test` starts at once); "
           "kept clusters unclaimed for --vcluster-stale-after are removed.", flag_only=True, parse=_bool),
    Option("recycle", "recycle",
           "reset the cluster of a test (vcluster, vcluster_factory) when the test ends, in about a second and off "
           "the test's clock, and hand it to the next test with the same options in the same process (xdist worker); "
           "at the end it is deleted, or kept for the next run with --vcluster-pool-keep (yes/no). "
           "@pytest.mark.vcluster(recycle=False) opts one test out. Default: yes.",
           metavar="{yes,no}", parse=_bool),
    Option("recycle-max", "recycle_max",
           f"delete a recycled cluster after N resets instead of resetting it again. Default: {DEFAULT_RECYCLE_MAX}.",
           metavar="N", parse=_recycle_max),
    Option("stale-after", "stale_after",
           "age after which namespaces of runs from other machines are removed as leftovers (e.g. 2h, 90m). "
           "Default: 2h.", metavar="DURATION", parse=_duration),
    Option("image-loader", "image_loader",
           "command loading a local image into a kubeconfig host, run as COMMAND IMAGE (for vcluster_host.load_image, "
           "and the syncer image).", metavar="COMMAND", parse=_text),
    Option("syncer-image", "syncer_image",
           "syncer image the host can start (REPOSITORY:TAG), e.g. one pushed with `python -m pytest_vcluster "
           "syncer-image --push REPOSITORY`. Default: build the package's own syncer image and load it into a kind "
           "host or through --vcluster-image-loader.", metavar="REF", parse=_syncer_image_ref),
    Option("syncer-base-image", "syncer_base_image",
           f"base image (with Python 3.11) the package's syncer image is built from. "
           f"Default: {DEFAULT_SYNCER_BASE_IMAGE}.", metavar="REF", parse=_syncer_base_image),
)

OPTIONS_BY_DEST: dict[str, Option] = {option.dest: option for option in OPTIONS}


def _pick(
    option: Option, cli: Mapping[str, Any], ini: Mapping[str, Any], env: Mapping[str, str], cwd: Path, inidir: Path
) -> _Raw | None:
    value = cli.get(option.dest)
    if value is not None and value is not False:
        return _Raw(value, option.flag, cwd)
    if option.env_var and env.get(option.env_var):
        return _Raw(env[option.env_var], option.env_var, cwd)
    value = ini.get(option.ini_key)
    if value not in (None, "", [], False):
        return _Raw(value, f"ini option {option.ini_key}", inidir)
    return None


def resolve(
    cli: Mapping[str, Any],
    ini: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    cwd: Path,
    inidir: Path,
) -> Settings:
    """Validate raw option values (keyed by ``Option.dest`` / ``Option.ini_key``) into :class:`Settings`."""
    kwargs: dict[str, Any] = {}
    layers: list[Mapping[str, Any]] = []
    for option in OPTIONS:
        if option.repeat:
            continue
        raw = _pick(option, cli, ini, env, cwd, inidir)
        if raw is not None and option.parse is not None:
            kwargs[option.field] = option.parse(raw, kwargs)

    values = OPTIONS_BY_DEST["vcluster_values"]
    values_files: list[Path] = []
    for source, base, items in ((f"ini option {values.ini_key}", inidir, _list(ini.get(values.ini_key))),
                                (values.flag, cwd, _list(cli.get(values.dest)))):
        for item in items:
            path = _path(_Raw(item, source, base))
            layers.append(load_values_file(path, source=source))
            values_files.append(path)
    kwargs["values_files"] = tuple(values_files)

    set_option = OPTIONS_BY_DEST["vcluster_set"]
    sets: list[str] = []
    for source, items in ((f"ini option {set_option.ini_key}", _list(ini.get(set_option.ini_key))),
                          (set_option.flag, _list(cli.get(set_option.dest)))):
        for item in items:
            layers.append(parse_set(item, source=source))
            sets.append(item)
    kwargs["set_values"] = tuple(sets)
    kwargs["values"] = deep_merge(*layers)
    return Settings(**kwargs)


def from_pytest_config(config: Any, env: Mapping[str, str]) -> Settings:
    """Read the plugin's options from a ``pytest.Config`` and :func:`resolve` them."""
    cli = {option.dest: config.getoption(option.dest, default=None) for option in OPTIONS}
    ini = {}
    for option in OPTIONS:
        try:
            ini[option.ini_key] = config.getini(option.ini_key)
        except Exception as exc:  # noqa: BLE001 - pytest 9: UsageError("invalid truth value 'maybe'"), no option name
            raw = str(exc).partition("invalid truth value ")[2] or "?"
            raise ConfigError(f"ini option {option.ini_key}={raw} is not valid: use true or false") from None
    inidir = config.inipath.parent if config.inipath is not None else config.rootpath
    return resolve(cli, ini, env, cwd=config.invocation_params.dir, inidir=inidir)



def marker_help() -> str:
    """The ``vcluster`` marker's line in ``pytest --markers``."""
    signature = ", ".join(f"{k.name}=None" for k in CLUSTER_KEYWORDS)
    return (
        f"vcluster({signature}): options of the virtual cluster the `vcluster` fixture creates for this test: "
        + "; ".join(f"{k.name}: {k.help}" for k in CLUSTER_KEYWORDS)
        + "."
    )


