"""The fake kubelet (vcluster_syncer/kubelet.py): kubelet request -> host API request translation, the
headers passed on, the fake nodes' kubelet endpoint, and the relay itself against an in-process fake host
API server (plain HTTP; the TLS of the real thing is covered by tests/e2e/test_pod_streams.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import pytest
from vcluster_syncer import kube, kubelet
from vcluster_syncer.config import ConfigError, load_config
from vcluster_syncer.kubelet import NotServed, forwarded_headers, is_upgrade, parse_head, translate
from vcluster_syncer.translate.names import host_name
from vcluster_syncer.translate.nodes import fake_node
from vcluster_syncer.translate.settings import TranslatorSettings

SETTINGS = TranslatorSettings(vcluster_name="vc", host_namespace="hostns")
P = "/api/v1/namespaces/hostns/pods"
LONG = "a" * 60


@pytest.mark.parametrize(("target", "subresource", "path", "query"), [
    # logs: container from the path, the pods/log options passed on, anything else dropped
    ("/containerLogs/default/web/httpd", "log", f"{P}/web-x-default-x-vc/log", [("container", "httpd")]),
    ("/containerLogs/default/web/httpd?follow=true&tailLines=10&timestamps=true&sinceSeconds=5&previous=false"
     "&limitBytes=100&bogus=1",
     "log", f"{P}/web-x-default-x-vc/log",
     [("container", "httpd"), ("follow", "true"), ("tailLines", "10"), ("timestamps", "true"), ("sinceSeconds", "5"),
      ("previous", "false"), ("limitBytes", "100")]),
    ("/containerLogs/ns1/p/c?sinceTime=2024-01-01T00%3A00%3A00Z&stream=Stderr", "log", f"{P}/p-x-ns1-x-vc/log",
     [("container", "c"), ("sinceTime", "2024-01-01T00:00:00Z"), ("stream", "Stderr")]),
    # exec: the kubelet's input/output/error/tty become the API's stdin/stdout/stderr/tty; commands keep order
    ("/exec/default/web/httpd?command=echo&command=ok&output=1&error=1", "exec", f"{P}/web-x-default-x-vc/exec",
     [("container", "httpd"), ("stdout", "true"), ("stderr", "true"), ("command", "echo"), ("command", "ok")]),
    ("/exec/default/web/httpd?command=sh&input=1&output=1&tty=1", "exec", f"{P}/web-x-default-x-vc/exec",
     [("container", "httpd"), ("stdin", "true"), ("stdout", "true"), ("tty", "true"), ("command", "sh")]),
    ("/exec/default/web/httpd?command=a%20b&command=%26x%3D1&stdin=true&stdout=true&input=0",
     "exec", f"{P}/web-x-default-x-vc/exec",
     [("container", "httpd"), ("stdin", "true"), ("stdout", "true"), ("command", "a b"), ("command", "&x=1")]),
    # the kubelet's uid form /exec/{ns}/{pod}/{uid}/{container}
    ("/exec/default/web/1234-uid/httpd?command=true&output=1", "exec", f"{P}/web-x-default-x-vc/exec",
     [("container", "httpd"), ("stdout", "true"), ("command", "true")]),
    # attach: no command
    ("/attach/default/web/httpd?input=1&output=1&error=1&tty=1&command=ignored", "attach",
     f"{P}/web-x-default-x-vc/attach",
     [("container", "httpd"), ("stdin", "true"), ("stdout", "true"), ("stderr", "true"), ("tty", "true")]),
    # port-forward: the kubelet's comma-separated port becomes repeated ports; no ports (SPDY: in stream headers)
    ("/portForward/default/web?port=8080,9090", "portforward", f"{P}/web-x-default-x-vc/portforward",
     [("ports", "8080"), ("ports", "9090")]),
    ("/portForward/default/web", "portforward", f"{P}/web-x-default-x-vc/portforward", []),
    ("/portForward/default/web/some-uid?ports=80", "portforward", f"{P}/web-x-default-x-vc/portforward",
     [("ports", "80")]),
    # long names are hashed like every host name
    (f"/containerLogs/default/{LONG}/c", "log", f"{P}/{host_name(LONG, 'default', 'vc')}/log", [("container", "c")]),
])
def test_translate(target: str, subresource: str, path: str, query: list[tuple[str, str]]) -> None:
    route = translate(target, SETTINGS)
    assert route.subresource == subresource
    assert route.path == path
    assert list(route.query) == query
    assert route.upgrade == (subresource != "log")
    assert route.host_pod == path.split("/")[6]


def test_translate_target_is_encoded() -> None:
    route = translate("/exec/default/web/httpd?command=echo&command=a%20b%26c&output=1", SETTINGS)
    assert route.target == f"{P}/web-x-default-x-vc/exec?container=httpd&stdout=true&command=echo&command=a+b%26c"
    assert translate("/portForward/default/web", SETTINGS).target == f"{P}/web-x-default-x-vc/portforward"


def test_translate_uses_the_host_namespace_and_release() -> None:
    settings = TranslatorSettings(vcluster_name="other", host_namespace="n2")
    assert translate("/containerLogs/kube-system/coredns-1/coredns", settings).path == \
        "/api/v1/namespaces/n2/pods/coredns-1-x-kube-system-x-other/log"


@pytest.mark.parametrize(("target", "status"), [
    ("/", 404),
    ("/nothing/here", 404),
    ("/containerLogs/default/web", 404),  # no container
    ("/containerLogs/default/web/c/extra", 404),
    ("/exec/default/web", 404),
    ("/exec//web/c", 404),
    ("/portForward/default", 404),
    ("/stats/summary", 501),
    ("/metrics", 501),
    ("/metrics/resource", 501),
    ("/pods", 501),
    ("/runningpods/", 501),
    ("/run/default/web/c", 501),
    ("/spec/", 501),
    ("/configz", 501),
])
def test_translate_not_served(target: str, status: int) -> None:
    with pytest.raises(NotServed) as exc:
        translate(target, SETTINGS)
    assert exc.value.status == status


SPDY_HEAD = (b"POST /exec/default/web/httpd?command=ls&output=1 HTTP/1.1\r\nHost: 127.0.0.1:10250\r\n"
             b"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v5.channel.k8s.io\r\n"
             b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\nAuthorization: Bearer secret\r\n"
             b"X-Forwarded-For: 10.0.0.1\r\nUser-Agent: kubectl\r\nAccept-Encoding: gzip\r\n\r\n")
WS_HEAD = (b"GET /exec/default/web/httpd?command=ls&output=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
           b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Protocol: v4.channel.k8s.io\r\nSec-WebSocket-Protocol: channel.k8s.io\r\n"
           b"Origin: http://evil\r\n\r\n")
LOG_HEAD = (b"GET /containerLogs/default/web/httpd?follow=true HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
            b"Connection: keep-alive\r\nUser-Agent: Go-http-client/1.1\r\n\r\n")


def test_parse_head_keeps_repeated_headers() -> None:
    method, target, headers = parse_head(SPDY_HEAD)
    assert (method, target) == ("POST", "/exec/default/web/httpd?command=ls&output=1")
    assert [v for k, v in headers if k == "X-Stream-Protocol-Version"] == ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    with pytest.raises(NotServed):
        parse_head(b"garbage\r\n\r\n")


@pytest.mark.parametrize(("head", "expected"), [
    (SPDY_HEAD, [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
                 ("X-Stream-Protocol-Version", "v4.channel.k8s.io"), ("User-Agent", "kubectl")]),
    (WS_HEAD, [("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket"),
               ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
               ("Sec-WebSocket-Protocol", "v4.channel.k8s.io"), ("Sec-WebSocket-Protocol", "channel.k8s.io")]),
    # not an upgrade: one request per connection, no compression negotiated behind the API server's back
    (LOG_HEAD, [("User-Agent", "Go-http-client/1.1"), ("Connection", "close")]),
])
def test_forwarded_headers(head: bytes, expected: list[tuple[str, str]]) -> None:
    _, _, headers = parse_head(head)
    assert forwarded_headers(headers) == expected


def test_is_upgrade() -> None:
    assert is_upgrade([("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")])
    assert is_upgrade([("connection", "keep-alive, upgrade"), ("upgrade", "websocket")])
    assert not is_upgrade([("Connection", "Upgrade")])
    assert not is_upgrade([("Connection", "keep-alive"), ("Upgrade", "websocket")])


def test_fake_node_points_at_the_kubelet_server() -> None:
    node = fake_node("host-node", None, "2024-01-01T00:00:00Z", SETTINGS)
    assert node["status"]["addresses"] == [{"type": "Hostname", "address": "127.0.0.1"}]
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    other = TranslatorSettings(vcluster_name="vc", host_namespace="n", kubelet_address="10.1.2.3", kubelet_port=11250)
    node = fake_node("host-node", None, "2024-01-01T00:00:00Z", other)
    assert node["status"]["addresses"] == [{"type": "Hostname", "address": "10.1.2.3"}]
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 11250}}


def test_config_kubelet(tmp_path: Any) -> None:
    env = {"VCLUSTER_NAME": "vc", "HOST_NAMESPACE": "n", "VIRTUAL_SERVER": "https://127.0.0.1:6443",
           "VIRTUAL_TOKEN_FILE": "t", "VIRTUAL_CA_FILE": "c"}
    config = load_config(env, check_files=False)
    assert (config.kubelet_address, config.kubelet_port) == ("127.0.0.1", 10250)
    assert config.settings("").kubelet_port == 10250
    config = load_config({**env, "KUBELET_PORT": "0", "KUBELET_ADDRESS": "0.0.0.0"}, check_files=False)
    assert (config.kubelet_address, config.kubelet_port) == ("0.0.0.0", 0)
    for bad in ("x", "70000", "-1"):
        with pytest.raises(ConfigError, match="KUBELET_PORT"):
            load_config({**env, "KUBELET_PORT": bad}, check_files=False)


def test_raw_connector_authorization(tmp_path: Any) -> None:
    token = tmp_path / "token"
    token.write_text("abc\n")
    conn = kube.Connection("https://10.96.0.1:443", token_file=str(token))
    connector = kube.RawConnector(conn)
    assert (connector.host, connector.port, connector.tls) == ("10.96.0.1", 443, True)
    assert connector.authorization() == "Bearer abc"
    token.write_text("xyz")  # rotated: read again once TOKEN_REREAD has passed
    conn.TOKEN_REREAD = 0
    assert connector.authorization() == "Bearer xyz"
    assert kube.RawConnector(kube.Connection("http://127.0.0.1:1")).authorization() is None


# ------------------------------------------------------------ the relay, end to end in one process

class FakeHost:
    """A plain-HTTP 'host API server': records request heads; answers exec with 101 and then echoes bytes
    upper-cased, log with a streamed body, anything else 403."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.ready = threading.Event()
        self.port = 0
        threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True).start()
        assert self.ready.wait(10)

    async def _main(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        async with server:
            await asyncio.Event().wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        target = head.split(b" ")[1]
        if b"/exec?" in target:
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                         b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
            while data := await reader.read(1024):
                writer.write(data.upper())
                await writer.drain()
        elif b"/log?" in target:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
            for i in range(3):
                writer.write(b"line %d\n" % i)
                await writer.drain()
                await asyncio.sleep(0.01)
        else:
            body = b'{"kind":"Status","code":403}'
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (len(body), body))
        await writer.drain()
        writer.close()


@pytest.fixture
def relay() -> Any:
    host = FakeHost()
    conf = kube.Connection(f"http://127.0.0.1:{host.port}", token="host-token")
    server = kubelet.KubeletServer(SETTINGS, kube.RawConnector(conf), port=0).start()
    yield host, server
    server.stop()


def _connect(server: kubelet.KubeletServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_relay_upgrade_pipes_both_ways(relay: Any) -> None:
    host, server = relay
    with _connect(server) as sock:
        sock.sendall(SPDY_HEAD)
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(1024)
        assert response.startswith(b"HTTP/1.1 101 ")
        assert b"X-Stream-Protocol-Version: v4.channel.k8s.io" in response
        rest = response.split(b"\r\n\r\n", 1)[1]
        sock.sendall(b"hello")
        while len(rest) < 5:
            rest += sock.recv(1024)
        assert rest == b"HELLO"
    head = host.heads[0].decode()
    assert head.startswith(f"POST {P}/web-x-default-x-vc/exec?container=httpd&stdout=true&command=ls HTTP/1.1\r\n")
    assert "Authorization: Bearer host-token\r\n" in head  # the syncer's credentials, not the caller's
    assert "secret" not in head and "X-Forwarded-For" not in head
    assert head.count("X-Stream-Protocol-Version") == 2


def test_relay_streams_logs(relay: Any) -> None:
    host, server = relay
    with _connect(server) as sock:
        sock.sendall(LOG_HEAD)
        data = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"line 0\nline 1\nline 2\n")
    assert host.heads[0].startswith(f"GET {P}/web-x-default-x-vc/log?container=httpd&follow=true HTTP/1.1".encode())
    assert b"Connection: close\r\n" in host.heads[0]


def test_relay_passes_host_errors_on(relay: Any) -> None:
    _, server = relay
    with _connect(server) as sock:
        sock.sendall(b"GET /portForward/default/web?port=80 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 403 Forbidden\r\n") and data.endswith(b'"code":403}')


@pytest.mark.parametrize(("head", "status"), [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"200"),
    (b"GET /stats/summary HTTP/1.1\r\nHost: x\r\n\r\n", b"501"),
    (b"GET /metrics/cadvisor HTTP/1.1\r\nHost: x\r\n\r\n", b"501"),
    (b"GET /unknown HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
    (b"DELETE /exec/default/web/c HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
    (b"not http\r\n\r\n", b"400"),
])
def test_relay_answers_itself(relay: Any, head: bytes, status: bytes) -> None:
    host, server = relay
    with _connect(server) as sock:
        sock.sendall(head)
        data = _read_all(sock)
    assert data.split(b" ")[1] == status
    assert host.heads == []


def test_relay_host_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there afterwards
    conf = kube.Connection(f"http://127.0.0.1:{port}")
    server = kubelet.KubeletServer(SETTINGS, kube.RawConnector(conf), port=0).start()
    try:
        with _connect(server) as sock:
            sock.sendall(LOG_HEAD)
            data = _read_all(sock)
        assert data.startswith(b"HTTP/1.1 502 ")
    finally:
        server.stop()


# -- chunked logs: the terminator in a TLS record of its own (pods/log over websockets)

class ChunkedLogHost(FakeHost):
    """Answers pods/log like the host API server: chunked, last data chunk and terminator in one write."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        writer.write(b"9\r\nline-one\n\r\n9\r\nline-two\n\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()


def test_is_chunked() -> None:
    assert kubelet.is_chunked(b"HTTP/1.1 200 OK\r\ntransfer-encoding:  Chunked\r\n\r\n")
    assert not kubelet.is_chunked(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")
    assert not kubelet.is_chunked(b"HTTP/1.1 200 OK\r\nX-Note: Transfer-Encoding: chunked\r\n\r\n")


def test_relay_chunked_log_ends_in_a_record_of_its_own() -> None:
    """Each TLS record read alone (as Go's tls.Conn does): no record holds log data and the end of the body,
    so the API server's reader gets the data without io.EOF (its WebSocket copy drops data read with EOF)."""
    import ssl

    host = ChunkedLogHost()
    conf = kube.Connection(f"http://127.0.0.1:{host.port}", token="host-token")
    server = kubelet.KubeletServer(SETTINGS, kube.RawConnector(conf), port=0,
                                   ssl_context=kubelet.server_ssl_context()).start()
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(_connect(server)) as sock:
            sock.sendall(LOG_HEAD)
            records = []
            while record := sock.recv(65536):  # SSL_read: at most one record
                records.append(record)
    finally:
        server.stop()
    data = b"".join(records)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert kubelet.is_chunked(head + b"\r\n\r\n")
    assert body == b"9\r\nline-one\n\r\n9\r\nline-two\n\r\n0\r\n\r\n"  # same chunks, same log
    assert records[-1] == b"0\r\n\r\n"
    assert all(b"0\r\n\r\n" not in r for r in records[:-1]), records


def test_relay_chunked_log_cut_short_has_no_terminator() -> None:
    """A host that goes away mid-body: the relay ends without the last chunk (the caller sees it cut)."""
    class CutHost(FakeHost):
        async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nline-one\n\r\n5\r\nli")
            await writer.drain()
            writer.close()

    host = CutHost()
    conf = kube.Connection(f"http://127.0.0.1:{host.port}", token="host-token")
    server = kubelet.KubeletServer(SETTINGS, kube.RawConnector(conf), port=0).start()
    try:
        with _connect(server) as sock:
            sock.sendall(LOG_HEAD)
            data = _read_all(sock)
    finally:
        server.stop()
    assert data.split(b"\r\n\r\n", 1)[1] == b"9\r\nline-one\n\r\n"
