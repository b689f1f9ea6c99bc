from __future__ import annotations

import pytest
from vcluster_syncer.config import ConfigError, load_config

BASE = {
    "VCLUSTER_NAME": "vc",
    "HOST_NAMESPACE": "ns",
    "VIRTUAL_SERVER": "https://127.0.0.1:6443",
    "VIRTUAL_TOKEN_FILE": "/t",
    "VIRTUAL_CA_FILE": "/c",
}


def test_defaults() -> None:
    config = load_config(BASE, check_files=False)
    assert config.service_name == "vc" and config.workload_service_account == "vc-workload-vc"
    assert config.sync_nodes_mode == "synced" and config.cluster_domain == "cluster.local"
    assert not config.sync_all_configmaps and config.health_port == 8081
    settings = config.settings("uid")
    assert settings.service_uid == "uid" and settings.host_namespace == "ns"


@pytest.mark.parametrize(("change", "node", "ips"), [
    pytest.param({"NODE_NAME": "n1", "HOST_IP": "10.0.0.5", "COREDNS_ENABLED": "true"}, "n1", ("10.0.0.5",),
                 id="CoreDNS in R-0: its node, with R-0's hostIP"),
    pytest.param({"NODE_NAME": " n1 ", "HOST_IP": "", "COREDNS_ENABLED": "true"}, "n1", (),
                 id="hostIP not known: the node without an IP"),
    pytest.param({"NODE_NAME": "n1", "HOST_IP": "10.0.0.5", "COREDNS_ENABLED": "false"}, "", (),
                 id="no CoreDNS: no pod of the cluster on R-0's node"),
    pytest.param({"COREDNS_ENABLED": "true"}, "", (), id="outside the chart: node unknown"),
    pytest.param({"NODE_NAME": "", "HOST_IP": "10.0.0.5", "COREDNS_ENABLED": "true"}, "", (),
                 id="an IP without a node is not used"),
])
def test_the_node_of_coredns(change: dict[str, str], node: str, ips: tuple[str, ...]) -> None:
    settings = load_config({**BASE, **change}, check_files=False).settings("uid")
    assert (settings.coredns_node, settings.coredns_node_ips) == (node, ips)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"VCLUSTER_NAME": ""}, "VCLUSTER_NAME"),
        ({"HOST_NAMESPACE": " "}, "HOST_NAMESPACE"),
        ({"VIRTUAL_SERVER": "127.0.0.1:6443"}, "VIRTUAL_SERVER"),
        ({"SYNC_ALL_SECRETS": "maybe"}, "SYNC_ALL_SECRETS"),
        ({"SYNC_NODES_MODE": "some"}, "SYNC_NODES_MODE"),
        ({"HEALTH_PORT": "x"}, "HEALTH_PORT"),
    ],
)
def test_errors_name_the_variable(change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config({**BASE, **change}, check_files=False)


def test_missing_file_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="VIRTUAL_TOKEN_FILE"):
        load_config({**BASE, "VIRTUAL_TOKEN_FILE": str(tmp_path / "nope")})


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("TRUE", True), ("false", False), ("", False)])
def test_switches(value: str, expected: bool) -> None:
    config = load_config({**BASE, "SYNC_ALL_CONFIGMAPS": value, "SYNC_STORAGE_CLASSES": value}, check_files=False)
    assert config.sync_all_configmaps is expected and config.sync_storage_classes is expected


def test_health_endpoints() -> None:
    import urllib.error
    import urllib.request

    from vcluster_syncer import health

    state = {"ready": False}
    server = health.serve(0, lambda: state["ready"], host="127.0.0.1")
    port = server.server_address[1]

    def status(path: str) -> int:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        assert status("/healthz") == 200
        assert status("/readyz") == 503
        state["ready"] = True
        assert status("/readyz") == 200
    finally:
        server.shutdown()
