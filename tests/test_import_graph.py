"""The package's imports form a DAG: no cycle between modules, none between packages.

Every import counts, a function-local or ``TYPE_CHECKING`` one included: a cycle hidden
behind a late import is still two rooms that cannot be read apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import prefect_scenario

ROOT = Path(prefect_scenario.__file__).parent
PACKAGE = "prefect_scenario"


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> Iterator[str]:
    """The package's modules that ``path`` imports (``from a.b import c`` names ``a.b.c`` if it is one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                yield name


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    return {
        name: {m for m in _imports(path, modules) if m != name and m != PACKAGE}
        for name, path in files.items()
        if name != PACKAGE  # the root re-exports the public names: it imports everything, nothing imports it
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends at the same node, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _room(module: str) -> str:
    """A module's package below the root (``prefect_scenario.spend``), or the module itself."""
    return ".".join(module.split(".")[:2])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_module_imports_itself_back() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_package_imports_itself_back() -> None:
    rooms: dict[str, set[str]] = {}
    for module, imported in _graph().items():
        rooms.setdefault(_room(module), set()).update(_room(m) for m in imported if _room(m) != _room(module))
    cycle = _cycle(rooms)
    assert cycle is None, "package cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("lower", ["prefect_scenario.spend", "prefect_scenario.dataset", "prefect_scenario.waiting"])
def test_lower_layers_never_import_training(lower: str) -> None:
    above = {"prefect_scenario.training", "prefect_scenario.retraining", "prefect_scenario.cli"}
    offenders = {
        (module, imported)
        for module, imports in _graph().items()
        if _room(module) == lower
        for imported in imports
        if _room(imported) in above
    }
    assert not offenders
