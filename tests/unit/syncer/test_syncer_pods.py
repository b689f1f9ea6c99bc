from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from syncer_testdata import CTX, SETTINGS, pod, token_volume
from vcluster_syncer.translate.downward import rewrite_field_path
from vcluster_syncer.translate.env import service_env, service_link_env
from vcluster_syncer.translate.hosts import HOSTS_CONTAINER, hosts_entry
from vcluster_syncer.translate.metadata import (
    ANN_LABELS,
    ANN_NAME,
    ANN_NAMESPACE,
    ANN_SERVICE_ACCOUNT,
    ANN_TOKEN_EXPIRATION,
    ANN_UID,
    FAKE_NODE_LABEL,
    MANAGED_BY,
    NAMESPACE_LABEL,
    selector_matches,
)
from vcluster_syncer.translate.names import translate_label_key
from vcluster_syncer.translate.pods import (
    ephemeral_containers_patch,
    host_ephemeral_containers,
    pod_spec_patch,
    translate_pod,
)
from vcluster_syncer.translate.runtimeclass import (
    RUNTIME_CLASS_CONTAINER,
    blocked_for_runtime_class,
    refused_runtime_class,
)
from vcluster_syncer.translate.status import binding, pod_status_patch, was_synced
from vcluster_syncer.translate.tokens import (
    token_key,
    token_node,
    token_request,
    token_requests,
    token_secret,
)

K = lambda key: translate_label_key(key, SETTINGS)  # noqa: E731


def host(spec: dict[str, Any] | None = None, ctx=CTX, **kw: Any) -> dict[str, Any]:
    return translate_pod(pod(spec=spec, **kw), SETTINGS, ctx)


def c(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "busybox", **fields}


# ------------------------------------------------------------ names and metadata

def test_metadata() -> None:
    out = host(labels={"app": "web"}, annotations={"note": "1"})
    meta = out["metadata"]
    assert meta["name"] == "web-x-team-x-vc" and meta["namespace"] == "host-ns"
    assert meta["labels"] == {K("app"): "web", MANAGED_BY: "vc", NAMESPACE_LABEL: "team"}
    assert meta["annotations"][ANN_LABELS] == 'app="web"'
    assert meta["annotations"]["note"] == "1"
    assert meta["ownerReferences"][0]["kind"] == "Service"


# ------------------------------------------------------------ configmap/secret/pvc names

@pytest.mark.parametrize(
    ("volume", "path", "expected"),
    [
        ({"name": "v", "configMap": {"name": "cfg"}}, ("configMap", "name"), "cfg-x-team-x-vc"),
        ({"name": "v", "secret": {"secretName": "s"}}, ("secret", "secretName"), "s-x-team-x-vc"),
        ({"name": "v", "persistentVolumeClaim": {"claimName": "data"}}, ("persistentVolumeClaim", "claimName"),
         "data-x-team-x-vc"),
        ({"name": "v", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "s"}}},
         ("csi", "nodePublishSecretRef", "name"), "s-x-team-x-vc"),
        # plugins naming a Secret of the pod's namespace: never a Secret of the host namespace (vc-R, say)
        ({"name": "v", "flexVolume": {"driver": "d", "secretRef": {"name": "vc-vc"}}},
         ("flexVolume", "secretRef", "name"), "vc-vc-x-team-x-vc"),
        ({"name": "v", "iscsi": {"targetPortal": "1.2.3.4", "iqn": "iqn.x", "lun": 0, "secretRef": {"name": "s"}}},
         ("iscsi", "secretRef", "name"), "s-x-team-x-vc"),
        ({"name": "v", "cephfs": {"monitors": ["m"], "secretRef": {"name": "s"}}},
         ("cephfs", "secretRef", "name"), "s-x-team-x-vc"),
        ({"name": "v", "rbd": {"monitors": ["m"], "image": "i", "secretRef": {"name": "s"}}},
         ("rbd", "secretRef", "name"), "s-x-team-x-vc"),
        ({"name": "v", "scaleIO": {"gateway": "g", "system": "s", "secretRef": {"name": "s"}}},
         ("scaleIO", "secretRef", "name"), "s-x-team-x-vc"),
        ({"name": "v", "storageos": {"volumeName": "v", "secretRef": {"name": "s"}}},
         ("storageos", "secretRef", "name"), "s-x-team-x-vc"),
        ({"name": "v", "azureFile": {"secretName": "s", "shareName": "x"}}, ("azureFile", "secretName"),
         "s-x-team-x-vc"),
        # a generic ephemeral volume mounts the host copy of the claim the virtual controller makes (<pod>-<vol>)
        ({"name": "v", "ephemeral": {"volumeClaimTemplate": {"spec": {"volumeName": "host-pv"}}}},
         ("persistentVolumeClaim", "claimName"), "web-v-x-team-x-vc"),
    ],
)
def test_volume_references_translated(volume: dict[str, Any], path: tuple[str, ...], expected: str) -> None:
    out = host({"containers": [c()], "volumes": [volume]})
    node: Any = out["spec"]["volumes"][0]
    for key in path:
        node = node[key]
    assert node == expected


def test_ephemeral_volume_template_never_reaches_the_host() -> None:
    """The host's ephemeral-volume controller would make a claim in N from the template as it is, volumeName
    (a host PersistentVolume) and dataSource (a host claim) included: the host pod gets a plain claim instead."""
    template = {"spec": {"volumeName": "host-pv", "storageClassName": "x",
                         "dataSource": {"kind": "PersistentVolumeClaim", "name": "other"},
                         "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    out = host({"containers": [c()], "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}]})
    assert out["spec"]["volumes"] == [{"name": "scratch",
                                       "persistentVolumeClaim": {"claimName": "web-scratch-x-team-x-vc"}}]


def test_projected_sources_translated() -> None:
    volume = {"name": "p", "projected": {"sources": [
        {"configMap": {"name": "cfg"}},
        {"secret": {"name": "s"}},
        {"downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        # kube-root-ca.crt outside a token projection is an ordinary configmap
        {"configMap": {"name": "kube-root-ca.crt"}},
    ]}}
    sources = host({"containers": [c()], "volumes": [volume]})["spec"]["volumes"][0]["projected"]["sources"]
    assert sources[0]["configMap"]["name"] == "cfg-x-team-x-vc"
    assert sources[1]["secret"]["name"] == "s-x-team-x-vc"
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == f"metadata.annotations['{ANN_NAME}']"
    assert sources[3]["configMap"]["name"] == "kube-root-ca.crt-x-team-x-vc"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
         {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg-x-team-x-vc", "key": "k"}}}),
        ({"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
         {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s-x-team-x-vc", "key": "k"}}}),
        ({"name": "A", "value": "plain"}, {"name": "A", "value": "plain"}),
    ],
)
def test_env_value_from_translated(env: dict[str, Any], expected: dict[str, Any]) -> None:
    container = host({"containers": [c(env=[env])]})["spec"]["containers"][0]
    assert container["env"][-1] == expected


def test_env_from_and_image_pull_secrets_translated() -> None:
    spec = {"containers": [c(envFrom=[{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "s"}}])],
            "initContainers": [c(envFrom=[{"secretRef": {"name": "init"}}])],
            "imagePullSecrets": [{"name": "pull"}]}
    out = host(spec)["spec"]
    assert out["containers"][0]["envFrom"] == [{"configMapRef": {"name": "cfg-x-team-x-vc"}},
                                               {"secretRef": {"name": "s-x-team-x-vc"}}]
    assert out["initContainers"][0]["envFrom"] == [{"secretRef": {"name": "init-x-team-x-vc"}}]
    assert out["imagePullSecrets"] == [{"name": "pull-x-team-x-vc"}]


# ------------------------------------------------------------ service account token

def test_service_account_and_token_volume() -> None:
    mount = {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
             "readOnly": True}
    vpod = pod(spec={"serviceAccountName": "robot", "containers": [c(volumeMounts=[mount])],
                     "volumes": [token_volume()]})
    assert set(token_requests(vpod)) == {"token"}
    out = translate_pod(vpod, SETTINGS, CTX)
    spec = out["spec"]
    assert spec["serviceAccountName"] == "vc-workload-vc"
    assert spec["automountServiceAccountToken"] is False
    assert spec["containers"][0]["volumeMounts"] == [mount]
    sources = spec["volumes"][0]["projected"]["sources"]
    secret = "web-sa-token-x-team-x-vc"
    assert sources == [
        {"secret": {"name": secret, "items": [{"key": "token", "path": "token"}]}},
        {"secret": {"name": secret, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"secret": {"name": secret, "items": [{"key": "namespace", "path": "namespace"}]}},
    ]
    assert out["metadata"]["annotations"][ANN_SERVICE_ACCOUNT] == "robot"


def test_no_token_when_not_mounted() -> None:
    vpod = pod(spec={"automountServiceAccountToken": False, "containers": [c()]})
    assert token_requests(vpod) == {}
    assert translate_pod(vpod, SETTINGS, CTX)["spec"]["automountServiceAccountToken"] is False


def test_token_request_and_secret() -> None:
    vpod = pod(spec={"serviceAccountName": "robot", "containers": [c()], "volumes": [token_volume()]})
    req = token_request(vpod)
    assert req["kind"] == "TokenRequest"
    assert req["spec"]["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-web"}
    secret = token_secret(vpod, {"token": "TOKEN"}, "CA", "2030-01-01T00:00:00Z", SETTINGS)
    assert secret["metadata"]["name"] == "web-sa-token-x-team-x-vc"
    assert secret["metadata"]["namespace"] == "host-ns"
    assert secret["metadata"]["annotations"][ANN_TOKEN_EXPIRATION] == "2030-01-01T00:00:00Z"
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"token": "TOKEN", "ca.crt": "CA", "namespace": "team"}


def jwt(claims: dict[str, Any]) -> str:
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


@pytest.mark.parametrize(
    ("token", "node"),
    [
        (jwt({"kubernetes.io": {"namespace": "team", "node": {"name": "node1", "uid": "u"}, "pod": {"name": "web"}}}),
         "node1"),
        (jwt({"kubernetes.io": {"namespace": "team", "pod": {"name": "web"}}}), None),  # requested before binding
        ("not-a-jwt", None),
        ("a.!!!.c", None),
    ],
)
def test_token_node(token: str, node: str | None) -> None:
    assert token_node(token) == node


@pytest.mark.parametrize(
    ("projection", "key"),
    [
        ({"expirationSeconds": 3607, "path": "token"}, "token"),  # kube-api-access-* (admission)
        ({"path": "token"}, "token"),
        ({"expirationSeconds": 3600, "path": "t"}, "token"),
        ({"audience": "oidc-discovery-test", "expirationSeconds": 600, "path": "t"},
         token_key({"audience": "oidc-discovery-test", "expirationSeconds": 600})),
    ],
)
def test_token_key(projection: dict[str, Any], key: str) -> None:
    assert token_key(projection) == key


def test_custom_audience_projection_gets_its_own_token() -> None:
    """OIDC discovery spec: a projected token with its own audience and lifetime is not the default token."""
    custom = {"name": "oidc", "projected": {"sources": [
        {"serviceAccountToken": {"audience": "oidc-discovery-test", "expirationSeconds": 600, "path": "token"}}]}}
    other = {"name": "vault", "projected": {"sources": [
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 7200, "path": "vault-token"}}]}}
    vpod = pod(spec={"containers": [c()], "volumes": [token_volume(), custom, other]})
    requests = token_requests(vpod)
    oidc_key = token_key(custom["projected"]["sources"][0]["serviceAccountToken"])
    vault_key = token_key(other["projected"]["sources"][0]["serviceAccountToken"])
    assert len({"token", oidc_key, vault_key}) == 3
    assert set(requests) == {"token", oidc_key, vault_key}
    assert "audiences" not in requests["token"]["spec"] and requests["token"]["spec"]["expirationSeconds"] == 3600
    assert requests[oidc_key]["spec"]["audiences"] == ["oidc-discovery-test"]
    assert requests[oidc_key]["spec"]["expirationSeconds"] == 600
    assert requests[vault_key]["spec"]["audiences"] == ["vault"]
    assert requests[vault_key]["spec"]["expirationSeconds"] == 7200
    for request in requests.values():
        assert request["spec"]["boundObjectRef"]["name"] == "web"
    volumes = translate_pod(vpod, SETTINGS, CTX)["spec"]["volumes"]
    assert volumes[1]["projected"]["sources"] == [
        {"secret": {"name": "web-sa-token-x-team-x-vc", "items": [{"key": oidc_key, "path": "token"}]}}]
    assert volumes[2]["projected"]["sources"] == [
        {"secret": {"name": "web-sa-token-x-team-x-vc", "items": [{"key": vault_key, "path": "vault-token"}]}}]
    secret = token_secret(vpod, {"token": "A", oidc_key: "B"}, "CA", "2030-01-01T00:00:00Z", SETTINGS)
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "token": "A", oidc_key: "B", "ca.crt": "CA", "namespace": "team"}


def test_no_token_requests_without_projection() -> None:
    assert token_requests(pod()) == {}


# ------------------------------------------------------------ API server env and aliases

def test_kubernetes_service_env_points_at_vcluster_service() -> None:
    spec = {"containers": [c(env=[{"name": "X", "value": "1"}])], "initContainers": [c()]}
    out = host(spec)["spec"]
    for container in out["containers"] + out["initContainers"]:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.50"
        assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert out["containers"][0]["env"][-1] == {"name": "X", "value": "1"}
    # the short name "kubernetes" resolves only in namespace default (as through cluster DNS)
    assert {"ip": "10.96.0.50", "hostnames": ["kubernetes.default", "kubernetes.default.svc",
                                              "kubernetes.default.svc.cluster.local"]} in out["hostAliases"]


@pytest.mark.parametrize(
    ("namespace", "short_name"),
    [("default", True), ("team", False), ("kube-system", False)],
)
def test_short_kubernetes_alias_only_in_default(namespace: str, short_name: bool) -> None:
    aliases = translate_pod(pod(namespace=namespace), SETTINGS, CTX)["spec"]["hostAliases"]
    names = [n for a in aliases for n in a["hostnames"]]
    assert ("kubernetes" in names) is short_name
    assert "kubernetes.default.svc.cluster.local" in names


def test_user_kubernetes_env_is_kept() -> None:
    env = host({"containers": [c(env=[{"name": "KUBERNETES_SERVICE_HOST", "value": "mine"}])]})["spec"][
        "containers"][0]["env"]
    assert [e for e in env if e["name"] == "KUBERNETES_SERVICE_HOST"] == [
        {"name": "KUBERNETES_SERVICE_HOST", "value": "mine"}]


# ------------------------------------------------------------ downward API

@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", f"metadata.annotations['{ANN_NAME}']"),
        ("metadata.namespace", f"metadata.annotations['{ANN_NAMESPACE}']"),
        ("metadata.uid", f"metadata.annotations['{ANN_UID}']"),
        ("metadata.labels", f"metadata.annotations['{ANN_LABELS}']"),
        ("metadata.annotations", "metadata.annotations['vcluster.loft.sh/annotations']"),
        ("spec.serviceAccountName", f"metadata.annotations['{ANN_SERVICE_ACCOUNT}']"),
        ("metadata.labels['app']", f"metadata.labels['{K('app')}']"),
        ("metadata.annotations['note']", "metadata.annotations['note']"),
        ("spec.nodeName", "spec.nodeName"),
        ("status.podIP", "status.podIP"),
    ],
)
def test_field_paths(path: str, expected: str) -> None:
    assert rewrite_field_path(path, SETTINGS) == expected


def test_downward_api_env_and_volume_report_virtual_values() -> None:
    spec = {
        "containers": [c(env=[{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])],
        "volumes": [{"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        ]}}],
    }
    out = host(spec, labels={"b": "2", "a": "1"}, annotations={"note": "x"})
    env = out["spec"]["containers"][0]["env"][-1]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{ANN_NAME}']"
    ann = out["metadata"]["annotations"]
    assert ann[ANN_NAME] == "web" and ann[ANN_NAMESPACE] == "team" and ann[ANN_UID] == "uid-web"
    assert ann[ANN_LABELS] == 'a="1"\nb="2"'
    assert ann["vcluster.loft.sh/annotations"] == 'note="x"'
    items = out["spec"]["volumes"][0]["downwardAPI"]["items"]
    assert items[0]["fieldRef"]["fieldPath"] == f"metadata.annotations['{ANN_LABELS}']"


def test_annotations_copy_only_when_read() -> None:
    assert "vcluster.loft.sh/annotations" not in host(annotations={"x": "y"})["metadata"]["annotations"]


# ------------------------------------------------------------ service links, DNS

def test_enable_service_links_off() -> None:
    assert host({"containers": [c()], "enableServiceLinks": True})["spec"]["enableServiceLinks"] is False


def svc(name: str, ip: str = "10.96.0.7", namespace: str = "team", ports: list[dict[str, Any]] | None = None
        ) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": ip, "ports": ports if ports is not None else [{"port": 8765}]}}


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        # the conformance spec's fooservice: one unnamed TCP port
        (svc("fooservice", ports=[{"port": 8765, "targetPort": 8080}]), {
            "FOOSERVICE_SERVICE_HOST": "10.96.0.7", "FOOSERVICE_SERVICE_PORT": "8765",
            "FOOSERVICE_PORT": "tcp://10.96.0.7:8765", "FOOSERVICE_PORT_8765_TCP": "tcp://10.96.0.7:8765",
            "FOOSERVICE_PORT_8765_TCP_PROTO": "tcp", "FOOSERVICE_PORT_8765_TCP_PORT": "8765",
            "FOOSERVICE_PORT_8765_TCP_ADDR": "10.96.0.7"}),
        # dashes become underscores; named ports get _SERVICE_PORT_<NAME>; the first port is FOO_PORT
        (svc("my-db", ports=[{"name": "sql", "port": 5432}, {"name": "metrics-udp", "port": 9000, "protocol": "UDP"}]),
         {"MY_DB_SERVICE_HOST": "10.96.0.7", "MY_DB_SERVICE_PORT": "5432", "MY_DB_SERVICE_PORT_SQL": "5432",
          "MY_DB_SERVICE_PORT_METRICS_UDP": "9000", "MY_DB_PORT": "tcp://10.96.0.7:5432",
          "MY_DB_PORT_5432_TCP": "tcp://10.96.0.7:5432", "MY_DB_PORT_5432_TCP_PROTO": "tcp",
          "MY_DB_PORT_5432_TCP_PORT": "5432", "MY_DB_PORT_5432_TCP_ADDR": "10.96.0.7",
          "MY_DB_PORT_9000_UDP": "udp://10.96.0.7:9000", "MY_DB_PORT_9000_UDP_PROTO": "udp",
          "MY_DB_PORT_9000_UDP_PORT": "9000", "MY_DB_PORT_9000_UDP_ADDR": "10.96.0.7"}),
        (svc("v6", ip="fd00::7", ports=[{"port": 80}]), {
            "V6_SERVICE_HOST": "fd00::7", "V6_SERVICE_PORT": "80", "V6_PORT": "tcp://[fd00::7]:80",
            "V6_PORT_80_TCP": "tcp://[fd00::7]:80", "V6_PORT_80_TCP_PROTO": "tcp", "V6_PORT_80_TCP_PORT": "80",
            "V6_PORT_80_TCP_ADDR": "fd00::7"}),
        (svc("headless", ip="None"), {}),  # no ClusterIP: no variables
        ({"metadata": {"name": "ext", "namespace": "team"}, "spec": {"type": "ExternalName",
                                                                     "externalName": "example.com"}}, {}),
    ],
)
def test_service_link_env_as_the_kubelet(service: dict[str, Any], expected: dict[str, str]) -> None:
    assert {e["name"]: e["value"] for e in service_link_env(service)} == expected


def env_of(container: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize(
    ("namespace", "links", "services", "present", "absent"),
    [
        # same namespace, links unset (= true): the Service's variables, and always the master Service's
        ("team", None, [svc("fooservice")], {"FOOSERVICE_SERVICE_HOST": "10.96.0.7",
                                             "KUBERNETES_SERVICE_HOST": "10.96.0.50"}, set()),
        ("team", True, [svc("fooservice")], {"FOOSERVICE_SERVICE_HOST": "10.96.0.7"}, set()),
        # enableServiceLinks false: only KUBERNETES_*
        ("team", False, [svc("fooservice")], {"KUBERNETES_SERVICE_HOST": "10.96.0.50"}, {"FOOSERVICE_SERVICE_HOST"}),
        # other namespaces' Services and Services without a ClusterIP do not count
        ("team", None, [svc("other", namespace="other"), svc("headless", ip="None"), svc("pending", ip="")],
         {"KUBERNETES_SERVICE_HOST": "10.96.0.50"}, {"OTHER_SERVICE_HOST", "HEADLESS_SERVICE_HOST",
                                                     "PENDING_SERVICE_HOST"}),
        # a Service named kubernetes in the pod's namespace replaces the master one (kubelet rule), whole
        ("team", None, [svc("kubernetes", ip="10.96.0.9", ports=[{"port": 80}])],
         {"KUBERNETES_SERVICE_HOST": "10.96.0.9", "KUBERNETES_PORT_80_TCP_PORT": "80"},
         {"KUBERNETES_SERVICE_PORT_HTTPS", "KUBERNETES_PORT_443_TCP"}),
        # in default, the virtual default/kubernetes Service is the master one: Service R's IP
        ("default", None, [svc("kubernetes", ip="10.96.1.1", namespace="default", ports=[{"port": 443}])],
         {"KUBERNETES_SERVICE_HOST": "10.96.0.50", "KUBERNETES_SERVICE_PORT_HTTPS": "443"}, set()),
    ],
)
def test_service_env(namespace: str, links: bool | None, services: list[dict[str, Any]],
                     present: dict[str, str], absent: set[str]) -> None:
    spec: dict[str, Any] = {"containers": [c()], "initContainers": [c(name="init")]}
    if links is not None:
        spec["enableServiceLinks"] = links
    ctx = replace(CTX, services=tuple(services))
    out = translate_pod(pod(namespace=namespace, spec=spec), SETTINGS, ctx)["spec"]
    assert out["enableServiceLinks"] is False  # the host kubelet adds nothing of N's
    for container in out["containers"] + out["initContainers"]:
        env = env_of(container)
        assert {k: env.get(k) for k in present} == present
        assert not absent & set(env)


def test_service_env_before_user_env_and_user_wins() -> None:
    """Before the container's own variables, so $(FOOSERVICE_SERVICE_HOST) expands; a user's variable of the
    same name replaces the injected one (the kubelet's injected values never override the user's)."""
    user = [{"name": "URL", "value": "http://$(FOOSERVICE_SERVICE_HOST):8765"},
            {"name": "FOOSERVICE_SERVICE_PORT", "value": "mine"}]
    ctx = replace(CTX, services=(svc("fooservice"),))
    env = translate_pod(pod(spec={"containers": [c(env=user)]}), SETTINGS, ctx)["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert names.index("FOOSERVICE_SERVICE_HOST") < names.index("URL")
    assert env[-2:] == user
    assert names.count("FOOSERVICE_SERVICE_PORT") == 1
    assert names == sorted(names[:-2]) + ["URL", "FOOSERVICE_SERVICE_PORT"]  # injected ones sorted (stable)


def test_service_env_is_exactly_the_kubelets() -> None:
    ctx = replace(CTX, services=(svc("fooservice"),))
    env = env_of(translate_pod(pod(), SETTINGS, ctx)["spec"]["containers"][0])
    assert env == {e["name"]: e["value"] for e in service_env(pod(), ctx)}
    assert set(env) == {
        "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_SERVICE_PORT_HTTPS", "KUBERNETES_PORT",
        "KUBERNETES_PORT_443_TCP", "KUBERNETES_PORT_443_TCP_PROTO", "KUBERNETES_PORT_443_TCP_PORT",
        "KUBERNETES_PORT_443_TCP_ADDR", "FOOSERVICE_SERVICE_HOST", "FOOSERVICE_SERVICE_PORT", "FOOSERVICE_PORT",
        "FOOSERVICE_PORT_8765_TCP", "FOOSERVICE_PORT_8765_TCP_PROTO", "FOOSERVICE_PORT_8765_TCP_PORT",
        "FOOSERVICE_PORT_8765_TCP_ADDR"}


DNS_CTX = replace(CTX, dns_ip="10.96.0.99")


@pytest.mark.parametrize(
    ("spec_extra", "rewritten"),
    [
        ({}, True),  # unset means ClusterFirst
        ({"dnsPolicy": "ClusterFirst"}, True),
        ({"dnsPolicy": "ClusterFirstWithHostNet"}, True),
        ({"dnsPolicy": "ClusterFirst", "hostNetwork": True}, False),  # behaves as Default
        ({"dnsPolicy": "Default"}, False),
        ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}, False),
    ],
)
def test_dns_policy(spec_extra: dict[str, Any], rewritten: bool) -> None:
    spec = host({"containers": [c()], **spec_extra}, ctx=DNS_CTX)["spec"]
    if rewritten:
        assert spec["dnsPolicy"] == "None"
        assert spec["dnsConfig"] == {
            "nameservers": ["10.96.0.99"],
            "searches": ["team.svc.cluster.local", "svc.cluster.local", "cluster.local"],
            "options": [{"name": "ndots", "value": "5"}],
        }
    else:
        assert spec.get("dnsPolicy") == spec_extra.get("dnsPolicy")


def test_dns_unchanged_without_virtual_dns() -> None:
    spec = host({"containers": [c()], "dnsPolicy": "ClusterFirst"})["spec"]
    assert spec["dnsPolicy"] == "ClusterFirst" and "dnsConfig" not in spec


def test_dns_merges_user_config() -> None:
    user = {"nameservers": ["8.8.8.8"], "searches": ["example.com"], "options": [{"name": "ndots", "value": "2"},
                                                                                  {"name": "edns0"}]}
    spec = host({"containers": [c()], "dnsConfig": user}, ctx=DNS_CTX)["spec"]
    assert spec["dnsConfig"]["nameservers"] == ["10.96.0.99", "8.8.8.8"]
    assert spec["dnsConfig"]["searches"][-1] == "example.com"
    assert spec["dnsConfig"]["options"] == [{"name": "ndots", "value": "2"}, {"name": "edns0"}]


# ------------------------------------------------------------ scheduling

@pytest.mark.parametrize(
    ("node_name", "host_nodes", "kept"),
    [
        ("other", frozenset(), False),  # unknown: the host scheduler decides
        ("node1", frozenset(), True),  # a fake node: the host node of that name, in use by synced pods
        ("node1", frozenset({"node1"}), True),  # a host node the syncer can see
    ],
)
def test_node_name(node_name: str, host_nodes: frozenset[str], kept: bool) -> None:
    ctx = replace(CTX, host_node_names=host_nodes, fake_node_names=frozenset({"node1"}))
    spec = host({"containers": [c()], "nodeName": node_name}, ctx=ctx)["spec"]
    assert ("nodeName" in spec) is kept


def test_node_selector_drops_fake_node_terms() -> None:
    ctx = replace(CTX, fake_node_names=frozenset({"node1"}))
    spec = host({"containers": [c()], "nodeSelector": {FAKE_NODE_LABEL: "true", "kubernetes.io/hostname": "node1",
                                                       "disk": "ssd"}}, ctx=ctx)["spec"]
    assert spec["nodeSelector"] == {"disk": "ssd"}
    spec = host({"containers": [c()], "nodeSelector": {FAKE_NODE_LABEL: "true"}}, ctx=ctx)["spec"]
    assert "nodeSelector" not in spec


def test_pod_affinity_is_namespaced() -> None:
    term = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}
    spec = host({"containers": [c()], "affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term],
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "podAffinityTerm": term}],
    }}})["spec"]
    required = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    db_here = {K("app"): "db", MANAGED_BY: "vc", NAMESPACE_LABEL: "team"}
    db_elsewhere = {**db_here, NAMESPACE_LABEL: "other"}
    assert selector_matches(required["labelSelector"], db_here)
    assert not selector_matches(required["labelSelector"], db_elsewhere)
    preferred = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert preferred["podAffinityTerm"]["labelSelector"] == required["labelSelector"]


def test_pod_affinity_namespace_selector() -> None:
    ctx = replace(CTX, namespace_labels={"a": {"env": "prod"}, "b": {"env": "dev"}})
    term = {"labelSelector": {}, "namespaceSelector": {"matchLabels": {"env": "prod"}}, "topologyKey": "zone"}
    spec = host({"containers": [c()], "affinity": {"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term]}}}, ctx=ctx)["spec"]
    out = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert "namespaceSelector" not in out
    assert selector_matches(out["labelSelector"], {MANAGED_BY: "vc", NAMESPACE_LABEL: "a"})
    assert not selector_matches(out["labelSelector"], {MANAGED_BY: "vc", NAMESPACE_LABEL: "b"})


def test_topology_spread_is_namespaced() -> None:
    spec = host({"containers": [c()], "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["pod-template-hash"]}]})["spec"]
    constraint = spec["topologySpreadConstraints"][0]
    assert constraint["labelSelector"]["matchLabels"] == {K("app"): "web", MANAGED_BY: "vc", NAMESPACE_LABEL: "team"}
    assert constraint["matchLabelKeys"] == [K("pod-template-hash")]


# ------------------------------------------------------------ dropped fields

@pytest.mark.parametrize(
    "field",
    ["priorityClassName", "priority", "preemptionPolicy", "overhead", "subdomain", "serviceAccount",
     "ephemeralContainers"],
)
def test_dropped_fields(field: str) -> None:
    values = {"priorityClassName": "high", "priority": 1000, "preemptionPolicy": "Never", "overhead": {"cpu": "1"},
              "subdomain": "headless", "serviceAccount": "robot",
              "ephemeralContainers": [{"name": "debug", "image": "busybox"}]}
    assert field not in host({"containers": [c()], field: values[field]})["spec"]


def test_hostname_is_virtual_name() -> None:
    assert host()["spec"]["hostname"] == "web"
    assert host({"containers": [c()], "hostname": "custom"})["spec"]["hostname"] == "custom"


# ------------------------------------------------------------ /etc/hosts of pods with a subdomain

IMAGED = replace(SETTINGS, syncer_image="syncer:1")
FQDN = "web.headless.team.svc.cluster.local"


@pytest.mark.parametrize(
    ("spec", "settings", "expected"),
    [
        ({"containers": [c()], "subdomain": "headless"}, IMAGED, ("web", FQDN)),
        ({"containers": [c()], "subdomain": "headless", "hostname": "h"}, IMAGED,
         ("h", "h.headless.team.svc.cluster.local")),
        ({"containers": [c()], "subdomain": "headless"}, replace(IMAGED, cluster_domain="example.test"),
         ("web", "web.headless.team.svc.example.test")),
        ({"containers": [c()]}, IMAGED, None),  # no subdomain: the kubelet's line is right
        ({"containers": [c()], "subdomain": "headless", "hostNetwork": True}, IMAGED, None),  # the node's file
        ({"containers": [c()], "subdomain": "headless"}, SETTINGS, None),  # no image configured
    ],
)
def test_hosts_entry(spec: dict[str, Any], settings: Any, expected: tuple[str, str] | None) -> None:
    assert hosts_entry(pod(spec=spec), settings) == expected


def test_subdomain_pod_gets_the_hosts_init_container() -> None:
    resources = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
    spec = {"subdomain": "headless",
            "containers": [c(resources=resources),
                           c(name="own", volumeMounts=[{"name": "v", "mountPath": "/etc/hosts"}])],
            "initContainers": [c(name="setup")],
            "volumes": [{"name": "v", "emptyDir": {}}]}
    out = translate_pod(pod(spec=spec), IMAGED, CTX)["spec"]
    init = out["initContainers"][0]
    assert [i["name"] for i in out["initContainers"]] == [HOSTS_CONTAINER, "setup"]
    assert init["image"] == "syncer:1" and init["imagePullPolicy"] == "IfNotPresent"
    assert init["command"][:2] == ["sh", "-c"] and "/etc/hosts > /hosts/hosts" in init["command"][2]
    assert init["env"] == [{"name": "POD_HOSTNAME", "value": "web"}, {"name": "POD_FQDN", "value": FQDN}]
    assert init["resources"] == resources  # Guaranteed stays Guaranteed; the pod asks for no more
    assert init["securityContext"]["runAsNonRoot"] is True
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert init["volumeMounts"] == [{"name": HOSTS_CONTAINER, "mountPath": "/hosts"}]
    mount = {"name": HOSTS_CONTAINER, "mountPath": "/etc/hosts", "subPath": "hosts"}
    assert mount in out["containers"][0]["volumeMounts"]
    assert out["containers"][1]["volumeMounts"] == [{"name": "v", "mountPath": "/etc/hosts"}]  # its own wins
    assert mount in out["initContainers"][1]["volumeMounts"]
    assert {"name": HOSTS_CONTAINER, "emptyDir": {}} in out["volumes"]
    assert "subdomain" not in out


def test_pod_without_subdomain_has_no_hosts_init_container() -> None:
    out = translate_pod(pod(spec={"containers": [c()]}), IMAGED, CTX)["spec"]
    assert "initContainers" not in out
    assert all(v["name"] != HOSTS_CONTAINER for v in out.get("volumes") or [])


def test_ephemeral_containers_of_a_rewritten_pod_mount_the_hosts_file() -> None:
    vpod = pod(spec={"containers": [c()], "subdomain": "headless",
                     "ephemeralContainers": [{"name": "debug", "image": "busybox"}]})
    mount = {"name": HOSTS_CONTAINER, "mountPath": "/etc/hosts", "subPath": "hosts"}
    assert host_ephemeral_containers(vpod, IMAGED, CTX)[0]["volumeMounts"] == [mount]
    assert "volumeMounts" not in host_ephemeral_containers(vpod, SETTINGS, CTX)[0]


def test_translation_is_pure() -> None:
    vpod = pod(spec={"containers": [c(env=[{"name": "A", "value": "1"}])], "volumes": [token_volume()]})
    before = repr(vpod)
    assert translate_pod(vpod, SETTINGS, CTX) == translate_pod(vpod, SETTINGS, CTX)
    assert repr(vpod) == before


# ------------------------------------------------------------ ephemeral containers

DEBUG = {"name": "debugger", "image": "busybox", "targetContainerName": "c", "stdin": True, "tty": True,
         "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "p"}}}],
         "envFrom": [{"configMapRef": {"name": "cfg"}}],
         "volumeMounts": [{"name": "kube-api-access-abcde",
                           "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}


def test_ephemeral_containers_translated_like_containers() -> None:
    ctx = replace(CTX, services=(svc("fooservice"),))
    vpod = pod(spec={"containers": [c()], "volumes": [token_volume()], "ephemeralContainers": [DEBUG]})
    assert "ephemeralContainers" not in translate_pod(vpod, SETTINGS, ctx)["spec"]  # not allowed on create
    [out] = host_ephemeral_containers(vpod, SETTINGS, ctx)
    assert out["name"] == "debugger" and out["targetContainerName"] == "c"
    assert out["volumeMounts"] == DEBUG["volumeMounts"]
    assert out["envFrom"] == [{"configMapRef": {"name": "cfg-x-team-x-vc"}}]
    assert out["env"][-1] == {"name": "P", "valueFrom": {"secretKeyRef": {"name": "pw-x-team-x-vc", "key": "p"}}}
    env = env_of(out)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.50" and env["FOOSERVICE_SERVICE_HOST"] == "10.96.0.7"
    assert DEBUG["envFrom"] == [{"configMapRef": {"name": "cfg"}}]  # the virtual pod is not modified


@pytest.mark.parametrize(
    ("wanted", "have", "expected"),
    [
        ([], [], None),
        ([{"name": "a"}], [], [{"name": "a"}]),
        # the host's own entries are sent back as they are (they are immutable), new ones appended
        ([{"name": "a", "image": "new"}, {"name": "b"}], [{"name": "a", "image": "old"}],
         [{"name": "a", "image": "old"}, {"name": "b"}]),
        ([{"name": "a"}], [{"name": "a", "image": "x"}], None),
    ],
)
def test_ephemeral_containers_patch(wanted: list[dict[str, Any]], have: list[dict[str, Any]],
                                    expected: list[dict[str, Any]] | None) -> None:
    patch = ephemeral_containers_patch(wanted, {"spec": {"containers": [c()], "ephemeralContainers": have}})
    assert patch == (None if expected is None else {"spec": {"ephemeralContainers": expected}})


def test_ephemeral_container_statuses_flow_back() -> None:
    statuses = [{"name": "debugger", "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]
    patch = pod_status_patch({"status": {"phase": "Running", "ephemeralContainerStatuses": statuses}},
                             pod(status={"phase": "Running"}))
    assert patch == {"status": {"phase": "Running", "ephemeralContainerStatuses": statuses}}


# ------------------------------------------------------------ updates and status

def test_spec_patch_only_mutable_fields() -> None:
    old = host({"containers": [c()], "tolerations": [{"key": "a", "operator": "Exists"}]})
    new = host({"containers": [c(image="busybox:2")], "activeDeadlineSeconds": 30,
                "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]})
    patch = pod_spec_patch(new, old)
    assert patch is not None
    assert patch["spec"]["containers"][0]["image"] == "busybox:2"
    assert patch["spec"]["containers"][0]["env"] == old["spec"]["containers"][0]["env"]
    assert patch["spec"]["activeDeadlineSeconds"] == 30
    assert len(patch["spec"]["tolerations"]) == 2
    assert pod_spec_patch(old, old) is None


def test_status_flows_back() -> None:
    hpod = {"status": {"phase": "Running", "podIP": "10.244.0.5", "nominatedNodeName": "x",
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    vpod = pod(status={"phase": "Pending"})
    patch = pod_status_patch(hpod, vpod)
    assert patch == {"status": {"phase": "Running", "podIP": "10.244.0.5",
                                "conditions": [{"type": "Ready", "status": "True"}]}}
    vpod["status"].update(patch["status"])
    assert pod_status_patch(hpod, vpod) is None


@pytest.mark.parametrize(
    ("message", "runtime_class", "refused"),
    [
        ('pods "p" is forbidden: pod rejected: RuntimeClass "gvisor" not found', "gvisor", "gvisor"),
        ('pods "p" is forbidden: pod rejected: RuntimeClass "other" not found', "gvisor", None),  # not ours
        ("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead", "gvisor", None),
        ('pods "p" is forbidden: exceeded quota', "gvisor", None),
        ('pod rejected: RuntimeClass "gvisor" not found', None, None),  # the pod names none
    ],
)
def test_refused_runtime_class(message: str, runtime_class: str | None, refused: str | None) -> None:
    spec = {"containers": [c()], **({"runtimeClassName": runtime_class} if runtime_class else {})}
    assert refused_runtime_class(message, {"spec": spec}) == refused


def test_pod_of_a_runtime_class_the_host_lacks_is_held_by_an_init_container() -> None:
    resources = {"requests": {"cpu": "10m"}}
    desired = host({"containers": [c(resources=resources)], "runtimeClassName": "gvisor",
                    "initContainers": [c(name="setup")]})
    assert blocked_for_runtime_class(desired, SETTINGS) is None  # no syncer image: nothing can hold it
    held = blocked_for_runtime_class(desired, IMAGED)
    assert held is not None and "runtimeClassName" not in held["spec"]
    assert desired["spec"]["runtimeClassName"] == "gvisor"  # untouched
    hold = held["spec"]["initContainers"][0]
    assert [i["name"] for i in held["spec"]["initContainers"]] == [RUNTIME_CLASS_CONTAINER, "setup"]
    assert hold["image"] == "syncer:1" and hold["resources"] == resources
    assert hold["securityContext"]["runAsNonRoot"] is True
    assert "sleep infinity" in hold["command"][2] and "trap" in hold["command"][2]  # waits; ends on SIGTERM
    assert held["spec"]["containers"] == desired["spec"]["containers"]


def test_hosts_init_container_status_stays_on_the_host() -> None:
    statuses = [{"name": HOSTS_CONTAINER, "ready": True}, {"name": RUNTIME_CLASS_CONTAINER, "ready": False},
                {"name": "setup", "ready": True}]
    patch = pod_status_patch({"status": {"phase": "Running", "initContainerStatuses": statuses}},
                             pod(status={"phase": "Pending"}))
    assert patch == {"status": {"phase": "Running", "initContainerStatuses": [{"name": "setup", "ready": True}]}}


def cond(kind: str, status: str = "True", **kw: str) -> dict[str, str]:
    return {"type": kind, "status": status, **kw}


@pytest.mark.parametrize(
    ("host_conditions", "virtual_conditions", "expected"),
    [
        # the host's types win
        ([cond("Ready")], [cond("Ready", "False")], [cond("Ready")]),
        # a type only the virtual cluster sets is kept (eviction: DisruptionTarget), after the host's
        ([cond("Ready", "False")], [cond("DisruptionTarget", reason="EvictionByEvictionAPI"), cond("Ready")],
         [cond("Ready", "False"), cond("DisruptionTarget", reason="EvictionByEvictionAPI")]),
        # the host reports the type too: its value
        ([cond("DisruptionTarget", reason="DeletionByTaintManager")], [cond("DisruptionTarget", reason="x")],
         [cond("DisruptionTarget", reason="DeletionByTaintManager")]),
        # no host conditions yet: the virtual ones stay
        ([], [cond("PodScheduled")], [cond("PodScheduled")]),
    ],
)
def test_conditions_merge_by_type(host_conditions: list[dict[str, str]], virtual_conditions: list[dict[str, str]],
                                  expected: list[dict[str, str]]) -> None:
    vpod = pod(status={"phase": "Running", "conditions": virtual_conditions})
    patch = pod_status_patch({"status": {"phase": "Failed", "conditions": host_conditions}}, vpod)
    assert patch is not None and patch["status"]["conditions"] == expected
    vpod["status"].update(patch["status"])
    assert pod_status_patch({"status": {"phase": "Failed", "conditions": host_conditions}}, vpod) is None


@pytest.mark.parametrize(
    ("status", "synced"),
    [
        ({"phase": "Pending", "qosClass": "BestEffort"}, False),
        ({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}, True),
        ({"phase": "Running", "startTime": "2024-01-01T00:00:00Z"}, True),
    ],
)
def test_was_synced(status: dict[str, Any], synced: bool) -> None:
    assert was_synced(pod(status=status)) is synced


def test_binding() -> None:
    body = binding(pod(), "node1")
    assert body["target"] == {"apiVersion": "v1", "kind": "Node", "name": "node1"}
    assert body["metadata"]["name"] == "web"
