"""End to end against a real Prometheus server: the real service (``monitor serve`` on SQLite)
gets a reference, predictions with one clearly drifted feature (``age``) and labels; a real
``prometheus`` scrapes it every second with ``deploy/prometheus/prometheus.yml`` (target
rewritten to the test's port) and ``rules.yml`` (see ``prometheus_stack``). Then:

* every recording rule of ``rules.yml`` has an output series;
* the PSI alert of the drifted feature is pending or firing, and no other feature's is;
* every panel query and annotation of ``grafana/dashboards/*.json``, run as Grafana runs it
  (``grafana_queries``), returns data.

Skips without the ``prometheus`` binary (Debian's ``prometheus`` package; ``.ci/run`` installs
it). ``test_prometheus_replicas.py`` does the same with two replicas on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from grafana_queries import DashboardRun, run_scenarios, without_data
from grafana_render import dashboard_files, load
from prometheus_stack import (
    DRIFTED,
    MODEL,
    NOT_INSTALLED,
    PROMETHEUS,
    Stack,
    monitor_config,
    recording_rules,
    running_stack,
    wait_for,
)

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason=NOT_INSTALLED)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus_live")
    config = tmp / "monitor.yaml"
    config.write_text(monitor_config(f"sqlite:///{tmp / 'monitor.db'}"))
    with running_stack(tmp, config) as running:
        yield running


def test_every_recording_rule_has_output(stack: Stack) -> None:
    names = recording_rules()
    assert names, "no recording rules in rules.yml"

    def missing() -> list[str]:
        return [name for name in names if not stack.query(name)]

    deadline = time.monotonic() + 15
    absent = missing()
    while absent and time.monotonic() < deadline:
        time.sleep(0.5)
        absent = missing()
    assert absent == [], f"recording rules without output after 15 s: {absent}"
    worst = stack.query(f'model:drift_monitor_feature_psi:max{{model="{MODEL}"}}')
    assert float(worst[0]["value"][1]) >= 0.25, worst
    critical = stack.query(f'model:drift_monitor_features_critical:count{{model="{MODEL}"}}')
    assert float(critical[0]["value"][1]) >= 1, critical


def test_drift_alert_of_the_drifted_feature_is_active(stack: Stack) -> None:
    alerts = wait_for("PSI alerts", lambda: stack.alerts("DriftMonitorFeatureDrift", "psi"), 15)
    active = {(a["labels"]["feature"], a["labels"]["severity"]) for a in alerts}
    assert (DRIFTED, "critical") in active, active
    assert (DRIFTED, "warning") in active, active
    assert {feature for feature, _ in active} <= {DRIFTED, "__prediction__", "__label__"}, active
    (alert,) = [
        a
        for a in alerts
        if a["labels"]["feature"] == DRIFTED and a["labels"]["severity"] == "critical"
    ]
    assert alert["labels"]["model"] == MODEL


def test_dashboard_queries_return_data(stack: Stack) -> None:
    """Every panel target and annotation of every dashboard, run as Grafana runs it with the
    variables as loaded (see ``grafana_queries``), returns data for one of the models its
    model variable offers (the regression panels for the regression model)."""
    files = dashboard_files()
    assert files, "no Grafana dashboards"
    # let the rate() windows and recording rules fill a little first
    wait_for(
        "model:drift_monitor_records_ingested:rate5m",
        lambda: stack.query("model:drift_monitor_records_ingested:rate5m"),
        15,
    )

    def problems() -> list[str]:
        at = time.time() - 3  # scrapes up to then are in
        found = []
        for path in files:
            results, errors = run_scenarios(DashboardRun(stack, load(path), at=at))
            found += errors + without_data(results)
        return found

    deadline = time.monotonic() + 15
    failures = problems()
    while failures and time.monotonic() < deadline:
        time.sleep(0.5)
        failures = problems()
    assert not failures, "dashboard queries failed:\n" + "\n".join(failures)
