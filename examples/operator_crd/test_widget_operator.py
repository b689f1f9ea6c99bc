"""Testing an operator end to end: CRD, cluster-wide RBAC and a controller, in a throwaway virtual cluster.

Every test gets its own virtual cluster (fixture ``vcluster``), so installing a CRD and a ClusterRole is
free of side effects: the host cluster never sees them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pytest_vcluster import Host, VCluster

HERE = Path(__file__).resolve().parent
GROUP = "examples.pytest-vcluster.io"
VERSION = "v1alpha1"
CRD_NAME = f"widgets.{GROUP}"
CONTROLLER_NAMESPACE = "widget-system"
CONTROLLER_SA = "widget-controller"
#: a Python image: the one the plugin builds its syncer image from (examples/conftest.py loads it when it can)
PYTHON_IMAGE = os.environ.get("VCLUSTER_SYNCER_BASE_IMAGE") or "python:3.11-slim-bookworm"
TIMEOUT = 120.0


def not_found(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ApiException as exc:
        return exc.status == 404
    return False


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def operator_installed(vcluster: VCluster) -> VCluster:
    """The CRD and the controller's Namespace/ServiceAccount/ClusterRole/ClusterRoleBinding, installed.

    ``vcluster.apply`` applies the CRD first and returns once Widgets are served, so objects of the CRD can
    follow at once."""
    vcluster.apply(HERE / "manifests")
    return vcluster


@pytest.fixture
def controller(operator_installed: VCluster, tmp_path: Path) -> Iterator[Path]:
    """``widget_controller.py`` running in a subprocess as the controller's ServiceAccount.

    The subprocess gets a kubeconfig built from ``vcluster.kubeconfig_path`` with the user swapped for a
    token of ServiceAccount ``widget-system/widget-controller``: the controller has exactly the rights of
    ``manifests/rbac.yaml``, as it would in a pod. Yields the path of its log.
    """
    vcluster = operator_installed
    core = client.CoreV1Api(vcluster.api_client)
    token = core.create_namespaced_service_account_token(
        CONTROLLER_SA,
        CONTROLLER_NAMESPACE,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)),
    ).status.token
    kubeconfig = yaml.safe_load(vcluster.kubeconfig_path.read_text())
    for user in kubeconfig["users"]:
        user["user"] = {"token": token}
    controller_kubeconfig = tmp_path / "controller.kubeconfig"
    controller_kubeconfig.write_text(yaml.safe_dump(kubeconfig))

    log_path = tmp_path / "controller.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "widget_controller.py")],
            env={**os.environ, "KUBECONFIG": str(controller_kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(f"--- controller log ---\n{log_path.read_text()}")  # shown by pytest when the test failed


def widget(name: str, color: str, size: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"color": color}
    if size is not None:
        spec["size"] = size
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


# --------------------------------------------------------------------------- tests


#: The Kubernetes minors the operator's main test runs on besides the chart's default (every other test): the oldest
#: one upstream supports. Each is a cluster of its own (``@pytest.mark.vcluster(kubernetes=...)``), whatever the
#: host runs; add minors of the chart's table here (e.g. "1.37") to test on them too.
KUBERNETES = ["1.35"]


# Chart values for this test's cluster: copy every virtual ConfigMap to the host namespace (by default
# only those that pods use are copied), so the test can see the controller's output from the host side.
@pytest.mark.vcluster(set={"sync.toHost.configMaps.all": True})
@pytest.mark.parametrize("kubernetes", [pytest.param(v, marks=pytest.mark.vcluster(kubernetes=v)) for v in KUBERNETES])
def test_controller_creates_a_configmap_per_widget(
    kubernetes: str, operator_installed: VCluster, controller: Path, vcluster_host: Host
) -> None:
    vcluster = operator_installed
    assert client.VersionApi(vcluster.api_client).get_code().minor == kubernetes.split(".")[1]
    custom = client.CustomObjectsApi(vcluster.api_client)

    custom.create_namespaced_custom_object(GROUP, VERSION, "default", "widgets", widget("sprocket", "blue", 3))

    cm = vcluster.wait_for("configmap/widget-sprocket", lambda cm: cm["data"], timeout=TIMEOUT)
    assert cm["data"] == {"color": "blue", "size": "3"}
    assert cm["metadata"]["ownerReferences"][0]["kind"] == "Widget"
    sprocket = vcluster.wait_for("widget/sprocket", lambda w: w["status"]["configMap"], timeout=TIMEOUT)
    assert sprocket["status"]["configMap"] == "widget-sprocket"

    # An update of the spec reaches the ConfigMap.
    custom.patch_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "sprocket", {"spec": {"color": "red"}})
    vcluster.wait_for("configmap/widget-sprocket", lambda cm: cm["data"]["color"] == "red", timeout=TIMEOUT)

    # The CRD exists only in the virtual cluster; the host has never heard of Widgets.
    host_ext = client.ApiextensionsV1Api(vcluster_host.api_client)
    assert not_found(lambda: host_ext.read_custom_resource_definition(CRD_NAME))
    assert client.ApiextensionsV1Api(vcluster.api_client).read_custom_resource_definition(CRD_NAME)
    host_rbac = client.RbacAuthorizationV1Api(vcluster_host.api_client)
    assert not_found(lambda: host_rbac.read_cluster_role(CONTROLLER_SA))

    # ... but the ConfigMap the controller made was copied into the host namespace under its host name.
    host_core = client.CoreV1Api(vcluster_host.api_client)
    host_cm_name = vcluster.host_name("ConfigMap", "widget-sprocket", "default")
    host_cm = vcluster.wait(
        f"host ConfigMap {host_cm_name}",
        lambda: host_core.read_namespaced_config_map(host_cm_name, vcluster.host_namespace),
        timeout=TIMEOUT,
    )
    assert host_cm.metadata.labels["vcluster.loft.sh/managed-by"] == vcluster.name

    # Deleting the Widget garbage-collects its ConfigMap (owner reference). This takes up to ~40 s here:
    # kube-controller-manager's garbage collector starts watching a new CRD's resource only at its
    # periodic discovery resync (every 30 s), as in any Kubernetes cluster.
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "sprocket")
    vcluster.wait_for("configmap/widget-sprocket", "delete", timeout=TIMEOUT)


def test_crd_schema_validates_and_defaults(operator_installed: VCluster) -> None:
    custom = client.CustomObjectsApi(operator_installed.api_client)

    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", "widgets", widget("bad", "purple"))
    assert rejected.value.status == 422
    assert "purple" in rejected.value.body

    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", "widgets", widget("plain", "green"))
    assert created["spec"]["size"] == 1  # the schema's default


RBAC_CHECK = """
import json, os, ssl, time, urllib.error, urllib.request

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
base = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
ctx = ssl.create_default_context(cafile=SA + "/ca.crt")
token = open(SA + "/token").read()

def status(path):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    for _ in range(30):  # 429: the API server asks to retry (e.g. a CRD's storage is initializing)
        try:
            return urllib.request.urlopen(req, context=ctx, timeout=10).status
        except urllib.error.HTTPError as exc:
            if exc.code != 429:
                return exc.code
            time.sleep(1)
    return 429

print(json.dumps({
    "widgets": status("/apis/examples.pytest-vcluster.io/v1alpha1/widgets"),
    "configmaps": status("/api/v1/configmaps"),
    "secrets": status("/api/v1/secrets"),
}))
"""


def test_controller_service_account_rights_in_cluster(operator_installed: VCluster) -> None:
    """A pod running as the controller's ServiceAccount reaches the virtual API server from inside the
    cluster (KUBERNETES_SERVICE_HOST + its token) and has exactly the ClusterRole's rights: it prints the
    HTTP status of three requests, and the test reads them from its log."""
    vcluster = operator_installed
    vcluster.apply({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "rbac-check", "namespace": CONTROLLER_NAMESPACE},
        "spec": {
            "serviceAccountName": CONTROLLER_SA,
            "restartPolicy": "Never",
            "containers": [{"name": "check", "image": PYTHON_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-c", RBAC_CHECK]}],
        },
    })
    done = vcluster.wait_for("pod/rbac-check", lambda pod: pod["status"]["phase"] in ("Succeeded", "Failed"),
                             namespace=CONTROLLER_NAMESPACE, timeout=180)
    log = vcluster.logs("rbac-check", namespace=CONTROLLER_NAMESPACE)
    assert done["status"]["phase"] == "Succeeded", log
    assert json.loads(log) == {"widgets": 200, "configmaps": 200, "secrets": 403}
