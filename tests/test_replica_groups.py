"""Replicas on one database evaluating a model with segments, fairness and model versions:
one evaluation stored per tick, one alert event per transition whichever replica evaluated
(segment, fairness and canary rules included), and every replica exporting the same segment,
fairness and version gauges as the one that evaluated. On SQLite and PostgreSQL; each replica is
a ``Service`` with an engine of its own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.config import parse_config
from monitor.service import Service
from monitor.storage import create_database_engine
from tests.test_ticks import Clock, model_gauges

CONFIG = """
models:
  - name: m
    task: classification
    classes: [approved, denied]
    features:
      - {name: x, type: numeric}
      - {name: country, type: categorical}
      - {name: gender, type: categorical}
    window: {duration: 1h}
    schedule: 10s
    min_samples: 20
    versions: {stable: v1, canary: v2}
    segments:
      - {name: market, feature: country, values: [FR, DE]}
      - {name: sex, feature: gender}
    fairness: {sensitive: [gender], positive: approved}
    thresholds:
      psi: {critical: 0.25}
      accuracy: {warning: 0.7}
      canary_psi: {critical: 0.25}
      canary_accuracy_delta: {critical: -0.05}
      demographic_parity_ratio: {critical: 0.8}
    alerts: {for: 1}
"""
T0 = 1_800_000_000.0


@pytest.fixture
def replicas(database_url: str) -> Iterator[Callable[[Clock], Service]]:
    made: list[Service] = []

    def make(clock: Clock) -> Service:
        service = Service(
            parse_config(CONFIG),
            engine=create_database_engine(database_url),
            registry=CollectorRegistry(),
            clock=clock,
        )
        service.start(run_jobs=False)
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop()


def traffic(rng: np.random.Generator, n: int, start: int, at: float) -> list[dict[str, Any]]:
    """v2 (a third of the records) is shifted in x and approves women less often."""
    records = []
    for i in range(n):
        version = "v2" if i % 3 == 0 else "v1"
        gender = "f" if i % 2 else "m"
        approve = rng.random() < (0.1 if version == "v2" and gender == "f" else 0.6)
        records.append(
            {
                "id": f"r{start + i}",
                "timestamp": at - 1 - i % 600,
                "features": {
                    "x": float(rng.normal(2.0 if version == "v2" else 0.0)),
                    "country": ["FR", "DE", "IT"][i % 3],
                    "gender": gender,
                },
                "prediction": "approved" if approve else "denied",
                "model_version": version,
            }
        )
    return records


def test_replicas_store_one_evaluation_and_one_event_per_transition_and_export_alike(
    replicas: Callable[[Clock], Service],
) -> None:
    rng = np.random.default_rng(3)
    clock = Clock(T0)
    a, b = replicas(clock), replicas(clock)
    reference = [
        {
            "features": {
                "x": float(rng.normal()),
                "country": ["FR", "DE", "IT"][i % 3],
                "gender": "f" if i % 2 else "m",
            },
            "prediction": "approved" if rng.random() < 0.6 else "denied",
        }
        for i in range(600)
    ]
    a.store_reference("m", reference, source="t")
    config = a.model("m")
    records = traffic(rng, 900, 0, T0)
    a.store_predictions("m", records)
    labels = [
        {"id": r["id"], "label": r["prediction"] if rng.random() < 0.9 else "denied"}
        for r in records
    ]
    b.store_labels("m", labels)
    clock.now = T0 + 3.0
    ran = [a.ticks.run(config), b.ticks.run(config)]
    assert sorted(map(len, ran)) == [0, 1]
    [tick] = ran[0] or ran[1]
    assert len(a.evaluation_history("m", since=None, until=None, limit=100)) == 1
    winner, other = (a, b) if ran[0] else (b, a)
    events = winner.alert_history(model="m", since=None, limit=1000)
    fired = Counter((e.rule, e.feature) for e in events if e.type == "alert.firing")
    # the canary, a segment and the fairness breach their levels
    assert set(fired) >= {
        ("canary_psi", "x"),
        ("psi", "market=FR/x"),
        ("demographic_parity_ratio", "gender"),
    }
    assert set(fired.values()) == {1}
    gauges = model_gauges(winner)
    assert any(name.startswith("drift_monitor_segment_") for name, _ in gauges)
    assert any(name.startswith("drift_monitor_fairness_") for name, _ in gauges)
    assert any(name.startswith("drift_monitor_version_") for name, _ in gauges)
    assert model_gauges(other) == gauges  # the loser adopted the stored evaluation
    # the next tick, with the same window: evaluated once, and no event repeated
    clock.now = tick + 10.5
    ran = [other.ticks.run(config), winner.ticks.run(config)]
    assert sorted(map(len, ran)) == [0, 1]
    assert len(a.evaluation_history("m", since=None, until=None, limit=100)) == 2
    again = a.alert_history(model="m", since=None, limit=1000)
    assert Counter((e.rule, e.feature, e.type) for e in again) == Counter(
        (e.rule, e.feature, e.type) for e in events
    )
    assert model_gauges(a) == model_gauges(b)
