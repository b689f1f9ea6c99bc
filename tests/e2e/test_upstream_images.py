"""Upstream image names on the host (`hack/host up`): its local registry and containerd's mirrors onto it.

The host reaches no registry.  hack/host runs a registry on localhost:5001 and points containerd's pulls
of docker.io, registry.k8s.io (and k8s.gcr.io, gcr.io, quay.io, ghcr.io, localhost:5001) at it.  Here the
host's shell image is pushed under names no pod of the host has used (a random suffix per run), then pods
name them as a third-party manifest would, with ``imagePullPolicy: Always``: the pull goes through the
registry (its access log shows the manifest request) and the pod runs.  The kind workflow (``docker push
localhost:5001/...`` with the host's docker) works too; a name the registry lacks fails at once with ErrImagePull
"not found" (nothing falls back to the real registry).

Clean-up: the test tags are deleted from the registry through its API (then their empty repository folders)
and the pulled images from the host's containerd; their layers are the shell image's, which stay.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from kubernetes import client

from pytest_vcluster import Host

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import registry, versions  # noqa: E402
from _host.layout import Layout  # noqa: E402
from e2e_helpers import Sides, created_vcluster, events_text, suffix, wait  # noqa: E402

pytestmark = pytest.mark.e2e

HOST = Path(__file__).resolve().parents[2] / "hack" / "host"
SHELL = versions.SHELL_IMAGE
LABELS = {"e2e": "upstream-images"}
RUN_ID = suffix()
# Upstream names this run publishes (never pulled before: the suffix is new).
BUSYBOX = f"docker.io/library/e2e-busybox-{RUN_ID}:1.36"
AGNHOST = f"registry.k8s.io/e2e-test-images-{RUN_ID}/agnhost:2.53"
LOCAL_APP = f"localhost:5001/e2e-app-{RUN_ID}:dev"
MISSING = f"docker.io/library/e2e-missing-{RUN_ID}:1.0"


def repository_of(image: str) -> str:
    """``image`` without its tag or digest."""
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


REPOSITORIES = {repository_of(name) for name in (BUSYBOX, AGNHOST, LOCAL_APP)}


def hack_host(*args: str) -> str:
    proc = subprocess.run([str(HOST), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"hack/host {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
    return proc.stdout


def registry_log() -> str:
    return (Layout.default().logs / "registry.log").read_text(errors="replace")


def manifest_requests(image: str) -> int:
    """How many manifest requests for ``image`` containerd sent the registry: its access log lines for
    ``/v2/<repository>/manifests/<tag>?ns=<registry>`` (containerd names the registry it mirrors in ``ns``)."""
    upstream, repository, ref = registry.split_name(image)
    return registry_log().count(f"/v2/{repository}/manifests/{ref[1:]}?ns={quote(upstream, safe='')} ")


@pytest.fixture(scope="module")
def published() -> Iterator[None]:
    """The host's shell image in the registry as BUSYBOX and AGNHOST (via `hack/host push-image`) and as
    LOCAL_APP (via a plain `docker push`, kind's workflow); none of them in the host's docker or containerd."""
    assert registry.answers(), "the host's registry does not answer: run hack/host up"
    for name in (BUSYBOX, AGNHOST):
        hack_host("docker", "tag", SHELL, name)
        assert hack_host("push-image", name).split() == [name]
        hack_host("docker", "rmi", "--no-prune", name)
    hack_host("docker", "tag", SHELL, LOCAL_APP)
    hack_host("docker", "push", LOCAL_APP)
    hack_host("docker", "rmi", "--no-prune", LOCAL_APP)
    names = set(hack_host("images").split())
    assert not names & {BUSYBOX, AGNHOST, LOCAL_APP}, "the test images must not be in containerd before the pods"
    yield
    for name in (BUSYBOX, AGNHOST, LOCAL_APP):
        registry.remove_repository(Layout.default(), name)
    # The runtime keeps each pulled image by tag and by digest (name@sha256:...).
    pulled = [n for n in hack_host("images").split() if repository_of(n) in REPOSITORIES]
    if pulled:
        hack_host("remove-image", *pulled)


def shell_pod(name: str, image: str, script: str = "echo hello-upstream") -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(restart_policy="Never", termination_grace_period_seconds=1, containers=[
            client.V1Container(name="main", image=image, image_pull_policy="Always", command=["sh", "-c", script])]),
    )


def succeeded(core: client.CoreV1Api, ns: str, name: str) -> client.V1Pod | None:
    pod = core.read_namespaced_pod(name, ns)
    if pod.status.phase == "Failed":
        pytest.fail(f"pod {name} failed: {pod.status}")
    return pod if pod.status.phase == "Succeeded" else None


def event_said(core: client.CoreV1Api, ns: str, text: str) -> None:
    """Wait for an event of namespace ``ns`` saying ``text``: the kubelet posts its events (pulled, failed to
    pull) asynchronously, rate-limited, after the pod's status already shows the outcome (on a busy host, seconds
    later: cold CI 2026-12-07 read them too early, three times)."""
    def said() -> bool:
        return text in events_text(core, ns)

    wait(f"an event saying {text!r}", said, timeout=60, diagnose=lambda: events_text(core, ns))


def run_to_completion(core: client.CoreV1Api, ns: str, name: str, image: str) -> client.V1Pod:
    core.create_namespaced_pod(ns, shell_pod(name, image))
    pod = wait(f"pod {name} ({image}) Succeeded", lambda: succeeded(core, ns, name), timeout=120,
               diagnose=lambda: events_text(core, ns))
    status = pod.status.container_statuses[0]
    assert status.state.terminated.exit_code == 0
    assert core.read_namespaced_pod_log(name, ns).strip() == "hello-upstream"
    return pod


@pytest.mark.usefixtures("published")
def test_upstream_name_is_pulled_through_the_registry(host_core: client.CoreV1Api, namespace: str) -> None:
    before = manifest_requests(BUSYBOX)
    run_to_completion(host_core, namespace, "busybox", BUSYBOX)
    assert manifest_requests(BUSYBOX) > before, "containerd sent the registry no request for the image's manifest"
    event_said(host_core, namespace, f'Successfully pulled image "{BUSYBOX}"')
    assert BUSYBOX in hack_host("images").split()


@pytest.mark.usefixtures("published")
def test_short_name_resolves_to_docker_io_through_the_mirror(host_core: client.CoreV1Api, namespace: str) -> None:
    short = f"e2e-busybox-{RUN_ID}:1.36"
    before = manifest_requests(BUSYBOX)  # a request for library/e2e-busybox-...?ns=docker.io
    run_to_completion(host_core, namespace, "short", short)
    assert manifest_requests(BUSYBOX) > before
    event_said(host_core, namespace, f'Successfully pulled image "{short}"')


@pytest.mark.usefixtures("published")
def test_registry_k8s_io_name_is_served_by_the_mirror(host_core: client.CoreV1Api, namespace: str) -> None:
    before = manifest_requests(AGNHOST)
    run_to_completion(host_core, namespace, "agnhost", AGNHOST)
    assert manifest_requests(AGNHOST) > before


@pytest.mark.usefixtures("published")
def test_image_pushed_with_docker_push_to_localhost_5001_runs(host_core: client.CoreV1Api, namespace: str) -> None:
    assert hack_host("registry").strip() == "localhost:5001"
    before = manifest_requests(LOCAL_APP)
    run_to_completion(host_core, namespace, "app", LOCAL_APP)
    assert manifest_requests(LOCAL_APP) > before


def test_image_missing_from_the_registry_fails_with_err_image_pull(host_core: client.CoreV1Api,
                                                                   namespace: str) -> None:
    host_core.create_namespaced_pod(namespace, shell_pod("missing", MISSING))

    def pull_error() -> client.V1ContainerStateWaiting | None:
        statuses = host_core.read_namespaced_pod("missing", namespace).status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return waiting if waiting and waiting.reason in ("ErrImagePull", "ImagePullBackOff") else None

    waiting = wait("the missing image's pull error", pull_error, timeout=120, diagnose=lambda: events_text(
        host_core, namespace))
    assert MISSING in waiting.message
    # The local registry answered (no fallback to the real docker.io, reachable or not).
    assert "not found" in waiting.message, waiting.message
    event_said(host_core, namespace, f'Failed to pull image "{MISSING}"')
    assert manifest_requests(MISSING) > 0, "the pull did not ask the local registry first"


@pytest.fixture(scope="module")
def virtual(host: Host, host_api: client.ApiClient) -> Iterator[Sides]:
    with created_vcluster(host, f"e2e-upstream-{suffix()}", labels=LABELS, timeout=360.0) as vc:
        yield Sides(vc, host_api)


@pytest.mark.usefixtures("published")
def test_virtual_pod_with_an_upstream_image_runs(virtual: Sides) -> None:
    ns = virtual.namespace("upstream")
    before = manifest_requests(AGNHOST)
    pod = run_to_completion(virtual.vcore, ns, "agnhost", AGNHOST)
    assert pod.spec.containers[0].image == AGNHOST
    host_pod = virtual.hcore.read_namespaced_pod(virtual.vc.host_name("Pod", "agnhost", ns), virtual.hns)
    assert host_pod.spec.containers[0].image == AGNHOST  # the syncer copies the name as it is
    assert host_pod.spec.containers[0].image_pull_policy == "Always"
    assert manifest_requests(AGNHOST) > before
