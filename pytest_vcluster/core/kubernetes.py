"""The Kubernetes version of a virtual control plane: the chart's table of supported minors
(``kubernetes-versions.yaml`` beside ``Chart.yaml``) and the chart values that pick one.

A virtual control plane has no kubelet, so it runs any minor of the table whatever the host runs. A version is
asked for as a minor (``"1.35"``, ``"v1.35"``) or as that minor's exact patch (``"v1.35.4"``); anything else is a
:class:`~pytest_vcluster.core.errors.ConfigError` naming the bad value and listing the supported ones.

No pytest import here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: the table's file name, beside the chart's Chart.yaml
TABLE = "kubernetes-versions.yaml"
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class ControlPlane:
    """One supported minor: its Kubernetes patch (kube-apiserver and kube-controller-manager image tag) and the etcd
    image tag kubeadm of that patch pins."""

    minor: str  #: "1.37"
    kubernetes: str  #: "v1.37.2"
    etcd: str  #: "3.7.0-0"

    def values(self) -> dict[str, Any]:
        """The chart values that make a virtual cluster of this minor (nested, as a values file)."""
        return {"controlPlane": {
            "apiServer": {"image": {"tag": self.kubernetes}},
            "controllerManager": {"image": {"tag": self.kubernetes}},
            "etcd": {"image": {"tag": self.etcd}},
        }}


@dataclass(frozen=True)
class Versions:
    """The table of one chart: its default minor and every supported one."""

    default: str
    planes: Mapping[str, ControlPlane]

    def supported(self) -> str:
        """``1.33 (v1.33.13), 1.34 (v1.34.4), ...`` for messages."""
        return ", ".join(f"{p.minor} ({p.kubernetes})" for p in self.planes.values())

    def get(self, version: str, *, where: str) -> ControlPlane:
        """The control plane ``version`` names; a :class:`ConfigError` (naming ``where``) when it names none."""
        text = str(version).strip()
        match = _VERSION.fullmatch(text)
        plane = self.planes.get(f"{match.group(1)}.{match.group(2)}") if match else None
        if match and plane is not None and match.group(3) is not None and plane.kubernetes != "v" + text.lstrip("v"):
            raise ConfigError(f"{where}: Kubernetes {version!r} is not the supported patch of {plane.minor} "
                              f"({plane.kubernetes}): give the minor ({plane.minor!r}) or {plane.kubernetes!r}")
        if plane is None:
            raise ConfigError(f"{where}: Kubernetes {version!r} is not a supported virtual control plane; "
                              f"give one of {', '.join(repr(m) for m in self.planes)} "
                              f"(supported: {self.supported()})")
        return plane


def parse_table(data: Any, *, source: str) -> Versions:
    """:class:`Versions` from the loaded YAML of a table; a :class:`ConfigError` naming ``source`` when it is not
    one."""
    if not isinstance(data, Mapping) or not isinstance(data.get("versions"), Mapping):
        raise ConfigError(f"{source}: not a table of Kubernetes versions (no `versions:` mapping)")
    planes: dict[str, ControlPlane] = {}
    for minor, entry in data["versions"].items():
        if not isinstance(entry, Mapping) or not entry.get("kubernetes") or not entry.get("etcd"):
            raise ConfigError(f"{source}: version {minor!r} needs `kubernetes` and `etcd` image tags")
        planes[str(minor)] = ControlPlane(str(minor), str(entry["kubernetes"]), str(entry["etcd"]))
    default = str(data.get("default", ""))
    if default not in planes:
        raise ConfigError(f"{source}: default {default!r} is not one of {', '.join(planes)}")
    return Versions(default, planes)


def versions_of(chart: Path) -> Versions:
    """The table of the chart at ``chart`` (a directory); a :class:`ConfigError` when the chart has none (a chart
    of the user's own without the table cannot pick a version by name)."""
    import yaml

    path = Path(chart) / TABLE
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"the chart at {chart} has no {TABLE} ({exc.strerror}): a Kubernetes version can be "
                          "chosen by name only with pytest-vcluster's chart; set the image tags as values") from None
    return parse_table(yaml.safe_load(text), source=str(path))


def _api_server_tag(values: Mapping[str, Any] | None) -> str | None:
    node: Any = values or {}
    for key in ("controlPlane", "apiServer", "image", "tag"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return str(node) if node else None


def version_layer(chart: Path, version: str | None, *, fork_values: Mapping[str, Any] | None = None,
                  where: str) -> dict[str, Any] | None:
    """The chart values of Kubernetes ``version`` (``None``: no layer, the chart's default) for the chart at
    ``chart``. A fork runs its template's version: ``fork_values`` (the template's values) of another version is
    a :class:`ConfigError`, as is a version the chart's table lacks (both naming ``where``)."""
    if version is None:
        return None
    versions = versions_of(chart)
    plane = versions.get(version, where=where)
    if fork_values is not None:
        template = _api_server_tag(fork_values) or versions.planes[versions.default].kubernetes
        if template != plane.kubernetes:
            raise ConfigError(f"{where}: kubernetes={version!r} cannot fork a template of Kubernetes {template}: a "
                              "fork runs its template's version (its etcd data is that version's); drop kubernetes= "
                              f"or fork a template made with kubernetes={plane.minor!r}")
    return plane.values()
