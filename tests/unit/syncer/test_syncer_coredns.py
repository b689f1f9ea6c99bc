"""CoreDNS of the virtual cluster (vcluster_syncer/coredns.py): CoreDNS runs in pod R-0 (the chart); the syncer
applies the selector-less Service kube-system/kube-dns and its Endpoints (the pod's IP), which the generic
sync copies to the host; readiness asks CoreDNS itself."""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import replace
from typing import Any

import pytest
from fake_kube import FakeKube
from syncer_testdata import CTX, SETTINGS, pod
from test_syncer_loop import N, World
from vcluster_syncer import contract, coredns
from vcluster_syncer.config import ConfigError, load_config
from vcluster_syncer.kube import ENDPOINTS, NAMESPACES, SERVICES, ApiError, NotFound
from vcluster_syncer.kube import PODS as PODS_KIND
from vcluster_syncer.translate.pods import translate_pod

ENV = {"VCLUSTER_NAME": "vc", "HOST_NAMESPACE": "ns", "VIRTUAL_SERVER": "https://127.0.0.1:6443",
       "VIRTUAL_TOKEN_FILE": "/t", "VIRTUAL_CA_FILE": "/ca"}
POD_IP = "10.244.0.9"
ON = coredns.CoreDNSSettings(enabled=True, pod_ip=POD_IP)


def by_kind(settings: coredns.CoreDNSSettings = ON) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for _, obj in coredns.manifests(settings)}


# ------------------------------------------------------------------ manifests

def test_objects_and_order() -> None:
    made = coredns.manifests(ON)
    assert [(kind.kind, obj["metadata"]["namespace"], obj["metadata"]["name"]) for kind, obj in made] == [
        ("Service", "kube-system", "kube-dns"), ("Endpoints", "kube-system", "kube-dns")]
    for kind, obj in made:
        assert obj["kind"] == kind.kind and obj["apiVersion"] == kind.api_version
        assert obj["metadata"]["labels"]["k8s-app"] == "kube-dns"


def test_service_has_no_selector_and_maps_53_to_the_pods_dns_port() -> None:
    spec = by_kind()["Service"]["spec"]
    assert "selector" not in spec  # the Endpoints below say where CoreDNS is
    assert "clusterIP" not in spec  # the sync gives it the host copy's
    assert sorted((p["name"], p["port"], p["protocol"], p["targetPort"]) for p in spec["ports"]) == [
        ("dns", 53, "UDP", contract.DNS_PORT), ("dns-tcp", 53, "TCP", contract.DNS_PORT)]


def test_endpoints_name_the_pod() -> None:
    subsets = by_kind()["Endpoints"]["subsets"]
    assert subsets == [{"addresses": [{"ip": POD_IP}],
                        "ports": [{"name": "dns", "port": 1053, "protocol": "UDP"},
                                  {"name": "dns-tcp", "port": 1053, "protocol": "TCP"}]}]
    assert contract.DNS_PORT == 1053


def test_manifests_are_fresh_copies() -> None:
    a, b = by_kind(), by_kind()
    a["Endpoints"]["subsets"][0]["addresses"][0]["ip"] = "changed"
    a["Service"]["metadata"]["labels"]["x"] = "y"
    assert b["Endpoints"]["subsets"][0]["addresses"][0]["ip"] == POD_IP
    assert "x" not in b["Service"]["metadata"]["labels"]


# ------------------------------------------------------------------ apply

def test_differs() -> None:
    assert not coredns.differs({"a": 1}, {"a": 1, "b": 2})
    assert coredns.differs({"a": 1}, {"a": 2})
    assert coredns.differs({"a": [1, 2]}, {"a": [1]})
    assert not coredns.differs({"a": [{"x": 1}]}, {"a": [{"x": 1, "defaulted": True}]})
    assert coredns.differs({"a": {"b": 1}}, {})


def test_apply_creates_then_changes_nothing() -> None:
    virtual = FakeKube("virtual")
    assert coredns.apply(virtual, ON) == ["created Service kube-system/kube-dns",
                                          "created Endpoints kube-system/kube-dns"]
    mark = len(virtual.log)
    assert coredns.apply(virtual, ON) == []  # a restarted syncer: no writes at all
    assert len(virtual.log) == mark


def test_apply_follows_a_new_pod_ip_and_keeps_the_cluster_ip() -> None:
    virtual = FakeKube("virtual")
    coredns.apply(virtual, ON)
    ip = virtual.get(SERVICES, "kube-dns", "kube-system")["spec"]["clusterIP"]
    assert coredns.apply(virtual, replace(ON, pod_ip="10.244.0.10")) == ["updated Endpoints kube-system/kube-dns"]
    eps = virtual.get(ENDPOINTS, "kube-dns", "kube-system")
    assert eps["subsets"][0]["addresses"] == [{"ip": "10.244.0.10"}]
    assert virtual.get(SERVICES, "kube-dns", "kube-system")["spec"]["clusterIP"] == ip


def test_apply_removes_the_selector_of_an_older_syncers_service() -> None:
    """An older syncer ran CoreDNS as a virtual pod that kube-dns selected: the selector goes, so the virtual
    endpoints controller leaves our Endpoints alone."""
    virtual = FakeKube("virtual")
    old = by_kind()["Service"]
    old["spec"]["selector"] = {"k8s-app": "kube-dns"}
    virtual.create(SERVICES, old)
    assert coredns.apply(virtual, ON)[0] == "updated Service kube-system/kube-dns"
    assert not virtual.get(SERVICES, "kube-dns", "kube-system")["spec"].get("selector")


def test_apply_makes_kube_system_when_the_api_server_has_not_yet() -> None:
    class NoKubeSystem(FakeKube):
        def create(self, kind, obj):  # type: ignore[no-untyped-def, override]
            ns = obj["metadata"].get("namespace")
            if kind.namespaced and ns and self.get(NAMESPACES, ns) is None:
                raise NotFound(404, "NotFound", f'namespaces "{ns}" not found')
            return super().create(kind, obj)

    virtual = NoKubeSystem("virtual")
    assert len(coredns.apply(virtual, ON)) == 2
    assert virtual.get(NAMESPACES, "kube-system") is not None
    assert virtual.get(ENDPOINTS, "kube-dns", "kube-system") is not None


def test_apply_needs_the_pod_ip() -> None:
    with pytest.raises(ApiError, match="IP"):
        coredns.apply(FakeKube("virtual"), coredns.CoreDNSSettings(enabled=True))


def test_keep_applies_again_until_stopped() -> None:
    virtual = FakeKube("virtual")
    coredns.apply(virtual, ON)
    virtual.delete(ENDPOINTS, "kube-dns", "kube-system")
    stopping = threading.Event()
    thread = threading.Thread(target=coredns.keep, args=(virtual, ON, stopping, 0.01))
    thread.start()
    try:
        for _ in range(500):
            if virtual.get(ENDPOINTS, "kube-dns", "kube-system") is not None:
                break
            threading.Event().wait(0.01)
    finally:
        stopping.set()
        thread.join(5)
    assert virtual.get(ENDPOINTS, "kube-dns", "kube-system") is not None
    assert not thread.is_alive()


def test_apply_until_done_retries() -> None:
    class Flaky(FakeKube):
        failures = 2

        def create(self, kind, obj):  # type: ignore[no-untyped-def, override]
            if self.failures:
                self.failures -= 1
                raise ApiError(0, "ConnectionRefused", "not up yet")
            return super().create(kind, obj)

    virtual = Flaky("virtual")
    assert coredns.apply_until_done(virtual, ON, threading.Event(), interval=0)
    assert virtual.get(ENDPOINTS, "kube-dns", "kube-system") is not None
    stopped = threading.Event()
    stopped.set()
    assert not coredns.apply_until_done(FakeKube(), ON, stopped)


def test_apply_waits_for_the_service_ip_repair() -> None:
    """kube-dns is created only once the API server's first Service IP repair has run (a Service created during
    it can break the API server's health for good in v1.33)."""
    class Starting(FakeKube):
        polls = 0

        def ready(self, check: str = "") -> bool:
            self.polls += 1
            if self.polls == 3:
                self.unready.discard(coredns.SERVICE_IP_REPAIR_CHECK)
            if self.unready:
                assert self.get(SERVICES, "kube-dns", "kube-system") is None, "created before the repair ran"
            return super().ready(check)

    virtual = Starting("virtual")
    virtual.unready.add(coredns.SERVICE_IP_REPAIR_CHECK)
    assert coredns.apply_until_done(virtual, ON, threading.Event(), interval=0)
    assert virtual.polls == 3
    assert virtual.get(SERVICES, "kube-dns", "kube-system") is not None


def test_own_ip_is_a_local_address() -> None:
    assert coredns.own_ip("127.0.0.1") == "127.0.0.1"


# ------------------------------------------------------------------ DNS wire format

def answer(query: bytes, ips: list[str], rcode: int = 0, query_id: int | None = None) -> bytes:
    qid = struct.unpack("!H", query[:2])[0] if query_id is None else query_id
    header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(ips), 0, 0)
    records = b"".join(struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton(ip) for ip in ips)
    return header + query[12:] + records


def test_query_format() -> None:
    q = coredns.dns_query("kube-dns.kube-system.svc.cluster.local", 7)
    assert q[:12] == struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)
    assert q[12:] == b"\x08kube-dns\x0bkube-system\x03svc\x07cluster\x05local\x00" + struct.pack("!HH", 1, 1)


def test_a_records() -> None:
    q = coredns.dns_query("kube-dns.kube-system.svc.cluster.local", 7)
    assert coredns.a_records(answer(q, ["10.96.0.12"]), 7) == ["10.96.0.12"]
    assert coredns.a_records(answer(q, ["10.96.0.12", "10.96.0.13"]), 7) == ["10.96.0.12", "10.96.0.13"]
    assert coredns.a_records(answer(q, []), 7) == []
    assert coredns.a_records(answer(q, ["10.96.0.12"], rcode=3), 7) == []  # NXDOMAIN
    assert coredns.a_records(answer(q, ["10.96.0.12"]), 8) == []  # not our query
    assert coredns.a_records(q, 7) == []  # a query, not a response
    assert coredns.a_records(answer(q, ["10.96.0.12"])[:-3], 7) == []  # cut short


def test_resolve_over_udp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))

        def serve() -> None:
            data, peer = server.recvfrom(512)
            server.sendto(answer(data, ["10.96.0.12"]), peer)

        thread = threading.Thread(target=serve)
        thread.start()
        assert coredns.resolve(server.getsockname(), "kube-dns.kube-system.svc.cluster.local") == ["10.96.0.12"]
        thread.join(5)
        assert coredns.resolve(server.getsockname(), "x.cluster.local", timeout=0.05) == []  # no answer


# ------------------------------------------------------------------ readiness

def test_ready_watcher_waits_for_the_host_copy_and_the_answer_then_latches() -> None:
    host = FakeKube("host")
    answers: list[str] = []
    asked: list[tuple[tuple[str, int], str]] = []

    def resolver(server: tuple[str, int], name: str) -> list[str]:
        asked.append((server, name))
        return list(answers)

    watcher = coredns.ReadyWatcher(host, N, "kube-dns-x-kube-system-x-vc", cluster_domain="example.test",
                                   resolver=resolver)
    assert not watcher.check() and "not created" in watcher.last
    assert not asked  # no host copy yet: nothing to compare with
    host.create(SERVICES, {"metadata": {"name": "kube-dns-x-kube-system-x-vc", "namespace": N}, "spec": {}})
    ip = host.get(SERVICES, "kube-dns-x-kube-system-x-vc", N)["spec"]["clusterIP"]
    assert not watcher.check()
    assert asked[-1] == (("127.0.0.1", 1053), "kube-dns.kube-system.svc.example.test")
    answers.append("10.96.9.9")  # an old address (a Service not yet re-created with the host's IP)
    assert not watcher.check() and ip in watcher.last
    answers.append(ip)
    assert watcher.check() and watcher.ready()
    assert watcher.ready_after is not None
    answers.clear()
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
    assert cfg.coredns == coredns.CoreDNSSettings(enabled=False)


def test_config_from_env() -> None:
    cfg = load_config({**ENV, "COREDNS_ENABLED": "true", "CLUSTER_DOMAIN": "example.test"}, check_files=False)
    assert cfg.coredns == coredns.CoreDNSSettings(enabled=True, cluster_domain="example.test")


def test_config_rejects() -> None:
    with pytest.raises(ConfigError, match="COREDNS_ENABLED"):
        load_config({**ENV, "COREDNS_ENABLED": "maybe"}, check_files=False)


# ------------------------------------------------------------------ synced

def test_synced_end_to_end_in_fakes() -> None:
    """The applied objects, synced: kube-dns gets its host copy's IP, its Endpoints go to the host as they
    are (the host copy routes to CoreDNS in pod R-0), a user pod gets that IP as nameserver."""
    w = World()
    coredns.apply(w.virtual, ON)
    w.virtual.create(PODS_KIND, pod("web", "team", spec={"containers": [{"name": "c", "image": "i"}]}))
    w.sync()
    host_dns = w.host.get(SERVICES, "kube-dns-x-kube-system-x-vc", N)
    assert host_dns is not None and not host_dns["spec"].get("selector")
    ip = host_dns["spec"]["clusterIP"]
    assert w.virtual.get(SERVICES, "kube-dns", "kube-system")["spec"]["clusterIP"] == ip
    host_eps = w.host.get(ENDPOINTS, "kube-dns-x-kube-system-x-vc", N)
    assert host_eps["subsets"][0]["addresses"][0]["ip"] == POD_IP
    assert {p["port"] for p in host_eps["subsets"][0]["ports"]} == {1053}
    web = w.host.get(PODS_KIND, "web-x-team-x-vc", N)
    assert web["spec"]["dnsConfig"]["nameservers"] == [ip]
    # a restart applies nothing new and keeps the IP
    assert coredns.apply(w.virtual, ON) == []
    w.restart()
    assert w.virtual.get(SERVICES, "kube-dns", "kube-system")["spec"]["clusterIP"] == ip


def test_user_pods_ask_the_virtual_dns() -> None:
    ctx = replace(CTX, dns_ip="10.96.0.77")
    other = translate_pod(pod("web", "team", spec={"containers": [{"name": "c", "image": "i"}]}), SETTINGS, ctx)
    assert other["spec"]["dnsPolicy"] == "None"
    assert other["spec"]["dnsConfig"]["nameservers"] == ["10.96.0.77"]


def test_changed_tells_which_events_need_an_apply() -> None:
    made = by_kind()
    assert not coredns.changed("kube-system/kube-dns", made["Endpoints"], ON)
    assert not coredns.changed("kube-system/kube-dns", made["Service"], ON)
    assert not coredns.changed("default/web", None, ON)
    assert coredns.changed("kube-system/kube-dns", None, ON)  # deleted
    # a fork of a snapshot: the template's Endpoints name the template's pod
    assert coredns.changed("kube-system/kube-dns", by_kind(replace(ON, pod_ip="10.244.0.77"))["Endpoints"], ON)


def test_keep_applies_at_once_when_woken() -> None:
    virtual = FakeKube("virtual")
    coredns.apply(virtual, ON)
    virtual.patch(ENDPOINTS, "kube-dns", {"subsets": [{"addresses": [{"ip": "10.244.0.77"}]}]}, "kube-system")
    stopping, wake = threading.Event(), threading.Event()
    thread = threading.Thread(target=coredns.keep, args=(virtual, ON, stopping, 3600.0, wake))
    thread.start()
    try:
        wake.set()
        for _ in range(500):
            if virtual.get(ENDPOINTS, "kube-dns", "kube-system")["subsets"][0]["addresses"] == [{"ip": POD_IP}]:
                break
            threading.Event().wait(0.01)
    finally:
        stopping.set()
        wake.set()
        thread.join(5)
    assert virtual.get(ENDPOINTS, "kube-dns", "kube-system")["subsets"][0]["addresses"] == [{"ip": POD_IP}]
    assert not thread.is_alive()
