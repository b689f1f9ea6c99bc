"""Unit tests of the Helm chart in chart/: render it with `helm template` and
inspect the objects. Needs a helm binary (HELM_BIN, PATH, or the one
`hack/host` builds into ~/.cache/pytest-vcluster/bin/helm-*/helm); without
one these tests fail, they do not skip.

No cluster is involved: `lookup` returns nothing under `helm template`, so
every render generates fresh certificates and a fresh Service IP.

The tests check what the chart does, not what values.yaml says: a value set
changes the rendered manifest as pinned here (VALUE_EFFECTS), a wrong one is
refused by values.schema.json (BAD_VALUES); both tables cover every value.
"""

from __future__ import annotations

import base64
import functools
import glob
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "chart"
RELEASE = "vc1"
NAMESPACE = "test-ns"
# Our helm may be built without the Kubernetes version stamped in (it then
# claims v1.20 and refuses the chart's kubeVersion); say which one we target.
KUBE_VERSION = "v1.33.13"

CLUSTER_SCOPED_KINDS = {
    "ClusterRole",
    "ClusterRoleBinding",
    "Namespace",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "IngressClass",
    "RuntimeClass",
    "APIService",
}

Objects = dict[tuple[str, str], dict[str, Any]]


# --------------------------------------------------------------------------- helpers


def find_helm() -> str | None:
    env = os.environ.get("HELM_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    found = sorted(glob.glob(str(cache / "pytest-vcluster" / "bin" / "helm-*" / "helm")))
    return found[-1] if found else None


@pytest.fixture(scope="session")
def helm() -> str:
    env = os.environ.get("HELM_BIN")
    if env and not os.access(env, os.X_OK):
        pytest.fail(f"HELM_BIN={env!r} is not an executable file", pytrace=False)
    path = find_helm()
    if path is None:
        pytest.fail(
            "helm not found: set HELM_BIN, put helm on PATH, or build it with `hack/host up` "
            "(it lands in ~/.cache/pytest-vcluster/bin/helm-*/helm)",
            pytrace=False,
        )
    return path


def helm_template(
    helm: str, *sets: str, release: str = RELEASE, namespace: str = NAMESPACE
) -> subprocess.CompletedProcess[str]:
    cmd = [helm, "template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@functools.cache
def _render_cached(helm: str, sets: tuple[str, ...], release: str, namespace: str) -> tuple[dict[str, Any], ...]:
    proc = helm_template(helm, *sets, release=release, namespace=namespace)
    assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def render(helm: str, *sets: str, release: str = RELEASE, namespace: str = NAMESPACE) -> Objects:
    """Render and index the objects by (kind, name). Cached: same args, same random values."""
    docs = _render_cached(helm, tuple(sets), release, namespace)
    objs: Objects = {}
    for d in docs:
        key = (d["kind"], d["metadata"]["name"])
        assert key not in objs, f"duplicate object {key}"
        objs[key] = d
    return objs


def secret_data(obj: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in obj["data"].items()}


def pod_spec(objs: Objects, release: str = RELEASE) -> dict[str, Any]:
    return objs[("StatefulSet", release)]["spec"]["template"]["spec"]


def containers(objs: Objects, release: str = RELEASE) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod_spec(objs, release)["containers"]}


def flags(args: list[str]) -> dict[str, str]:
    """--name=value arguments as a dict (last one wins, as for the binaries)."""
    out: dict[str, str] = {}
    for a in args:
        assert a.startswith("--"), f"unexpected argument {a!r}"
        name, _, value = a[2:].partition("=")
        out[name] = value
    return out


def san_of(cert_pem: bytes) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses) of a PEM certificate."""
    try:
        from cryptography import x509
    except ImportError:
        text = subprocess.run(
            ["openssl", "x509", "-noout", "-ext", "subjectAltName"],
            input=cert_pem,
            capture_output=True,
            check=True,
        ).stdout.decode()
        dns = set(re.findall(r"DNS:([^,\s]+)", text))
        ips = set(re.findall(r"IP Address:([^,\s]+)", text))
        return dns, ips
    cert = x509.load_pem_x509_certificate(cert_pem)
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)), {str(i) for i in ext.get_values_for_type(x509.IPAddress)}


def verify_issued_by(cert_pem: bytes, ca_pem: bytes) -> None:
    try:
        from cryptography import x509
    except ImportError:
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "ca.crt").write_bytes(ca_pem)
            Path(tmp, "cert.crt").write_bytes(cert_pem)
            subprocess.run(["openssl", "verify", "-CAfile", f"{tmp}/ca.crt", f"{tmp}/cert.crt"], check=True)
        return
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    cert.verify_directly_issued_by(ca)


@pytest.fixture(scope="session")
def default(helm: str) -> Objects:
    return render(helm)


# --------------------------------------------------------------------------- lint


def test_helm_lint(helm: str) -> None:
    proc = subprocess.run(
        [helm, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, "--namespace", NAMESPACE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- object inventory

EXPECTED_DEFAULT = {
    ("StatefulSet", RELEASE),
    ("Service", RELEASE),
    ("Secret", f"{RELEASE}-certs"),
    ("Secret", f"vc-{RELEASE}"),
    ("ConfigMap", f"{RELEASE}-coredns"),
    ("ServiceAccount", f"vc-{RELEASE}"),
    ("ServiceAccount", f"vc-workload-{RELEASE}"),
    ("Role", f"vc-{RELEASE}"),
    ("RoleBinding", f"vc-{RELEASE}"),
}


def test_default_objects(default: Objects) -> None:
    assert set(default) == EXPECTED_DEFAULT


def test_no_cluster_scoped_object_by_default(default: Objects) -> None:
    for kind, name in default:
        assert kind not in CLUSTER_SCOPED_KINDS, f"cluster-scoped {kind}/{name} rendered by default"
        assert default[(kind, name)]["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("key", sorted(EXPECTED_DEFAULT))
def test_standard_labels(default: Objects, key: tuple[str, str]) -> None:
    labels = default[key]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "pytest-vcluster"
    assert labels["app.kubernetes.io/instance"] == RELEASE
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["app.kubernetes.io/version"] == chart_meta()["appVersion"]
    assert labels["app.kubernetes.io/component"]


def chart_meta() -> dict[str, Any]:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


# --------------------------------------------------------------------------- cluster-scoped options


@pytest.mark.parametrize(
    ("sets", "resources"),
    [
        ((), None),
        (("sync.fromHost.nodes.mode=synced",), None),
        (("sync.fromHost.nodes.mode=all",), {"nodes"}),
        (("sync.fromHost.storageClasses.enabled=true",), {"storageclasses"}),
        (("sync.fromHost.nodes.mode=all", "sync.fromHost.storageClasses.enabled=true"), {"nodes", "storageclasses"}),
    ],
)
def test_cluster_role_only_when_needed(helm: str, sets: tuple[str, ...], resources: set[str] | None) -> None:
    objs = render(helm, *sets)
    name = f"vc-{RELEASE}-{NAMESPACE}"
    cluster_scoped = {k for k in objs if k[0] in CLUSTER_SCOPED_KINDS}
    if resources is None:
        assert cluster_scoped == set()
        return
    assert cluster_scoped == {("ClusterRole", name), ("ClusterRoleBinding", name)}
    for key in cluster_scoped:
        meta = objs[key]["metadata"]
        assert "namespace" not in meta
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert meta["labels"]["vcluster.pytest-vcluster.io/host-namespace"] == NAMESPACE
    rules = objs[("ClusterRole", name)]["rules"]
    granted = {r for rule in rules for r in rule["resources"]}
    assert granted == resources
    for rule in rules:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, "cluster-wide rights must stay read-only"
    binding = objs[("ClusterRoleBinding", name)]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"vc-{RELEASE}", "namespace": NAMESPACE}]


# --------------------------------------------------------------------------- RBAC


def role_grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


@pytest.mark.parametrize(
    ("group", "resource", "verbs"),
    [
        ("", "pods", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("", "services", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("", "endpoints", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("", "configmaps", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("", "secrets", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("", "persistentvolumeclaims", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("networking.k8s.io", "networkpolicies", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("discovery.k8s.io", "endpointslices", {"get", "list", "watch", "create", "update", "patch", "delete"}),
        ("", "events", {"get", "list", "watch"}),
        ("", "pods/log", {"get"}),
        ("", "pods/exec", {"create"}),
        ("", "pods/portforward", {"create"}),
        ("", "pods/attach", {"create"}),
    ],
)
def test_syncer_role_grants(default: Objects, group: str, resource: str, verbs: set[str]) -> None:
    grants = role_grants(default[("Role", f"vc-{RELEASE}")])
    assert verbs <= grants.get((group, resource), set())


def test_syncer_role_is_bounded(default: Objects) -> None:
    grants = role_grants(default[("Role", f"vc-{RELEASE}")])
    for (group, res), verbs in grants.items():
        assert "*" not in verbs and group != "*" and res != "*", f"wildcard in {group}/{res}"
    assert grants[("", "events")] == {"get", "list", "watch"}
    # unused by the syncer on the host (it reads ServiceAccounts only in the virtual cluster, and copies core
    # events only)
    for unused in (("", "serviceaccounts"), ("events.k8s.io", "events")):
        assert unused not in grants, unused


def test_role_binding(default: Objects) -> None:
    rb = default[("RoleBinding", f"vc-{RELEASE}")]
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"vc-{RELEASE}"}
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": f"vc-{RELEASE}", "namespace": NAMESPACE}]


def test_service_accounts(default: Objects) -> None:
    workload = default[("ServiceAccount", f"vc-workload-{RELEASE}")]
    assert workload["automountServiceAccountToken"] is False
    # The workload account has no rights: nothing binds it.
    for (kind, _), obj in default.items():
        if kind.endswith("Binding"):
            assert all(s["name"] != f"vc-workload-{RELEASE}" for s in obj["subjects"])


# --------------------------------------------------------------------------- StatefulSet


def test_statefulset_shape(default: Objects) -> None:
    sts = default[("StatefulSet", RELEASE)]
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["serviceName"] in (RELEASE, f"{RELEASE}-headless")
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == f"vc-{RELEASE}"
    assert pod["automountServiceAccountToken"] is False
    assert [c["name"] for c in pod["containers"]] == ["etcd", "kube-apiserver", "syncer", "kube-controller-manager",
                                                      "coredns"]
    assert not pod.get("initContainers")


@pytest.mark.parametrize(
    ("container", "command"),
    [
        ("etcd", ["/usr/local/bin/etcd"]),
        ("kube-apiserver", ["/usr/local/bin/kube-apiserver"]),
        ("kube-controller-manager", ["/usr/local/bin/kube-controller-manager"]),
        ("syncer", None),  # the image's entrypoint, `python3 -m vcluster_syncer`, without arguments
        ("coredns", ["/coredns"]),
    ],
)
def test_commands(default: Objects, container: str, command: list[str] | None) -> None:
    c = containers(default)[container]
    assert c.get("command") == command
    if command is None:
        assert "args" not in c


def test_syncer_image_tag_defaults_to_the_app_version(helm: str) -> None:
    """An empty syncer.image.tag is the chart's appVersion (the package version: tests/unit/test_release.py)."""
    objs = render(helm, "syncer.image.repository=r.test/syncer", "syncer.image.tag=")
    image = f"r.test/syncer:{chart_meta()['appVersion']}"
    assert containers(objs)["syncer"]["image"] == image
    assert syncer_env(objs)["SYNCER_IMAGE"] == image


def test_no_shell_anywhere(default: Objects) -> None:
    """The images are distroless: no `sh -c`, every setting is an argument."""
    for c in pod_spec(default)["containers"]:
        argv = (c.get("command") or []) + (c.get("args") or [])
        assert not any(Path(a).name in ("sh", "bash", "ash") for a in argv), c["name"]
        assert "-c" not in argv, c["name"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert "exec" not in c.get(probe, {}), f"{c['name']} {probe} uses exec"


def test_etcd_args_default(default: Objects) -> None:
    f = flags(containers(default)["etcd"]["args"])
    assert f["listen-client-urls"] == "http://127.0.0.1:2379"
    assert f["listen-peer-urls"] == "http://127.0.0.1:2380"
    assert f["unsafe-no-fsync"] == "true"
    # The default etcd (3.7) keeps 100 raft entries in memory; --snapshot-count is etcd 3.5's only (per minor below)
    assert f["snapshot-catchup-entries"] == "100"
    assert "snapshot-count" not in f
    volumes = {v["name"]: v for v in pod_spec(default)["volumes"]}
    assert "emptyDir" in volumes["data"]
    assert "volumeClaimTemplates" not in default[("StatefulSet", RELEASE)]["spec"]


@pytest.mark.parametrize(
    ("sets", "storage_class"),
    [
        (("controlPlane.etcd.persistence.enabled=true",), None),  # the host's default class
        (("controlPlane.etcd.persistence.enabled=true", "controlPlane.etcd.persistence.storageClass=local-path"),
         "local-path"),
    ],
)
def test_etcd_persistence(helm: str, sets: tuple[str, ...], storage_class: str | None) -> None:
    objs = render(helm, *sets)
    spec = objs[("StatefulSet", RELEASE)]["spec"]
    (vct,) = spec["volumeClaimTemplates"]
    assert vct["metadata"]["name"] == "data"
    assert vct["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert vct["spec"]["resources"]["requests"]["storage"]
    assert vct["spec"].get("storageClassName") == storage_class
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    assert "data" not in {v["name"] for v in spec["template"]["spec"]["volumes"]}
    assert "unsafe-no-fsync" not in flags(containers(objs)["etcd"]["args"])


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("etcd-servers", "http://127.0.0.1:2379"),
        ("secure-port", "6443"),
        ("authorization-mode", "RBAC"),
        ("endpoint-reconciler-type", "none"),
        ("enable-priority-and-fairness", "false"),
        # front-proxy, as kubeadm sets it (aggregated API servers)
        ("requestheader-allowed-names", "front-proxy-client"),
        ("requestheader-username-headers", "X-Remote-User"),
        ("requestheader-group-headers", "X-Remote-Group"),
        ("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
    ],
)
def test_apiserver_flags(default: Objects, flag: str, value: str) -> None:
    assert flags(containers(default)["kube-apiserver"]["args"])[flag] == value


def test_apiserver_files_are_mounted(default: Objects) -> None:
    c = containers(default)["kube-apiserver"]
    f = flags(c["args"])
    mounted = files_in_container(default, c)
    for flag in (
        "tls-cert-file",
        "tls-private-key-file",
        "token-auth-file",
        "service-account-key-file",
        "service-account-signing-key-file",
        "client-ca-file",
        "requestheader-client-ca-file",
        "proxy-client-cert-file",
        "proxy-client-key-file",
    ):
        assert f[flag] in mounted, f"--{flag}={f[flag]} is not a mounted file"
    assert mounted[f["requestheader-client-ca-file"]] == "front-proxy-ca.crt"
    assert mounted[f["proxy-client-cert-file"]] == "front-proxy-client.crt"
    assert mounted[f["proxy-client-key-file"]] == "front-proxy-client.key"


def files_in_container(objs: Objects, c: dict[str, Any]) -> dict[str, str]:
    """Mounted path -> Secret key, for Secret volumes with items."""
    volumes = {v["name"]: v for v in pod_spec(objs)["volumes"]}
    out = {}
    for m in c.get("volumeMounts", []):
        secret = volumes[m["name"]].get("secret")
        if secret:
            for item in secret["items"]:
                out[f"{m['mountPath']}/{item['path']}"] = item["key"]
    return out


def test_controller_manager(default: Objects) -> None:
    c = containers(default)["kube-controller-manager"]
    f = flags(c["args"])
    # the default, 1.37, has no cloud-provider controllers to leave out (PER_MINOR_FLAGS below)
    assert f["controllers"] == (
        "*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,"
        "-ttl,-bootstrapsigner,-tokencleaner"
    )
    assert "use-service-account-credentials" not in f
    # no client-side throttling on the way to default/default (readiness)
    assert int(f["kube-api-qps"]) >= 100 and int(f["kube-api-burst"]) >= 100
    mounted = files_in_container(default, c)
    assert mounted[f["service-account-private-key-file"]] == "sa.key"
    assert mounted[f["root-ca-file"]] == "ca.crt"
    assert mounted[f["kubeconfig"]] == "controller-manager.conf"
    kubeconfig = yaml.safe_load(secret_data(default[("Secret", f"{RELEASE}-certs")])["controller-manager.conf"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"


def corefile(objs: Objects) -> str:
    return str(objs[("ConfigMap", f"{RELEASE}-coredns")]["data"]["Corefile"])


def test_coredns_container(default: Objects) -> None:
    """CoreDNS runs in pod R-0, reads the virtual API server with the in-pod kubeconfig, answers on 1053."""
    c = containers(default)["coredns"]
    assert c["args"] == ["-conf", "/etc/coredns/Corefile"]
    assert {(p["containerPort"], p["protocol"]) for p in c["ports"]} == {(1053, "UDP"), (1053, "TCP")}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8181}
    assert c["readinessProbe"]["periodSeconds"] == 1
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}  # 1053 needs no NET_BIND_SERVICE
    [mount] = c["volumeMounts"]
    assert mount["mountPath"] == "/etc/coredns" and mount["readOnly"] is True
    volume = {v["name"]: v for v in pod_spec(default)["volumes"]}[mount["name"]]
    sources = {kind: src for src in volume["projected"]["sources"] for kind in ("secret", "configMap") if kind in src}
    assert sources["configMap"]["configMap"] == {"name": f"{RELEASE}-coredns",
                                                 "items": [{"key": "Corefile", "path": "Corefile"}]}
    assert sources["secret"]["secret"] == {"name": f"{RELEASE}-certs",
                                           "items": [{"key": "controller-manager.conf", "path": "kubeconfig"}]}


@pytest.mark.parametrize("domain", ["cluster.local", "example.test"])
def test_corefile(helm: str, domain: str) -> None:
    text = corefile(render(helm, f"clusterDomain={domain}"))
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == ".:1053 {"
    assert f"kubernetes {domain} in-addr.arpa ip6.arpa {{" in lines
    for needed in ("kubeconfig /etc/coredns/kubeconfig", "pods insecure", "forward . /etc/resolv.conf",
                   "cache 30", "errors", "health :8080", "ready :8181"):
        assert needed in lines
    assert "loop" not in lines
    assert text.count("{") == text.count("}")


def test_coredns_off(helm: str) -> None:
    off = render(helm, "coredns.enabled=false")
    assert "coredns" not in containers(off)
    assert ("ConfigMap", f"{RELEASE}-coredns") not in off
    assert "coredns-config" not in {v["name"] for v in pod_spec(off)["volumes"]}


def test_only_syncer_has_host_credentials(default: Objects) -> None:
    for c in pod_spec(default)["containers"]:
        paths = {m["mountPath"] for m in c.get("volumeMounts", [])}
        has_token = "/var/run/secrets/kubernetes.io/serviceaccount" in paths
        assert has_token == (c["name"] == "syncer"), c["name"]


def test_only_apiserver_and_controller_manager_see_private_keys(default: Objects) -> None:
    for c in pod_spec(default)["containers"]:
        keys = set(files_in_container(default, c).values())
        if c["name"] == "syncer":
            assert keys == {"ca.crt", "token", "kubelet.crt", "kubelet.key"}  # the last: its fake kubelet's own
        if c["name"] == "etcd":
            assert keys == set()


EXPECTED_ENV = {
    "VCLUSTER_NAME",
    "HOST_NAMESPACE",
    "NODE_NAME",
    "HOST_IP",
    "VIRTUAL_SERVER",
    "VIRTUAL_TOKEN_FILE",
    "VIRTUAL_CA_FILE",
    "SERVICE_NAME",
    "WORKLOAD_SERVICE_ACCOUNT",
    "KUBELET_CERT_FILE",
    "KUBELET_KEY_FILE",
    "SYNC_ALL_CONFIGMAPS",
    "SYNC_ALL_SECRETS",
    "SYNC_NETWORK_POLICIES",
    "SYNC_NODES_MODE",
    "SYNC_STORAGE_CLASSES",
    "SYNC_EVENTS",
    "LOG_LEVEL",
    "CLUSTER_DOMAIN",
    "COREDNS_ENABLED",
    "SYNCER_IMAGE",
}


def syncer_env(objs: Objects) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in containers(objs)["syncer"]["env"]}


def test_syncer_env_default(default: Objects) -> None:
    env = syncer_env(default)
    assert set(env) == EXPECTED_ENV
    assert env["VCLUSTER_NAME"] == RELEASE
    assert env["HOST_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["HOST_IP"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert env["VIRTUAL_SERVER"] == "https://127.0.0.1:6443"
    assert env["SYNCER_IMAGE"] == containers(default)["syncer"]["image"]  # the helper init containers' image
    assert env["SERVICE_NAME"] == RELEASE
    assert env["WORKLOAD_SERVICE_ACCOUNT"] == f"vc-workload-{RELEASE}"
    mounted = files_in_container(default, containers(default)["syncer"])
    assert mounted[env["VIRTUAL_TOKEN_FILE"]] == "token"
    assert mounted[env["VIRTUAL_CA_FILE"]] == "ca.crt"
    assert mounted[env["KUBELET_CERT_FILE"]] == "kubelet.crt"
    assert mounted[env["KUBELET_KEY_FILE"]] == "kubelet.key"


def test_probes(default: Objects) -> None:
    cs = containers(default)
    syncer = cs["syncer"]
    assert syncer["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8081}
    assert syncer["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert syncer["readinessProbe"]["periodSeconds"] <= 2
    api = cs["kube-apiserver"]
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 6443, "scheme": "HTTPS"}
    assert api["startupProbe"]["periodSeconds"] <= 2
    assert api["readinessProbe"]["periodSeconds"] <= 2


@pytest.mark.parametrize("container", ["etcd", "kube-apiserver", "kube-controller-manager", "coredns"])
def test_go_components_collect_garbage_early(default: Objects, container: str) -> None:
    """By default each Go component collects before its heap doubles, with no memory limit (a limit near the
    idle heap made each of them collect without end: docs/chart.md)."""
    env = {e["name"]: e["value"] for e in containers(default)[container]["env"]}
    assert 0 < int(env["GOGC"]) < 100
    assert "GOMEMLIMIT" not in env


def test_apiserver_has_no_watch_cache(default: Objects) -> None:
    assert "--watch-cache=false" in containers(default)["kube-apiserver"]["args"]


def test_requests_of_a_cluster_let_20_fit_on_2_cores(default: Objects) -> None:
    """Requests are what an idle cluster uses (hack/bench measures it): 20 clusters, CoreDNS included,
    must fit in 2 cores and leave room for the host's own pods."""
    def millicores(q: str) -> float:
        return float(q[:-1]) if q.endswith("m") else float(q) * 1000

    cpu = sum(millicores(c["resources"]["requests"]["cpu"]) for c in containers(default).values())
    assert 20 * cpu <= 1000


@pytest.mark.parametrize("container", ["etcd", "kube-apiserver", "kube-controller-manager", "syncer", "coredns"])
def test_requests_and_no_limits(default: Objects, container: str) -> None:
    """By default every container requests CPU and memory (what it uses idle) and has no limit (throttling
    slows start-up)."""
    res = containers(default)[container]["resources"]
    assert set(res["requests"]) == {"cpu", "memory"}
    assert "limits" not in res


def test_pod_labels_cannot_break_selector(helm: str) -> None:
    objs = render(helm, "podLabels.app\\.kubernetes\\.io/instance=other")
    spec = objs[("StatefulSet", RELEASE)]["spec"]
    assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


# --------------------------------------------------------------------------- Service and PKI


def test_service(default: Objects) -> None:
    svc = default[("Service", RELEASE)]
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "https", "port": 443, "targetPort": 6443, "protocol": "TCP"}]
    # synced pods keep reaching the API server while pod R-0 is briefly not Ready (e.g. a syncer restart)
    assert spec["publishNotReadyAddresses"] is True
    pod_labels = default[("StatefulSet", RELEASE)]["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize("cidr", ["10.96.0.0/12", "10.43.0.0/16", "192.168.7.0/24", "172.16.5.0/28", "172.16.5.4/30"])
def test_service_ip_in_range(helm: str, cidr: str) -> None:
    net = ipaddress.ip_network(cidr)
    for attempt in range(3):
        objs = render(helm, f"serviceCIDR={cidr}", f"podAnnotations.attempt=a{attempt}")
        ip = ipaddress.ip_address(objs[("Service", RELEASE)]["spec"]["clusterIP"])
        assert ip in net and ip not in (net.network_address, net.broadcast_address)
        if net.num_addresses >= 4096:
            # outside the band Kubernetes keeps for static addresses
            assert int(ip) - int(net.network_address) > min(max(16, net.num_addresses // 16), 256)
        assert flags(containers(objs)["kube-apiserver"]["args"])["service-cluster-ip-range"] == cidr


def test_explicit_service_ip_is_in_the_certificate(helm: str) -> None:
    objs = render(helm, "service.clusterIP=10.96.55.66")
    _, ips = san_of(secret_data(objs[("Secret", f"{RELEASE}-certs")])["apiserver.crt"])
    assert "10.96.55.66" in ips


def test_serving_certificate(default: Objects) -> None:
    data = secret_data(default[("Secret", f"{RELEASE}-certs")])
    dns, ips = san_of(data["apiserver.crt"])
    expected_dns = {
        RELEASE,
        f"{RELEASE}.{NAMESPACE}",
        f"{RELEASE}.{NAMESPACE}.svc",
        f"{RELEASE}.{NAMESPACE}.svc.cluster.local",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
    assert expected_dns <= dns
    assert {"127.0.0.1", default[("Service", RELEASE)]["spec"]["clusterIP"]} <= ips
    verify_issued_by(data["apiserver.crt"], data["ca.crt"])


def test_pki_secret_keys(default: Objects) -> None:
    data = secret_data(default[("Secret", f"{RELEASE}-certs")])
    assert {"ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "sa.key", "token", "tokens.csv"} <= set(data)
    for key in ("ca.key", "apiserver.key", "sa.key"):
        # ECDSA P-256: made in milliseconds at install time (an RSA-4096 sa.key and RSA-2048 CA and
        # serving keys took 0.7-4 s of `helm install` on a busy 2-core host)
        assert b"BEGIN EC PRIVATE KEY" in data[key], key
    token = data["token"].decode()
    assert len(token) >= 32 and token.isalnum()
    # token,user,uid,"groups": the admin is in system:masters
    line = data["tokens.csv"].decode().strip()
    assert line.startswith(f"{token},") and line.endswith('"system:masters"')


def test_front_proxy_certificates(default: Objects) -> None:
    """The aggregator's client certificate (kubeadm's front-proxy): CN front-proxy-client, for client
    authentication, signed by a CA of its own (not the cluster CA, which authenticates users); the CA's
    key is not kept."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    data = secret_data(default[("Secret", f"{RELEASE}-certs")])
    assert {"front-proxy-ca.crt", "front-proxy-client.crt", "front-proxy-client.key"} <= set(data)
    assert not {k for k in data if k.startswith("front-proxy-ca.") and k != "front-proxy-ca.crt"}
    assert b"BEGIN EC PRIVATE KEY" in data["front-proxy-client.key"]
    cert = x509.load_pem_x509_certificate(data["front-proxy-client.crt"])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "front-proxy-client"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    verify_issued_by(data["front-proxy-client.crt"], data["front-proxy-ca.crt"])
    ca = x509.load_pem_x509_certificate(data["front-proxy-ca.crt"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert data["front-proxy-ca.crt"] != data["ca.crt"]
    with pytest.raises(Exception):  # noqa: B017 - any verification failure
        verify_issued_by(data["front-proxy-client.crt"], data["ca.crt"])
    key = serialization.load_pem_private_key(data["front-proxy-client.key"], password=None)
    assert key.public_key() == cert.public_key()


def test_aggregator_routing_to_endpoints(default: Objects) -> None:
    """APIServices and webhooks are dialled at an endpoint (host pod IP), not at a ClusterIP that the host's
    kube-proxy may not route yet (a connection opened then bypasses NAT and is kept alive)."""
    assert flags(containers(default)["kube-apiserver"]["args"])["enable-aggregator-routing"] == "true"


def test_kubelet_certificate(default: Objects) -> None:
    """The syncer's fake kubelet gets its serving certificate from the chart (no crypto library at start)."""
    x509 = pytest.importorskip("cryptography.x509")
    data = secret_data(default[("Secret", f"{RELEASE}-certs")])
    assert b"BEGIN EC PRIVATE KEY" in data["kubelet.key"]
    cert = x509.load_pem_x509_certificate(data["kubelet.crt"])
    _, ips = san_of(data["kubelet.crt"])
    assert "127.0.0.1" in ips
    assert cert.subject == cert.issuer  # self-signed: the API server does not verify kubelets here


def test_kubeconfig_secret(default: Objects) -> None:
    data = secret_data(default[("Secret", f"vc-{RELEASE}")])
    certs = secret_data(default[("Secret", f"{RELEASE}-certs")])
    assert set(data) == {"config", "certificate-authority", "token"}
    assert data["certificate-authority"] == certs["ca.crt"]
    assert data["token"] == certs["token"]
    config = yaml.safe_load(data["config"])
    assert config["kind"] == "Config"
    ctx = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == ctx["cluster"])["cluster"]
    user = next(u for u in config["users"] if u["name"] == ctx["user"])["user"]
    assert cluster["server"] == "https://localhost:8443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == certs["ca.crt"]
    assert user["token"] == certs["token"].decode()


def test_fresh_pki_per_render(helm: str) -> None:
    a = secret_data(render(helm, "podAnnotations.x=a")[("Secret", f"{RELEASE}-certs")])
    b = secret_data(render(helm, "podAnnotations.x=b")[("Secret", f"{RELEASE}-certs")])
    assert a["ca.crt"] != b["ca.crt"] and a["token"] != b["token"]


def test_one_pki_per_render(default: Objects) -> None:
    """The Service IP, certificate and both Secrets come from the same random draw."""
    certs = secret_data(default[("Secret", f"{RELEASE}-certs")])
    kubeconfig = secret_data(default[("Secret", f"vc-{RELEASE}")])
    assert kubeconfig["token"] == certs["token"]
    _, ips = san_of(certs["apiserver.crt"])
    assert default[("Service", RELEASE)]["spec"]["clusterIP"] in ips


# --------------------------------------------------------------------------- podSecurity

ADMISSION_FLAG = "admission-control-config-file"


def test_pod_security_privileged_adds_nothing(helm: str, default: Objects) -> None:
    """The default (and an explicit privileged): no AdmissionConfiguration, no flag, no volume, no annotation;
    the PodSecurity admission plugin (on by default) then checks nothing."""
    for objs in (default, render(helm, "podSecurity=privileged")):
        assert set(objs) == EXPECTED_DEFAULT
        assert ADMISSION_FLAG not in flags(containers(objs)["kube-apiserver"]["args"])
        assert "admission-config" not in {v["name"] for v in pod_spec(objs)["volumes"]}
        annotations = objs[("StatefulSet", RELEASE)]["spec"]["template"]["metadata"]["annotations"]
        assert not any(k.startswith("checksum/") for k in annotations)


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_pod_security_level_reaches_kube_apiserver(helm: str, level: str) -> None:
    objs = render(helm, f"podSecurity={level}")
    assert set(objs) == EXPECTED_DEFAULT | {("ConfigMap", f"{RELEASE}-admission")}
    config_map = objs[("ConfigMap", f"{RELEASE}-admission")]
    assert config_map["metadata"]["namespace"] == NAMESPACE
    assert config_map["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    apiserver = containers(objs)["kube-apiserver"]
    path = flags(apiserver["args"])[ADMISSION_FLAG]
    (mount,) = [m for m in apiserver["volumeMounts"] if m["name"] == "admission-config"]
    assert mount["readOnly"] is True and path.startswith(mount["mountPath"] + "/")
    volume = {v["name"]: v for v in pod_spec(objs)["volumes"]}["admission-config"]["configMap"]
    assert volume["name"] == f"{RELEASE}-admission"
    (item,) = volume["items"]
    assert f"{mount['mountPath']}/{item['path']}" == path
    config = yaml.safe_load(config_map["data"][item["key"]])
    assert config["apiVersion"] == "apiserver.config.k8s.io/v1"
    (plugin,) = config["plugins"]
    assert plugin["configuration"]["apiVersion"] == "pod-security.admission.config.k8s.io/v1"
    assert plugin["configuration"]["defaults"] == {
        "enforce": level, "enforce-version": "latest", "warn": level, "warn-version": "latest",
        "audit": level, "audit-version": "latest",
    }
    # Only kube-apiserver reads it; the other containers are unchanged.
    for name, c in containers(objs).items():
        if name != "kube-apiserver":
            assert c == containers(render(helm))[name]


def test_pod_security_change_restarts_the_control_plane(helm: str) -> None:
    """kube-apiserver reads the file once: a different level is a different pod template (helm upgrade)."""
    def template_annotation(level: str) -> str:
        objs = render(helm, f"podSecurity={level}")
        return str(objs[("StatefulSet", RELEASE)]["spec"]["template"]["metadata"]["annotations"][
            "checksum/admission-config"])

    assert template_annotation("baseline") != template_annotation("restricted")


def test_control_plane_pod_passes_restricted(default: Objects) -> None:
    """Pod R-0 meets the "restricted" Pod Security Standard (the rules a host namespace labelled
    enforce=restricted applies; proven on a real host by tests/e2e/test_pod_security.py)."""
    pod = pod_spec(default)
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= allowed_volumes, volume
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and not sc.get("privileged"), c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), c["name"]
        assert sc.get("runAsUser", pod["securityContext"].get("runAsUser")) != 0, c["name"]
        assert not any(p.get("hostPort") for p in c.get("ports", [])), c["name"]


# --------------------------------------------------------------------------- values and schema


def test_syncer_env_and_arguments_reach_the_syncer(helm: str) -> None:
    """The rendered syncer container's environment and arguments are accepted by the syncer's own parsers
    (config.load_config, __main__.parse_args): every chart switch is one the syncer reads."""
    import sys

    sys.path.insert(0, str(CHART.parent / "syncer"))
    from vcluster_syncer import __main__ as entry
    from vcluster_syncer.config import load_config

    objs = render(helm, "syncer.logLevel=DEBUG", "sync.fromHost.events.enabled=false")
    syncer = containers(objs)["syncer"]
    env = {e["name"]: e.get("value", "") for e in syncer["env"]}
    env["HOST_NAMESPACE"] = "n"  # downward API
    config = load_config(env, check_files=False)
    assert config.log_level == "DEBUG" and config.sync_events is False
    assert entry.parse_args(syncer.get("args", [])).log_level is None  # LOG_LEVEL decides


def test_syncer_env_is_appended_to_the_charts_own(helm: str, default: Objects) -> None:
    own = containers(default)["syncer"]["env"]
    objs = render(helm, "syncer.env[0].name=HTTPS_PROXY", "syncer.env[0].value=http://proxy:3128")
    env = containers(objs)["syncer"]["env"]
    assert env == [*own, {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]


def test_release_name_too_long(helm: str) -> None:
    proc = helm_template(helm, release="r" * 53)
    assert proc.returncode != 0
    assert "at most 52" in proc.stderr or "53" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- every value: documented, checked, wired

DOCS = CHART.parent / "docs" / "chart.md"
# Schema definitions of Kubernetes types: a value of that type is set as a whole, not a group of values.
KUBERNETES_TYPES = {"#/definitions/resources"}


def chart_values() -> set[str]:
    """Dotted paths of the chart's values, from values.schema.json: an object with a closed set of properties
    is a group of values, anything else one value (``global`` is Helm's)."""
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: dict[str, Any], path: str) -> set[str]:
        if node.get("$ref") in KUBERNETES_TYPES:
            return {path}
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rpartition("/")[2]]
        if node.get("additionalProperties") is False and "properties" in node:
            return {v for key, sub in node["properties"].items() for v in walk(sub, f"{path}.{key}".lstrip("."))}
        return {path}

    return walk(schema, "") - {"global"}


def values_yaml_keys() -> dict[str, list[str]]:
    """Dotted path of every key of values.yaml -> the comment lines directly above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    keys: dict[str, list[str]] = {}
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        m = re.match(r"^( *)([A-Za-z0-9_]+):", line)
        if not m:
            continue
        while stack and stack[-1][0] >= len(m.group(1)):
            stack.pop()
        stack.append((len(m.group(1)), m.group(2)))
        j = i
        while j and lines[j - 1].lstrip().startswith("#"):
            j -= 1
        keys[".".join(k for _, k in stack)] = lines[j:i]
    return keys


def test_chart_values_are_found() -> None:
    """The walk above finds values (guards the tests below against an empty set)."""
    found = chart_values()
    assert {"serviceCIDR", "controlPlane.etcd.image.tag", "controlPlane.etcd.resources", "syncer.env",
            "sync.fromHost.nodes.mode", "podSecurity"} <= found
    assert not {v for v in found if v.startswith("controlPlane.etcd.resources.")}


def test_every_value_has_a_default_and_a_one_line_comment() -> None:
    keys = values_yaml_keys()
    for value in sorted(chart_values()):
        assert value in keys, f"values.yaml gives {value} no default"
        assert len(keys[value]) == 1, f"values.yaml: {value} needs one comment line, has {keys[value]}"
    text = (CHART / "values.yaml").read_text().splitlines()
    comments = [i for i, line in enumerate(text) if line.lstrip().startswith("#")]
    assert not [text[i] for i in comments if i + 1 in comments], "a comment of more than one line (docs/chart.md)"


def test_every_value_has_a_section_in_the_docs() -> None:
    sections = re.findall(r"(?m)^### `([^`]+)`$", DOCS.read_text())
    assert sorted(sections) == sorted(chart_values())
    assert len(sections) == len(set(sections))


# A wrong setting of every value, which values.schema.json refuses (helm names the value's path).
BAD_VALUES: dict[str, str] = {
    "serviceCIDR": "serviceCIDR=10.96.0.0/7",
    "clusterDomain": "clusterDomain=Cluster_Local",
    "service.clusterIP": "service.clusterIP=10.96.0",
    "controlPlane.etcd.persistence.enabled": "controlPlane.etcd.persistence.enabled=yes",
    "controlPlane.etcd.persistence.size": "controlPlane.etcd.persistence.size=big",
    "controlPlane.etcd.persistence.storageClass": "controlPlane.etcd.persistence.storageClass=true",
    "syncer.logLevel": "syncer.logLevel=loud",
    "syncer.env": "syncer.env[0].value=nameless",
    "sync.toHost.configMaps.all": "sync.toHost.configMaps.all=yes",
    "sync.toHost.secrets.all": "sync.toHost.secrets.all=1",
    "sync.toHost.networkPolicies.enabled": "sync.toHost.networkPolicies.enabled=on",
    "sync.fromHost.nodes.mode": "sync.fromHost.nodes.mode=some",
    "sync.fromHost.storageClasses.enabled": "sync.fromHost.storageClasses.enabled=yes",
    "sync.fromHost.events.enabled": "sync.fromHost.events.enabled=no",
    "coredns.enabled": "coredns.enabled=maybe",
    "podAnnotations": "podAnnotations.note=1",
    "podLabels": "podLabels.team=1",
    "nodeSelector": "nodeSelector.disk=1",
    "tolerations": "tolerations=Exists",
    "affinity": "affinity=anywhere",
    "podSecurity": "podSecurity=Restricted",
    "podSecurityContext": "podSecurityContext=root",
    "securityContext": "securityContext=none",
}
IMAGES = ("controlPlane.etcd", "controlPlane.apiServer", "controlPlane.controllerManager", "syncer", "coredns")
for _c in IMAGES:
    BAD_VALUES |= {
        f"{_c}.image.repository": f"{_c}.image.repository=",
        f"{_c}.image.tag": f"{_c}.image.tag=1",
        f"{_c}.image.pullPolicy": f"{_c}.image.pullPolicy=Sometimes",
        f"{_c}.resources": f"{_c}.resources.requests.cpu=lots",
    }
for _c in IMAGES[:3]:
    BAD_VALUES |= {f"{_c}.extraArgs": f"{_c}.extraArgs=--v=4", f"{_c}.env": f"{_c}.env[0].value=nameless"}
BAD_VALUES["coredns.env"] = "coredns.env[0].value=nameless"


def test_every_value_has_a_wrong_setting() -> None:
    assert set(BAD_VALUES) == chart_values()


@pytest.mark.parametrize(("value", "setting"), sorted(BAD_VALUES.items()), ids=sorted(BAD_VALUES))
def test_schema_refuses_a_wrong_value(helm: str, value: str, setting: str) -> None:
    proc = helm_template(helm, setting)
    assert proc.returncode != 0, f"{setting} was accepted"
    assert "/" + value.replace(".", "/") in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("setting", "must_mention"),
    [
        ("controlPlane.etcd.persistance.enabled=true", "persistance"),
        ("syncer.image.tga=x", "tga"),
        ("sync.toHost.configmaps.all=true", "configmaps"),
        ("colderDomain=x", "colderDomain"),
        ("syncer.extraArgs[0]=--log-level=debug", "extraArgs"),  # removed: it only repeated syncer.logLevel
        ("serviceCIDR=banana/12", "/serviceCIDR"),
    ],
)
def test_schema_refuses_an_unknown_key(helm: str, setting: str, must_mention: str) -> None:
    proc = helm_template(helm, setting)
    assert proc.returncode != 0, f"{setting} was accepted"
    assert must_mention in proc.stderr, proc.stderr


@dataclass(frozen=True)
class Effect:
    """Setting ``value`` (with ``sets``) makes ``read(rendered objects)`` equal ``expected``, which the default
    render does not give."""

    value: str
    sets: tuple[str, ...]
    read: Callable[[Objects], Any]
    expected: Any


def _container(name: str, field: str) -> Callable[[Objects], Any]:
    return lambda objs: containers(objs)[name].get(field)


def _image_part(name: str, part: int) -> Callable[[Objects], str]:
    """Repository (0) or tag (2) of a container's image."""
    return lambda objs: str(containers(objs)[name]["image"]).rpartition(":")[part]


def _limits(name: str) -> Callable[[Objects], Any]:
    return lambda objs: containers(objs)[name]["resources"].get("limits")


def _last_arg(name: str) -> Callable[[Objects], Any]:
    return lambda objs: containers(objs)[name]["args"][-1]


def _template_meta(field: str, key: str) -> Callable[[Objects], Any]:
    return lambda objs: objs[("StatefulSet", RELEASE)]["spec"]["template"]["metadata"][field].get(key)


def _claim(objs: Objects) -> dict[str, Any]:
    """The spec of etcd's volumeClaimTemplate ({} without one)."""
    claims = objs[("StatefulSet", RELEASE)]["spec"].get("volumeClaimTemplates") or [{"spec": {}}]
    return dict(claims[0]["spec"])


def _cluster_scoped(objs: Objects) -> list[str]:
    return sorted(kind for kind, _ in objs if kind in CLUSTER_SCOPED_KINDS)


def _env(name: str) -> Callable[[Objects], Any]:
    return lambda objs: syncer_env(objs)[name]


CONTAINERS = {"controlPlane.etcd": "etcd", "controlPlane.apiServer": "kube-apiserver",
              "controlPlane.controllerManager": "kube-controller-manager", "syncer": "syncer", "coredns": "coredns"}
PERSIST = "controlPlane.etcd.persistence.enabled=true"
NODE_AFFINITY = "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"

VALUE_EFFECTS: list[Effect] = [
    Effect("serviceCIDR", ("serviceCIDR=10.43.0.0/16",),
           lambda o: flags(containers(o)["kube-apiserver"]["args"])["service-cluster-ip-range"], "10.43.0.0/16"),
    Effect("clusterDomain", ("clusterDomain=example.test",),
           lambda o: (flags(containers(o)["kube-apiserver"]["args"])["service-account-issuer"],
                      flags(containers(o)["kube-apiserver"]["args"])["service-account-jwks-uri"],
                      syncer_env(o)["CLUSTER_DOMAIN"],
                      "kubernetes example.test in-addr.arpa ip6.arpa {" in corefile(o)),
           ("https://kubernetes.default.svc.example.test", "https://kubernetes.default.svc.example.test/openid/v1/jwks",
            "example.test", True)),
    Effect("service.clusterIP", ("service.clusterIP=10.96.55.66",),
           lambda o: o[("Service", RELEASE)]["spec"]["clusterIP"], "10.96.55.66"),
    Effect("controlPlane.etcd.persistence.enabled", (PERSIST,),
           lambda o: (bool(_claim(o)), "unsafe-no-fsync" in flags(containers(o)["etcd"]["args"]),
                      "data" in {v["name"] for v in pod_spec(o)["volumes"]}),
           (True, False, False)),
    Effect("controlPlane.etcd.persistence.size", (PERSIST, "controlPlane.etcd.persistence.size=3Gi"),
           lambda o: _claim(o).get("resources", {}).get("requests", {}).get("storage"), "3Gi"),
    Effect("controlPlane.etcd.persistence.storageClass", (PERSIST, "controlPlane.etcd.persistence.storageClass=fast"),
           lambda o: _claim(o).get("storageClassName"), "fast"),
    Effect("syncer.logLevel", ("syncer.logLevel=debug",), _env("LOG_LEVEL"), "debug"),
    Effect("syncer.env", ("syncer.env[0].name=HTTPS_PROXY", "syncer.env[0].value=http://proxy:3128"),
           lambda o: containers(o)["syncer"]["env"][-1], {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}),
    Effect("sync.toHost.configMaps.all", ("sync.toHost.configMaps.all=true",), _env("SYNC_ALL_CONFIGMAPS"), "true"),
    Effect("sync.toHost.secrets.all", ("sync.toHost.secrets.all=true",), _env("SYNC_ALL_SECRETS"), "true"),
    Effect("sync.toHost.networkPolicies.enabled", ("sync.toHost.networkPolicies.enabled=true",),
           _env("SYNC_NETWORK_POLICIES"), "true"),
    Effect("sync.fromHost.nodes.mode", ("sync.fromHost.nodes.mode=all",),
           lambda o: (syncer_env(o)["SYNC_NODES_MODE"], _cluster_scoped(o)),
           ("all", ["ClusterRole", "ClusterRoleBinding"])),
    Effect("sync.fromHost.storageClasses.enabled", ("sync.fromHost.storageClasses.enabled=true",),
           lambda o: (syncer_env(o)["SYNC_STORAGE_CLASSES"], _cluster_scoped(o)),
           ("true", ["ClusterRole", "ClusterRoleBinding"])),
    Effect("sync.fromHost.events.enabled", ("sync.fromHost.events.enabled=false",), _env("SYNC_EVENTS"), "false"),
    Effect("coredns.enabled", ("coredns.enabled=false",),
           lambda o: ("coredns" in containers(o), ("ConfigMap", f"{RELEASE}-coredns") in o,
                      syncer_env(o)["COREDNS_ENABLED"]),
           (False, False, "false")),
    Effect("podAnnotations", ("podAnnotations.note=hello",), _template_meta("annotations", "note"), "hello"),
    Effect("podLabels", ("podLabels.team=qa",), _template_meta("labels", "team"), "qa"),
    Effect("nodeSelector", ("nodeSelector.disk=ssd",), lambda o: pod_spec(o).get("nodeSelector"), {"disk": "ssd"}),
    Effect("tolerations", ("tolerations[0].operator=Exists",), lambda o: pod_spec(o).get("tolerations"),
           [{"operator": "Exists"}]),
    Effect("affinity", (f"{NODE_AFFINITY}.matchExpressions[0].key=disk",
                        f"{NODE_AFFINITY}.matchExpressions[0].operator=Exists"),
           lambda o: pod_spec(o).get("affinity"),
           {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
               "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]}}}),
    Effect("podSecurity", ("podSecurity=restricted",),
           lambda o: (flags(containers(o)["kube-apiserver"]["args"]).get("admission-control-config-file"),
                      ("ConfigMap", f"{RELEASE}-admission") in o),
           ("/etc/vcluster/admission/admission-config.yaml", True)),
    Effect("podSecurityContext", ("podSecurityContext.runAsUser=1000",),
           lambda o: pod_spec(o)["securityContext"]["runAsUser"], 1000),
    Effect("securityContext", ("securityContext.readOnlyRootFilesystem=false",),
           lambda o: {c["securityContext"]["readOnlyRootFilesystem"] for c in containers(o).values()}, {False}),
]
for _value, _name in CONTAINERS.items():
    VALUE_EFFECTS += [
        Effect(f"{_value}.image.repository", (f"{_value}.image.repository=r.test/{_name}",),
               _image_part(_name, 0), f"r.test/{_name}"),
        Effect(f"{_value}.image.tag", (f"{_value}.image.tag=t9",),
               _image_part(_name, 2), "t9"),
        Effect(f"{_value}.image.pullPolicy", (f"{_value}.image.pullPolicy=Never",),
               _container(_name, "imagePullPolicy"), "Never"),
        Effect(f"{_value}.resources", (f"{_value}.resources.limits.memory=1Gi",),
               _limits(_name), {"memory": "1Gi"}),
    ]
for _value, _name, _flag in (("controlPlane.etcd", "etcd", "--quota-backend-bytes=1073741824"),
                             ("controlPlane.apiServer", "kube-apiserver", "--v=4"),
                             ("controlPlane.controllerManager", "kube-controller-manager", "--v=4")):
    VALUE_EFFECTS.append(Effect(f"{_value}.extraArgs", (f"{_value}.extraArgs[0]={_flag}",),
                                _last_arg(_name), _flag))
for _value, _name in list(CONTAINERS.items())[:3] + [("coredns", "coredns")]:
    VALUE_EFFECTS.append(Effect(f"{_value}.env", (f"{_value}.env[0].name=GOMEMLIMIT", f"{_value}.env[0].value=300MiB"),
                                _container(_name, "env"), [{"name": "GOMEMLIMIT", "value": "300MiB"}]))


def test_every_value_changes_the_manifest() -> None:
    """Every value is wired: VALUE_EFFECTS has an effect for each (and for nothing else)."""
    values = [e.value for e in VALUE_EFFECTS]
    assert len(values) == len(set(values))
    assert set(values) == chart_values()


@pytest.mark.parametrize("effect", VALUE_EFFECTS, ids=[e.value for e in VALUE_EFFECTS])
def test_a_value_set_changes_the_manifest(helm: str, default: Objects, effect: Effect) -> None:
    assert effect.read(default) != effect.expected, "the default already gives it"
    assert effect.read(render(helm, *effect.sets)) == effect.expected


# --------------------------------------------------------------------------- Kubernetes versions

VERSIONS_FILE = CHART / "kubernetes-versions.yaml"
VERSION_TABLE = yaml.safe_load(VERSIONS_FILE.read_text())
NODE_AND_VOLUME_CONTROLLERS = ("*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,"
                               "-persistentvolume-expander,-ttl,-bootstrapsigner,-tokencleaner")
# kube-controller-manager 1.37 has no cloud-provider controllers: it refuses their names in --controllers.
CLOUD_CONTROLLERS = ",-cloud-node-lifecycle,-service-lb-controller,-route"
# What differs between minors, per minor of the table (docs/kubernetes-versions.md): etcd's raft-log flags
# (3.5: --snapshot-count, which 3.6.5/3.6.6 warn is deprecated, and the catch-up entries' experimental name) and
# kube-controller-manager's --controllers.
ETCD35 = {"snapshot-count": "1000", "experimental-snapshot-catchup-entries": "100", "snapshot-catchup-entries": None}
ETCD36 = {"snapshot-count": None, "experimental-snapshot-catchup-entries": None, "snapshot-catchup-entries": "100"}
PER_MINOR_FLAGS = {
    "1.33": {**ETCD35, "controllers": NODE_AND_VOLUME_CONTROLLERS + CLOUD_CONTROLLERS},
    "1.34": {**ETCD36, "controllers": NODE_AND_VOLUME_CONTROLLERS + CLOUD_CONTROLLERS},
    "1.35": {**ETCD36, "controllers": NODE_AND_VOLUME_CONTROLLERS + CLOUD_CONTROLLERS},
    "1.36": {**ETCD36, "controllers": NODE_AND_VOLUME_CONTROLLERS + CLOUD_CONTROLLERS},
    "1.37": {**ETCD36, "controllers": NODE_AND_VOLUME_CONTROLLERS},
}


def version_sets(minor: str) -> tuple[str, ...]:
    entry = VERSION_TABLE["versions"][minor]
    return (f"controlPlane.apiServer.image.tag={entry['kubernetes']}",
            f"controlPlane.controllerManager.image.tag={entry['kubernetes']}",
            f"controlPlane.etcd.image.tag={entry['etcd']}")


def per_minor_flags(objs: Objects) -> dict[str, str | None]:
    c = containers(objs)
    etcd = flags(c["etcd"]["args"])
    return {**{name: etcd.get(name) for name in ETCD35},
            "controllers": flags(c["kube-controller-manager"]["args"])["controllers"]}


def test_every_minor_of_the_table_has_its_flags_pinned() -> None:
    assert set(PER_MINOR_FLAGS) == set(VERSION_TABLE["versions"])


@pytest.mark.parametrize("minor", sorted(PER_MINOR_FLAGS))
def test_flags_follow_the_minor_of_the_images(helm: str, minor: str) -> None:
    objs = render(helm, *version_sets(minor))
    assert per_minor_flags(objs) == PER_MINOR_FLAGS[minor]
    entry = VERSION_TABLE["versions"][minor]
    images = {n: c["image"] for n, c in containers(objs).items()}
    assert images["kube-apiserver"] == f"registry.k8s.io/kube-apiserver:{entry['kubernetes']}"
    assert images["kube-controller-manager"] == f"registry.k8s.io/kube-controller-manager:{entry['kubernetes']}"
    assert images["etcd"] == f"registry.k8s.io/etcd:{entry['etcd']}"


def test_kube_apiserver_flags_are_the_same_on_every_minor(helm: str, default: Objects) -> None:
    """Every flag the chart gives kube-apiserver exists undeprecated from 1.33 to 1.37."""
    expected = containers(default)["kube-apiserver"]["args"]
    for minor in VERSION_TABLE["versions"]:
        assert containers(render(helm, *version_sets(minor)))["kube-apiserver"]["args"] == expected, minor


def test_defaults_are_the_tables_default_minor(default: Objects) -> None:
    assert per_minor_flags(default) == PER_MINOR_FLAGS[VERSION_TABLE["default"]]
    entry = VERSION_TABLE["versions"][VERSION_TABLE["default"]]
    assert containers(default)["kube-apiserver"]["image"].endswith(":" + entry["kubernetes"])
    assert containers(default)["etcd"]["image"].endswith(":" + entry["etcd"])


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        # Each container follows its own image: an etcd 3.5 beside a 1.37 control plane keeps 3.5's flags.
        (("controlPlane.controllerManager.image.tag=v1.37.0", "controlPlane.etcd.image.tag=3.5.21-0"),
         {**ETCD35, "controllers": NODE_AND_VOLUME_CONTROLLERS}),
        # Pre-releases and later patches of a minor count as that minor.
        (("controlPlane.controllerManager.image.tag=v1.37.0-alpha.1", "controlPlane.etcd.image.tag=3.6.0-rc.1"),
         {**ETCD36, "controllers": NODE_AND_VOLUME_CONTROLLERS}),
        (("controlPlane.controllerManager.image.tag=v1.36.99", "controlPlane.etcd.image.tag=v3.5.99"),
         {**ETCD35, "controllers": NODE_AND_VOLUME_CONTROLLERS + CLOUD_CONTROLLERS}),
        (("controlPlane.controllerManager.image.tag=v1.38.0", "controlPlane.etcd.image.tag=3.8.0-0"),
         {**ETCD36, "controllers": NODE_AND_VOLUME_CONTROLLERS}),
    ],
)
def test_flags_follow_each_containers_own_tag(helm: str, sets: tuple[str, ...], expected: dict[str, Any]) -> None:
    assert per_minor_flags(render(helm, *sets)) == expected


def test_a_tag_that_is_no_version_counts_as_the_default_minor(helm: str) -> None:
    """A custom build tagged `dev`: the flags of the table's default minor."""
    objs = render(helm, "controlPlane.controllerManager.image.tag=dev", "controlPlane.etcd.image.tag=custom")
    assert per_minor_flags(objs) == PER_MINOR_FLAGS[VERSION_TABLE["default"]]
