"""Errors raised by pytest-vcluster.

``VClusterError`` carries a complete, human-readable message: the fixtures turn
it into a test failure without a traceback (the message says what went wrong and
what to do).
"""

from __future__ import annotations


class VClusterError(Exception):
    """A virtual cluster or the host cluster could not be provided."""


class ConfigError(VClusterError):
    """An option or a cluster option has a bad value (the plugin reports it as a usage error)."""


class HostError(VClusterError):
    """The host cluster is missing, unreachable or cannot do what was asked."""


class NotReadyError(VClusterError):
    """A virtual cluster did not become ready in time, or cannot become ready at all."""


class ContainerStartError(NotReadyError):
    """A container of the virtual cluster's pod cannot start (e.g. it is in CrashLoopBackOff); raised at once."""


class ImageError(ContainerStartError):
    """A container's image cannot be pulled or used (ErrImagePull, ImagePullBackOff, ...); raised at once."""


def yaml_problem(exc: BaseException) -> str:
    """One line for a PyYAML error: the problem and where (``... at line L, column C``)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem}{where}"
