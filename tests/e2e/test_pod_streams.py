"""Logs, exec and port-forward of a synced pod through the *virtual* API server, on the real host.

The virtual API server sends these calls to the kubelet of the pod's (fake) node: the syncer's kubelet
server (syncer/vcluster_syncer/kubelet.py), which relays them to the host pod's API subresources.
Checked with kubectl (SPDY/WebSocket-v5, translated by the virtual API server) and with the Python
client (WebSocket v4, passed through as it is).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from typing import Any

import pytest
from e2e_helpers import http_get, kubectl
from kubernetes import client
from kubernetes.stream import portforward, stream

pytestmark = pytest.mark.e2e

IMAGE = "pytest-vcluster.local/httpd:1.35"
GREETING = "hello from pytest-vcluster httpd"
MARKER = "pod-streams-log-marker"


def start_web_pod(core: client.CoreV1Api, name: str = "web", namespace: str = "default",
                  timeout: float = 240) -> None:
    """An httpd pod that writes MARKER to its log first; waits until it runs and is bound to a node."""
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "httpd",
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", f"echo {MARKER}; exec httpd -f -v -p 8080 -h /www"],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            }],
        },
    })
    deadline = time.monotonic() + timeout
    pod = None
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, namespace)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if pod.spec.node_name and ready:
            return
        time.sleep(1)
    raise AssertionError(f"pod {namespace}/{name} did not become ready and bound in {timeout}s: "
                         f"{pod.status if pod else None}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kubectl_logs_exec_port_forward(vcluster: Any) -> None:
    core = client.CoreV1Api(vcluster.api_client)
    start_web_pod(core)

    node = core.read_node(core.read_namespaced_pod("web", "default").spec.node_name)
    assert node.status.daemon_endpoints.kubelet_endpoint.port == 10250

    logs = kubectl(vcluster, "logs", "web")
    assert logs.returncode == 0, logs.stderr
    assert MARKER in logs.stdout

    logs = kubectl(vcluster, "logs", "web", "-c", "httpd", "--tail=1", "--timestamps")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.strip(), "no log line"

    # follow: a line written after `logs -f` started arrives while the stream is open
    follow = subprocess.Popen(["kubectl", "--kubeconfig", str(vcluster.kubeconfig_path), "logs", "-f", "web"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(follow.stdout.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not any("followed-line" in line for line in lines) and time.monotonic() < deadline:
            kubectl(vcluster, "exec", "web", "--", "sh", "-c", "echo followed-line > /proc/1/fd/1")
            time.sleep(2)
        assert any("followed-line" in line for line in lines), (lines, follow.poll())
        assert follow.poll() is None, "logs -f ended early"
    finally:
        follow.kill()
        follow.communicate(timeout=20)

    out = kubectl(vcluster, "exec", "web", "--", "echo", "ok")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"

    out = kubectl(vcluster, "exec", "web", "--", "sh", "-c", "echo to-stderr >&2; exit 3")
    assert out.returncode == 3, (out.returncode, out.stderr)
    assert "to-stderr" in out.stderr

    out = subprocess.run(["kubectl", "--kubeconfig", str(vcluster.kubeconfig_path), "exec", "-i", "web", "--",
                          "cat"], input="through stdin\n", capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "through stdin\n"

    port = free_port()
    forward = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(vcluster.kubeconfig_path), "port-forward", "pod/web", f"{port}:8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert GREETING in http_get(f"http://127.0.0.1:{port}/")
        assert GREETING in http_get(f"http://127.0.0.1:{port}/"), "second connection over the same forward"
    finally:
        forward.terminate()
        try:
            _, err = forward.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            forward.kill()
            _, err = forward.communicate()
    assert "error" not in err.lower(), err


def test_python_client_logs_exec_port_forward(vcluster: Any) -> None:
    core = client.CoreV1Api(vcluster.api_client)
    start_web_pod(core)

    log = core.read_namespaced_pod_log("web", "default", container="httpd")
    assert MARKER in log

    out = stream(core.connect_get_namespaced_pod_exec, "web", "default", command=["echo", "ok"],
                 stderr=True, stdin=False, stdout=True, tty=False, _request_timeout=60)
    assert out.strip() == "ok"

    resp = stream(core.connect_get_namespaced_pod_exec, "web", "default",
                  command=["sh", "-c", "read line; echo got:$line; exit 4"],
                  stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    try:
        resp.write_stdin("python stdin\n")
        got = ""
        deadline = time.monotonic() + 60
        while resp.is_open() and time.monotonic() < deadline:
            resp.update(timeout=1)
            if resp.peek_stdout():
                got += resp.read_stdout()
        if resp.peek_stdout():
            got += resp.read_stdout()
        assert "got:python stdin" in got
        assert resp.returncode == 4
    finally:
        resp.close()

    # attach: the container's own stdout, while something writes to it
    attached = stream(core.connect_get_namespaced_pod_attach, "web", "default", container="httpd",
                      stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
    try:
        got = ""
        deadline = time.monotonic() + 60
        while "attached-line" not in got and time.monotonic() < deadline:
            stream(core.connect_get_namespaced_pod_exec, "web", "default",
                   command=["sh", "-c", "echo attached-line > /proc/1/fd/1"],
                   stderr=True, stdin=False, stdout=True, tty=False, _request_timeout=60)
            attached.update(timeout=2)
            if attached.peek_stdout():
                got += attached.read_stdout()
        assert "attached-line" in got
    finally:
        attached.close()

    pf = portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
    sock = pf.socket(8080)
    try:
        sock.settimeout(30)
        sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        assert GREETING in data.decode(errors="replace")
    finally:
        sock.close()
    assert pf.error(8080) is None
