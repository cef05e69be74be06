"""controllers/ imports run one way: no module imports back one that imports it (lazily or under
TYPE_CHECKING included), e.g. runstate never imports reconcile, plugin never imports kinds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
PKG = Path(__file__).resolve().parents[2] / "operator" / "synthloop" / "controllers"


def _imports(path: Path) -> set[str]:
    """Every ``synthloop.controllers.X`` module ``path`` imports, anywhere in the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "synthloop.controllers":
                out.update(a.name for a in node.names)
            elif node.module.startswith("synthloop.controllers."):
                out.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[2] for a in node.names if a.name.startswith("synthloop.controllers."))
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a path that ends where it starts; None when there is none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return [*stack[stack.index(n):], n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    return next((c for m in sorted(graph) if m not in state and (c := visit(m))), None)


def test_the_controllers_import_graph_has_no_cycle() -> None:
    graph = {p.stem: _imports(p) - {p.stem} for p in PKG.glob("*.py")}
    assert "reconcile" not in graph["runstate"] and "kinds" not in graph["plugin"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
