"""Bringing the host cluster up and down, and telling how it is."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import ssl
import string
import struct
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import build, e2e_images, images, pki, procs, registry, versions
from ._util import HostError, log, mounts_under, run, step, unmount_all
from .layout import (
    APISERVER_PORT,
    BRIDGE,
    CLUSTER_DOMAIN,
    DNS_IP,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    KUBERNETES_SERVICE_IP,
    NODE_NAME,
    POD_CIDR,
    REGISTRY_ADDRESS,
    REGISTRY_PORT,
    SERVICE_CIDR,
    STORAGE_CLASS,
    Layout,
)

MANIFESTS = Path(__file__).resolve().parent / "manifests"
RUNC_WRAPPER_SRC = Path(__file__).resolve().parent.parent / "runc-wrapper"

# Identities of the components, as RBAC's bootstrap policy names them.
CLIENTS = [
    pki.Client("admin", "pytest-vcluster-admin", "system:masters"),
    pki.Client("controller-manager", "system:kube-controller-manager"),
    pki.Client("scheduler", "system:kube-scheduler"),
    pki.Client("kubelet-client", f"system:node:{NODE_NAME}", "system:nodes"),
    pki.Client("kube-proxy", "system:kube-proxy"),
    pki.Client("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
]
KUBECONFIGS = {  # file -> (client cert, user)
    "admin.conf": ("admin", "admin"),
    "controller-manager.conf": ("controller-manager", "system:kube-controller-manager"),
    "scheduler.conf": ("scheduler", "system:kube-scheduler"),
    "kubelet.conf": ("kubelet-client", f"system:node:{NODE_NAME}"),
    "kube-proxy.conf": ("kube-proxy", "system:kube-proxy"),
}
# Order matters for `down`: stop what uses the API before the API, the runtime last.
PROCESS_ORDER = [
    "local-path-provisioner", "kube-router", "kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager",
    "kube-apiserver", "etcd", "registry", "dockerd", "containerd",
]
# Without these the host is rebuilt from scratch by `up`; the others are restarted alone. The API server
# keeps no state of its own (etcd does): restarting it alone keeps every namespace and workload.
CORE = {"containerd", "etcd"}
SYSCTLS = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}


def node_ip() -> str:
    """The address of the interface that holds the default route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # connect() on UDP sends nothing; it only picks the route.
        s.connect(("192.0.2.123", 9))
        return s.getsockname()[0]


# ---------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None


def _pidfile(layout: Layout, name: str) -> Path:
    return layout.pids / f"{name}.pid"


def _log(layout: Layout, name: str) -> Path:
    return layout.logs / f"{name}.log"


def running_pid(layout: Layout, name: str) -> int | None:
    return procs.pid_from(_pidfile(layout, name))


def start(layout: Layout, proc: Proc) -> int:
    pid = running_pid(layout, proc.name)
    if pid:
        return pid
    layout.pids.mkdir(parents=True, exist_ok=True)
    pid = procs.spawn(proc.argv, _log(layout, proc.name), env={**os.environ, **(proc.env or {})})
    _pidfile(layout, proc.name).write_text(str(pid))
    return pid


def wait_for(what: str, check, timeout: float, *, layout: Layout | None = None, proc: str | None = None) -> None:
    """Polls check() until it is truthy; fails at once if ``proc`` exits, and names what was awaited and
    shows ``proc``'s log tail on failure."""
    if proc and layout:
        procs.wait_for(what, check, timeout, log=_log(layout, proc), running=lambda: running_pid(layout, proc))
    else:
        procs.wait_for(what, check, timeout)


# ---------------------------------------------------------------- configuration


def render(name: str, **values: str) -> str:
    return string.Template((MANIFESTS / name).read_text()).substitute(values)


def containerd_config(layout: Layout) -> str:
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.run}/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{layout.containerd_socket}"
[ttrpc]
  address = "{layout.run}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{layout.state}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{versions.PAUSE_IMAGE}"
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # The wrapper drops capabilities the machine's bounding set lacks.
        BinaryName = "{runc_wrapper(layout)}"
        Root = "{layout.run}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{layout.cni_conf}"
  # Pulls of docker.io, registry.k8s.io, ... go to the host's local registry (hack/_host/registry.py).
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{registry.certs_d(layout)}"
"""


def write_configs(layout: Layout, ip: str) -> None:
    cfg = layout.config
    cfg.mkdir(parents=True, exist_ok=True)
    server = f"https://{ip}:{APISERVER_PORT}"
    for file, (client, user) in KUBECONFIGS.items():
        (cfg / file).write_text(pki.kubeconfig(layout.pki, client, server, user))
    os.chmod(cfg / "admin.conf", 0o644)  # read by tests run as any user on this machine

    (cfg / "containerd.toml").write_text(containerd_config(layout))
    registry.write_configs(layout)
    layout.cni_conf.mkdir(parents=True, exist_ok=True)
    (layout.cni_conf / "10-pytest-vcluster.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0",
        "name": "pytest-vcluster",
        "plugins": [
            {
                "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(layout.cni_state)},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2))

    # CoreDNS forwards to the node's resolv.conf; it must not name a loopback
    # resolver (CoreDNS's loop plugin would stop it).
    resolvers = [
        line for line in Path("/etc/resolv.conf").read_text().splitlines()
        if line.startswith("nameserver") and not line.split()[1].startswith(("127.", "::1"))
    ]
    (cfg / "resolv.conf").write_text("\n".join(resolvers or ["nameserver 192.0.2.1"]) + "\n")

    (cfg / "kubelet.yaml").write_text(json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(layout.pki / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "clusterDNS": [DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "failSwapOn": False,
        "resolvConf": str(cfg / "resolv.conf"),
        "tlsCertFile": str(layout.pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(layout.pki / "kubelet.key"),
        # A busy disk must not evict the test workloads; the host is throwaway.
        "evictionHard": {"nodefs.available": "0%", "imagefs.available": "0%", "memory.available": "100Mi"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "maxPods": 250,
        "serializeImagePulls": False,
        "registerNode": True,
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "5s",
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": True,
        "cgroupRoot": "/",
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
    }, indent=2))

    (cfg / "kube-proxy.yaml").write_text(json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(cfg / "kube-proxy.conf")},
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": NODE_NAME,
        # 0 leaves the kernel's conntrack limits alone (kube-proxy may not change them here).
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        # Keeps route_localnet untouched: node ports are not served on 127.0.0.1.
        "iptables": {"localhostNodePorts": False, "syncPeriod": "10s", "minSyncPeriod": "0s"},
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
    }, indent=2))


def runc_wrapper(layout: Layout) -> Path:
    return layout.cache / "bin" / "runc-wrapper" / "runc-wrapper"


def build_runc_wrapper(layout: Layout) -> None:
    out = runc_wrapper(layout)
    src = RUNC_WRAPPER_SRC / "main.go"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="")
    run(["go", "build", "-trimpath", "-o", str(out), "."], cwd=RUNC_WRAPPER_SRC, env=env, quiet=True)


def processes(layout: Layout, bins: dict[str, Path], ip: str) -> dict[str, Proc]:
    cfg, p = layout.config, layout.pki
    return {
        "containerd": Proc("containerd", ["containerd", "--config", str(cfg / "containerd.toml")]),
        "dockerd": Proc("dockerd", [
            "dockerd", f"--data-root={layout.docker_root}", f"--exec-root={layout.run}/docker",
            f"--pidfile={layout.run}/docker.pid", f"--host=unix://{layout.docker_socket}",
            # Only for building images: no bridge, no iptables rules of its own.
            "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
            "--storage-driver=overlay2",
        ]),
        "registry": Proc("registry", registry.argv(layout)),
        "etcd": Proc("etcd", [
            str(bins["etcd"]), "--name=host", f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            f"--advertise-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
            f"--initial-cluster=host=http://127.0.0.1:{ETCD_PEER_PORT}",
            "--listen-metrics-urls=http://127.0.0.1:23810",
            # A throwaway test host: durability is not worth the fsyncs.
            "--unsafe-no-fsync", "--snapshot-count=10000", "--quota-backend-bytes=8589934592",
        ]),
        "kube-apiserver": Proc("kube-apiserver", [
            str(bins["kube-apiserver"]), f"--advertise-address={ip}", "--bind-address=0.0.0.0",
            f"--secure-port={APISERVER_PORT}", f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
            f"--client-ca-file={p / 'ca.crt'}", f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            "--allow-privileged=true", "--enable-admission-plugins=NodeRestriction", "--profiling=false",
            "--event-ttl=30m",
            # Aggregation layer (front-proxy) as kubeadm sets it: aggregated API servers (metrics-server, the
            # conformance suite's sample-apiserver) trust the X-Remote-* headers of requests made with the
            # front-proxy-client certificate. No --enable-aggregator-routing: the aggregator dials an
            # APIService's Service at its ClusterIP, which kube-proxy serves on this node too.
            f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client", "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group", "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
        ]),
        "kube-controller-manager": Proc("kube-controller-manager", [
            str(bins["kube-controller-manager"]), f"--kubeconfig={cfg / 'controller-manager.conf'}",
            f"--authentication-kubeconfig={cfg / 'controller-manager.conf'}",
            f"--authorization-kubeconfig={cfg / 'controller-manager.conf'}",
            "--bind-address=127.0.0.1", "--leader-elect=false", "--use-service-account-credentials=true",
            f"--root-ca-file={p / 'ca.crt'}", f"--service-account-private-key-file={p / 'sa.key'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}", f"--cluster-signing-key-file={p / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--controllers=*,bootstrapsigner,tokencleaner",
            # Namespace deletion and garbage collection are what test teardown relies on: keep them quick.
            "--concurrent-namespace-syncs=10", "--concurrent-gc-syncs=30",
        ]),
        "kube-scheduler": Proc("kube-scheduler", [
            str(bins["kube-scheduler"]), f"--kubeconfig={cfg / 'scheduler.conf'}",
            f"--authentication-kubeconfig={cfg / 'scheduler.conf'}",
            f"--authorization-kubeconfig={cfg / 'scheduler.conf'}",
            "--bind-address=127.0.0.1", "--leader-elect=false",
        ]),
        "kubelet": Proc("kubelet", [
            str(bins["kubelet"]), f"--config={cfg / 'kubelet.yaml'}", f"--kubeconfig={cfg / 'kubelet.conf'}",
            f"--root-dir={layout.kubelet_root}", f"--hostname-override={NODE_NAME}", f"--node-ip={ip}",
            "--v=1",
        ]),
        "kube-proxy": Proc("kube-proxy", [str(bins["kube-proxy"]), f"--config={cfg / 'kube-proxy.yaml'}"]),
        # NetworkPolicy enforcement: kube-router's firewall alone (iptables + ipset), beside the bridge CNI.
        "kube-router": Proc("kube-router", [
            str(bins["kube-router"]), f"--kubeconfig={cfg / 'admin.conf'}", f"--hostname-override={NODE_NAME}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
            "--health-port=0", "--metrics-port=0", "--v=1",
        ]),
        "local-path-provisioner": Proc("local-path-provisioner", [
            str(bins["local-path-provisioner"]), "start", f"--kubeconfig={cfg / 'admin.conf'}",
            "--namespace=local-path-storage", "--configmap-name=local-path-config",
            f"--helper-image={versions.SHELL_IMAGE}", "--service-account-name=local-path-provisioner-helper",
            "--provisioner-name=rancher.io/local-path",
        ]),
    }


# ---------------------------------------------------------------- checks


def _https(layout: Layout, ip: str, path: str, timeout: float = 3) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    ctx.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))
    url = f"https://{ip}:{APISERVER_PORT}{path}"
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def kubectl(layout: Layout, *args: str, input: str | None = None, capture: bool = True) -> str:
    kubectl_bin = build_outputs()["kubectl"]
    return run([str(kubectl_bin), f"--kubeconfig={layout.admin_kubeconfig}", *args], input=input, capture=capture)


def dns_query(server: str, name: str, timeout: float = 2.0) -> list[str]:
    """Asks `server` for the A records of `name` (a minimal DNS client, UDP)."""
    qid = os.getpid() & 0xFFFF
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(header + qname + struct.pack(">HH", 1, 1), (server, 53))
        data, _ = s.recvfrom(4096)
    rid, flags, qd, an = struct.unpack(">HHHH", data[:8])
    if rid != qid or flags & 0x000F:
        raise HostError(f"DNS answer for {name}: rcode {flags & 0xF}")
    pos = 12 + len(qname) + 4
    addrs = []
    for _ in range(an):
        if data[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(data[pos:pos + 4]))
        pos += rdlen
    return addrs


def node_ready(layout: Layout) -> bool:
    out = kubectl(layout, "get", "node", NODE_NAME, "-o",
                  "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
    return out.strip() == "True"


def coredns_answers() -> bool:
    return dns_query(DNS_IP, f"kubernetes.default.svc.{CLUSTER_DOMAIN}") == [KUBERNETES_SERVICE_IP]


# ---------------------------------------------------------------- up / down


_BUILD_OUTPUTS: dict[str, Path] | None = None


def build_outputs() -> dict[str, Path]:
    global _BUILD_OUTPUTS
    if _BUILD_OUTPUTS is None:
        layout = Layout.default()
        # The Debian roots (debootstrap: downloads and unpacking) are made while the Go builds use
        # the CPU; on a cold machine that hides about 4 minutes. Both are cached: warm, this is free.
        with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="rootfs") as pool:
            roots = [pool.submit(images.python_rootfs, layout), pool.submit(e2e_images.tools_rootfs, layout.cache)]
            outputs = build.build_all()
            for root in roots:
                root.result()
        registry.binary()  # a missing package is named before anything starts
        _BUILD_OUTPUTS = outputs
    return _BUILD_OUTPUTS


def problems(layout: Layout) -> list[str]:
    """What is wrong with the running host; empty when it is healthy."""
    problems = [f"{n} is not running" for n in PROCESS_ORDER if not running_pid(layout, n)]
    if problems:
        return problems
    try:
        code, body = _https(layout, node_ip(), "/readyz")
        if code != 200:
            problems.append(f"kube-apiserver /readyz answered {code}: {body[-300:]}")
        elif not node_ready(layout):
            problems.append(f"node {NODE_NAME} is not Ready")
        elif not coredns_answers():
            problems.append("CoreDNS does not answer for kubernetes.default")
        elif not registry.answers():
            problems.append(f"the registry does not answer at http://{REGISTRY_ADDRESS}/v2/")
    except Exception as e:  # noqa: BLE001
        problems.append(f"the API server does not answer: {e}")
    return problems


def set_sysctls(layout: Layout) -> None:
    saved = layout.state / "sysctl-before.json"
    before = {}
    for key, value in SYSCTLS.items():
        path = Path("/proc/sys") / key
        before[key] = path.read_text().strip()
        if before[key] != value:
            path.write_text(value)
    if not saved.exists():
        saved.write_text(json.dumps(before))


def restore_sysctls(layout: Layout) -> None:
    saved = layout.state / "sysctl-before.json"
    if saved.exists():
        for key, value in json.loads(saved.read_text()).items():
            try:
                (Path("/proc/sys") / key).write_text(value)
            except OSError as e:
                log(f"  could not restore {key}: {e}")


def up(layout: Layout, *, timeout: float = 300) -> None:
    """Brings the host up: a running one is mended in place (its workloads survive); else what an earlier
    run left is removed and everything is started anew, step by step."""
    start_time = time.monotonic()
    if layout.state.exists():
        if _mend(layout):
            log("host is already up and healthy")
            return
        with step("clean up what an earlier run left"):
            down(layout, quiet=True)
    bins = build_outputs()
    ip = _start_runtime(layout, bins)
    _start_registry(layout, bins, ip)
    _images(layout, bins)
    daemons = processes(layout, bins, ip)
    _start_control_plane(layout, daemons, ip)
    _start_add_ons(layout, daemons)
    _wait_for_node_and_dns(layout, daemons, timeout)
    (layout.state / "started").write_text(str(time.time()))
    log(f"host is up in {time.monotonic() - start_time:.1f}s; kubeconfig: {layout.admin_kubeconfig}")


def _mend(layout: Layout) -> bool:
    """A host with state: while its core (containerd, etcd) runs, brings its configuration up to date and
    restarts what stopped; if it is then healthy, refreshes its images and says True (else it must be made
    anew)."""
    missing = [n for n in PROCESS_ORDER if not running_pid(layout, n)]
    if not set(missing) & CORE:
        reconfigure_runtime(layout)
        if "kube-apiserver" not in missing:
            reconfigure_apiserver(layout)
        if missing:
            _restart(layout, missing)
    if problems(layout):
        return False
    ensure_service_reject()
    # Still rebuild images whose Dockerfile or binary changed.
    images.import_images(layout, images.build_images(layout, build_outputs()))
    registry.publish_mirrored(layout)
    serve_control_planes(layout, host_control_planes())
    return True


def _restart(layout: Layout, missing: list[str]) -> None:
    """The runtime and the cluster's data are alive: restart only what stopped, so the workloads (other
    runs' virtual clusters) survive."""
    with step(f"restart {', '.join(missing)}"):
        bins = build_outputs()
        ip = node_ip()
        daemons = processes(layout, bins, ip)
        for name in reversed(PROCESS_ORDER):
            if name in missing:
                start(layout, daemons[name])
                if name == "kube-apiserver":  # the health check below needs it serving
                    wait_for("kube-apiserver /readyz", lambda: _https(layout, ip, "/readyz")[0] == 200,
                             120, layout=layout, proc="kube-apiserver")
                if name == "registry":
                    wait_for_registry(layout)


def _start_runtime(layout: Layout, bins: dict[str, Path]) -> str:
    """containerd and dockerd with their configuration (and the PKI); returns the node's address."""
    with step("runtime (containerd, dockerd)"):
        build_runc_wrapper(layout)
        ip = node_ip()
        for d in (layout.state, layout.run, layout.local_path):
            d.mkdir(parents=True, exist_ok=True)
        set_sysctls(layout)
        pki.ensure_pki(layout.pki, node_name=NODE_NAME, node_ip=ip, service_ip=KUBERNETES_SERVICE_IP,
                       clients=CLIENTS)
        write_configs(layout, ip)
        start(layout, processes(layout, bins, ip)["containerd"])
        start(layout, processes(layout, bins, ip)["dockerd"])
        wait_for("containerd's socket", layout.containerd_socket.exists, 30, layout=layout, proc="containerd")
        wait_for("dockerd's socket", lambda: procs.docker_ping(layout.docker_socket), 60, layout=layout,
                 proc="dockerd")
    return ip


def _start_registry(layout: Layout, bins: dict[str, Path], ip: str) -> None:
    with step(f"registry ({REGISTRY_ADDRESS}, mirrors of {', '.join(registry.MIRRORED_REGISTRIES[:-1])})"):
        start(layout, processes(layout, bins, ip)["registry"])
        wait_for_registry(layout)


def _images(layout: Layout, bins: dict[str, Path]) -> None:
    """The host's images built, imported into containerd and published in the registry."""
    with step("images"):
        names = images.build_images(layout, bins)
        images.import_images(layout, names)
        registry.publish_mirrored(layout)
    serve_control_planes(layout, host_control_planes())


def serve_control_planes(layout: Layout, planes: list[versions.ControlPlane]) -> list[str]:
    """Each minor's virtual control-plane images (kube-apiserver, kube-controller-manager, etcd): built unless
    cached (Go builds per version, then the images), imported into containerd and pushed to the registry under
    upstream's names, as the host's other images.  Returns their names."""
    names: list[str] = []
    for plane in planes:
        if build.control_plane_cached(plane):
            bins = build.build_control_plane(plane)
        else:
            with step(f"build Kubernetes {plane.kubernetes} control plane (kube-apiserver, "
                      f"kube-controller-manager, etcd {plane.etcd})"):
                bins = build.build_control_plane(plane)
        names += images.build_images(layout, bins, images.control_plane_images(plane, bins))
    if names:
        images.import_images(layout, names)
        registry.push(layout, [(n, n) for n in names])
    return names


def host_control_planes() -> list[versions.ControlPlane]:
    """The virtual control planes `up` serves: those of VCLUSTER_HOST_KUBERNETES (default
    versions.HOST_DEFAULT_KUBERNETES, 1.35) and the chart's default."""
    try:
        planes = versions.requested_control_planes()
    except ValueError as e:
        raise HostError(f"VCLUSTER_HOST_KUBERNETES: {e}") from None
    default = versions.CONTROL_PLANES[versions.DEFAULT_MINOR]
    return planes if default in planes else [default, *planes]


def served_control_planes(layout: Layout) -> list[versions.ControlPlane]:
    """The minors whose three images the host's containerd holds."""
    present = images.containerd_images(layout)
    return [p for p in versions.CONTROL_PLANES.values() if all(i in present for i in p.images)]


def serve_suite(layout: Layout, suite: versions.Suite) -> list[str]:
    """What a conformance suite pulls (hack/conformance, before it runs the suite): its minor's virtual control
    plane, and suite.images built unless cached (agnhost and nnp from the suite's Kubernetes, the images on them)
    and pushed to the registry under upstream's names. ``hack/host up`` serves neither for a suite other than
    the host's own: a run that asks pays once per version. Returns the upstream names pushed now."""
    serve_control_planes(layout, [versions.control_plane(suite.minor)])
    if not suite.images:
        return []
    images.build_images(layout, {}, images.suite_images(suite, build_outputs()))
    return registry.push(layout, [(s.upstream, s.local) for s in suite.images])


def _start_control_plane(layout: Layout, daemons: dict[str, Proc], ip: str) -> None:
    with step("control plane (etcd, kube-apiserver, controller-manager, scheduler)"):
        start(layout, daemons["etcd"])
        wait_for("etcd /health", lambda: _http_ok(f"http://127.0.0.1:{ETCD_CLIENT_PORT}/health"), 60,
                 layout=layout, proc="etcd")
        start(layout, daemons["kube-apiserver"])
        # /readyz includes RBAC's bootstrap roles: the components' rights exist from here on.
        wait_for("kube-apiserver /readyz", lambda: _https(layout, ip, "/readyz")[0] == 200, 120,
                 layout=layout, proc="kube-apiserver")
        for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"):
            start(layout, daemons[name])
        ensure_service_reject()


def _start_add_ons(layout: Layout, daemons: dict[str, Proc]) -> None:
    with step("add-ons (CoreDNS, local-path StorageClass)"):
        kubectl(layout, "apply", "-f", "-", input=render(
            "coredns.yaml", CLUSTER_DOMAIN=CLUSTER_DOMAIN, COREDNS_IMAGE=versions.COREDNS_IMAGE, DNS_IP=DNS_IP))
        kubectl(layout, "apply", "-f", "-", input=render(
            "local-path.yaml", STORAGE_CLASS=STORAGE_CLASS, LOCAL_PATH_DIR=str(layout.local_path),
            SHELL_IMAGE=versions.SHELL_IMAGE))
        start(layout, daemons["local-path-provisioner"])


def _wait_for_node_and_dns(layout: Layout, daemons: dict[str, Proc], timeout: float) -> None:
    with step("node Ready and CoreDNS answering"):
        wait_for(f"node {NODE_NAME} Ready", lambda: node_ready(layout), timeout, layout=layout, proc="kubelet")
        # kube-router looks its node up once at start.
        start(layout, daemons["kube-router"])
        wait_for("CoreDNS answering for kubernetes.default", coredns_answers, timeout, layout=layout,
                 proc="kube-controller-manager")


def wait_for_registry(layout: Layout) -> None:
    wait_for(f"the registry's http://{REGISTRY_ADDRESS}/v2/", registry.answers, 30, layout=layout, proc="registry")


def reconfigure_runtime(layout: Layout) -> None:
    """Brings a running host's registry config and containerd config up to date.

    The certs.d mirrors are read at each pull; containerd reads its own config only at start, so it is
    restarted when that changed (e.g. a host started before the mirrors existed).  A restart keeps
    the containers: their shims run on their own and containerd reconnects to them.
    """
    registry.write_configs(layout)
    path = layout.config / "containerd.toml"
    wanted = containerd_config(layout)
    if path.exists() and path.read_text() == wanted:
        return
    with step("restart containerd with its new configuration"):
        path.write_text(wanted)
        pid = running_pid(layout, "containerd")
        if pid:
            procs.stop_pid(pid)
        ip = node_ip()
        start(layout, processes(layout, build_outputs(), ip)["containerd"])
        wait_for("containerd's CRI", lambda: _cri_ready(layout), 60, layout=layout, proc="containerd")
        if running_pid(layout, "kubelet"):  # the kubelet notices the runtime went away: let it recover
            wait_for(f"node {NODE_NAME} Ready", lambda: node_ready(layout), 120, layout=layout, proc="kubelet")


def reconfigure_apiserver(layout: Layout) -> None:
    """Restarts a running kube-apiserver whose command line is not the one `up` would start now (e.g. a host
    started before the front-proxy flags existed), after adding the certificates it may now need (existing
    ones are kept).  The API server keeps no state of its own: workloads, namespaces and the other
    components (which reconnect) are untouched.
    """
    pid = running_pid(layout, "kube-apiserver")
    if not pid:
        return
    ip = node_ip()
    pki.ensure_pki(layout.pki, node_name=NODE_NAME, node_ip=ip, service_ip=KUBERNETES_SERVICE_IP, clients=CLIENTS)
    wanted = processes(layout, build_outputs(), ip)["kube-apiserver"]
    if procs.cmdline(pid) == wanted.argv:
        return
    with step("restart kube-apiserver with its new flags"):
        procs.stop_pid(pid)
        start(layout, wanted)
        wait_for("kube-apiserver /readyz", lambda: _https(layout, ip, "/readyz")[0] == 200, 120,
                 layout=layout, proc="kube-apiserver")


def _cri_ready(layout: Layout) -> bool:
    out = run(["ctr", "--address", str(layout.containerd_socket), "plugins", "ls"], capture=True, check=False)
    return any(line.split()[:2] == ["io.containerd.grpc.v1", "cri"] and line.split()[-1] == "ok"
               for line in out.splitlines())


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200




# ---------------------------------------------------------------- teardown


def _our_containerd_tasks(layout: Layout) -> None:
    """Kills every container of the host's containerd so nothing holds mounts or netns."""
    if not layout.containerd_socket.exists() or not running_pid(layout, "containerd"):
        return
    base = ["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io"]
    tasks = run([*base, "tasks", "ls", "-q"], capture=True, check=False).split()
    for t in tasks:
        run([*base, "tasks", "kill", "-s", "SIGKILL", t], check=False, quiet=True)
    deadline = time.monotonic() + 10
    for t in tasks:
        while time.monotonic() < deadline:
            out = run([*base, "tasks", "delete", t], check=False, quiet=True)
            if "not found" in out or not run([*base, "tasks", "ls", "-q"], capture=True, check=False).count(t):
                break
            time.sleep(0.2)
    for c in run([*base, "containers", "ls", "-q"], capture=True, check=False).split():
        run([*base, "containers", "delete", c], check=False, quiet=True)


def _shims(layout: Layout) -> list[int]:
    """containerd-shim processes that serve the host's containerd (they outlive it)."""
    return procs.pids_of(["containerd-shim-runc-v2"], str(layout.containerd_socket))


def our_mounts(layout: Layout) -> list[str]:
    return mounts_under(layout.owned_paths())


def our_netns() -> list[str]:
    """Network namespaces containerd's CRI made for pods (it names them cni-<uuid>)."""
    d = Path("/var/run/netns")
    return sorted(p.name for p in d.iterdir() if p.name.startswith("cni-")) if d.exists() else []


CHAIN_PREFIXES = ("KUBE-", "CNI-", "PVC-HOST-")
#: filter chain that refuses traffic to the service range that kube-proxy did not translate (a port a
#: Service does not have, an address no Service has), from the host's own processes (kube-apiserver
#: dialling an APIService or webhook before kube-proxy has its rules): on a real network such packets
#: die at the gateway; this machine's network answers TCP to any address. Pods' traffic is not covered
#: here (kube-router's firewall accepts it in FORWARD first, and its chain keeps the first place): see
#: POD_SERVICE_RULE_PRIORITY.
SERVICE_REJECT_CHAIN = "PVC-HOST-SERVICES"
#: priority of the policy-routing rule that routes pods' untranslated service-range traffic nowhere
#: (``prohibit``: the pod gets ICMP "administratively prohibited" at once, a connect fails with "no route
#: to host"). Routing comes after kube-proxy's DNAT, so a translated packet is addressed to a pod by then
#: and never matches; the Services conformance spec "same port and different protocols" checks that a
#: removed port stops answering.
POD_SERVICE_RULE_PRIORITY = 1096


def service_reject_rules(service_cidr: str = SERVICE_CIDR) -> str:
    """iptables-restore input (filter table, --noflush) of SERVICE_REJECT_CHAIN (hooked into OUTPUT)."""
    c = SERVICE_REJECT_CHAIN
    return "\n".join([
        "*filter",
        f":{c} - [0:0]",
        f"-F {c}",
        f"-A {c} -d {service_cidr} -p tcp -m conntrack ! --ctstate DNAT -j REJECT --reject-with tcp-reset",
        f"-A {c} -d {service_cidr} -m conntrack ! --ctstate DNAT -j REJECT --reject-with icmp-port-unreachable",
        "COMMIT",
        "",
    ])


def pod_service_rule(bridge: str = BRIDGE, service_cidr: str = SERVICE_CIDR) -> list[str]:
    """``ip rule add`` arguments of the rule for pods' untranslated service traffic (from the pods' bridge)."""
    return ["priority", str(POD_SERVICE_RULE_PRIORITY), "iif", bridge, "to", service_cidr, "prohibit"]


def our_ip_rules() -> list[str]:
    """``ip rule`` lines of the host's (by priority)."""
    out = run(["ip", "-4", "rule", "show"], capture=True, check=False)
    return [f"ip rule {line.strip()}" for line in out.splitlines()
            if line.split(":", 1)[0].strip() == str(POD_SERVICE_RULE_PRIORITY)]


def _clean_ip_rules() -> None:
    for _ in our_ip_rules():
        subprocess.run(["ip", "-4", "rule", "del", "priority", str(POD_SERVICE_RULE_PRIORITY)], capture_output=True)


def ensure_service_reject() -> None:
    """Installs SERVICE_REJECT_CHAIN and its jump from OUTPUT, and the pods' rule, once (idempotent)."""
    run(["iptables-restore", "--noflush"], input=service_reject_rules(), quiet=True)
    if subprocess.run(["iptables", "-C", "OUTPUT", "-j", SERVICE_REJECT_CHAIN], capture_output=True).returncode:
        run(["iptables", "-I", "OUTPUT", "1", "-j", SERVICE_REJECT_CHAIN], quiet=True)
    if not our_ip_rules():
        run(["ip", "-4", "rule", "add", *pod_service_rule()], quiet=True)


def our_iptables() -> list[str]:
    """iptables/ip6tables lines (chains and rules) that the host's components created."""
    found = []
    for tool in ("iptables-save", "ip6tables-save"):
        out = run([tool], capture=True, check=False)
        found += [f"{tool}: {line}" for line in out.splitlines() if any(p in line for p in CHAIN_PREFIXES)]
    return found


def _clean_iptables() -> None:
    """Rewrites each table without the host's chains and rules, leaving everything else as it was."""
    for save, restore in (("iptables-save", "iptables-restore"), ("ip6tables-save", "ip6tables-restore")):
        out = run([save], capture=True, check=False)
        if not any(p in out for p in CHAIN_PREFIXES):
            continue
        kept = [line for line in out.splitlines() if not any(p in line for p in CHAIN_PREFIXES)]
        run([restore], input="\n".join(kept) + "\n", check=False, quiet=True)


IPSET_PREFIXES = ("KUBE-", "kube-router")


def our_ipsets() -> list[str]:
    """ipsets kube-router's firewall made."""
    out = run(["ipset", "list", "-n"], capture=True, check=False) if shutil.which("ipset") else ""
    return [n for n in out.split() if n.startswith(IPSET_PREFIXES)]


def _clean_ipsets() -> None:
    # Sets can only go once no iptables rule refers to them, and a list set
    # only after its members: retry a few rounds.
    for _ in range(3):
        names = our_ipsets()
        if not names:
            return
        for n in names:
            run(["ipset", "destroy", n], check=False, quiet=True)


def _remove_cgroups() -> None:
    """kubelet's cgroup trees (kubepods*) in every v1 controller, deepest first."""
    procs.remove_cgroups(procs.cgroups_named(["kubepods", "kubepods.slice"]))


def down(layout: Layout, *, quiet: bool = False) -> None:
    with step("stop processes"):
        # The kubelet first, or it restarts the containers being killed.
        for name in ("local-path-provisioner", "kubelet"):
            pid = running_pid(layout, name)
            if pid:
                procs.stop_pid(pid)
        _our_containerd_tasks(layout)
        for name in PROCESS_ORDER:
            pid = running_pid(layout, name)
            if pid:
                procs.stop_pid(pid)
        for pid in _shims(layout):
            procs.stop_pid(pid, timeout=5)
    with step("remove mounts, network namespaces, network devices, iptables and ip rules"):
        unmount_all(our_mounts(layout))
        for ns in our_netns():
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
        _clean_iptables()
        _clean_ip_rules()
        _clean_ipsets()
        _remove_cgroups()
        restore_sysctls(layout)
    with step("remove state"):
        for d in (layout.state, layout.run):
            shutil.rmtree(d, ignore_errors=True)
    if not quiet:
        leftovers = leaks(layout)
        if leftovers:
            raise HostError("down left things behind:\n  " + "\n  ".join(leftovers))


def leaks(layout: Layout) -> list[str]:
    """Anything of the host's still on the machine."""
    out = [f"process {n} (pid {running_pid(layout, n)})" for n in PROCESS_ORDER if running_pid(layout, n)]
    out += [f"shim pid {p}" for p in _shims(layout)]
    out += [f"mount {m}" for m in our_mounts(layout)]
    out += [f"netns {n}" for n in our_netns()]
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        out.append(f"network device {BRIDGE}")
    out += our_iptables()
    out += our_ip_rules()
    out += [f"ipset {n}" for n in our_ipsets()]
    out += [f"directory {d}" for d in (layout.state, layout.run) if d.exists()]
    return out


def status(layout: Layout) -> int:
    ip = node_ip() if layout.state.exists() else "-"
    for name in PROCESS_ORDER:
        pid = running_pid(layout, name)
        if pid:
            started = Path(f"/proc/{pid}").stat().st_mtime
            print(f"{name:26} running  pid {pid:<7} up {_human(time.time() - started)}")
        else:
            print(f"{name:26} stopped")
    wrong = problems(layout) if layout.state.exists() else ["host is down (hack/host up)"]
    if not wrong:
        server = json.loads(_https(layout, ip, "/version")[1])
        print(f"kubernetes {server['gitVersion']} at https://{ip}:{APISERVER_PORT}, node {NODE_NAME} Ready, "
              f"CoreDNS answers; kubeconfig {layout.admin_kubeconfig}")
        runtime = run(["containerd", "--version"], capture=True, check=False).split()
        print(f"versions: etcd {versions.ETCD}, CoreDNS {versions.COREDNS}, helm {versions.HELM}, "
              f"kube-router {versions.KUBE_ROUTER}, local-path-provisioner {versions.LOCAL_PATH_PROVISIONER}, "
              f"containerd {runtime[2] if len(runtime) > 2 else '?'}")
        print(f"registry localhost:{REGISTRY_PORT} (distribution {registry.version()}, "
              f"{len(registry.catalog())} repositories in {registry.storage(layout)}); containerd pulls "
              f"{', '.join(registry.MIRRORED_REGISTRIES[:-1])} from it")
        served = ", ".join(f"{p.minor} ({p.kubernetes}, etcd {p.etcd_tag})" for p in served_control_planes(layout))
        print(f"virtual control planes served: {served or 'none'} (more: hack/host images --kubernetes MINOR)")
        return 0
    for p in wrong:
        print(f"unhealthy: {p}")
    return 1


def _human(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
