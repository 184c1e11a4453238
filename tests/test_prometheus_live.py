"""End to end against a real Prometheus server: the real service (``monitor serve`` on SQLite)
gets a reference, predictions with one clearly drifted feature (``age``) and labels; a real
``prometheus`` scrapes it every second with ``deploy/prometheus/prometheus.yml`` (target
rewritten to the test's port) and ``rules.yml`` (see ``prometheus_stack``). Then:

* every recording rule of ``rules.yml`` has an output series;
* the PSI alert of the drifted feature is pending or firing, and no other feature's is;
* every panel query of ``grafana/dashboards/*.json`` (template variables substituted) returns
  data; that test skips, saying so, while there are no dashboards.

Skips without the ``prometheus`` binary (Debian's ``prometheus`` package; ``.ci/run`` installs
it). ``test_prometheus_replicas.py`` does the same with two replicas on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_stack import (
    DASHBOARDS,
    DRIFTED,
    MODEL,
    NOT_INSTALLED,
    PROMETHEUS,
    ROOT,
    Stack,
    dashboard_targets,
    monitor_config,
    query_panel,
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
    alerts = wait_for("drift_monitor_psi alerts", lambda: stack.alerts("drift_monitor_psi"), 15)
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


def test_dashboard_queries_return_data(request: pytest.FixtureRequest) -> None:
    targets = dashboard_targets()
    if not list(DASHBOARDS.glob("*.json")):
        pytest.skip(f"no Grafana dashboards in {DASHBOARDS.relative_to(ROOT)}/*.json yet")
    assert targets, "no panel target with an expr in the dashboards"
    stack: Stack = request.getfixturevalue("stack")
    # let the rate() windows and recording rules fill a little first
    wait_for(
        "model:drift_monitor_records_ingested:rate5m",
        lambda: stack.query("model:drift_monitor_records_ingested:rate5m"),
        15,
    )
    failures: list[str] = []
    for where, expr in targets:
        try:
            if not query_panel(stack, expr):
                failures.append(f"{where}: {expr}\n    empty result (and alternatives)")
        except ValueError as exc:
            failures.append(f"{where}: {expr}\n    error: {exc}")
    assert not failures, (
        f"{len(failures)} of {len(targets)} dashboard queries failed:\n" + "\n".join(failures)
    )
