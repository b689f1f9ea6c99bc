"""Chart values: Helm-style ``--set`` parsing, merging like Helm, values files, and the per-cluster options
(``@pytest.mark.vcluster(...)``, ``vcluster_factory(...)``, ``manager.cluster(...)``, ``VCluster.create(...)``).

No pytest import here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, yaml_problem
from .settings import CONNECT_CHOICES, choice, parse_duration

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
    ClusterKeyword("kubernetes", "Kubernetes version of the control plane: a minor of the chart's table, e.g. '1.35' "
                                 "(default: --vcluster-kubernetes, else the chart's default)"),
    ClusterKeyword("fork", "start from a Snapshot (e.g. of vcluster_manager.template()), or, in the marker, the name "
                           "of the fixture returning one (e.g. 'vcluster_template')"),
)
CLUSTER_OPTION_KEYWORDS = tuple(keyword.name for keyword in CLUSTER_KEYWORDS)


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
    #: the Kubernetes version asked for (``"1.35"``; ``None``: the session's ``--vcluster-kubernetes``), checked against
    #: the chart's table when the cluster's values are resolved
    kubernetes: str | None = None


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
        kwargs["connect"] = choice(connect, CONNECT_CHOICES, source=f"{where} connect")
    recycle = options.get("recycle")
    if recycle is not None:
        if not isinstance(recycle, bool):
            raise ConfigError(f"{where}: recycle={recycle!r} is not valid: use recycle=False (or True)")
        kwargs["recycle"] = recycle
    kubernetes = options.get("kubernetes")
    if kubernetes is not None:
        if not isinstance(kubernetes, str):
            raise ConfigError(f"{where}: kubernetes={kubernetes!r} is not valid: give the version as a string, "
                              "e.g. kubernetes='1.35'")
        kwargs["kubernetes"] = kubernetes
    fork = options.get("fork")
    if fork is not None:
        from .snapshot import Snapshot

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
    return resolve_values(options=options, where=where)


def resolve_values(
    *,
    image: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    options: ClusterOptions | None = None,
    values: Mapping[str, Any] | None = None,
    set: Mapping[str, Any] | None = None,  # noqa: A002 - mirrors helm --set
    fork: Mapping[str, Any] | None = None,
    kubernetes: Mapping[str, Any] | None = None,
    where: str = "vcluster",
) -> dict[str, Any]:
    """A cluster's chart values, the one place they are merged (like Helm: a later layer wins, mappings merge).

    The layers, lowest first: the ``fork``'s values (the template's chart values), the syncer ``image``, the
    image tags of the ``kubernetes`` version asked for (:func:`~pytest_vcluster.core.kubernetes.version_layer`), the
    session's ``settings`` values (``--vcluster-values`` files then ``--vcluster-set``), then the cluster's own:
    ``options``' values files, ``values`` and ``set``, then ``values`` and ``set`` given here. Each path calls it
    once, with what it knows: the plugin's manager (``values_of``) the fork, the image, the settings and the
    options, and passes the result down as ``VCluster.create(chart_values=...)``; ``VCluster.create`` itself,
    without ``chart_values``, its fork, image, values and set. Under them all goes the host's ``serviceCIDR``
    (:func:`under_service_cidr`), known only once the cluster's host namespace exists.
    """
    layers: list[Mapping[str, Any] | None] = [fork, image, kubernetes, settings]
    if options is not None:
        layers.extend(load_values_file(p, source=f"{where} values_files") for p in options.values_files)
        layers.extend((options.values, options.set))
    layers.extend((values, set))
    return deep_merge(*layers)


def under_service_cidr(values: Mapping[str, Any], service_cidr: str | None) -> dict[str, Any]:
    """``values`` (of :func:`resolve_values`) over the host's ``serviceCIDR``, the lowest layer: a
    ``serviceCIDR`` in ``values`` wins. Added last because it is discovered last (a probe in the cluster's host
    namespace, which is made, and labelled with ``values``' pod security level, before)."""
    return {"serviceCIDR": service_cidr, **values} if service_cidr else dict(values)
