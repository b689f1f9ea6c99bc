"""The reconcile loop against two in-memory API servers (fake_kube), driven synchronously."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from fake_kube import FakeKube
from syncer_testdata import SETTINGS, token_volume
from vcluster_syncer.kube import (
    CONFIGMAPS,
    ENDPOINTS,
    EVENTS,
    NAMESPACES,
    NETWORK_POLICIES,
    NODES,
    PODS,
    PVCS,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    STORAGE_CLASSES,
)
from vcluster_syncer.parts import default_parts
from vcluster_syncer.syncer import Syncer
from vcluster_syncer.translate.metadata import ANN_NAME, FAKE_NODE_LABEL, MANAGED_BY
from vcluster_syncer.translate.runtimeclass import RUNTIME_CLASS_CONTAINER

N = "host-ns"


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


class World:
    """A host and a virtual API server, and a syncer between them (restartable)."""

    def __init__(self, **settings: Any) -> None:
        self.clock = Clock()
        self.virtual = FakeKube("virtual", self.clock, ip_prefix="10.96.1.")
        self.host = FakeKube("host", self.clock, ip_prefix="10.96.2.")
        api = self.host.create(SERVICES, {"metadata": {"name": "vc", "namespace": N},
                                          "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 6443}]}})
        self.api_ip = api["spec"]["clusterIP"]
        for ns in ("default", "kube-system", "team", "other"):
            self.virtual.create(NAMESPACES, {"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}})
            self.virtual.create(SERVICEACCOUNTS, {"metadata": {"name": "default", "namespace": ns}})
        self.settings = replace(SETTINGS, host_namespace=N, service_uid=api["metadata"]["uid"], **settings)
        self.syncer = self.new_syncer()

    def new_syncer(self) -> Syncer:
        syncer = Syncer(self.settings, self.virtual, self.host, virtual_ca_pem="VIRTUAL-CA",
                        api_service_ip=self.api_ip, clock=self.clock)
        for part in default_parts(self.settings):
            syncer.add_part(part)
        return syncer

    def sync(self, rounds: int = 6) -> None:
        """Let the syncer run until nothing changes any more: relisting after each round stands in for the
        watch events of the syncer's own writes."""
        for _ in range(rounds):
            mark = (len(self.host.log), len(self.virtual.log))
            self.syncer.sync_once()
            if (len(self.host.log), len(self.virtual.log)) == mark:
                return
        raise AssertionError("the syncer keeps changing things")

    def restart(self) -> None:
        self.syncer = self.new_syncer()
        self.sync()

    # host-side actors
    def schedule(self, host_name: str, node: str = "node1", phase: str = "Running") -> None:
        self.host.patch(PODS, host_name, {"spec": {"nodeName": node}}, N)
        self.host.patch(PODS, host_name, {"status": {
            "phase": phase, "hostIP": "192.168.0.2", "podIP": "10.244.0.7", "startTime": "2024-01-01T00:00:00Z",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}},
            N, subresource="status")


@pytest.fixture
def world() -> World:
    w = World()
    w.sync()
    return w


def vpod(name: str = "web", ns: str = "team", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ------------------------------------------------------------------ readiness

def test_ready_after_first_sync_and_default_service_account() -> None:
    w = World()
    w.virtual.delete(SERVICEACCOUNTS, "default", "default")
    assert not w.syncer.ready()
    w.sync()
    assert w.syncer.first_sync_done.is_set() and not w.syncer.ready()
    w.virtual.create(SERVICEACCOUNTS, {"metadata": {"name": "default", "namespace": "default"}})
    w.sync()
    assert w.syncer.ready()


# ------------------------------------------------------------------ pods

def test_pod_with_references_and_token(world: World) -> None:
    w = world
    w.virtual.create(CONFIGMAPS, {"metadata": {"name": "cfg", "namespace": "team"}, "data": {"a": "1"}})
    w.virtual.create(CONFIGMAPS, {"metadata": {"name": "unused", "namespace": "team"}, "data": {"a": "1"}})
    w.virtual.create(SECRETS, {"metadata": {"name": "pw", "namespace": "team"}, "data": {"p": b64("x")}})
    w.virtual.create(PODS, vpod(
        volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}, token_volume()],
        containers=[{"name": "c", "image": "busybox",
                     "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "p"}}}]}]))
    w.sync()
    hpod = w.host.get(PODS, "web-x-team-x-vc", N)
    assert hpod is not None
    assert hpod["metadata"]["labels"][MANAGED_BY] == "vc"
    assert hpod["spec"]["serviceAccountName"] == "vc-workload-vc"
    assert w.host.get(CONFIGMAPS, "cfg-x-team-x-vc", N) is not None
    assert w.host.get(CONFIGMAPS, "unused-x-team-x-vc", N) is None
    assert w.host.get(SECRETS, "pw-x-team-x-vc", N) is not None
    token = w.host.get(SECRETS, "web-sa-token-x-team-x-vc", N)
    assert token is not None
    assert base64.b64decode(token["data"]["token"]).decode().startswith("token-default-web-")
    assert base64.b64decode(token["data"]["ca.crt"]).decode() == "VIRTUAL-CA"
    # the ConfigMap and Secret were created before the pod
    creates = [c for c in w.host.calls if c[0] == "create"]
    assert creates.index(("create", "configmaps", "cfg-x-team-x-vc")) < creates.index(
        ("create", "pods", "web-x-team-x-vc"))


def test_scheduling_binds_to_fake_node_and_copies_status(world: World) -> None:
    w = world
    w.virtual.create(PODS, vpod())
    w.sync()
    w.schedule("web-x-team-x-vc", "node1")
    w.sync()
    node = w.virtual.get(NODES, "node1")
    assert node is not None and node["metadata"]["labels"][FAKE_NODE_LABEL] == "true"
    assert node["status"]["conditions"][0]["type"] == "Ready"
    pod = w.virtual.get(PODS, "web", "team")
    assert pod["spec"]["nodeName"] == "node1"
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"] == "10.244.0.7"
    # the binding happened after the node existed
    calls = w.virtual.calls
    assert calls.index(("create", "nodes", "node1")) < calls.index(("binding", "pods", "web"))


def test_virtual_pod_deletion_propagates(world: World) -> None:
    w = world
    w.virtual.create(CONFIGMAPS, {"metadata": {"name": "cfg", "namespace": "team"}, "data": {"a": "1"}})
    w.virtual.create(PODS, vpod(volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}, token_volume()]))
    w.sync()
    w.schedule("web-x-team-x-vc")
    w.sync()
    w.virtual.delete(PODS, "web", "team", grace_period_seconds=20)  # bound: graceful
    w.sync()
    hpod = w.host.get(PODS, "web-x-team-x-vc", N)
    assert hpod["metadata"]["deletionTimestamp"] and hpod["metadata"]["deletionGracePeriodSeconds"] == 20
    assert w.virtual.get(PODS, "web", "team") is not None  # still terminating
    w.host.force_delete(PODS, "web-x-team-x-vc", N)  # the host kubelet finished
    w.sync()
    assert w.virtual.get(PODS, "web", "team") is None
    assert w.host.get(SECRETS, "web-sa-token-x-team-x-vc", N) is None
    assert w.host.get(CONFIGMAPS, "cfg-x-team-x-vc", N) is None  # no longer referenced
    assert w.virtual.get(NODES, "node1") is None  # no synced pod runs there any more


def test_unscheduled_virtual_pod_deleted_at_once(world: World) -> None:
    w = world
    w.virtual.create(PODS, vpod())
    w.sync()
    w.virtual.delete(PODS, "web", "team")
    w.sync()
    assert w.host.get(PODS, "web-x-team-x-vc", N) is None


def test_host_pod_deleted_deletes_virtual_pod(world: World) -> None:
    w = world
    w.virtual.create(PODS, vpod())
    w.sync()
    w.schedule("web-x-team-x-vc")
    w.sync()
    w.host.force_delete(PODS, "web-x-team-x-vc", N)
    w.sync()
    assert w.virtual.get(PODS, "web", "team") is None
    assert w.host.get(PODS, "web-x-team-x-vc", N) is None


def test_host_pod_deleted_before_it_ran_is_recreated(world: World) -> None:
    w = world
    w.virtual.create(PODS, vpod())
    w.sync()
    w.host.force_delete(PODS, "web-x-team-x-vc", N)
    w.sync()
    assert w.host.get(PODS, "web-x-team-x-vc", N) is not None
    assert w.virtual.get(PODS, "web", "team") is not None


def test_pod_label_and_image_updates(world: World) -> None:
    w = world
    w.virtual.create(PODS, vpod())
    w.sync()
    w.virtual.patch(PODS, "web", {"metadata": {"labels": {"app": "web2"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}, "team")
    w.sync()
    hpod = w.host.get(PODS, "web-x-team-x-vc", N)
    assert "web2" in hpod["metadata"]["labels"].values()
    assert hpod["spec"]["containers"][0]["image"] == "busybox:2"


def test_replaced_pod_recreates_host_pod(world: World) -> None:
    w = world
    w.virtual.create(PODS, vpod())
    w.sync()
    old_uid = w.host.get(PODS, "web-x-team-x-vc", N)["metadata"]["uid"]
    w.virtual.force_delete(PODS, "web", "team")
    w.virtual.create(PODS, vpod())  # same name, new uid (StatefulSet-style)
    w.sync()
    hpod = w.host.get(PODS, "web-x-team-x-vc", N)
    assert hpod["metadata"]["uid"] != old_uid
    assert hpod["metadata"]["annotations"]["vcluster.loft.sh/object-uid"] == w.virtual.get(
        PODS, "web", "team")["metadata"]["uid"]


def test_token_refreshed_before_expiry(world: World) -> None:
    w = world
    w.virtual.create(PODS, vpod(volumes=[token_volume()]))
    w.sync()
    first = w.host.get(SECRETS, "web-sa-token-x-team-x-vc", N)["data"]["token"]
    w.sync()
    assert w.host.get(SECRETS, "web-sa-token-x-team-x-vc", N)["data"]["token"] == first
    w.clock.t += 3000  # 10 minutes left of 60
    w.sync()
    assert w.host.get(SECRETS, "web-sa-token-x-team-x-vc", N)["data"]["token"] != first


def test_pods_wait_for_virtual_dns(world: World) -> None:
    w = world
    w.virtual.create(SERVICES, {"metadata": {"name": "kube-dns", "namespace": "kube-system"},
                                "spec": {"clusterIP": "10.96.1.200", "selector": {"k8s-app": "kube-dns"},
                                         "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}})
    w.virtual.create(PODS, vpod())
    w.sync()
    dns_ip = w.host.get(SERVICES, "kube-dns-x-kube-system-x-vc", N)["spec"]["clusterIP"]
    hpod = w.host.get(PODS, "web-x-team-x-vc", N)
    assert hpod["spec"]["dnsPolicy"] == "None"
    assert hpod["spec"]["dnsConfig"]["nameservers"] == [dns_ip]
    assert w.virtual.get(SERVICES, "kube-dns", "kube-system")["spec"]["clusterIP"] == dns_ip


# ------------------------------------------------------------------ services

def test_service_gets_host_cluster_ip(world: World) -> None:
    w = world
    w.virtual.create(SERVICES, {"metadata": {"name": "web", "namespace": "team"},
                                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}})
    old_uid = w.virtual.get(SERVICES, "web", "team")["metadata"]["uid"]
    w.sync()
    hsvc = w.host.get(SERVICES, "web-x-team-x-vc", N)
    vsvc = w.virtual.get(SERVICES, "web", "team")
    assert vsvc["spec"]["clusterIP"] == hsvc["spec"]["clusterIP"]
    # the host took the virtual Service's own IP: the virtual Service was never deleted and re-created
    assert vsvc["metadata"]["uid"] == old_uid
    w.sync()
    assert hsvc["metadata"]["uid"] == w.host.get(SERVICES, "web-x-team-x-vc", N)["metadata"]["uid"]
    assert w.host.get(SERVICES, "web-x-team-x-vc", N)["metadata"]["annotations"][
        "vcluster.loft.sh/object-uid"] == vsvc["metadata"]["uid"]
    # deleting the virtual Service deletes the host copy
    w.virtual.delete(SERVICES, "web", "team")
    w.sync()
    assert w.host.get(SERVICES, "web-x-team-x-vc", N) is None


def test_service_moves_to_host_ip_when_the_host_has_its_ip_taken(world: World) -> None:
    w = world
    w.virtual.create(SERVICES, {"metadata": {"name": "web", "namespace": "team"},
                                "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}})
    vip = w.virtual.get(SERVICES, "web", "team")["spec"]["clusterIP"]
    old_uid = w.virtual.get(SERVICES, "web", "team")["metadata"]["uid"]
    # a host Service of someone else already holds that IP
    w.host.create(SERVICES, {"metadata": {"name": "taken", "namespace": N},
                             "spec": {"clusterIP": vip, "ports": [{"port": 1}]}})
    w.sync()
    hsvc = w.host.get(SERVICES, "web-x-team-x-vc", N)
    vsvc = w.virtual.get(SERVICES, "web", "team")
    assert hsvc["spec"]["clusterIP"] != vip
    assert vsvc["spec"]["clusterIP"] == hsvc["spec"]["clusterIP"]
    assert vsvc["metadata"]["uid"] != old_uid  # re-created with the host's IP


def test_service_recreate_falls_back_when_ip_taken(world: World) -> None:
    w = world
    # another virtual Service holds the IP the host is going to allocate next
    w.virtual.create(SERVICES, {"metadata": {"name": "squatter", "namespace": "other"},
                                "spec": {"clusterIP": "10.96.2.11", "ports": [{"port": 1}]}})
    w.virtual.create(SERVICES, {"metadata": {"name": "a", "namespace": "team"}, "spec": {"ports": [{"port": 80}]}})
    w.sync()
    # both exist in the end, each with its host copy's IP
    for ns, name in (("other", "squatter"), ("team", "a")):
        vsvc = w.virtual.get(SERVICES, name, ns)
        assert vsvc is not None
        assert vsvc["spec"]["clusterIP"] == w.host.get(SERVICES, f"{name}-x-{ns}-x-vc", N)["spec"]["clusterIP"]


def test_node_port_service_keeps_its_virtual_node_port(world: World) -> None:
    w = world
    w.virtual.create(SERVICES, {"metadata": {"name": "np", "namespace": "team"},
                                "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31234}]}})
    w.sync()
    assert w.host.get(SERVICES, "np-x-team-x-vc", N)["spec"]["ports"][0]["nodePort"] == 31234
    assert w.virtual.get(SERVICES, "np", "team")["spec"]["ports"][0]["nodePort"] == 31234


def test_node_port_service_moves_to_the_hosts_port_when_its_own_is_taken(world: World) -> None:
    w = world
    w.host.create(SERVICES, {"metadata": {"name": "taken", "namespace": N},
                             "spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": 31234}]}})
    w.virtual.create(SERVICES, {"metadata": {"name": "np", "namespace": "team"},
                                "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31234}]}})
    vip = w.virtual.get(SERVICES, "np", "team")["spec"]["clusterIP"]
    w.sync()
    hsvc = w.host.get(SERVICES, "np-x-team-x-vc", N)
    assert hsvc["spec"]["ports"][0]["nodePort"] != 31234
    assert hsvc["spec"]["clusterIP"] == vip  # the IP was still granted
    assert w.virtual.get(SERVICES, "np", "team")["spec"]["ports"][0]["nodePort"] == hsvc["spec"]["ports"][0]["nodePort"]


def test_external_name_service_becoming_cluster_ip_keeps_its_virtual_ip(world: World) -> None:
    w = world
    w.virtual.create(SERVICES, {"metadata": {"name": "ext", "namespace": "team"},
                                "spec": {"type": "ExternalName", "externalName": "a.example"}})
    w.sync()
    assert w.host.get(SERVICES, "ext-x-team-x-vc", N)["spec"]["type"] == "ExternalName"
    uid = w.virtual.get(SERVICES, "ext", "team")["metadata"]["uid"]
    # the update the virtual API server answers with a new ClusterIP, which the client dials at once
    w.virtual.patch(SERVICES, "ext", {"spec": {"type": "ClusterIP", "externalName": None, "clusterIP": "10.96.1.77",
                                               "clusterIPs": ["10.96.1.77"], "ports": [{"port": 80}]}}, "team")
    w.clock.t += 2
    w.sync()
    hsvc = w.host.get(SERVICES, "ext-x-team-x-vc", N)
    assert hsvc["spec"]["type"] == "ClusterIP" and hsvc["spec"]["clusterIP"] == "10.96.1.77"
    vsvc = w.virtual.get(SERVICES, "ext", "team")
    assert vsvc["metadata"]["uid"] == uid and vsvc["spec"]["clusterIP"] == "10.96.1.77"  # never moved


def test_default_kubernetes_service_points_at_vcluster_service(world: World) -> None:
    w = world
    w.virtual.create(SERVICES, {"metadata": {"name": "kubernetes", "namespace": "default"},
                                "spec": {"clusterIP": "10.96.1.1", "ports": [{"name": "https", "port": 443}]}})
    w.sync()
    assert w.virtual.get(SERVICES, "kubernetes", "default")["spec"]["clusterIP"] == w.api_ip
    assert w.host.get(SERVICES, "kubernetes-x-default-x-vc", N) is None


def test_endpoints_of_selectorless_services_only(world: World) -> None:
    w = world
    w.virtual.create(SERVICES, {"metadata": {"name": "ext", "namespace": "team"}, "spec": {"ports": [{"port": 80}]}})
    w.virtual.create(ENDPOINTS, {"metadata": {"name": "ext", "namespace": "team"},
                                 "subsets": [{"addresses": [{"ip": "192.168.5.5"}], "ports": [{"port": 80}]}]})
    w.virtual.create(SERVICES, {"metadata": {"name": "sel", "namespace": "team"},
                                "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}})
    w.virtual.create(ENDPOINTS, {"metadata": {"name": "sel", "namespace": "team"}, "subsets": []})
    w.sync()
    hep = w.host.get(ENDPOINTS, "ext-x-team-x-vc", N)
    assert hep["subsets"][0]["addresses"] == [{"ip": "192.168.5.5"}]
    assert w.host.get(ENDPOINTS, "sel-x-team-x-vc", N) is None


# ------------------------------------------------------------------ configmaps, secrets, pvcs

def test_host_copy_deleted_is_recreated_and_updates_flow(world: World) -> None:
    w = World(sync_all_configmaps=True)
    w.virtual.create(CONFIGMAPS, {"metadata": {"name": "cfg", "namespace": "team"}, "data": {"a": "1"}})
    w.sync()
    assert w.host.get(CONFIGMAPS, "cfg-x-team-x-vc", N)["data"] == {"a": "1"}
    w.host.delete(CONFIGMAPS, "cfg-x-team-x-vc", N)
    w.sync()
    assert w.host.get(CONFIGMAPS, "cfg-x-team-x-vc", N) is not None
    w.virtual.patch(CONFIGMAPS, "cfg", {"data": {"a": "2", "b": "3"}}, "team")
    w.sync()
    assert w.host.get(CONFIGMAPS, "cfg-x-team-x-vc", N)["data"] == {"a": "2", "b": "3"}
    w.virtual.delete(CONFIGMAPS, "cfg", "team")
    w.sync()
    assert w.host.get(CONFIGMAPS, "cfg-x-team-x-vc", N) is None


def test_secrets_not_synced_unless_used_or_all(world: World) -> None:
    world.virtual.create(SECRETS, {"metadata": {"name": "s", "namespace": "team"}, "data": {}})
    world.sync()
    assert world.host.get(SECRETS, "s-x-team-x-vc", N) is None
    w = World(sync_all_secrets=True)
    w.virtual.create(SECRETS, {"metadata": {"name": "s", "namespace": "team"}, "data": {}})
    w.sync()
    assert w.host.get(SECRETS, "s-x-team-x-vc", N) is not None


def test_pvc_synced_and_status_back(world: World) -> None:
    w = world
    w.virtual.create(PVCS, {"metadata": {"name": "data", "namespace": "team"},
                            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    w.sync()
    w.host.patch(PVCS, "data-x-team-x-vc", {"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}, N,
                 subresource="status")
    w.sync()
    assert w.virtual.get(PVCS, "data", "team")["status"]["phase"] == "Bound"


def test_foreign_host_object_is_left_alone(world: World) -> None:
    w = World(sync_all_configmaps=True)
    w.host.create(CONFIGMAPS, {"metadata": {"name": "cfg-x-team-x-vc", "namespace": N,
                                            "labels": {MANAGED_BY: "vc"}, "annotations": {ANN_NAME: "else"}},
                               "data": {"mine": "yes"}})
    w.virtual.create(CONFIGMAPS, {"metadata": {"name": "cfg", "namespace": "team"}, "data": {"a": "1"}})
    w.sync()
    assert w.host.get(CONFIGMAPS, "cfg-x-team-x-vc", N)["data"] == {"mine": "yes"}


# ------------------------------------------------------------------ restart

def test_restart_neither_loses_nor_duplicates(world: World) -> None:
    w = world
    w.virtual.create(CONFIGMAPS, {"metadata": {"name": "cfg", "namespace": "team"}, "data": {"a": "1"}})
    w.virtual.create(SERVICES, {"metadata": {"name": "web", "namespace": "team"},
                                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    w.virtual.create(PODS, vpod(volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}, token_volume()]))
    w.sync()
    w.schedule("web-x-team-x-vc")
    w.sync()
    before_host = {k: v["metadata"]["uid"] for k, v in w.host.objects.items()}
    before_virtual = {k: v["metadata"]["uid"] for k, v in w.virtual.objects.items()}
    calls = len(w.host.calls)
    w.restart()
    assert {k: v["metadata"]["uid"] for k, v in w.host.objects.items()} == before_host
    assert {k: v["metadata"]["uid"] for k, v in w.virtual.objects.items()} == before_virtual
    assert not [c for c in w.host.calls[calls:] if c[0] in ("create", "delete")]


def test_changes_while_down_are_applied_on_start(world: World) -> None:
    w = world
    w.virtual.create(CONFIGMAPS, {"metadata": {"name": "cfg", "namespace": "team"}, "data": {"a": "1"}})
    w.virtual.create(PODS, vpod(volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}, token_volume()]))
    w.sync()
    # the syncer is down; the pod (never scheduled) goes away, a new one arrives
    w.virtual.delete(PODS, "web", "team")
    w.virtual.create(PODS, vpod("api"))
    w.restart()
    assert w.host.get(PODS, "web-x-team-x-vc", N) is None
    assert w.host.get(SECRETS, "web-sa-token-x-team-x-vc", N) is None
    assert w.host.get(CONFIGMAPS, "cfg-x-team-x-vc", N) is None
    assert w.host.get(PODS, "api-x-team-x-vc", N) is not None


# ------------------------------------------------------------------ events, nodes, policies, storage classes

def test_host_events_become_virtual_events(world: World) -> None:
    w = world
    w.virtual.create(PODS, vpod())
    w.sync()
    w.host.create(EVENTS, {"metadata": {"name": "web-x-team-x-vc.abc123", "namespace": N},
                           "involvedObject": {"kind": "Pod", "namespace": N, "name": "web-x-team-x-vc",
                                              "apiVersion": "v1"},
                           "reason": "Pulled", "message": "Pulled image", "type": "Normal", "count": 1})
    w.host.create(EVENTS, {"metadata": {"name": "vc-0.def", "namespace": N},
                           "involvedObject": {"kind": "Pod", "namespace": N, "name": "vc-0"},
                           "reason": "Started", "message": "not a synced pod", "type": "Normal"})
    w.sync()
    ev = w.virtual.get(EVENTS, "web.abc123", "team")
    assert ev["involvedObject"]["name"] == "web"
    assert ev["involvedObject"]["uid"] == w.virtual.get(PODS, "web", "team")["metadata"]["uid"]
    assert w.virtual.names(EVENTS, "team") == ["web.abc123"]
    w.host.patch(EVENTS, "web-x-team-x-vc.abc123", {"count": 4}, N)
    w.sync()
    assert w.virtual.get(EVENTS, "web.abc123", "team")["count"] == 4


def test_fake_node_copies_host_capacity_when_readable() -> None:
    w = World()
    w.host.put(NODES, {"metadata": {"name": "node1"}, "status": {"capacity": {"cpu": "2", "pods": "110"},
                                                                 "allocatable": {"cpu": "2", "pods": "110"}}})
    w.virtual.create(PODS, vpod())
    w.sync()
    w.schedule("web-x-team-x-vc", "node1")
    w.sync()
    assert w.virtual.get(NODES, "node1")["status"]["capacity"]["cpu"] == "2"


def test_fake_node_nominal_when_nodes_forbidden(world: World) -> None:
    w = world
    w.host.forbidden.add("nodes")
    w.virtual.create(PODS, vpod())
    w.sync()
    w.schedule("web-x-team-x-vc", "node1")
    w.sync()
    assert w.virtual.get(NODES, "node1")["status"]["capacity"]["cpu"] == "16"


def test_all_nodes_mode() -> None:
    w = World(nodes_mode="all")
    w.host.put(NODES, {"metadata": {"name": "n1", "labels": {"zone": "a"}}, "status": {"capacity": {"cpu": "4"}}})
    w.host.put(NODES, {"metadata": {"name": "n2"}, "status": {"capacity": {"cpu": "8"}}})
    w.sync()
    assert sorted(w.virtual.names(NODES)) == ["n1", "n2"]
    assert w.virtual.get(NODES, "n1")["metadata"]["labels"]["zone"] == "a"
    w.host.delete(NODES, "n2")
    w.sync()
    assert w.virtual.names(NODES) == ["n1"]


def test_network_policies_when_enabled() -> None:
    w = World(sync_network_policies=True)
    w.virtual.create(NETWORK_POLICIES, {"metadata": {"name": "deny", "namespace": "team"},
                                        "spec": {"podSelector": {}, "ingress": [{"from": [
                                            {"namespaceSelector": {"matchLabels": {"env": "x"}}}]}]}})
    w.sync()
    hnp = w.host.get(NETWORK_POLICIES, "deny-x-team-x-vc", N)
    peer = hnp["spec"]["ingress"][0]["from"][0]["podSelector"]
    assert peer["matchExpressions"] == [{"key": MANAGED_BY, "operator": "DoesNotExist"}]
    # a namespace gets the label: the policy is translated again
    w.virtual.patch(NAMESPACES, "other", {"metadata": {"labels": {"env": "x"}}})
    w.sync()
    peer = w.host.get(NETWORK_POLICIES, "deny-x-team-x-vc", N)["spec"]["ingress"][0]["from"][0]["podSelector"]
    assert peer["matchExpressions"] == [{"key": "vcluster.loft.sh/namespace", "operator": "In", "values": ["other"]}]


def test_network_policies_off_by_default(world: World) -> None:
    world.virtual.create(NETWORK_POLICIES, {"metadata": {"name": "deny", "namespace": "team"},
                                            "spec": {"podSelector": {}}})
    world.sync()
    assert world.host.names(NETWORK_POLICIES, N) == []


def test_storage_classes_mirrored() -> None:
    w = World(sync_storage_classes=True)
    w.host.create(STORAGE_CLASSES, {"metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path"})
    w.sync()
    assert w.virtual.get(STORAGE_CLASSES, "local-path")["provisioner"] == "rancher.io/local-path"
    w.host.delete(STORAGE_CLASSES, "local-path")
    w.sync()
    assert w.virtual.get(STORAGE_CLASSES, "local-path") is None


def test_high_level_objects_never_reach_the_host(world: World) -> None:
    kinds = {plural for (plural, _, _) in world.host.objects}
    assert kinds <= {"services", "pods", "configmaps", "secrets", "endpoints", "persistentvolumeclaims",
                     "events", "networkpolicies"}


def test_orphaned_token_secret_removed_on_start(world: World) -> None:
    w = world
    w.virtual.create(PODS, vpod(volumes=[token_volume()]))
    w.sync()
    # while the syncer is down, both pods vanish (the host one was never scheduled)
    w.virtual.delete(PODS, "web", "team")
    w.host.delete(PODS, "web-x-team-x-vc", N)
    w.restart()
    assert w.host.get(SECRETS, "web-sa-token-x-team-x-vc", N) is None


# ------------------------------------------------------------------ RuntimeClasses

def test_pod_of_a_runtime_class_the_host_lacks_is_scheduled_and_held() -> None:
    w = World(syncer_image="syncer:1")
    w.sync()
    w.virtual.runtime_classes.add("gvisor")  # made in the virtual cluster only
    w.virtual.create(PODS, vpod(runtimeClassName="gvisor"))
    w.sync()
    hpod = w.host.get(PODS, "web-x-team-x-vc", N)
    assert hpod is not None and "runtimeClassName" not in hpod["spec"]
    hold = hpod["spec"]["initContainers"][0]
    assert hold["name"] == RUNTIME_CLASS_CONTAINER and hold["image"] == "syncer:1"
    assert "'gvisor' does not exist in the host cluster" in hold["env"][0]["value"]
    events = [e for e in w.virtual.list(EVENTS, "team")[0] if e["involvedObject"]["name"] == "web"]
    assert [e["reason"] for e in events] == ["FailedCreatePodSandBox"]
    assert events[0]["type"] == "Warning" and '"gvisor" does not exist in the host cluster' in events[0]["message"]

    # a RuntimeClass the host has too: the host pod names it and runs under it
    w.host.runtime_classes.add("kata")
    w.virtual.runtime_classes.add("kata")
    w.virtual.create(PODS, vpod("boxed", runtimeClassName="kata"))
    w.sync()
    boxed = w.host.get(PODS, "boxed-x-team-x-vc", N)
    assert boxed["spec"]["runtimeClassName"] == "kata" and "initContainers" not in boxed["spec"]


def test_pod_of_a_runtime_class_the_host_lacks_without_a_syncer_image_is_an_error() -> None:
    w = World()  # no SYNCER_IMAGE: nothing can hold the pod; the host's refusal is reported
    w.sync()
    w.virtual.runtime_classes.add("gvisor")
    w.virtual.create(PODS, vpod(runtimeClassName="gvisor"))
    w.sync()
    assert w.host.get(PODS, "web-x-team-x-vc", N) is None
    messages = [e["message"] for e in w.virtual.list(EVENTS, "team")[0] if e["involvedObject"]["name"] == "web"]
    assert any('RuntimeClass "gvisor" not found' in m for m in messages), messages
