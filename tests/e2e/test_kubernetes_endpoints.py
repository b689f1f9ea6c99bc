"""The virtual cluster's own Endpoints and EndpointSlice `default/kubernetes` on the real host (`hack/host up`).

What Kubernetes' conformance spec "[sig-network] EndpointSlice should have Endpoints and EndpointSlices pointing
to API Server" checks, plus what makes them right here: they name pod `R-0`'s IP and port 6443 (what the host's
Endpoints of Service `R`, behind the virtual `kubernetes` ClusterIP, list), that address answers the virtual API
from a virtual pod (certificate signed by the virtual CA, the pod's token accepted), they come back after being
deleted or changed, the controller-manager adds no mirrored slice, and nothing of them is on the host.

One cluster (default values), module-scoped, made with `VCluster.create`, labelled `e2e=kubernetes-endpoints`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pytest_vcluster import Host, VCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import Sides, created_vcluster, events_text, suffix, wait  # noqa: E402

pytestmark = pytest.mark.e2e

LABELS = {"e2e": "kubernetes-endpoints"}
CREATE_TIMEOUT = 360.0
SERVICE_NAME_LABEL = "kubernetes.io/service-name=kubernetes"
CONTROLLERS = ("endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io")

# Runs in a virtual pod: GET https://<ip>:<port>/version with the pod's token, verifying the server's
# certificate against the mounted (virtual) CA. The name is not checked: the certificate is made for the
# Service's names and ClusterIP, as on clusters whose API servers are reached by their Service.
PROBE = r"""
import json, ssl, sys, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
ctx = ssl.create_default_context(cafile=sa + "ca.crt"); ctx.check_hostname = False
req = urllib.request.Request("https://%s:%s/version" % (sys.argv[1], sys.argv[2]),
                             headers={"Authorization": "Bearer " + open(sa + "token").read().strip()})
with urllib.request.urlopen(req, context=ctx, timeout=20) as resp:
    print("RESULT " + json.dumps({"status": resp.status, "version": json.loads(resp.read())}))
"""


class Env(Sides):
    def __init__(self, vc: VCluster, host_api: client.ApiClient) -> None:
        super().__init__(vc, host_api)
        self.vdisc = client.DiscoveryV1Api(vc.api_client)
        self.hdisc = client.DiscoveryV1Api(host_api)

    def endpoints(self) -> client.V1Endpoints:
        return self.vcore.read_namespaced_endpoints("kubernetes", "default")

    def slices(self) -> list[client.V1EndpointSlice]:
        return self.vdisc.list_namespaced_endpoint_slice("default", label_selector=SERVICE_NAME_LABEL).items

    def diagnose(self) -> str:
        return "\n".join([self.vc.diagnostics(), "virtual events in default:", events_text(self.vcore, "default")])


def endpoints_view(eps: client.V1Endpoints) -> tuple[set[str], set[int]]:
    """(addresses, ports) of Endpoints, ready or not: the sets conformance compares."""
    addresses, ports = set(), set()
    for subset in eps.subsets or []:
        addresses.update(a.ip for a in (subset.addresses or []) + (subset.not_ready_addresses or []))
        ports.update(p.port for p in subset.ports or [])
    return addresses, ports


def slices_view(slices: list[client.V1EndpointSlice], family: str = "IPv4") -> tuple[set[str], set[int]]:
    addresses, ports = set(), set()
    for endpoint_slice in slices:
        if endpoint_slice.address_type != family:
            continue
        for endpoint in endpoint_slice.endpoints or []:
            addresses.update(endpoint.addresses or [])
        ports.update(p.port for p in endpoint_slice.ports or [] if p.port is not None)
    return addresses, ports


@pytest.fixture(scope="module")
def env(host: Host) -> Iterator[Env]:
    with created_vcluster(host, f"e2e-kep-{suffix()}", labels=LABELS, timeout=CREATE_TIMEOUT) as vc:
        yield Env(vc, host.api_client)


def api_server_address(env: Env) -> tuple[str, int]:
    """Where the virtual `kubernetes` ClusterIP (= Service R's) leads: pod R-0's IP, port 6443, as the host's
    Endpoints of Service R say."""
    pod_ip = env.hcore.read_namespaced_pod(f"{env.release}-0", env.hns).status.pod_ip
    host_eps = env.hcore.read_namespaced_endpoints(env.release, env.hns)
    addresses, ports = endpoints_view(host_eps)
    assert addresses == {pod_ip} and ports == {6443}, host_eps
    return pod_ip, 6443


def assert_as_on_a_real_cluster(env: Env) -> None:
    """The conformance spec's checks and which address they name; exactly one slice, ours."""
    vsvc = env.vcore.read_namespaced_service("kubernetes", "default")
    assert vsvc.spec.cluster_ip == env.hcore.read_namespaced_service(env.release, env.hns).spec.cluster_ip
    eps = env.endpoints()
    assert eps.subsets, eps
    slices = env.slices()
    assert slices, "no EndpointSlice labelled " + SERVICE_NAME_LABEL
    ip, port = api_server_address(env)
    assert endpoints_view(eps) == ({ip}, {port})
    assert slices_view(slices) == ({ip}, {port})
    assert [(p.name, p.port, p.protocol) for s in eps.subsets for p in s.ports] == [("https", 6443, "TCP")]
    assert (eps.metadata.labels or {}).get("endpointslice.kubernetes.io/skip-mirror") == "true"
    assert [s.metadata.name for s in slices] == ["kubernetes"], [s.metadata for s in slices]
    managed_by = (slices[0].metadata.labels or {}).get("endpointslice.kubernetes.io/managed-by")
    assert managed_by and managed_by not in CONTROLLERS
    assert [(p.name, p.port, p.protocol) for p in slices[0].ports] == [("https", 6443, "TCP")]


def test_endpoints_and_slice_point_at_the_api_server_when_ready(env: Env) -> None:
    # read at once: a conformance run starts as soon as the cluster is ready
    assert_as_on_a_real_cluster(env)


def test_the_address_answers_the_virtual_api_from_a_pod(env: Env) -> None:
    ip, port = endpoints_view(env.endpoints())[0].pop(), endpoints_view(env.endpoints())[1].pop()
    ns = f"probe-{suffix()}"
    env.vcore.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    env.vcore.create_namespaced_pod(ns, client.V1Pod(
        metadata=client.V1ObjectMeta(name="probe"),
        spec=client.V1PodSpec(restart_policy="Never", termination_grace_period_seconds=1, containers=[
            client.V1Container(name="main", image=versions.PYTHON_IMAGE, image_pull_policy="Never",
                               command=["python3", "-c", PROBE, ip, str(port)])])))

    def finished() -> str | None:
        phase = env.vcore.read_namespaced_pod("probe", ns).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait(f"probe pod in {ns} finished", finished, timeout=240, every=2, diagnose=env.diagnose)
    logs = env.vcore.read_namespaced_pod_log("probe", ns, container="main")
    assert phase == "Succeeded", logs
    result: dict[str, Any] = json.loads(logs.split("RESULT ", 1)[1])
    assert result["status"] == 200
    # the virtual API server's version (the control-plane image), not the host's
    assert result["version"]["gitVersion"] == client.VersionApi(env.vc.api_client).get_code().git_version


def test_deleted_or_changed_they_come_back(env: Env) -> None:
    old_eps_uid = env.endpoints().metadata.uid
    old_slice_uid = env.slices()[0].metadata.uid
    env.vcore.delete_namespaced_endpoints("kubernetes", "default")
    env.vdisc.delete_namespaced_endpoint_slice("kubernetes", "default")

    def back() -> bool:
        eps, slices = env.endpoints(), env.slices()
        return (eps.metadata.uid != old_eps_uid and bool(eps.subsets) and len(slices) == 1
                and slices[0].metadata.uid != old_slice_uid and bool(slices[0].endpoints))

    wait("Endpoints and EndpointSlice default/kubernetes re-created", back, timeout=60, diagnose=env.diagnose)
    assert_as_on_a_real_cluster(env)

    env.vcore.patch_namespaced_endpoints("kubernetes", "default", {
        "metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": None}},
        "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"name": "https", "port": 1, "protocol": "TCP"}]}]})
    env.vdisc.patch_namespaced_endpoint_slice("kubernetes", "default", {
        "metadata": {"labels": {"endpointslice.kubernetes.io/managed-by": CONTROLLERS[1]}},
        "endpoints": [{"addresses": ["192.0.2.1"]}]})
    ip, port = api_server_address(env)

    def corrected() -> bool:
        return (endpoints_view(env.endpoints()) == ({ip}, {port}) and slices_view(env.slices()) == ({ip}, {port})
                and (env.endpoints().metadata.labels or {}).get("endpointslice.kubernetes.io/skip-mirror") == "true"
                and (env.slices()[0].metadata.labels or {}).get("endpointslice.kubernetes.io/managed-by")
                not in CONTROLLERS)

    wait("Endpoints and EndpointSlice default/kubernetes put right", corrected, timeout=60, diagnose=env.diagnose)
    assert_as_on_a_real_cluster(env)


def test_nothing_of_them_is_on_the_host(env: Env) -> None:
    host_name = env.vc.host_name("Service", "kubernetes", "default")
    assert not [e.metadata.name for e in env.hcore.list_namespaced_endpoints(env.hns).items
                if e.metadata.name == host_name]
    assert not [s.metadata.name for s in env.hdisc.list_namespaced_endpoint_slice(env.hns).items
                if s.metadata.name.startswith(host_name) or (s.metadata.labels or {}).get(
                    "kubernetes.io/service-name") == host_name]
    assert not [s.metadata.name for s in env.hcore.list_namespaced_service(env.hns).items
                if s.metadata.name == host_name]
    for kind, items in (("Endpoints", env.hcore.list_namespaced_endpoints(env.hns).items),
                        ("EndpointSlice", env.hdisc.list_namespaced_endpoint_slice(env.hns).items),
                        ("Service", env.hcore.list_namespaced_service(env.hns).items)):
        for obj in items:
            ann = obj.metadata.annotations or {}
            assert (ann.get("vcluster.loft.sh/object-namespace"), ann.get("vcluster.loft.sh/object-name")) != (
                "default", "kubernetes"), (kind, obj.metadata.name)
