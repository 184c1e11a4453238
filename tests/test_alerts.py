"""Alert rules and lifecycle: pending -> firing -> resolved per (model, rule, feature), one
episode per escalation, hysteresis on resolving, multiple-testing corrections (against scipy),
events in the outbox with the state change, route cooldowns against flapping, and the whole
path through ``Service.evaluate`` to a real receiver. On SQLite and PostgreSQL."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest
import scipy.stats
import standardwebhooks
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from receiver import SECRET, Receiver
from sqlalchemy import Engine

from monitor.alerts.lifecycle import step
from monitor.alerts.observe import Observation, observe
from monitor.api import create_app
from monitor.config import parse_config
from monitor.domain import Evaluation, FeatureDrift, Window
from monitor.service import Service


def seen(value: float | None, severity: str | None = None) -> Observation:
    limit = {"warning": 0.1, "critical": 0.25}.get(severity or "")
    return Observation("psi", "age", value, severity, limit)  # type: ignore[arg-type]


def run(values: list[tuple[float | None, str | None]], for_: int) -> list[str | None]:
    alert, events = None, []
    for now, (value, level) in enumerate(values):
        alert, event = step(alert, seen(value, level), for_=for_, now=float(now))
        events.append(event)
    return events


def test_for_needs_consecutive_breaches_and_resolving_needs_as_many_clear() -> None:
    breach, ok = (0.3, "critical"), (0.01, None)
    assert run([breach, breach, ok, breach, ok, ok], for_=2) == [
        None,
        "alert.firing",
        None,  # one clear evaluation: still firing (hysteresis)
        None,  # breaching again: the clear count starts over
        None,
        "alert.resolved",
    ]
    assert run([breach, ok, breach, ok, breach], for_=2) == [None] * 5  # never 2 in a row


def test_a_warning_that_turns_critical_is_one_escalated_episode() -> None:
    events = run([(0.15, "warning"), (0.3, "critical"), (0.2, "warning"), (0.01, None)], for_=1)
    assert events == ["alert.firing", "alert.escalated", None, "alert.resolved"]


def test_an_observation_without_a_value_changes_nothing() -> None:
    alert, _ = step(None, seen(0.3, "critical"), for_=2, now=0.0)
    assert step(alert, seen(None), for_=2, now=1.0) == (alert, None)
    firing, _ = step(alert, seen(0.3, "critical"), for_=2, now=2.0)
    assert firing is not None and firing.state == "firing"
    assert step(firing, seen(None), for_=2, now=3.0) == (firing, None)


CONFIG = """
models:
  - name: m
    task: regression
    features: [{name: a, type: numeric}, {name: b, type: numeric}, {name: c, type: categorical}]
    thresholds:
      ks_pvalue: {critical: 0.05}
      chi2_pvalue: {critical: 0.05}
      psi: {warning: 0.1, critical: 0.25, features: [a]}
      drifted_share: {critical: 0.5}
    alerts: {for: 1, routes: [hook], correction: CORRECTION}
webhooks:
  - {name: hook, url: "URL", secret: "SECRET", allow_private: true, timeout: 2s COOLDOWN}
"""


def config_text(
    url: str = "http://127.0.0.1:9/x", correction: str = "none", cooldown: str = ""
) -> str:
    extra = f", cooldown: {cooldown}" if cooldown else ""
    return (
        CONFIG.replace("CORRECTION", correction)
        .replace("URL", url)
        .replace("SECRET", SECRET)
        .replace(" COOLDOWN", extra)
    )


def evaluation(psi: float, p_values: tuple[float, float, float], at: float = 0.0) -> Evaluation:
    a, b, c = p_values
    features = (
        FeatureDrift("a", "numeric", "ok", 500, 0, {"psi": psi, "ks_pvalue": a}),
        FeatureDrift("b", "numeric", "ok", 500, 0, {"psi": 0.0, "ks_pvalue": b}),
        FeatureDrift("c", "categorical", "ok", 500, 0, {"psi": 0.0, "chi2_pvalue": c}),
    )
    return Evaluation("m", at, Window(at - 3600, at, 500), 1, 1000, features, (), 0.0, "ok")


@pytest.mark.parametrize("correction", ["none", "bonferroni", "benjamini-hochberg"])
def test_p_values_are_corrected_across_features(correction: str) -> None:
    config = parse_config(config_text(correction=correction)).models[0]
    p = (0.01, 0.04, 0.03)
    found = {(o.rule, o.feature): o for o in observe(config, evaluation(0.0, p))}
    expected = {
        "none": list(p),
        "bonferroni": [min(1.0, 3 * v) for v in p],
        "benjamini-hochberg": list(scipy.stats.false_discovery_control(p)),
    }[correction]
    got = [found[("ks_pvalue", "a")].value, found[("ks_pvalue", "b")].value]
    got.append(found[("chi2_pvalue", "c")].value)
    assert got == pytest.approx(expected, rel=1e-12)
    breached = sorted(k for k, o in found.items() if o.severity == "critical")
    assert breached == sorted(
        k
        for k, v in zip(
            [("ks_pvalue", "a"), ("ks_pvalue", "b"), ("chi2_pvalue", "c")], expected, strict=True
        )
        if v <= 0.05
    )
    assert ("psi", "b") not in found and ("psi", "a") in found  # narrowed to feature a
    assert found[("drifted_share", "")].value == 0.0


def apply(service: Service, result: Evaluation) -> None:
    with service.engine.begin() as connection:
        service.alerting.apply(connection, service.model("m"), result, result.evaluated_at)


def events_of(service: Service) -> list[tuple[str, str, str | None, str]]:
    history = service.alert_history(model="m", since=None, limit=100)
    return [(e.type, e.rule, e.feature or None, e.severity) for e in reversed(history)]


def quiet(at: float) -> Evaluation:
    return evaluation(0.0, (0.5, 0.5, 0.5), at)


def test_state_history_and_outbox_move_together(engine: Engine) -> None:
    service = Service(parse_config(config_text()), engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=False)
    apply(service, evaluation(0.15, (0.5, 0.5, 0.5), at=100.0))  # psi warning on a
    apply(service, evaluation(0.3, (0.5, 0.5, 0.5), at=160.0))  # psi critical: escalates
    active = service.active_alerts("m")
    assert [(a.alert.rule, a.alert.feature, a.alert.state, a.alert.severity) for a in active] == [
        ("psi", "a", "firing", "critical")
    ]
    firing = service.registry.get_sample_value(
        "drift_monitor_alerts_firing", {"model": "m", "rule": "psi", "severity": "critical"}
    )
    assert firing == 1
    apply(service, quiet(220.0))
    assert service.active_alerts("m") == []
    assert events_of(service) == [
        ("alert.firing", "psi", "a", "warning"),
        ("alert.escalated", "psi", "a", "critical"),
        ("alert.resolved", "psi", "a", "critical"),
    ]
    history = service.alert_history(model="m", since=None, limit=100)
    assert len({e.episode for e in history}) == 1  # one episode
    queued = [orjson.loads(d.body) for d in service.deliveries(status=None, limit=100)]
    assert sorted(e["type"] for e in queued) == sorted(e[0] for e in events_of(service))
    resolved = next(e for e in queued if e["type"] == "alert.resolved")
    assert resolved["episode"] == history[-1].event_id  # the firing event's id
    assert (resolved["model"], resolved["statistic"], resolved["feature"]) == ("m", "psi", "a")
    # 220 - 3600 s and 220 s after the epoch
    assert resolved["window"] == {
        "start": "1969-12-31T23:03:40Z",
        "end": "1970-01-01T00:03:40Z",
        "n": 500,
    }
    assert resolved["reference"] == {"version": 1}
    assert resolved["top_features"][0]["feature"] in {"a", "b", "c"}
    service.stop()


def test_a_flapping_rule_within_the_cooldown_reaches_the_route_once(engine: Engine) -> None:
    service = Service(
        parse_config(config_text(cooldown="1h")), engine=engine, registry=CollectorRegistry()
    )
    service.start(run_jobs=False)
    for minute in range(6):  # drifts, recovers, drifts, ...
        at = 1000.0 + 60 * minute
        apply(service, evaluation(0.3, (0.5, 0.5, 0.5), at) if minute % 2 == 0 else quiet(at))
    history = service.alert_history(model="m", since=None, limit=100)
    assert [e.type for e in reversed(history)] == ["alert.firing", "alert.resolved"] * 3
    sent = [(e.type, e.routes) for e in reversed(history)]
    assert sent[:2] == [("alert.firing", ("hook",)), ("alert.resolved", ("hook",))]
    assert all(routes == () for _, routes in sent[2:])  # in the cooldown: recorded, not sent
    assert len(service.deliveries(status=None, limit=100)) == 2
    service.stop()


def test_drift_fires_through_evaluate_to_a_real_receiver(engine: Engine) -> None:
    receiver = Receiver()
    clock_now = [time.time()]
    config = parse_config(config_text(url=receiver.url))
    service = Service(
        config, engine=engine, registry=CollectorRegistry(), clock=lambda: clock_now[0]
    )
    service.start(run_jobs=False)
    rng = np.random.default_rng(7)
    try:
        service.store_reference(
            "m",
            [
                {"features": {"a": float(x), "b": float(y), "c": "uv"[i % 2]}}
                for i, (x, y) in enumerate(rng.normal(0, 1, (2000, 2)))
            ],
            source="test",
        )
        shifted = rng.normal(3, 1, (500, 2))
        service.store_predictions(
            "m",
            [
                {
                    "id": f"r{i}",
                    "timestamp": clock_now[0] - 60,
                    "features": {"a": float(x), "b": float(y), "c": "uv"[i % 2]},
                    "prediction": 1.0,
                }
                for i, (x, y) in enumerate(shifted)
            ],
        )
        service.evaluate("m")
        service.webhooks.run_once()
        bodies = [standardwebhooks.Webhook(SECRET).verify(b, h) for h, b in receiver.requests]
        fired = {(e["statistic"], e["feature"]) for e in bodies if e["type"] == "alert.firing"}
        assert fired == {
            ("ks_pvalue", "a"),
            ("ks_pvalue", "b"),
            ("psi", "a"),
            ("drifted_share", None),
        }
        with TestClient(create_app(service, manage_service=False)) as client:
            response = client.get("/v1/alerts", params={"model": "m"})
            active = response.json()
            assert {(a["rule"], a["feature"], a["state"]) for a in active} == {
                (rule, feature, "firing") for rule, feature in fired
            }
            history = client.get("/v1/alerts/history", params={"model": "m"}).json()
            assert {h["event_id"] for h in history} == {e["id"] for e in bodies}
            metrics = client.get("/metrics").text
            assert (
                'drift_monitor_alerts_firing{model="m",rule="ks_pvalue",severity="critical"} 2.0'
                in metrics
            )
    finally:
        service.stop()
        receiver.stop()


RETRAIN = """
models:
  - name: m
    task: regression
    features: [{name: a, type: numeric}, {name: b, type: numeric}, {name: c, type: categorical}]
    thresholds:
      psi: {critical: 0.25}
    alerts: {for: 1, routes: [hook, pipeline]}
webhooks:
  - {name: hook, url: "http://127.0.0.1:9/hook", allow_private: true}
  - {name: pipeline, url: "http://127.0.0.1:9/retrain", allow_private: true, retrain: true COOLDOWN}
"""


def psi_evaluation(a: float, b: float, at: float) -> Evaluation:
    features = (
        FeatureDrift("a", "numeric", "ok", 500, 0, {"psi": a}),
        FeatureDrift("b", "numeric", "ok", 500, 0, {"psi": b}),
    )
    return Evaluation("m", at, Window(at - 3600, at, 500), 2, 1000, features, (), 0.0, "ok")


@pytest.mark.parametrize("cooldown", ["", "1h"])
def test_a_retraining_route_gets_one_trigger_per_episode(engine: Engine, cooldown: str) -> None:
    text = RETRAIN.replace(" COOLDOWN", f", cooldown: {cooldown}" if cooldown else "")
    service = Service(parse_config(text), engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=False)
    steps = [(0.3, 0.0), (0.3, 0.4), (0.0, 0.4), (0.0, 0.0), (0.5, 0.0)]
    for minute, (a, b) in enumerate(steps):  # a fires, b fires, a resolves, b resolves, a fires
        apply(service, psi_evaluation(a, b, 1000.0 + 60 * minute))
    history = list(reversed(service.alert_history(model="m", since=None, limit=100)))
    assert [(e.type, e.feature) for e in history] == [
        ("alert.firing", "a"),
        ("alert.firing", "b"),
        ("alert.resolved", "a"),
        ("alert.resolved", "b"),
        ("alert.firing", "a"),
    ]
    second_episode = ("hook",) if cooldown else ("hook", "pipeline")
    assert [e.routes for e in history] == [
        ("hook", "pipeline"),  # the episode starts: the pipeline is triggered
        ("hook",),  # the model is already in alert
        ("hook",),  # resolutions never go to the pipeline
        ("hook",),
        second_episode,  # a new episode, unless within the pipeline's cooldown
    ]
    trigger = next(
        orjson.loads(d.body)
        for d in reversed(service.deliveries(status=None, limit=100))  # oldest first
        if d.route == "pipeline"
    )
    # 1000 - 3600 s and 1000 s after the epoch
    start, end = "1969-12-31T23:16:40Z", "1970-01-01T00:16:40Z"
    assert trigger["window"] == {"start": start, "end": end, "n": 500}
    assert trigger["links"]["export"] == f"/v1/models/m/export?start={start}&end={end}"
    service.stop()


def test_export_streams_the_window_with_labels(engine: Engine) -> None:
    import csv
    import io

    config = parse_config("""
models:
  - name: m
    task: classification
    classes: ["no", "yes"]
    features: [{name: x, type: numeric}, {name: c, type: categorical}]
""")
    service = Service(config, engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=False)
    records = [
        {
            "id": f"r{i}",
            "timestamp": 100.0 + i,
            "features": {"x": None if i == 3 else i / 2, "c": "u" if i % 2 else None},
            "prediction": "yes" if i % 3 else "no",
            "scores": {"yes": 0.25, "no": 0.75},
            **({"model_version": "v2"} if i == 3 else {}),
        }
        for i in range(8)
    ]
    service.store_predictions("m", records)
    service.store_labels("m", [{"id": "r4", "label": "no", "timestamp": 500.0}])
    with TestClient(create_app(service, manage_service=False)) as client:
        window = {"start": "101", "end": "1970-01-01T00:01:46Z"}  # (101, 106]: r2 .. r6
        lines = client.get("/v1/models/m/export", params=window)
        assert lines.headers["content-type"].startswith("application/x-ndjson")
        exported = [orjson.loads(line) for line in lines.text.splitlines()]
        assert [e["id"] for e in exported] == ["r2", "r3", "r4", "r5", "r6"]
        assert exported[1] == {
            "id": "r3",
            "timestamp": "1970-01-01T00:01:43Z",
            "features": {"x": None, "c": "u"},
            "prediction": "no",
            "scores": {"yes": 0.25, "no": 0.75},
            "label": None,
            "label_timestamp": None,
            "model_version": "v2",
        }
        assert (exported[2]["label"], exported[2]["label_timestamp"]) == (
            "no",
            "1970-01-01T00:08:20Z",
        )
        assert exported[2]["model_version"] is None
        table = client.get("/v1/models/m/export", params={**window, "format": "csv"})
        assert table.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(table.text)))
        assert rows[0] == [
            "id",
            "timestamp",
            "x",
            "c",
            "prediction",
            "score_no",  # the classes in config order
            "score_yes",
            "label",
            "label_timestamp",
            "model_version",
        ]
        assert rows[1:3] == [
            ["r2", "1970-01-01T00:01:42Z", "1.0", "", "yes", "0.75", "0.25", "", "", ""],
            ["r3", "1970-01-01T00:01:43Z", "", "u", "no", "0.75", "0.25", "", "", "v2"],
        ]
        assert rows[3][7:] == ["no", "1970-01-01T00:08:20Z", ""] and len(rows) == 6
        bad = client.get("/v1/models/m/export", params={"start": "yesterday", "end": "1"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.start"
    service.stop()


def test_per_feature_overrides_replace_the_levels_for_that_feature() -> None:
    config = parse_config("""
models:
  - name: m
    task: regression
    features: [{name: a, type: numeric}, {name: b, type: numeric}]
    thresholds:
      psi: {warning: 0.1, critical: 0.25, overrides: {a: {critical: 0.5}}}
""").models[0]
    found = {o.feature: o for o in observe(config, psi_evaluation(0.3, 0.3, 10.0))}
    assert (found["a"].severity, found["a"].threshold) == (None, None)  # no warning level for a
    assert (found["b"].severity, found["b"].threshold) == ("critical", 0.25)
    assert config.thresholds_for("a")["psi"].critical == 0.5


def test_an_override_for_an_unknown_feature_is_a_config_error() -> None:
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        parse_config("""
models:
  - name: m
    task: regression
    features: [{name: a, type: numeric}]
    thresholds:
      psi:
        critical: 0.25
        overrides: {b: {critical: 0.5}}
""")
    assert [str(i) for i in error.value.issues] == [
        "monitor.yaml:9: models[0].thresholds.psi.overrides.b: 'b' is not a feature of model 'm'"
    ]


def test_thresholds_from_the_config_are_exported(engine: Engine) -> None:
    service = Service(parse_config(config_text()), engine=engine, registry=CollectorRegistry())
    value = service.registry.get_sample_value
    assert (
        value("drift_monitor_threshold", {"model": "m", "statistic": "psi", "severity": "warning"})
        == 0.1
    )
    assert (
        value("drift_monitor_threshold", {"model": "m", "statistic": "psi", "severity": "critical"})
        == 0.25
    )
    assert (
        value(
            "drift_monitor_threshold",
            {"model": "m", "statistic": "ks_pvalue", "severity": "warning"},
        )
        is None
    )
    assert (
        value("drift_monitor_alerts_firing", {"model": "m", "rule": "psi", "severity": "critical"})
        == 0
    )
