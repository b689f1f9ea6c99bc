"""Shared by the plugin's unit tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest


class FakeClock:
    """A monotonic clock that moves only when ``sleep`` is called: waits without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clean_vcluster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``VCLUSTER_*``, ``KUBECONFIG`` or ``PYTEST_ADDOPTS`` of the caller leaks into pytester runs."""
    from pytest_vcluster.plugin.options import OPTIONS

    for var in ("KUBECONFIG", "PYTEST_ADDOPTS", *(o.env_var for o in OPTIONS if o.env_var)):
        monkeypatch.delenv(var, raising=False)


class FakeAPIServer:
    """A plain-HTTP stand-in for a host's API server: canned JSON per path (query ignored), 404 elsewhere.

    ``routes`` maps a path to ``(status, body)``; the defaults answer what opening a host reads
    (version, namespaces, nodes, StorageClasses). ``requests`` records the ``METHOD path`` of each call.
    Served in a thread of the test process, so pytester subprocesses reach it through :meth:`kubeconfig`.
    """

    @staticmethod
    def version_info(git_version: str) -> dict[str, str]:
        """The body of ``GET /version`` of a Kubernetes API server running ``git_version`` (``v1.33.13``)."""
        major, minor = git_version.lstrip("v").split(".")[:2]
        return {"major": major, "minor": minor, "gitVersion": git_version, "gitCommit": "0" * 40,
                "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0",
                "compiler": "gc", "platform": "linux/amd64"}

    @staticmethod
    def write_kubeconfig(path: Path, server: str, *, context: str = "h") -> Path:
        """A one-context kubeconfig (token user) pointing at ``server``."""
        path.write_text(
            f"apiVersion: v1\nkind: Config\ncurrent-context: {context}\n"
            f"clusters: [{{name: {context}, cluster: {{server: '{server}'}}}}]\n"
            f"users: [{{name: {context}, user: {{token: t}}}}]\n"
            f"contexts: [{{name: {context}, context: {{cluster: {context}, user: {context}}}}}]\n"
        )
        return path

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig of this server at ``path``."""
        return self.write_kubeconfig(path, self.url)

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, Any]] = {
            "/version": (200, self.version_info("v1.33.13")),
            "/api/v1/namespaces": (200, {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": []}),
            "/api/v1/nodes": (200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {},
                                    "items": [{"metadata": {"name": "n"}, "status": {"images": []}}]}),
            "/apis/storage.k8s.io/v1/storageclasses": (
                200, {"kind": "StorageClassList", "apiVersion": "storage.k8s.io/v1", "metadata": {}, "items": []}),
        }
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                path = urlsplit(self.path).path.rstrip("/") or "/"
                server.requests.append(f"{self.command} {path}")
                status, body = server.routes.get(path, (404, {"kind": "Status", "apiVersion": "v1", "status":
                                                              "Failure", "reason": "NotFound", "code": 404}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _answer

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def fake_apiserver() -> Iterator[FakeAPIServer]:
    server = FakeAPIServer()
    yield server
    server.close()
