"""Kubeconfig helpers: reading the virtual cluster's kubeconfig and pointing it at a local endpoint."""

from __future__ import annotations

import base64
import copy
import ipaddress
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from .contract import contract
from .errors import NoContextError, yaml_problem

T = TypeVar("T")


def environ_race_safe(make: Callable[[], T], attempts: int = 5) -> T:
    """``make()`` — a ``kubernetes.client.Configuration`` or a client built on one — tried again when it fails
    with ``KeyError``: the client reads proxies with ``urllib.request.getproxies()``, which iterates
    ``os.environ``, and a key removed meanwhile by another thread (pytest removes ``PYTEST_CURRENT_TEST`` after
    every test) raises ``KeyError`` there. Background threads (resets, the pool) meet that race."""
    for attempt in range(attempts):
        try:
            return make()
        except KeyError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def load(text: str | bytes) -> dict[str, Any]:
    """A kubeconfig's content; :class:`ValueError` with a one-line reason when it is not one."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"it is not valid YAML ({yaml_problem(exc)})") from None
    if data is None:
        raise ValueError("it is empty")
    if not isinstance(data, dict):
        raise ValueError(f"it is not a kubeconfig (a YAML mapping with clusters, users and contexts) "
                         f"but a YAML {type(data).__name__}")
    return data


def dump(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False)


def write(path: Path, config: Mapping[str, Any]) -> Path:
    """Write a kubeconfig readable only by the owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(dump(config))
    return path


def _named(items: Any, name: str | None) -> dict[str, Any] | None:
    for item in items or []:
        if isinstance(item, dict) and (name is None or item.get("name") == name):
            return item
    return None


def current(config: Mapping[str, Any], context: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``(cluster, user)`` entries (inner dicts) of ``context`` or the current context."""
    context_name = context or config.get("current-context")
    ctx = _named(config.get("contexts"), context_name) if context_name else _named(config.get("contexts"), None)
    if ctx is None:
        names = [str(c.get("name")) for c in config.get("contexts") or [] if isinstance(c, dict)]
        raise NoContextError(
            f"kubeconfig has no context {context_name!r} (its contexts: {', '.join(names) or 'none'})"
            if context_name else "kubeconfig has no contexts"
        )
    inner = ctx.get("context") or {}
    cluster = _named(config.get("clusters"), inner.get("cluster"))
    user = _named(config.get("users"), inner.get("user"))
    if cluster is None:
        raise ValueError(f"kubeconfig has no cluster {inner.get('cluster')!r}")
    return dict(cluster.get("cluster") or {}), dict((user or {}).get("user") or {})


def server_of(config: Mapping[str, Any], context: str | None = None) -> str:
    cluster, _ = current(config, context)
    return str(cluster.get("server", ""))


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def rewrite(config: Mapping[str, Any], *, server: str, name: str) -> dict[str, Any]:
    """A single-context kubeconfig named ``name`` for the current context of ``config`` at ``server``.

    The certificate is still checked against the original server's host name: when it was a
    name (``localhost`` in the virtual cluster's secret) it becomes ``tls-server-name``.
    """
    cluster, user = current(config)
    original_host = urlsplit(str(cluster.get("server", ""))).hostname or ""
    new_host = urlsplit(server).hostname or ""
    cluster = copy.deepcopy(cluster)
    cluster["server"] = server
    if original_host and not is_ip(original_host) and original_host != new_host and "tls-server-name" not in cluster:
        cluster["tls-server-name"] = original_host
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": copy.deepcopy(user)}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }


def from_token(*, server: str, token: str, ca_pem: str | bytes, name: str) -> dict[str, Any]:
    """A kubeconfig from a bearer token and a CA certificate (PEM)."""
    ca = ca_pem.encode() if isinstance(ca_pem, str) else ca_pem
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca).decode()}}
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }


def secret_value(data: Mapping[str, str] | None, key: str) -> bytes | None:
    """A decoded value from a Secret's base64 ``data``."""
    if not data or data.get(key) is None:
        return None
    return base64.b64decode(data[key])


def from_secret(data: Mapping[str, str] | None, *, name: str) -> dict[str, Any]:
    """The virtual cluster's kubeconfig from Secret ``vc-R`` (key ``config``, else ``token`` + CA).

    The keys and the placeholder server are the chart's (``contract.SECRET_KEY_*``).
    """
    raw = secret_value(data, contract.SECRET_KEY_CONFIG)
    if raw:
        return rewrite(load(raw), server=server_of(load(raw)), name=name)
    token = secret_value(data, contract.SECRET_KEY_TOKEN)
    ca = secret_value(data, contract.SECRET_KEY_CA)
    if token and ca:
        return from_token(server=contract.KUBECONFIG_SERVER, token=token.decode().strip(), ca_pem=ca, name=name)
    raise ValueError(f"secret has neither {contract.SECRET_KEY_CONFIG!r} nor {contract.SECRET_KEY_TOKEN!r} and "
                     f"{contract.SECRET_KEY_CA!r}")
