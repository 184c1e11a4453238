"""Two real ``monitor serve`` replicas on one PostgreSQL database (a schema of their own),
scraped as two targets by one real Prometheus with ``deploy/prometheus`` (see
``prometheus_stack``; predictions and labels are spread over both replicas). Then:

* both replicas export every model gauge (drift, performance, labels, thresholds, alert
  states, reference version, last evaluation), with the same values, whichever replica
  evaluated or stored the reference; their counters add up;
* every panel query of every dashboard returns one series per model (and feature ...): no
  series of a replica (``instance``), and data;
* so does every recording rule, and every alerting rule's expression (its comparisons made
  ``bool``, so a rule shows all its series, breaching or not), except ``drift_monitor_down``,
  which is per instance; the drifted feature's PSI alert is one alert, not two.

Skips without the ``prometheus`` binary, or when MONITOR_TEST_DATABASE_URL is unset.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_stack import (
    DRIFTED,
    MODEL,
    NOT_INSTALLED,
    PROMETHEUS,
    Stack,
    dashboard_targets,
    monitor_config,
    query_panel,
    recording_rules,
    rules,
    running_stack,
)
from server_process import postgres_schema

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
        if family.type == "gauge"
        and not family.name.endswith("_created")  # counters' creation times
        and any("model" in sample.labels for sample in family.samples)
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
        "drift_monitor_alert_firing",
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


def test_every_dashboard_query_gives_one_series_per_model(stack: Stack) -> None:
    targets = dashboard_targets()
    assert targets

    def problems() -> list[str]:
        found = []
        for where, expr in targets:
            try:
                result = query_panel(stack, expr)
            except ValueError as exc:
                found.append(f"{where}: {expr}\n    error: {exc}")
                continue
            if not result:
                found.append(f"{where}: {expr}\n    empty result (and alternatives)")
            elif per_replica(result):
                found.append(f"{where}: {expr}\n    per replica: {per_replica(result)}")
        return found

    until_empty("dashboard queries without one series per model", problems, 30)


def expected_alert_series() -> set[tuple[str, str]]:
    """(alert, severity) of the threshold rules with a level in the test's config."""
    config = yaml.safe_load(monitor_config("sqlite://"))
    return {
        (f"drift_monitor_{statistic}", severity)
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
    with_series: set[tuple[str, str]] = set()
    for rule in rules():
        if "alert" not in rule:
            continue
        expr = COMPARISON.sub(lambda m: f" {m.group(1)} bool ", rule["expr"])
        result = stack.query(expr)
        if result:
            with_series.add((rule["alert"], rule["labels"]["severity"]))
        if rule["alert"] == "drift_monitor_down":  # per instance: one series each
            assert sorted(s["metric"].get("instance") is not None for s in result) == [True] * 2
            assert [float(s["value"][1]) for s in result] == [0.0, 0.0]  # both up
        elif per_replica(result):
            problems.append(f"{rule['alert']}: {expr}\n    per replica: {per_replica(result)}")
    assert not problems, "\n".join(problems)
    operational = {
        ("drift_monitor_evaluation_stale", "warning"),
        ("drift_monitor_webhook_deliveries_failing", "warning"),
        ("drift_monitor_down", "critical"),
    }
    assert with_series == expected_alert_series() | operational

    def psi_alerts() -> list[str]:
        active = stack.alerts("drift_monitor_psi")
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
