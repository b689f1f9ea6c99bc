"""Resolving and validating the plugin's options into a frozen :class:`Settings`.

Every option is one :class:`Option` record in :data:`OPTIONS`: it drives the command-line
flag, the ini key, the environment variable (where natural), the help text and the parsing.
Precedence: command line, then environment, then ini file, then default. Repeatable options
(``--vcluster-values``, ``--vcluster-set``) add to the ini values.

Bad input raises :class:`ConfigError` (a :class:`VClusterError`) with one message that names
the bad value and says what to do; only the plugin turns it into :class:`ConfigError`.
No pytest import here: ``VCluster.create`` uses these functions without pytest.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import ConfigError, yaml_problem
from ._syncer_image import DEFAULT_BASE_IMAGE as DEFAULT_SYNCER_BASE_IMAGE

HOST_CHOICES = ("auto", "kubeconfig", "kind")
CONNECT_CHOICES = ("auto", "port-forward", "service")
DEFAULT_TIMEOUT = 180.0
DEFAULT_STALE_AFTER = 2 * 3600.0
DEFAULT_KIND_CLUSTER = "pytest-vcluster"
DEFAULT_RECYCLE_MAX = 50

@dataclass(frozen=True)
class Settings:
    """The plugin's validated options."""

    host: str = "auto"
    host_kubeconfig: Path | None = None
    host_context: str | None = None
    kind_cluster: str = DEFAULT_KIND_CLUSTER
    kind_keep: bool = False
    chart: Path | None = None
    values_files: tuple[Path, ...] = ()
    set_values: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    keep_on_failure: bool = False
    connect: str = "auto"
    stale_after: float = DEFAULT_STALE_AFTER
    image_loader: str | None = None
    #: an image the host can start, used instead of building the package's syncer image
    syncer_image: str | None = None
    #: the base image the package's syncer image is built from (Python 3.11)
    syncer_base_image: str = DEFAULT_SYNCER_BASE_IMAGE
    #: the node image of a kind host this run creates (None: kind's own default)
    kind_image: str | None = None
    #: warm pool: clusters of the session's options kept ready ahead of demand (0: no pool)
    pool: int = 0
    #: leave the pool's unclaimed clusters for the next run
    pool_keep: bool = False
    #: reset a function-scoped cluster after its test and hand it to the next test with the same options
    recycle: bool = True
    #: resets after which a recycled cluster is deleted instead (a guard against slow growth)
    recycle_max: int = DEFAULT_RECYCLE_MAX
    #: the merged content of ``values_files`` then ``set_values``
    values: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def chart_path(self) -> Path:
        """The chart to install: ``--vcluster-chart`` or the chart shipped with the package."""
        return self.chart if self.chart is not None else default_chart_path()


# --------------------------------------------------------------------------- chart


def chart_candidates() -> list[Path]:
    """Where the shipped chart may be: inside the installed package (wheel), else next to it (checkout)."""
    package_dir = Path(__file__).resolve().parent
    return [package_dir / "chart", package_dir.parent / "chart"]


def default_chart_path() -> Path:
    """The chart shipped with pytest-vcluster; :class:`ConfigError` when it is missing."""
    candidates = chart_candidates()
    for candidate in candidates:
        if (candidate / "Chart.yaml").is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"pytest-vcluster: the chart shipped with the package was not found (looked in {looked}): "
        "reinstall pytest-vcluster or pass --vcluster-chart=PATH"
    )


def chart_version(path: Path) -> str | None:
    """``version`` from ``Chart.yaml`` of a chart directory (no Helm needed), ``None`` when unreadable."""
    import yaml

    try:
        data = yaml.safe_load((path / "Chart.yaml").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("version") is not None:
        return str(data["version"])
    return None


# --------------------------------------------------------------------------- helm-style --set


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def typed_value(raw: str) -> Any:
    """Helm's ``--set`` typing: ``true``/``false`` -> bool, ``null`` -> None, integers -> int, else str."""
    if raw == "true":
        return True
    if raw == "false":
        return False
    if raw == "null":
        return None
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", raw):
        return int(raw)
    return raw


_SEGMENT = re.compile(r"^(?P<name>[^\[\]]+)(?P<indexes>(\[\d+\])*)$")


def _key_path(key: str) -> list[str | int]:
    path: list[str | int] = []
    for segment in _split_unescaped(key, "."):
        match = _SEGMENT.match(segment)
        if segment == "" or match is None:
            raise ValueError(f"bad key segment {segment!r}")
        path.append(_unescape(match.group("name")))
        path.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group("indexes")))
    return path


def _assign(target: dict[str, Any], path: Sequence[str | int], value: Any) -> None:
    node: Any = target
    for current, following in zip(path, list(path[1:]) + [None], strict=True):
        last = following is None
        container_factory = list if isinstance(following, int) else dict
        if isinstance(current, int):
            if not isinstance(node, list):
                raise ValueError("index applied to a non-list")
            while len(node) <= current:
                node.append(None)
            if last:
                node[current] = value
            else:
                if not isinstance(node[current], (dict, list)):
                    node[current] = container_factory()
                node = node[current]
        else:
            if not isinstance(node, dict):
                raise ValueError("key applied to a list")
            if last:
                node[current] = value
            else:
                if not isinstance(node.get(current), (dict, list)):
                    node[current] = container_factory()
                node = node[current]


def parse_set(expression: str, *, source: str = "--vcluster-set") -> dict[str, Any]:
    """Parse a Helm-style ``key=value[,key=value...]`` into nested values.

    Keys use ``.`` for nesting and ``[N]`` for list items; ``\\`` escapes ``.``, ``,`` and ``=``.
    """
    result: dict[str, Any] = {}
    for item in _split_unescaped(expression, ","):
        key, sep, raw_value = _partition_unescaped(item, "=")
        if not sep or not key.strip():
            raise ConfigError(
                f"{source} {expression!r} is not valid: expected KEY=VALUE "
                f"(e.g. {source} syncer.image.tag=dev)"
            )
        try:
            _assign(result, _key_path(key.strip()), typed_value(_unescape(raw_value)))
        except ValueError as exc:
            raise ConfigError(
                f"{source} {expression!r} is not valid: key {key!r}: {exc} "
                f"(keys look like a.b.c or a.list[0].b)"
            ) from None
    return result


def _partition_unescaped(text: str, sep: str) -> tuple[str, str, str]:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == sep:
            return text[:i], sep, text[i + 1 :]
        i += 1
    return text, "", ""


def deep_merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge values like Helm: later layers win, mappings merge recursively, lists are replaced."""
    result: dict[str, Any] = {}
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(result.get(key), dict):
                result[key] = deep_merge(result[key], value)
            elif isinstance(value, Mapping):
                result[key] = deep_merge(value)
            else:
                result[key] = copy.deepcopy(value)
    return result


def load_values_file(path: Path, *, source: str = "--vcluster-values") -> dict[str, Any]:
    """Read a YAML values file; a missing or malformed file is a :class:`ConfigError`."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"{source}: file not found: {path}: pass the path of an existing YAML values file")
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: cannot read {path} as YAML: {yaml_problem(exc)}: fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {path} must hold a YAML mapping of chart values, not {type(data).__name__}")
    return data


# --------------------------------------------------------------------------- scalars


def parse_duration(raw: str, *, source: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h`` -> seconds (> 0)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(raw))
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(
            f"{source}={raw!r} is not valid: give a positive number of seconds, or a number with s, m or h "
            "(e.g. 180, 30m, 2h)"
        )
    factor = {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * factor


def _choice(raw: str, choices: Sequence[str], *, source: str) -> str:
    value = str(raw).strip()
    if value not in choices:
        raise ConfigError(f"{source}={raw!r} is not valid: use one of {', '.join(choices)}")
    return value


def _as_bool(raw: Any, *, source: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{source}={raw!r} is not valid: use true or false")


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
    return _choice(raw.value, HOST_CHOICES, source=raw.source)


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
    return _as_bool(raw.value, source=raw.source)


def _chart(raw: _Raw, so_far: Mapping[str, Any]) -> Path:
    chart = _path(raw)
    if not (chart / "Chart.yaml").is_file() and not (chart.is_file() and chart.suffix in (".tgz", ".gz")):
        raise ConfigError(
            f"{raw.source}: no Helm chart at {chart} (no Chart.yaml): pass a chart directory or .tgz, "
            "or leave the option out to use the chart shipped with pytest-vcluster"
        )
    return chart


def _duration(raw: _Raw, so_far: Mapping[str, Any]) -> float:
    return parse_duration(raw.value, source=raw.source)


def _connect(raw: _Raw, so_far: Mapping[str, Any]) -> str:
    return _choice(raw.value, CONNECT_CHOICES, source=raw.source)


def _syncer_image_ref(raw: _Raw, so_far: Mapping[str, Any]) -> str:
    from ._syncer_image import parse_ref

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
    Option("chart", "chart", "Helm chart of the virtual cluster (default: the chart shipped with pytest-vcluster).",
           metavar="PATH", parse=_chart),
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


# --------------------------------------------------------------------------- per-cluster options


@dataclass(frozen=True)
class ClusterKeyword:
    """One keyword of ``@pytest.mark.vcluster(...)``, ``vcluster_factory(...)``, ``manager.cluster(...)``
    and (except ``values_files``) ``VCluster.create(...)``."""

    name: str
    help: str


#: The per-cluster keywords, in the order the marker's signature lists them.
CLUSTER_KEYWORDS: tuple[ClusterKeyword, ...] = (
    ClusterKeyword("values", "chart values (dict)"),
    ClusterKeyword("set", "Helm-style set: a dict of dotted keys (values as given) or 'key=value[,key=value]' "
                          "strings (Helm typing)"),
    ClusterKeyword("values_files", "extra values files"),
    ClusterKeyword("timeout", "readiness timeout in seconds"),
    ClusterKeyword("chart", "chart path"),
    ClusterKeyword("connect", f"connect mode ({', '.join(CONNECT_CHOICES)})"),
    ClusterKeyword("recycle", "False: a never-used cluster, deleted after the test instead of reset and reused "
                              "(for a test that breaks its control plane)"),
    ClusterKeyword("fork", "start from a Snapshot (e.g. of vcluster_manager.template()), or, in the marker, the name "
                           "of the fixture returning one (e.g. 'vcluster_template')"),
)
CLUSTER_OPTION_KEYWORDS = tuple(keyword.name for keyword in CLUSTER_KEYWORDS)


def marker_help() -> str:
    """The ``vcluster`` marker's line in ``pytest --markers``."""
    signature = ", ".join(f"{k.name}=None" for k in CLUSTER_KEYWORDS)
    return (
        f"vcluster({signature}): options of the virtual cluster the `vcluster` fixture creates for this test: "
        + "; ".join(f"{k.name}: {k.help}" for k in CLUSTER_KEYWORDS)
        + "."
    )


@dataclass(frozen=True)
class ClusterOptions:
    """Options of one virtual cluster (marker, ``vcluster_factory(...)``, ``manager.cluster(...)``)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    #: the nested values of ``set=`` (parsed by :func:`set_values`)
    set: Mapping[str, Any] = field(default_factory=dict)
    values_files: tuple[Path, ...] = ()
    timeout: float | None = None
    chart: Path | None = None
    connect: str | None = None
    #: a ``Snapshot`` to start from, or (marker) the name of the fixture returning one
    fork: Any = None
    #: ``False``: a never-used cluster, not recycled after the test (``None``: the session's ``--vcluster-recycle``)
    recycle: bool | None = None


def cluster_options(options: Mapping[str, Any], *, where: str) -> ClusterOptions:
    """Validate keyword options of one cluster; ``where`` names the call site for messages."""
    allowed = ", ".join(CLUSTER_OPTION_KEYWORDS)
    unknown = sorted(set(options) - set(CLUSTER_OPTION_KEYWORDS))
    if unknown:
        raise ConfigError(f"{where}: unknown keyword {', '.join(unknown)}; allowed keywords: {allowed}")
    kwargs: dict[str, Any] = {}
    values = options.get("values")
    if values is not None:
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: values= must be a dict of chart values, not {type(values).__name__}")
        kwargs["values"] = deep_merge(values)
    set_option = options.get("set")
    if set_option is not None:
        kwargs["set"] = set_values(set_option, where=where)
    files = options.get("values_files")
    if files is not None:
        if isinstance(files, (str, Path)):
            files = [files]
        paths = tuple(Path(f).expanduser().resolve() for f in files)
        for path in paths:
            load_values_file(path, source=f"{where} values_files")
        kwargs["values_files"] = paths
    timeout = options.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float, str)):
            raise ConfigError(f"{where}: timeout= must be a number of seconds, not {timeout!r}")
        kwargs["timeout"] = parse_duration(str(timeout), source=f"{where} timeout")
    chart = options.get("chart")
    if chart is not None:
        chart_path = Path(chart).expanduser().resolve()
        if not (chart_path / "Chart.yaml").is_file() and not chart_path.is_file():
            raise ConfigError(f"{where}: chart={str(chart)!r}: no Helm chart at {chart_path}")
        kwargs["chart"] = chart_path
    connect = options.get("connect")
    if connect is not None:
        kwargs["connect"] = _choice(connect, CONNECT_CHOICES, source=f"{where} connect")
    recycle = options.get("recycle")
    if recycle is not None:
        if not isinstance(recycle, bool):
            raise ConfigError(f"{where}: recycle={recycle!r} is not valid: use recycle=False (or True)")
        kwargs["recycle"] = recycle
    fork = options.get("fork")
    if fork is not None:
        from ._snapshot import Snapshot

        if not isinstance(fork, (Snapshot, str)) or (isinstance(fork, str) and not fork.isidentifier()):
            raise ConfigError(
                f"{where}: fork={fork!r} is not valid: give a Snapshot (vcluster_manager.template(...), vc.snapshot()) "
                "or the name of a fixture returning one, e.g. fork='vcluster_template'"
            )
        kwargs["fork"] = fork
    return ClusterOptions(**kwargs)


def set_values(option: Any, *, where: str = "set") -> dict[str, Any]:
    """The one parser of ``set=`` for every entry point (marker, factory, manager, ``VCluster.create``).

    A dict maps dotted keys to values used as given: ``{"a.b": 1}``. A string or a list of strings uses
    Helm's ``--set`` syntax, like ``--vcluster-set``: ``"a=1,b.c=true"`` -> ``{"a": 1, "b": {"c": True}}``.
    """
    if option is None:
        return {}
    if isinstance(option, Mapping):
        layer: dict[str, Any] = {}
        for key, value in option.items():
            try:
                _assign(layer, _key_path(str(key)), value)
            except ValueError as exc:
                raise ConfigError(f"{where}: set key {key!r} is not valid: {exc} "
                                  "(keys look like a.b.c or a.list[0].b)") from None
        return layer
    if isinstance(option, str):
        option = [option]
    if not isinstance(option, (list, tuple)) or not all(isinstance(item, str) for item in option):
        raise ConfigError(
            f"{where}: set= must be a dict {{'a.b': value}} or a list of 'a.b=value' strings, not {option!r}"
        )
    return deep_merge(*(parse_set(item, source=f"{where} set") for item in option))


def options_values(options: ClusterOptions, *, where: str = "vcluster") -> dict[str, Any]:
    """The chart values given by per-cluster options: files, then ``values``, then ``set``."""
    layers: list[Mapping[str, Any]] = [
        load_values_file(p, source=f"{where} values_files") for p in options.values_files
    ]
    layers.append(options.values)
    layers.append(options.set)
    return deep_merge(*layers)
