"""A virtual cluster on a host of several nodes: its pods run on every host node and are reached there.

For each node of the host (generic in their number: one on `hack/host`, three on `hack/kind-multinode`'s kind
cluster of a control plane and two workers) a pod of the virtual cluster runs on it: a DaemonSet with
`sync.fromHost.nodes.mode=all` gets one ready pod per host node, each named by the host's node list (the
DaemonSet tolerates every taint, so a tainted control-plane node gets its pod too). The `VCluster` verbs
`logs`, `exec` and `port_forward` reach the pod on every node (the virtual API server, the syncer's kubelet
API, the host API server, that node's kubelet), and from the pod on every node a virtual Service of each
node's pod resolves by name (the cluster's CoreDNS answers its host ClusterIP) and carries traffic to it
(the client's node's kube-proxy, across the pod network to the server's node).

One module-scoped cluster, made with `VCluster.create` (host namespace labelled `e2e=multinode`, deleted at
the end); the pods run the host's busybox image (`imagePullPolicy: Never`: on kind it must be loaded into every
node, `kind load docker-image`, as hack/kind-multinode does). Never skipped: on one node it checks that node.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pytest_vcluster import Host, VCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import versions  # noqa: E402
from e2e_helpers import created_vcluster, http_get, suffix, wait  # noqa: E402

pytestmark = pytest.mark.e2e

SHELL = versions.SHELL_IMAGE
LABELS = {"e2e": "multinode"}
CREATE_TIMEOUT = 360.0
NS = "spread"
PORT = 8080
#: each agent serves its node's name over HTTP and logs one line naming it (NODE_NAME: the downward API's
#: spec.nodeName, the host node's name in the virtual cluster too)
AGENT_SCRIPT = ('mkdir -p /www && echo "$NODE_NAME" > /www/index.html && echo "agent on $NODE_NAME" '
                f"&& exec httpd -f -p {PORT} -h /www")


def agent_daemonset() -> dict[str, Any]:
    labels = {"app": "agent"}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": NS},
        "spec": {"selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                # every node, a tainted control plane included (as a node agent's DaemonSet does)
                "tolerations": [{"operator": "Exists"}],
                "containers": [{
                    "name": "agent", "image": SHELL, "imagePullPolicy": "Never", "command": ["sh", "-c", AGENT_SCRIPT],
                    "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    "ports": [{"name": "http", "containerPort": PORT}],
                    "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1},
                }],
            }}},
    }


@dataclass
class Spread:
    """The cluster, the host's nodes (sorted) and the agent pod on each: ``pods[node]`` is its name."""

    vc: VCluster
    nodes: list[str]
    pods: dict[str, str]

    @property
    def vcore(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.vc.api_client)

    def diagnose(self) -> str:
        lines = [self.vc.diagnostics()]
        for p in self.vcore.list_namespaced_pod(NS).items:
            lines.append(f"virtual pod {p.metadata.name}: {p.status.phase} node={p.spec.node_name} "
                         f"labels={p.metadata.labels}")
        return "\n".join(lines)


@pytest.fixture(scope="module")
def spread(host: Host) -> Iterator[Spread]:
    """A cluster with every host node mirrored and the agent DaemonSet ready on each of them."""
    with created_vcluster(host, f"e2e-mn-{suffix()}", labels=LABELS, timeout=CREATE_TIMEOUT,
                          set={"sync.fromHost.nodes.mode": "all"}) as vc:
        nodes = sorted(n.metadata.name for n in host.core_v1().list_node().items)
        vcore = client.CoreV1Api(vc.api_client)
        # the DaemonSet controller places pods on the virtual nodes it sees: all of them first
        wait(f"the host's {len(nodes)} node(s) in the virtual cluster",
             lambda: sorted(n.metadata.name for n in vcore.list_node().items) == nodes, timeout=60,
             diagnose=vc.diagnostics)
        vc.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, agent_daemonset()])
        n = len(nodes)

        def all_ready(ds: dict[str, Any]) -> bool:
            st = ds.get("status") or {}
            return (st.get("desiredNumberScheduled") == st.get("currentNumberScheduled") == st.get("numberReady")
                    == st.get("numberAvailable") == n and not st.get("numberMisscheduled"))

        vc.wait_for("daemonset/agent", all_ready, namespace=NS, timeout=300)
        pods = {p.spec.node_name: p.metadata.name
                for p in vcore.list_namespaced_pod(NS, label_selector="app=agent").items}
        spread = Spread(vc, nodes, pods)
        print(f"host nodes {nodes}; agent pods {pods}")
        yield spread


def test_a_daemonset_pod_runs_on_every_host_node(spread: Spread, host: Host) -> None:
    """One ready agent pod per host node, by name; its host copy runs on that node."""
    assert sorted(spread.pods) == spread.nodes, (spread.pods, spread.nodes)
    hcore = host.core_v1()
    for node, name in spread.pods.items():
        vpod = spread.vcore.read_namespaced_pod(name, NS)
        assert vpod.status.phase == "Running" and all(c.ready for c in vpod.status.container_statuses), vpod.status
        hpod = hcore.read_namespaced_pod(spread.vc.host_name("Pod", name, NS), spread.vc.host_namespace)
        assert hpod.spec.node_name == node and hpod.status.phase == "Running", (node, hpod.spec.node_name)
        assert vpod.status.host_ip == hpod.status.host_ip and vpod.status.pod_ip == hpod.status.pod_ip


def test_logs_exec_and_port_forward_reach_the_pod_on_every_node(spread: Spread) -> None:
    """`logs`, `exec` and `port_forward` of the VCluster answer from the agent on each node."""
    vc = spread.vc
    for node, name in spread.pods.items():
        assert f"agent on {node}" in vc.logs(name, namespace=NS), (node, name)
        assert vc.exec(name, ["cat", "/www/index.html"], namespace=NS).strip() == node
        assert vc.exec(name, "hostname", namespace=NS).strip() == name  # the virtual pod's name, on that node
        with vc.port_forward(f"pod/{name}", PORT, namespace=NS) as url:
            assert http_get(url).strip() == node, (node, url)
    print(f"logs, exec and port_forward reached {len(spread.pods)} node(s)")


def test_dns_and_services_reach_every_node_from_every_node(spread: Spread, host: Host) -> None:
    """A virtual Service per node (selecting that node's agent by a label set on the virtual pod): from the agent
    on every node, each Service's name resolves to its ClusterIP (the host copy's) and answers with the name of
    the node behind it."""
    vc, vcore = spread.vc, spread.vcore
    services = {node: f"at-{i}" for i, node in enumerate(spread.nodes)}
    for node, svc in services.items():
        vcore.patch_namespaced_pod(spread.pods[node], NS, {"metadata": {"labels": {"at": svc}}})
        vcore.create_namespaced_service(NS, client.V1Service(
            metadata=client.V1ObjectMeta(name=svc),
            spec=client.V1ServiceSpec(selector={"app": "agent", "at": svc},
                                      ports=[client.V1ServicePort(port=PORT, target_port=PORT)])))
    hcore = host.core_v1()

    def cluster_ip(svc: str) -> str | None:
        """The virtual Service's ClusterIP once it is its host copy's."""
        vip = vcore.read_namespaced_service(svc, NS).spec.cluster_ip
        hcopy = hcore.read_namespaced_service(vc.host_name("Service", svc, NS), vc.host_namespace)
        return vip if vip and vip == hcopy.spec.cluster_ip else None

    ips = {svc: wait(f"Service {NS}/{svc} with its host copy's ClusterIP", lambda s=svc: cluster_ip(s), timeout=60)
           for svc in services.values()}

    def answers(client_pod: str, svc: str) -> tuple[str, str]:
        fqdn = f"{svc}.{NS}.svc.cluster.local"
        script = (f"nslookup {fqdn} 2>&1; echo '--'; wget -q -T 5 -O- http://{svc}:{PORT}/ 2>&1 || echo 'wget failed'")
        out = vc.exec(client_pod, script, namespace=NS, timeout=30)
        looked_up, _, body = out.partition("--\n")
        return looked_up, body.strip()

    seen: list[str] = []
    for client_node, client_pod in spread.pods.items():
        for server_node, svc in services.items():
            def reached(c: str = client_pod, s: str = svc, want: str = server_node) -> tuple[str, str] | None:
                looked_up, body = answers(c, s)
                return (looked_up, body) if ips[s] in looked_up.split() and body == want else None

            wait(f"the agent on {client_node} resolving Service {svc} to {ips[svc]} and reaching {server_node}",
                 reached, timeout=60, every=1,
                 diagnose=lambda c=client_pod, s=svc: f"last answer: {answers(c, s)}\n{spread.diagnose()}")
            seen.append(f"{client_node} -> {svc} ({server_node})")
    assert len(seen) == len(spread.nodes) ** 2
    print("reached: " + "; ".join(seen))
