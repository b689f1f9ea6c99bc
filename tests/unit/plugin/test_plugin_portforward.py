"""The local listener of the port-forward, with streams to a local echo server instead of a cluster."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pytest_vcluster import WaitTimeout, wait_until
from pytest_vcluster.core.portforward import PortForward, failing


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(256)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()
    stop.set()
    server.close()


def opener_to(address: tuple[str, int]) -> object:
    def open_stream() -> socket.socket:
        return socket.create_connection(address, timeout=10)

    return open_stream


def roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_listens_on_loopback_random_port(echo_server: tuple[str, int]) -> None:
    with PortForward(opener_to(echo_server)) as forward:  # type: ignore[arg-type]
        assert forward.host == "127.0.0.1"
        assert forward.port > 0
        assert forward.address == f"127.0.0.1:{forward.port}"
        assert roundtrip(forward.port, b"hello") == b"hello"


def test_many_concurrent_connections_and_large_payloads(echo_server: tuple[str, int]) -> None:
    with PortForward(opener_to(echo_server)) as forward:  # type: ignore[arg-type]
        payloads = [bytes([i % 251]) * (1000 + i * 3000) for i in range(40)]
        with ThreadPoolExecutor(max_workers=40) as pool:
            results = list(pool.map(lambda p: roundtrip(forward.port, p), payloads))
        assert results == payloads
        assert forward.accepted == 40


def test_each_connection_opens_its_own_stream(echo_server: tuple[str, int]) -> None:
    opened: list[int] = []

    def open_stream() -> socket.socket:
        opened.append(1)
        return socket.create_connection(echo_server, timeout=10)

    with PortForward(open_stream) as forward:
        for _ in range(5):
            assert roundtrip(forward.port, b"x") == b"x"
    assert len(opened) == 5


def test_long_lived_connection_keeps_working(echo_server: tuple[str, int]) -> None:
    with PortForward(opener_to(echo_server)) as forward:  # type: ignore[arg-type]
        with socket.create_connection(("127.0.0.1", forward.port), timeout=10) as conn:
            for i in range(20):
                conn.sendall(f"line {i}\n".encode())
                assert conn.recv(100) == f"line {i}\n".encode()
                time.sleep(0.01)


def test_close_closes_open_connections(echo_server: tuple[str, int]) -> None:
    forward = PortForward(opener_to(echo_server))  # type: ignore[arg-type]
    conn = socket.create_connection(("127.0.0.1", forward.port), timeout=10)
    conn.sendall(b"ping")
    assert conn.recv(10) == b"ping"
    deadline = time.monotonic() + 5
    while forward.active_connections != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert forward.active_connections == 1
    forward.close()
    assert conn.recv(10) == b""  # closed by the forward
    conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", forward.port), timeout=2).close()
    forward.close()  # idempotent


def test_close_while_a_stream_opens_neither_deadlocks_nor_leaks(echo_server: tuple[str, int]) -> None:
    """``close`` comes while a connection's stream is being opened: the connection is closed at once, and
    neither its thread nor ``close`` hangs (the connection's close used to take the forward's lock again
    while holding it: an xdist worker hung at session end, 2026-12-07)."""
    opened = threading.Event()
    closing = threading.Event()

    def open_stream() -> socket.socket:
        stream = socket.create_connection(echo_server, timeout=10)
        opened.set()
        assert closing.wait(10)  # close() has begun
        return stream

    forward = PortForward(open_stream, name="late")  # type: ignore[arg-type]
    conn = socket.create_connection(("127.0.0.1", forward.port), timeout=10)
    assert opened.wait(10)
    forward._closed.set()  # what close() does first; the stream then arrives
    closing.set()
    assert conn.recv(10) == b""  # the late connection was closed
    done = threading.Thread(target=forward.close, daemon=True)
    done.start()
    done.join(10)
    assert not done.is_alive(), "PortForward.close() hung"
    assert forward.active_connections == 0
    wait_until("the late connection's thread to end",
               lambda: not any(t.name == "portforward-late-open" for t in threading.enumerate()), timeout=10,
               interval=0.05)
    conn.close()


def test_connection_closed_by_client_is_forgotten(echo_server: tuple[str, int]) -> None:
    with PortForward(opener_to(echo_server)) as forward:  # type: ignore[arg-type]
        for _ in range(3):
            roundtrip(forward.port, b"abc")
        deadline = time.monotonic() + 5
        while forward.active_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert forward.active_connections == 0


def test_failing_stream_closes_client_and_records_error() -> None:
    def broken() -> socket.socket:
        raise ConnectionRefusedError("pod not listening")

    with PortForward(broken) as forward:
        with socket.create_connection(("127.0.0.1", forward.port), timeout=10) as conn:
            assert conn.recv(10) == b""
        deadline = time.monotonic() + 5
        while forward.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert forward.failed == 1
        assert "pod not listening" in (forward.last_error or "")


def _wait_for_failure(forward: PortForward) -> None:
    deadline = time.monotonic() + 5
    while forward.failed == 0 and time.monotonic() < deadline:
        time.sleep(0.01)


def test_failing_lists_forwards_whose_latest_stream_failed_until_one_opens(echo_server: tuple[str, int]) -> None:
    answers: list[Any] = [ConnectionRefusedError("host API server down")]

    def flaky() -> socket.socket:
        if answers:
            raise answers.pop(0)
        return socket.create_connection(echo_server, timeout=10)

    with PortForward(flaky, name="r1") as forward:
        with socket.create_connection(("127.0.0.1", forward.port), timeout=10) as conn:
            assert conn.recv(10) == b""
        _wait_for_failure(forward)
        lines = [line for line in failing() if f"({forward.name})" in line]
        assert lines == [f"port-forward {forward.address} (r1): cannot open a stream: "
                         "ConnectionRefusedError: host API server down"]
        assert roundtrip(forward.port, b"back") == b"back"  # the next connection opens a stream again
        assert not [line for line in failing() if "(r1)" in line]
    assert forward.closed


def test_wait_timeout_after_a_dropped_connection_names_the_port_forward_error(clock: Any) -> None:
    def broken() -> socket.socket:
        raise ConnectionRefusedError("pods \"r2-0\" not found")

    with PortForward(broken, name="r2") as forward:
        with socket.create_connection(("127.0.0.1", forward.port), timeout=10) as conn:
            assert conn.recv(10) == b""
        _wait_for_failure(forward)

        def probe() -> None:  # what the kubernetes client raises when the forward drops the connection
            raise ConnectionResetError("Connection reset by peer")

        with pytest.raises(WaitTimeout) as info:
            wait_until("deployment web", probe, timeout=1, interval=0.5, sleep=clock.sleep, clock=clock)
    message = str(info.value)
    assert message.startswith("timed out after 1s waiting for deployment web; last seen: "
                              "'ConnectionResetError: Connection reset by peer'"), message
    assert f"port-forward {forward.address} (r2): cannot open a stream: ConnectionRefusedError: " \
           "pods \"r2-0\" not found" in message, message


def test_wait_timeout_on_a_value_does_not_blame_port_forwards(clock: Any) -> None:
    def broken() -> socket.socket:
        raise ConnectionRefusedError("down")

    with PortForward(broken, name="r3") as forward:
        with socket.create_connection(("127.0.0.1", forward.port), timeout=10) as conn:
            assert conn.recv(10) == b""
        _wait_for_failure(forward)
        with pytest.raises(WaitTimeout) as info:
            wait_until("x", lambda: False, timeout=1, interval=0.5, sleep=clock.sleep, clock=clock)
    assert "port-forward" not in str(info.value)
