"""A synced object the host refuses explains itself in the virtual cluster (on the real host, `hack/host up`).

A host ResourceQuota in the cluster's host namespace, made after the cluster is ready, leaves no room for
another pod: the host answers the syncer's create with 403 Forbidden "exceeded quota". The virtual pod then
carries a Warning event with reason SyncError and the host's message, shown by `kubectl describe pod` in the
virtual cluster; once the quota is gone and the pod changes, it is synced. `kubectl` must be on PATH
(`export PATH="$(hack/host tools):$PATH"`); images are the ones the host built (`hack/host images`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import suffix, wait  # noqa: E402

pytestmark = pytest.mark.e2e

QUOTA = "e2e-no-more-pods"


@pytest.mark.vcluster(recycle=False)  # it adds a ResourceQuota to the host namespace: a reset would refuse it
def test_host_quota_rejection_is_a_sync_error_event_on_the_virtual_pod(vcluster, host_api: client.ApiClient) -> None:
    vcore = client.CoreV1Api(vcluster.api_client)
    hcore = client.CoreV1Api(host_api)
    hns = vcluster.host_namespace

    # the host namespace is full: as many pods as run there now (the control plane, CoreDNS)
    running = [p for p in hcore.list_namespaced_pod(hns).items if p.status.phase not in ("Succeeded", "Failed")]
    hcore.create_namespaced_resource_quota(hns, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name=QUOTA),
        spec=client.V1ResourceQuotaSpec(hard={"pods": str(len(running))})))
    wait("the host quota to be counted",
         lambda: (hcore.read_namespaced_resource_quota(QUOTA, hns).status.used or {}).get("pods"), timeout=60)

    ns = f"team-{suffix()}"
    vcore.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    vcore.create_namespaced_pod(ns, client.V1Pod(
        metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="c", image=versions.SHELL_IMAGE, image_pull_policy="Never", command=["sleep", "3600"])])))
    uid = vcore.read_namespaced_pod("web", ns).metadata.uid

    def sync_error() -> client.CoreV1Event | None:
        for event in vcore.list_namespaced_event(ns).items:
            if event.reason == "SyncError" and event.involved_object.uid == uid:
                return event
        return None

    def diagnose() -> str:
        events = vcore.list_namespaced_event(ns).items
        return "virtual events: " + "; ".join(f"{e.reason}: {e.message}" for e in events)

    event = wait("a SyncError event on the virtual pod", sync_error, timeout=60, diagnose=diagnose)
    print(f"virtual event: {event.type} {event.reason} x{event.count}: {event.message}")
    assert event.type == "Warning"
    assert "exceeded quota" in event.message and QUOTA in event.message, event.message
    assert event.involved_object.kind == "Pod" and event.involved_object.name == "web"

    described = subprocess.run(["kubectl", "--kubeconfig", str(vcluster.kubeconfig_path), "describe", "pod", "web",
                                "-n", ns], capture_output=True, text=True, timeout=60)
    assert described.returncode == 0, described.stderr
    print(described.stdout[described.stdout.find("Events:"):])
    assert "SyncError" in described.stdout and "exceeded quota" in described.stdout, described.stdout

    # the plugin's failure report (VCluster.diagnostics) shows it too
    report = vcluster.diagnostics()
    assert f"SyncError pod/{ns}/web: Error syncing to host cluster: 403 Forbidden" in report, report

    # held, not retried in a loop: the event is counted, not repeated
    assert len([e for e in vcore.list_namespaced_event(ns).items if e.reason == "SyncError"]) == 1

    # room again on the host, and the pod changes: it is synced and runs
    hcore.delete_namespaced_resource_quota(QUOTA, hns)
    vcore.patch_namespaced_pod("web", ns, {"metadata": {"labels": {"retry": "1"}}})
    wait("the pod to run", lambda: vcore.read_namespaced_pod("web", ns).status.phase == "Running", timeout=180,
         diagnose=diagnose)
