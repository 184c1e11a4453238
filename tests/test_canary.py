"""Canary against stable: per-version drift and accuracy, the canary's drift against the stable
version in the same window (checked against scipy on the two versions' raw values), the
difference in accuracy with Newcombe's interval (checked against the formula written here with
scipy), alert rules, gauges and the evaluation JSON. On SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import orjson
import pytest
import scipy.stats
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.api import create_app
from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.service import Service
from monitor.stats.performance.interval import newcombe_difference_interval

NOW = 1_800_000_000.0
CONFIG = """
models:
  - name: credit
    task: classification
    classes: [approved, rejected]
    features:
      - {name: age, type: numeric}
      - {name: country, type: categorical}
    window: {duration: 1h}
    min_samples: 50
    versions: VERSIONS
    thresholds:
      psi: {warning: 0.1, critical: 0.25}
      canary_psi: {warning: 0.1, critical: 0.25}
      canary_accuracy_delta: {warning: -0.02, critical: -0.05}
    alerts: {for: 1, routes: [hook]}
webhooks:
  - name: hook
    url: "http://127.0.0.1:9/x"
    secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    allow_private: true
"""


def config_text(versions: str = "{stable: v1, canary: v2}") -> str:
    return CONFIG.replace("VERSIONS", versions)


def newcombe_reference(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Newcombe (1998) method 10, from the Wilson score bounds solved as the roots of
    |p - p_hat| = z sqrt(p (1 - p) / n), z from scipy."""
    z = scipy.stats.norm.ppf(0.975)

    def wilson(x: int, n: int) -> tuple[float, float]:
        p = x / n
        # (1 + z²/n) p² - (2 p_hat + z²/n) p + p_hat² = 0
        a, b, c = 1 + z * z / n, -(2 * p + z * z / n), p * p
        root = math.sqrt(b * b - 4 * a * c)
        return (-b - root) / (2 * a), (-b + root) / (2 * a)

    (l1, u1), (l2, u2) = wilson(x1, n1), wilson(x2, n2)
    p1, p2 = x1 / n1, x2 / n2
    return (
        p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"), [(56, 70, 48, 80), (9, 10, 3, 10), (0, 20, 5, 25), (60, 60, 1, 90)]
)
def test_newcombe_interval_matches_the_formula(x1: int, n1: int, x2: int, n2: int) -> None:
    got = newcombe_difference_interval(successes_1=x1, n_1=n1, successes_2=x2, n_2=n2)
    assert got == pytest.approx(newcombe_reference(x1, n1, x2, n2), abs=1e-12)


def test_newcombe_published_example() -> None:
    # Newcombe (1998), Table II, (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339
    low, high = newcombe_difference_interval(successes_1=56, n_1=70, successes_2=48, n_2=80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@contextmanager
def serving(engine: Engine, versions: str = "{stable: v1, canary: v2}") -> Iterator[Service]:
    service = Service(
        parse_config(config_text(versions)),
        engine=engine,
        registry=CollectorRegistry(),
        clock=Clock(),
    )
    service.start(run_jobs=False)
    with TestClient(create_app(service, manage_service=False, stop_service=True)) as client:
        service.test_client = client  # type: ignore[attr-defined]
        yield service


def send(client: TestClient, path: str, records: list[dict[str, Any]], status: int) -> None:
    response = client.request(
        "PUT" if path == "reference" else "POST",
        f"/v1/models/credit/{path}",
        content=orjson.dumps(records),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text


def load(client: TestClient) -> dict[str, Any]:
    """A reference, 400 records of v1 (90% right) and 200 of v2 (older, 70% right), and
    every record labelled but one in ten; returns what was sent, by version."""
    rng = np.random.default_rng(11)
    reference = [
        {"features": {"age": float(a), "country": str(c)}, "prediction": "approved"}
        for a, c in zip(rng.normal(40, 10, 500), rng.choice(["DE", "FR"], 500), strict=True)
    ]
    send(client, "reference", reference, 201)
    sent: dict[str, Any] = {}
    records, labels = [], []
    for version, n, mean, right in (
        ("v1", 400, 40.0, 0.9),
        ("v2", 200, 46.0, 0.7),
        ("v3", 30, 40.0, 0.5),
    ):
        ages = rng.normal(mean, 10, n)
        countries = rng.choice(["DE", "FR"], n)
        predicted = rng.choice(["approved", "rejected"], n)
        correct = rng.random(n) < right
        truth = np.where(
            correct, predicted, np.where(predicted == "approved", "rejected", "approved")
        )
        labelled = np.arange(n) % 10 != 0
        sent[version] = {"ages": ages, "predicted": predicted, "truth": truth, "labelled": labelled}
        for i in range(n):
            record_id = f"{version}-{i}"
            records.append(
                {
                    "id": record_id,
                    "timestamp": NOW - 1 - i,
                    "features": {"age": float(ages[i]), "country": str(countries[i])},
                    "prediction": str(predicted[i]),
                    "model_version": version,
                }
            )
            if labelled[i]:
                labels.append({"id": record_id, "timestamp": NOW, "label": str(truth[i])})
    send(client, "predictions", records, 202)
    send(client, "labels", labels, 202)
    return sent


def accuracy(part: dict[str, Any]) -> tuple[int, int]:
    keep = part["labelled"]
    return int((part["predicted"][keep] == part["truth"][keep]).sum()), int(keep.sum())


def test_canary_against_stable_in_the_same_window(engine: Engine) -> None:
    with serving(engine) as service:
        client = service.test_client  # type: ignore[attr-defined]
        sent = load(client)
        result = client.post("/v1/models/credit/evaluate").json()
        versions = result["versions"]
        assert result["lineage"]["model_versions"] == {"v1": 400, "v2": 200, "v3": 30}
        (x1, n1), (x2, n2) = accuracy(sent["v2"]), accuracy(sent["v1"])
        assert versions["stable"]["version"] == "v1" and versions["canary"]["version"] == "v2"
        assert (versions["stable"]["n"], versions["canary"]["n"]) == (400, 200)
        assert (versions["stable"]["labelled"], versions["canary"]["labelled"]) == (n2, n1)
        assert versions["stable"]["accuracy"] == pytest.approx(x2 / n2, abs=1e-12)
        assert versions["canary"]["accuracy"] == pytest.approx(x1 / n1, abs=1e-12)
        compared = versions["canary_vs_stable"]
        age = compared["features"]["age"]
        expected = scipy.stats.ks_2samp(sent["v2"]["ages"], sent["v1"]["ages"])
        assert age["n"] == 200
        assert age["ks_statistic"] == pytest.approx(expected.statistic, abs=1e-12)
        assert age["wasserstein"] == pytest.approx(
            scipy.stats.wasserstein_distance(sent["v2"]["ages"], sent["v1"]["ages"]), rel=1e-9
        )
        assert compared["accuracy_delta"] == pytest.approx(x1 / n1 - x2 / n2, abs=1e-12)
        lower, upper = newcombe_reference(x1, n1, x2, n2)
        assert compared["accuracy_delta_lower"] == pytest.approx(lower, abs=1e-12)
        assert compared["accuracy_delta_upper"] == pytest.approx(upper, abs=1e-12)
        # the stable version against the reference: the same distribution, so no drift
        assert versions["stable"]["psi"]["age"] < 0.1 < age["psi"]

        registry = service.registry
        labels = {"model": "credit", "stable": "v1", "canary": "v2"}
        assert registry.get_sample_value(
            "drift_monitor_canary_psi", {**labels, "feature": "age"}
        ) == pytest.approx(age["psi"], abs=1e-12)
        assert registry.get_sample_value(
            "drift_monitor_canary_accuracy_delta", {**labels, "bound": "lower"}
        ) == pytest.approx(lower, abs=1e-12)
        records = "drift_monitor_version_records"
        assert registry.get_sample_value(records, {"model": "credit", "version": "v2"}) == 200
        # only the compared versions are label values, never every version of the traffic
        assert registry.get_sample_value(records, {"model": "credit", "version": "v3"}) is None

        events = [orjson.loads(d.body) for d in service.deliveries(status=None, limit=100)]
        fired = {
            (e["rule"], e["feature"], e["severity"]) for e in events if e["type"] == "alert.firing"
        }
        assert ("canary_psi", "age", "critical") in fired
        assert ("canary_accuracy_delta", None, "critical") in fired
        delta = next(e for e in events if e["rule"] == "canary_accuracy_delta")
        assert delta["value"] == pytest.approx(x1 / n1 - x2 / n2, abs=1e-12)
        assert delta["threshold"] == -0.05


def test_compare_takes_the_two_most_frequent_versions(engine: Engine) -> None:
    with serving(engine, "compare") as service:
        client = service.test_client  # type: ignore[attr-defined]
        load(client)
        versions = client.post("/v1/models/credit/evaluate").json()["versions"]
        assert (versions["stable"]["version"], versions["canary"]["version"]) == ("v1", "v2")
        [stored] = client.get("/v1/models/credit/drift/history").json()["evaluations"]
        assert service.reproduce("credit", stored["id"]).identical  # the comparison included


def test_few_labelled_records_hold_the_accuracy_rule(engine: Engine) -> None:
    with serving(engine, "{stable: v1, canary: v3}") as service:  # v3: 27 labelled < 50
        client = service.test_client  # type: ignore[attr-defined]
        load(client)
        compared = client.post("/v1/models/credit/evaluate").json()["versions"]["canary_vs_stable"]
        assert compared["accuracy_delta"] is None and compared["status"] == "insufficient"
        events = [orjson.loads(d.body) for d in service.deliveries(status=None, limit=100)]
        assert not [e for e in events if str(e["rule"]).startswith("canary_")]


@pytest.mark.parametrize(
    ("versions", "thresholds", "message"),
    [
        ("{stable: v1, canary: v1}", "", "two different versions"),
        (
            "{stable: v1, canary: v2}",
            "\n      canary_psi: {critical: auto}",
            "auto is not available",
        ),
        ("{stable: v1}", "", "canary"),
    ],
)
def test_bad_versions_config_is_refused(versions: str, thresholds: str, message: str) -> None:
    text = config_text(versions)
    if thresholds:
        old = "\n      canary_psi: {warning: 0.1, critical: 0.25}"
        text = text.replace(old, thresholds)
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert message in str(caught.value)
