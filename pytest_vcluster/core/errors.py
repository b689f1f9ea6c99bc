"""Every error pytest-vcluster raises, in one module.

``VClusterError`` carries a complete, human-readable message: the fixtures turn
it into a test failure without a traceback (the message says what went wrong and
what to do).
"""

from __future__ import annotations

import json
import re


class VClusterError(Exception):
    """A virtual cluster or the host cluster could not be provided."""


class ConfigError(VClusterError):
    """An option or a cluster option has a bad value (the plugin reports it as a usage error)."""


class HostError(VClusterError):
    """The host cluster is missing, unreachable or cannot do what was asked."""


class HostForbiddenError(HostError):
    """The host refused the plugin's credentials a right it needs (HTTP 403); the message names the rule to add.

    Attributes: ``verb``, ``resource`` (with its subresource, e.g. ``pods/portforward``), ``group`` (``""``: the
    core group), ``user``."""

    def __init__(self, message: str, *, verb: str, resource: str, group: str, user: str) -> None:
        super().__init__(message)
        self.verb, self.resource, self.group, self.user = verb, resource, group, user


# What the API server says when RBAC refuses a request (the Status message of a 403; helm prints it too).
_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]+)" cannot (?P<verb>[a-z]+) resource "(?P<resource>[^"]+)" in API group "(?P<group>[^"]*)"'
    r'(?: in the namespace "(?P<namespace>[^"]+)"| at the cluster scope)?'
)


def forbidden(text: str, doing: str) -> HostForbiddenError | None:
    """The :class:`HostForbiddenError` for the host's refusal in ``text`` (a 403's body or helm's stderr) while
    ``doing`` (e.g. ``"creating virtual cluster vc-1"``); ``None`` when ``text`` holds no RBAC refusal."""
    try:  # an API error's body: a Status whose message says it
        status = json.loads(text)
        text = str(status.get("message", "")) if isinstance(status, dict) else text
    except ValueError:
        pass
    match = _FORBIDDEN.search(text)
    if match is None:
        return None
    user, verb, resource, group = match["user"], match["verb"], match["resource"], match["group"]
    where = f' in namespace {match["namespace"]}' if match["namespace"] else ""
    return HostForbiddenError(
        f"{doing}: the host refused {user} the right to {verb} {resource}"
        f"{f' (API group {group})' if group else ''}{where}. Add this rule to the ClusterRole bound to it "
        f'(docs/host-rbac.yaml lists every right the plugin needs): - apiGroups: ["{group}"], '
        f'resources: ["{resource}"], verbs: ["{verb}"]',
        verb=verb, resource=resource, group=group, user=user,
    )


class MissingToolError(VClusterError):
    """A command pytest-vcluster runs (helm, kind, docker, kubectl) is not on PATH; the message says how to get it."""


class ImageBuildError(VClusterError):
    """The syncer image could not be built, pushed or handed to the host."""


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


class ManifestError(VClusterError):
    """A manifest given to ``VCluster.apply`` cannot be read or parsed, or an object of it lacks ``apiVersion``,
    ``kind`` or ``metadata.name``."""


class UnknownKindError(VClusterError):
    """The virtual cluster serves no such resource type (a kind, plural or short name unknown to its discovery)."""


class ApplyError(VClusterError):
    """The virtual API server refused an object of ``VCluster.apply``; the message names the object and the reason."""


class CommandError(VClusterError):
    """A command run to its end failed, could not start or did not finish: ``kubectl`` or ``helm`` run by
    ``VCluster.kubectl`` / ``VCluster.helm`` (the runner, ``core/run.py``, raises it unless told another type).

    Attributes: ``command`` (the argument list), ``returncode`` (None when it timed out), ``stdout``, ``stderr``.
    """

    def __init__(self, message: str, *, command: list[str], returncode: int | None, stdout: str = "",
                 stderr: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class ExecError(VClusterError):
    """A command run in a pod by ``VCluster.exec`` exited non-zero (or could not start).

    Attributes: ``returncode`` (None when it did not run or did not finish), ``stdout``, ``stderr``.
    """

    def __init__(self, message: str, *, returncode: int | None, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class ResetError(VClusterError):
    """A used cluster could not be brought back to its first-ready state (it is then deleted, never reused)."""


class SnapshotError(VClusterError):
    """The state of a virtual cluster could not be captured, or a snapshot cannot be used."""


class WaitTimeout(VClusterError):
    """A condition awaited with :func:`~pytest_vcluster.wait_until` / ``VCluster.wait`` did not come true in time."""


class ConditionTimeout(Exception):
    """One readiness condition of a cluster was not met by the cluster's deadline (inside the package: the cluster
    turns it into a :class:`NotReadyError` with its diagnostics)."""

    def __init__(self, condition: str, waited: float, last: str) -> None:
        super().__init__(f"{condition}: not met after {waited:.1f}s")
        self.condition = condition
        self.waited = waited
        self.last = last


class NoContextError(ValueError):
    """The kubeconfig has no context of the name asked for (or no context at all)."""
