"""Virtual cluster kubeconfig: read from Secret vc-R and pointed at the local forward."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import yaml

from pytest_vcluster.core import kubeconfig as _kubeconfig

SECRET_CONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "vc", "cluster": {"server": "https://localhost:8443",
                                            "certificate-authority-data": "Q0E="}}],
    "users": [{"name": "admin", "user": {"token": "s3cret"}}],
    "contexts": [{"name": "vc", "context": {"cluster": "vc", "user": "admin"}}],
    "current-context": "vc",
}


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def test_rewrite_points_server_at_forward_and_keeps_tls_name() -> None:
    out = _kubeconfig.rewrite(SECRET_CONFIG, server="https://127.0.0.1:40123", name="vc-abc-m-1")
    assert out["current-context"] == "vc-abc-m-1"
    cluster, user = _kubeconfig.current(out)
    assert cluster == {"server": "https://127.0.0.1:40123", "certificate-authority-data": "Q0E=",
                       "tls-server-name": "localhost"}
    assert user == {"token": "s3cret"}
    assert _kubeconfig.server_of(out) == "https://127.0.0.1:40123"


def test_rewrite_does_not_mutate_input() -> None:
    before = yaml.safe_dump(SECRET_CONFIG)
    _kubeconfig.rewrite(SECRET_CONFIG, server="https://127.0.0.1:1", name="x")
    assert yaml.safe_dump(SECRET_CONFIG) == before


def test_rewrite_from_ip_server_adds_no_tls_name() -> None:
    config = {**SECRET_CONFIG, "clusters": [{"name": "vc", "cluster": {"server": "https://10.0.0.1:443"}}]}
    cluster, _ = _kubeconfig.current(_kubeconfig.rewrite(config, server="https://127.0.0.1:9", name="x"))
    assert "tls-server-name" not in cluster


def test_rewrite_keeps_existing_tls_name() -> None:
    config = {**SECRET_CONFIG, "clusters": [{"name": "vc", "cluster": {"server": "https://localhost:8443",
                                                                       "tls-server-name": "api.vc"}}]}
    cluster, _ = _kubeconfig.current(_kubeconfig.rewrite(config, server="https://127.0.0.1:9", name="x"))
    assert cluster["tls-server-name"] == "api.vc"


def test_rewrite_for_service_dns() -> None:
    out = _kubeconfig.rewrite(SECRET_CONFIG, server="https://r.ns.svc:443", name="r")
    cluster, _ = _kubeconfig.current(out)
    assert cluster["server"] == "https://r.ns.svc:443"
    assert cluster["tls-server-name"] == "localhost"


def test_from_secret_config_key() -> None:
    data = {"config": b64(yaml.safe_dump(SECRET_CONFIG))}
    out = _kubeconfig.from_secret(data, name="r")
    assert _kubeconfig.server_of(out) == "https://localhost:8443"
    assert _kubeconfig.current(out)[1] == {"token": "s3cret"}


def test_from_secret_token_and_ca_fallback() -> None:
    data = {"token": b64("tok\n"), "certificate-authority": b64("-----BEGIN CERTIFICATE-----\n")}
    out = _kubeconfig.from_secret(data, name="r")
    cluster, user = _kubeconfig.current(out)
    assert cluster["server"] == "https://localhost:8443"
    assert base64.b64decode(cluster["certificate-authority-data"]).startswith(b"-----BEGIN")
    assert user == {"token": "tok"}


def test_from_secret_empty() -> None:
    with pytest.raises(ValueError, match="neither"):
        _kubeconfig.from_secret({}, name="r")


def test_context_selection_and_errors() -> None:
    config = {
        **SECRET_CONFIG,
        "clusters": SECRET_CONFIG["clusters"] + [{"name": "other", "cluster": {"server": "https://o:1"}}],
        "contexts": SECRET_CONFIG["contexts"] + [{"name": "o", "context": {"cluster": "other", "user": "admin"}}],
    }
    assert _kubeconfig.server_of(config, "o") == "https://o:1"
    with pytest.raises(ValueError, match="no context 'missing'"):
        _kubeconfig.server_of(config, "missing")


def test_write_is_private(tmp_path: Path) -> None:
    path = _kubeconfig.write(tmp_path / "sub" / "kc", SECRET_CONFIG)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _kubeconfig.load(path.read_text()) == SECRET_CONFIG


def test_written_kubeconfig_loads_in_kubernetes_client(tmp_path: Path) -> None:
    from kubernetes import client, config

    out = _kubeconfig.rewrite(SECRET_CONFIG, server="https://127.0.0.1:40123", name="x")
    path = _kubeconfig.write(tmp_path / "kc", out)
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg, persist_config=False)
    assert cfg.host == "https://127.0.0.1:40123"
    assert cfg.tls_server_name == "localhost"
    assert "Bearer s3cret" in [setting["value"] for setting in cfg.auth_settings().values()]
