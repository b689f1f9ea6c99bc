"""The fake kubelet: ``kubectl logs/exec/attach/port-forward`` for pods bound to fake nodes.

The virtual API server serves pods/log, pods/exec, pods/attach and pods/portforward by calling the
kubelet of the pod's node at ``https://<node address>:<daemonEndpoints.kubeletEndpoint.Port>``, the address
of the type ``--kubelet-preferred-address-types`` names (the chart: Hostname). Virtual nodes
(translate/nodes.py) advertise the contract's Hostname address and port (``KUBELET_ADDRESS``,
``KUBELET_PORT``): this server, in the syncer container of the same pod (their InternalIPs are the host
nodes' real ones). Each kubelet call is translated to the host pod's API subresource and relayed byte for byte:

    GET  /containerLogs/{ns}/{pod}/{container}?follow=..  -> GET  {P}/log?container=..&follow=..
    *    /exec/{ns}/{pod}/{container}?command=..&input=1   -> *    {P}/exec?container=..&command=..&stdin=true
    *    /attach/{ns}/{pod}/{container}?output=1           -> *    {P}/attach?container=..&stdout=true
    *    /portForward/{ns}/{pod}?port=80,81                -> *    {P}/portforward?ports=80&ports=81

with {P} = /api/v1/namespaces/N/pods/<host pod name> (translate/names.py).

exec/attach/portforward are HTTP upgrades (SPDY, or WebSocket for clients the virtual API server
passes through untranslated, like the Python client). The upgrade headers are passed on to the host API
server unchanged, its answer (101 and the negotiated protocol, or an error) is relayed unchanged, and
then bytes flow both ways until one side closes: the syncer never needs to understand the stream
protocols. The host side uses the syncer's own ServiceAccount (its Role allows pods/log, pods/exec,
pods/attach, pods/portforward in N); kube.RawConnector makes those connections.

Who may call: the server listens on 127.0.0.1 only, so only the containers of the virtual cluster's own
pod (etcd, kube-apiserver, kube-controller-manager, syncer) reach it; synced workload pods are other pods
and cannot. That is why no client certificate is required (the API server is not given a kubelet client
certificate). TLS is still needed because the API server always speaks HTTPS to kubelets; it does not
verify the kubelet's certificate (no ``--kubelet-certificate-authority``), so a self-signed one made at
start is enough.

/healthz answers 200; other kubelet endpoints (metrics, stats, /pods, /run, ...) answer 501 and unknown
paths 404, at once, so nothing that probes them hangs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from . import contract
from .translate.names import host_name_for
from .translate.settings import TranslatorSettings

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = contract.KUBELET_ADDRESS
DEFAULT_PORT = contract.KUBELET_PORT

# pods/log options; the kubelet's /containerLogs takes the same names as the API's pods/log
LOG_PARAMS = ("follow", "previous", "timestamps", "sinceSeconds", "sinceTime", "tailLines", "limitBytes", "stream")
# the API server calls the kubelet with input/output/error/tty (api.ExecStdinParam...); the API's names
# are stdin/stdout/stderr/tty. Both are accepted here.
STREAM_PARAMS = (("stdin", ("input", "stdin")), ("stdout", ("output", "stdout")), ("stderr", ("error", "stderr")),
                 ("tty", ("tty",)))
# kubelet endpoints that exist on a real kubelet but are not served by the fake one
NOT_IMPLEMENTED = ("pods", "runningpods", "run", "stats", "metrics", "spec", "configz", "debug", "logs",
                   "checkpoint", "cri")
# request headers passed on to the host API server (everything an upgrade negotiates, nothing else)
FORWARDED_HEADERS = frozenset(h.lower() for h in (
    "Upgrade", "Connection", "X-Stream-Protocol-Version", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol", "Content-Type", "Content-Length", "Accept", "User-Agent",
))


class NotServed(Exception):
    """A kubelet request this server answers itself with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Route:
    """One kubelet call, translated to the host pod's API subresource."""

    subresource: str  # log | exec | attach | portforward
    namespace: str  # virtual namespace
    pod: str  # virtual pod name
    container: str | None
    host_pod: str
    path: str  # host API path
    query: tuple[tuple[str, str], ...]

    @property
    def target(self) -> str:
        return self.path + ("?" + urlencode(self.query) if self.query else "")

    @property
    def upgrade(self) -> bool:
        return self.subresource != "log"



def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "t")


def translate(target: str, settings: TranslatorSettings) -> Route:
    """Translate a kubelet request target (path and query) into the host API request; raises NotServed."""
    path, _, raw_query = target.partition("?")
    params = parse_qsl(raw_query, keep_blank_values=True)
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if not parts:
        raise NotServed(404, "not found")
    endpoint, args = parts[0], parts[1:]
    sizes: tuple[int, ...]  # how many path segments the endpoint takes
    if endpoint == "containerLogs":
        subresource, sizes = "log", (3,)
    elif endpoint in ("exec", "attach"):
        subresource, sizes = endpoint, (3, 4)  # /{ns}/{pod}/{container} or /{ns}/{pod}/{uid}/{container}
    elif endpoint == "portForward":
        subresource, sizes = "portforward", (2, 3)  # /{ns}/{pod} or /{ns}/{pod}/{uid}
    elif endpoint in NOT_IMPLEMENTED:
        raise NotServed(501, f"/{endpoint} is not served by the vcluster syncer's kubelet")
    else:
        raise NotServed(404, "not found")
    if len(args) not in sizes or not all(args):
        raise NotServed(404, f"malformed /{endpoint} path")
    namespace, pod = args[0], args[1]
    container = args[-1] if subresource != "portforward" else None

    query: list[tuple[str, str]] = []
    if container is not None:
        query.append(("container", container))
    if subresource == "log":
        query += [(k, v) for k, v in params if k in LOG_PARAMS]
    elif subresource in ("exec", "attach"):
        for name, aliases in STREAM_PARAMS:
            if any(k in aliases and _truthy(v) for k, v in params):
                query.append((name, "true"))
        if subresource == "exec":
            query += [("command", v) for k, v in params if k == "command"]
    else:
        for key, value in params:
            if key in ("port", "ports"):
                query += [("ports", p.strip()) for p in value.split(",") if p.strip()]

    host_pod = host_name_for("Pod", pod, namespace, settings)
    host_path = (f"/api/v1/namespaces/{quote(settings.host_namespace, safe='')}/pods/"
                 f"{quote(host_pod, safe='')}/{subresource}")
    return Route(subresource, namespace, pod, container, host_pod, host_path, tuple(query))


def parse_head(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    """Method, target and headers (in order, duplicates kept) of an HTTP/1.1 request head."""
    lines = head.decode("latin-1").split("\r\n")
    request_line = lines[0].split(" ")
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
        raise NotServed(400, "bad request line")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise NotServed(400, "bad header line")
        headers.append((name.strip(), value.strip()))
    return request_line[0], request_line[1], headers


def is_upgrade(headers: list[tuple[str, str]]) -> bool:
    connection = ",".join(v for k, v in headers if k.lower() == "connection").lower()
    return "upgrade" in [t.strip() for t in connection.split(",")] and any(k.lower() == "upgrade" for k, _ in headers)


def forwarded_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request headers for the host API server: the upgrade negotiation as sent, else ``Connection: close``
    (one request per connection: the relayed response ends when the host closes)."""
    upgrade = is_upgrade(headers)
    out = [(k, v) for k, v in headers if k.lower() in FORWARDED_HEADERS
           and (upgrade or k.lower() not in ("connection", "upgrade"))]
    if not upgrade:
        out.append(("Connection", "close"))
    return out


def status_line(code: int) -> str:
    from http import HTTPStatus

    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def simple_response(code: int, body: str) -> bytes:
    data = (body if body.endswith("\n") else body + "\n").encode("utf-8")
    return (f"HTTP/1.1 {status_line(code)}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode("latin-1") + data


def is_chunked(response_head: bytes) -> bool:
    """Whether a response head says ``Transfer-Encoding: chunked``."""
    for line in response_head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
            return True
    return False


# ---------------------------------------------------------------- certificate

def self_signed_certificate(directory: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> tuple[str, str]:
    """Write a self-signed serving certificate and key (PEM) into ``directory``; returns their paths."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vcluster-syncer-kubelet")])
    alt: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "kubelet.crt"), os.path.join(directory, "kubelet.key")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return cert_path, key_path


def server_ssl_context(cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    """TLS for the kubelet port: the given certificate, else a fresh self-signed one."""
    if not cert_file:
        cert_file, key_file = self_signed_certificate(tempfile.mkdtemp(prefix="kubelet-"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# ---------------------------------------------------------------- server

class KubeletServer:
    """Serves the kubelet API subset the virtual API server uses, in its own thread and event loop.

    ``connector`` opens raw connections to the host API server (``kube.RawConnector``); ``ssl_context``
    None serves plain HTTP (tests only)."""

    def __init__(self, settings: TranslatorSettings, connector: Any, *, address: str = DEFAULT_ADDRESS,
                 port: int = DEFAULT_PORT, ssl_context: ssl.SSLContext | None = None,
                 head_timeout: float = 30.0) -> None:
        self.settings = settings
        self.connector = connector
        self.address = address
        self.port = port
        self.ssl_context = ssl_context
        self.head_timeout = head_timeout
        self.started = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle

    def start(self) -> KubeletServer:
        self._thread = threading.Thread(target=self._run, name="kubelet", daemon=True)
        self._thread.start()
        self.started.wait(30)
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self.error = exc
            self.started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.address, self.port, ssl=self.ssl_context)
        self.port = server.sockets[0].getsockname()[1]
        log.info("kubelet API for fake nodes on %s://%s:%d", "https" if self.ssl_context else "http",
                 self.address, self.port)
        self.started.set()
        async with server:
            await self._stop.wait()

    # -- one connection

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host_writer: asyncio.StreamWriter | None = None
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.head_timeout)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError,
                    ConnectionError, ssl.SSLError):
                return
            try:
                method, target, headers = parse_head(head)
                if target.split("?", 1)[0] in ("/healthz", "/healthz/ping", "/livez", "/readyz"):
                    writer.write(simple_response(200, "ok"))
                    return
                route = translate(target, self.settings)
                if method not in ("GET", "POST") or (route.subresource == "log" and method == "POST"):
                    raise NotServed(405, f"method {method} not allowed")
            except NotServed as exc:
                writer.write(simple_response(exc.status, exc.message))
                return
            try:
                host_reader, host_writer = await asyncio.wait_for(
                    self.connector.open(method, route.target, forwarded_headers(headers)), self.head_timeout)
                # exec/attach answer once the host's kubelet has the container's streams: allow a while
                response_head = await asyncio.wait_for(host_reader.readuntil(b"\r\n\r\n"), 4 * self.head_timeout)
            except Exception as exc:  # noqa: BLE001 - host unreachable, TLS, closed early, timeout
                reason = str(exc) or type(exc).__name__
                log.warning("%s %s/%s: host API server: %s", route.subresource, route.namespace, route.pod, reason)
                writer.write(simple_response(502, f"host API server: {reason}"))
                return
            code = response_head.split(b" ", 2)[1].decode("latin-1") if b" " in response_head else "?"
            log.info("%s %s/%s%s -> host pod %s: %s", route.subresource, route.namespace, route.pod,
                     f" ({route.container})" if route.container else "", route.host_pod, code)
            writer.write(response_head)
            await writer.drain()
            if route.subresource == "log" and is_chunked(response_head):
                await _relay_chunked(host_reader, writer)
            else:
                await _pipe(reader, writer, host_reader, host_writer)
        except Exception:  # noqa: BLE001 - one connection's failure must not stop the server
            log.exception("kubelet request failed")
        finally:
            for w in (writer, host_writer):
                if w is not None:
                    await _close(w)


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while True:
        data = await src.read(65536)
        if not data:
            return
        dst.write(data)
        await dst.drain()


async def _relay_chunked(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """A chunked log body, chunk by chunk, with the last (empty) chunk sent on its own.

    Why: the API server copies a pod log to a WebSocket client (``pods/log`` with ``Upgrade: websocket``,
    conformance's "should support retrieving logs from the container over websockets") with wsstream's
    messageCopy, which drops the bytes of a Read that also returns io.EOF. Go's chunked reader returns
    (n, io.EOF) when the end of the body is already buffered with the last data, as it was when the host's
    last chunk and terminator were relayed in one write (one TLS record): the WebSocket then carried
    nothing. Written apart, the terminator comes in a record of its own, and that Read returns the data with
    no error (a real kubelet speaks HTTP/2, where the same holds). A body that ends early (the host went
    away) ends without the terminator, so the caller sees it cut short."""
    while True:
        try:
            size_line = await src.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await src.readuntil(b"\r\n")) != b"\r\n":  # trailers, dropped
                    pass
                break
            data = await src.readexactly(size)
            if await src.readexactly(2) != b"\r\n":
                return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            return
        dst.write(b"%x\r\n%s\r\n" % (size, data))
        await dst.drain()
    dst.write(b"0\r\n\r\n")
    await dst.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                host_reader: asyncio.StreamReader, host_writer: asyncio.StreamWriter) -> None:
    """Bytes both ways until either side is done (TLS has no half-close worth relying on)."""
    tasks = {asyncio.ensure_future(_copy(reader, host_writer)), asyncio.ensure_future(_copy(host_reader, writer))}
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    del pending


async def _close(writer: asyncio.StreamWriter) -> None:
    try:
        await writer.drain()
    except Exception:  # noqa: BLE001
        pass
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 5)
    except Exception:  # noqa: BLE001 - peer gone, TLS close_notify not answered
        pass


def serve(settings: TranslatorSettings, connector: Any, *, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT,
          cert_file: str | None = None, key_file: str | None = None) -> KubeletServer | None:
    """Start the kubelet server with TLS (a self-signed certificate unless one is given); None if it cannot
    start (logged: the rest of the syncer works without it, only logs/exec/port-forward do not)."""
    try:
        ctx = server_ssl_context(cert_file, key_file)
        return KubeletServer(settings, connector, address=address, port=port, ssl_context=ctx).start()
    except Exception as exc:  # noqa: BLE001 - no cryptography package, port in use
        log.error("kubelet API for fake nodes not started (no logs/exec/port-forward): %s", exc)
        return None
