from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from syncer_testdata import CTX, SETTINGS, pod, token_volume
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
    binding,
    pod_spec_patch,
    pod_status_patch,
    rewrite_field_path,
    token_request,
    token_secret,
    translate_pod,
    wants_token,
    was_synced,
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
    assert wants_token(vpod)
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
    assert not wants_token(vpod)
    assert translate_pod(vpod, SETTINGS, CTX)["spec"]["automountServiceAccountToken"] is False


def test_token_request_and_secret() -> None:
    vpod = pod(spec={"serviceAccountName": "robot", "containers": [c()], "volumes": [token_volume()]})
    req = token_request(vpod)
    assert req["kind"] == "TokenRequest"
    assert req["spec"]["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-web"}
    secret = token_secret(vpod, "TOKEN", "CA", "2030-01-01T00:00:00Z", SETTINGS)
    assert secret["metadata"]["name"] == "web-sa-token-x-team-x-vc"
    assert secret["metadata"]["namespace"] == "host-ns"
    assert secret["metadata"]["annotations"][ANN_TOKEN_EXPIRATION] == "2030-01-01T00:00:00Z"
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"token": "TOKEN", "ca.crt": "CA", "namespace": "team"}


# ------------------------------------------------------------ API server env and aliases

def test_kubernetes_service_env_points_at_vcluster_service() -> None:
    spec = {"containers": [c(env=[{"name": "X", "value": "1"}])], "initContainers": [c()]}
    out = host(spec)["spec"]
    for container in out["containers"] + out["initContainers"]:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.50"
        assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert out["containers"][0]["env"][-1] == {"name": "X", "value": "1"}
    assert {"ip": "10.96.0.50", "hostnames": ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                              "kubernetes.default.svc.cluster.local"]} in out["hostAliases"]


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
        ("node1", frozenset(), False),  # fake node / unknown: the host scheduler decides
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


def test_translation_is_pure() -> None:
    vpod = pod(spec={"containers": [c(env=[{"name": "A", "value": "1"}])], "volumes": [token_volume()]})
    before = repr(vpod)
    assert translate_pod(vpod, SETTINGS, CTX) == translate_pod(vpod, SETTINGS, CTX)
    assert repr(vpod) == before


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
