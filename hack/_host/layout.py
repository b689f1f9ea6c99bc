"""Where the host keeps things, and its fixed network plan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._util import cache_dir, state_dir

NODE_NAME = "pytest-vcluster-host"
SERVICE_CIDR = "10.96.0.0/12"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_IP = "10.96.0.10"
POD_CIDR = "10.244.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
BRIDGE = "pvc-host0"
APISERVER_PORT = 6443
ETCD_CLIENT_PORT = 23790
ETCD_PEER_PORT = 23800
STORAGE_CLASS = "local-path"
# The local image registry (kind's local-registry guide uses this port); only the machine reaches it.
REGISTRY_PORT = 5001
REGISTRY_ADDRESS = f"127.0.0.1:{REGISTRY_PORT}"


@dataclass(frozen=True)
class Layout:
    state: Path  # everything a running host owns; removed by `down`
    run: Path  # sockets and runtime state on tmpfs; removed by `down`
    cache: Path  # builds, image stores; kept by `down`

    @classmethod
    def default(cls) -> Layout:
        state = state_dir()
        return cls(state=state, run=Path("/run") / state.name, cache=cache_dir())

    @property
    def pki(self) -> Path:
        # Kept across down/up like a cache: kubeconfigs handed out earlier (a test session's, a
        # developer's) stay valid when the host is restarted.
        return self.cache / "pki"

    @property
    def config(self) -> Path:
        return self.state / "config"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.run / "pids"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def local_path(self) -> Path:
        return self.state / "local-path"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.config / "admin.conf"

    @property
    def containerd_root(self) -> Path:
        # Image content and unpacked layers: a cache, so a warm `up` imports nothing.
        return self.cache / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def docker_root(self) -> Path:
        return self.cache / "docker"

    @property
    def docker_socket(self) -> Path:
        return self.run / "docker.sock"

    @property
    def cni_conf(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_state(self) -> Path:
        return self.state / "cni" / "ipam"

    def owned_paths(self) -> tuple[Path, ...]:
        """Mount points below these belong to the host and are unmounted by `down`."""
        return (self.state, self.run, self.containerd_root, self.docker_root)
