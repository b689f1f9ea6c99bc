"""kube.ApiKube over real HTTP (a local fake API server): paths, JSON, errors, watch streams, tokens."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from vcluster_syncer import kube
from vcluster_syncer.kube import CONFIGMAPS, NAMESPACES, PODS, ApiError, Gone, NotFound


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: Any, chunks: list[bytes] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        if chunks is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        data = json.dumps(body).encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append({"method": self.command, "path": self.path, "body": body,
                          "auth": self.headers.get("Authorization"), "type": self.headers.get("Content-Type")})
        path = self.path
        if path.startswith("/api/v1/namespaces/a/pods/missing"):
            self._reply(404, {"kind": "Status", "reason": "NotFound", "message": 'pods "missing" not found'})
        elif "watch=true" in path and "resourceVersion=broken" in path:
            # the API server dies mid-stream: one event, then the connection closes without the last chunk
            line = json.dumps({"type": "ADDED", "object": {"metadata": {"name": "x"}}}).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n" + b"ff\r\n{\"type\"")
            self.wfile.flush()
            self.close_connection = True
        elif "watch=true" in path and "resourceVersion=1" in path:
            self._reply(410, {"kind": "Status", "reason": "Expired", "message": "too old"})
        elif "watch=true" in path:
            events = [{"type": "ADDED", "object": {"metadata": {"name": "x", "resourceVersion": "5"}}},
                      {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "6"}}}]
            lines = b"".join(json.dumps(e).encode() + b"\n" for e in events)
            self._reply(200, None, chunks=[lines[:17], lines[17:]])  # split inside a line
        elif path.startswith("/api/v1/namespaces?") and "continue" not in path:
            self._reply(200, {"items": [{"metadata": {"name": "a"}}], "metadata": {"resourceVersion": "9",
                                                                                   "continue": "tok"}})
        elif path.startswith("/api/v1/namespaces?"):
            self._reply(200, {"items": [{"metadata": {"name": "b"}}], "metadata": {"resourceVersion": "10"}})
        elif self.command == "DELETE" and path.endswith("/gone"):
            self._reply(404, {"kind": "Status", "reason": "NotFound"})
        else:
            self._reply(200, body or {"metadata": {"name": "ok"}})

    do_GET = do_POST = do_PATCH = do_DELETE = _handle


@pytest.fixture
def api(tmp_path: Any) -> Iterator[tuple[kube.ApiKube, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = tmp_path / "token"
    token.write_text("t1\n")
    conn = kube.Connection(f"http://127.0.0.1:{server.server_address[1]}", token_file=str(token))
    yield kube.ApiKube(conn, name="test"), Handler.seen
    server.shutdown()


def test_get_create_patch_delete(api: tuple[kube.ApiKube, list[dict[str, Any]]]) -> None:
    client, seen = api
    assert client.get(PODS, "missing", "a") is None
    assert client.get(PODS, "p", "a") == {"metadata": {"name": "ok"}}
    obj = {"metadata": {"name": "c", "namespace": "a"}, "data": {"k": "v"}}
    assert client.create(CONFIGMAPS, obj) == obj
    client.patch(CONFIGMAPS, "c", {"data": {"k": "w"}}, "a")
    client.patch(PODS, "p", {"status": {}}, "a", subresource="status")
    assert client.delete(PODS, "p", "a", grace_period_seconds=0, uid="u1") is True
    assert client.delete(PODS, "gone", "a") is False
    assert [(s["method"], s["path"]) for s in seen] == [
        ("GET", "/api/v1/namespaces/a/pods/missing"), ("GET", "/api/v1/namespaces/a/pods/p"),
        ("POST", "/api/v1/namespaces/a/configmaps"), ("PATCH", "/api/v1/namespaces/a/configmaps/c"),
        ("PATCH", "/api/v1/namespaces/a/pods/p/status"), ("DELETE", "/api/v1/namespaces/a/pods/p"),
        ("DELETE", "/api/v1/namespaces/a/pods/gone")]
    assert seen[3]["type"] == "application/merge-patch+json"
    assert seen[5]["body"] == {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                               "gracePeriodSeconds": 0, "preconditions": {"uid": "u1"}}
    assert {s["auth"] for s in seen} == {"Bearer t1"}


def test_errors_carry_reason_and_message(api: tuple[kube.ApiKube, list[dict[str, Any]]]) -> None:
    client, _ = api
    with pytest.raises(NotFound) as exc:
        client._request("get", "/api/v1/namespaces/a/pods/missing")
    assert (exc.value.status, exc.value.reason, exc.value.message) == (404, "NotFound", 'pods "missing" not found')
    unreachable = kube.ApiKube(kube.Connection("http://127.0.0.1:1"))
    with pytest.raises(ApiError) as exc2:
        unreachable.get(PODS, "p", "a")
    assert exc2.value.status == 0


def test_list_follows_continue(api: tuple[kube.ApiKube, list[dict[str, Any]]]) -> None:
    client, seen = api
    items, version = client.list(NAMESPACES, label_selector="a=b")
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert all(i["kind"] == "Namespace" and i["apiVersion"] == "v1" for i in items)
    assert version == "10"
    assert "labelSelector=a%3Db" in seen[0]["path"] and "continue=tok" in seen[1]["path"]


def test_watch_streams_lines(api: tuple[kube.ApiKube, list[dict[str, Any]]]) -> None:
    client, seen = api
    events = list(client.watch(PODS, "3", "a"))
    assert events == [("ADDED", {"metadata": {"name": "x", "resourceVersion": "5"}}),
                      ("BOOKMARK", {"metadata": {"resourceVersion": "6"}})]
    assert "allowWatchBookmarks=true" in seen[0]["path"]
    with pytest.raises(Gone):
        list(client.watch(PODS, "1", "a"))


def test_watch_broken_by_a_dying_server_is_an_api_error(api: tuple[kube.ApiKube, list[dict[str, Any]]]) -> None:
    """A watch cut mid-stream (the API server crashed) ends as ApiError status 0 ("not reached"), which the
    informer retries with a warning, not as an urllib3 exception logged with a traceback."""
    client, _ = api
    got = []
    with pytest.raises(ApiError) as exc:
        for event in client.watch(PODS, "broken", "a"):
            got.append(event)
    assert got == [("ADDED", {"metadata": {"name": "x"}})]
    assert exc.value.status == 0
    assert not isinstance(exc.value, Gone)


def test_in_cluster_connection(tmp_path: Any) -> None:
    (tmp_path / "token").write_text("abc")
    conn = kube.in_cluster_connection({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
                                      str(tmp_path))
    assert conn is not None
    assert (conn.host, conn.ca_file, conn.authorization()) == ("https://10.96.0.1:443", str(tmp_path / "ca.crt"),
                                                               "Bearer abc")
    v6 = kube.in_cluster_connection({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"},
                                    str(tmp_path))
    assert v6 is not None and v6.host == "https://[fd00::1]:443"
    assert kube.in_cluster_connection({}, str(tmp_path)) is None
    assert kube.in_cluster_connection({"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"},
                                      str(tmp_path / "none")) is None
