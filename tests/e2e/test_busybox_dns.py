"""busybox's wget and nslookup resolve Service names in a virtual cluster, on the real host.

Test manifests everywhere run `wget -qO- http://<service>/` and `nslookup <service>` in a busybox pod.
The host's busybox image used to be Debian's static busybox, whose wget and nslookup crash on names (a
static glibc cannot load its NSS modules); it is now Debian's dynamic busybox with its glibc files
(hack/images/busybox.Dockerfile), the image behind `docker.io/library/busybox:*` on the host.

One virtual cluster (the plugin's `vcluster` fixture, default values): a web server (the httpd
stand-in the host serves as `registry.k8s.io/e2e-test-images/httpd:2.4.38-4`) behind a Service, and a
busybox pod that resolves the Service by its short and its full name and fetches the page through both.
Images are the ones the host built (`hack/host images`): nothing is pulled.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import events_text, suffix, wait  # noqa: E402

pytestmark = pytest.mark.e2e

PAGE = "It works!"
# A few tries: the Service's endpoints and DNS record appear shortly after the web pod is ready. Then the
# short name: busybox's nslookup (upstream's too: FEATURE_NSLOOKUP_BIG) also asks for the name in the other
# search domains and exits 1 on their NXDOMAIN, so only its answer is checked.
CLIENT = """
for i in $(seq 1 30); do
  if nslookup {svc}.{ns}.svc.cluster.local && wget -qO- -T 5 http://{svc}/ \
     && wget -qO- -T 5 http://{svc}.{ns}.svc.cluster.local/; then
    echo "short name:"; nslookup {svc}; exit 0
  fi
  echo "try $i failed"; sleep 2
done
exit 1
"""


def test_busybox_wget_and_nslookup_resolve_a_service(vcluster: Any) -> None:
    core = client.CoreV1Api(vcluster.api_client)
    ns = f"dns-{suffix()}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    core.create_namespaced_pod(ns, client.V1Pod(
        metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
        spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
            name="web", image=versions.WEB_HTTPD_IMAGE, image_pull_policy="Never",
            ports=[client.V1ContainerPort(container_port=80)],
            readiness_probe=client.V1Probe(http_get=client.V1HTTPGetAction(path="/index.html", port=80)))])))
    svc = core.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=80, target_port=80)])))
    cluster_ip = svc.spec.cluster_ip
    assert cluster_ip

    def ready() -> bool:
        statuses = core.read_namespaced_pod("web", ns).status.container_statuses or []
        return bool(statuses) and all(s.ready for s in statuses)

    wait("the web pod to be ready", ready, timeout=180, diagnose=lambda: events_text(core, ns))

    core.create_namespaced_pod(ns, client.V1Pod(
        metadata=client.V1ObjectMeta(name="client"),
        spec=client.V1PodSpec(restart_policy="Never", termination_grace_period_seconds=1, containers=[
            client.V1Container(name="busybox", image=versions.SHELL_IMAGE, image_pull_policy="Never",
                               command=["sh", "-c", CLIENT.format(svc="web", ns=ns)])])))

    def finished() -> str | None:
        phase = core.read_namespaced_pod("client", ns).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait("the busybox client to finish", finished, timeout=180, diagnose=lambda: events_text(core, ns))
    log = core.read_namespaced_pod_log("client", ns, container="busybox")
    print(log)
    assert "Segmentation fault" not in log
    assert phase == "Succeeded", log
    # wget fetched the page by both names; nslookup answered both names with the Service's address.
    assert log.count(PAGE) >= 2, log
    answer = f"Name:\tweb.{ns}.svc.cluster.local\nAddress: {cluster_ip}"
    full, short = log.rsplit("short name:", 1)
    assert answer in full, log
    assert answer in short, log
