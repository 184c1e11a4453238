"""The Prometheus configuration and rules in ``deploy/prometheus/``:

* ``promtool check rules`` and ``promtool check config`` accept them;
* ``promtool test rules rules.test.yml`` (the rules' unit tests) passes;
* every alerting rule (name, ``rule`` label and severity) is expected to fire in some unit test,
  and every alert name is also expected to stay silent at some evaluation time of a test;
* alert names are CamelCase, one per kind of problem (``monitor.alerts.names``), and every alert
  has ``summary``, ``description`` and a ``runbook_url`` into the published docs, a page of
  ``docs/runbooks/`` (what to check, what to do);
* no rule selects a job by name (the operator names the job after the Service);
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

from monitor.alerts.names import ALERT_NAMES, DOCS_URL, OPERATIONAL, alert_name, runbook_url
from monitor.config.schema import AUTO_STATISTICS, FAIRNESS_STATISTICS
from monitor.thresholds import HIGHER_IS_WORSE, LOWER_IS_WORSE

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUNBOOKS = DOCS / "runbooks"
DEPLOY = ROOT / "deploy" / "prometheus"
RULES = DEPLOY / "rules.yml"
RULE_TESTS = DEPLOY / "rules.test.yml"
CONFIG = DEPLOY / "prometheus.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian/Ubuntu: apt-get install prometheus; .ci/run does)",
)

#: The series each thresholded statistic is read from (docs/metrics.md).
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
    if statistic in FAIRNESS_STATISTICS:
        return f"drift_monitor_fairness_{statistic}"
    if statistic == "canary_psi":
        return "drift_monitor_canary_psi"
    if statistic == "canary_accuracy_delta":  # the point estimate, not its interval's bounds
        return 'drift_monitor_canary_accuracy_delta{bound="value"}'
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
    """Each rule, told apart by (alert name, ``rule`` label, severity), fires in some test."""
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == ["rules.yml"]
    fired: set[tuple[str, str | None, str]] = set()
    silent: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            name = check["alertname"]
            expected = check.get("exp_alerts") or []
            if not expected:
                silent.add(name)
            for alert in expected:
                labels = alert["exp_labels"]
                fired.add((name, labels.get("rule"), labels["severity"]))
    rules = {
        (rule["alert"], rule["labels"].get("rule"), rule["labels"]["severity"])
        for rule in alerting_rules()
    }
    assert rules, "no alerting rules in rules.yml"
    assert sorted(rules - fired) == [], "alerting rules never expected to fire in rules.test.yml"
    names = {name for name, _, _ in rules}
    assert sorted(names - silent) == [], "alerts never expected to stay silent in rules.test.yml"
    assert sorted(fired - rules) == [], "tests of alerts that do not exist"


@pytest.mark.parametrize("statistic", sorted(HIGHER_IS_WORSE | LOWER_IS_WORSE))
@pytest.mark.parametrize("severity", ["warning", "critical"])
def test_every_threshold_statistic_has_a_rule_in_its_direction(
    statistic: str, severity: str
) -> None:
    rules = [
        rule
        for rule in alerting_rules()
        if rule["labels"].get("rule") == statistic and rule["labels"]["severity"] == severity
    ]
    assert len(rules) == 1, f"want one {severity} rule of {statistic}, got {rules}"
    (rule,) = rules
    assert rule["alert"] == alert_name(statistic)
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
    by_name = {rule["alert"]: rule for rule in alerting_rules() if "rule" not in rule["labels"]}
    assert sorted(by_name) == sorted(OPERATIONAL)
    stale = " ".join(by_name["DriftMonitorEvaluationStale"]["expr"].split())
    assert "time() - max by (model) (drift_monitor_last_evaluation_timestamp_seconds) >" in stale
    webhooks = " ".join(by_name["DriftMonitorWebhookDeliveriesFailing"]["expr"].split())
    assert 'increase(drift_monitor_webhook_deliveries_total{outcome="failed"}[15m])' in webhooks
    assert webhooks.endswith("> 0")


def test_no_rule_depends_on_the_job_name() -> None:
    """The job is drift-monitor in prometheus.yml, the Service's name from a ServiceMonitor
    without jobLabel: no rule selects a job (or instance) by name. rules.test.yml evaluates
    DriftMonitorDown with static-config and prometheus-operator labels."""
    for rule in rules():
        assert not re.search(r"\b(job|instance)\s*(=|!=|=~|!~)", rule["expr"]), rule["expr"]
    tests = RULE_TESTS.read_text()
    operator_labels = ("job", "namespace", "service", "endpoint", "pod", "container", "instance")
    assert re.search(r"up\{" + ", ".join(f'{label}="[^"]+"' for label in operator_labels), tests)


def test_every_alert_has_summary_description_and_a_runbook() -> None:
    names = {rule["alert"] for rule in alerting_rules()}
    assert names == {*ALERT_NAMES.values(), *OPERATIONAL}
    for rule in alerting_rules():
        name = rule["alert"]
        assert re.fullmatch(r"DriftMonitor(?:[A-Z][a-z]+)+", name), f"not CamelCase: {name}"
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["runbook_url"] == runbook_url(name)
        assert page_of(annotations["runbook_url"]) == RUNBOOKS / f"{name}.md"


def page_of(url: str) -> Path:
    """The Markdown file under docs/ that MkDocs publishes at ``url`` (directory URLs)."""
    assert url.startswith(DOCS_URL) and url.endswith("/"), url
    return DOCS / f"{url.removeprefix(DOCS_URL).removesuffix('/')}.md"


def test_every_runbook_url_is_a_page_of_the_docs() -> None:
    """Each alert's runbook (from the rules and from the alertmanager webhook format alike)
    is a page under docs/runbooks/ titled with the alert's name, listed in the runbooks'
    index; every page there is an alert's."""
    names = {*ALERT_NAMES.values(), *OPERATIONAL}
    index = (RUNBOOKS / "index.md").read_text()
    for name in names:
        page = page_of(runbook_url(name))
        assert page.is_file(), f"{name}: no runbook {page.relative_to(ROOT)}"
        text = page.read_text()
        assert text.startswith(f"# {name}\n"), page
        assert {"## Meaning", "## Diagnosis", "## Mitigation"} <= set(text.splitlines()), page
        assert f"[{name}]({name}.md)" in index
    pages = {path.stem for path in RUNBOOKS.glob("*.md")} - {"index"}
    assert pages == names


def test_docs_site_url_is_where_runbooks_point() -> None:
    """runbook_url is built from DOCS_URL; once the docs site is configured (mkdocs.yml), it is
    published there, with directory URLs (page.md at page/)."""
    config = ROOT / "mkdocs.yml"
    if not config.exists():
        pytest.skip("no mkdocs.yml yet")
    site = yaml.load(config.read_text(), Loader=yaml.BaseLoader)  # !!python/name tags as text
    assert site["site_url"].rstrip("/") + "/" == DOCS_URL
    assert site.get("use_directory_urls", "true") == "true"


def test_every_rule_aggregates_over_replicas() -> None:
    """Several replicas give one series per model (and feature) in every recording and alerting
    rule: counters summed, model gauges by max (min when lower is worse), see
    ``replica_aggregation``; only DriftMonitorDown is per target (``up``)."""
    problems = [problem for rule in rules() for problem in unaggregated(rule["expr"])]
    assert not problems, "\n".join(problems)
    (down,) = [rule for rule in alerting_rules() if rule["alert"] == "DriftMonitorDown"]
    assert down["expr"].startswith("up == 0\n")  # one alert per target
