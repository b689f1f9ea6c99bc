"""Unique, Kubernetes-valid names for virtual clusters and host-name translation.

A virtual cluster is named ``vc-<run>-<worker>-<counter>``:

* ``run``: 6 hex characters, random per test run and shared by all pytest-xdist
  workers of that run (so names differ across concurrent runs and machines);
* ``worker``: the xdist worker id (``gw0``...) or ``m`` for a run without xdist;
* ``counter``: per process.

The same name is used for the host namespace and the Helm release, so it must be
a DNS-1035 label that the chart accepts as a release name (at most 52 characters,
``MAX_RELEASE_NAME`` of the shared contract).

Host names of virtual objects follow the syncer's rule, ``contract.host_name`` (``_contract.py``).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import threading

from .contract import contract

NAME_PREFIX = "vc"
MAX_RELEASE_NAME = contract.MAX_RELEASE_NAME  # the chart refuses longer release names

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def new_run_id() -> str:
    """A fresh random run id: 6 lowercase hex characters."""
    return secrets.token_hex(3)


def run_id_from_token(token: str) -> str:
    """Derive a 6-hex run id from any shared token (e.g. xdist's ``testrunuid``)."""
    cleaned = token.lower()
    if re.fullmatch(r"[0-9a-f]{6,}", cleaned):
        return cleaned[:6]
    return hashlib.sha256(token.encode()).hexdigest()[:6]


def sanitize_part(value: str, *, default: str = "x", max_len: int = 12) -> str:
    """Lowercase alphanumeric parts joined by ``-``, trimmed to ``max_len``."""
    cleaned = _NOT_ALNUM.sub("-", value.lower()).strip("-")[:max_len].strip("-")
    return cleaned or default


def worker_part(worker_id: str | None) -> str:
    """``gw3`` for xdist worker ``gw3``; ``m`` when not under xdist (``None`` or ``master``)."""
    if not worker_id or worker_id in ("master", "main"):
        return "m"
    return sanitize_part(worker_id, default="w")


def make_name(run_id: str, worker: str, counter: int, prefix: str = NAME_PREFIX) -> str:
    """``<prefix>-<run>-<worker>-<counter>``, a DNS-1035 label of at most ``MAX_RELEASE_NAME`` characters."""
    prefix_part = sanitize_part(prefix, default=NAME_PREFIX, max_len=20)
    if not prefix_part[0].isalpha():
        prefix_part = f"{NAME_PREFIX}-{prefix_part}"
    name = f"{prefix_part}-{sanitize_part(run_id, max_len=12)}-{sanitize_part(worker)}-{counter}"
    if len(name) > MAX_RELEASE_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_RELEASE_NAME - 9].rstrip('-')}-{digest}"
    if not _DNS1035.match(name):  # pragma: no cover - guarded by the construction above
        raise ValueError(f"generated name {name!r} is not a valid DNS-1035 label")
    return name


def is_valid_name(name: str) -> bool:
    """True when ``name`` can be a namespace and a Helm release name."""
    return len(name) <= MAX_RELEASE_NAME and bool(_DNS1035.match(name))


class NameGenerator:
    """Thread-safe generator of unique cluster names for one process."""

    def __init__(self, run_id: str, worker: str, prefix: str = NAME_PREFIX) -> None:
        self.run_id = run_id
        self.worker = worker
        self.prefix = prefix
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            counter = next(self._counter)
        return make_name(self.run_id, self.worker, counter, self.prefix)


def translate_host_name(name: str, namespace: str, release: str) -> str:
    """The host name the syncer gives virtual object ``namespace/name`` of release ``release``.

    The syncer's own rule (``vcluster_syncer/contract.py``): ``<name>-x-<namespace>-x-<release>``;
    longer than 63: its first 52 characters (without a trailing ``.``), ``-`` and the first 10 hex
    characters of the sha256 of the full name.
    """
    return str(contract.host_name(name, namespace, release))
