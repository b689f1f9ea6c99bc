"""The host's PKI, made locally with the openssl CLI (no network, no kubeadm).

One CA signs everything: the API server's serving certificate, one client
certificate per component (each with the identity RBAC's bootstrap policy
expects, so the components run with their real, limited rights), the
kubelet's serving certificate, and the service-account key pair.

The aggregation layer gets a CA of its own, as kubeadm does it: front-proxy-ca
signs the one certificate front-proxy-client, with which kube-apiserver calls
aggregated API servers (those trust the X-Remote-* headers of that client only).

Files are only ever added: a cache made before a file existed gets it without
losing the others, so kubeconfigs handed out earlier stay valid.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from ._util import run


@dataclass(frozen=True)
class Client:
    file: str
    cn: str
    org: str | None = None


def _openssl(*args: str) -> None:
    run(["openssl", *args], quiet=True)


def _make_ca(pki: Path, name: str, cn: str) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(pki / f"{name}.key"))
    _openssl(
        "req", "-x509", "-new", "-key", str(pki / f"{name}.key"), "-subj", f"/CN={cn}",
        "-days", "3650", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-out", str(pki / f"{name}.crt"),
    )


CLIENT_EXT = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"


def _sign(pki: Path, name: str, subject: str, ext: str, ca: str = "ca") -> None:
    key, csr, crt, extfile = (pki / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    extfile.write_text(ext)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki / f"{ca}.crt"), "-CAkey", str(pki / f"{ca}.key"),
        "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", str(extfile), "-out", str(crt),
    )
    csr.unlink()
    extfile.unlink()


def ensure_pki(pki: Path, *, node_name: str, node_ip: str, service_ip: str, clients: list[Client]) -> None:
    """Creates the CA and every certificate that does not exist yet."""
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    # Serving certificates name the node's address: make them again when it changed.
    stamp = pki / "node"
    if stamp.exists() and stamp.read_text() != f"{node_name} {node_ip}\n":
        for name in ("apiserver", "kubelet"):
            for ext in ("crt", "key"):
                (pki / f"{name}.{ext}").unlink(missing_ok=True)
    if not (pki / "ca.crt").exists():
        _make_ca(pki, "ca", "pytest-vcluster-host-ca")
    if not (pki / "apiserver.crt").exists():
        sans = [
            "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local", "DNS:localhost", f"DNS:{node_name}",
            "IP:127.0.0.1", f"IP:{node_ip}", f"IP:{service_ip}",
        ]
        _sign(pki, "apiserver", "/CN=kube-apiserver", _server_ext(sans))
    if not (pki / "kubelet.crt").exists():
        _sign(pki, "kubelet", f"/CN=system:node:{node_name}/O=system:nodes",
              _server_ext([f"DNS:{node_name}", "DNS:localhost", "IP:127.0.0.1", f"IP:{node_ip}"]))
    for c in clients:
        if not (pki / f"{c.file}.crt").exists():
            subject = f"/CN={c.cn}" + (f"/O={c.org}" if c.org else "")
            _sign(pki, c.file, subject, CLIENT_EXT)
    if not (pki / "front-proxy-ca.crt").exists():
        (pki / "front-proxy-client.crt").unlink(missing_ok=True)  # signed by an earlier front-proxy CA
        _make_ca(pki, "front-proxy-ca", "front-proxy-ca")
    if not (pki / "front-proxy-client.crt").exists():
        _sign(pki, "front-proxy-client", "/CN=front-proxy-client", CLIENT_EXT, ca="front-proxy-ca")
    stamp.write_text(f"{node_name} {node_ip}\n")
    if not (pki / "sa.key").exists():
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki / "sa.key"))
        _openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def _server_ext(sans: list[str]) -> str:
    return (
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n" + "subjectAltName=" + ",".join(sans) + "\n"
    )


def kubeconfig(pki: Path, client: str, server: str, user: str) -> str:
    """A kubeconfig with the certificates embedded, so it stays valid if copied."""

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    return f"""apiVersion: v1
kind: Config
clusters:
- name: pytest-vcluster-host
  cluster:
    server: {server}
    certificate-authority-data: {b64("ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {b64(client + ".crt")}
    client-key-data: {b64(client + ".key")}
contexts:
- name: {user}@pytest-vcluster-host
  context:
    cluster: pytest-vcluster-host
    user: {user}
current-context: {user}@pytest-vcluster-host
"""
