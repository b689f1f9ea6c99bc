"""CoreDNS in the virtual cluster (vcluster_syncer/coredns.py): manifests from settings, idempotent apply,
the readiness latch, the environment, and the pod rewrite of the CoreDNS pod itself."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from fake_kube import FakeKube
from syncer_testdata import CTX, SETTINGS, pod
from test_syncer_loop import N, World
from vcluster_syncer import coredns
from vcluster_syncer.config import ConfigError, load_config
from vcluster_syncer.kube import CONFIGMAPS, ENDPOINTS, PODS, SERVICEACCOUNTS, SERVICES, ApiError
from vcluster_syncer.translate.pods import translate_pod

ENV = {"VCLUSTER_NAME": "vc", "HOST_NAMESPACE": "ns", "VIRTUAL_SERVER": "https://127.0.0.1:6443",
       "VIRTUAL_TOKEN_FILE": "/t", "VIRTUAL_CA_FILE": "/ca"}


def by_kind(settings: coredns.CoreDNSSettings | None = None) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for _, obj in coredns.manifests(settings or coredns.CoreDNSSettings(enabled=True))}


def container(objs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return objs["Pod"]["spec"]["containers"][0]


# ------------------------------------------------------------------ manifests

def test_objects_and_order() -> None:
    kinds = [(kind.kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
             for kind, obj in coredns.manifests(coredns.CoreDNSSettings())]
    assert kinds == [
        ("ServiceAccount", "kube-system", "coredns"),
        ("ClusterRole", None, "system:coredns"),
        ("ClusterRoleBinding", None, "system:coredns"),
        ("ConfigMap", "kube-system", "coredns"),
        ("Pod", "kube-system", "coredns"),
        ("Service", "kube-system", "kube-dns"),
    ]
    for kind, obj in coredns.manifests(coredns.CoreDNSSettings()):
        assert obj["kind"] == kind.kind and obj["apiVersion"] == kind.api_version


def test_rbac() -> None:
    objs = by_kind()
    rules = {(g, r): set(rule["verbs"]) for rule in objs["ClusterRole"]["rules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    assert rules == {("", "endpoints"): {"list", "watch"}, ("", "services"): {"list", "watch"},
                     ("", "pods"): {"list", "watch"}, ("", "namespaces"): {"list", "watch"},
                     ("discovery.k8s.io", "endpointslices"): {"list", "watch"}}
    binding = objs["ClusterRoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "system:coredns"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]


@pytest.mark.parametrize("domain", ["cluster.local", "example.test"])
def test_corefile(domain: str) -> None:
    corefile = by_kind(coredns.CoreDNSSettings(cluster_domain=domain))["ConfigMap"]["data"]["Corefile"]
    lines = [line.strip() for line in corefile.splitlines()]
    assert lines[0] == ".:1053 {"
    assert f"kubernetes {domain} in-addr.arpa ip6.arpa {{" in lines
    for needed in ("pods insecure", "forward . /etc/resolv.conf", "cache 30", "errors", "health :8080",
                   "ready :8181"):
        assert needed in lines
    assert "loop" not in lines
    assert corefile.count("{") == corefile.count("}")


def test_pod_defaults() -> None:
    objs = by_kind()
    pod_ = objs["Pod"]
    spec = pod_["spec"]
    assert pod_["metadata"]["labels"]["k8s-app"] == "kube-dns"  # what Service kube-dns selects
    assert pod_["metadata"]["annotations"] == {coredns.SPEC_HASH: coredns.spec_hash(spec)}
    assert spec["restartPolicy"] == "Always"
    assert spec["serviceAccountName"] == "coredns"
    assert spec["dnsPolicy"] == "Default"
    c = container(objs)
    assert c["image"] == "registry.k8s.io/coredns/coredns:v1.12.0"
    assert c["args"] == ["-conf", "/etc/coredns/Corefile"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8181, "scheme": "HTTP"}
    assert c["resources"] == {"requests": {"cpu": "2m", "memory": "16Mi"}}
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert {p["containerPort"] for p in c["ports"]} == {1053}
    assert spec["volumes"][0]["configMap"]["name"] == "coredns"
    assert c["volumeMounts"][0]["mountPath"] == "/etc/coredns"


def test_settings_reach_the_pod() -> None:
    settings = coredns.CoreDNSSettings(enabled=True, image="example.test/dns:1", pull_policy="Never",
                                       resources={"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}})
    c = container(by_kind(settings))
    assert c["image"] == "example.test/dns:1"
    assert c["imagePullPolicy"] == "Never"
    assert c["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}
    assert "resources" not in container(by_kind(coredns.CoreDNSSettings(resources={})))


def test_service() -> None:
    svc = by_kind()["Service"]
    assert (svc["metadata"]["namespace"], svc["metadata"]["name"]) == ("kube-system", "kube-dns")
    assert "clusterIP" not in svc["spec"]  # the sync gives it the host copy's
    assert svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
    assert sorted((p["port"], p["protocol"], p["targetPort"]) for p in svc["spec"]["ports"]) == [
        (53, "TCP", 1053), (53, "UDP", 1053)]


def test_manifests_are_fresh_copies() -> None:
    a, b = by_kind(), by_kind()
    container(a)["image"] = "changed"
    assert container(b)["image"] != "changed"


# ------------------------------------------------------------------ apply

def test_differs() -> None:
    assert not coredns.differs({"a": 1}, {"a": 1, "b": 2})
    assert coredns.differs({"a": 1}, {"a": 2})
    assert coredns.differs({"a": [1, 2]}, {"a": [1]})
    assert not coredns.differs({"a": [{"x": 1}]}, {"a": [{"x": 1, "defaulted": True}]})
    assert coredns.differs({"a": {"b": 1}}, {})


def test_apply_creates_then_changes_nothing() -> None:
    virtual = FakeKube("virtual")
    settings = coredns.CoreDNSSettings(enabled=True)
    done = coredns.apply(virtual, settings)
    assert done == [
        "created ServiceAccount kube-system/coredns", "created ClusterRole system:coredns",
        "created ClusterRoleBinding system:coredns", "created ConfigMap kube-system/coredns",
        "created Pod kube-system/coredns", "created Service kube-system/kube-dns"]
    mark = len(virtual.log)
    assert coredns.apply(virtual, settings) == []  # a restarted syncer: no writes at all
    assert len(virtual.log) == mark


def test_apply_updates_what_changed_and_keeps_the_cluster_ip() -> None:
    virtual = FakeKube("virtual")
    coredns.apply(virtual, coredns.CoreDNSSettings(enabled=True))
    ip = virtual.get(SERVICES, "kube-dns", "kube-system")["spec"]["clusterIP"]
    # server-side defaults and another writer's additions do not count as a difference
    virtual.patch(SERVICEACCOUNTS, "coredns", {"secrets": [{"name": "x"}]}, "kube-system")
    done = coredns.apply(virtual, coredns.CoreDNSSettings(enabled=True, image="example.test/dns:2",
                                                          cluster_domain="example.test"))
    assert done == ["updated ConfigMap kube-system/coredns", "replaced Pod kube-system/coredns"]
    pod_ = virtual.get(PODS, "coredns", "kube-system")
    assert pod_["spec"]["containers"][0]["image"] == "example.test/dns:2"
    assert "example.test" in virtual.get(CONFIGMAPS, "coredns", "kube-system")["data"]["Corefile"]
    assert virtual.get(SERVICES, "kube-dns", "kube-system")["spec"]["clusterIP"] == ip


def test_pod_replaced_when_ended_or_being_deleted_and_recreated_when_lost() -> None:
    virtual = FakeKube("virtual")
    settings = coredns.CoreDNSSettings(enabled=True)
    coredns.apply(virtual, settings)
    uid = virtual.get(PODS, "coredns", "kube-system")["metadata"]["uid"]
    virtual.patch(PODS, "coredns", {"status": {"phase": "Failed"}}, "kube-system", subresource="status")  # evicted
    assert coredns.apply(virtual, settings) == ["replaced Pod kube-system/coredns"]
    assert virtual.get(PODS, "coredns", "kube-system")["metadata"]["uid"] != uid
    # still being deleted (a graceful deletion on a node): retried, nothing created over it
    virtual.patch(PODS, "coredns", {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}, "kube-system")
    with pytest.raises(ApiError):
        coredns.apply(virtual, settings)
    del virtual.objects[("pods", "kube-system", "coredns")]  # the deletion ends
    assert coredns.apply(virtual, settings) == ["created Pod kube-system/coredns"]


def test_deployment_of_an_older_syncer_is_deleted() -> None:
    virtual = FakeKube("virtual")
    virtual.create(coredns.DEPLOYMENTS, {"metadata": {"name": "coredns", "namespace": "kube-system",
                                                      "labels": dict(coredns.LABELS)}, "spec": {}})
    assert "deleted Deployment kube-system/coredns" in coredns.apply(virtual, coredns.CoreDNSSettings(enabled=True))
    assert virtual.get(coredns.DEPLOYMENTS, "coredns", "kube-system") is None
    # someone else's Deployment of that name stays
    virtual.create(coredns.DEPLOYMENTS, {"metadata": {"name": "coredns", "namespace": "kube-system"}, "spec": {}})
    coredns.apply(virtual, coredns.CoreDNSSettings(enabled=True))
    assert virtual.get(coredns.DEPLOYMENTS, "coredns", "kube-system") is not None


def test_keep_applies_again_until_stopped() -> None:
    virtual = FakeKube("virtual")
    settings = coredns.CoreDNSSettings(enabled=True)
    coredns.apply(virtual, settings)
    virtual.delete(PODS, "coredns", "kube-system", grace_period_seconds=0)
    stopping = threading.Event()
    thread = threading.Thread(target=coredns.keep, args=(virtual, settings, stopping, 0.01))
    thread.start()
    try:
        for _ in range(500):
            if virtual.get(PODS, "coredns", "kube-system") is not None:
                break
            threading.Event().wait(0.01)
    finally:
        stopping.set()
        thread.join(5)
    assert virtual.get(PODS, "coredns", "kube-system") is not None
    assert not thread.is_alive()


def test_apply_until_done_retries() -> None:
    class Flaky(FakeKube):
        failures = 2

        def get(self, kind, name, namespace=None):  # type: ignore[no-untyped-def, override]
            if self.failures:
                self.failures -= 1
                raise ApiError(0, "ConnectionRefused", "not up yet")
            return super().get(kind, name, namespace)

    virtual = Flaky("virtual")
    assert coredns.apply_until_done(virtual, coredns.CoreDNSSettings(enabled=True), threading.Event(), interval=0)
    assert virtual.get(PODS, "coredns", "kube-system") is not None
    stopped = threading.Event()
    stopped.set()
    assert not coredns.apply_until_done(FakeKube(), coredns.CoreDNSSettings(), stopped)


# ------------------------------------------------------------------ readiness

def test_ready_watcher_latches() -> None:
    virtual = FakeKube("virtual")
    watcher = coredns.ReadyWatcher(virtual)
    assert not watcher.check()
    virtual.create(ENDPOINTS, {"metadata": {"name": "kube-dns", "namespace": "kube-system"},
                               "subsets": [{"notReadyAddresses": [{"ip": "10.244.0.5"}]}]})
    assert not watcher.check() and not watcher.ready()
    virtual.patch(ENDPOINTS, "kube-dns", {"subsets": [{"addresses": [{"ip": "10.244.0.5"}]}]}, "kube-system")
    assert watcher.check() and watcher.ready()
    assert watcher.ready_after is not None
    virtual.delete(ENDPOINTS, "kube-dns", "kube-system")
    assert watcher.ready()  # a CoreDNS restart must not take pod R-0 out of its Service


def test_readiness_gate() -> None:
    w = World()
    w.sync()
    assert w.syncer.ready()
    w.syncer.readiness_gates.append(lambda: False)
    assert not w.syncer.ready()


# ------------------------------------------------------------------ environment

def test_config_defaults_off() -> None:
    cfg = load_config(ENV, check_files=False)
    assert cfg.coredns.enabled is False
    assert cfg.coredns.image == "registry.k8s.io/coredns/coredns:v1.12.0"
    assert cfg.coredns.resources == {"requests": {"cpu": "2m", "memory": "16Mi"}}


def test_config_from_env() -> None:
    cfg = load_config({**ENV, "COREDNS_ENABLED": "true", "COREDNS_IMAGE": "example.test/dns:1",
                       "COREDNS_IMAGE_PULL_POLICY": "Never", "CLUSTER_DOMAIN": "example.test",
                       "COREDNS_RESOURCES": '{"requests": {"cpu": "5m"}}'}, check_files=False)
    assert cfg.coredns == coredns.CoreDNSSettings(enabled=True, image="example.test/dns:1", pull_policy="Never",
                                                  cluster_domain="example.test",
                                                  resources={"requests": {"cpu": "5m"}})


@pytest.mark.parametrize("var, value", [("COREDNS_ENABLED", "maybe"), ("COREDNS_IMAGE_PULL_POLICY", "Sometimes"),
                                        ("COREDNS_RESOURCES", "[1]"), ("COREDNS_RESOURCES", "{nope")])
def test_config_rejects(var: str, value: str) -> None:
    with pytest.raises(ConfigError, match=var):
        load_config({**ENV, var: value}, check_files=False)


# ------------------------------------------------------------------ the CoreDNS pod on the host

def coredns_pod() -> dict[str, Any]:
    made = by_kind()["Pod"]
    return pod("coredns-abc", "kube-system", spec=made["spec"], labels=made["metadata"]["labels"])


def test_coredns_pod_keeps_host_dns_but_gets_the_virtual_api() -> None:
    ctx = replace(CTX, dns_ip="10.96.0.77")
    hpod = translate_pod(coredns_pod(), SETTINGS, ctx)
    assert hpod["spec"]["dnsPolicy"] == "Default"  # no loop through itself
    assert "dnsConfig" not in hpod["spec"]
    env = {e["name"]: e.get("value") for e in hpod["spec"]["containers"][0]["env"]}
    assert env["KUBERNETES_SERVICE_HOST"] == CTX.api_service_ip
    # every other pod asks the virtual CoreDNS
    other = translate_pod(pod("web", "team", spec={"containers": [{"name": "c", "image": "i"}]}), SETTINGS, ctx)
    assert other["spec"]["dnsPolicy"] == "None"
    assert other["spec"]["dnsConfig"]["nameservers"] == ["10.96.0.77"]


def test_synced_end_to_end_in_fakes() -> None:
    """The applied objects, synced: kube-dns gets its host copy's IP, the CoreDNS pod keeps dnsPolicy
    Default, a user pod gets that IP as nameserver."""
    w = World()
    coredns.apply(w.virtual, coredns.CoreDNSSettings(enabled=True))
    w.virtual.create(PODS, coredns_pod())
    w.virtual.create(PODS, pod("web", "team", spec={"containers": [{"name": "c", "image": "i"}]}))
    w.sync()
    host_dns = w.host.get(SERVICES, "kube-dns-x-kube-system-x-vc", N)
    assert host_dns is not None
    ip = host_dns["spec"]["clusterIP"]
    assert w.virtual.get(SERVICES, "kube-dns", "kube-system")["spec"]["clusterIP"] == ip
    assert w.host.get(PODS, "coredns-abc-x-kube-system-x-vc", N)["spec"]["dnsPolicy"] == "Default"
    web = w.host.get(PODS, "web-x-team-x-vc", N)
    assert web["spec"]["dnsConfig"]["nameservers"] == [ip]
    # the virtual default/kubernetes Service is the virtual API server's (host Service R): what
    # kubernetes.default resolves to through CoreDNS
    # (created by the API server itself in a real cluster)
    # a restart applies nothing new and keeps the IP
    assert coredns.apply(w.virtual, coredns.CoreDNSSettings(enabled=True)) == []
    w.restart()
    assert w.virtual.get(SERVICES, "kube-dns", "kube-system")["spec"]["clusterIP"] == ip
