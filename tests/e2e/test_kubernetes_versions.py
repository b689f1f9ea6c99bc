"""A virtual cluster of each supported Kubernetes minor on the real host (`hack/host up`).

The minors and their images are the table chart/kubernetes-versions.yaml (hack/_host/versions.py reads it).
Per minor: a cluster made with ``VCluster.create(kubernetes=minor)`` (the chart's image tags of that minor:
kube-apiserver, kube-controller-manager, etcd), its control-plane pod on the host running exactly those images,
``/version`` answering the minor's patch, a pod (its log read through the syncer's kubelet) and a
Deployment of two replicas running.

Which minors: ``VCLUSTER_E2E_KUBERNETES`` (comma-separated minors, or ``all``); by default the ones
`hack/host up` builds (``VCLUSTER_HOST_KUBERNETES``, which hack/_setup.sh sets; else 1.35). A listed
minor whose images the host does not serve fails, naming the command that builds them: it never passes
unchecked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from kubernetes import client

from pytest_vcluster import Host
from pytest_vcluster.core.contract import contract

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import registry, versions  # noqa: E402
from e2e_helpers import created_vcluster, events_text, suffix, wait  # noqa: E402

pytestmark = pytest.mark.e2e

LABELS = {"e2e": "kubernetes-versions"}
SHELL = versions.SHELL_IMAGE
CREATE_TIMEOUT = 300.0
MINORS = [p.minor for p in versions.requested_control_planes(os.environ.get("VCLUSTER_E2E_KUBERNETES") or None)]


def missing_images(plane: versions.ControlPlane) -> list[str]:
    """The images of ``plane`` that the host's registry does not serve (a pull of them would fail)."""
    return [image for image in plane.images if not registry.has_tag(image)]


def shell_pod(name: str, text: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
            name="main", image=SHELL, image_pull_policy="Never", command=["sh", "-c", f"echo {text}; sleep 3600"])]),
    )


def deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
                    name="main", image=SHELL, image_pull_policy="Never", command=["sleep", "3600"])]),
            ),
        ),
    )


def running(core: client.CoreV1Api, name: str) -> bool:
    pod = core.read_namespaced_pod(name, "default")
    return pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses or [False])


@pytest.mark.parametrize("minor", MINORS)
def test_a_cluster_of_each_minor_serves_its_version_and_runs_a_pod_and_a_deployment(
    host: Host, host_core: client.CoreV1Api, minor: str
) -> None:
    plane = versions.CONTROL_PLANES[minor]
    missing = missing_images(plane)
    if missing:
        pytest.fail(f"Kubernetes {minor} ({plane.kubernetes}) is not built on this host: its registry lacks "
                    f"{', '.join(missing)}; run `sudo hack/host images --kubernetes {minor}` (or set "
                    f"VCLUSTER_HOST_KUBERNETES for hack/host up), or leave {minor} out of VCLUSTER_E2E_KUBERNETES",
                    pytrace=False)
    name = f"kv{minor.replace('.', '')}-{suffix()}"
    with created_vcluster(host, name, labels=LABELS, timeout=CREATE_TIMEOUT, kubernetes=minor) as vc:
        print(f"Kubernetes {plane.kubernetes} (etcd {plane.etcd_tag}): ready in {vc.setup_seconds:.1f}s")
        # The host runs the minor's images.
        r0 = host_core.read_namespaced_pod(contract.control_plane_pod(vc.name), vc.host_namespace)
        images = {c.name: c.image for c in r0.spec.containers}
        assert (images["kube-apiserver"], images["kube-controller-manager"], images["etcd"]) == plane.images
        # /version
        info = client.VersionApi(vc.api_client).get_code()
        assert info.git_version == plane.kubernetes
        assert f"{info.major}.{info.minor}" == minor
        # A pod, and its log through the syncer's kubelet.
        core = client.CoreV1Api(vc.api_client)
        core.create_namespaced_pod("default", shell_pod("hello", f"hello-from-{plane.kubernetes}"))
        wait("pod hello Running", lambda: running(core, "hello"), timeout=120,
             diagnose=lambda: events_text(host_core, vc.host_namespace))
        log = wait("pod hello's log", lambda: core.read_namespaced_pod_log("hello", "default"), timeout=60)
        assert log.strip() == f"hello-from-{plane.kubernetes}"
        # A Deployment: the minor's controllers (deployment, replicaset) make its pods, the syncer runs them.
        apps = client.AppsV1Api(vc.api_client)
        apps.create_namespaced_deployment("default", deployment("web", 2))
        wait("Deployment web: 2 ready replicas",
             lambda: (apps.read_namespaced_deployment("web", "default").status.ready_replicas or 0) == 2,
             timeout=120, diagnose=lambda: events_text(host_core, vc.host_namespace))
        pods = core.list_namespaced_pod("default", label_selector="app=web").items
        assert len(pods) == 2 and all(p.metadata.owner_references[0].kind == "ReplicaSet" for p in pods)
