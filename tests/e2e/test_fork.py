"""Forks of a prepared cluster on the real host (`hack/host up`): what a fork starts with, isolation from
the template and from sibling forks, ServiceAccount tokens, teardown, and one template shared by xdist
workers. Every host namespace made here is labelled `e2e=fork` and deleted at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, utils

sys.path.insert(0, str(Path(__file__).parent))
from e2e_helpers import create_vcluster, gone, suffix, wait  # noqa: E402

from pytest_vcluster import Host, Snapshot, SnapshotError, VCluster  # noqa: E402
from pytest_vcluster.core.cleanup import CLUSTER_SCOPED_LABEL  # noqa: E402

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "examples" / "operator_crd" / "manifests" / "crd.yaml"
GROUP, VERSION, PLURAL = "examples.pytest-vcluster.io", "v1alpha1", "widgets"
LABELS = {"e2e": "fork"}
TIMEOUT = 300.0
SHELL_IMAGE = "pytest-vcluster.local/busybox:1.35"
PYTHON_IMAGE = "pytest-vcluster.local/python:3.11-bookworm"


def configmap(name: str, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


def widget(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name},
            "spec": {"color": "green", "size": 1}}


def names(items: list[Any]) -> set[str]:
    return {i.metadata.name if hasattr(i, "metadata") else i["metadata"]["name"] for i in items}


def deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": SHELL_IMAGE, "imagePullPolicy": "Never",
                                         "command": ["sleep", "3600"]}]}}}}


def available(vc: VCluster, name: str, namespace: str) -> bool:
    status = client.AppsV1Api(vc.api_client).read_namespaced_deployment(name, namespace).status
    return (status.available_replicas or 0) >= 1


@pytest.fixture(scope="module")
def template(host: Host) -> Iterator[tuple[VCluster, Snapshot]]:
    """A cluster with a namespace, a ConfigMap, a Secret, a CRD with one custom object, a ClusterRole
    and a running Deployment; and its snapshot."""
    vc = create_vcluster(host, f"vc-e2e-tpl-{suffix()}", labels=LABELS, timeout=TIMEOUT)
    try:
        core = client.CoreV1Api(vc.api_client)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
        core.create_namespaced_config_map("team", configmap("settings", color="blue"))
        core.create_namespaced_secret("team", client.V1Secret(metadata=client.V1ObjectMeta(name="creds"),
                                                              string_data={"password": "s3cret"}))
        client.RbacAuthorizationV1Api(vc.api_client).create_cluster_role(client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name="widget-reader"),
            rules=[client.V1PolicyRule(api_groups=[GROUP], resources=[PLURAL], verbs=["get", "list"])]))
        utils.create_from_yaml(vc.api_client, str(CRD))
        custom = client.CustomObjectsApi(vc.api_client)
        wait("Widgets to be served", lambda: custom.list_cluster_custom_object(GROUP, VERSION, PLURAL) is not None)
        custom.create_namespaced_custom_object(GROUP, VERSION, "team", PLURAL, widget("from-template"))
        client.AppsV1Api(vc.api_client).create_namespaced_deployment("team", deployment("web"))
        wait("the template's Deployment to be available", lambda: available(vc, "web", "team"))
        snapshot = vc.snapshot()
        print(f"snapshot of {vc.name}: {snapshot!r}")
        yield vc, snapshot
    finally:
        vc.delete()


@pytest.fixture(scope="module")
def forks(host: Host, template: tuple[VCluster, Snapshot]) -> Iterator[list[VCluster]]:
    made: list[VCluster] = []
    try:
        for _ in range(2):
            made.append(create_vcluster(host, f"vc-e2e-fork-{suffix()}", labels=LABELS, timeout=TIMEOUT,
                                        fork=template[1]))
        yield made
    finally:
        for vc in made:
            vc.delete()


def test_a_fork_starts_with_every_object_of_the_template(forks: list[VCluster]) -> None:
    for vc in forks:
        core = client.CoreV1Api(vc.api_client)
        assert core.read_namespaced_config_map("settings", "team").data == {"color": "blue"}
        assert core.read_namespaced_secret("creds", "team").data["password"] == "czNjcmV0"
        assert "widget-reader" in names(client.RbacAuthorizationV1Api(vc.api_client).list_cluster_role().items)
        assert f"{PLURAL}.{GROUP}" in names(client.ApiextensionsV1Api(vc.api_client)
                                            .list_custom_resource_definition().items)
        found = client.CustomObjectsApi(vc.api_client).list_namespaced_custom_object(GROUP, VERSION, "team", PLURAL)
        assert names(found["items"]) == {"from-template"}


def test_the_templates_workload_runs_again_in_the_forks_own_host_namespace(
    forks: list[VCluster], template: tuple[VCluster, Snapshot]
) -> None:
    template_vc = template[0]
    for vc in forks:
        vc.wait("the template's Deployment to be available in the fork", lambda vc=vc: available(vc, "web", "team"),
                timeout=180)
        pods = client.CoreV1Api(vc.api_client).list_namespaced_pod("team", label_selector="app=web").items
        assert len(pods) == 1
        host_pod = vc.host.core_v1().read_namespaced_pod(vc.host_name(pods[0]), vc.host_namespace)
        assert host_pod.status.phase == "Running"
        assert host_pod.metadata.namespace != template_vc.host_namespace


def test_forks_and_template_do_not_see_each_others_changes(
    forks: list[VCluster], template: tuple[VCluster, Snapshot]
) -> None:
    template_vc = template[0]
    first, second = forks
    client.CoreV1Api(first.api_client).create_namespaced_config_map("team", configmap("only-first"))
    client.CoreV1Api(first.api_client).patch_namespaced_config_map("settings", "team", {"data": {"color": "red"}})
    client.CustomObjectsApi(second.api_client).create_namespaced_custom_object(GROUP, VERSION, "team", PLURAL,
                                                                               widget("only-second"))
    client.CoreV1Api(template_vc.api_client).create_namespaced_config_map("team", configmap("after-snapshot"))

    def configmaps(vc: VCluster) -> set[str]:
        return names(client.CoreV1Api(vc.api_client).list_namespaced_config_map("team").items)

    def widgets(vc: VCluster) -> set[str]:
        return names(client.CustomObjectsApi(vc.api_client).list_namespaced_custom_object(
            GROUP, VERSION, "team", PLURAL)["items"])

    assert "only-first" in configmaps(first)
    assert "only-first" not in configmaps(second) | configmaps(template_vc)
    assert "after-snapshot" not in configmaps(first) | configmaps(second)
    assert widgets(second) == {"from-template", "only-second"}
    assert widgets(first) == widgets(template_vc) == {"from-template"}
    for vc in (second, template_vc):
        assert client.CoreV1Api(vc.api_client).read_namespaced_config_map("settings", "team").data == {"color": "blue"}


def test_tokens_are_issued_by_the_fork_and_valid_only_there(
    forks: list[VCluster], template: tuple[VCluster, Snapshot]
) -> None:
    """Each fork has its own service-account key: a token of one is refused by the others."""
    clusters = [template[0], *forks]
    tokens = []
    for vc in clusters:
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
        tokens.append(client.CoreV1Api(vc.api_client).create_namespaced_service_account_token(
            "default", "team", request).status.token)

    def who(vc: VCluster, token: str) -> int | str:
        config = client.Configuration()
        config.host = vc.server
        config.ssl_ca_cert = vc.api_client.configuration.ssl_ca_cert
        config.api_key = {"authorization": f"Bearer {token}"}
        with client.ApiClient(config) as api:
            try:
                review = client.AuthenticationV1Api(api).create_self_subject_review(
                    client.V1SelfSubjectReview(), _request_timeout=15)
            except client.ApiException as exc:
                return exc.status
            return review.status.user_info.username

    for i, vc in enumerate(clusters):
        for j, token in enumerate(tokens):
            expected = "system:serviceaccount:team:default" if i == j else 401
            assert who(vc, token) == expected, f"token of {clusters[j].name} at {vc.name}"


WHOAMI = """
import json, os, ssl, sys, urllib.request

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
url = "https://%s:%s/apis/authentication.k8s.io/v1/selfsubjectreviews" % (
    os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
request = urllib.request.Request(url, data=body, method="POST", headers={
    "Authorization": "Bearer " + open(SA + "/token").read(), "Content-Type": "application/json"})
review = json.load(urllib.request.urlopen(request, context=ssl.create_default_context(cafile=SA + "/ca.crt"),
                                          timeout=10))
sys.exit(0 if review["status"]["userInfo"]["username"] == "system:serviceaccount:team:default" else 3)
"""


def test_a_pod_in_a_fork_reaches_the_forks_api_with_its_mounted_token(forks: list[VCluster]) -> None:
    """The mounted token is the fork's, and the mounted CA (ConfigMap kube-root-ca.crt) is the fork's."""
    vc = forks[0]
    core = client.CoreV1Api(vc.api_client)
    core.create_namespaced_pod("team", client.V1Pod(
        metadata=client.V1ObjectMeta(name="whoami"),
        spec=client.V1PodSpec(restart_policy="Never", termination_grace_period_seconds=0, containers=[
            client.V1Container(name="c", image=PYTHON_IMAGE, image_pull_policy="Never",
                               command=["python3", "-c", WHOAMI])])))

    def finished() -> str | None:
        phase = core.read_namespaced_pod("whoami", "team").status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    assert vc.wait("pod whoami to finish", finished, timeout=180) == "Succeeded", vc.diagnostics()


def test_deleting_a_fork_leaves_nothing_and_touches_neither_template_nor_sibling(
    host: Host, template: tuple[VCluster, Snapshot]
) -> None:
    template_vc, snapshot = template
    sibling = create_vcluster(host, f"vc-e2e-fork-{suffix()}", labels=LABELS, timeout=TIMEOUT, fork=snapshot)
    doomed = create_vcluster(host, f"vc-e2e-fork-{suffix()}", labels=LABELS, timeout=TIMEOUT, fork=snapshot)
    try:
        doomed.wait("the Deployment in the doomed fork", lambda: available(doomed, "web", "team"), timeout=180)
        doomed.delete(wait=True, timeout=180)
        core = host.core_v1()
        assert gone(lambda: core.read_namespace(doomed.host_namespace))
        rbac = client.RbacAuthorizationV1Api(host.api_client)
        assert not rbac.list_cluster_role(label_selector=f"{CLUSTER_SCOPED_LABEL}={doomed.host_namespace}").items
        for vc in (template_vc, sibling):
            assert core.read_namespace(vc.host_namespace).metadata.deletion_timestamp is None
            assert client.CoreV1Api(vc.api_client).read_namespaced_config_map("settings", "team").data
    finally:
        sibling.delete()
        doomed.delete()


def test_a_deleted_or_unreachable_cluster_cannot_be_snapshotted(host: Host) -> None:
    vc = create_vcluster(host, f"vc-e2e-gone-{suffix()}", labels=LABELS, timeout=TIMEOUT)
    host.core_v1().delete_namespace(vc.host_namespace)  # behind the handle's back
    wait("the control-plane pod to be gone", lambda: not host.core_v1().list_namespaced_pod(vc.host_namespace).items)
    with pytest.raises(SnapshotError, match=rf"^cannot capture the state of virtual cluster {vc.name}"):
        vc.snapshot()
    vc.delete()
    with pytest.raises(SnapshotError) as info:
        vc.snapshot()
    assert str(info.value) == f"cannot take a snapshot of virtual cluster {vc.name}: it was deleted"


def test_one_template_for_all_xdist_workers(pytester: pytest.Pytester, run: Any) -> None:
    counter = pytester.path / "prepared.txt"
    pytester.makeconftest(f"""
        import pytest
        from kubernetes import client


        def prepare(vc):
            with open({str(counter)!r}, "a") as fh:
                fh.write("prepared\\n")
            client.CoreV1Api(vc.api_client).create_namespaced_config_map(
                "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="seed"), data={{"v": "1"}}))


        @pytest.fixture(scope="session")
        def vcluster_template(vcluster_manager):
            return vcluster_manager.template("seeded", prepare)
    """)
    pytester.makepyfile("""
        import pytest
        from kubernetes import client


        @pytest.mark.vcluster(fork="vcluster_template")
        @pytest.mark.parametrize("i", range(4))
        def test_fork(vcluster, i):
            core = client.CoreV1Api(vcluster.api_client)
            assert core.read_namespaced_config_map("seed", "default").data == {"v": "1"}
            core.create_namespaced_config_map("default", client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"mine-{i}")))
            assert {c.metadata.name for c in core.list_namespaced_config_map("default").items
                    if c.metadata.name.startswith("mine-")} == {f"mine-{i}"}
    """)
    result = run("-n", "2")
    result.assert_outcomes(passed=4)
    assert counter.read_text() == "prepared\n", "the template was prepared more than once"
    result.stdout.fnmatch_lines(["template seeded: prepared in *s, * objects, * KiB"])
