"""hack/kind: real `kind create cluster` on our machines, offline.

Three things, each cached under ~/.cache/pytest-vcluster/kind:

- a docker daemon of its own (socket /run/pytest-vcluster-kind/docker.sock)
  whose default runtime is hack/runc-wrapper, so kind's privileged node
  containers start although the machine's capability bounding set lacks
  CAP_SYS_RESOURCE.  It is separate from hack/host's image builder, which runs
  with --bridge=none: kind needs a bridge network and a published API server
  port.  It touches no iptables rule and no sysctl (--iptables=false,
  --ip-forward=false; published ports go through docker-proxy, kind's node
  network is a plain bridge), so the host cluster's pod networking, which runs
  beside it, is left as it is;
- the node image pytest-vcluster.local/kind-node:<Kubernetes version>, made by
  kind's own `kind build node-image --type file` from a base image we assemble
  (kind_rootfs.py, hack/images/kind-node-base.Dockerfile) and a
  kubernetes-server tarball of our Kubernetes build plus every image kubeadm
  and kind's default manifests name, built here under their upstream names;
- the environment to use it (`hack/kind env`).
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import build, e2e_images, images, kind_build, kind_rootfs, procs, versions
from ._util import HostError, cache_dir, log, mounts_under, run, step, unmount_all
from .cluster import build_runc_wrapper, runc_wrapper
from .layout import Layout

NODE_IMAGE = f"pytest-vcluster.local/kind-node:{versions.KUBERNETES}"
BASE_IMAGE = "pytest-vcluster.local/kind-base:bookworm"
SCHEDULER_IMAGE = f"registry.k8s.io/kube-scheduler:{versions.KUBERNETES}"
PROXY_IMAGE = f"registry.k8s.io/kube-proxy:{versions.KUBERNETES}"
# The names kind v0.30.0's node-image builder writes into its default manifests
# (pkg/build/nodeimage/const_cni.go, const_storage.go).
KINDNETD_IMAGE = "docker.io/kindest/kindnetd:v20250512-df8de77b"
LOCAL_PATH_IMAGE = "docker.io/kindest/local-path-provisioner:v20250214-acbabc1a"
LOCAL_PATH_HELPER_IMAGE = "docker.io/kindest/local-path-helper:v20241212-8ac705d0"

HACK = Path(__file__).resolve().parent.parent
DOCKERFILES = HACK / "images"
KIND_CNI_SRC = HACK / "kind-cni"
NODE_IMAGE_VERSION = "1"  # bump when the way the node image is made changes


def layout() -> Layout:
    state = Path(os.environ.get("PYTEST_VCLUSTER_KIND_STATE", "/var/lib/pytest-vcluster-kind"))
    return Layout(state=state, run=Path("/run") / state.name, cache=cache_dir() / "kind")


def docker_host(lay: Layout) -> str:
    return f"unix://{lay.docker_socket}"


def docker_env(lay: Layout) -> dict[str, str]:
    # Debian's client first: it matches Debian's engine and builds without buildx.
    path = f"{build.tools_dir()}:/usr/bin:/usr/sbin:/bin:/sbin:{os.environ.get('PATH', '')}"
    return dict(os.environ, DOCKER_HOST=docker_host(lay), DOCKER_BUILDKIT="0", PATH=path,
                KIND_EXPERIMENTAL_PROVIDER="docker")


def docker(lay: Layout, *args: str, capture: bool = False, check: bool = True, quiet: bool = True) -> str:
    return run(["/usr/bin/docker", *args], env=docker_env(lay), capture=capture, check=check,
               quiet=quiet and not capture)


# ---------------------------------------------------------------- the docker daemon


def _pid(lay: Layout) -> int | None:
    """The daemon's pid (from the pid file dockerd writes itself), if it runs."""
    return procs.pid_from(lay.run / "docker.pid")


def dockerd_argv(lay: Layout) -> list[str]:
    return [
        "dockerd",
        f"--data-root={lay.docker_root}",  # images are a cache: kept by `down`
        f"--exec-root={lay.run}/docker",
        f"--pidfile={lay.run}/docker.pid",
        f"--host={docker_host(lay)}",
        # The node containers are privileged: runc through the wrapper.
        f"--add-runtime=wrapper={runc_wrapper(lay_host())}",
        "--default-runtime=wrapper",
        # No rules or sysctls of its own on the machine (the host cluster's pod
        # network lives in the same iptables): kind's node network is a plain
        # bridge, ports are published by docker-proxy on 127.0.0.1.
        "--iptables=false", "--ip-forward=false", "--ip-masq=false",
        "--bridge=none",
        "--userland-proxy=true",
        "--storage-driver=overlay2",
        # Its containers' cgroups in a tree of their own.
        "--cgroup-parent=/pytest-vcluster-kind",
        "--log-level=warn",
    ]


def lay_host() -> Layout:
    """hack/host's layout: the runc wrapper is built into its cache."""
    return Layout.default()


def ensure_dockerd(lay: Layout) -> None:
    if _pid(lay) and procs.docker_ping(lay.docker_socket):
        return
    build_runc_wrapper(lay_host())
    for d in (lay.logs, lay.run, lay.docker_root):
        d.mkdir(parents=True, exist_ok=True)
    pid = _pid(lay)
    if pid:  # alive but not answering: restart it
        procs.stop_pid(pid, 30)
    started = procs.spawn(dockerd_argv(lay), lay.logs / "dockerd.log", env=docker_env(lay))
    procs.wait_for("kind's dockerd to answer", lambda: procs.docker_ping(lay.docker_socket), 60,
                   log=lay.logs / "dockerd.log", running=lambda: procs.alive(started))


# ---------------------------------------------------------------- images


@dataclass(frozen=True)
class KImage:
    name: str
    dockerfile: str
    files: dict[str, Path] = field(default_factory=dict)  # context name -> file or folder
    base: tuple[str, ...] = ()  # images it is built FROM (their IDs are part of its key)
    build_args: dict[str, str] = field(default_factory=dict)


def _tree_key(path: Path) -> str:
    if path.is_file():
        st = path.stat()
        return f"{st.st_size}:{int(st.st_mtime)}"
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(path)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()


def _key(lay: Layout, image: KImage) -> str:
    h = hashlib.sha256(image.name.encode())
    h.update((DOCKERFILES / image.dockerfile).read_bytes())
    h.update(repr(sorted(image.build_args.items())).encode())
    for name, path in sorted(image.files.items()):
        h.update(f"{name}:{_tree_key(path)}".encode())
    for b in image.base:
        h.update(image_id(lay, b).encode())
    return h.hexdigest()[:16]


def image_id(lay: Layout, name: str) -> str:
    return docker(lay, "image", "inspect", "--format", "{{.Id}}", name, capture=True, check=False).strip()


def build_kind_cni(lay: Layout) -> Path:
    out = lay.cache / "bin" / "kind-cni" / "kindnetd"
    newest = max(p.stat().st_mtime for p in KIND_CNI_SRC.iterdir())
    if out.exists() and out.stat().st_mtime >= newest:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="")
    run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(out), "."], cwd=KIND_CNI_SRC, env=env, quiet=True)
    return out


def containerd_config() -> str:
    """kind's node containerd config, with runc run through the wrapper and no fuse-overlayfs plugin."""
    src = kind_source() / "images/base/files/etc/containerd/config.toml"
    out, skip = [], False
    for line in src.read_text().splitlines():
        if line.startswith("[proxy_plugins"):
            skip = True
            continue
        if skip and line.startswith("[") and not line.startswith("[proxy_plugins"):
            skip = False
        if skip:
            continue
        out.append(line)
        if line.strip().startswith("SystemdCgroup = true"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# The machine's bounding set lacks CAP_SYS_RESOURCE (hack/runc-wrapper).")
            out.append(f'{indent}BinaryName = "/usr/local/sbin/runc-wrapper"')
    return "\n".join(out) + "\n"


def kind_source() -> Path:
    modcache = run(["go", "env", "GOMODCACHE"], capture=True).strip()
    src = Path(modcache) / f"sigs.k8s.io/kind@{versions.KIND}"
    if not src.exists():
        env = dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
        run(["go", "mod", "download", f"sigs.k8s.io/kind@{versions.KIND}"], env=env, cwd=str(cache_dir()), quiet=True)
    return src


def catalogue(lay: Layout, bins: dict[str, Path], kbins: dict[str, Path]) -> list[KImage]:
    """Every image the node image carries (and the test images), in build order."""
    ctx = lay.cache / "context"
    ctx.mkdir(parents=True, exist_ok=True)
    conf = ctx / "containerd-config.toml"
    text = containerd_config()
    if not conf.exists() or conf.read_text() != text:
        conf.write_text(text)
    base_bin = ctx / "base-bin"
    base_bin.mkdir(exist_ok=True)
    for name, src in (("containerd", kbins["containerd"]), ("ctr", kbins["ctr"]),
                      ("containerd-shim-runc-v2", kbins["containerd-shim-runc-v2"]), ("crictl", kbins["crictl"]),
                      ("runc-wrapper", runc_wrapper(lay_host()))):
        dst = base_bin / name
        if not dst.exists() or _tree_key(dst) != _tree_key(src):
            shutil.copy2(src, dst)
    return [
        KImage(versions.SHELL_IMAGE, "busybox.Dockerfile",
               {"busybox-root.tar": e2e_images.busybox_root(lay_host().cache)}),
        KImage(versions.HTTP_IMAGE, "httpd.Dockerfile", base=(versions.SHELL_IMAGE,)),
        KImage(versions.PAUSE_IMAGE, "pause.Dockerfile", {"pause": images.build_pause(lay_host())}),
        KImage(versions.APISERVER_IMAGE, "kube-component.Dockerfile", {"component": bins["kube-apiserver"]},
               build_args={"NAME": "kube-apiserver"}),
        KImage(versions.CONTROLLER_MANAGER_IMAGE, "kube-component.Dockerfile",
               {"component": bins["kube-controller-manager"]}, build_args={"NAME": "kube-controller-manager"}),
        KImage(SCHEDULER_IMAGE, "kube-component.Dockerfile", {"component": bins["kube-scheduler"]},
               build_args={"NAME": "kube-scheduler"}),
        KImage(versions.ETCD_IMAGE, "etcd.Dockerfile", {"etcd": bins["etcd"]}),
        KImage(versions.COREDNS_IMAGE, "coredns.Dockerfile", {"coredns": bins["coredns"]}),
        KImage(BASE_IMAGE, "kind-node-base.Dockerfile", {
            "rootfs.tar": kind_rootfs.node_rootfs(lay.cache),
            "files": kind_source() / "images/base/files",
            "bin": base_bin,
            "containerd-config.toml": conf,
        }),
        KImage(PROXY_IMAGE, "kind-kube-proxy.Dockerfile", {"component": bins["kube-proxy"]}, base=(BASE_IMAGE,),
               build_args={"BASE": BASE_IMAGE}),
        KImage(KINDNETD_IMAGE, "kind-cni.Dockerfile", {"kindnetd": build_kind_cni(lay)}, base=(versions.SHELL_IMAGE,)),
        KImage(LOCAL_PATH_IMAGE, "kind-local-path-provisioner.Dockerfile",
               {"local-path-provisioner": bins["local-path-provisioner"]}),
        KImage(LOCAL_PATH_HELPER_IMAGE, "kind-local-path-helper.Dockerfile", base=(versions.SHELL_IMAGE,)),
        *default_control_plane_images(),
    ]


NODE_CONTROL_PLANE_IMAGES = {versions.APISERVER_IMAGE, versions.CONTROLLER_MANAGER_IMAGE, versions.ETCD_IMAGE}


def preloaded_control_planes() -> list[versions.ControlPlane]:
    """The virtual control planes whose images the node image carries besides its own version's: the chart's
    default and those of VCLUSTER_HOST_KUBERNETES (the ones hack/host serves; the operator example runs 1.35), so
    their virtual clusters start on a kind host that cannot pull."""
    planes = [versions.CONTROL_PLANES[versions.DEFAULT_MINOR], *versions.requested_control_planes()]
    out: list[versions.ControlPlane] = []
    for plane in planes:
        if not set(plane.images) <= NODE_CONTROL_PLANE_IMAGES and plane not in out:
            out.append(plane)
    return out


def default_control_plane_images() -> list[KImage]:
    return [KImage(i.name, i.dockerfile, dict(i.files), build_args=dict(i.build_args))
            for plane in preloaded_control_planes()
            for i in images.control_plane_images(plane, build.build_control_plane(plane))]


def _copy_into(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
        return
    try:  # big files (the root tarball): a hard link instead of a copy
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_images(lay: Layout, catalogue_: list[KImage]) -> None:
    built = False
    for image in catalogue_:
        stamp = images._stamp(lay, "docker", image.name)
        key = _key(lay, image)
        if image_id(lay, image.name) and stamp.exists() and stamp.read_text() == key:
            continue
        with step(f"image {image.name}"):
            with tempfile.TemporaryDirectory(prefix="kind-ctx-", dir=lay.cache) as tmp:
                ctx = Path(tmp)
                for name, src in image.files.items():
                    _copy_into(src, ctx / name)
                shutil.copy2(DOCKERFILES / image.dockerfile, ctx / "Dockerfile")
                args = [a for k, v in image.build_args.items() for a in ("--build-arg", f"{k}={v}")]
                docker(lay, "build", "-q", "--network", "host", *args, "-t", image.name, str(ctx))
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key)
        built = True
    if built:  # the legacy builder keeps multi-stage builds' first stages
        docker(lay, "image", "prune", "-f", check=False)


# ---------------------------------------------------------------- the node image


def _qualify(ref: str) -> str:
    """docker's short form (kindest/x:t) to the full name kind and kubeadm use (docker.io/kindest/x:t)."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return "docker.io/" + (ref if "/" in ref else "library/" + ref)


def save_images(lay: Layout, names: list[str], out: Path) -> None:
    """`docker save` with fully qualified tags (kind compares them with kubeadm's list verbatim).

    kind reads the tags of an archive from whichever of `repositories` and `manifest.json` comes
    first, and of manifest.json only its first image: `repositories` (every image) goes first.
    """
    raw = out.with_suffix(".raw")
    docker(lay, "save", "-o", str(raw), *names)
    meta: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    with tarfile.open(raw) as src, tarfile.open(out, "w") as dst:
        for member in src:
            if member.name in ("manifest.json", "repositories"):
                data = json.load(src.extractfile(member))
                if member.name == "manifest.json":
                    for entry in data:
                        entry["RepoTags"] = [_qualify(t) for t in entry.get("RepoTags") or []]
                else:
                    data = {_qualify(k + ":x").rsplit(":", 1)[0]: v for k, v in data.items()}
                meta[member.name] = (member, json.dumps(data).encode())
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for name in ("repositories", "manifest.json"):
            member, blob = meta[name]
            member.size = len(blob)
            dst.addfile(member, io.BytesIO(blob))
    raw.unlink()


def node_image_key(lay: Layout, names: list[str], kube_bins: dict[str, Path]) -> str:
    h = hashlib.sha256(f"{NODE_IMAGE_VERSION}:{versions.KIND}:{versions.KUBERNETES}".encode())
    for n in names:
        h.update(f"{n}={image_id(lay, n)}".encode())
    for n, p in sorted(kube_bins.items()):
        h.update(f"{n}:{_tree_key(p)}".encode())
    return h.hexdigest()[:16]


def build_node_image(lay: Layout, bins: dict[str, Path], kbins: dict[str, Path]) -> None:
    groups = {
        "kube-apiserver.tar": [versions.APISERVER_IMAGE],
        "kube-controller-manager.tar": [versions.CONTROLLER_MANAGER_IMAGE],
        "kube-scheduler.tar": [SCHEDULER_IMAGE],
        # kind reads only these four archives; one archive may hold many images,
        # so every other image the node needs rides along with kube-proxy.
        "kube-proxy.tar": [PROXY_IMAGE, versions.ETCD_IMAGE, versions.COREDNS_IMAGE, versions.PAUSE_IMAGE,
                           KINDNETD_IMAGE, LOCAL_PATH_IMAGE, LOCAL_PATH_HELPER_IMAGE],
    }
    for plane in preloaded_control_planes():  # the chart's default virtual control plane, those hack/host serves
        groups["kube-proxy.tar"] += list(plane.images)
    kube_bins = {"kubeadm": kbins["kubeadm"], "kubelet": bins["kubelet"], "kubectl": bins["kubectl"]}
    names = [BASE_IMAGE] + [n for g in groups.values() for n in g]
    key = node_image_key(lay, names, kube_bins)
    stamp = images._stamp(lay, "docker", NODE_IMAGE)
    if image_id(lay, NODE_IMAGE) and stamp.exists() and stamp.read_text() == key:
        return
    with tempfile.TemporaryDirectory(prefix="kind-node-", dir=lay.cache) as tmp:
        work = Path(tmp)
        tarball = work / "kubernetes-server-linux-amd64.tar.gz"
        with step("kubernetes-server tarball (binaries and image archives)"):
            bindir = work / "kubernetes" / "server" / "bin"
            bindir.mkdir(parents=True)
            (work / "kubernetes" / "version").write_text(versions.KUBERNETES + "\n")
            for name, path in kube_bins.items():
                shutil.copy2(path, bindir / name)
            for archive, group in groups.items():
                save_images(lay, group, bindir / archive)
            with open(tarball, "wb") as f:
                gz = gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1, mtime=0)
                with tarfile.open(fileobj=gz, mode="w") as t:
                    t.add(work / "kubernetes", arcname="kubernetes")
                gz.close()
            shutil.rmtree(work / "kubernetes")
        with step(f"kind build node-image {NODE_IMAGE}"):
            env = docker_env(lay)
            env["TMPDIR"] = str(work)
            proc = subprocess.run(
                [str(kind_binary()), "build", "node-image", "--type", "file", "--base-image", BASE_IMAGE,
                 "--image", NODE_IMAGE, str(tarball)], env=env, capture_output=True, text=True)
            if proc.returncode:
                raise HostError(f"kind build node-image failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)


def kind_binary() -> Path:
    return build.tools_dir() / "kind"


# ---------------------------------------------------------------- up / down / status


def up(lay: Layout) -> None:
    """One `up` at a time (CI scripts may start several): a file lock in the cache."""
    lay.cache.mkdir(parents=True, exist_ok=True)
    with open(lay.cache / "up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _up(lay)


def _up(lay: Layout) -> None:
    start = time.monotonic()
    warm = _pid(lay) is not None and procs.docker_ping(lay.docker_socket) and bool(image_id(lay, NODE_IMAGE))
    # The node's Debian root (debootstrap: Debian's mirror and the disk) is made while the Go builds use the
    # CPU, as the host's roots are (cluster.build_outputs): on a cold machine that hides about 40 s.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kind-rootfs") as pool:
        root = pool.submit(kind_rootfs.node_rootfs, lay.cache)
        with step("binaries (host's Go builds, kubeadm, containerd, crictl, runc-wrapper)"):
            bins = build.build_all()
            kbins = kind_build.build_kind_binaries()
            build_runc_wrapper(lay_host())
        with step("docker daemon for kind"):
            ensure_dockerd(lay)
        with step("node root (debootstrap, made beside the builds)"):
            root.result()
    with step("images"):
        build_images(lay, catalogue(lay, bins, kbins))
    with step("node image"):
        build_node_image(lay, bins, kbins)
    log(f"kind is ready in {time.monotonic() - start:.1f}s{' (warm)' if warm else ''}; use it with:")
    print(env_text(lay))


def env_text(lay: Layout) -> str:
    return "\n".join([
        f"export DOCKER_HOST={docker_host(lay)}",
        "export KIND_EXPERIMENTAL_PROVIDER=docker",
        f"export KIND_NODE_IMAGE={NODE_IMAGE}",
        f'export PATH="{build.tools_dir()}:$PATH"',
        f"# kind create cluster --image {NODE_IMAGE}",
    ])


def _containers(lay: Layout) -> list[str]:
    if not procs.docker_ping(lay.docker_socket):
        return []
    return docker(lay, "ps", "-aq", capture=True, check=False).split()


def _shims(lay: Layout) -> list[int]:
    """dockerd's containerd, its shims and docker-proxy processes (they can outlive dockerd)."""
    return procs.pids_of(["containerd-shim-runc-v2", "containerd-shim", "docker-proxy", "containerd"],
                         f"{lay.run}/docker")


def our_mounts(lay: Layout) -> list[str]:
    return mounts_under([lay.state, lay.run, lay.docker_root])


def our_cgroups() -> list[Path]:
    """The cgroup trees of the daemon's containers (--cgroup-parent)."""
    return procs.cgroups_named(["pytest-vcluster-kind"])


_NET_IDS: set[str] | None = None  # networks `down` removed: their bridges must be gone


def lay_net_ids() -> set[str] | None:
    return _NET_IDS


def down(lay: Layout) -> None:
    global _NET_IDS
    with step("delete kind's containers and networks"):
        if procs.docker_ping(lay.docker_socket):
            ids = _containers(lay)
            if ids:
                docker(lay, "rm", "-f", "-v", *ids, check=False)
            nets = docker(lay, "network", "ls", "-q", "--filter", "type=custom", capture=True, check=False).split()
            _NET_IDS = {n[:12] for n in nets}
            for n in nets:
                docker(lay, "network", "rm", n, check=False)
            docker(lay, "volume", "prune", "-f", check=False)
    with step("stop kind's dockerd"):
        pid = _pid(lay)
        if pid:
            procs.stop_pid(pid, 30)
        for p in _shims(lay):
            procs.stop_pid(p, 5)
    with step("remove mounts, cgroups, state"):
        unmount_all(our_mounts(lay))
        procs.remove_cgroups(our_cgroups())
        for d in (lay.state, lay.run):
            shutil.rmtree(d, ignore_errors=True)
    left = leaks(lay)
    if left:
        raise HostError("down left things behind:\n  " + "\n  ".join(left))


def leaks(lay: Layout) -> list[str]:
    out = []
    pid = _pid(lay)
    if pid:
        out.append(f"dockerd pid {pid}")
    out += [f"process {p}" for p in _shims(lay)]
    out += [f"mount {m}" for m in our_mounts(lay)]
    out += [f"cgroup {c}" for c in our_cgroups()]
    ids = lay_net_ids()
    if ids:
        out += [f"network device br-{i}" for i in ids if Path(f"/sys/class/net/br-{i}").exists()]
    for tool in ("iptables-save", "ip6tables-save"):
        text = run([tool], capture=True, check=False)
        out += [f"{tool}: {line}" for line in text.splitlines() if "DOCKER" in line]
    out += [f"directory {d}" for d in (lay.state, lay.run) if d.exists()]
    return out


def status(lay: Layout) -> int:
    pid = _pid(lay)
    alive = bool(pid) and procs.docker_ping(lay.docker_socket)
    print(f"dockerd      {'running  pid ' + str(pid) if alive else 'stopped'}  ({docker_host(lay)})")
    if not alive:
        print("unhealthy: kind's docker daemon is not running (hack/kind up)")
        return 1
    node = image_id(lay, NODE_IMAGE)
    print(f"node image   {NODE_IMAGE} {node[7:19] if node else 'MISSING'}")
    env = docker_env(lay)
    clusters = subprocess.run([str(kind_binary()), "get", "clusters"], env=env, capture_output=True, text=True)
    print(f"clusters     {' '.join(clusters.stdout.split()) or '(none)'}")
    return 0 if node else 1
