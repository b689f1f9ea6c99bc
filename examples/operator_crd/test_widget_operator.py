"""Testing an operator end to end: CRD, cluster-wide RBAC and a controller, in a throwaway virtual cluster.

Every test gets its own virtual cluster (fixture ``vcluster``), so installing a CRD and a ClusterRole is
free of side effects: the host cluster never sees them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException

from pytest_vcluster import Host, VCluster, wait_until

HERE = Path(__file__).resolve().parent
GROUP = "examples.pytest-vcluster.io"
VERSION = "v1alpha1"
CRD_NAME = f"widgets.{GROUP}"
CONTROLLER_NAMESPACE = "widget-system"
CONTROLLER_SA = "widget-controller"
PYTHON_IMAGE = "pytest-vcluster.local/python:3.11-bookworm"
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
    """The CRD and the controller's Namespace/ServiceAccount/ClusterRole/ClusterRoleBinding, installed."""
    utils.create_from_yaml(vcluster.api_client, str(HERE / "manifests" / "crd.yaml"))
    utils.create_from_yaml(vcluster.api_client, str(HERE / "manifests" / "rbac.yaml"))
    ext = client.ApiextensionsV1Api(vcluster.api_client)

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(CRD_NAME).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_until(f"CRD {CRD_NAME} to be Established", established, timeout=TIMEOUT)
    # Established is not quite "served": for a moment the API server answers a new resource with
    # 429 (storage initializing, retry after 1 s). Wait until Widgets can be listed.
    custom = client.CustomObjectsApi(vcluster.api_client)
    wait_until("Widgets to be served", lambda: custom.list_cluster_custom_object(GROUP, VERSION, "widgets") is not None,
               timeout=TIMEOUT)
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


# Chart values for this test's cluster: copy every virtual ConfigMap to the host namespace (by default
# only those that pods use are copied), so the test can see the controller's output from the host side.
@pytest.mark.vcluster(set={"sync.toHost.configMaps.all": True})
def test_controller_creates_a_configmap_per_widget(
    operator_installed: VCluster, controller: Path, vcluster_host: Host
) -> None:
    vcluster = operator_installed
    custom = client.CustomObjectsApi(vcluster.api_client)
    core = client.CoreV1Api(vcluster.api_client)

    custom.create_namespaced_custom_object(GROUP, VERSION, "default", "widgets", widget("sprocket", "blue", 3))

    cm = vcluster.wait("ConfigMap widget-sprocket",
                       lambda: core.read_namespaced_config_map("widget-sprocket", "default"), timeout=TIMEOUT)
    assert cm.data == {"color": "blue", "size": "3"}
    assert cm.metadata.owner_references[0].kind == "Widget"
    status = wait_until(
        "Widget status",
        lambda: custom.get_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "sprocket").get("status"),
        timeout=TIMEOUT,
    )
    assert status["configMap"] == "widget-sprocket"

    # An update of the spec reaches the ConfigMap.
    custom.patch_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "sprocket", {"spec": {"color": "red"}})
    wait_until(
        "ConfigMap update",
        lambda: core.read_namespaced_config_map("widget-sprocket", "default").data["color"] == "red",
        timeout=TIMEOUT,
    )

    # The CRD exists only in the virtual cluster; the host has never heard of Widgets.
    host_ext = client.ApiextensionsV1Api(vcluster_host.api_client)
    assert not_found(lambda: host_ext.read_custom_resource_definition(CRD_NAME))
    assert client.ApiextensionsV1Api(vcluster.api_client).read_custom_resource_definition(CRD_NAME)
    host_rbac = client.RbacAuthorizationV1Api(vcluster_host.api_client)
    assert not_found(lambda: host_rbac.read_cluster_role(CONTROLLER_SA))

    # ... but the ConfigMap the controller made was copied into the host namespace under its host name.
    host_core = client.CoreV1Api(vcluster_host.api_client)
    host_cm_name = vcluster.host_name("ConfigMap", "widget-sprocket", "default")
    host_cm = wait_until(
        f"host ConfigMap {host_cm_name}",
        lambda: host_core.read_namespaced_config_map(host_cm_name, vcluster.host_namespace),
        timeout=TIMEOUT,
    )
    assert host_cm.metadata.labels["vcluster.loft.sh/managed-by"] == vcluster.name

    # Deleting the Widget garbage-collects its ConfigMap (owner reference). This takes up to ~40 s here:
    # kube-controller-manager's garbage collector starts watching a new CRD's resource only at its
    # periodic discovery resync (every 30 s), as in any Kubernetes cluster.
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "sprocket")
    wait_until(
        "ConfigMap widget-sprocket to be garbage-collected",
        lambda: not_found(lambda: core.read_namespaced_config_map("widget-sprocket", "default")),
        timeout=TIMEOUT,
    )


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

result = {
    "widgets": status("/apis/examples.pytest-vcluster.io/v1alpha1/widgets"),
    "configmaps": status("/api/v1/configmaps"),
    "secrets": status("/api/v1/secrets"),
}
open("/dev/termination-log", "w").write(json.dumps(result))
raise SystemExit(0 if result == {"widgets": 200, "configmaps": 200, "secrets": 403} else 1)
"""


def test_controller_service_account_rights_in_cluster(operator_installed: VCluster) -> None:
    """A pod running as the controller's ServiceAccount reaches the virtual API server from inside the
    cluster (KUBERNETES_SERVICE_HOST + its token) and has exactly the ClusterRole's rights."""
    core = client.CoreV1Api(operator_installed.api_client)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="rbac-check", namespace=CONTROLLER_NAMESPACE),
        spec=client.V1PodSpec(
            service_account_name=CONTROLLER_SA,
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name="check",
                    image=PYTHON_IMAGE,
                    image_pull_policy="Never",
                    command=["python3", "-c", RBAC_CHECK],
                )
            ],
        ),
    )
    core.create_namespaced_pod(CONTROLLER_NAMESPACE, pod)

    def finished() -> client.V1Pod | None:
        current = core.read_namespaced_pod("rbac-check", CONTROLLER_NAMESPACE)
        return current if current.status.phase in ("Succeeded", "Failed") else None

    done = wait_until("pod rbac-check to finish", finished, timeout=180)
    terminated = done.status.container_statuses[0].state.terminated
    assert done.status.phase == "Succeeded", f"in-cluster API access: {terminated.message if terminated else done}"
