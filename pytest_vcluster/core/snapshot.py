"""Snapshots of a virtual cluster's state, and forks started from them.

A :class:`Snapshot` holds every key the virtual API server keeps in the cluster's etcd (the objects,
under ``/registry/``), read through etcd's JSON gateway over a port-forward to the control-plane pod
(etcd listens only inside the pod). A fork is a new cluster made the usual way (fresh certificates,
fresh service-account key, its own host namespace); once its API is ready the snapshot is written
into its etcd in transactions, and keys the template does not have are deleted, so every virtual
object of the template is there. The API server and the controllers see the writes as watch events;
the syncer copies the template's pods, services, configmaps... to the fork's host namespace.

What a fork keeps of its own (never copied from the template), because it names the fork's
certificates or addresses: the ``kube-root-ca.crt`` ConfigMaps, ``kube-system/extension-apiserver-
authentication``, Service/Endpoints/EndpointSlices ``default/kubernetes``. Skipped altogether: Events,
Leases and master leases (the template's processes), pods and nodes — Deployments, StatefulSets, Jobs...
start their pods again in the fork; a bare pod of the template is not in the fork. Copied objects keep the
template's status until their controllers update it (a Deployment may read "available" for a moment
before its pod exists in the fork): wait for the pods, not for a copied status.

No pytest import here.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contract import contract
from .errors import SnapshotError

#: Not copied, and left alone in the fork: objects of the template's running processes (Events, Leases), its
#: pods (they ran in the template's host namespace: their controllers start them again in the fork, while a
#: copied pod would carry the template's status until the syncer found its host copy missing and deleted it)
#: and its nodes (the fork's syncer makes its own).
SKIPPED = re.compile(rb"^/registry/(events|leases|masterleases|pods|minions)/")
#: Keys naming the fork's own certificates and addresses: the fork keeps its own.
FORK_OWNED = re.compile(
    rb"^/registry/("
    rb"configmaps/[^/]+/kube-root-ca\.crt"
    rb"|configmaps/kube-system/extension-apiserver-authentication"
    rb"|services/(specs|endpoints)/default/kubernetes"
    rb"|endpointslices/default/kubernetes"
    rb")$"
)
#: Never deleted from the fork: its own IP allocations (the API server's repair loop reconciles them).
KEPT = re.compile(rb"^/registry/ipaddresses/")
PREFIX = b"/registry/"
#: etcd's defaults: at most 128 operations and 1.5 MiB per request; stay below both
MAX_TXN_OPS = 100
MAX_TXN_BYTES = 1024 * 1024
FORMAT = 1


@dataclass(frozen=True)
class Snapshot:
    """The state of virtual cluster ``source`` at ``taken_at``: its etcd keys, and how it was made."""

    source: str
    chart_version: str | None
    taken_at: float
    #: the chart values the template was made with (a fork uses them, plus its own)
    values: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def size(self) -> int:
        """Bytes of keys and values."""
        return sum(len(k) + len(v) for k, v in self.keys)

    def __repr__(self) -> str:
        return f"<Snapshot of {self.source}: {len(self.keys)} keys, {self.size / 1024:.0f} KiB>"

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "source": self.source,
            "chart_version": self.chart_version,
            "taken_at": self.taken_at,
            "values": self.values,
            "keys": [[_b64(k), _b64(v)] for k, v in self.keys],
        }
        return gzip.compress(json.dumps(doc).encode(), compresslevel=1)

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "snapshot") -> Snapshot:
        try:
            doc = json.loads(gzip.decompress(data))
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
            return cls(
                source=str(doc["source"]),
                chart_version=doc.get("chart_version"),
                taken_at=float(doc["taken_at"]),
                values=doc.get("values") or {},
                keys=tuple((_unb64(k), _unb64(v)) for k, v in doc["keys"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(f"{where} is not a pytest-vcluster snapshot: {exc}") from None

    def write(self, path: Path) -> Path:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: Path) -> Snapshot:
        return cls.from_bytes(path.read_bytes(), where=str(path))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _next_key(key: bytes) -> bytes:
    return key + b"\0"


# --------------------------------------------------------------------------- etcd's JSON gateway


class Etcd:
    """etcd's v3 JSON gateway at ``127.0.0.1:port`` (a port-forward to the control-plane pod)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        #: one kept-alive connection: each new one is a new port-forward stream (tens of milliseconds)
        self._conn: http.client.HTTPConnection | None = None

    def _request(self, path: str, body: Mapping[str, Any]) -> tuple[int, bytes]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self._conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
            response = self._conn.getresponse()
            return response.status, response.read()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            status, data = self._request(path, body)
        except (http.client.HTTPException, ConnectionError):  # a kept-alive stream was closed: once more
            status, data = self._request(path, body)
        if status != 200:
            raise SnapshotError(f"etcd {path}: HTTP {status}: {data[:300]!r}")
        result = json.loads(data)
        if isinstance(result, dict) and result.get("error"):
            raise SnapshotError(f"etcd {path}: {result.get('error')}")
        return result  # type: ignore[no-any-return]  # etcd's JSON gateway answers an object

    def items(self, prefix: bytes = PREFIX, page: int = 500) -> Iterator[tuple[bytes, bytes]]:
        """Every key under ``prefix`` with its value, in key order (paged)."""
        for key, value, _ in self.records(prefix, page=page):
            yield key, value

    def records(self, prefix: bytes = PREFIX, *, keys_only: bool = False,
                page: int = 500) -> Iterator[tuple[bytes, bytes, int]]:
        """Every key under ``prefix`` with its value (empty with ``keys_only``) and the revision that last
        changed it, in key order (paged)."""
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        start = prefix
        while True:
            body: dict[str, Any] = {"key": _b64(start), "range_end": _b64(end), "limit": page}
            if keys_only:
                body["keys_only"] = True
            result = self.call("/v3/kv/range", body)
            kvs = result.get("kvs") or []
            for kv in kvs:
                yield _unb64(kv["key"]), _unb64(kv.get("value", "")), int(kv.get("mod_revision", 0))
            if not result.get("more") or not kvs:
                return
            start = _next_key(_unb64(kvs[-1]["key"]))

    def compact(self) -> int:
        """Compact etcd's history up to its current revision (the latest value of every key stays); returns it."""
        result = self.call("/v3/kv/range", {"key": _b64(PREFIX), "keys_only": True, "limit": 1})
        revision = int((result.get("header") or {}).get("revision", 0))
        try:
            self.call("/v3/kv/compaction", {"revision": revision})
        except SnapshotError as exc:  # someone (kube-apiserver's compactor) compacted past it already
            if "compacted" not in str(exc):
                raise
        return revision

    def get(self, keys: list[bytes]) -> dict[bytes, tuple[bytes, int]]:
        """The value and last revision of each of ``keys`` that exists (transactions of range reads)."""
        found: dict[bytes, tuple[bytes, int]] = {}
        for i in range(0, len(keys), MAX_TXN_OPS):
            result = self.call("/v3/kv/txn", {"success": [{"request_range": {"key": _b64(k)}}
                                                          for k in keys[i:i + MAX_TXN_OPS]]})
            for response in result.get("responses") or []:
                for kv in (response.get("response_range") or {}).get("kvs") or []:
                    found[_unb64(kv["key"])] = (_unb64(kv.get("value", "")), int(kv.get("mod_revision", 0)))
        return found

    def apply(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> dict[bytes, int]:
        """Write ``puts`` and delete ``deletes`` in transactions within etcd's request limits; returns the
        revision at which each written key was written (one per transaction)."""
        ops: list[tuple[bytes, dict[str, Any]]] = [(k, {"request_delete_range": {"key": _b64(k)}}) for k in deletes]
        ops += [(k, {"request_put": {"key": _b64(k), "value": _b64(v)}}) for k, v in puts]
        written: dict[bytes, int] = {}
        batch: list[tuple[bytes, dict[str, Any]]] = []
        size = 0

        def commit() -> None:
            result = self.call("/v3/kv/txn", {"success": [op for _, op in batch]})
            revision = int((result.get("header") or {}).get("revision", 0))
            written.update((key, revision) for key, op in batch if "request_put" in op)

        for key, op in ops:
            op_size = len(json.dumps(op))
            if batch and (len(batch) >= MAX_TXN_OPS or size + op_size > MAX_TXN_BYTES):
                commit()
                batch, size = [], 0
            batch.append((key, op))
            size += op_size
        if batch:
            commit()
        return written


class EtcdView:
    """What a writer knows of etcd's keys under ``prefix``: each one's value and the revision that last changed
    it. Read whole once; :meth:`refresh` then lists only keys and revisions and fetches the values of the keys
    changed since (etcd gives every write a new revision), so checking that nothing changed costs one small
    read."""

    def __init__(self, etcd: Etcd, prefix: bytes = PREFIX) -> None:
        self.etcd = etcd
        self.prefix = prefix
        self._values: dict[bytes, bytes] = {}
        self._revisions: dict[bytes, int] = {}
        for key, value, revision in etcd.records(prefix):
            self._values[key], self._revisions[key] = value, revision

    def current(self) -> dict[bytes, bytes]:
        return dict(self._values)

    def apply(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        written = self.etcd.apply(puts, deletes)
        for key in deletes:
            self._values.pop(key, None)
            self._revisions.pop(key, None)
        for key, value in puts:
            self._values[key], self._revisions[key] = value, written[key]

    def refresh(self) -> dict[bytes, bytes]:
        """etcd's keys and values now."""
        listed = {key: revision for key, _, revision in self.etcd.records(self.prefix, keys_only=True)}
        for key in [k for k in self._values if k not in listed]:
            del self._values[key], self._revisions[key]
        changed = [key for key, revision in listed.items() if self._revisions.get(key) != revision]
        fetched = self.etcd.get(changed)
        for key in changed:
            if key in fetched:
                self._values[key], self._revisions[key] = fetched[key]
            else:  # deleted since it was listed
                self._values.pop(key, None)
                self._revisions.pop(key, None)
        return dict(self._values)


@contextlib.contextmanager
def etcd_of(host: Any, namespace: str, release: str) -> Iterator[Etcd]:
    """etcd of virtual cluster ``release``, through a port-forward to its control-plane pod."""
    from .portforward import PortForward, kubernetes_stream_opener

    pod = contract.control_plane_pod(release)
    opener = kubernetes_stream_opener(host.new_configuration(), namespace, pod, contract.ETCD_PORT)
    forward = PortForward(opener, name=f"{release}-etcd")
    etcd = Etcd(forward.port)
    try:
        yield etcd
    finally:
        etcd.close()
        forward.close()


# --------------------------------------------------------------------------- take and restore


def take(host: Any, namespace: str, release: str, *, chart_version: str | None,
         values: Mapping[str, Any]) -> Snapshot:
    """Read every object key of the cluster's etcd."""
    try:
        with etcd_of(host, namespace, release) as etcd:
            keys = tuple((k, v) for k, v in etcd.items() if not SKIPPED.match(k))
    except SnapshotError as exc:
        raise SnapshotError(f"cannot capture the state of virtual cluster {release}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. the pod is gone, the port-forward refused
        raise SnapshotError(
            f"cannot capture the state of virtual cluster {release} (its etcd in pod "
            f"{contract.control_plane_pod(release)} of host namespace {namespace} did not answer: "
            f"{type(exc).__name__}: {exc}); is the cluster running?"
        ) from None
    return Snapshot(source=release, chart_version=chart_version, taken_at=time.time(), values=dict(values),
                    keys=keys)


def plan(snapshot: Snapshot, current: Mapping[bytes, bytes]) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """``(puts, deletes)`` turning the keys ``current`` of a new cluster into the snapshot's state
    (pure: the fork keeps its own FORK_OWNED keys, SKIPPED keys are not touched)."""
    wanted = {k: v for k, v in snapshot.keys if not SKIPPED.match(k) and not FORK_OWNED.match(k)}
    puts = [(k, v) for k, v in sorted(wanted.items()) if current.get(k) != v]
    deletes = sorted(k for k in current if k not in wanted
                     and not SKIPPED.match(k) and not FORK_OWNED.match(k) and not KEPT.match(k))
    return puts, deletes


def restore(host: Any, namespace: str, release: str, snapshot: Snapshot) -> int:
    """Write ``snapshot`` into the etcd of new cluster ``release``; returns the keys written or deleted."""
    try:
        with etcd_of(host, namespace, release) as etcd:
            puts, deletes = plan(snapshot, dict(etcd.items()))
            etcd.apply(puts, deletes)
    except SnapshotError as exc:
        raise SnapshotError(f"cannot restore the snapshot of {snapshot.source} into {release}: {exc}") from None
    return len(puts) + len(deletes)


def check_usable(snapshot: Snapshot, chart_version: str | None) -> None:
    """A snapshot made with another chart version is refused (objects the chart puts into the virtual
    cluster, and its flags, may differ)."""
    if snapshot.chart_version != chart_version:
        raise SnapshotError(
            f"the snapshot of {snapshot.source} was taken with chart version {snapshot.chart_version}, "
            f"but this cluster's chart is version {chart_version}: prepare the template again with this chart"
        )


def wait_crds_served(api_client: Any, deadline: Any) -> None:
    """Wait until the API server serves every CustomResourceDefinition the fork got (a CRD written to
    etcd is served once the API server's watch has seen it: about a second)."""
    from kubernetes import client

    from .wait import wait_for

    crds = client.ApiextensionsV1Api(api_client).list_custom_resource_definition(_request_timeout=30).items
    wanted = {(crd.spec.group, v.name, crd.spec.names.plural) for crd in crds for v in crd.spec.versions if v.served}

    def served() -> bool:
        by_group_version: dict[tuple[str, str], set[str]] = {}
        for group, version, plural in wanted:
            key = (group, version)
            if key not in by_group_version:
                try:
                    resources = client.CustomObjectsApi(api_client).get_api_resources(group, version,
                                                                                      _request_timeout=10)
                except client.ApiException as exc:
                    if exc.status == 404:
                        return False
                    raise
                by_group_version[key] = {r.name for r in (resources.resources or [])}
            if plural not in by_group_version[key]:
                return False
        return True

    if wanted:
        wait_for(f"the {len(crds)} CustomResourceDefinition(s) of the snapshot to be served", served, deadline,
                        max_wait=0.3)
