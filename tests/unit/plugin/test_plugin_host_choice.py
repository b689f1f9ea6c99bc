"""A host choice that is never a surprise: ``--vcluster-host=auto`` is the host kubeconfig given
(``--vcluster-host-kubeconfig`` / ``VCLUSTER_HOST_KUBECONFIG`` / ini ``vcluster_host_kubeconfig``), else kind;
``$KUBECONFIG`` and ``~/.kube/config`` are never used implicitly. Without either, the first test using a cluster
fails with one message naming what is missing, and nothing is created on the cluster ``$KUBECONFIG`` names.
The session header names the host: the kind cluster, or the kubeconfig with its context and server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from pytest_vcluster.core import host as _hostprovider
from pytest_vcluster.core.errors import HostError
from pytest_vcluster.core.settings import Settings
from pytest_vcluster.plugin import report as _report

if TYPE_CHECKING:
    from conftest import FakeAPIServer

pytestmark = pytest.mark.usefixtures("clean_vcluster_env")

REFUSED = "https://127.0.0.1:1"  # nothing listens on port 1: any use of the kubeconfig is a connection error

NO_KIND_NOR_DOCKER = (
    "no host cluster: --vcluster-host=auto uses --vcluster-host-kubeconfig (or VCLUSTER_HOST_KUBECONFIG, ini "
    "vcluster_host_kubeconfig) when given, else a kind cluster, but no kubeconfig was given and kind cannot run "
    "here: `kind` is not on PATH (install it: https://kind.sigs.k8s.io/docs/user/quick-start/#installation); "
    "`docker` is not on PATH (kind's nodes are Docker containers; install Docker: "
    "https://docs.docker.com/engine/install/). Install what is missing, or pass --vcluster-host-kubeconfig=PATH "
    "to use an existing cluster."
)
NO_DOCKER = (
    "no host cluster: --vcluster-host=auto uses --vcluster-host-kubeconfig (or VCLUSTER_HOST_KUBECONFIG, ini "
    "vcluster_host_kubeconfig) when given, else a kind cluster, but no kubeconfig was given and kind cannot run "
    "here: `docker` is not on PATH (kind's nodes are Docker containers; install Docker: "
    "https://docs.docker.com/engine/install/). Install what is missing, or pass --vcluster-host-kubeconfig=PATH "
    "to use an existing cluster."
)


def use_kubeconfig_env(path: Path | str) -> str:
    return f' $KUBECONFIG ({path}) is not used implicitly: pass --vcluster-host-kubeconfig="$KUBECONFIG" to use it.'


def write_kubeconfig(path: Path, server: str = REFUSED, *, current: str = "h", other_server: str = "") -> Path:
    """A syntactically valid kubeconfig: context ``current`` at ``server`` (and context ``other`` at
    ``other_server`` when given)."""
    contexts = [(current, server)] + ([("other", other_server)] if other_server else [])
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": name, "cluster": {"server": url, "insecure-skip-tls-verify": True}}
                     for name, url in contexts],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "u"}} for name, _ in contexts],
    }))
    return path


def tools(folder: Path, *names: str) -> str:
    """A PATH holding only stand-ins of ``names`` (exit 0 when run): every other tool is missing."""
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\nexit 0\n")
        (folder / name).chmod(0o755)
    return str(folder)


def which(*present: str) -> Callable[[str], str | None]:
    return lambda name: f"/usr/bin/{name}" if name in present else None


# ----------------------------------------------------------------------------- the choice (no pytest run)


@pytest.mark.parametrize(("present", "env", "missing"), [
    (("kind", "docker"), {}, []),
    (("kind", "podman"), {}, []),  # kind finds podman or nerdctl by itself when there is no docker
    (("kind", "nerdctl"), {}, []),
    (("kind",), {}, ["docker"]),
    (("docker",), {}, ["kind"]),
    ((), {}, ["kind", "docker"]),
    (("kind", "docker"), {"KIND_EXPERIMENTAL_PROVIDER": "podman"}, ["podman"]),
    (("kind", "podman"), {"KIND_EXPERIMENTAL_PROVIDER": "podman"}, []),
])
def test_kind_missing(monkeypatch: pytest.MonkeyPatch, present: tuple[str, ...], env: dict[str, str],
                      missing: list[str]) -> None:
    monkeypatch.setattr(_hostprovider.shutil, "which", which(*present))
    assert _hostprovider.kind_missing(env) == missing


def test_kubeconfig_env_hint() -> None:
    assert _hostprovider.kubeconfig_env_hint({}) == ""
    assert _hostprovider.kubeconfig_env_hint({"KUBECONFIG": ""}) == ""
    assert _hostprovider.kubeconfig_env_hint({"KUBECONFIG": "/home/me/.kube/config"}) == (
        ' $KUBECONFIG (/home/me/.kube/config) is not used implicitly: pass --vcluster-host-kubeconfig="$KUBECONFIG" '
        "to use it.")
    assert _hostprovider.kubeconfig_env_hint({"KUBECONFIG": "/a:/b"}) == (
        " $KUBECONFIG (/a:/b) is not used implicitly: pass --vcluster-host-kubeconfig=FILE with one of its files "
        "to use it.")


def test_no_host_message() -> None:
    assert _hostprovider.no_host_message(["kind", "docker"], {}) == NO_KIND_NOR_DOCKER
    assert _hostprovider.no_host_message(["docker"], {}) == NO_DOCKER
    assert _hostprovider.no_host_message(["kind"], {"KUBECONFIG": "/k"}) == (
        "no host cluster: --vcluster-host=auto uses --vcluster-host-kubeconfig (or VCLUSTER_HOST_KUBECONFIG, ini "
        "vcluster_host_kubeconfig) when given, else a kind cluster, but no kubeconfig was given and kind cannot run "
        "here: `kind` is not on PATH (install it: https://kind.sigs.k8s.io/docs/user/quick-start/#installation). "
        "Install what is missing, or pass --vcluster-host-kubeconfig=PATH to use an existing cluster."
        + use_kubeconfig_env("/k"))
    assert _hostprovider.no_host_message(["podman"], {"KIND_EXPERIMENTAL_PROVIDER": "podman"}) == (
        "no host cluster: --vcluster-host=auto uses --vcluster-host-kubeconfig (or VCLUSTER_HOST_KUBECONFIG, ini "
        "vcluster_host_kubeconfig) when given, else a kind cluster, but no kubeconfig was given and kind cannot run "
        "here: `podman` is not on PATH (KIND_EXPERIMENTAL_PROVIDER=podman names it as kind's container runtime). "
        "Install what is missing, or pass --vcluster-host-kubeconfig=PATH to use an existing cluster.")


def test_auto_is_the_given_kubeconfig_else_kind_never_kubeconfig_env(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    kc = write_kubeconfig(tmp_path / "kc")
    env = {"KUBECONFIG": str(kc)}
    monkeypatch.setattr(_hostprovider.shutil, "which", which())
    assert _hostprovider.choose_provider(Settings(host_kubeconfig=kc), env) == "kubeconfig"
    assert _hostprovider.choose_provider(Settings(host="kubeconfig", host_kubeconfig=kc), env) == "kubeconfig"
    with pytest.raises(HostError) as info:
        _hostprovider.choose_provider(Settings(), env)
    assert str(info.value) == NO_KIND_NOR_DOCKER + use_kubeconfig_env(kc)
    monkeypatch.setattr(_hostprovider.shutil, "which", which("kind"))
    with pytest.raises(HostError) as info:
        _hostprovider.choose_provider(Settings(), {})
    assert str(info.value) == NO_DOCKER
    monkeypatch.setattr(_hostprovider.shutil, "which", which("kind", "docker"))
    assert _hostprovider.choose_provider(Settings(), env) == "kind"  # $KUBECONFIG set, still kind
    assert _hostprovider.choose_provider(Settings(host="kind"), env) == "kind"


def test_open_host_without_host_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The error comes before any kind state, Host or connection is made."""
    kc = write_kubeconfig(tmp_path / "kc")
    state = tmp_path / "state"
    monkeypatch.setattr(_hostprovider.shutil, "which", which())

    def no_host(*args: object, **kwargs: object) -> None:
        raise AssertionError("a host was opened")

    monkeypatch.setattr(_hostprovider, "Host", no_host)
    monkeypatch.setattr(_hostprovider, "ensure_kind", no_host)
    with pytest.raises(HostError) as info:
        _hostprovider.open_host(Settings(), state, {"KUBECONFIG": str(kc)})
    assert str(info.value) == NO_KIND_NOR_DOCKER + use_kubeconfig_env(kc)
    assert not state.exists()


def test_kubeconfig_host_never_takes_kubeconfig_env(tmp_path: Path) -> None:
    kc = write_kubeconfig(tmp_path / "kc")
    with pytest.raises(HostError) as info:
        _hostprovider.open_host(Settings(host="kubeconfig"), tmp_path, {"KUBECONFIG": str(kc)})
    assert str(info.value) == (
        "--vcluster-host=kubeconfig needs a kubeconfig: pass --vcluster-host-kubeconfig=PATH or set "
        "VCLUSTER_HOST_KUBECONFIG." + use_kubeconfig_env(kc))


# ----------------------------------------------------------------------------- the header (no pytest run)


def test_header_names_kubeconfig_context_and_server(tmp_path: Path) -> None:
    kc = write_kubeconfig(tmp_path / "kc", current="h", other_server="https://other.example:6443")
    assert _report.host_part(Settings(host_kubeconfig=kc), {}) == f"kubeconfig {kc} (context h, server {REFUSED})"
    assert _report.host_part(Settings(host="kubeconfig", host_kubeconfig=kc, host_context="other"), {}) == (
        f"kubeconfig {kc} (context other, server https://other.example:6443)")
    assert _report.host_part(Settings(host_kubeconfig=kc, host_context="nope"), {}) == (
        f"kubeconfig {kc} (context nope, server ?)")
    bad = tmp_path / "bad"
    bad.write_text("- not a kubeconfig\n")
    assert _report.host_part(Settings(host_kubeconfig=bad), {}) == f"kubeconfig {bad} (context ?, server ?)"
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 1.2.3\n")
    assert _report.header_line(Settings(host_kubeconfig=kc, chart=chart, timeout=33), {}) == (
        f"vcluster: host=auto, kubeconfig {kc} (context h, server {REFUSED}), chart {chart} version 1.2.3, "
        "timeout 33s")


def test_header_names_kind_cluster_or_no_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"KUBECONFIG": str(write_kubeconfig(tmp_path / "kc"))}
    monkeypatch.setattr(_hostprovider.shutil, "which", which("kind", "docker"))
    assert _report.host_part(Settings(), env) == "kind cluster pytest-vcluster"
    assert _report.host_part(Settings(host="kind", kind_cluster="mine"), env) == "kind cluster mine"
    assert _report.host_part(Settings(kind_config=Path("/c/kind.yaml")), env) == (
        "kind cluster pytest-vcluster (config /c/kind.yaml)")
    monkeypatch.setattr(_hostprovider.shutil, "which", which())
    assert _report.host_part(Settings(host="kind", kind_cluster="mine"), env) == "kind cluster mine"
    assert _report.host_part(Settings(), env) == (
        "no host: no host kubeconfig given, and kind cannot run (kind, docker not on PATH)")
    assert _report.host_part(Settings(host="kubeconfig"), env) == (
        "no host kubeconfig given (pass --vcluster-host-kubeconfig=PATH)")


# ----------------------------------------------------------------------------- as users meet it (pytester)


def test_kubeconfig_env_without_kind_fails_with_one_message(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Only ``$KUBECONFIG`` (at a server where nothing listens) and no kind: the message, no connection attempt."""
    kc = write_kubeconfig(pytester.path / "kc")
    monkeypatch.setenv("KUBECONFIG", str(kc))
    monkeypatch.setenv("PATH", tools(pytester.path / "bin"))
    for var in ("CI", "BUILD_NUMBER"):  # pytest prints the short summary's messages whole under CI: counted below
        monkeypatch.delenv(var, raising=False)
    pytester.makepyfile("def test_a(vcluster): pass\ndef test_b(vcluster_host): pass\ndef test_c(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines([
        "vcluster: host=auto, no host: no host kubeconfig given, and kind cannot run (kind, docker not on PATH), "
        "chart *, timeout 180s",
        NO_KIND_NOR_DOCKER + use_kubeconfig_env(kc),
    ])
    assert result.stdout.str().count(NO_KIND_NOR_DOCKER) == 2  # test_a and test_b: the same one message
    for unwanted in ("*127.0.0.1:1*", "*onnection refused*", "*cannot reach*", "*Traceback*"):
        result.stdout.no_fnmatch_line(unwanted)


def test_kubeconfig_env_is_never_contacted(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                           fake_apiserver: FakeAPIServer) -> None:
    """``$KUBECONFIG`` at a live (fake) API server, kind present but docker missing: not one request reaches it."""
    kc = fake_apiserver.kubeconfig(pytester.path / "kc")
    monkeypatch.setenv("KUBECONFIG", str(kc))
    monkeypatch.setenv("PATH", tools(pytester.path / "bin", "kind"))
    pytester.makepyfile("def test_a(vcluster): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([NO_DOCKER + use_kubeconfig_env(kc)])
    assert fake_apiserver.requests == []


def test_header_names_the_kubeconfig_host(pytester: pytest.Pytester) -> None:
    kc = write_kubeconfig(pytester.path / "host.kubeconfig", current="h", other_server="https://other.example:6443")
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--vcluster-host-kubeconfig={kc}")
    result.stdout.fnmatch_lines([f"vcluster: host=auto, kubeconfig {kc} (context h, server {REFUSED}), chart *, "
                                 "timeout 180s"])
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--vcluster-host=kubeconfig",
                                           f"--vcluster-host-kubeconfig={kc}", "--vcluster-host-context=other")
    result.stdout.fnmatch_lines([f"vcluster: host=kubeconfig, kubeconfig {kc} (context other, server "
                                 "https://other.example:6443), chart *, timeout 180s"])
    result.assert_outcomes(passed=1)


def test_header_names_the_kind_cluster(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """kind and docker on PATH: ``auto`` is kind even with ``$KUBECONFIG`` set, and the header says so."""
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(pytester.path / "kc")))
    monkeypatch.setenv("PATH", tools(pytester.path / "bin", "kind", "docker"))
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["vcluster: host=auto, kind cluster pytest-vcluster, chart *, timeout 180s"])
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--vcluster-host=kind",
                                           "--vcluster-kind-cluster=mine")
    result.stdout.fnmatch_lines(["vcluster: host=kind, kind cluster mine, chart *, timeout 180s"])
    result.assert_outcomes(passed=1)
