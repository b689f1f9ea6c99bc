"""DNS inside the virtual cluster: CoreDNS runs as container ``coredns`` of pod ``R-0`` (chart value
``coredns.enabled``), next to the virtual API server; the syncer gives it its virtual Service.

The chart runs CoreDNS with the ``kubernetes`` plugin reading the *virtual* API server at 127.0.0.1:6443 (a
kubeconfig from Secret ``R-certs``), listening on ``contract.DNS_PORT`` (1053: no NET_BIND_SERVICE
capability needed) and forwarding other names to the pod's resolver. It starts with the API server, so DNS
is ready about when the API is, instead of after a CoreDNS pod has been created in the virtual cluster,
synced, scheduled, started and probed on the host (about 3 s more).

The syncer applies, at start and every ``keep`` interval:

- Service ``kube-system/kube-dns`` without a selector (ports 53 UDP/TCP -> 1053). The generic Service sync
  copies it to the host and gives it the ClusterIP of its host copy, which every synced pod gets as its
  nameserver (the pod rewrite turns ``ClusterFirst`` into ``None`` + that IP);
- Endpoints ``kube-system/kube-dns``: the IP of pod ``R-0`` (``own_ip``), port 1053. The
  generic Endpoints sync copies the Endpoints of a selector-less Service to the host, so the host copy of
  ``kube-dns`` routes to CoreDNS in ``R-0`` with no special case; after a restart of ``R-0`` (new IP) the
  next apply corrects them.

``kubernetes.default`` resolves to the virtual ``default/kubernetes`` Service, whose ClusterIP the syncer
sets to the host Service ``R`` (the virtual API server).

``manifests`` is pure (tested in tests/unit/syncer/test_syncer_coredns.py); ``apply`` creates first and
patches only what differs (idempotent: a restarted syncer changes nothing that is already right; few round
trips on the way to readiness); ``ReadyWatcher`` tells readiness once CoreDNS answers the name of
``kube-dns`` with the ClusterIP of its host copy, i.e. the virtual DNS is served at the address pods use.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import contract
from .kube import ENDPOINTS, NAMESPACES, SERVICES, AlreadyExists, ApiError, Kind, Kube, NotFound

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
SERVICE = "kube-dns"
DNS_PORT = contract.DNS_PORT  # CoreDNS's port in pod R-0; the Service's port is 53
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "app.kubernetes.io/managed-by": "vcluster-syncer"}
PORTS = (("dns", "UDP"), ("dns-tcp", "TCP"))


@dataclass(frozen=True)
class CoreDNSSettings:
    """From COREDNS_ENABLED and CLUSTER_DOMAIN (config.py), and the pod's IP (``own_ip``, at start)."""

    enabled: bool = False
    cluster_domain: str = "cluster.local"
    pod_ip: str = ""  # of pod R-0, where CoreDNS listens


def manifests(settings: CoreDNSSettings) -> list[tuple[Kind, dict[str, Any]]]:
    """The virtual objects, in the order they are applied (the Service before its Endpoints)."""
    meta = {"name": SERVICE, "namespace": NAMESPACE, "labels": dict(LABELS)}
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": dict(meta),
        # No selector: the Endpoints below say where CoreDNS is. No clusterIP: the virtual API server picks
        # one, and the Service sync gives the virtual Service its host copy's ClusterIP (the one that routes).
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": name, "port": 53, "targetPort": DNS_PORT, "protocol": proto} for name, proto in PORTS],
        },
    }
    endpoints = {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": dict(meta),
        "subsets": [{
            "addresses": [{"ip": settings.pod_ip}],
            "ports": [{"name": name, "port": DNS_PORT, "protocol": proto} for name, proto in PORTS],
        }],
    }
    return [(SERVICES, service), (ENDPOINTS, endpoints)]


# ---------------------------------------------------------------- apply (I/O)

def differs(desired: Any, actual: Any) -> bool:
    """True when ``actual`` lacks something ``desired`` says. Dicts compare as subsets (the API server adds
    defaults and metadata), lists element by element with the same length."""
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return True
        return any(differs(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return True
        return any(differs(d, a) for d, a in zip(desired, actual, strict=True))
    return bool(desired != actual)


def update_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch bringing ``actual`` to ``desired`` (None: nothing to do). Lists are replaced whole, which
    is what a merge patch does; a Service's ClusterIP (set by the sync) is never part of it, and a selector
    (e.g. from an older syncer, which ran CoreDNS as a virtual pod) is removed."""
    patch: dict[str, Any] = {}
    labels = desired["metadata"].get("labels") or {}
    if differs(labels, (actual.get("metadata") or {}).get("labels")):
        patch["metadata"] = {"labels": dict(labels)}
    if "spec" in desired:
        spec = {k: v for k, v in desired["spec"].items() if differs(v, (actual.get("spec") or {}).get(k))}
        if (actual.get("spec") or {}).get("selector"):
            spec["selector"] = None
        if spec:
            patch["spec"] = spec
    if "subsets" in desired and differs(desired["subsets"], actual.get("subsets")):
        patch["subsets"] = desired["subsets"]
    return patch or None


def _create_or_patch(virtual: Kube, kind: Kind, desired: dict[str, Any]) -> str | None:
    name, namespace = desired["metadata"]["name"], desired["metadata"]["namespace"]
    what = f"{kind.kind} {namespace}/{name}"
    try:
        virtual.create(kind, desired)  # the usual case at start: one round trip
        return f"created {what}"
    except AlreadyExists:
        pass
    actual = virtual.get(kind, name, namespace)
    if actual is None:
        raise ApiError(409, "Conflict", f"{what} disappeared; applied again")
    patch = update_patch(desired, actual)
    if patch is None:
        return None
    virtual.patch(kind, name, patch, namespace)
    return f"updated {what}"


def apply(virtual: Kube, settings: CoreDNSSettings) -> list[str]:
    """Create or patch the Service and Endpoints; returns what was done ("created Service
    kube-system/kube-dns"...). Raises ApiError (the caller retries: the API server may not answer yet)."""
    if not settings.pod_ip:
        raise ApiError(0, "NoPodIP", "the pod's IP is not known: the kube-dns Endpoints cannot name CoreDNS")
    done: list[str] = []
    for kind, desired in manifests(settings):
        try:
            line = _create_or_patch(virtual, kind, desired)
        except NotFound:
            # The API server makes kube-system a moment after it answers (its system-namespaces controller);
            # making it here does not wait for that. The controller takes an existing one as it is.
            try:
                virtual.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            except AlreadyExists:
                pass
            line = _create_or_patch(virtual, kind, desired)
        if line:
            done.append(line)
    return done


#: The API server's readiness check that its Service IP repair has run once. A Service created while that first
#: run lists Services and IPAddresses can make it fail for good ("ipaddresses ... already exists", not retried
#: in v1.33): /healthz stays 500 and kube-controller-manager never starts. So kube-dns waits for it.
SERVICE_IP_REPAIR_CHECK = "poststarthook/start-service-ip-repair-controllers"


def apply_until_done(virtual: Kube, settings: CoreDNSSettings, stopping: threading.Event,
                     interval: float = 0.1) -> bool:
    """``apply`` until it succeeds (False if ``stopping`` was set first), once the API server's Service IP
    repair has run. On the critical path of readiness: tried every ``interval`` seconds while the API server
    starts."""
    attempt = 0
    while not stopping.is_set() and not virtual.ready(SERVICE_IP_REPAIR_CHECK):
        attempt += 1
        (log.info if attempt % 50 == 1 else log.debug)("coredns: waiting for the API server's %s",
                                                        SERVICE_IP_REPAIR_CHECK)
        stopping.wait(interval)
    attempt = 0
    while not stopping.is_set():
        try:
            for line in apply(virtual, settings):
                log.info("coredns: %s", line)
            return True
        except ApiError as exc:
            attempt += 1
            (log.info if attempt % 20 == 1 else log.debug)("coredns: not applied yet: %s", exc)
            stopping.wait(interval)
    return False


def changed(key: str, new: Mapping[str, Any] | None, settings: CoreDNSSettings) -> bool:
    """Does an informer event on ``key`` (virtual Service or Endpoints) leave kube-dns other than we keep it?
    (E.g. a fork of a snapshot brings the template's Endpoints, naming the template's pod.)"""
    if key != f"{NAMESPACE}/{SERVICE}":
        return False
    if new is None:
        return True
    desired = dict((kind.kind, obj) for kind, obj in manifests(settings))[str(new.get("kind") or "Endpoints")]
    return update_patch(desired, new) is not None


def keep(virtual: Kube, settings: CoreDNSSettings, stopping: threading.Event, interval: float = 10.0,
         wake: threading.Event | None = None) -> None:
    """``apply`` every ``interval`` seconds, or at once when ``wake`` is set, until ``stopping``: a deleted
    or changed Service or Endpoints comes back."""
    wake = wake or threading.Event()
    while not stopping.is_set():
        wake.wait(interval)
        wake.clear()
        if stopping.is_set():
            return
        try:
            for line in apply(virtual, settings):
                log.info("coredns: %s", line)
        except ApiError as exc:
            log.debug("coredns: not applied: %s", exc)


def start_keeper(virtual: Kube, settings: CoreDNSSettings, stopping: threading.Event,
                 wake: threading.Event | None = None) -> threading.Thread:
    thread = threading.Thread(target=keep, args=(virtual, settings, stopping, 10.0, wake), name="coredns-keep",
                              daemon=True)
    thread.start()
    return thread


def own_ip(peer: str, port: int = 443) -> str:
    """This pod's IP: the source address the kernel picks towards ``peer`` (e.g. the host API server's
    Service IP). A UDP connect sends nothing."""
    with socket.socket(socket.AF_INET6 if ":" in peer else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((peer, port))
        return str(sock.getsockname()[0])


# ---------------------------------------------------------------- readiness: ask CoreDNS itself

def dns_query(name: str, query_id: int) -> bytes:
    """A DNS query (recursion desired) for the A records of ``name``."""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.strip(".").split(".")) + b"\0"
    return header + qname + struct.pack("!HH", 1, 1)


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length & 0xC0 == 0xC0:  # compression pointer: two bytes, the end of the name
            return pos + 2
        pos += 1 + length
        if length == 0:
            return pos


def a_records(data: bytes, query_id: int) -> list[str]:
    """The IPv4 addresses in a DNS response to query ``query_id`` ([] for an error, another id, garbage)."""
    try:
        rid, flags, qdcount, ancount = struct.unpack("!HHHH", data[:8])
        if rid != query_id or not flags & 0x8000 or flags & 0x000F:
            return []
        pos = 12
        for _ in range(qdcount):
            pos = _skip_name(data, pos) + 4
        out = []
        for _ in range(ancount):
            pos = _skip_name(data, pos)
            rtype, _cls, _ttl, length = struct.unpack("!HHIH", data[pos:pos + 10])
            pos += 10
            if rtype == 1 and length == 4 and pos + 4 <= len(data):
                out.append(socket.inet_ntoa(data[pos:pos + 4]))
            pos += length
        return out if pos <= len(data) else []
    except (struct.error, IndexError):
        return []


def resolve(server: tuple[str, int], name: str, timeout: float = 0.5) -> list[str]:
    """A records of ``name`` from the DNS server at ``server`` over UDP ([] when it does not answer)."""
    query_id = random.randrange(1 << 16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(dns_query(name, query_id), server)
            data, _ = sock.recvfrom(4096)
        except OSError:
            return []
    return a_records(data, query_id)


class ReadyWatcher:
    """Latches once CoreDNS (at ``server``) answers ``kube-dns.kube-system.svc.<domain>`` with the ClusterIP
    of the host copy of ``kube-dns``: DNS serves the virtual cluster at the address synced pods use.
    Readiness probes call ``ready()`` (cheap); a thread checks every ``interval`` seconds until then. Once
    ready it stays ready: a later CoreDNS restart must not take the virtual API server's pod out of its
    Service."""

    def __init__(self, host: Kube, host_namespace: str, host_service: str,
                 cluster_domain: str = "cluster.local", server: tuple[str, int] = ("127.0.0.1", DNS_PORT),
                 interval: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 resolver: Callable[[tuple[str, int], str], list[str]] = resolve) -> None:
        self.host = host
        self.host_namespace = host_namespace
        self.host_service = host_service
        self.name = f"{SERVICE}.{NAMESPACE}.svc.{cluster_domain}"
        self.server = server
        self.interval = interval
        self._clock = clock
        self._resolve = resolver
        self._ready = threading.Event()
        self.started_at = self._clock()
        self.ready_after: float | None = None
        self.last = "not checked yet"

    def ready(self) -> bool:
        return self._ready.is_set()

    def check(self) -> bool:
        if self._ready.is_set():
            return True
        try:
            hsvc = self.host.get(SERVICES, self.host_service, self.host_namespace)
        except ApiError as exc:
            self.last = f"host Service {self.host_service}: {exc}"
            return False
        ip = ((hsvc or {}).get("spec") or {}).get("clusterIP")
        if not ip:
            self.last = f"host Service {self.host_service} not created yet"
            return False
        answer = self._resolve(self.server, self.name)
        if ip not in answer:
            self.last = f"{self.name} resolves to {answer or 'nothing'}, not {ip} yet"
            return False
        self.ready_after = self._clock() - self.started_at
        log.info("coredns: ready (%.1fs after the syncer applied it): %s is %s", self.ready_after, self.name, ip)
        self._ready.set()
        return True

    def run(self, stopping: threading.Event) -> None:
        self.started_at = self._clock()
        attempt = 0
        while not stopping.is_set() and not self.check():
            attempt += 1
            if attempt % 50 == 0:
                log.info("coredns: not ready yet: %s", self.last)
            stopping.wait(self.interval)

    def start(self, stopping: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stopping,), name="coredns-ready", daemon=True)
        thread.start()
        return thread
