"""Two real ``monitor serve`` replicas on one PostgreSQL database (a schema of their own),
scraped as two targets by one real Prometheus with ``deploy/prometheus`` (see
``prometheus_stack``; predictions and labels are spread over both replicas). Then:

* both replicas export every model gauge (drift, performance, labels, thresholds, alert
  states, reference version, last evaluation), with the same values, whichever replica
  evaluated or stored the reference; their counters add up;
* every panel query and annotation of every dashboard, run as Grafana runs it (the
  provisioned data source, the variables filled from Prometheus: ``grafana_queries``),
  returns data and one series per model (and feature ...): no series of a replica; selecting
  one replica, or both, in ``$instance`` partitions what All shows, and a job, namespace or
  instance that does not exist shows nothing;
* so does every recording rule, and every alerting rule's expression (its comparisons made
  ``bool``, so a rule shows all its series, breaching or not), except ``DriftMonitorDown``,
  which is per target; the drifted feature's PSI alert is one alert, not two.

Skips without the ``prometheus`` binary, or when MONITOR_TEST_DATABASE_URL is unset.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from grafana_queries import (
    DashboardRun,
    label_sets,
    model_scenarios,
    run_scenarios,
    values,
    without_data,
)
from grafana_render import TARGET_VARIABLES, dashboard_files, load
from prometheus_client.parser import text_string_to_metric_families
from prometheus_stack import (
    DRIFTED,
    MODEL,
    NOT_INSTALLED,
    PROMETHEUS,
    Stack,
    monitor_config,
    recording_rules,
    rules,
    running_stack,
)
from server_process import postgres_schema

from monitor.alerts.names import alert_name

POSTGRES_ENV = "MONITOR_TEST_DATABASE_URL"
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason=NOT_INSTALLED)
#: The replicas' last-evaluation times may differ by a tick (1 s) and a scrape (1 s).
LAST_EVALUATION = "drift_monitor_last_evaluation_timestamp_seconds"
COMPARISON = re.compile(r"\s(>=|<=|==|!=|>|<)\s(?!bool\b)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_ENV}")
    tmp = tmp_path_factory.mktemp("prometheus_replicas")
    config = tmp / "monitor.yaml"
    with postgres_schema(base) as url:
        config.write_text(monitor_config(url))
        with running_stack(tmp, config, replicas=2) as running:
            yield running


def until_empty(what: str, problems: Callable[[], list[str]], timeout: float) -> None:
    """Ask ``problems()`` until it has none; fail with the last ones after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    found = problems()
    while found and time.monotonic() < deadline:
        time.sleep(0.5)
        found = problems()
    assert not found, f"{what} after {timeout:.0f} s:\n" + "\n".join(found)


def per_replica(result: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [series["metric"] for series in result if "instance" in series["metric"]]


def model_gauges(exposition: str) -> set[str]:
    """Names of the gauges with a ``model`` label in a scrape."""
    return {
        family.name
        for family in text_string_to_metric_families(exposition)
        if family.type == "gauge" and any("model" in sample.labels for sample in family.samples)
    }


def test_both_replicas_export_every_model_gauge_with_the_same_values(stack: Stack) -> None:
    names = model_gauges(httpx.get(f"{stack.monitor}/metrics", timeout=10).text)
    assert {
        "drift_monitor_feature_psi",
        "drift_monitor_feature_chi2_pvalue",
        "drift_monitor_model_accuracy",
        "drift_monitor_model_estimated_accuracy",
        "drift_monitor_model_rmse",
        "drift_monitor_label_coverage_ratio",
        "drift_monitor_threshold",
        "drift_monitor_alerts_firing",
        "drift_monitor_reference_version",
        LAST_EVALUATION,
    } <= names

    def disagreements() -> list[str]:
        found = []
        for name in sorted(names):
            for series in stack.query(f"count without (instance) ({name}) != 2"):
                found.append(f"{name} {series['metric']}: on one replica only")
            tolerance = 2 if name == LAST_EVALUATION else 0
            spread = f"max without (instance) ({name}) - min without (instance) ({name})"
            for series in stack.query(f"{spread} > {tolerance}"):
                found.append(f"{name} {series['metric']}: differs by {series['value'][1]}")
        return found

    until_empty("model gauges that differ between the replicas", disagreements, 30)


def test_the_replicas_counters_add_up(stack: Stack) -> None:
    """Each replica counts what it ingested (half the predictions each); the sum is all."""
    ingested = stack.query(f'drift_monitor_records_ingested_total{{model="{MODEL}"}}')
    assert sorted(float(s["value"][1]) for s in ingested) == [100.0, 100.0]
    assert len({s["metric"]["instance"] for s in ingested}) == 2
    (total,) = stack.query(
        f'sum by (model) (drift_monitor_records_ingested_total{{model="{MODEL}"}})'
    )
    assert float(total["value"][1]) == 200.0


def target_labelled(result: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Series still carrying a label of the scrape target: not aggregated over replicas."""
    return [s["metric"] for s in result if set(s["metric"]) & {"instance", "job", "namespace"}]


def dashboard_problems(stack: Stack, path: Path, at: float) -> list[str]:
    """What is wrong with ``path``'s queries run as Grafana runs them (see ``grafana_queries``):

    * with the variables as loaded (job, namespace, instance: All), for each model the model
      variable offers when it takes one value: an error, a series per replica (a target label
      left), or no data under every model;
    * the instance variable does not offer the two replicas, or selecting one of them, or both,
      does not partition what All shows (same series, by their labels);
    * a job, namespace or instance that does not exist still shows data (a matcher is
      missing), beyond the ``or vector(0)`` of a count.
    """
    run = DashboardRun(stack, load(path), at=at)
    loaded = run.selections()
    if len(loaded["instance"].options) != 2 or loaded["instance"].selected is not None:
        return [f"{path.name}: $instance {loaded['instance']} is not All of two replicas"]
    results, errors = run_scenarios(run)
    found = errors + without_data(results)
    for query, answers in results.items():
        for answer in answers:
            if target_labelled(answer):
                found.append(f"{query.where}: per replica: {target_labelled(answer)}")
    base = model_scenarios(run)[0]
    replicas = loaded["instance"].options
    partitions = {"all": run.selections(base)} | {
        name: run.selections({**base, "instance": name})
        for name in [(replica,) for replica in replicas] + [tuple(replicas)]
    }
    nowhere = [run.selections({**base, target: ("nowhere",)}) for target in TARGET_VARIABLES]
    for query in results:
        try:
            shown = {name: label_sets(run.run(query, s)) for name, s in partitions.items()}
            stray = [series for selections in nowhere for series in run.run(query, selections)]
        except ValueError as exc:
            found.append(f"{query.where}: error {exc}")
            continue
        every = shown.pop("all")
        both = shown.pop(tuple(replicas))
        if both != every or set().union(*shown.values()) != every:
            found.append(f"{query.where}: replicas {shown}, both {both}, All {every}")
        if any(series["metric"] or any(values(series)) for series in stray):
            found.append(f"{query.where}: data for a job, namespace or instance nowhere: {stray}")
    return found


def test_every_dashboard_query_runs_as_grafana_runs_it(stack: Stack) -> None:
    """Each dashboard as provisioned, against the two replicas: see ``dashboard_problems``."""
    files = dashboard_files()
    assert files

    def problems() -> list[str]:
        at = time.time() - 3  # scrapes up to then are in
        return [problem for path in files for problem in dashboard_problems(stack, path, at)]

    until_empty("dashboard queries that do not run as Grafana runs them", problems, 30)


def expected_alert_series() -> set[tuple[str, str | None, str]]:
    """(alert, rule, severity) of the threshold rules with a level in the test's config."""
    config = yaml.safe_load(monitor_config("sqlite://"))
    return {
        (alert_name(statistic), statistic, severity)
        for model in config["models"]
        for statistic, levels in model["thresholds"].items()
        for severity in ("warning", "critical")
        if severity in levels
    }


def test_every_rule_gives_one_series_per_model(stack: Stack) -> None:
    def recorded() -> list[str]:
        found = []
        for name in recording_rules():
            result = stack.query(name)
            if not result:
                found.append(f"{name}: no output")
            elif per_replica(result):
                found.append(f"{name}: per replica: {per_replica(result)}")
        return found

    until_empty("recording rules without one series per model", recorded, 30)
    problems: list[str] = []
    with_series: set[tuple[str, str | None, str]] = set()
    for rule in rules():
        if "alert" not in rule:
            continue
        expr = COMPARISON.sub(lambda m: f" {m.group(1)} bool ", rule["expr"])
        result = stack.query(expr)
        if result:
            with_series.add((rule["alert"], rule["labels"].get("rule"), rule["labels"]["severity"]))
        if rule["alert"] == "DriftMonitorDown":  # per target: one series each
            assert sorted(s["metric"].get("instance") is not None for s in result) == [True] * 2
            assert [float(s["value"][1]) for s in result] == [0.0, 0.0]  # both up
        elif per_replica(result):
            problems.append(f"{rule['alert']}: {expr}\n    per replica: {per_replica(result)}")
    assert not problems, "\n".join(problems)
    operational = {
        ("DriftMonitorEvaluationStale", None, "warning"),
        ("DriftMonitorWebhookDeliveriesFailing", None, "warning"),
        ("DriftMonitorDown", None, "critical"),
    }
    assert with_series == expected_alert_series() | operational

    def psi_alerts() -> list[str]:
        active = stack.alerts("DriftMonitorFeatureDrift", "psi")
        found = [f"per replica: {a['labels']}" for a in active if "instance" in a["labels"]]
        drifted = [
            a
            for a in active
            if (a["labels"]["model"], a["labels"]["feature"], a["labels"]["severity"])
            == (MODEL, DRIFTED, "critical")
        ]
        if len(drifted) != 1:
            found.append(f"{len(drifted)} critical PSI alerts of {MODEL}/{DRIFTED}: {drifted}")
        return found

    until_empty("not one PSI alert of the drifted feature", psi_alerts, 15)
