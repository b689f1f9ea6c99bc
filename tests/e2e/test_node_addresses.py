"""Virtual nodes' addresses on the real host (`hack/host up`): InternalIPs are the host node's real ones,
and the fake kubelet is reached through a Hostname address.

A virtual pod's ``hostIP`` and a ``hostPort``'s ``hostIP`` name the node's InternalIP, as on the host: two
pods with the same hostPort, one on 127.0.0.1 and one on the node's InternalIP, both run on one node (the
conformance spec `HostPort validates that there is no conflict ...` does the same). The virtual API server
(``--kubelet-preferred-address-types=Hostname``) sends logs/exec to the syncer's fake kubelet through the
node's Hostname address 127.0.0.1, for fake nodes and for mirrored ones (``sync.fromHost.nodes.mode=all``).
`kubectl` must be on PATH (`export PATH="$(hack/host tools):$PATH"`).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import http_get, kubectl, wait  # noqa: E402

pytestmark = pytest.mark.e2e

KUBELET = "127.0.0.1"  # the fake kubelet's address (KUBELET_ADDRESS)


def addresses(node: client.V1Node, kind: str) -> list[str]:
    return [a.address for a in node.status.addresses or [] if a.type == kind]


def web_pod(name: str, *, ports: list[client.V1ContainerPort] | None = None,
            node: str | None = None) -> client.V1Pod:
    """An httpd pod that answers its own name (and logs it first)."""
    script = f"mkdir -p /tmp/www && echo {name} > /tmp/www/index.html && echo started-{name}; " \
             "exec httpd -f -p 8080 -h /tmp/www"
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            termination_grace_period_seconds=1,
            node_selector={"kubernetes.io/hostname": node} if node else None,
            containers=[client.V1Container(
                name="httpd", image=versions.HTTP_IMAGE, image_pull_policy="IfNotPresent",
                command=["sh", "-c", script], ports=ports or [client.V1ContainerPort(container_port=8080)],
                readiness_probe=client.V1Probe(http_get=client.V1HTTPGetAction(path="/", port=8080),
                                               period_seconds=1))]))


def ready_pod(core: client.CoreV1Api, name: str, ns: str = "default") -> client.V1Pod:
    def check() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, ns)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        return pod if ready and pod.spec.node_name else None

    return wait(f"pod {ns}/{name} ready and bound", check, timeout=240,
                diagnose=lambda: str(core.read_namespaced_pod(name, ns).status))




def test_fake_node_has_host_internal_ip_and_host_ports_on_it_do_not_collide(vcluster: Any,
                                                                           host_core: client.CoreV1Api) -> None:
    vcore = client.CoreV1Api(vcluster.api_client)
    vcore.create_namespaced_pod("default", web_pod("probe"))
    vpod = ready_pod(vcore, "probe")
    hpod = host_core.read_namespaced_pod(vcluster.host_name(vpod), vcluster.host_namespace)
    host_ips = [i.ip for i in hpod.status.host_ips or []] or [hpod.status.host_ip]
    hnode = host_core.read_node(vpod.spec.node_name)

    def node_ips() -> client.V1Node | None:
        vnode = vcore.read_node(vpod.spec.node_name)
        return vnode if addresses(vnode, "InternalIP") == host_ips else None

    vnode = wait("the virtual node with the host pod's hostIPs as InternalIPs", node_ips, timeout=60,
                 diagnose=lambda: str(vcore.read_node(vpod.spec.node_name).status.addresses))
    assert set(host_ips) <= set(addresses(hnode, "InternalIP")), (host_ips, hnode.status.addresses)
    assert addresses(vnode, "Hostname") == [KUBELET], vnode.status.addresses
    assert vpod.status.host_ip == host_ips[0]
    pairs = [(a.type, a.address) for a in vnode.status.addresses]
    assert len(pairs) == len(set(pairs)), pairs

    # the fake kubelet is still the one the virtual API server calls
    logs = kubectl(vcluster, "logs", "probe")
    assert logs.returncode == 0, logs.stderr
    assert "started-probe" in logs.stdout
    out = kubectl(vcluster, "exec", "probe", "--", "cat", "/tmp/www/index.html")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "probe"

    # same hostPort, hostIP 127.0.0.1 and the node's InternalIP: both run on that node
    node_ip = host_ips[0]
    port = random.randint(40000, 49999)
    for name, host_ip in (("on-loopback", "127.0.0.1"), ("on-node-ip", node_ip)):
        vcore.create_namespaced_pod("default", web_pod(name, node=vpod.spec.node_name, ports=[client.V1ContainerPort(
            container_port=8080, host_port=port, host_ip=host_ip, protocol="TCP")]))
    for name in ("on-loopback", "on-node-ip"):
        pod = ready_pod(vcore, name)
        assert pod.spec.node_name == vpod.spec.node_name
    # the host node is this machine: its InternalIP:port is the second pod
    assert http_get(f"http://{node_ip}:{port}/").strip() == "on-node-ip"


@pytest.mark.vcluster(set={"sync.fromHost.nodes.mode": "all"})
def test_mirrored_nodes_keep_host_addresses_but_the_hostname(vcluster: Any, host_core: client.CoreV1Api) -> None:
    vcore = client.CoreV1Api(vcluster.api_client)
    hnodes = {n.metadata.name: n for n in host_core.list_node().items}

    def mirrored() -> dict[str, client.V1Node]:
        vnodes = {n.metadata.name: n for n in vcore.list_node().items}
        return vnodes if set(vnodes) == set(hnodes) else {}

    vnodes = wait("every host node mirrored", mirrored, timeout=60)
    for name, hnode in hnodes.items():
        vnode = vnodes[name]
        assert addresses(vnode, "Hostname") == [KUBELET], vnode.status.addresses
        host_kept = [(a.type, a.address) for a in hnode.status.addresses if a.type != "Hostname"]
        assert [(a.type, a.address) for a in vnode.status.addresses if a.type != "Hostname"] == host_kept
        assert addresses(vnode, "InternalIP"), hnode.status.addresses

    vcore.create_namespaced_pod("default", web_pod("probe"))
    ready_pod(vcore, "probe")
    logs = kubectl(vcluster, "logs", "probe")
    assert logs.returncode == 0, logs.stderr
    assert "started-probe" in logs.stdout
