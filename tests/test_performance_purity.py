"""monitor.stats.performance is part of the pure core: numpy, scipy and the standard library only.

``test_stats_purity.py`` checks the modules directly in ``monitor/stats``; this checks the
subpackage with the same rules. scikit-learn in particular is a test-only reference.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "monitor" / "stats" / "performance"
ALLOWED = {"__future__", "collections", "dataclasses", "math", "numpy", "scipy", "typing"}
MODULES = sorted(PACKAGE.glob("*.py"))


def test_the_package_exists() -> None:
    assert {path.name for path in MODULES} >= {"__init__.py", "classification.py", "regression.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_imports_only_numpy_scipy_and_pure_stdlib(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = {node.module}
        else:
            continue
        for module in modules:
            if module.startswith("monitor."):
                assert module.startswith("monitor.stats.performance"), f"{path.name}: {module}"
            else:
                assert module.split(".")[0] in ALLOWED, f"{path.name} imports {module}"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_no_global_randomness_or_io_in_code(path: Path) -> None:
    """Docstring examples may seed a generator; the code itself draws nothing, reads nothing."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute):
            assert node.attr != "random", f"{path.name}:{node.lineno} uses a random module"
        if isinstance(node, ast.Name):
            assert node.id not in {"open", "print", "input"}, f"{path.name}:{node.lineno}"
