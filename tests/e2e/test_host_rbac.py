"""The plugin on a shared host through a CI ServiceAccount bound to exactly `docs/host-rbac.yaml`.

Each test copies the document's ServiceAccount and its default-values ClusterRole under names of its own (a
namespace `e2e-rbac-<suffix>`, a ClusterRole and binding of that name), mints a token, and runs an inner pytest
session whose host kubeconfig holds only that token. The session creates, uses, recycles and deletes virtual
clusters; with one rule removed it fails with the message naming the missing rule. Everything is deleted at the
end.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import suffix  # noqa: E402

RBAC = Path(__file__).resolve().parents[2] / "docs" / "host-rbac.yaml"

INNER_TESTS = f"""
from kubernetes import client


def test_a_pod_runs_and_its_logs_are_read(vcluster):
    vcluster.apply({{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "hello", "namespace": "default"}},
                    "spec": {{"restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "containers": [{{
                        "name": "main", "image": {versions.SHELL_IMAGE!r}, "imagePullPolicy": "Never",
                        "command": ["sh", "-c", "echo hello from the pod; sleep 3600"]}}]}}}})
    vcluster.wait_for("pod/hello", "Ready", timeout=180)
    assert "hello from the pod" in vcluster.logs("hello")
    client.CoreV1Api(vcluster.api_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name="left-by-a")))


def test_b_gets_a_fresh_cluster(vcluster):
    names = [ns.metadata.name for ns in client.CoreV1Api(vcluster.api_client).list_namespace().items]
    assert "left-by-a" not in names
"""


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC.read_text()) if d]


def default_rules() -> list[dict[str, Any]]:
    (role,) = [d for d in documents() if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "pytest-vcluster"]
    return list(role["rules"])


class ServiceAccountHost:
    """A ServiceAccount bound to a ClusterRole of the given rules, and a kubeconfig holding only its token."""

    def __init__(self, host_api: client.ApiClient, host_kubeconfig: Path, directory: Path) -> None:
        self.name = f"e2e-rbac-{suffix()}"
        self.core = client.CoreV1Api(host_api)
        self.rbac = client.RbacAuthorizationV1Api(host_api)
        self.host_kubeconfig = host_kubeconfig
        self.path = directory / f"{self.name}.kubeconfig"

    def grant(self, rules: list[dict[str, Any]]) -> None:
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": self.name, "labels": {"e2e": "rbac"}}, "rules": rules}
        try:
            self.rbac.replace_cluster_role(self.name, role)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            self.rbac.create_cluster_role(role)

    def create(self, rules: list[dict[str, Any]]) -> Path:
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.name,
                                                                                   labels={"e2e": "rbac"})))
        self.core.create_namespaced_service_account(self.name, client.V1ServiceAccount(
            metadata=client.V1ObjectMeta(name="pytest-vcluster")))
        self.grant(rules)
        self.rbac.create_cluster_role_binding({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": self.name, "labels": {"e2e": "rbac"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": self.name},
            "subjects": [{"kind": "ServiceAccount", "name": "pytest-vcluster", "namespace": self.name}]})
        token = self.core.create_namespaced_service_account_token(
            "pytest-vcluster", self.name,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[],
                                                                               expiration_seconds=7200)))
        admin = yaml.safe_load(self.host_kubeconfig.read_text())
        cluster = admin["clusters"][0]["cluster"]
        if "certificate-authority" in cluster:  # inline it: the inner run may start elsewhere
            ca = Path(cluster.pop("certificate-authority")).read_bytes()
            cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
        self.path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "ci",
            "clusters": [{"name": "host", "cluster": cluster}],
            "users": [{"name": "ci", "user": {"token": token.status.token}}],
            "contexts": [{"name": "ci", "context": {"cluster": "host", "user": "ci"}}],
        }))
        return self.path

    def delete(self) -> None:
        for call in (lambda: self.rbac.delete_cluster_role_binding(self.name),
                     lambda: self.rbac.delete_cluster_role(self.name),
                     lambda: self.core.delete_namespace(self.name)):
            try:
                call()
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture
def service_account(host_api: client.ApiClient, host_kubeconfig: Path, tmp_path: Path) -> Iterator[ServiceAccountHost]:
    sa = ServiceAccountHost(host_api, host_kubeconfig, tmp_path)
    try:
        yield sa
    finally:
        sa.delete()


def run_as(pytester: pytest.Pytester, kubeconfig: Path, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_rbac=INNER_TESTS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--vcluster-host=kubeconfig",
                                         f"--vcluster-host-kubeconfig={kubeconfig}", *args, timeout=900)


def test_the_documented_rules_are_enough(pytester: pytest.Pytester, service_account: ServiceAccountHost) -> None:
    kubeconfig = service_account.create(default_rules())
    result = run_as(pytester, kubeconfig)
    result.assert_outcomes(passed=2)


def test_a_missing_rule_is_named(pytester: pytest.Pytester, service_account: ServiceAccountHost) -> None:
    rules = [r for r in default_rules() if r["resources"] != ["statefulsets"]]
    assert len(rules) == len(default_rules()) - 1
    kubeconfig = service_account.create(rules)
    result = run_as(pytester, kubeconfig, "-k", "test_a_pod_runs")
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert (f"the host refused system:serviceaccount:{service_account.name}:pytest-vcluster the right to get "
            "statefulsets (API group apps) in namespace ") in output
    assert (". Add this rule to the ClusterRole bound to it (docs/host-rbac.yaml lists every right the plugin "
            'needs): - apiGroups: ["apps"], resources: ["statefulsets"], verbs: ["get"]') in output
