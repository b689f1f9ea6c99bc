"""The only module that talks to Kubernetes API servers.

Plain dicts in, plain dicts out. Everything else in the syncer takes a ``Kube`` (this module's
``ApiKube``, or the in-memory fake in the unit tests) as a parameter.

Plain HTTPS with urllib3 (a ``Connection``: address, CA, bearer token, re-read when it rotates),
without API discovery: the kinds the syncer handles are all known, built-in kinds. The ``kubernetes``
package is not imported (it cost ~20 MiB); only a syncer run by hand outside a cluster uses it, to read
a kubeconfig.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    api_version: str  # "v1" or "group/version"
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


PODS = Kind("v1", "Pod", "pods")
SERVICES = Kind("v1", "Service", "services")
ENDPOINTS = Kind("v1", "Endpoints", "endpoints")
CONFIGMAPS = Kind("v1", "ConfigMap", "configmaps")
SECRETS = Kind("v1", "Secret", "secrets")
PVCS = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
EVENTS = Kind("v1", "Event", "events")
SERVICEACCOUNTS = Kind("v1", "ServiceAccount", "serviceaccounts")
NAMESPACES = Kind("v1", "Namespace", "namespaces", namespaced=False)
NODES = Kind("v1", "Node", "nodes", namespaced=False)
ENDPOINTSLICES = Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices")
NETWORK_POLICIES = Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
STORAGE_CLASSES = Kind("storage.k8s.io/v1", "StorageClass", "storageclasses", namespaced=False)


class ApiError(Exception):
    """A failed API call. ``status`` 0 means the server was not reached."""

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """409 with reason Conflict: stale resourceVersion or failed precondition."""


class AlreadyExists(ApiError):
    pass


class Gone(ApiError):
    """410: the watch's resourceVersion is too old; list again."""


class Forbidden(ApiError):
    pass


class Invalid(ApiError):
    pass


def error_for(status: int, reason: str = "", message: str = "") -> ApiError:
    if status == 404:
        return NotFound(status, reason, message)
    if status == 409:
        if reason == "AlreadyExists":
            return AlreadyExists(status, reason, message)
        return Conflict(status, reason, message)
    if status == 410:
        return Gone(status, reason, message)
    if status == 403:
        return Forbidden(status, reason, message)
    if status == 422:
        return Invalid(status, reason, message)
    return ApiError(status, reason, message)


class Kube(Protocol):
    """What the syncer needs from one API server."""

    def list(self, kind: Kind, namespace: str | None = None,
             label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]: ...

    def watch(
        self, kind: Kind, resource_version: str, namespace: str | None = None,
        label_selector: str | None = None, timeout_seconds: int = 300,
    ) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def create(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]: ...

    def patch(self, kind: Kind, name: str, patch: dict[str, Any], namespace: str | None = None,
              subresource: str | None = None) -> dict[str, Any]: ...

    def delete(self, kind: Kind, name: str, namespace: str | None = None, grace_period_seconds: int | None = None,
               uid: str | None = None) -> bool: ...

    def post_subresource(self, kind: Kind, name: str, namespace: str | None, subresource: str,
                         body: dict[str, Any]) -> dict[str, Any]: ...

    def ready(self, check: str = "") -> bool: ...


def _namespace_of(kind: Kind, obj: dict[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("namespace") if kind.namespaced else None


class Connection:
    """Where an API server is and how to authenticate: what ``ApiKube`` and ``RawConnector`` share.

    ``token_file`` is read again at most every ``TOKEN_REREAD`` seconds (in-cluster tokens rotate); a fixed
    ``token`` is used as is."""

    TOKEN_REREAD = 60.0

    def __init__(self, host: str, *, ca_file: str | None = None, verify: bool = True, token: str | None = None,
                 token_file: str | None = None, cert_file: str | None = None, key_file: str | None = None) -> None:
        self.host = host.rstrip("/")
        self.ca_file = ca_file
        self.verify = verify
        self.cert_file = cert_file
        self.key_file = key_file
        self._token = token
        self._token_file = token_file
        self._token_read_at = float("-inf")
        self._lock = threading.Lock()

    def token(self) -> str | None:
        if self._token_file:
            with self._lock:
                now = time.monotonic()
                if now - self._token_read_at >= self.TOKEN_REREAD:
                    with open(self._token_file, encoding="utf-8") as fh:
                        self._token = fh.read().strip()
                    self._token_read_at = now
        return self._token

    def authorization(self) -> str | None:
        """The Authorization header value (``Bearer <token>``), or None without a token."""
        token = self.token()
        return f"Bearer {token}" if token else None


class ApiKube:
    """``Kube`` over plain HTTPS (urllib3): JSON in, JSON out, paths built by ``Kind``. No ``kubernetes``
    client: its import alone cost the syncer about 20 MiB of its ~40."""

    def __init__(self, connection: Connection, name: str = "api", request_timeout: float = 30.0) -> None:
        import urllib3

        self.connection = connection  # for RawConnector
        self.name = name
        self._timeout = request_timeout
        self._urllib3 = urllib3
        tls: dict[str, Any] = {}
        if connection.host.startswith("https://"):
            tls = {"cert_reqs": "CERT_REQUIRED" if connection.verify else "CERT_NONE",
                   "ca_certs": connection.ca_file, "cert_file": connection.cert_file,
                   "key_file": connection.key_file}
        # connect errors are retried at once (as the kubernetes client's urllib3 defaults did); everything
        # else is the caller's to retry (errors.classify)
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=8, block=False,
                                         retries=urllib3.Retry(total=3, read=0, redirect=0, status=0), **tls)

    # -- plumbing

    def _request(self, method: str, path: str, body: Any = None, query: list[tuple[str, Any]] | None = None,
                 content_type: str | None = None, stream: bool = False, timeout: Any = None) -> Any:
        from urllib.parse import urlencode

        urllib3 = self._urllib3
        url = self.connection.host + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        auth = self.connection.authorization()
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = content_type or "application/json"
        timeout = timeout or self._timeout
        if isinstance(timeout, tuple):
            timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        try:
            resp = self._pool.request(method.upper(), url, body=data, headers=headers, timeout=timeout,
                                      preload_content=not stream)
        except Exception as exc:  # connection refused, TLS, timeouts: not reached
            raise ApiError(0, type(exc).__name__, str(exc)) from exc
        if resp.status >= 400:
            if stream:
                resp.read()
                resp.release_conn()
            raise self._convert(resp.status, resp.reason, resp.data)
        if stream:
            return resp
        return json.loads(resp.data) if resp.data else {}

    def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A request the API server answers with a JSON object (every one but the streams)."""
        data: dict[str, Any] = self._request(method, path, **kwargs)
        return data

    @staticmethod
    def _convert(status: int, reason: Any, body: Any) -> ApiError:
        reason, message = str(reason or ""), ""
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if body:
            try:
                data = json.loads(body)
                reason = data.get("reason", reason) or reason
                message = data.get("message", "")
            except (ValueError, AttributeError):
                message = str(body)
        return error_for(status, reason, message)

    # -- Kube

    def list(self, kind: Kind, namespace: str | None = None,
             label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        query: list[tuple[str, Any]] = [("limit", 500)]
        if label_selector:
            query.append(("labelSelector", label_selector))
        resource_version = ""
        while True:
            data = self._object("get", kind.path(namespace), query=query, timeout=120)
            for item in data.get("items") or []:
                item.setdefault("apiVersion", kind.api_version)
                item.setdefault("kind", kind.kind)
                items.append(item)
            meta = data.get("metadata") or {}
            resource_version = meta.get("resourceVersion", resource_version)
            token = meta.get("continue")
            if not token:
                return items, resource_version
            query = [q for q in query if q[0] != "continue"] + [("continue", token)]

    def watch(self, kind: Kind, resource_version: str, namespace: str | None = None,
              label_selector: str | None = None, timeout_seconds: int = 300) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (type, object) from ``resource_version`` on; BOOKMARK objects carry only the new version.
        Ends when the server closes the watch; raises Gone when the version is too old."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", timeout_seconds),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        resp = self._request("get", kind.path(namespace), query=query, stream=True,
                             timeout=(10, timeout_seconds + 30))
        lines = _lines(resp)
        try:
            while True:
                try:
                    line = next(lines)
                except StopIteration:
                    return
                except (self._urllib3.exceptions.HTTPError, OSError) as exc:
                    # the stream broke (the API server died, a proxy dropped it): "not reached", like a
                    # refused connection; the informer lists and watches again once the server is back
                    raise ApiError(0, type(exc).__name__, f"watch stream broken: {exc}") from exc
                event = json.loads(line)
                kind_of_event, obj = event.get("type"), event.get("object") or {}
                if kind_of_event == "ERROR":
                    raise error_for(int(obj.get("code") or 0), obj.get("reason", ""), obj.get("message", ""))
                yield kind_of_event, obj
        finally:
            try:
                resp.close()
                resp.release_conn()
            except Exception:  # noqa: BLE001 - closing a broken stream
                pass

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self._object("get", kind.path(namespace, name))
        except NotFound:
            return None

    def ready(self, check: str = "") -> bool:
        """Does ``GET /readyz[/<check>]`` answer 200 (open to everyone; the body is plain text)?"""
        try:
            resp = self._request("get", "/readyz" + (f"/{check}" if check else ""), stream=True)
        except ApiError:
            return False
        resp.read()
        resp.release_conn()
        return True

    def create(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        return self._object("post", kind.path(_namespace_of(kind, obj)), body=obj)

    def patch(self, kind: Kind, name: str, patch: dict[str, Any], namespace: str | None = None,
              subresource: str | None = None) -> dict[str, Any]:
        return self._object("patch", kind.path(namespace, name, subresource), body=patch,
                             content_type="application/merge-patch+json")

    def delete(self, kind: Kind, name: str, namespace: str | None = None, grace_period_seconds: int | None = None,
               uid: str | None = None) -> bool:
        """Delete; False if it was not there. ``uid``: only that incarnation of the object."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._request("delete", kind.path(namespace, name), body=body)
            return True
        except NotFound:
            return False

    def post_subresource(self, kind: Kind, name: str, namespace: str | None, subresource: str,
                         body: dict[str, Any]) -> dict[str, Any]:
        return self._object("post", kind.path(namespace, name, subresource), body=body)


def _lines(resp: Any) -> Iterator[str]:
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False) if hasattr(resp, "stream") else iter([resp.data]):
        buffer += chunk if isinstance(chunk, bytes) else chunk.encode("utf-8")
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8", "replace")
    if buffer.strip():
        yield buffer.decode("utf-8", "replace")


# ---------------------------------------------------------------- raw connections

class RawConnector:
    """Raw HTTP/1.1 connections to an API server, for what the ``kubernetes`` client cannot relay byte
    for byte: upgraded streams (pods/exec, pods/attach, pods/portforward over SPDY or WebSocket) and
    streamed pods/log. Same address, TLS settings and credentials as the ``ApiKube`` it is made from;
    the bearer token is read again for every connection (in-cluster tokens rotate)."""

    def __init__(self, connection: Connection) -> None:
        from urllib.parse import urlsplit

        self._conn = connection
        url = urlsplit(connection.host)
        self.tls = url.scheme == "https"
        self.host = url.hostname or "localhost"
        self.port = url.port or (443 if self.tls else 80)
        self._ssl: Any = None

    def ssl_context(self) -> Any:
        import ssl

        if not self.tls:
            return None
        if self._ssl is None:
            conn = self._conn
            ctx = ssl.create_default_context(cafile=conn.ca_file or None)
            if not conn.verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if conn.cert_file:
                ctx.load_cert_chain(conn.cert_file, conn.key_file or None)
            ctx.set_alpn_protocols(["http/1.1"])  # upgrades need HTTP/1.1, not h2
            self._ssl = ctx
        return self._ssl

    def authorization(self) -> str | None:
        """The Authorization header the API client sends (a rotated token is read again)."""
        return self._conn.authorization()

    async def open(self, method: str, target: str, headers: list[tuple[str, str]]) -> tuple[Any, Any]:
        """Connect, send the request head ``method target`` with ``headers`` (plus Host and the
        credentials) and return asyncio (reader, writer); the response is the caller's to read."""
        import asyncio

        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.ssl_context(), server_hostname=self.host if self.tls else None)
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6 literal
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in ("host", "authorization")]
        auth = self.authorization()
        if auth:
            lines.append(f"Authorization: {auth}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        return reader, writer


# ---------------------------------------------------------------- connections

def virtual_client(server: str, token_file: str, ca_file: str) -> ApiKube:
    """The virtual API server, with the admin token the chart mounts."""
    with open(token_file, encoding="utf-8") as fh:
        token = fh.read().strip()
    return ApiKube(Connection(server, ca_file=ca_file, token=token), name="virtual")


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_cluster_connection(env: Any = None, directory: str = SERVICE_ACCOUNT_DIR) -> Connection | None:
    """The pod's own ServiceAccount, as ``kubernetes.config.load_incluster_config`` finds it; None outside a
    cluster."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    token_file = os.path.join(directory, "token")
    if not host or not port or not os.path.isfile(token_file):
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return Connection(f"https://{host}:{port}", ca_file=os.path.join(directory, "ca.crt"), token_file=token_file)


def kubeconfig_connection() -> Connection:
    """KUBECONFIG (outside a cluster, e.g. running the syncer by hand): read with the ``kubernetes`` package,
    imported only here."""
    from kubernetes import client, config

    conf = client.Configuration()
    load: Callable[..., None] = config.load_kube_config  # (the package's loader has no annotations)
    load(client_configuration=conf)
    auth = (conf.api_key or {}).get("authorization") or (conf.api_key or {}).get("BearerToken") or ""
    token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else None
    return Connection(conf.host, ca_file=conf.ssl_ca_cert, verify=conf.verify_ssl, token=token,
                      cert_file=conf.cert_file, key_file=conf.key_file)


def host_client() -> ApiKube:
    """The host API server, as the pod's own ServiceAccount (in-cluster), or KUBECONFIG outside a cluster."""
    return ApiKube(in_cluster_connection() or kubeconfig_connection(), name="host")
