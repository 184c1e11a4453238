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
        "drift_monitor_alert_firing", {"model": "m", "rule": "psi", "severity": "critical"}
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
    assert resolved["window"] == {"start": 220.0 - 3600, "end": 220.0, "n": 500}
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
                'drift_monitor_alert_firing{model="m",rule="ks_pvalue",severity="critical"} 2.0'
                in metrics
            )
    finally:
        service.stop()
        receiver.stop()
