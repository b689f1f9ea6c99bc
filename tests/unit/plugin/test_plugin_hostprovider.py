"""Host provider pieces that need no cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from pytest_vcluster.core import host as _hostprovider
from pytest_vcluster.core.errors import HostError, MissingToolError
from pytest_vcluster.core.host import Host, parse_service_cidr
from pytest_vcluster.core.settings import Settings

REAL_MESSAGE = (
    '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Service '
    '\\"pytest-vcluster-cidr-probe-x\\" is invalid: spec.clusterIPs: Invalid value: []string{\\"1.1.1.1\\"}: '
    'failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. '
    'The range of valid IPs is 10.96.0.0/12","reason":"Invalid","code":422}'
)


@pytest.mark.parametrize(
    ("message", "cidr"),
    [
        (REAL_MESSAGE, "10.96.0.0/12"),
        ("The range of valid IPs is 172.20.0.0/16", "172.20.0.0/16"),
        ("The range of valid IPs is fd00:10:96::/112,10.100.0.0/16", "10.100.0.0/16"),
        ("The range of valid IPs is fd00:10:96::/112", "fd00:10:96::/112"),
        ("something else entirely", None),
        ("", None),
    ],
)
def test_parse_service_cidr(message: str, cidr: str | None) -> None:
    assert parse_service_cidr(message) == cidr


def kubeconfig(tmp_path: Path, server: str = "https://127.0.0.1:1", context: str = "h") -> Path:
    path = tmp_path / "host.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "h", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "h", "user": {"token": "t"}}],
        "contexts": [{"name": context, "context": {"cluster": "h", "user": "h"}}],
    }))
    return path


def test_choose_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto``: the host kubeconfig given, else kind; ``$KUBECONFIG`` is never used implicitly
    (more in test_plugin_host_choice.py)."""
    kc = kubeconfig(tmp_path)
    assert _hostprovider.choose_provider(Settings(host="kind"), {}) == "kind"
    assert _hostprovider.choose_provider(Settings(host_kubeconfig=kc), {}) == "kubeconfig"
    monkeypatch.setattr(_hostprovider.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert _hostprovider.choose_provider(Settings(), {"KUBECONFIG": str(kc)}) == "kind"
    monkeypatch.setattr(_hostprovider.shutil, "which", lambda name: None)
    with pytest.raises(HostError, match="no host cluster: --vcluster-host=auto uses --vcluster-host-kubeconfig"):
        _hostprovider.choose_provider(Settings(), {"KUBECONFIG": str(kc)})


def test_kind_missing_binary_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_hostprovider.shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError, match=r"needs the `kind` binary, which is not on PATH: install kind .* or use "
                                        r"--vcluster-host=kubeconfig"):
        _hostprovider.open_host(Settings(host="kind"), tmp_path, {})


def test_kubeconfig_mode_without_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="--vcluster-host=kubeconfig needs a kubeconfig"):
        _hostprovider.open_host(Settings(host="kubeconfig"), tmp_path, {})


def test_unreachable_host_names_server(tmp_path: Path) -> None:
    kc = kubeconfig(tmp_path, server="https://127.0.0.1:1")
    host = Host(kc)
    assert host.server == "https://127.0.0.1:1"
    with pytest.raises(HostError, match=r"cannot reach the host cluster's API server at https://127\.0\.0\.1:1 "):
        host.check_reachable(timeout=2)


def test_bad_kubeconfig_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("- not a mapping\n")
    with pytest.raises(HostError, match="cannot use host kubeconfig"):
        Host(bad)


def test_load_image_without_loader_is_clear_error(tmp_path: Path) -> None:
    host = Host(kubeconfig(tmp_path))
    with pytest.raises(HostError, match=r"cannot load image 'img:1': .* --vcluster-image-loader"):
        host.load_image("img:1")


def test_load_image_with_loader_command(tmp_path: Path) -> None:
    out = tmp_path / "out"
    host = Host(kubeconfig(tmp_path), image_loader=f"sh -c 'echo \"$0 $KUBECONFIG\" > {out}'")
    host.load_image("img:1")
    assert out.read_text().strip() == f"img:1 {tmp_path / 'host.kubeconfig'}"


def test_load_image_failure_shows_stderr(tmp_path: Path) -> None:
    host = Host(kubeconfig(tmp_path), image_loader="sh -c 'echo boom >&2; exit 3'")
    with pytest.raises(HostError, match=r"failed \(exit 3\): boom"):
        host.load_image("img:1")


def test_kind_delete_only_when_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(_hostprovider.shutil, "which", lambda name: "/bin/kind")
    monkeypatch.setattr(_hostprovider, "_run", lambda cmd, **kw: calls.append(cmd) or "")
    settings = Settings(host="kind", kind_cluster="k")
    tmp_path.mkdir(exist_ok=True)
    assert _hostprovider.delete_kind_if_created(settings, tmp_path) is None
    assert calls == []
    _hostprovider.kind_marker(tmp_path, "k").write_text("1")
    _hostprovider.delete_kind_if_created(settings, tmp_path)
    assert calls == [["/bin/kind", "delete", "cluster", "--name", "k"]]
    assert not _hostprovider.kind_marker(tmp_path, "k").exists()


def test_kind_keep_hands_the_cluster_to_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(_hostprovider.shutil, "which", lambda name: "/bin/kind")
    monkeypatch.setattr(_hostprovider, "_run", lambda cmd, **kw: calls.append(cmd) or "")
    _hostprovider.kind_marker(tmp_path, "k").write_text("1")
    kept = Settings(host="kind", kind_cluster="k", kind_keep=True)
    assert _hostprovider.delete_kind_if_created(kept, tmp_path) is None
    # No later run deletes a cluster a run was asked to keep.
    _hostprovider.delete_kind_if_created(Settings(host="kind", kind_cluster="k"), tmp_path)
    assert calls == []


def _register(state: Path, run_id: str, pid: int) -> None:
    users = state / "k.users"
    users.mkdir(parents=True, exist_ok=True)
    (users / run_id).write_text(str(pid))


def test_kind_cluster_deleted_by_its_last_live_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    calls: list[list[str]] = []
    monkeypatch.setattr(_hostprovider.shutil, "which", lambda name: "/bin/kind")
    monkeypatch.setattr(_hostprovider, "_run", lambda cmd, **kw: calls.append(cmd) or "")
    settings = Settings(host="kind", kind_cluster="k")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _hostprovider.kind_marker(tmp_path, "k").write_text(str(dead.pid))
    _register(tmp_path, "aaaaaa", os.getpid())  # a live concurrent run
    _register(tmp_path, "bbbbbb", os.getpid())  # this run
    _register(tmp_path, "cccccc", dead.pid)  # a killed run
    assert _hostprovider.delete_kind_if_created(settings, tmp_path, run_id="bbbbbb") is None
    assert calls == []  # aaaaaa still uses it
    assert sorted(p.name for p in (tmp_path / "k.users").iterdir()) == ["aaaaaa"]  # the dead run's entry is gone
    _hostprovider.delete_kind_if_created(settings, tmp_path, run_id="aaaaaa")
    assert calls == [["/bin/kind", "delete", "cluster", "--name", "k"]]


def test_kind_not_deleted_by_a_run_that_did_not_use_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(_hostprovider.shutil, "which", lambda name: "/bin/kind")
    monkeypatch.setattr(_hostprovider, "_run", lambda cmd, **kw: calls.append(cmd) or "")
    _hostprovider.kind_marker(tmp_path, "k").write_text("1")
    assert _hostprovider.delete_kind_if_created(Settings(kind_cluster="k"), tmp_path, run_id="dddddd") is None
    assert calls == []


def test_ensure_kind_creates_once_and_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    clusters: list[str] = []
    created: list[list[str]] = []
    kc_text = kubeconfig(tmp_path, context="kind-k").read_text()

    def fake_run(cmd: list[str], **kw: object) -> str:
        calls.append(cmd[1:3])
        if cmd[1:3] == ["get", "clusters"]:
            return "\n".join(clusters)
        if cmd[1:3] == ["create", "cluster"]:
            clusters.append("k")
            created.append(cmd)
        if cmd[1:3] == ["get", "kubeconfig"]:
            return kc_text
        return ""

    monkeypatch.setattr(_hostprovider.shutil, "which", lambda name: "/bin/kind")
    monkeypatch.setattr(_hostprovider, "_run", fake_run)
    monkeypatch.setattr(Host, "check_reachable", lambda self, timeout=15: "v1.33.0")
    shared = tmp_path / "shared"
    settings = Settings(host="kind", kind_cluster="k", kind_image="local/node:v1")
    host = _hostprovider.ensure_kind(settings, shared, run_id="aaaaaa", run_pid=4242)
    assert host.provider == "kind" and host.kind_cluster == "k"
    assert created == [["/bin/kind", "create", "cluster", "--name", "k", "--wait", "180s", "--image", "local/node:v1"]]
    assert _hostprovider.kind_marker(shared, "k").read_text() == "4242"
    assert (shared / "k.users" / "aaaaaa").read_text() == "4242"
    calls.clear()
    _hostprovider.ensure_kind(Settings(host="kind", kind_cluster="k"), shared, run_id="bbbbbb")
    assert ["create", "cluster"] not in calls
    assert sorted(p.name for p in (shared / "k.users").iterdir()) == ["aaaaaa", "bbbbbb"]


def test_ensure_kind_creates_from_the_kind_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--vcluster-kind-config goes to `kind create cluster --config FILE` (with --image, which kind applies to
    every node of the config); the progress line names it."""
    created: list[list[str]] = []
    kc_text = kubeconfig(tmp_path, context="kind-k").read_text()

    def fake_run(cmd: list[str], **kw: object) -> str:
        if cmd[1:3] == ["create", "cluster"]:
            created.append(cmd)
        return kc_text if cmd[1:3] == ["get", "kubeconfig"] else ""

    monkeypatch.setattr(_hostprovider.shutil, "which", lambda name: "/bin/kind")
    monkeypatch.setattr(_hostprovider, "_run", fake_run)
    monkeypatch.setattr(Host, "check_reachable", lambda self, timeout=15: "v1.33.0")
    config = tmp_path / "three-nodes.yaml"
    lines: list[str] = []
    settings = Settings(host="kind", kind_cluster="k", kind_image="local/node:v1", kind_config=config)
    _hostprovider.ensure_kind(settings, tmp_path / "shared", progress=lines.append)
    assert created == [["/bin/kind", "create", "cluster", "--name", "k", "--wait", "180s", "--image", "local/node:v1",
                        "--config", str(config)]]
    assert lines[0] == f"creating kind cluster k (node image local/node:v1, config {config})"
