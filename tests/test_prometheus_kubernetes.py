"""The prometheus-operator side of deploy/kubernetes/:

* ``prometheusrule.yaml`` is what ``python deploy/prometheusrule.py`` makes of
  ``deploy/prometheus/rules.yml`` (regenerated and compared), holds the same rules (compared
  parsed, independently of the generator), has the shape of a ``PrometheusRule`` and passes
  ``promtool check rules``; ``--check`` fails on a stale manifest;
* the ServiceMonitor's ``jobLabel`` names a label of the Service whose value is the job of
  ``deploy/prometheus/prometheus.yml``, so both deployments scrape as job ``drift-monitor``
  (how the operator names a job: the value of the Service's label ``jobLabel``, else the
  Service's name).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
MANIFEST = KUBERNETES / "prometheusrule.yaml"
GENERATOR = ROOT / "deploy" / "prometheusrule.py"
#: The fields of a rule group and of a rule in the PrometheusRule CRD (monitoring.coreos.com/v1).
GROUP_FIELDS = {"name", "interval", "labels", "limit", "partial_response_strategy", "rules"}
RULE_FIELDS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prometheusrule", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifest(name: str) -> dict[str, Any]:
    (document,) = [d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d]
    assert isinstance(document, dict)
    return document


def test_the_manifest_is_generated_from_the_rules() -> None:
    assert MANIFEST.read_text() == generator().render(RULES.read_text()), (
        "prometheusrule.yaml is out of date: run python deploy/prometheusrule.py"
    )
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_check_fails_on_a_stale_manifest(tmp_path: Path) -> None:
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text(MANIFEST.read_text().replace("for: 5m", "for: 6m", 1))
    arguments = ["--check", "--output", str(stale)]
    assert generator().main(arguments) == 1
    assert generator().main(["--output", str(stale)]) == 0  # regenerated
    assert generator().main(arguments) == 0
    assert stale.read_text() == MANIFEST.read_text()


def test_the_manifest_holds_the_same_rules() -> None:
    rule = manifest("prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["name"] == "drift-monitor"
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_the_manifest_has_the_shape_of_a_prometheusrule() -> None:
    groups = manifest("prometheusrule.yaml")["spec"]["groups"]
    assert [group["name"] for group in groups] == [
        "drift-monitor.recording",
        "drift-monitor.drift",
        "drift-monitor.performance",
        "drift-monitor.operations",
    ]
    for group in groups:
        assert set(group) <= GROUP_FIELDS, group["name"]
        for rule in group["rules"]:
            assert set(rule) <= RULE_FIELDS, rule
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            for key in ("labels", "annotations"):  # maps of strings
                assert all(isinstance(v, str) for v in rule.get(key, {}).values()), rule


def test_promtool_checks_the_manifest_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian/Ubuntu: apt-get install prometheus)")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(manifest("prometheusrule.yaml")["spec"]))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_servicemonitor_job_is_the_static_config_job() -> None:
    monitor, service = manifest("servicemonitor.yaml"), manifest("service.yaml")
    label = monitor["spec"]["jobLabel"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert service["metadata"]["labels"][label] == job["job_name"] == "drift-monitor"
