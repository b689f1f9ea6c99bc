"""A pod's log read over a WebSocket through the *virtual* API server, on the real host.

Conformance's "[sig-node] Pods should support retrieving logs from the container over websockets" opens
``/api/v1/namespaces/N/pods/P/log?container=C`` as a WebSocket (subprotocols ``binary.k8s.io`` and
``base64.binary.k8s.io``) and reads frames until the server closes. The API server copies the kubelet's
answer (here: the syncer's fake kubelet relaying the host pod's log) into binary frames; the log read this
way must equal the plain GET's. It used to carry nothing but the empty first frame (kubelet.py,
``_relay_chunked``).
"""

from __future__ import annotations

import base64
import ssl
from typing import Any

import pytest
import websocket
from e2e_helpers import wait
from kubernetes import client

pytestmark = pytest.mark.e2e

IMAGE = "pytest-vcluster.local/httpd:1.35"
LINES = [f"websocket-log-line-{i}" for i in range(5)]


def websocket_log(configuration: client.Configuration, path: str, protocol: str) -> bytes:
    """The frames of a WebSocket GET of ``path`` until the server closes, joined (base64 ones decoded)."""
    url = configuration.host.replace("https://", "wss://", 1) + path
    sslopt: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": configuration.ssl_ca_cert}
    if configuration.cert_file:
        sslopt.update(certfile=configuration.cert_file, keyfile=configuration.key_file)
    headers = [f"authorization: {v}" for v in configuration.api_key.values()]
    ws = websocket.create_connection(url, sslopt=sslopt, header=headers, subprotocols=[protocol], timeout=60)
    try:
        assert ws.getsubprotocol() == protocol
        data = b""
        while True:
            opcode, frame = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return data
            data += base64.b64decode(frame) if protocol.startswith("base64.") else frame
    finally:
        ws.close()


def test_pod_log_over_websocket_equals_plain_get(vcluster: Any) -> None:
    core = client.CoreV1Api(vcluster.api_client)
    script = "; ".join(f"echo {line}" for line in LINES) + "; exec sleep 3600"
    core.create_namespaced_pod("default", {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "logger"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script]}],
        },
    })
    expected = "".join(line + "\n" for line in LINES)
    plain = wait("the pod's log by plain GET", lambda: (
        log if (log := core.read_namespaced_pod_log("logger", "default", container="main")) == expected else None))
    assert plain == expected

    path = "/api/v1/namespaces/default/pods/logger/log?container=main"
    configuration = vcluster.api_client.configuration
    for protocol in ("binary.k8s.io", "base64.binary.k8s.io"):
        got = websocket_log(configuration, path, protocol)
        assert got.decode() == plain, (protocol, got)
