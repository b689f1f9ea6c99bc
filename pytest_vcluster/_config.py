"""Resolving and validating the plugin's options into a frozen :class:`Settings`.

Every option has a command-line flag, an ini key and (where natural) an environment
variable. Precedence: command line, then environment, then ini file, then default.
Repeatable options (``--vcluster-values``, ``--vcluster-set``) add to the ini values.

Bad input raises :class:`pytest.UsageError` with one message that names the bad value
and says what to do.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ._syncer_image import DEFAULT_BASE_IMAGE as DEFAULT_SYNCER_BASE_IMAGE

HOST_CHOICES = ("auto", "kubeconfig", "kind")
CONNECT_CHOICES = ("auto", "port-forward", "service")
DEFAULT_TIMEOUT = 180.0
DEFAULT_STALE_AFTER = 2 * 3600.0
DEFAULT_KIND_CLUSTER = "pytest-vcluster"

#: Keywords accepted by ``@pytest.mark.vcluster``, ``vcluster_factory(...)`` and
#: ``vcluster_manager.cluster(...)``.
CLUSTER_OPTION_KEYWORDS = ("values", "set", "values_files", "timeout", "chart", "connect")

#: option dest -> (command-line flag, ini key, environment variable or None)
OPTIONS: dict[str, tuple[str, str, str | None]] = {
    "vcluster_host": ("--vcluster-host", "vcluster_host", "VCLUSTER_HOST"),
    "vcluster_host_kubeconfig": ("--vcluster-host-kubeconfig", "vcluster_host_kubeconfig", "VCLUSTER_HOST_KUBECONFIG"),
    "vcluster_host_context": ("--vcluster-host-context", "vcluster_host_context", "VCLUSTER_HOST_CONTEXT"),
    "vcluster_kind_cluster": ("--vcluster-kind-cluster", "vcluster_kind_cluster", "VCLUSTER_KIND_CLUSTER"),
    "vcluster_kind_keep": ("--vcluster-kind-keep", "vcluster_kind_keep", None),
    "vcluster_chart": ("--vcluster-chart", "vcluster_chart", "VCLUSTER_CHART"),
    "vcluster_values": ("--vcluster-values", "vcluster_values", None),
    "vcluster_set": ("--vcluster-set", "vcluster_set", None),
    "vcluster_timeout": ("--vcluster-timeout", "vcluster_timeout", "VCLUSTER_TIMEOUT"),
    "vcluster_keep_on_failure": ("--vcluster-keep-on-failure", "vcluster_keep_on_failure", None),
    "vcluster_connect": ("--vcluster-connect", "vcluster_connect", "VCLUSTER_CONNECT"),
    "vcluster_stale_after": ("--vcluster-stale-after", "vcluster_stale_after", "VCLUSTER_STALE_AFTER"),
    "vcluster_image_loader": ("--vcluster-image-loader", "vcluster_image_loader", "VCLUSTER_IMAGE_LOADER"),
    "vcluster_syncer_image": ("--vcluster-syncer-image", "vcluster_syncer_image", "VCLUSTER_SYNCER_IMAGE"),
    "vcluster_syncer_base_image": (
        "--vcluster-syncer-base-image", "vcluster_syncer_base_image", "VCLUSTER_SYNCER_BASE_IMAGE"
    ),
    "vcluster_kind_image": ("--vcluster-kind-image", "vcluster_kind_image", "VCLUSTER_KIND_IMAGE"),
}


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
    """The chart shipped with pytest-vcluster; :class:`pytest.UsageError` when it is missing."""
    candidates = chart_candidates()
    for candidate in candidates:
        if (candidate / "Chart.yaml").is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise pytest.UsageError(
        f"pytest-vcluster: the chart shipped with the package was not found (looked in {looked}): "
        "reinstall pytest-vcluster or pass --vcluster-chart=PATH"
    )


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
            raise pytest.UsageError(
                f"{source} {expression!r} is not valid: expected KEY=VALUE "
                f"(e.g. {source} syncer.image.tag=dev)"
            )
        try:
            _assign(result, _key_path(key.strip()), typed_value(_unescape(raw_value)))
        except ValueError as exc:
            raise pytest.UsageError(
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
    """Read a YAML values file; a missing or malformed file is a :class:`pytest.UsageError`."""
    import yaml

    if not path.is_file():
        raise pytest.UsageError(f"{source}: file not found: {path}: pass the path of an existing YAML values file")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise pytest.UsageError(f"{source}: cannot read {path} as YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise pytest.UsageError(f"{source}: {path} must hold a YAML mapping of chart values, not {type(data).__name__}")
    return data


# --------------------------------------------------------------------------- scalars


def parse_duration(raw: str, *, source: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h`` -> seconds (> 0)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(raw))
    if match is None or float(match.group(1)) <= 0:
        raise pytest.UsageError(
            f"{source}={raw!r} is not valid: give a positive number of seconds, or a number with s, m or h "
            "(e.g. 180, 30m, 2h)"
        )
    factor = {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * factor


def _choice(raw: str, choices: Sequence[str], *, source: str) -> str:
    value = str(raw).strip()
    if value not in choices:
        raise pytest.UsageError(f"{source}={raw!r} is not valid: use one of {', '.join(choices)}")
    return value


def _as_bool(raw: Any, *, source: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise pytest.UsageError(f"{source}={raw!r} is not valid: use true or false")


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class _Raw:
    value: Any
    source: str
    base: Path | None  # directory relative paths are resolved against


def _pick(
    dest: str, cli: Mapping[str, Any], ini: Mapping[str, Any], env: Mapping[str, str], cwd: Path, inidir: Path
) -> _Raw | None:
    flag, ini_key, env_var = OPTIONS[dest]
    value = cli.get(dest)
    if value is not None and value is not False:
        return _Raw(value, flag, cwd)
    if env_var and env.get(env_var):
        return _Raw(env[env_var], env_var, cwd)
    value = ini.get(ini_key)
    if value not in (None, "", [], False):
        return _Raw(value, f"ini option {ini_key}", inidir)
    return None


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


def resolve(
    cli: Mapping[str, Any],
    ini: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    cwd: Path,
    inidir: Path,
) -> Settings:
    """Validate raw option values into :class:`Settings` (pure apart from reading files)."""

    def pick(dest: str) -> _Raw | None:
        return _pick(dest, cli, ini, env, cwd, inidir)

    kwargs: dict[str, Any] = {}

    raw = pick("vcluster_host")
    if raw is not None:
        kwargs["host"] = _choice(raw.value, HOST_CHOICES, source=raw.source)

    raw = pick("vcluster_host_kubeconfig")
    if raw is not None:
        path = _path(raw)
        if not path.is_file():
            raise pytest.UsageError(
                f"{raw.source}: kubeconfig file not found: {path}: pass the kubeconfig of the host cluster, "
                "or use --vcluster-host=kind"
            )
        kwargs["host_kubeconfig"] = path
        if kwargs.get("host", "auto") == "kind":
            raise pytest.UsageError(
                f"{raw.source} cannot be used with --vcluster-host=kind: use --vcluster-host=kubeconfig or auto"
            )

    raw = pick("vcluster_host_context")
    if raw is not None:
        kwargs["host_context"] = str(raw.value).strip()

    raw = pick("vcluster_kind_cluster")
    if raw is not None:
        name = str(raw.value).strip()
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 50:
            raise pytest.UsageError(
                f"{raw.source}={raw.value!r} is not valid: use lowercase letters, digits and '-' (at most 50)"
            )
        kwargs["kind_cluster"] = name

    raw = pick("vcluster_kind_keep")
    if raw is not None:
        kwargs["kind_keep"] = _as_bool(raw.value, source=raw.source)

    raw = pick("vcluster_chart")
    if raw is not None:
        chart = _path(raw)
        if not (chart / "Chart.yaml").is_file() and not (chart.is_file() and chart.suffix in (".tgz", ".gz")):
            raise pytest.UsageError(
                f"{raw.source}: no Helm chart at {chart} (no Chart.yaml): pass a chart directory or .tgz, "
                "or leave the option out to use the chart shipped with pytest-vcluster"
            )
        kwargs["chart"] = chart

    flag, ini_key, _ = OPTIONS["vcluster_values"]
    values_files: list[Path] = []
    layers: list[Mapping[str, Any]] = []
    for item in _list(ini.get(ini_key)):
        path = _path(_Raw(item, f"ini option {ini_key}", inidir))
        layers.append(load_values_file(path, source=f"ini option {ini_key}"))
        values_files.append(path)
    for item in _list(cli.get("vcluster_values")):
        path = _path(_Raw(item, flag, cwd))
        layers.append(load_values_file(path, source=flag))
        values_files.append(path)
    kwargs["values_files"] = tuple(values_files)

    flag, ini_key, _ = OPTIONS["vcluster_set"]
    sets: list[str] = []
    for source, items in ((f"ini option {ini_key}", _list(ini.get(ini_key))), (flag, _list(cli.get("vcluster_set")))):
        for item in items:
            layers.append(parse_set(item, source=source))
            sets.append(item)
    kwargs["set_values"] = tuple(sets)
    kwargs["values"] = deep_merge(*layers)

    raw = pick("vcluster_timeout")
    if raw is not None:
        kwargs["timeout"] = parse_duration(raw.value, source=raw.source)

    raw = pick("vcluster_keep_on_failure")
    if raw is not None:
        kwargs["keep_on_failure"] = _as_bool(raw.value, source=raw.source)

    raw = pick("vcluster_connect")
    if raw is not None:
        kwargs["connect"] = _choice(raw.value, CONNECT_CHOICES, source=raw.source)

    raw = pick("vcluster_stale_after")
    if raw is not None:
        kwargs["stale_after"] = parse_duration(raw.value, source=raw.source)

    raw = pick("vcluster_image_loader")
    if raw is not None:
        kwargs["image_loader"] = str(raw.value).strip()

    raw = pick("vcluster_syncer_image")
    if raw is not None:
        from ._errors import VClusterError
        from ._syncer_image import parse_ref

        try:
            kwargs["syncer_image"] = str(parse_ref(str(raw.value), source=raw.source))
        except VClusterError as exc:
            raise pytest.UsageError(str(exc)) from None

    raw = pick("vcluster_syncer_base_image")
    if raw is not None:
        base = str(raw.value).strip()
        if not re.fullmatch(r"[a-z0-9][a-z0-9./_:@-]*", base):
            raise pytest.UsageError(
                f"{raw.source}={raw.value!r} is not valid: give an image reference with Python 3.11, "
                f"e.g. {DEFAULT_SYNCER_BASE_IMAGE}"
            )
        kwargs["syncer_base_image"] = base

    raw = pick("vcluster_kind_image")
    if raw is not None:
        image = str(raw.value).strip()
        if not re.fullmatch(r"[a-z0-9][a-z0-9./_:@-]*", image) or ":" not in image.rsplit("/", 1)[-1]:
            raise pytest.UsageError(
                f"{raw.source}={raw.value!r} is not valid: give a kind node image with its tag, "
                "e.g. kindest/node:v1.33.4"
            )
        if kwargs.get("host") == "kubeconfig":
            raise pytest.UsageError(
                f"{raw.source} cannot be used with --vcluster-host=kubeconfig: it is the node image of a kind host"
            )
        kwargs["kind_image"] = image

    return Settings(**kwargs)


def from_pytest_config(config: pytest.Config, env: Mapping[str, str]) -> Settings:
    """Read the plugin's options from a pytest config and :func:`resolve` them."""
    cli = {dest: config.getoption(dest, default=None) for dest in OPTIONS}
    ini = {}
    for _dest, (_flag, ini_key, _env) in OPTIONS.items():
        try:
            ini[ini_key] = config.getini(ini_key)
        except ValueError:
            ini[ini_key] = None
    inidir = config.inipath.parent if config.inipath is not None else config.rootpath
    return resolve(cli, ini, env, cwd=config.invocation_params.dir, inidir=inidir)


# --------------------------------------------------------------------------- per-cluster options


@dataclass(frozen=True)
class ClusterOptions:
    """Options of one virtual cluster (marker, ``vcluster_factory(...)``, ``manager.cluster(...)``)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    set: tuple[tuple[str, Any], ...] = ()
    values_files: tuple[Path, ...] = ()
    timeout: float | None = None
    chart: Path | None = None
    connect: str | None = None


def cluster_options(options: Mapping[str, Any], *, where: str) -> ClusterOptions:
    """Validate keyword options of one cluster; ``where`` names the call site for messages."""
    allowed = ", ".join(CLUSTER_OPTION_KEYWORDS)
    unknown = sorted(set(options) - set(CLUSTER_OPTION_KEYWORDS))
    if unknown:
        raise pytest.UsageError(f"{where}: unknown keyword {', '.join(unknown)}; allowed keywords: {allowed}")
    kwargs: dict[str, Any] = {}
    values = options.get("values")
    if values is not None:
        if not isinstance(values, Mapping):
            raise pytest.UsageError(f"{where}: values= must be a dict of chart values, not {type(values).__name__}")
        kwargs["values"] = deep_merge(values)
    set_option = options.get("set")
    if set_option is not None:
        kwargs["set"] = tuple(_set_items(set_option, where=where))
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
            raise pytest.UsageError(f"{where}: timeout= must be a number of seconds, not {timeout!r}")
        kwargs["timeout"] = parse_duration(str(timeout), source=f"{where} timeout")
    chart = options.get("chart")
    if chart is not None:
        chart_path = Path(chart).expanduser().resolve()
        if not (chart_path / "Chart.yaml").is_file() and not chart_path.is_file():
            raise pytest.UsageError(f"{where}: chart={str(chart)!r}: no Helm chart at {chart_path}")
        kwargs["chart"] = chart_path
    connect = options.get("connect")
    if connect is not None:
        kwargs["connect"] = _choice(connect, CONNECT_CHOICES, source=f"{where} connect")
    return ClusterOptions(**kwargs)


def _set_items(option: Any, *, where: str) -> Iterable[tuple[str, Any]]:
    if isinstance(option, Mapping):
        for key, value in option.items():
            yield str(key), value
        return
    if isinstance(option, str):
        option = [option]
    if not isinstance(option, (list, tuple)):
        raise pytest.UsageError(f"{where}: set= must be a dict {{'a.b': value}} or a list of 'a.b=value' strings")
    for item in option:
        key, sep, raw_value = _partition_unescaped(str(item), "=")
        if not sep or not key:
            raise pytest.UsageError(f"{where}: set item {item!r} is not valid: expected KEY=VALUE")
        yield key, typed_value(_unescape(raw_value))


def set_layer(items: Iterable[tuple[str, Any]], *, where: str = "set") -> dict[str, Any]:
    """Nested values from ``(dotted key, value)`` pairs; the values are used as given."""
    layer: dict[str, Any] = {}
    for key, value in items:
        try:
            _assign(layer, _key_path(str(key)), value)
        except ValueError as exc:
            raise pytest.UsageError(f"{where}: set key {key!r} is not valid: {exc}") from None
    return layer


def options_values(options: ClusterOptions, *, where: str = "vcluster") -> dict[str, Any]:
    """The chart values given by per-cluster options: files, then ``values``, then ``set``."""
    layers: list[Mapping[str, Any]] = [
        load_values_file(p, source=f"{where} values_files") for p in options.values_files
    ]
    layers.append(options.values)
    layers.append(set_layer(options.set, where=where))
    return deep_merge(*layers)
