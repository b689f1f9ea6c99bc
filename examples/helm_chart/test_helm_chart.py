"""Testing a Helm chart: install it with the helm binary into a virtual cluster, check it really runs.

``vcluster.kubeconfig_path`` is an ordinary kubeconfig, so any CLI (helm, kubectl, your own tool) can be
pointed at the virtual cluster from a subprocess. The pods of the chart run on the host, in the virtual
cluster's host namespace, under ``vcluster.host_name(...)``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pytest_vcluster import Host, VCluster, wait_until

CHART = Path(__file__).resolve().parent / "hello-web"
BUSYBOX_IMAGE = "pytest-vcluster.local/busybox:1.35"
TIMEOUT = 180.0



def helm(vcluster: VCluster, *args: str) -> str:
    """Run ``helm --kubeconfig <the virtual cluster's kubeconfig> ARGS``; fail the test with helm's output."""
    binary = shutil.which("helm")
    assert binary, "helm is not on PATH (hack/examples puts it there: PATH=$(hack/host tools):$PATH)"
    command = [binary, "--kubeconfig", str(vcluster.kubeconfig_path), *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT + 60)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def helm_install(vcluster: VCluster, release: str, namespace: str, values: Sequence[str] = ()) -> None:
    """``helm install`` the chart, then wait until its Deployment is available and its Service settled.

    The waiting is done here rather than with ``helm install --wait``: the syncer gives every new virtual
    Service the ClusterIP of its host copy by deleting and re-creating it, and a ``--wait`` poll that falls
    into that moment fails with ``services "<name>" not found``.
    """
    set_args = [arg for value in values for arg in ("--set", value)]
    helm(vcluster, "install", release, str(CHART), "--namespace", namespace, "--create-namespace", *set_args)
    apps = client.AppsV1Api(vcluster.api_client)
    core = client.CoreV1Api(vcluster.api_client)
    host_core = client.CoreV1Api(vcluster.host.api_client)

    def available() -> bool:
        deployment = apps.read_namespaced_deployment(release, namespace)
        return (deployment.status.available_replicas or 0) == deployment.spec.replicas

    def service_settled() -> bool:
        service = core.read_namespaced_service(release, namespace)
        host_service = host_core.read_namespaced_service(vcluster.host_name(service), vcluster.host_namespace)
        return service.spec.cluster_ip == host_service.spec.cluster_ip

    wait_until(f"Deployment {namespace}/{release} to be available", available, timeout=TIMEOUT)
    wait_until(f"Service {namespace}/{release} to get its host ClusterIP", service_settled, timeout=TIMEOUT)


def fetch_in_cluster(vcluster: VCluster, namespace: str, url: str, expected: str) -> None:
    """Have a busybox pod in the virtual cluster GET ``url`` until the body equals ``expected``.

    The pod reports through its exit code (container logs are not read through the virtual API here).
    """
    core = client.CoreV1Api(vcluster.api_client)
    script = (
        'for i in $(seq 60); do [ "$(timeout 10 wget -q -O- "$URL")" = "$EXPECTED" ] && exit 0; sleep 1; done; exit 1'
    )
    name = "fetch"
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(
                restart_policy="Never",
                containers=[
                    client.V1Container(
                        name="wget",
                        image=BUSYBOX_IMAGE,
                        image_pull_policy="Never",
                        command=["sh", "-c", script],
                        env=[client.V1EnvVar(name="URL", value=url), client.V1EnvVar(name="EXPECTED", value=expected)],
                    )
                ],
            ),
        ),
    )

    def finished() -> str | None:
        phase = core.read_namespaced_pod(name, namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until(f"pod {namespace}/{name} to finish", finished, timeout=TIMEOUT)
    assert phase == "Succeeded", f"{url} did not serve {expected!r}"
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def test_install_run_and_uninstall(vcluster: VCluster, vcluster_host: Host) -> None:
    helm_install(vcluster, "web", "shop", ["replicas=2", "message=hello from the virtual cluster"])

    # The Deployment lives only in the virtual cluster; its controller there made pods that really run.
    apps = client.AppsV1Api(vcluster.api_client)
    core = client.CoreV1Api(vcluster.api_client)
    deployment = apps.read_namespaced_deployment("web", "shop")
    assert deployment.status.available_replicas == 2
    pods = core.list_namespaced_pod("shop", label_selector="app.kubernetes.io/instance=web").items
    assert len(pods) == 2
    assert {pod.status.phase for pod in pods} == {"Running"}

    # On the host: the synced pods, under their host names, in the cluster's host namespace, and no Deployment.
    host_core = client.CoreV1Api(vcluster_host.api_client)
    for pod in pods:
        host_pod = host_core.read_namespaced_pod(vcluster.host_name(pod), vcluster.host_namespace)
        assert host_pod.status.phase == "Running"
        assert host_pod.metadata.annotations["vcluster.loft.sh/object-name"] == pod.metadata.name
        assert host_pod.status.pod_ip == pod.status.pod_ip
    host_apps = client.AppsV1Api(vcluster_host.api_client)
    assert host_apps.list_namespaced_deployment(vcluster.host_namespace).items == []

    # The virtual Service has the ClusterIP of its host copy, so pods reach it like any Service.
    service = core.read_namespaced_service("web", "shop")
    host_service = host_core.read_namespaced_service(vcluster.host_name(service), vcluster.host_namespace)
    assert service.spec.cluster_ip == host_service.spec.cluster_ip
    fetch_in_cluster(vcluster, "shop", f"http://{service.spec.cluster_ip}:80/", "hello from the virtual cluster")

    releases = json.loads(helm(vcluster, "list", "--namespace", "shop", "--output", "json"))
    assert [(r["name"], r["status"]) for r in releases] == [("web", "deployed")]

    # helm uninstall removes the release, and the syncer removes the host pods.
    helm(vcluster, "uninstall", "web", "--namespace", "shop", "--wait", "--timeout", f"{int(TIMEOUT)}s")
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("web", "shop")
    assert gone.value.status == 404
    host_selector = "vcluster.loft.sh/namespace=shop"
    wait_until(
        "the synced pods to leave the host namespace",
        lambda: host_core.list_namespaced_pod(vcluster.host_namespace, label_selector=host_selector).items == [],
        timeout=TIMEOUT,
    )


def test_same_release_in_two_clusters(vcluster_factory: Callable[..., VCluster], vcluster_host: Host) -> None:
    """Two clusters from one test: the same release name installs in each, with its own values, no clash."""
    clusters = {message: vcluster_factory() for message in ("blue", "green")}
    for message, vc in clusters.items():
        helm_install(vc, "web", "default", [f"message={message}"])

    host_core = client.CoreV1Api(vcluster_host.api_client)
    host_namespaces: set[str] = set()
    for message, vc in clusters.items():
        core = client.CoreV1Api(vc.api_client)
        assert core.read_namespaced_config_map("web-content", "default").data == {"index.html": message}
        values: dict[str, Any] = json.loads(helm(vc, "get", "values", "web", "--output", "json"))
        assert values == {"message": message}
        (pod,) = core.list_namespaced_pod("default", label_selector="app.kubernetes.io/instance=web").items
        assert host_core.read_namespaced_pod(vc.host_name(pod), vc.host_namespace).status.phase == "Running"
        host_namespaces.add(vc.host_namespace)
    assert len(host_namespaces) == 2
