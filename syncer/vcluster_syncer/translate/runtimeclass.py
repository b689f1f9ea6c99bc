"""A pod whose RuntimeClass the host does not have: held by an init container, as a node without the
runtime handler would hold it."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from .helpers import helper_container
from .settings import TranslatorSettings

#: Init container holding a host pod whose RuntimeClass the host does not have (blocked_for_runtime_class).
RUNTIME_CLASS_CONTAINER = "vcluster-unknown-runtime-class"
#: It says why and waits until the pod is deleted (sh as PID 1 would ignore SIGTERM without the trap).
_HOLD_SCRIPT = 'trap "exit 0" TERM; echo "$MESSAGE" >&2; sleep infinity & wait'
_RUNTIME_CLASS_REFUSED = re.compile(r'RuntimeClass "([^"]+)" not found')


def refused_runtime_class(message: str, desired: Mapping[str, Any]) -> str | None:
    """The host pod's RuntimeClass if the host's RuntimeClass admission refused the pod for not having it
    (its message: 'pod rejected: RuntimeClass "x" not found'), else None."""
    name = (desired.get("spec") or {}).get("runtimeClassName")
    match = _RUNTIME_CLASS_REFUSED.search(message or "")
    return name if name and match and match.group(1) == name else None


def blocked_for_runtime_class(desired: Mapping[str, Any], settings: TranslatorSettings) -> dict[str, Any] | None:
    """The host pod for a virtual pod whose RuntimeClass (a virtual object) the host does not have, or None
    without the syncer's image. On a real cluster such a pod is scheduled, and then its node cannot create
    the sandbox (no such runtime handler): it stays Pending. The host pod is scheduled too, without the
    RuntimeClass, and an init container that only waits keeps its containers from ever running under the
    host's default runtime instead of the one asked for."""
    if not settings.syncer_image:
        return None
    out = copy.deepcopy(dict(desired))
    spec = out["spec"]
    name = spec.pop("runtimeClassName")
    message = (f"RuntimeClass {name!r} does not exist in the host cluster: the pod's containers cannot run "
               "(create it on the host with the same name and handler)")
    init = helper_container(RUNTIME_CLASS_CONTAINER, _HOLD_SCRIPT, {"MESSAGE": message}, spec, settings)
    spec["initContainers"] = [init] + list(spec.get("initContainers") or [])
    return out

