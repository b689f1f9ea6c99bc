"""Binaries the kind node needs beyond the host's, built from the Go module proxy (cached).

kind's base image builds containerd, crictl and the CNI plugins from git
clones; here they come from the module proxy through build.go_build (the CNI
plugins are Debian's).  kubeadm is built from the same k8s.io/kubernetes
module as the host's binaries, as its own build (so the host's build key,
and with it its cache, stays as it is).
"""

from __future__ import annotations

from pathlib import Path

from . import build, versions

CONTAINERD = "v2.1.4"  # kind v0.30.0's base image
# kind v0.30.0 uses crictl v1.33.0; the module proxy here serves v1.34.0 (same CRI v1 API).
CRICTL = "v1.34.0"
KIND_CNI_SRC = Path(__file__).resolve().parent.parent / "kind-cni"


def builds() -> list[build.GoBuild]:
    return [
        build.GoBuild(
            name="kubeadm",
            module="k8s.io/kubernetes",
            version=versions.KUBERNETES,
            packages=("k8s.io/kubernetes/cmd/kubeadm",),
            ldflags=build._kube_ldflags(),
            staging_version=versions.KUBERNETES_STAGING,
        ),
        build.GoBuild(
            name="containerd",
            module="github.com/containerd/containerd/v2",
            version=CONTAINERD,
            packages=tuple(f"github.com/containerd/containerd/v2/cmd/{c}"
                           for c in ("containerd", "ctr", "containerd-shim-runc-v2")),
            ldflags=f"-s -w -X github.com/containerd/containerd/v2/version.Version={CONTAINERD}"
                    " -X github.com/containerd/containerd/v2/version.Revision=module"
                    " -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2",
            tags=("no_btrfs", "no_devmapper", "no_zfs", "no_aufs"),
        ),
        build.GoBuild(
            name="crictl",
            module="sigs.k8s.io/cri-tools",
            version=CRICTL,
            packages=("sigs.k8s.io/cri-tools/cmd/crictl",),
            ldflags=f"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version={CRICTL}",
        ),
    ]


def build_kind_binaries(only: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Builds (or finds cached) kubeadm, containerd, ctr, the runc shim and crictl."""
    paths: dict[str, Path] = {}
    for b in builds():
        if only and b.name not in only:
            continue
        if build.cached(b):
            folder = build.go_build(b)
        else:
            with build.step(f"build {b.name} {b.version}"):
                folder = build.go_build(b)
        for f in folder.iterdir():
            if f.is_file():
                paths[f.name] = f
    return paths


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    for k, v in sorted(build_kind_binaries(tuple(sys.argv[1:]) or None).items()):
        print(k, v)
