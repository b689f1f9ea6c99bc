"""Init containers the syncer adds to host pods, of its own image."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .settings import TranslatorSettings

_NOBODY = 65534
_RESTRICTED = {  # Pod Security "restricted", whatever the pod's own settings
    "runAsNonRoot": True, "runAsUser": _NOBODY, "runAsGroup": _NOBODY, "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}


def helper_container(name: str, script: str, env: dict[str, str], spec: Mapping[str, Any],
                     settings: TranslatorSettings) -> dict[str, Any]:
    """An init container of the syncer's own image (on the node already; it has sh and sed). It runs as nobody
    with nothing allowed (restricted Pod Security) and asks for what the pod's first container asks for, so the
    pod's resource requests and QoS class stay what they were."""
    first = (spec.get("containers") or [{}])[0]
    resources = {k: v for k, v in (first.get("resources") or {}).items() if k in ("requests", "limits")}
    return {
        "name": name,
        "image": settings.syncer_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": copy.deepcopy(resources),
        "securityContext": copy.deepcopy(_RESTRICTED),
    }

