"""hack/host's PKI (real openssl, in a temporary directory): the front-proxy pair of the aggregation layer,
added to an existing cache without touching what was there."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import cluster, pki  # noqa: E402
from _host.layout import Layout  # noqa: E402

NODE = dict(node_name="node-a", node_ip="10.1.2.3", service_ip="10.96.0.1", clients=cluster.CLIENTS)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cn(c: x509.Certificate) -> str:
    return str(c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    pki.ensure_pki(d, **NODE)  # type: ignore[arg-type]
    return d


def test_front_proxy_pair(made: Path) -> None:
    ca, client = cert(made / "front-proxy-ca.crt"), cert(made / "front-proxy-client.crt")
    assert cn(client) == "front-proxy-client"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    client.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # its own CA, not the cluster's (whose clients are users)
    assert ca.subject != cert(made / "ca.crt").subject
    with pytest.raises(ValueError):
        client.verify_directly_issued_by(cert(made / "ca.crt"))
    key = serialization.load_pem_private_key((made / "front-proxy-client.key").read_bytes(), password=None)
    assert key.public_key() == client.public_key()


def test_an_old_cache_gets_the_front_proxy_pair_and_keeps_the_rest(made: Path, tmp_path: Path) -> None:
    """A cache from before the front-proxy files: they are added, every earlier file is kept byte for byte
    (kubeconfigs handed out earlier embed ca.crt and admin.crt)."""
    old = tmp_path / "pki"
    old.mkdir()
    for f in made.iterdir():
        if not f.name.startswith("front-proxy"):
            (old / f.name).write_bytes(f.read_bytes())
    before = {f.name: f.read_bytes() for f in old.iterdir()}
    pki.ensure_pki(old, **NODE)  # type: ignore[arg-type]
    after = {f.name: f.read_bytes() for f in old.iterdir()}
    assert {k: after[k] for k in before} == before
    assert {"front-proxy-ca.crt", "front-proxy-ca.key", "front-proxy-client.crt", "front-proxy-client.key"} <= set(
        after
    )
    cert(old / "front-proxy-client.crt").verify_directly_issued_by(cert(old / "front-proxy-ca.crt"))
    # and a second run changes nothing
    pki.ensure_pki(old, **NODE)  # type: ignore[arg-type]
    assert {f.name: f.read_bytes() for f in old.iterdir()} == after


def test_a_new_front_proxy_ca_gets_a_new_client_certificate(made: Path, tmp_path: Path) -> None:
    d = tmp_path / "pki"
    d.mkdir()
    for f in made.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    (d / "front-proxy-ca.crt").unlink()
    pki.ensure_pki(d, **NODE)  # type: ignore[arg-type]
    cert(d / "front-proxy-client.crt").verify_directly_issued_by(cert(d / "front-proxy-ca.crt"))


def test_apiserver_flags_name_the_front_proxy_files(made: Path, tmp_path: Path) -> None:
    """kube-apiserver's front-proxy flags, as kubeadm sets them, name files ensure_pki makes."""
    layout = Layout(state=tmp_path / "state", run=tmp_path / "run", cache=tmp_path / "cache")
    bins = {name: Path("/bin") / name for name in ("kube-apiserver", "etcd", "registry", "kubelet", "kube-proxy",
                                                     "kube-controller-manager", "kube-scheduler", "kube-router",
                                                     "local-path-provisioner")}
    argv = cluster.processes(layout, bins, "10.1.2.3")["kube-apiserver"].argv
    flags = dict(a[2:].partition("=")[::2] for a in argv[1:])
    assert flags["requestheader-allowed-names"] == "front-proxy-client"
    assert flags["requestheader-username-headers"] == "X-Remote-User"
    assert flags["requestheader-group-headers"] == "X-Remote-Group"
    assert flags["requestheader-extra-headers-prefix"] == "X-Remote-Extra-"
    assert "enable-aggregator-routing" not in flags  # the aggregator dials Service ClusterIPs (kube-proxy)
    for flag, file in (("requestheader-client-ca-file", "front-proxy-ca.crt"),
                       ("proxy-client-cert-file", "front-proxy-client.crt"),
                       ("proxy-client-key-file", "front-proxy-client.key")):
        assert flags[flag] == str(layout.pki / file)
        assert (made / file).is_file()
