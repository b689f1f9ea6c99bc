"""Aggregated API servers work in a virtual cluster, on the real host (`hack/host up`).

The virtual kube-apiserver has kubeadm's front-proxy set-up (`--requestheader-*`, `--proxy-client-*`): it
publishes the front-proxy CA in kube-system/extension-apiserver-authentication, and proxies requests for an
APIService to the aggregated server with the front-proxy-client certificate and X-Remote-User/-Group
headers, which the aggregated server trusts. Without it the aggregated server sees anonymous requests and
answers 403 (the conformance spec "Aggregator Should be able to support the 1.17 Sample API Server"). It dials
the server at an endpoint (`--enable-aggregator-routing`): dialled at the ClusterIP before the host's kube-proxy
routed it, the connection left the node un-NATed, was answered 404 and kept alive (the APIService never became
Available).

The aggregated server is the conformance suite's: sample-apiserver (API wardle.example.com/v1alpha1, kind
Flunder) with an etcd sidecar, deployed as test/e2e/apimachinery/aggregator.go does (RBAC, auth-delegator,
extension-apiserver-authentication-reader, Service port 7443, APIService with its CA bundle), in a virtual
cluster with the chart's defaults. A second cluster checks `helm upgrade` of a release whose certs Secret
predates the front-proxy keys: they are added once, the rest of its PKI is kept byte for byte.

Images are the upstream names the host serves (`hack/host images`); nothing is pulled from the network.
`helm` must be on PATH for the upgrade (`export PATH="$(hack/host tools):$PATH"`).
"""

from __future__ import annotations

import base64
import datetime
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from e2e_helpers import Sides, created_vcluster, suffix, wait
from kubernetes import client

from pytest_vcluster import Host

pytestmark = pytest.mark.e2e

LABELS = {"e2e": "aggregated-api"}
CREATE_TIMEOUT = 360.0
SAMPLE_APISERVER = "registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2"
ETCD = "registry.k8s.io/etcd:3.5.21-0"
GROUP, VERSION = "wardle.example.com", "v1alpha1"
APISERVICE = f"{VERSION}.{GROUP}"
FRONT_PROXY_KEYS = ("front-proxy-ca.crt", "front-proxy-client.crt", "front-proxy-client.key")
REQUESTHEADER = {
    "requestheader-allowed-names": '["front-proxy-client"]',
    "requestheader-username-headers": '["X-Remote-User"]',
    "requestheader-group-headers": '["X-Remote-Group"]',
    "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
}


class Env(Sides):
    def __init__(self, vc: Any, host_api: client.ApiClient) -> None:
        super().__init__(vc, host_api)
        self.vcustom = client.CustomObjectsApi(vc.api_client)

    def certs(self) -> dict[str, bytes]:
        secret = self.hcore.read_namespaced_secret(f"{self.release}-certs", self.hns)
        return {k: base64.b64decode(v) for k, v in secret.data.items()}


@pytest.fixture(scope="module")
def plain(host: Host) -> Iterator[Env]:
    """A virtual cluster with the chart's defaults."""
    with created_vcluster(host, f"e2e-agg-{suffix()}", labels=LABELS, timeout=CREATE_TIMEOUT) as vc:
        yield Env(vc, host.api_client)


# ---------------------------------------------------------------------------------------------- helpers


def serving_cert(service: str, ns: str) -> tuple[bytes, bytes, bytes]:
    """(CA, certificate, key) PEMs for Service ``service`` in ``ns``, as aggregator.go's setupServerCert."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{service}-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    dns = f"{service}.{ns}.svc"
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns), x509.DNSName(f"{service}.{ns}")]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))


def deploy_sample_apiserver(env: Env, ns: str) -> bytes:
    """sample-apiserver with its RBAC, Service and APIService, as aggregator.go; returns the CA bundle."""
    ca, crt, key = serving_cert("sample-api", ns)
    env.vcore.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="sample-apiserver-secret"), data={
            "tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}))
    sa = [client.RbacV1Subject(kind="ServiceAccount", name="default", namespace=ns)]
    env.vrbac.create_cluster_role(client.V1ClusterRole(metadata=client.V1ObjectMeta(name=f"sample-apiserver-{ns}"),
                                                       rules=[
        client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["get", "list", "watch"]),
        client.V1PolicyRule(api_groups=["admissionregistration.k8s.io"], resources=["*"],
                            verbs=["get", "list", "watch"]),
        client.V1PolicyRule(api_groups=["flowcontrol.apiserver.k8s.io"],
                            resources=["prioritylevelconfigurations", "flowschemas"], verbs=["get", "list", "watch"]),
    ]))
    for name, role in ((f"sample-apiserver-{ns}", f"sample-apiserver-{ns}"),
                       (f"wardler:{ns}:auth-delegator", "system:auth-delegator")):
        env.vrbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=name), subjects=sa,
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role)))
    env.vrbac.create_namespaced_role_binding("kube-system", client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name=f"wardler-auth-reader-{ns}"), subjects=sa,
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                  name="extension-apiserver-authentication-reader")))
    labels = {"app": "sample-apiserver", "apiserver": "true"}
    certs = "/apiserver.local.config/certificates"
    etcd_url = "http://127.0.0.1:2379"
    env.vapps.create_namespaced_deployment(ns, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="sample-apiserver-deployment"),
        spec=client.V1DeploymentSpec(
            replicas=1, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    termination_grace_period_seconds=1,
                    volumes=[client.V1Volume(name="apiserver-certs", secret=client.V1SecretVolumeSource(
                        secret_name="sample-apiserver-secret"))],
                    containers=[
                        client.V1Container(
                            name="sample-apiserver", image=SAMPLE_APISERVER, image_pull_policy="IfNotPresent",
                            args=[f"--etcd-servers={etcd_url}", f"--tls-cert-file={certs}/tls.crt",
                                  f"--tls-private-key-file={certs}/tls.key", "--audit-log-path=-",
                                  "--audit-log-maxage=0", "--audit-log-maxbackup=0"],
                            volume_mounts=[client.V1VolumeMount(name="apiserver-certs", mount_path=certs,
                                                                read_only=True)],
                            readiness_probe=client.V1Probe(
                                http_get=client.V1HTTPGetAction(scheme="HTTPS", port=443, path="/readyz"),
                                period_seconds=1, failure_threshold=3)),
                        client.V1Container(
                            name="etcd", image=ETCD, image_pull_policy="IfNotPresent",
                            command=["/usr/local/bin/etcd", "--listen-client-urls", etcd_url,
                                     "--advertise-client-urls", etcd_url]),
                    ])))))
    env.vcore.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="sample-api"),
        spec=client.V1ServiceSpec(selector={"apiserver": "true"},
                                  ports=[client.V1ServicePort(protocol="TCP", port=7443, target_port=443)])))
    return ca


def apiservice_available(custom: client.CustomObjectsApi) -> bool:
    obj = custom.get_cluster_custom_object("apiregistration.k8s.io", "v1", "apiservices", APISERVICE)
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def diagnose(env: Env, ns: str) -> Any:
    """The cluster's diagnostics plus the APIService's status and the aggregated server's logs."""
    base = env.diagnose(ns)

    def run() -> str:
        out = [base()]
        try:
            obj = env.vcustom.get_cluster_custom_object("apiregistration.k8s.io", "v1", "apiservices", APISERVICE)
            out.append(f"APIService {APISERVICE} status: {obj.get('status')}")
        except client.ApiException as e:
            out.append(f"APIService {APISERVICE}: {e.status} {e.reason}")
        svc = env.vcore.read_namespaced_service("sample-api", ns)
        out.append(f"virtual Service sample-api ClusterIP {svc.spec.cluster_ip}; host Services: " + ", ".join(
            f"{s.metadata.name}={s.spec.cluster_ip}" for s in env.hcore.list_namespaced_service(env.hns).items))
        for p in env.vcore.list_namespaced_pod(ns).items:
            for c in ("sample-apiserver", "etcd"):
                try:
                    logs = env.vcore.read_namespaced_pod_log(p.metadata.name, ns, container=c, tail_lines=30)
                except client.ApiException as e:
                    logs = f"({e.status} {e.reason})"
                out.append(f"logs of {p.metadata.name}/{c}:\n{logs}")
        return "\n".join(out)
    return run


def pem_equal(a: str | bytes, b: str | bytes) -> bool:
    def norm(x: str | bytes) -> bytes:
        return (x.encode() if isinstance(x, str) else x).strip()
    return norm(a) == norm(b)


# ---------------------------------------------------------------------------------------------- tests


def test_extension_apiserver_authentication_has_requestheader_keys(plain: Env) -> None:
    """kube-apiserver publishes the front-proxy CA of Secret R-certs and kubeadm's header names; aggregated
    servers read them from here (extension-apiserver-authentication-reader)."""
    data = wait("extension-apiserver-authentication with requestheader-client-ca-file",
                lambda: (d := plain.vcore.read_namespaced_config_map(
                    "extension-apiserver-authentication", "kube-system").data) and
                "requestheader-client-ca-file" in d and d, timeout=60)
    assert {k: data.get(k) for k in REQUESTHEADER} == REQUESTHEADER
    certs = plain.certs()
    assert pem_equal(data["requestheader-client-ca-file"], certs["front-proxy-ca.crt"])
    assert pem_equal(data["client-ca-file"], certs["ca.crt"])
    assert not pem_equal(certs["front-proxy-ca.crt"], certs["ca.crt"])


def test_sample_apiserver_through_the_virtual_api(plain: Env) -> None:
    """The conformance suite's sample-apiserver, registered in the virtual cluster: flunders are created and
    listed through the virtual API (the aggregator reaches the server through the synced Service; the server
    authenticates the aggregator's front-proxy identity and authorises the user via the virtual API)."""
    ns = plain.namespace("agg")
    ca = deploy_sample_apiserver(plain, ns)
    plain.vcustom.create_cluster_custom_object("apiregistration.k8s.io", "v1", "apiservices", {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
        "spec": {"service": {"namespace": ns, "name": "sample-api", "port": 7443}, "group": GROUP,
                 "version": VERSION, "caBundle": base64.b64encode(ca).decode(), "groupPriorityMinimum": 2000,
                 "versionPriority": 200}})
    try:
        wait(f"APIService {APISERVICE} Available", lambda: apiservice_available(plain.vcustom), timeout=240,
             every=2, diagnose=diagnose(plain, ns))
        flunder = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flunder", "metadata": {"name": "rest-flunder"},
                   "spec": {}}
        # Available is the aggregator's own check (a TCP dial and /apis discovery); the first request through it
        # may still meet a server whose informers are syncing: retried until it answers, then must succeed.
        created = wait("a Flunder created through the virtual API",
                       lambda: plain.vcustom.create_namespaced_custom_object(GROUP, VERSION, ns, "flunders",
                                                                             flunder),
                       timeout=60, every=1, diagnose=diagnose(plain, ns))
        assert created["metadata"]["name"] == "rest-flunder" and created["metadata"]["namespace"] == ns
        listed = plain.vcustom.list_namespaced_custom_object(GROUP, VERSION, ns, "flunders")
        assert [f["metadata"]["name"] for f in listed["items"]] == ["rest-flunder"]
        got = plain.vcustom.get_namespaced_custom_object(GROUP, VERSION, ns, "flunders", "rest-flunder")
        assert got["metadata"]["uid"] == created["metadata"]["uid"]
        # the aggregated server runs as a synced pod in the host namespace, served by the host's kubelet
        host_pods = plain.hcore.list_namespaced_pod(plain.hns).items
        assert any(p.metadata.name.startswith("sample-apiserver-deployment") and p.status.phase == "Running"
                   for p in host_pods), [p.metadata.name for p in host_pods]
    finally:
        plain.vcustom.delete_cluster_custom_object("apiregistration.k8s.io", "v1", "apiservices", APISERVICE)


def test_helm_upgrade_adds_front_proxy_to_an_older_secret(host: Host, host_kubeconfig: Path) -> None:
    """`helm upgrade` of a release whose Secret R-certs has no front-proxy keys (made by an older chart): they
    are generated once; the CA, serving certificate, service-account key and token stay, so kubeconfigs
    handed out earlier stay valid; a further upgrade keeps the new keys too."""
    from pytest_vcluster.core.settings import default_chart_path

    with created_vcluster(host, f"e2e-agg-up-{suffix()}", labels=LABELS, timeout=CREATE_TIMEOUT) as vc:
        env = Env(vc, host.api_client)
        secret = f"{vc.release}-certs"
        env.hcore.patch_namespaced_secret(secret, vc.host_namespace, [
            {"op": "remove", "path": f"/data/{k.replace('/', '~1')}"} for k in FRONT_PROXY_KEYS])
        old = env.certs()
        assert not set(FRONT_PROXY_KEYS) & set(old)

        def upgrade() -> None:
            subprocess.run(
                ["helm", "upgrade", vc.release, str(default_chart_path()), "--namespace", vc.host_namespace,
                 "--reuse-values", "--kubeconfig", os.fspath(host_kubeconfig)],
                check=True, capture_output=True, timeout=300)

        upgrade()
        new = env.certs()
        assert {k: new[k] for k in old} == old
        assert set(FRONT_PROXY_KEYS) <= set(new)
        client_cert = x509.load_pem_x509_certificate(new["front-proxy-client.crt"])
        client_cert.verify_directly_issued_by(x509.load_pem_x509_certificate(new["front-proxy-ca.crt"]))
        upgrade()
        assert env.certs() == new
        # the cluster still answers with the credentials it was created with
        assert env.vcore.read_namespace("default").metadata.name == "default"
