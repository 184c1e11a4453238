"""The distribution's shape: ``pip install drift-monitor`` is the Python client with httpx alone
(installed for real into a fresh virtualenv, and used there), the service is the ``server``
extra, PostgreSQL's driver the ``postgresql`` extra (its absence named by ``monitor serve``),
the lint tools the ``dev`` extra, and ``test`` holds everything the suite needs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]

#: run inside the fresh virtualenv: the client against an httpx MockTransport
CLIENT_SCRIPT = """
import json, sys
import httpx
from monitor.client import Monitor

requests = []

def handle(request):
    requests.append({"path": request.url.path, "body": json.loads(request.content)})
    return httpx.Response(202, json={"accepted": 1, "duplicates": 0})

monitor = Monitor("http://monitor.test", "credit", transport=httpx.MockTransport(handle))
monitor.log_prediction("req-1", {"age": 42, "income": 51000.0, "country": "DE"}, "approved",
                       scores={"approved": 0.83, "rejected": 0.17}, timestamp=1700000000)
monitor.log_label("req-1", "rejected", timestamp=1700000060)
monitor.close()
heavy = sorted(m for m in ("fastapi", "numpy", "pydantic", "sqlalchemy") if m in sys.modules)
print(json.dumps({"requests": requests, "stats": monitor.stats(), "heavy": heavy}))
"""

#: run inside the fresh virtualenv: every installed distribution, and the closure of httpx's
#: requirements (markers evaluated for this interpreter, no extras), from the venv's own metadata
METADATA_SCRIPT = """
import json, re
from importlib import metadata
from packaging.requirements import Requirement

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

installed = {norm(d.metadata["Name"]) for d in metadata.distributions()}
closure, todo = set(), ["httpx"]
while todo:
    name = todo.pop()
    if name in closure:
        continue
    closure.add(name)
    for text in metadata.requires(name) or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            todo.append(norm(requirement.name))
print(json.dumps({"installed": sorted(installed), "httpx": sorted(closure)}))
"""


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(text: str) -> str:
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", text)
    assert found is not None, text
    return norm(found.group(0))


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=540, check=False, **kwargs)


# -- the extras -------------------------------------------------------------------------------


def test_the_base_distribution_is_the_client_and_the_service_an_extra() -> None:
    assert [requirement_name(r) for r in PROJECT["dependencies"]] == ["httpx"]
    server = {requirement_name(r) for r in EXTRAS["server"]}
    assert {"fastapi", "uvicorn", "sqlalchemy", "numpy", "scipy", "pydantic"} <= server
    assert "psycopg" not in server
    assert [requirement_name(r) for r in EXTRAS["postgresql"]] == ["psycopg"]
    assert {requirement_name(r) for r in EXTRAS["dev"]} == {"mypy", "ruff", "import-linter"}


def test_the_test_extra_has_everything_the_suite_needs() -> None:
    """The README's test command installs ``.[test]`` only: the service, PostgreSQL's driver
    (the storage suite runs on PostgreSQL), Parquet (replay tests) and the dev tools
    (tests/test_code_quality.py runs them) and the documentation site (tests/test_docs.py builds
    it) come with it."""
    (own,) = [r for r in EXTRAS["test"] if requirement_name(r) == norm(PROJECT["name"])]
    found = re.fullmatch(r"[\w.-]+\[([\w,\s-]+)\]", own)
    assert found is not None, own
    assert {e.strip() for e in found.group(1).split(",")} == {
        "server",
        "postgresql",
        "parquet",
        "dev",
        "docs",
    }


# -- the client, installed alone --------------------------------------------------------------


def test_client_installs_and_works_with_httpx_alone(tmp_path: Path) -> None:
    """A fresh virtualenv, ``pip install`` of the project (as ``pip install drift-monitor``
    would): httpx and its own requirements, nothing else; the client sends a batch through an
    httpx MockTransport; ``monitor serve`` names the missing extra instead of a traceback."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "monitor", source / "monitor", ignore=shutil.ignore_patterns("__pycache__")
    )
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    created = run([base, "-m", "venv", str(venv)])
    assert created.returncode == 0, created.stderr
    python, env = venv / "bin" / "python", {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)  # the installed package, not this worktree's
    env.pop("VIRTUAL_ENV", None)
    installed = run([str(python), "-m", "pip", "install", "-q", str(source)], env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # `packaging` reads the requirements below; pip vendors it
    shown = run(
        [
            str(python),
            "-c",
            METADATA_SCRIPT.replace("from packaging", "from pip._vendor.packaging"),
        ],
        env=env,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    metadata = json.loads(shown.stdout)
    seeded = {"pip", "setuptools"}  # what `python -m venv` puts in every virtualenv
    assert set(metadata["installed"]) - seeded == {norm(PROJECT["name"]), *metadata["httpx"]}
    server = {requirement_name(r) for r in EXTRAS["server"] + EXTRAS["postgresql"]}
    assert not server & set(metadata["installed"]) - set(metadata["httpx"])

    used = run([str(python), "-c", CLIENT_SCRIPT], env=env, cwd=tmp_path)
    assert used.returncode == 0, used.stderr
    result = json.loads(used.stdout)
    assert result["heavy"] == []
    assert result["stats"]["sent"] == 2
    assert result["stats"]["rejected"] == result["stats"]["failed"] == 0
    bodies = {r["path"]: r["body"] for r in result["requests"]}
    assert set(bodies) == {"/v1/models/credit/predictions", "/v1/models/credit/labels"}
    (prediction,) = bodies["/v1/models/credit/predictions"]
    assert prediction["id"] == "req-1"
    assert prediction["features"] == {"age": 42, "income": 51000.0, "country": "DE"}
    assert (prediction["prediction"], prediction["scores"]["rejected"]) == ("approved", 0.17)
    (label,) = bodies["/v1/models/credit/labels"]
    assert (label["id"], label["label"]) == ("req-1", "rejected")

    served = run(
        [str(venv / "bin" / "monitor"), "serve", "--config", str(ROOT / "examples/monitor.yaml")],
        env=env,
        cwd=tmp_path,
    )
    assert served.returncode == 1
    assert "pip install 'drift-monitor[server]'" in served.stderr
    assert "Traceback" not in served.stderr


# -- PostgreSQL's driver, an extra ------------------------------------------------------------

#: ``monitor serve`` in a process where psycopg cannot be imported (as without the extra)
WITHOUT_PSYCOPG = (
    "import sys; sys.modules['psycopg'] = None; "
    "from monitor.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_a_postgresql_url_without_psycopg_names_the_extra(tmp_path: Path) -> None:
    config = ROOT / "examples" / "monitor.yaml"
    env = {
        **os.environ,
        "MONITOR_DATABASE_URL": "postgresql+psycopg://monitor:pw@127.0.0.1:1/monitor",
        "PYTHONPATH": str(ROOT),
    }
    result = run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, "serve", "--config", str(config)],
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "monitor serve: a PostgreSQL database URL needs psycopg, which is not installed: "
        "pip install 'drift-monitor[postgresql]'"
    )
    assert "Traceback" not in result.stderr


def test_create_database_engine_raises_missing_extra_without_psycopg(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.errors import MissingExtraError
    from monitor.storage import create_database_engine

    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtraError) as raised:
        create_database_engine("postgresql+psycopg://monitor:pw@127.0.0.1:1/monitor")
    assert (raised.value.extra, raised.value.module, raised.value.name) == (
        "postgresql",
        "psycopg",
        "psycopg",
    )
    assert isinstance(raised.value, ImportError)
