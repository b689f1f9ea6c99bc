"""hack/soak: N virtual clusters through the plugin, then every kind of leak counted (run by hack/soak).

An inner ``pytest -n WORKERS`` runs N tests; each gets its own function-scoped cluster (the
``vcluster`` fixture) and does real work in it:

* a namespace, a PersistentVolumeClaim (the host's default class) holding a file written by
* a Deployment (python http.server serving that file), a Service in front of it,
* a NetworkPolicy letting only the client reach it (NetworkPolicies are synced: kube-router
  enforces them with iptables and ipset on the host),
* a client pod fetching the file through the Service's DNS name,
* a CRD and one custom object, a ClusterRole;
* every ``--every``-th cluster also syncs all host nodes and the host's StorageClasses (that adds
  a ClusterRole and ClusterRoleBinding on the host).

After each test's cluster is gone (an autouse fixture finalised after the ``vcluster`` fixture),
the worker records its resident memory, open descriptors, sockets, threads and port-forward
threads. At the end, after the host has had time to finish deleting, it counts what is left of the
run on the host: namespaces (by the run's label and by name), ClusterRoles/Bindings, PersistentVolumes,
local-path folders, iptables rules and ipsets naming the run's namespaces (plus the machine's
totals, which others may change), temporary kubeconfigs and work folders; and compares the
workers' figures of the first and the last 20 cycles.

    .venv/bin/python hack/_soak.py [--n 200] [--workers 2] [--every 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))
from _host import versions  # noqa: E402
from _host.layout import Layout  # noqa: E402

from pytest_vcluster.core.contract import contract  # noqa: E402
from pytest_vcluster.core.labels import LABEL_RUN  # noqa: E402

IMAGE = "pytest-vcluster.local/python:3.11-bookworm"

CONFTEST = '''
import json
import os
import threading

import pytest

LOG = os.environ["SOAK_LOG"]
RUN_LABEL = os.environ["SOAK_RUN_LABEL"]
NOTES = {}


def _control_plane_rss(vcluster):
    """kube-apiserver and etcd resident memory (KiB) of the cluster's pod, from their memory cgroups (the host's
    kubelet runs on this machine)."""
    import glob

    pod = vcluster.host.core_v1().read_namespaced_pod(f"{vcluster.release}-0", vcluster.host_namespace)
    rss = {}
    for status in pod.status.container_statuses or []:
        if status.name not in ("kube-apiserver", "etcd") or not status.container_id:
            continue
        cid = status.container_id.rpartition("//")[2]
        for path in glob.glob(f"/sys/fs/cgroup/memory/**/pod{pod.metadata.uid}/{cid}/memory.stat", recursive=True):
            with open(path) as fh:
                fields = dict(line.split() for line in fh)
            rss[status.name] = int(fields.get("total_rss", 0)) // 1024
    return rss


def note(request, vcluster):
    labels = vcluster.host.core_v1().read_namespace(vcluster.host_namespace).metadata.labels or {}
    NOTES[request.node.nodeid] = {"namespace": vcluster.host_namespace, "release": vcluster.release,
                                  "run": labels.get(RUN_LABEL), "resets": vcluster.resets,
                                  **{f"{name}_rss_kib": kib for name, kib in _control_plane_rss(vcluster).items()}}


def _status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _descriptors():
    fds = sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        fds += 1
        sockets += target.startswith("socket:")
    return fds, sockets


@pytest.fixture(autouse=True)
def soak_record(request):
    """Set up before, so finalised after, the test's vcluster fixture: figures after its teardown."""
    yield
    fds, sockets = _descriptors()
    names = [t.name for t in threading.enumerate()]
    record = {
        "test": request.node.name, "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"), "pid": os.getpid(),
        "rss_kib": _status_kib("VmRSS"), "fds": fds, "sockets": sockets, "threads": len(names),
        "portforward_threads": sum(n.startswith("portforward") for n in names),
        **NOTES.pop(request.node.nodeid, {}),
    }
    with open(LOG, "a") as fh:
        fh.write(json.dumps(record) + "\\n")
'''

TEST = '''
import time

import pytest
from conftest import note
from kubernetes import client
from kubernetes.client.rest import ApiException

IMAGE = {image!r}
EVERY = {every}
FULL = {{"sync": {{"fromHost": {{"nodes": {{"mode": "all"}}, "storageClasses": {{"enabled": True}}}}}}}}
CYCLES = [pytest.param(i, marks=pytest.mark.vcluster(values=FULL) if i % EVERY == EVERY - 1 else ())
          for i in range({n})]
NS = "soak"


def wait(what, check, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except ApiException as e:
            if e.status != 404:
                raise
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {{what}}"
        time.sleep(0.5)


def container(name, command, **kw):
    return client.V1Container(name=name, image=IMAGE, image_pull_policy="Never", command=command, **kw)


@pytest.mark.parametrize("cycle", CYCLES)
def test_cycle(request, vcluster, cycle):
    note(request, vcluster)
    api = vcluster.api_client
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    core.create_namespaced_persistent_volume_claim(NS, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={{"storage": "16Mi"}}))))
    labels = {{"app": "web"}}
    script = f"echo cycle-{{cycle}} > /data/f && exec python3 -m http.server 8080 -d /data"
    serve = container("web", ["sh", "-c", script],
                      ports=[client.V1ContainerPort(container_port=8080)],
                      volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")],
                      readiness_probe=client.V1Probe(tcp_socket=client.V1TCPSocketAction(port=8080),
                                                     period_seconds=1))
    apps.create_namespaced_deployment(NS, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(termination_grace_period_seconds=0, containers=[serve], volumes=[
                    client.V1Volume(name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                        claim_name="data"))])))))
    core.create_namespaced_service(NS, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(port=80, target_port=8080)])))
    client.NetworkingV1Api(api).create_namespaced_network_policy(NS, client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="only-fetch"),
        spec=client.V1NetworkPolicySpec(
            pod_selector=client.V1LabelSelector(match_labels=labels), policy_types=["Ingress"],
            ingress=[client.V1NetworkPolicyIngressRule(_from=[client.V1NetworkPolicyPeer(
                pod_selector=client.V1LabelSelector(match_labels={{"app": "fetch"}}))])])))
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name="widgets.soak.example.com"),
        spec=client.V1CustomResourceDefinitionSpec(
            group="soak.example.com", scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(plural="widgets", singular="widget", kind="Widget"),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=client.V1JSONSchemaProps(
                    type="object", x_kubernetes_preserve_unknown_fields=True)))])))
    client.RbacAuthorizationV1Api(api).create_cluster_role(client.V1ClusterRole(
        metadata=client.V1ObjectMeta(name="soak-reader"),
        rules=[client.V1PolicyRule(api_groups=["soak.example.com"], resources=["widgets"], verbs=["get", "list"])]))

    custom = client.CustomObjectsApi(api)
    wait("the Widget CRD served", lambda: any(
        c.type == "Established" and c.status == "True"
        for c in ext.read_custom_resource_definition("widgets.soak.example.com").status.conditions or []))
    widget = {{"apiVersion": "soak.example.com/v1", "kind": "Widget", "metadata": {{"name": "w"}},
              "spec": {{"cycle": cycle}}}}
    wait("a Widget created", lambda: custom.create_namespaced_custom_object(
        "soak.example.com", "v1", NS, "widgets", widget))
    assert custom.get_namespaced_custom_object("soak.example.com", "v1", NS, "widgets", "w")["spec"] == {{
        "cycle": cycle}}

    wait("Deployment web available", lambda: (apps.read_namespaced_deployment("web", NS).status.available_replicas
                                              or 0) >= 1)
    fetch = ("import time, urllib.request\\n"
             "for _ in range(120):\\n"
             "    try:\\n"
             "        print(urllib.request.urlopen('http://web.soak.svc.cluster.local/f', timeout=2).read()"
             ".decode().strip()); break\\n"
             "    except OSError as e:\\n"
             "        time.sleep(0.5)\\n"
             "else:\\n"
             "    raise SystemExit('never reached web')\\n")
    core.create_namespaced_pod(NS, client.V1Pod(
        metadata=client.V1ObjectMeta(name="fetch", labels={{"app": "fetch"}}),
        spec=client.V1PodSpec(restart_policy="Never", termination_grace_period_seconds=0,
                              containers=[container("fetch", ["python3", "-c", fetch])])))
    phase = wait("pod fetch finished", lambda: core.read_namespaced_pod("fetch", NS).status.phase
                 in ("Succeeded", "Failed") and core.read_namespaced_pod("fetch", NS).status.phase)
    log = core.read_namespaced_pod_log("fetch", NS).strip()
    assert (phase, log) == ("Succeeded", f"cycle-{{cycle}}"), (phase, log)
    if cycle % EVERY == EVERY - 1:
        nodes = client.CoreV1Api(api).list_node().items
        assert nodes, "nodes mode all: no node in the virtual cluster"
        assert client.StorageV1Api(api).list_storage_class().items, "StorageClass sync on: none in the virtual cluster"
'''


def host_kubeconfig() -> str:
    configured = os.environ.get("VCLUSTER_HOST_KUBECONFIG")
    if configured:
        return configured
    return str(Layout.default().admin_kubeconfig)


def iptables_lines() -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=60)
    return out.stdout.splitlines() if out.returncode == 0 else []


def ipsets() -> list[str]:
    out = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, timeout=60)
    return out.stdout.split() if out.returncode == 0 else []


def local_path_dirs() -> set[str]:
    folder = Layout.default().local_path
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def temp_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("pytest-vcluster-*")}


def machine_state() -> dict[str, Any]:
    rules = iptables_lines()
    return {
        "kube_router_rules": sum("KUBE-NWPLCY" in r or "KUBE-POD-FW" in r or "KUBE-SRC-" in r or "KUBE-DST-" in r
                                 for r in rules),
        "iptables_rules": len(rules),
        "ipsets": len(ipsets()),
        "local_path": local_path_dirs(),
        "temp_dirs": temp_dirs(),
    }


def leaks(api: client.ApiClient, runs: set[str], namespaces: set[str], before: dict[str, Any]) -> dict[str, list[str]]:
    """What of the soak run is still on the host, by kind."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    found: dict[str, list[str]] = {}
    labelled = {n.metadata.name for run in runs
                for n in core.list_namespace(label_selector=f"{LABEL_RUN}={run}").items}
    named = {n.metadata.name for n in core.list_namespace().items} & namespaces
    found["namespaces"] = sorted(labelled | named)
    scoped = contract.CLUSTER_SCOPED_LABEL
    found["clusterroles"] = sorted(r.metadata.name for r in rbac.list_cluster_role().items
                                   if (r.metadata.labels or {}).get(scoped) in namespaces)
    found["clusterrolebindings"] = sorted(
        b.metadata.name for b in rbac.list_cluster_role_binding().items
        if (b.metadata.labels or {}).get(scoped) in namespaces
        or any(s.namespace in namespaces for s in b.subjects or []))
    found["persistentvolumes"] = sorted(
        pv.metadata.name for pv in core.list_persistent_volume().items
        if pv.spec.claim_ref is not None and pv.spec.claim_ref.namespace in namespaces)
    found["local_path_folders"] = sorted(d for d in local_path_dirs() - before["local_path"]
                                         if any(f"_{ns}_" in d for ns in namespaces))
    found["iptables_rules"] = [r for r in iptables_lines() if any(ns in r for ns in namespaces)]
    # work folders of VCluster handles named after the run's clusters (others' runs on the machine may add theirs)
    found["temp_dirs"] = sorted(d for d in temp_dirs() - before["temp_dirs"] if any(ns in d for ns in namespaces))
    return found


def wait_settled(api: client.ApiClient, runs: set[str], namespaces: set[str], before: dict[str, Any],
                 timeout: float) -> tuple[dict[str, list[str]], float]:
    """Leaks once the host had up to ``timeout`` seconds to finish deleting (namespaces terminate, the
    local-path provisioner wipes folders, kube-router drops rules)."""
    start = time.monotonic()
    while True:
        try:
            found = leaks(api, runs, namespaces, before)
        except (urllib3.exceptions.HTTPError, client.ApiException) as e:  # the host API restarting: ask again
            if time.monotonic() - start > timeout:
                raise
            print(f"soak: host API not answering ({type(e).__name__}); asking again", flush=True)
            time.sleep(5)
            continue
        if not any(found.values()) or time.monotonic() - start > timeout:
            return found, time.monotonic() - start
        time.sleep(5)


def figures(records: list[dict[str, Any]], key: str) -> str:
    """Per worker: median of the first 20 cycles -> median of the last 20."""
    parts = []
    for worker in sorted({r["worker"] for r in records}):
        values = [r[key] for r in records if r["worker"] == worker]
        if len(values) < 2:
            continue
        n = min(20, len(values) // 2)
        first, last = statistics.median(values[:n]), statistics.median(values[-n:])
        parts.append(f"{worker} {first:g} -> {last:g} ({last - first:+g})")
    return "; ".join(parts) or "no records"


def recycling_lines(records: list[dict[str, Any]], output: str) -> list[str]:
    """The recycled clusters' own growth: kube-apiserver and etcd RSS of the tests' clusters in their first 20
    resets against their last 20 (by each cluster's reset count), and the run's recycling summary line."""
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith(("recycling:", "deleted "))]
    resets = [int(r.get("resets", 0)) for r in records]
    lines.append(f"tests on a recycled cluster: {sum(1 for n in resets if n)} of {len(records)}; most resets of one "
                 f"cluster: {max(resets, default=0)}")
    top = max(resets, default=0)
    for name in ("kube-apiserver", "etcd"):
        key = f"{name}_rss_kib"
        first = [r[key] for r in records if key in r and int(r.get("resets", 0)) < 20]
        last = [r[key] for r in records if key in r and int(r.get("resets", 0)) > top - 20 and top >= 40]
        if first and last:
            a, z = statistics.median(first), statistics.median(last)
            lines.append(f"{name} RSS KiB of the recycled clusters, median at resets < 20 -> > {top - 20}: "
                         f"{a:.0f} -> {z:.0f} ({z / a:.2f} x)")
        else:
            lines.append(f"{name} RSS: too few resets per cluster to compare (most {top})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="number of tests (clusters)")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers")
    parser.add_argument("--every", type=int, default=10, help="every N-th cluster syncs all nodes and StorageClasses")
    parser.add_argument("--settle", type=float, default=300, help="seconds the host may take to finish deleting")
    parser.add_argument("--keep", help="keep the inner run's folder (tests, log) here")
    parser.add_argument("--recycle", action="store_true",
                        help="cycle through recycled clusters (--vcluster-recycle; default: a new cluster per test)")
    args = parser.parse_args()
    if args.n < 1 or args.workers < 1 or args.every < 1:
        parser.error("--n, --workers and --every must be at least 1")

    kubeconfig = host_kubeconfig()
    api = config.new_client_from_config(config_file=kubeconfig)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="soak-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "conftest.py").write_text(CONFTEST)
    (work / "test_soak.py").write_text(TEST.format(image=IMAGE, every=args.every, n=args.n))
    log = work / "soak.jsonl"
    log.unlink(missing_ok=True)
    before = machine_state()

    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTEST_ADDOPTS")}
    env.update(SOAK_LOG=str(log), SOAK_RUN_LABEL=LABEL_RUN, PYTHONPATH=str(work))
    cmd = [sys.executable, "-m", "pytest", str(work / "test_soak.py"), "-p", "no:cacheprovider", "-q",
           "-n", str(args.workers), "--rootdir", str(work), "--basetemp", str(work / "tmp"),
           "--vcluster-host=kubeconfig", f"--vcluster-host-kubeconfig={kubeconfig}",
           "--vcluster-set", "sync.toHost.networkPolicies.enabled=true", "-W", "ignore::DeprecationWarning",
           f"--vcluster-recycle={'yes' if args.recycle else 'no'}"]
    print(f"soak: {args.n} {'cycles through recycled clusters' if args.recycle else 'clusters'}, -n {args.workers}, "
          f"every {args.every}th with nodes/StorageClasses synced; folder {work}", flush=True)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    tail = proc.stdout.strip().splitlines()[-15:]
    print("\n".join(tail), flush=True)
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    namespaces = {r["namespace"] for r in records if r.get("namespace")}
    runs = {r["run"] for r in records if r.get("run")}

    found, settle = wait_settled(api, runs, namespaces, before, args.settle)
    after = machine_state()
    kubeconfigs = sorted(str(p) for p in (work / "tmp").rglob("*.kubeconfig")) if (work / "tmp").exists() else []

    print(f"\nsoak figures ({time.strftime('%Y-%m-%d %H:%M')}, version {versions.KUBERNETES}):")
    print(f"  pytest exit {proc.returncode}; {len(records)} cycles recorded; wall {wall:.0f} s "
          f"({wall / max(len(records), 1):.1f} s per cycle with -n {args.workers}); host settled {settle:.0f} s after")
    print(f"  host namespaces of the run: {len(namespaces)} distinct")
    for kind, items in found.items():
        print(f"  leaked {kind}: {len(items)}" + (f"  e.g. {items[:3]}" if items else ""))
    print(f"  kubeconfig files left in the run's basetemp: {len(kubeconfigs)}" +
          (f"  e.g. {kubeconfigs[:2]}" if kubeconfigs else ""))
    print(f"  machine totals before -> after (others may change them): kube-router rules "
          f"{before['kube_router_rules']} -> {after['kube_router_rules']}, iptables rules "
          f"{before['iptables_rules']} -> {after['iptables_rules']}, ipsets {before['ipsets']} -> {after['ipsets']}, "
          f"pytest-vcluster work folders in {tempfile.gettempdir()} {len(before['temp_dirs'])} -> "
          f"{len(after['temp_dirs'])}")
    for key, what in (("rss_kib", "worker RSS KiB"), ("fds", "open descriptors"), ("sockets", "sockets"),
                      ("threads", "threads"), ("portforward_threads", "port-forward threads")):
        print(f"  {what}, median first 20 -> last 20 cycles: {figures(records, key)}")
    if args.recycle:
        print("  " + "\n  ".join(recycling_lines(records, proc.stdout)))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    leaked = sum(len(v) for v in found.values()) + len(kubeconfigs)
    if proc.returncode != 0:
        print(proc.stdout[-6000:], file=sys.stderr)
    return 1 if proc.returncode != 0 or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
