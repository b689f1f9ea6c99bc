"""The syncer's shape: no import cycle, parts see only a Context and name each other by class, the
entry point's arguments and the switches the chart sets."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from test_syncer_loop import World, vpod
from vcluster_syncer import __main__ as entry
from vcluster_syncer.config import ConfigError, load_config
from vcluster_syncer.context import UnknownPart
from vcluster_syncer.kube import PODS
from vcluster_syncer.parts import Events, NetworkPolicies, Nodes, Part, Pods, default_parts

PACKAGE = Path(__file__).resolve().parents[3] / "syncer" / "vcluster_syncer"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the vcluster_syncer modules it imports at import time (TYPE_CHECKING blocks included:
    a cycle hidden behind them is still a cycle of the design)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_import_graph_is_read() -> None:
    graph = import_graph()
    assert "vcluster_syncer.parts.pods" in graph["vcluster_syncer.parts"]
    assert "vcluster_syncer.context" in graph["vcluster_syncer.parts.base"]
    assert "vcluster_syncer.parts" not in graph["vcluster_syncer.syncer"]


def test_no_import_cycle() -> None:
    assert find_cycle(import_graph()) is None


def test_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("module", sorted(import_graph()))
def test_each_module_imports_alone(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=PACKAGE.parent,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_syncer_knows_no_part() -> None:
    source = (PACKAGE / "syncer.py").read_text()
    assert "nodes" not in source.lower()
    assert "parts import" not in source and "from .parts" not in source


def test_enqueueing_an_unknown_part_raises() -> None:
    w = World()
    with pytest.raises(UnknownPart, match="NetworkPolicies"):
        w.syncer.context.enqueue(NetworkPolicies, "team/x")
    with pytest.raises(UnknownPart):
        w.syncer.context.sync_now(NetworkPolicies, "team/x")

    class Stray(Part):
        name = "stray"

    with pytest.raises(UnknownPart):
        w.syncer.enqueue(Stray, "k")


def test_parts_are_keyed_by_class_and_hold_their_state() -> None:
    w = World()
    w.host.forbidden.add("nodes")
    w.virtual.create(PODS, vpod())
    w.sync()
    w.schedule("web-x-team-x-vc", "node1")
    w.sync()
    assert isinstance(w.syncer.parts[Pods], Pods)
    assert w.syncer.parts[Nodes].host_nodes_readable is False
    assert not hasattr(w.syncer, "host_nodes_readable")
    assert World().syncer.parts[Nodes].host_nodes_readable is None  # a new syncer asks again


def test_a_part_cannot_be_added_twice() -> None:
    w = World()
    with pytest.raises(ValueError, match="twice"):
        w.syncer.add_part(Pods())


def test_parts_only_see_the_context() -> None:
    """No part module imports the syncer module (they get a Context)."""
    graph = import_graph()
    for module, deps in graph.items():
        if module.startswith("vcluster_syncer.parts"):
            assert "vcluster_syncer.syncer" not in deps, module


# ------------------------------------------------------------------ switches and arguments

ENV = {"VCLUSTER_NAME": "vc", "HOST_NAMESPACE": "n", "VIRTUAL_SERVER": "https://127.0.0.1:6443",
       "VIRTUAL_TOKEN_FILE": "/t", "VIRTUAL_CA_FILE": "/c"}


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("true", True), ("false", False)])
def test_sync_events_switch(value: str | None, expected: bool) -> None:
    env = dict(ENV, **({"SYNC_EVENTS": value} if value is not None else {}))
    settings = load_config(env, check_files=False).settings("uid")
    assert settings.sync_events is expected
    assert any(isinstance(p, Events) for p in default_parts(settings)) is expected


@pytest.mark.parametrize(("value", "expected"), [(None, "INFO"), ("debug", "DEBUG"), ("WARNING", "WARNING"),
                                                 ("", "INFO")])
def test_log_level(value: str | None, expected: str) -> None:
    env = dict(ENV, **({"LOG_LEVEL": value} if value is not None else {}))
    assert load_config(env, check_files=False).log_level == expected


def test_log_level_invalid() -> None:
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load_config(dict(ENV, LOG_LEVEL="loud"), check_files=False)


def test_arguments() -> None:
    assert entry.parse_args([]).log_level is None
    assert entry.parse_args(["--log-level", "debug"]).log_level == "debug"
    assert entry.parse_args(["--log-level=WARNING"]).log_level == "WARNING"
    with pytest.raises(SystemExit):
        entry.parse_args(["--verbose"])


def test_entry_point_reports_a_bad_log_level(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    for name in ("t", "c"):
        (tmp_path / name).write_text("x")
    for key, value in dict(ENV, VIRTUAL_TOKEN_FILE=str(tmp_path / "t"), VIRTUAL_CA_FILE=str(tmp_path / "c")).items():
        monkeypatch.setenv(key, value)
    assert entry.main(["--log-level", "loud"]) == 2
    assert "--log-level must be one of DEBUG, INFO, WARNING, ERROR" in capsys.readouterr().err


def test_python_m_vcluster_syncer_starts() -> None:
    """The module runs: --help answers (it parses its arguments before anything else)."""
    proc = subprocess.run([sys.executable, "-m", "vcluster_syncer", "--help"], cwd=PACKAGE.parent,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--log-level" in proc.stdout
