"""DESIGN.md's dependency direction, read from the source: ``api <- builders <- controllers``,
``api <- artifacts <- workers``, ``models <- workers``; api and builders never import kopf,
kubernetes or minio, workers never import kopf.

Every import counts, at module level or inside a function (a lazy import is still a
dependency) or under ``TYPE_CHECKING``; relative imports are resolved against the module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "synthloop"
THIRD_PARTY_CLUSTER = ("kopf", "kubernetes", "minio")
#: Per layer (a folder of the package): module prefixes its files must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "api": ("synthloop.builders", "synthloop.controllers", "synthloop.workers", "synthloop.artifacts",
            *THIRD_PARTY_CLUSTER),
    "builders": ("synthloop.controllers", "synthloop.workers", *THIRD_PARTY_CLUSTER),
    "models": ("synthloop.workers", "synthloop.controllers", "kopf"),
    "artifacts": ("synthloop.builders", "synthloop.controllers", "synthloop.workers", "kopf"),
    "workers": ("kopf", "synthloop.controllers", "synthloop.builders"),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, *, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import statement anywhere in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, up level - 1 more
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from synthloop import workers`` imports the subpackage (a name may be one)
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def violations(layer: str) -> list[str]:
    bad = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        module = _module_name(path)
        for line, name in imports_of(path.read_text(), module=module, is_package=path.name == "__init__.py"):
            for prefix in FORBIDDEN[layer]:
                if name == prefix or name.startswith(prefix + "."):
                    bad.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_follow_the_design(layer: str) -> None:
    assert (PACKAGE / layer).is_dir()
    assert violations(layer) == []


def test_the_checker_sees_lazy_relative_and_type_checking_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from synthloop.workers.errors import InvalidInput\n"
        "def f():\n    import kopf\n    from ..controllers import kube\n    from synthloop import workers\n"
    )
    got = imports_of(source, module="synthloop.builders.jobs")
    names = {n for _, n in got}
    assert {"synthloop.workers.errors", "kopf", "synthloop.controllers", "synthloop.workers"} <= names
    assert ("synthloop.api.v1alpha1" in {n for _, n in imports_of(
        "from . import v1alpha1\n", module="synthloop.api", is_package=True)})


def test_the_exit_code_contract_lives_outside_workers() -> None:
    """Builders and controllers read the workers' exit code and termination path from
    ``synthloop.exitcodes``; ``workers.errors`` re-exports the same objects."""
    from synthloop import exitcodes
    from synthloop.workers import errors

    assert errors.EXIT_INVALID_INPUT == exitcodes.EXIT_INVALID_INPUT == 78
    assert errors.DEFAULT_TERMINATION_PATH is exitcodes.DEFAULT_TERMINATION_PATH
    for layer in ("controllers", "builders"):
        for path in (PACKAGE / layer).rglob("*.py"):
            names = {n for _, n in imports_of(path.read_text(), module=_module_name(path))}
            assert not {n for n in names if n.startswith("synthloop.workers")}, path
