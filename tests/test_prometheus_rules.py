"""The Prometheus configuration and rules in ``deploy/prometheus/``:

* ``promtool check rules`` and ``promtool check config`` accept them;
* ``promtool test rules rules.test.yml`` (the rules' unit tests) passes;
* every alerting rule (name and severity) is expected to fire in some unit test, and every alert
  name is also expected to stay silent at some evaluation time of a test;
* every statistic the service can threshold has a warning and a critical rule comparing it with
  ``drift_monitor_threshold`` of that statistic and severity, in the direction of
  ``monitor.thresholds`` (at or above, or at or below).

promtool comes with Debian's ``prometheus`` package; ``.ci/run`` installs it, so CI never skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from replica_aggregation import unaggregated

from monitor.config.schema import AUTO_STATISTICS
from monitor.thresholds import HIGHER_IS_WORSE, LOWER_IS_WORSE

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "prometheus"
RULES = DEPLOY / "rules.yml"
RULE_TESTS = DEPLOY / "rules.test.yml"
CONFIG = DEPLOY / "prometheus.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian/Ubuntu: apt-get install prometheus; .ci/run does)",
)

#: The gauge each thresholded statistic is read from (README "## Metrics").
FEATURE_STATISTICS = {
    "psi",
    "ks_statistic",
    "ks_pvalue",
    "wasserstein",
    "wasserstein_normalized",
    "jensen_shannon",
    "chi2_pvalue",
    "missing_ratio",
}


def metric_of(statistic: str) -> str:
    if statistic in FEATURE_STATISTICS:
        return f"drift_monitor_feature_{statistic}"
    if statistic == "drifted_share":
        return "drift_monitor_drifted_features_ratio"
    if statistic == "label_coverage":
        return "drift_monitor_label_coverage_ratio"
    return f"drift_monitor_model_{statistic}"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120, check=False
    )


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


@needs_promtool
def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_check_config() -> None:
    """prometheus.yml names rules.yml relative to itself; check config loads and checks it."""
    result = promtool("check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout, result.stdout
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["rules.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "drift-monitor"
    assert job["scrape_interval"] == "15s"
    assert job["static_configs"] == [{"targets": ["monitor:8000"]}]


def test_every_alerting_rule_has_unit_tests() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == ["rules.yml"]
    fired: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            name = check["alertname"]
            expected = check.get("exp_alerts") or []
            if not expected:
                silent.add(name)
            for alert in expected:
                fired.add((name, alert["exp_labels"]["severity"]))
    rules = {(rule["alert"], rule["labels"]["severity"]) for rule in alerting_rules()}
    assert rules, "no alerting rules in rules.yml"
    assert sorted(rules - fired) == [], "alerting rules never expected to fire in rules.test.yml"
    names = {name for name, _ in rules}
    assert sorted(names - silent) == [], "alerts never expected to stay silent in rules.test.yml"
    assert sorted({name for name, _ in fired} - names) == [], "tests of alerts that do not exist"


@pytest.mark.parametrize("statistic", sorted(HIGHER_IS_WORSE | LOWER_IS_WORSE))
@pytest.mark.parametrize("severity", ["warning", "critical"])
def test_every_threshold_statistic_has_a_rule_in_its_direction(
    statistic: str, severity: str
) -> None:
    rules = [
        rule
        for rule in alerting_rules()
        if rule["alert"] == f"drift_monitor_{statistic}" and rule["labels"]["severity"] == severity
    ]
    assert len(rules) == 1, f"want one {severity} rule drift_monitor_{statistic}, got {rules}"
    (rule,) = rules
    assert rule["labels"]["rule"] == statistic
    expr = " ".join(rule["expr"].split())
    operator = ">=" if statistic in HIGHER_IS_WORSE else "<="
    series = rf"(max|min) by \((model|model, feature)\) \({re.escape(metric_of(statistic))}\)"
    pattern = (
        rf"^{series} {operator} on \(model\) group_left \(\) max by \(model\) "
        rf'\(drift_monitor_threshold\{{statistic="{statistic}", severity="{severity}"\}}\)'
    )
    if statistic in AUTO_STATISTICS:  # or an auto level, resolved per feature and window
        pattern += (
            rf" or {series} {operator} on \((?P<by>model|model, feature)\) max by \((?P=by)\) "
            rf'\(drift_monitor_threshold_resolved\{{statistic="{statistic}", '
            rf'severity="{severity}"\}}\)'
        )
    assert re.match(pattern + "$", expr), f"{rule['alert']} ({severity}): {expr}"
    assert rule.get("for"), f"{rule['alert']} has no for: duration"
    assert {"summary", "description"} <= set(rule["annotations"])


def test_operational_alerts() -> None:
    by_name = {rule["alert"]: rule for rule in alerting_rules()}
    stale = " ".join(by_name["drift_monitor_evaluation_stale"]["expr"].split())
    assert "time() - max by (model) (drift_monitor_last_evaluation_timestamp_seconds) >" in stale
    webhooks = " ".join(by_name["drift_monitor_webhook_deliveries_failing"]["expr"].split())
    assert 'increase(drift_monitor_webhook_deliveries_total{outcome="failed"}[15m])' in webhooks
    assert webhooks.endswith("> 0")


def test_every_rule_aggregates_over_replicas() -> None:
    """Several replicas give one series per model (and feature) in every recording and alerting
    rule: counters summed, model gauges by max (min when lower is worse), see
    ``replica_aggregation``; only drift_monitor_down is per instance (``up``)."""
    problems = [problem for rule in rules() for problem in unaggregated(rule["expr"])]
    assert not problems, "\n".join(problems)
    (down,) = [rule for rule in alerting_rules() if rule["alert"] == "drift_monitor_down"]
    assert down["expr"].startswith('up{job="drift-monitor"} == 0')  # one alert per instance
