"""Secrets: those pods use (or all of them with SYNC_ALL_SECRETS); same rules as ConfigMaps."""

from __future__ import annotations

from ..context import Context
from ..kube import SECRETS
from ..translate import configs
from .base import Obj
from .configmaps import ConfigMaps


class Secrets(ConfigMaps):
    name = "secrets"
    kind = SECRETS

    def to_host(self, ctx: Context, vobj: Obj) -> Obj:
        return configs.translate_secret(vobj, ctx.settings)
