"""Pinned versions of everything the host cluster is built from.

Kubernetes stays on 1.33: our machines run cgroup v1 (hybrid), which 1.35's
kubelet refuses.  The etcd, CoreDNS and pause versions are the ones kubeadm
1.33 pins (cmd/kubeadm/app/constants), so the images we build carry the exact
names a user's cluster would pull.
"""

from __future__ import annotations

KUBERNETES = "v1.33.13"
# k8s.io/kubernetes publishes its staging modules (k8s.io/api, client-go, ...)
# as v0.<minor>.<patch> of the same release.
KUBERNETES_STAGING = "v0." + KUBERNETES.split(".", 1)[1]
ETCD = "v3.5.24"
ETCD_IMAGE_TAG = "3.5.24-0"
COREDNS = "v1.12.0"
PAUSE = "3.10"
HELM = "v3.19.0"
KIND = "v0.30.0"
LOCAL_PATH_PROVISIONER = "v0.0.30"
# Only its network-policy firewall runs: the bridge CNI enforces no NetworkPolicy.
KUBE_ROUTER = "v2.1.0"

# Images built locally and imported into the host's containerd.
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE}"
APISERVER_IMAGE = f"registry.k8s.io/kube-apiserver:{KUBERNETES}"
CONTROLLER_MANAGER_IMAGE = f"registry.k8s.io/kube-controller-manager:{KUBERNETES}"
ETCD_IMAGE = f"registry.k8s.io/etcd:{ETCD_IMAGE_TAG}"
COREDNS_IMAGE = f"registry.k8s.io/coredns/coredns:{COREDNS}"
LOCAL_PATH_IMAGE = f"docker.io/rancher/local-path-provisioner:{LOCAL_PATH_PROVISIONER}"
# Project-built images (no upstream counterpart is pulled here).
PYTHON_IMAGE = "pytest-vcluster.local/python:3.11-bookworm"
SHELL_IMAGE = "pytest-vcluster.local/busybox:1.35"
HTTP_IMAGE = "pytest-vcluster.local/httpd:1.35"

# Images hack/host serves from its local registry under upstream names (the containerd of the host
# mirrors docker.io, registry.k8s.io and k8s.gcr.io to it): upstream name -> the image built here.
MIRRORED_IMAGES: dict[str, str] = {}
