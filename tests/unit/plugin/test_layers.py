"""The plugin package is two layers with arrows pointing only down, and no import cycle.

``pytest_vcluster/core/`` is the pytest-free core (host, clusters, waiting, values, images...);
``pytest_vcluster/plugin/`` is the thin pytest layer (hooks, fixtures, options, the manager's bookkeeping,
report). Above both: the package's facade (``pytest_vcluster/__init__.py``, the public names) and
``python -m pytest_vcluster``. Every import is counted, also those inside functions and under
``TYPE_CHECKING``: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_vcluster

PACKAGE = Path(pytest_vcluster.__file__).resolve().parent
#: what the core must never import: pytest and its plugins
PYTEST_MODULES = ("pytest", "_pytest", "pluggy", "xdist")


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(root, path): path for path in sorted(root.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every module ``name`` imports (absolute names; ``from P import m`` is module ``P.m`` when that is one)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in known else target


def graph(root: Path) -> dict[str, set[str]]:
    found = modules(root)
    known = set(found)
    return {name: set(imports(name, path, known)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles among the package's modules (strongly connected components of two or more, or a
    module importing itself), by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in edges:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> int:
    """0: the core; 1: the pytest layer; 2: the facade and ``__main__``."""
    parts = module.split(".")
    return {"core": 0, "plugin": 1}.get(parts[1], 2) if len(parts) > 1 else 2


def violations(root: Path) -> list[str]:
    """Every import cycle, every import pointing up a layer, and every import of pytest by a core module."""
    edges = graph(root)
    problems = [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    if not (root / "core").is_dir() or not (root / "plugin").is_dir():
        problems.append(f"{root} has no core/ and plugin/ layers")
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            if target in edges and layer(target) > layer(source):
                problems.append(f"{source} imports {target}, a layer above it")
            if layer(source) == 0 and target.split(".")[0] in PYTEST_MODULES:
                problems.append(f"core module {source} imports {target}")
    return problems


def test_two_layers_no_cycle() -> None:
    assert violations(PACKAGE) == []


def test_the_check_sees_the_arrows_of_the_package() -> None:
    """The walk finds the imports it must judge (an empty graph would pass anything)."""
    edges = graph(PACKAGE)
    assert "pytest_vcluster.core.host" in edges["pytest_vcluster.core.vcluster"]
    assert "pytest_vcluster.core.settings" in edges["pytest_vcluster.core.host"]  # a ``from .settings import``
    assert "pytest_vcluster.core.labels" in edges["pytest_vcluster.core.pool"]  # a ``from . import labels``
    assert "pytest_vcluster.core.snapshot" in edges["pytest_vcluster.core.values"]  # an import inside a function
    assert "pytest" in edges["pytest_vcluster.plugin"]


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"core/a.py": "from . import b\n", "core/b.py": "def f():\n    from .a import x\n"},
         "import cycle: pkg.core.a -> pkg.core.b"),
        ({"core/a.py": "from ..plugin import hooks\n", "plugin/hooks.py": ""},
         "pkg.core.a imports pkg.plugin.hooks, a layer above it"),
        ({"core/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pytest\n"},
         "core module pkg.core.a imports pytest"),
        ({"plugin/m.py": "from .. import __version__\n"}, "pkg.plugin.m imports pkg, a layer above it"),
    ],
)
def test_the_check_fails_on_a_cycle_an_upward_arrow_and_pytest_in_the_core(
    tmp_path: Path, files: dict[str, str], problem: str
) -> None:
    root = tmp_path / "pkg"
    for relative in ("__init__.py", "core/__init__.py", "plugin/__init__.py", *files):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(files.get(relative, ""))
    assert problem in violations(root)
