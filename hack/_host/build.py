"""Builds the host's binaries from the Go module proxy, cached outside the clone.

Most of these modules carry ``replace`` directives (Kubernetes points every
staging module at ``./staging``; etcd's server points at sibling folders), so
``go install mod@version`` refuses them.  Each one is built through a small
wrapper module that requires it and re-expresses its replaces with published
versions: a relative replace becomes the published module at the version the
release ships (for Kubernetes staging modules ``v0.<minor>.<patch>``), a
replace onto another module version is copied as is.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import versions
from ._util import cache_dir, run, step


@dataclass(frozen=True)
class GoBuild:
    """One module at one version, and the main packages to build from it."""

    name: str
    module: str
    version: str
    packages: tuple[str, ...]
    ldflags: str = ""
    # Version given to relative replaces whose required version is v0.0.0
    # (Kubernetes' staging modules); None drops such replaces.
    staging_version: str | None = None
    tags: tuple[str, ...] = field(default=())
    # Build the packages' test binaries (`go test -c`, one `<last element>.test` each) instead of
    # their commands: Kubernetes' conformance suite is the test binary of k8s.io/kubernetes/test/e2e.
    test_package: bool = False
    # (module path, version) pairs that replace the version the wrapper's replace would otherwise
    # name (the module proxy refuses some published staging versions).
    module_versions: tuple[tuple[str, str], ...] = field(default=())

    def key(self) -> str:
        parts: list[object] = [self.module, self.version, self.packages, self.ldflags, self.tags]
        # Only when set, so the builds that predate these fields keep their cache folder.
        if self.test_package:
            parts.append({"test_package": True})
        if self.module_versions:
            parts.append({"module_versions": [list(mv) for mv in self.module_versions]})
        text = json.dumps(parts)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOFLAGS", "")
    # -dwarf=false: the compiler skips the debug info that the linker's -w drops anyway, the same
    # binaries in about 0.88 x the time (helm: 74 s against 85, docs/speed.md).
    env["GOFLAGS"] = (env["GOFLAGS"] + " -mod=mod -gcflags=all=-dwarf=false").strip()
    # The module proxy is the only source reachable here; never try VCS.
    env.setdefault("GOPROXY", "https://proxy.golang.org")
    env["GOTOOLCHAIN"] = "local"
    return env


_REPLACE_LINE = re.compile(r"^\s*(?:replace\s+)?(\S+)(?:\s+(v\S+))?\s+=>\s+(\S+)(?:\s+(v\S+))?\s*$")


def parse_replaces(gomod: str) -> list[tuple[str, str | None, str, str | None]]:
    """Returns (old path, old version, new path, new version) of each replace."""
    out = []
    in_block = False
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].rstrip()
        if not line.strip():
            continue
        if in_block:
            if line.strip() == ")":
                in_block = False
                continue
            m = _REPLACE_LINE.match(line)
            if m:
                out.append((m.group(1), m.group(2), m.group(3), m.group(4)))
            continue
        if re.match(r"^replace\s*\($", line.strip()):
            in_block = True
            continue
        if line.startswith("replace "):
            m = _REPLACE_LINE.match(line)
            if m:
                out.append((m.group(1), m.group(2), m.group(3), m.group(4)))
    return out


def parse_requires(gomod: str) -> dict[str, str]:
    reqs: dict[str, str] = {}
    in_block = False
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
            elif line:
                parts = line.split()
                reqs[parts[0]] = parts[1]
            continue
        if line == "require (":
            in_block = True
        elif line.startswith("require "):
            parts = line.split()
            reqs[parts[1]] = parts[2]
    return reqs


def wrapper_gomod(build: GoBuild, upstream_gomod: str) -> str:
    """The go.mod of the wrapper module for ``build``."""
    requires = parse_requires(upstream_gomod)
    go_line = re.search(r"^go\s+(\S+)", upstream_gomod, re.M)
    godebug = re.search(r"^godebug\s+(.+)$", upstream_gomod, re.M)
    lines = [f"module pytest-vcluster.local/build/{build.name}", ""]
    lines.append(f"go {go_line.group(1) if go_line else '1.22'}")
    if godebug:
        # A dependency's godebug line is ignored; the main module must say it
        # for the binary to behave as upstream built it.
        lines.append(f"godebug {godebug.group(1)}")
    lines += ["", f"require {build.module} {build.version}", "", "replace ("]
    overrides = dict(build.module_versions)
    for old, old_v, new, new_v in parse_replaces(upstream_gomod):
        if new.startswith("."):
            if requires.get(old, "v0.0.0") == "v0.0.0" and build.staging_version:
                lines.append(f"\t{old} => {old} {overrides.pop(old, build.staging_version)}")
            # Otherwise the require line already names a published version.
            continue
        left = f"{old} {old_v}" if old_v else old
        lines.append(f"\t{left} => {new} {overrides.pop(old, new_v)}")
    for old, version in sorted(overrides.items()):
        lines.append(f"\t{old} => {old} {version}")
    lines.append(")")
    return "\n".join(lines) + "\n"


def go_build(build: GoBuild) -> Path:
    """Builds ``build`` unless cached; returns the folder holding its binaries.

    One build of a target at a time (hack/host and hack/kind may run at once): a file lock, then
    the cache is checked again.
    """
    out = cache_dir() / "bin" / f"{build.name}-{build.version}-{build.key()}"
    stamp = out / ".complete"
    if stamp.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return out
        return _go_build_locked(build, out, stamp)


def _go_build_locked(build: GoBuild, out: Path, stamp: Path) -> Path:
    env = _go_env()
    # Per version: builds of one name at two versions (two minors' etcd) may run at once.
    work = cache_dir() / "gowork" / f"{build.name}-{build.version}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    info = json.loads(
        run(["go", "mod", "download", "-json", f"{build.module}@{build.version}"], env=env, cwd=work, capture=True)
    )
    upstream = Path(info["GoMod"]).read_text()
    release_time = json.loads(Path(info["Info"]).read_text()).get("Time", "1970-01-01T00:00:00Z")
    (work / "go.mod").write_text(wrapper_gomod(build, upstream))
    (work / "main.go").write_text("package main\n\nfunc main() {}\n")
    tmp_out = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp_out, ignore_errors=True)
    tmp_out.mkdir(parents=True)
    if build.test_package:
        # `go test -c` takes one package per -o file.
        for pkg in build.packages:
            cmd = ["go", "test", "-c", "-trimpath", "-o", str(tmp_out / (pkg.rsplit("/", 1)[-1] + ".test"))]
            cmd += _flag_args(build, release_time) + [pkg]
            run(cmd, env=env, cwd=work)
    else:
        cmd = ["go", "build", "-trimpath", "-o", str(tmp_out) + "/"] + _flag_args(build, release_time)
        cmd += list(build.packages)
        run(cmd, env=env, cwd=work)
    shutil.rmtree(out, ignore_errors=True)
    tmp_out.rename(out)
    stamp.write_text(build.version + "\n")
    return out


def _flag_args(build: GoBuild, release_time: str) -> list[str]:
    cmd: list[str] = []
    if build.ldflags:
        cmd += ["-ldflags", build.ldflags.replace("{release_time}", release_time)]
    if build.tags:
        cmd += ["-tags", ",".join(build.tags)]
    return cmd


def _kube_ldflags(v: str = versions.KUBERNETES) -> str:
    major, minor = v.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={v}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitCommit=module-{v}",
            f"-X {pkg}.gitTreeState=clean",
            # go_build fills in the release time the module proxy reports.
            f"-X {pkg}.buildDate={{release_time}}",
        ]
    return "-s -w " + " ".join(flags)


KUBE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")


def builds() -> list[GoBuild]:
    return [
        GoBuild(
            name="kubernetes",
            module="k8s.io/kubernetes",
            version=versions.KUBERNETES,
            packages=tuple(f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMPONENTS),
            ldflags=_kube_ldflags(),
            staging_version=versions.KUBERNETES_STAGING,
        ),
        GoBuild(
            name="etcd",
            module="go.etcd.io/etcd/server/v3",
            version=versions.ETCD,
            packages=("go.etcd.io/etcd/server/v3",),
            ldflags="-s -w",
        ),
        GoBuild(
            name="coredns",
            module="github.com/coredns/coredns",
            version=versions.COREDNS,
            packages=("github.com/coredns/coredns",),
            ldflags="-s -w",
        ),
        GoBuild(
            name="helm",
            module="helm.sh/helm/v3",
            version=versions.HELM,
            packages=("helm.sh/helm/v3/cmd/helm",),
            # As helm's Makefile does: the default Kubernetes version of
            # `helm template`/`lint` is the client-go it was built with (1.34).
            ldflags=f"-s -w -X helm.sh/helm/v3/internal/version.version={versions.HELM}"
            " -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
            + "".join(f" -X helm.sh/helm/v3/pkg/{pkg}.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/{pkg}.k8sVersionMinor=34"
                      for pkg in ("chartutil", "lint/rules")),
        ),
        GoBuild(
            name="local-path-provisioner",
            module="github.com/rancher/local-path-provisioner",
            version=versions.LOCAL_PATH_PROVISIONER,
            packages=("github.com/rancher/local-path-provisioner",),
            ldflags="-s -w",
        ),
        GoBuild(
            name="kube-router",
            module="github.com/cloudnativelabs/kube-router/v2",
            version=versions.KUBE_ROUTER,
            packages=("github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",),
            ldflags=f"-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version={versions.KUBE_ROUTER}",
        ),
        GoBuild(
            name="kind",
            module="sigs.k8s.io/kind",
            version=versions.KIND,
            packages=("sigs.k8s.io/kind",),
            ldflags="-s -w",
        ),
    ]


def control_plane_builds(plane: versions.ControlPlane) -> list[GoBuild]:
    """The Go builds behind one minor's images: kube-apiserver and kube-controller-manager, and its etcd.

    The host's own version has them in builds() already (``kubernetes`` and ``etcd``): those are reused.
    """
    out = []
    if plane.kubernetes != versions.KUBERNETES:
        out.append(GoBuild(
            name="kubernetes-cp",
            module="k8s.io/kubernetes",
            version=plane.kubernetes,
            packages=tuple(f"k8s.io/kubernetes/cmd/{c}" for c in ("kube-apiserver", "kube-controller-manager")),
            ldflags=_kube_ldflags(plane.kubernetes),
            staging_version=plane.staging,
        ))
    if plane.etcd != versions.ETCD:
        out.append(GoBuild(
            name="etcd",
            module="go.etcd.io/etcd/server/v3",
            version=plane.etcd,
            packages=("go.etcd.io/etcd/server/v3",),
            ldflags="-s -w",
        ))
    return out


def build_control_plane(plane: versions.ControlPlane) -> dict[str, Path]:
    """kube-apiserver, kube-controller-manager and etcd of ``plane`` (built unless cached): name -> binary."""
    paths = build_all() if plane.kubernetes == versions.KUBERNETES or plane.etcd == versions.ETCD else {}
    paths = {k: v for k, v in paths.items() if k in ("kube-apiserver", "kube-controller-manager", "etcd")}
    paths.update(_build_each(control_plane_builds(plane)))
    if "server" in paths:
        paths["etcd"] = paths.pop("server")
    return paths


def control_plane_cached(plane: versions.ControlPlane) -> bool:
    return all(cached(b) for b in control_plane_builds(plane))


def conformance_builds(suite: versions.Suite | None = None) -> list[GoBuild]:
    """Kubernetes' end-to-end suite (e2e.test) of ``suite`` (default: the host's own version's) and the ginkgo
    CLI that runs it in parallel, at the version that release's go.mod requires (the CLI and the library must
    agree).

    Not part of builds(): only hack/conformance needs them (a cold e2e.test build is long). The suite of a
    virtual control plane's minor (1.37) is built in the same wrapper module as that minor's kube-apiserver
    (control_plane_builds): same dependency versions and flags, so Go's build cache shares their packages.
    Such a suite also gets the kubectl of its version (the host's is v1.33.13: kubectl supports one minor of
    skew, and the kubectl specs run it against the suite's API server).
    """
    suite = suite or versions.SUITES[versions.HOST_MINOR]
    kubectl = [] if suite.kubernetes == versions.KUBERNETES else [GoBuild(
        name="kubectl",
        module="k8s.io/kubernetes",
        version=suite.kubernetes,
        packages=("k8s.io/kubernetes/cmd/kubectl",),
        ldflags=_kube_ldflags(suite.kubernetes),
        staging_version=suite.staging,
    )]
    return [
        GoBuild(
            name="e2e",
            module="k8s.io/kubernetes",
            version=suite.kubernetes,
            packages=("k8s.io/kubernetes/test/e2e",),
            ldflags=_kube_ldflags(suite.kubernetes),
            staging_version=suite.staging,
            test_package=True,
            # The proxy refuses k8s.io/sample-apiserver v0.33.10-v0.33.13; v0.33.0 has the aggregator spec's types.
            module_versions=(("k8s.io/sample-apiserver", suite.sample_apiserver),) if suite.sample_apiserver else (),
        ),
        GoBuild(
            name="ginkgo",
            module="github.com/onsi/ginkgo/v2",
            version=suite.ginkgo,
            packages=("github.com/onsi/ginkgo/v2/ginkgo",),
            ldflags="-s -w",
        ),
        *kubectl,
    ]


def build_conformance(suite: versions.Suite | None = None) -> dict[str, Path]:
    """Builds (or finds cached) e2e.test and ginkgo of ``suite``; returns name -> binary path."""
    return _build_each(conformance_builds(suite))


def cached(build: GoBuild) -> bool:
    return (cache_dir() / "bin" / f"{build.name}-{build.version}-{build.key()}" / ".complete").exists()


def _build_each(todo: list[GoBuild]) -> dict[str, Path]:
    """Builds (or finds cached) each build, with a timed step for those not cached; name -> binary."""
    paths: dict[str, Path] = {}
    for b in todo:
        if cached(b):
            folder = go_build(b)
        else:
            with step(f"build {b.name} {b.version}"):
                folder = go_build(b)
        for f in folder.iterdir():
            if f.is_file() and os.access(f, os.X_OK):
                paths[f.name] = f
    return paths


def build_all() -> dict[str, Path]:
    """Builds (or finds cached) every binary; returns name -> binary path."""
    paths = _build_each(builds())
    # go build names a binary after its package's last element: etcd's is "server".
    if "server" in paths:
        paths["etcd"] = paths.pop("server")
    link_tools(paths)
    return paths


TOOLS = ("helm", "kubectl", "kind")


def tools_dir() -> Path:
    """A folder for PATH with the client tools tests use (helm, kubectl, kind)."""
    return cache_dir() / "tools"


def link_tools(paths: dict[str, Path]) -> None:
    d = tools_dir()
    d.mkdir(parents=True, exist_ok=True)
    for name in TOOLS:
        link = d / name
        if link.is_symlink() and os.readlink(link) == str(paths[name]):
            continue
        tmp = d / f".{name}.{os.getpid()}.tmp"  # per process: hack/host and hack/kind may link at once
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(paths[name])
        os.replace(tmp, link)


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    for k, v in sorted((build_conformance() if sys.argv[1:] == ["conformance"] else build_all()).items()):
        print(k, v)
