"""Testing a Helm chart: install it into a virtual cluster, check it really runs.

``vcluster.helm_install`` runs the real helm binary (``helm upgrade --install --wait``) with the virtual
cluster's kubeconfig; ``vcluster.helm(...)`` runs any other helm command. The pods of the chart run on the
host, in the virtual cluster's host namespace, under ``vcluster.host_name(...)``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pytest_vcluster import Host, VCluster

CHART = Path(__file__).resolve().parent / "hello-web"
BUSYBOX_IMAGE = "busybox:1.36"
TIMEOUT = 180.0


def fetch_in_cluster(vcluster: VCluster, namespace: str, url: str) -> str:
    """A busybox pod in the virtual cluster GETs ``url``, as any pod of the cluster would; returns the body
    (the pod's log). It tries for up to 30 s: a new Service's address may take a moment to route."""
    script = 'for i in $(seq 30); do wget -q -T 5 -O- "$URL" 2>/tmp/err && exit 0; sleep 1; done; cat /tmp/err; exit 1'
    vcluster.apply({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fetch", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "wget", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script], "env": [{"name": "URL", "value": url}]}],
        },
    })
    pod = vcluster.wait_for("pod/fetch", lambda pod: pod["status"]["phase"] in ("Succeeded", "Failed"),
                            namespace=namespace, timeout=TIMEOUT)
    body = vcluster.logs("fetch", namespace=namespace)
    assert pod["status"]["phase"] == "Succeeded", f"wget {url} failed: {body}"
    vcluster.kubectl("delete", "pod", "fetch", "--namespace", namespace)
    return body


def test_install_run_and_uninstall(vcluster: VCluster, vcluster_host: Host) -> None:
    release = vcluster.helm_install("web", CHART, namespace="shop",
                                    values={"replicas": 2, "message": "hello from the virtual cluster"},
                                    timeout=TIMEOUT)
    assert release["info"]["status"] == "deployed"

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

    # A command in a pod of the chart (through the virtual API server, as `kubectl exec`): the page it serves.
    page = vcluster.exec(pods[0].metadata.name, ["cat", "/usr/share/nginx/html/index.html"], namespace="shop")
    assert page == "hello from the virtual cluster"

    # The virtual Service has the ClusterIP of its host copy, so pods reach it like any Service: by name.
    service = core.read_namespaced_service("web", "shop")
    host_service = host_core.read_namespaced_service(vcluster.host_name(service), vcluster.host_namespace)
    assert service.spec.cluster_ip == host_service.spec.cluster_ip
    assert fetch_in_cluster(vcluster, "shop", "http://web.shop/") == "hello from the virtual cluster"

    # From the test itself: a local port forwarded to the Service (through the virtual API server).
    with vcluster.port_forward("svc/web", 80, namespace="shop") as url:
        assert urllib.request.urlopen(url, timeout=30).read().decode() == "hello from the virtual cluster"

    releases = json.loads(vcluster.helm("list", "--namespace", "shop", "--output", "json"))
    assert [(r["name"], r["status"]) for r in releases] == [("web", "deployed")]

    # helm uninstall removes the release, and the syncer removes the host pods.
    vcluster.helm("uninstall", "web", "--namespace", "shop", "--wait", "--timeout", f"{int(TIMEOUT)}s")
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("web", "shop")
    assert gone.value.status == 404
    host_selector = "vcluster.loft.sh/namespace=shop"
    vcluster.wait(
        "the synced pods to leave the host namespace",
        lambda: host_core.list_namespaced_pod(vcluster.host_namespace, label_selector=host_selector).items == [],
        timeout=TIMEOUT,
    )


def test_same_release_in_two_clusters(vcluster_factory: Callable[..., VCluster], vcluster_host: Host) -> None:
    """Two clusters from one test: the same release name installs in each, with its own values, no clash."""
    clusters = {message: vcluster_factory() for message in ("blue", "green")}
    for message, vc in clusters.items():
        vc.helm_install("web", CHART, values={"message": message}, timeout=TIMEOUT)

    host_core = client.CoreV1Api(vcluster_host.api_client)
    host_namespaces: set[str] = set()
    for message, vc in clusters.items():
        core = client.CoreV1Api(vc.api_client)
        assert core.read_namespaced_config_map("web-content", "default").data == {"index.html": message}
        values: dict[str, Any] = json.loads(vc.helm("get", "values", "web", "--output", "json"))
        assert values == {"message": message}
        (pod,) = core.list_namespaced_pod("default", label_selector="app.kubernetes.io/instance=web").items
        assert host_core.read_namespaced_pod(vc.host_name(pod), vc.host_namespace).status.phase == "Running"
        host_namespaces.add(vc.host_namespace)
    assert len(host_namespaces) == 2
