"""The run's validated options (:class:`Settings`), the shipped chart, and the scalar parsers they share.

The option table that fills :class:`Settings` from the command line, the environment and the ini file is
the pytest layer's (``pytest_vcluster.plugin.options``); the host provider reads :class:`Settings`.
Bad input raises :class:`ConfigError` (a :class:`VClusterError`) with one message that names the bad
value and says what to do. No pytest import here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import files
from .errors import ConfigError

HOST_CHOICES = ("auto", "kubeconfig", "kind")
CONNECT_CHOICES = ("auto", "port-forward", "service")
DEFAULT_TIMEOUT = 180.0
DEFAULT_STALE_AFTER = 2 * 3600.0
DEFAULT_KIND_CLUSTER = "pytest-vcluster"
DEFAULT_RECYCLE_MAX = 50
#: the base image of the syncer image (Python 3.11); ``--vcluster-syncer-base-image`` changes it
DEFAULT_SYNCER_BASE_IMAGE = "python:3.11-slim-bookworm"

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
    #: kind's own cluster config for a kind host this run creates (``kind create cluster --config``; None: kind's
    #: default, one node)
    kind_config: Path | None = None
    #: warm pool: clusters of the session's options kept ready ahead of demand (0: no pool)
    pool: int = 0
    #: leave the pool's unclaimed clusters for the next run
    pool_keep: bool = False
    #: reset a function-scoped cluster after its test and hand it to the next test with the same options
    recycle: bool = True
    #: resets after which a recycled cluster is deleted instead (a guard against slow growth)
    recycle_max: int = DEFAULT_RECYCLE_MAX
    #: the Kubernetes version of the control planes (a minor of the chart's table; None: the chart's default)
    kubernetes: str | None = None
    #: the merged content of ``values_files`` then ``set_values``
    values: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def chart_path(self) -> Path:
        """The chart to install: ``--vcluster-chart`` or the chart shipped with the package."""
        return self.chart if self.chart is not None else default_chart_path()



# --------------------------------------------------------------------------- chart


def shipped_chart() -> Path | None:
    """The chart shipped with pytest-vcluster (:data:`files.CHART`), None when it is missing."""
    return files.package_file(*files.CHART[:2], holding=files.CHART[2])


def default_chart_path() -> Path:
    """The chart shipped with pytest-vcluster; :class:`ConfigError` when it is missing."""
    chart = shipped_chart()
    if chart is None:
        raise ConfigError(
            f"pytest-vcluster: the chart shipped with the package was not found (looked in "
            f"{files.looked_in(*files.CHART[:2])}): reinstall pytest-vcluster or pass --vcluster-chart=PATH"
        )
    return chart


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


def choice(raw: str, choices: Sequence[str], *, source: str) -> str:
    value = str(raw).strip()
    if value not in choices:
        raise ConfigError(f"{source}={raw!r} is not valid: use one of {', '.join(choices)}")
    return value


def as_bool(raw: Any, *, source: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{source}={raw!r} is not valid: use true or false")


