"""monitor.stats is a pure core: numpy, scipy and the standard library; no I/O, clock or logs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STATS = Path(__file__).resolve().parent.parent / "monitor" / "stats"
ALLOWED = {"__future__", "collections", "dataclasses", "math", "numpy", "scipy", "struct", "typing"}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("path", sorted(STATS.glob("*.py")), ids=lambda path: path.name)
def test_imports_only_numpy_scipy_and_pure_stdlib(path: Path) -> None:
    for module in imported_modules(path):
        if module.startswith("monitor."):
            assert module.startswith("monitor.stats."), f"{path.name} imports {module}"
        else:
            assert module.split(".")[0] in ALLOWED, f"{path.name} imports {module}"


@pytest.mark.parametrize("path", sorted(STATS.glob("*.py")), ids=lambda path: path.name)
def test_no_global_randomness_or_io_in_code(path: Path) -> None:
    """Docstring examples may seed a generator; the code itself draws nothing, reads nothing."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute):
            assert node.attr != "random", f"{path.name}:{node.lineno} uses a random module"
        if isinstance(node, ast.Name):
            assert node.id not in {"open", "print", "input"}, f"{path.name}:{node.lineno}"
