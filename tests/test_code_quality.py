"""The package type-checks under ``mypy --strict`` and passes ``ruff``: part of the suite, so
the one test command keeps them true."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    executable = BIN / tool if (BIN / tool).exists() else shutil.which(tool)
    if executable is None:
        pytest.fail(f"{tool} is not installed; install the test extra: pip install -e '.[test]'")
    return subprocess.run(
        [str(executable), *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_mypy_strict() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff() -> None:
    paths = [p for p in ("monitor", "tests", "bench") if (ROOT / p).exists()]
    result = run("ruff", "check", *paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts() -> None:
    """The layers of ``[tool.importlinter]`` in pyproject.toml: cli -> api -> service -> jobs
    -> storage, the api never importing SQLAlchemy, stats importing nothing of ours."""
    result = run("lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr
