"""Several tests sharing one virtual cluster (``module_vcluster`` from conftest.py), in order.

Objects made by one test are there for the next: a ConfigMap counter and a running Deployment. Run the
module as a whole (under pytest-xdist use ``--dist loadfile`` so that its tests stay on one worker).
"""

from __future__ import annotations

from kubernetes import client

from pytest_vcluster import Host, VCluster

BUSYBOX_IMAGE = "busybox:1.36"


def test_first_creates_state(module_vcluster: VCluster, team_namespace: str) -> None:
    core = client.CoreV1Api(module_vcluster.api_client)
    core.create_namespaced_config_map(
        team_namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="counter"),
            data={"value": "1", "cluster": module_vcluster.name},
        ),
    )
    module_vcluster.apply({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleeper"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "sleeper"}},
            "template": {
                "metadata": {"labels": {"app": "sleeper"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,  # `sleep` as PID 1 ignores SIGTERM
                    "containers": [{"name": "sleep", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                                    "command": ["sleep", "3600"]}],
                },
            },
        },
    }, namespace=team_namespace)


def test_second_sees_and_updates_state(module_vcluster: VCluster, team_namespace: str) -> None:
    core = client.CoreV1Api(module_vcluster.api_client)
    counter = core.read_namespaced_config_map("counter", team_namespace)
    assert counter.data == {"value": "1", "cluster": module_vcluster.name}
    core.patch_namespaced_config_map("counter", team_namespace, {"data": {"value": "2"}})


def test_third_finds_the_workload_running(module_vcluster: VCluster, team_namespace: str, vcluster_host: Host) -> None:
    core = client.CoreV1Api(module_vcluster.api_client)
    module_vcluster.wait_for("deployment/sleeper", "Available", namespace=team_namespace, timeout=120.0)
    (pod,) = core.list_namespaced_pod(team_namespace, label_selector="app=sleeper").items
    host_pod = client.CoreV1Api(vcluster_host.api_client).read_namespaced_pod(
        module_vcluster.host_name(pod), module_vcluster.host_namespace
    )
    assert host_pod.status.phase == "Running"
    assert host_pod.metadata.labels["vcluster.loft.sh/namespace"] == team_namespace


def test_fourth_reads_the_update(module_vcluster: VCluster, team_namespace: str) -> None:
    core = client.CoreV1Api(module_vcluster.api_client)
    assert core.read_namespaced_config_map("counter", team_namespace).data["value"] == "2"
    assert core.read_namespace(team_namespace).metadata.labels["team"] == "a"
