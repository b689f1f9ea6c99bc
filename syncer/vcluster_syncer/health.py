"""/healthz (alive) and /readyz (first full sync done and default/default ServiceAccount exists) on :8081."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port: int, ready: Callable[[], bool], host: str = "0.0.0.0") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path in ("/healthz", "/livez"):
                self._answer(200, b"ok\n")
            elif path == "/readyz":
                if ready():
                    self._answer(200, b"ok\n")
                else:
                    self._answer(503, b"not ready: first sync, default ServiceAccount, CoreDNS endpoints or node "
                                      b"pending\n")
            else:
                self._answer(404, b"not found\n")

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: keep logs quiet
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
