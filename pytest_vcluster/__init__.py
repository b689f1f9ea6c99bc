"""pytest-vcluster: every test gets its own real, throwaway Kubernetes cluster (a virtual cluster).

Fixtures (see ``pytest --fixtures``): ``vcluster``, ``vcluster_session``, ``vcluster_factory``,
``vcluster_manager``, ``vcluster_host``, ``vcluster_template``. Without pytest: ``Host.from_kubeconfig(path)``
and ``VCluster.create(host, ...)``; ``vc.snapshot()`` / ``vc.fork()`` / ``VCluster.create(host, fork=snapshot)``;
``vc.wait(what, probe)`` / ``wait_until(...)`` instead of poll loops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core.version import __version__

if TYPE_CHECKING:
    from .core.errors import (
        ApplyError,
        CommandError,
        ContainerStartError,
        ExecError,
        HostForbiddenError,
        ImageError,
        ManifestError,
        NotReadyError,
        ResetError,
        SnapshotError,
        UnknownKindError,
        VClusterError,
        WaitTimeout,
    )
    from .core.host import Host
    from .core.snapshot import Snapshot
    from .core.vcluster import VCluster
    from .core.wait import wait_until
    from .plugin.manager import VClusterManager

#: where each public name is defined (imported on first use: ``import pytest_vcluster`` stays cheap)
_HOMES = {
    "VCluster": "core.vcluster",
    "Host": "core.host",
    "VClusterManager": "plugin.manager",
    "Snapshot": "core.snapshot",
    "SnapshotError": "core.errors",
    "WaitTimeout": "core.errors",
    "wait_until": "core.wait",
    **dict.fromkeys(("VClusterError", "NotReadyError", "ContainerStartError", "ImageError", "ResetError", "ApplyError",
                     "CommandError", "ExecError", "ManifestError", "UnknownKindError", "HostForbiddenError"),
                    "core.errors"),
}

__all__ = [
    "ContainerStartError",
    "Host",
    "HostForbiddenError",
    "ImageError",
    "NotReadyError",
    "ResetError",
    "Snapshot",
    "SnapshotError",
    "VCluster",
    "VClusterError",
    "VClusterManager",
    "WaitTimeout",
    "__version__",
    "wait_until",
    "ApplyError",
    "CommandError",
    "ExecError",
    "ManifestError",
    "UnknownKindError",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
