"""A local TCP port forwarded to a pod port through the host API server.

Every accepted connection opens its own port-forward stream (a websocket to the host API
server's ``pods/portforward`` subresource, via :func:`kubernetes.stream.portforward`) and two
threads pump bytes both ways. Connections are independent, so many concurrent requests and
long watches work; :meth:`PortForward.close` closes the listener and every connection.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

BUFFER = 64 * 1024

#: Opens one stream to the pod port; returns a socket-like object (recv/sendall/shutdown/close).
StreamOpener = Callable[[], Any]

_LIVE: weakref.WeakSet[PortForward] = weakref.WeakSet()


def failing() -> list[str]:
    """One line per open port-forward whose latest stream could not be opened (e.g. the host API server is
    down, or the pod is gone): what a client behind it only sees as a dropped connection."""
    return [f"port-forward {forward.address} ({forward.name}): cannot open a stream: {forward.last_error}"
            for forward in list(_LIVE) if forward.last_error and not forward.closed]


def kubernetes_stream_opener(configuration: Any, namespace: str, pod: str, port: int) -> StreamOpener:
    """A :data:`StreamOpener` using the kubernetes client's websocket port-forward.

    Each stream gets its own ``ApiClient``: ``kubernetes.stream.portforward`` temporarily
    patches the client it is given, so a shared one would not be thread-safe.
    """

    def open_stream() -> Any:
        from kubernetes import client
        from kubernetes.stream import portforward

        api_client: Any = client.ApiClient(configuration)
        try:
            core = client.CoreV1Api(api_client)
            forward = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
            sock = forward.socket(port)
            sock.setblocking(True)
            return _ForwardSocket(forward, sock, port, api_client)
        except BaseException:
            api_client.close()
            raise

    return open_stream


class _ForwardSocket:
    """The local end of one kubernetes port-forward stream."""

    def __init__(self, forward: Any, sock: Any, port: int, api_client: Any) -> None:
        self._forward = forward
        self._sock = sock
        self._port = port
        self._api_client = api_client

    def recv(self, size: int) -> bytes:
        return bytes(self._sock.recv(size))

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def error(self) -> str | None:
        return self._forward.error(self._port)  # type: ignore[no-any-return]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._forward.close()
        with contextlib.suppress(Exception):
            self._sock.close()
        with contextlib.suppress(Exception):
            self._api_client.close()


class _Connection:
    def __init__(self, client: socket.socket, remote: Any, on_close: Callable[[_Connection], None]) -> None:
        self.client = client
        self.remote = remote
        self._on_close = on_close
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def start(self, name: str) -> None:
        for source, target, direction in ((self.client, self.remote, "out"), (self.remote, self.client, "in")):
            threading.Thread(
                target=self._pump, args=(source, target), name=f"{name}-{direction}", daemon=True
            ).start()

    def _pump(self, source: Any, target: Any) -> None:
        try:
            while not self._closed.is_set():
                data = source.recv(BUFFER)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        except Exception:  # noqa: BLE001 - a broken stream must not kill the process
            log.debug("port-forward pump failed", exc_info=True)
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
        for sock in (self.client, self.remote):
            with contextlib.suppress(Exception):
                sock.shutdown(socket.SHUT_RDWR)
        for sock in (self.client, self.remote):
            with contextlib.suppress(Exception):
                sock.close()
        self._on_close(self)


class PortForward:
    """Listen on ``127.0.0.1:<random port>`` and forward each connection through ``open_stream``."""

    def __init__(self, open_stream: StreamOpener, *, name: str = "vcluster", host: str = "127.0.0.1") -> None:
        self._open_stream = open_stream
        self._name = name
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(128)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.accepted = 0
        self.failed = 0
        #: why the latest stream could not be opened; None once one opens again
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._accept_loop, name=f"portforward-{name}", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                continue
            self.accepted += 1
            threading.Thread(
                target=self._serve, args=(client,), name=f"portforward-{self._name}-open", daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            remote = self._open_stream()
        except Exception as exc:  # noqa: BLE001 - the client sees a closed connection and retries
            self.failed += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.debug("port-forward %s: cannot open stream: %s", self._name, exc)
            with contextlib.suppress(OSError):
                client.close()
            return
        self.last_error = None
        connection = _Connection(client, remote, self._forget)
        with self._lock:
            closed = self._closed.is_set()
            if not closed:
                self._connections.add(connection)
        if closed:  # close() came while the stream opened; outside the lock: closing forgets it (_forget locks)
            connection.close()
            return
        connection.start(f"portforward-{self._name}")

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def close(self) -> None:
        """Stop listening and close every forwarded connection."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> PortForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
