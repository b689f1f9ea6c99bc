"""Recycling (``VCluster.reset`` and ``--vcluster-recycle``) against the real host, through inner pytest runs
(conftest's ``run``): a recycled cluster is indistinguishable from a fresh one; workers and concurrent runs never
hold one cluster at once; a killed run's recycled clusters are reaped; a failed or dirty reset never reaches a
test; ``recycle=False`` gets a never-used cluster. Every inner run gets a pool of its own (``own_pool``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

sys.path.insert(0, str(Path(__file__).parent))
from e2e_helpers import E2E_TIMEOUT, namespace_exists, wait  # noqa: E402
from test_pool import (  # noqa: E402
    kill_then_run_next,
    own_pool,
    popen_pytest,
    recorded,
    terminating_or_gone,
    two_runs_at_once,
)

from pytest_vcluster.core import labels as _labels  # noqa: E402
from pytest_vcluster.core import pool as _pool

pytestmark = pytest.mark.e2e

SHELL = "pytest-vcluster.local/busybox:1.35"

#: Test 1 makes one of everything a reset must undo; test 2 gets its cluster back and compares it with a fresh one.
INDISTINGUISHABLE = '''
import json
import time
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pytest_vcluster.core.recycle import get_json

HERE = Path(__file__).parent
SHELL = "{shell}"
GROUP = "recycle.example.com"
CRD = {{
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {{"name": f"widgets.{{GROUP}}"}},
    "spec": {{"group": GROUP, "scope": "Namespaced",
              "names": {{"plural": "widgets", "singular": "widget", "kind": "Widget"}},
              "versions": [{{"name": "v1", "served": True, "storage": True,
                            "schema": {{"openAPIV3Schema": {{"type": "object",
                                                           "x-kubernetes-preserve-unknown-fields": True}}}}}}]}},
}}
WEBHOOK = {{
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
    "metadata": {{"name": "deny-everything"}},
    "webhooks": [{{"name": "deny.recycle.example.com", "clientConfig": {{"url": "https://127.0.0.1:1/deny"}},
                  "rules": [{{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                             "resources": ["configmaps", "pods"]}}],
                  "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                  "timeoutSeconds": 2}}],
}}


def token(core, name):
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    return core.create_namespaced_service_account_token("default", "default", request).status.token


def authenticated(api, value):
    review = client.AuthenticationV1Api(api).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=value)))
    return bool(review.status.authenticated)


def test_1_uses_everything(vcluster, vcluster_host):
    api = vcluster.api_client
    core = client.CoreV1Api(api)
    # a namespace whose object carries a finalizer: deleted, it stays Terminating
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a")))
    core.create_namespaced_config_map("team-a", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="held", finalizers=["example.com/hold"])))
    core.delete_namespace("team-a")
    # a CRD and an object of it
    client.ApiextensionsV1Api(api).create_custom_resource_definition(CRD)
    objects = client.CustomObjectsApi(api)
    vcluster.wait("the CRD to be served", lambda: objects.list_namespaced_custom_object(GROUP, "v1", "default",
                                                                                          "widgets") is not None)
    objects.create_namespaced_custom_object(GROUP, "v1", "default", "widgets",
                                            {{"apiVersion": f"{{GROUP}}/v1", "kind": "Widget",
                                              "metadata": {{"name": "w1"}}}})
    client.RbacAuthorizationV1Api(api).create_cluster_role(client.V1ClusterRole(
        metadata=client.V1ObjectMeta(name="test-1-role"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get"])]))
    # a PVC with data, used by a pod that ignores SIGTERM
    core.create_namespaced_persistent_volume_claim("default", client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"],
                                                resources=client.V1VolumeResourceRequirements(
                                                    requests={{"storage": "10Mi"}}))))
    core.create_namespaced_pod("default", client.V1Pod(
        metadata=client.V1ObjectMeta(name="stubborn", labels={{"app": "stubborn"}}),
        spec=client.V1PodSpec(termination_grace_period_seconds=300, containers=[client.V1Container(
            name="main", image=SHELL, image_pull_policy="Never",
            command=["sh", "-c", "trap '' TERM; echo kept > /data/f; while true; do sleep 1; done"],
            volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")])],
            volumes=[client.V1Volume(name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                claim_name="data"))])))
    vcluster.wait("pod stubborn to run", lambda: core.read_namespaced_pod("stubborn", "default").status.phase
                  == "Running", timeout=180)
    host = client.CoreV1Api(vcluster_host.api_client)
    host_claim = host.read_namespaced_persistent_volume_claim(
        vcluster.host_name("PersistentVolumeClaim", "data", "default"), vcluster.host_namespace)
    core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(type="NodePort", selector={{"app": "stubborn"}},
                                  ports=[client.V1ServicePort(port=80, target_port=8080)])))
    unused, used = token(core, "unused"), token(core, "used")
    assert authenticated(api, used)
    used_at = time.time()
    # last: a webhook that refuses every ConfigMap and Pod
    client.AdmissionregistrationV1Api(api).create_validating_webhook_configuration(WEBHOOK)

    def refused():
        try:
            core.create_namespaced_config_map("default", client.V1ConfigMap(
                metadata=client.V1ObjectMeta(generate_name="probe-")), dry_run="All")
        except ApiException as exc:
            return "deny.recycle.example.com" in (exc.body or "")
        return False

    vcluster.wait("the webhook to refuse ConfigMaps", refused)
    (HERE / "state.json").write_text(json.dumps({{
        "host_namespace": vcluster.host_namespace, "volume": host_claim.spec.volume_name,
        "unused": unused, "used": used, "used_at": used_at}}))


def inventory(vc):
    """Every object of every listable resource, as resource:namespace/name, with the names a cluster draws at
    random (generated suffixes, Service IPs, the API server's identity lease, the hash of its CA in a
    ClusterTrustBundle's name) replaced by what they stand for."""
    api = vc.api_client

    def get(path):
        return get_json(api, path)

    paths = ["/api/v1"] + [f"/apis/{{g.preferred_version.group_version}}"
                           for g in client.ApisApi(api).get_api_versions().groups]
    found = set()
    for path in paths:
        for resource in get(path)["resources"]:
            name = resource["name"]
            if "/" in name or "list" not in resource["verbs"] or name == "events":
                continue
            for item in get(f"{{path}}/{{name}}")["items"]:
                meta = item["metadata"]
                # names a cluster draws at random: generated suffixes, Service IPs (by the Service they are for)
                object_name = meta.get("generateName", "") + "<generated>" if meta.get("generateName") else meta["name"]
                if name == "ipaddresses":
                    parent = item["spec"]["parentRef"]
                    object_name = f"<the IP of {{parent['resource']}} {{parent['namespace']}}/{{parent['name']}}>"
                if name == "leases" and meta["name"].startswith("apiserver-"):
                    object_name = "apiserver-<identity>"
                # 1.37's kube-controller-manager publishes the API server's serving CA as a ClusterTrustBundle
                # named <signer, / as :>:<hash of the bundle>: each cluster's own CA, so its own hash
                signer = (item.get("spec") or {{}}).get("signerName", "")
                if name == "clustertrustbundles" and signer and meta["name"].startswith(signer.replace("/", ":") + ":"):
                    object_name = signer.replace("/", ":") + ":<hash of the cluster's own CA>"
                found.add(f"{{path}}/{{name}}:{{meta.get('namespace', '')}}/{{object_name}}")
    return found


def host_inventory(vc, host_api):
    """The host namespace's objects by kind, with the release's name replaced by R (EndpointSlices by their
    Service; Events left out: the host's own record of what ran there)."""
    core = client.CoreV1Api(host_api)
    ns = vc.host_namespace
    found = set()
    for kind, items in (
        ("Pod", core.list_namespaced_pod(ns).items),
        ("Service", core.list_namespaced_service(ns).items),
        ("Endpoints", core.list_namespaced_endpoints(ns).items),
        ("ConfigMap", core.list_namespaced_config_map(ns).items),
        ("Secret", core.list_namespaced_secret(ns).items),
        ("PersistentVolumeClaim", core.list_namespaced_persistent_volume_claim(ns).items),
        ("ServiceAccount", core.list_namespaced_service_account(ns).items),
        ("Role", client.RbacAuthorizationV1Api(host_api).list_namespaced_role(ns).items),
        ("RoleBinding", client.RbacAuthorizationV1Api(host_api).list_namespaced_role_binding(ns).items),
        ("StatefulSet", client.AppsV1Api(host_api).list_namespaced_stateful_set(ns).items),
    ):
        found.update(f"{{kind}} {{item.metadata.name.replace(vc.name, 'R')}}" for item in items)
    for item in client.DiscoveryV1Api(host_api).list_namespaced_endpoint_slice(ns).items:
        service = (item.metadata.labels or {{}}).get("kubernetes.io/service-name", "?")
        found.add(f"EndpointSlice of {{service.replace(vc.name, 'R')}}")
    return found


def test_2_gets_it_back_fresh(vcluster, vcluster_factory, vcluster_host):
    state = json.loads((HERE / "state.json").read_text())
    assert vcluster.host_namespace == state["host_namespace"], "test 2 did not get test 1's cluster"
    fresh = vcluster_factory(recycle=False)
    assert fresh.host_namespace != vcluster.host_namespace
    mine, theirs = inventory(vcluster), inventory(fresh)
    assert mine == theirs, f"only recycled: {{sorted(mine - theirs)}}; only fresh: {{sorted(theirs - mine)}}"
    mine, theirs = host_inventory(vcluster, vcluster_host.api_client), host_inventory(fresh, vcluster_host.api_client)
    assert mine == theirs, f"only recycled: {{sorted(mine - theirs)}}; only fresh: {{sorted(theirs - mine)}}"
    try:
        client.CoreV1Api(vcluster_host.api_client).read_persistent_volume(state["volume"])
        raise AssertionError(f"PersistentVolume {{state['volume']}} of test 1 is still there")
    except ApiException as exc:
        assert exc.status == 404
    core = client.CoreV1Api(vcluster.api_client)
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="allowed")))
    groups = [g.name for g in client.ApisApi(vcluster.api_client).get_api_versions().groups]
    assert GROUP not in groups
    assert not authenticated(vcluster.api_client, state["unused"]), "a token minted in test 1 is still accepted"
    # kube-apiserver caches a successful token authentication for 10 s (TokenSuccessCacheTTL, no flag): the token
    # test 1 used is refused at the latest 10 s after that use
    first_look = time.time() - state["used_at"]
    vcluster.wait("the token used in test 1 to be refused", lambda: not authenticated(vcluster.api_client,
                                                                                    state["used"]), timeout=30)
    refused_after = time.time() - state["used_at"]
    assert refused_after < max(first_look, 10.0) + 2.0, (first_look, refused_after)
    print(f"used token refused {{refused_after:.1f}}s after its use in test 1 (first looked at {{first_look:.1f}}s)")
'''


def test_a_recycled_cluster_is_indistinguishable_from_a_fresh_one(
    pytester: pytest.Pytester, run: Any, host_core: client.CoreV1Api
) -> None:
    pytester.makepyfile(test_recycled=INDISTINGUISHABLE.format(shell=SHELL))
    result = run("-s", own_pool())
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["recycling: * cluster(s) reset and handed on, reset p50 *, "
                                 "1 test(s) got a recycled cluster, 0 deleted instead"])
    state = json.loads((pytester.path / "state.json").read_text())
    assert terminating_or_gone(host_core, state["host_namespace"]), "the recycled cluster outlived its run"


#: each test writes ns-<name>.txt and span-<name>.json: its host namespace, and when it held the cluster
SPANS = """
import json
import os
import time

import pytest
from kubernetes import client


@pytest.mark.parametrize("i", range({n}))
def test_hold(vcluster, i):
    started = time.time()
    client.CoreV1Api(vcluster.api_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=f"mine-{{i}}")))
    time.sleep(0.5)
    here = os.path.dirname(__file__)
    name = f"{{os.path.basename(here)}}-{{i}}"
    with open(os.path.join(here, f"ns-{{name}}.txt"), "w") as fh:
        fh.write(vcluster.host_namespace)
    with open(os.path.join(here, f"span-{{name}}.json"), "w") as fh:
        json.dump([vcluster.host_namespace, started, time.time()], fh)
"""


def spans(*paths: Path) -> list[tuple[str, float, float]]:
    return [tuple(json.loads(p.read_text())) for path in paths for p in path.glob("span-*.json")]  # type: ignore[misc]


def test_workers_and_concurrent_runs_never_hold_one_cluster_at_once(
    pytester: pytest.Pytester, run: Any, host_core: client.CoreV1Api, host_kubeconfig: Path
) -> None:
    first, second = pytester.mkdir("first"), pytester.mkdir("second")
    for path in (first, second):
        (path / "test_spans.py").write_text(SPANS.format(n=6))
    result, _ = two_runs_at_once(run, host_kubeconfig, first, second, "-n", "2", own_pool())
    result.assert_outcomes(passed=6)
    held = spans(first, second)
    assert len(held) == 12
    by_cluster: dict[str, list[tuple[float, float]]] = {}
    for namespace, start, end in held:
        by_cluster.setdefault(namespace, []).append((start, end))
    for namespace, times in by_cluster.items():
        times.sort()
        for (_, end), (start, _) in zip(times, times[1:], strict=False):
            assert end <= start, f"two tests held {namespace} at once: {times}"
    assert max(len(t) for t in by_cluster.values()) >= 2, f"no cluster was recycled: {by_cluster}"
    assert len(by_cluster) < 12
    print(f"12 tests in two runs of two workers used {len(by_cluster)} clusters")
    for namespace in by_cluster:
        assert terminating_or_gone(host_core, namespace), f"{namespace} left behind"


def test_a_killed_runs_recycled_clusters_are_reaped(
    pytester: pytest.Pytester, run: Any, host_core: client.CoreV1Api, host_kubeconfig: Path
) -> None:
    pytester.makepyfile(test_then_hang="""
import time


def test_a(vcluster):
    pass


def test_b_hangs():
    time.sleep(900)
""")
    proc = popen_pytest(pytester.path, host_kubeconfig, own_pool(), "test_then_hang.py")
    recycled: list[str] = []
    try:
        def held_recycled() -> list[str]:
            items = host_core.list_namespace(label_selector=f"{_labels.LABEL_PID}={proc.pid},"
                                                            f"{_labels.LABEL_POOL_STATE}={_pool.CLAIMED}").items
            return [ns.metadata.name for ns in items if _pool.resets_of(ns) == 1]

        recycled = wait("the run's cluster to be recycled (held by the run, reset once)", held_recycled,
                        timeout=float(E2E_TIMEOUT))
        kill_then_run_next(proc, pytester, run)
        for name in recycled:
            assert terminating_or_gone(host_core, name), f"{name}, recycled by the killed run, was not removed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for name in recycled:
            if namespace_exists(host_core, name):
                host_core.delete_namespace(name)


def test_a_failed_or_dirty_reset_never_reaches_a_test(pytester: pytest.Pytester, run: Any,
                                                      host_core: client.CoreV1Api) -> None:
    pytester.makepyfile(test_dirty=RECORDING + """

def test_1_leaves_a_host_object_nobody_removes(vcluster, vcluster_host):
    record(vcluster, "1")
    client.CoreV1Api(vcluster_host.api_client).create_namespaced_config_map(
        vcluster.host_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="intruder")))


def test_2_stops_its_control_plane(vcluster, vcluster_host):
    record(vcluster, "2")
    client.AppsV1Api(vcluster_host.api_client).patch_namespaced_stateful_set_scale(
        vcluster.release, vcluster.host_namespace, {"spec": {"replicas": 0}})
    client.CoreV1Api(vcluster_host.api_client).delete_namespaced_pod(
        f"{vcluster.release}-0", vcluster.host_namespace, grace_period_seconds=0)


def test_3(vcluster):
    record(vcluster, "3")
""")
    result = run(own_pool())
    result.assert_outcomes(passed=3)
    names = recorded(pytester.path)
    assert len(set(names.values())) == 3, f"a test got a cluster whose reset failed: {names}"
    result.stdout.fnmatch_lines([
        # test 3 is the run's last: its cluster is deleted, not reset for a test that will not come
        "recycling: 0 cluster(s) reset and handed on, 0 test(s) got a recycled cluster, 2 deleted instead",
        f"  deleted {names['1']}: virtual cluster {names['1']} cannot be reset: host namespace {names['1']} holds "
        "ConfigMap intruder, made neither by its chart nor by its syncer",
        f"  deleted {names['2']}: resetting virtual cluster {names['2']} in host namespace {names['2']} failed: *",
    ])
    for name in names.values():
        assert terminating_or_gone(host_core, name)


#: a test file whose tests each write their host namespace to ns-<name>.txt
RECORDING = """
import os

import pytest
from kubernetes import client


def record(vc, name):
    client.CoreV1Api(vc.api_client).read_namespace("default")
    with open(os.path.join(os.path.dirname(__file__), f"ns-{name}.txt"), "w") as fh:
        fh.write(vc.host_namespace)
"""


def test_recycle_false_gets_a_never_used_cluster_and_deletes_it(pytester: pytest.Pytester, run: Any,
                                                                host_core: client.CoreV1Api) -> None:
    pytester.makepyfile(test_optout=RECORDING + """

def test_1(vcluster):
    record(vcluster, "1")


@pytest.mark.vcluster(recycle=False)
def test_2_never_used(vcluster, vcluster_host):
    record(vcluster, "2")
    labels = client.CoreV1Api(vcluster_host.api_client).read_namespace(vcluster.host_namespace).metadata.labels
    assert vcluster.resets == 0 and "pytest-vcluster.io/resets" not in labels, labels


def test_3(vcluster):
    record(vcluster, "3")
""")
    result = run(own_pool())
    result.assert_outcomes(passed=3)
    names = recorded(pytester.path)
    assert names["2"] != names["1"], f"recycle=False got test 1's used cluster: {names}"
    assert names["3"] == names["1"], f"test 3 did not get test 1's recycled cluster: {names}"
    result.stdout.fnmatch_lines(["recycling: 1 cluster(s) reset and handed on, *, 1 test(s) got a recycled cluster, "
                                 "0 deleted instead"])
    for name in names.values():
        assert terminating_or_gone(host_core, name)
