"""pytest-vcluster: every test gets its own real, throwaway Kubernetes cluster (a virtual cluster).

Fixtures (see ``pytest --fixtures``): ``vcluster``, ``vcluster_session``, ``vcluster_factory``,
``vcluster_manager``, ``vcluster_host``, ``vcluster_template``. Without pytest: ``Host.from_kubeconfig(path)``
and ``VCluster.create(host, ...)``; ``vc.snapshot()`` / ``vc.fork()`` / ``VCluster.create(host, fork=snapshot)``;
``vc.wait(what, probe)`` / ``wait_until(...)`` instead of poll loops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

if TYPE_CHECKING:
    from ._errors import (
        ApplyError,
        CommandError,
        ContainerStartError,
        ExecError,
        HostForbiddenError,
        ImageError,
        ManifestError,
        NotReadyError,
        ResetError,
        UnknownKindError,
        VClusterError,
    )
    from ._hostprovider import Host
    from ._manager import VClusterManager
    from ._snapshot import Snapshot, SnapshotError
    from ._wait import WaitTimeout, wait_until
    from .vcluster import VCluster

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
    if name == "VCluster":
        from .vcluster import VCluster

        return VCluster
    if name == "Host":
        from ._hostprovider import Host

        return Host
    if name == "VClusterManager":
        from ._manager import VClusterManager

        return VClusterManager
    if name in ("VClusterError", "NotReadyError", "ContainerStartError", "ImageError", "ResetError"):
        from . import _errors

        return getattr(_errors, name)
    if name in ("Snapshot", "SnapshotError"):
        from . import _snapshot

        return getattr(_snapshot, name)
    if name in ("WaitTimeout", "wait_until"):
        from . import _wait

        return getattr(_wait, name)
    if name in ("ApplyError", "CommandError", "ExecError", "ManifestError", "UnknownKindError", "HostForbiddenError"):
        from . import _errors

        return getattr(_errors, name)
    raise AttributeError(name)
