"""The README opens with the two set-up commands, and CI runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None, "the README must open with a sh code block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_install_and_test_commands() -> None:
    install, test = setup_commands()
    assert "monitor serve --config examples/monitor.yaml" in install
    assert "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    _, test = setup_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci


def test_every_exported_metric_is_documented(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.config import parse_config
    from monitor.service import Service
    from monitor.storage import create_database_engine

    config = parse_config(
        "models:\n  - {name: m, task: regression, min_samples: 1,\n"
        "     features: [{name: x, type: numeric}, {name: c, type: categorical}]}\n"
    )
    engine = create_database_engine(f"sqlite:///{tmp_path / 'm.db'}")
    service = Service(config, engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=False)
    service.store_reference("m", [{"features": {"x": 1.0, "c": "a"}}], source="test")
    service.store_predictions(
        "m", [{"id": "1", "features": {"x": 2.0, "c": "b"}, "prediction": 1.0}]
    )
    service.evaluate("m")
    readme = (ROOT / "README.md").read_text()
    names = {family.name for family in service.registry.collect()}
    service.stop()
    assert len(names) > 20
    undocumented = sorted(
        name
        for name in names
        if f"`{name}{{" not in readme
        and f"`{name}_total{{" not in readme
        and f"`{name}_info{{" not in readme
        and f"`{name}`" not in readme
    )
    assert undocumented == []
