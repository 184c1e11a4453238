"""Scheduled and on-demand drift evaluation through the real app, on SQLite and PostgreSQL.

Expected values come from scipy on the same raw data, not from our own code.
"""

from __future__ import annotations

from collections.abc import Iterator
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
from monitor.service import Service

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
    thresholds:
      psi: {warning: 0.1, critical: 0.25}
      ks_pvalue: {critical: 0.01}
"""


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(engine: Engine, clock: Clock) -> Service:
    config = parse_config(CONFIG)
    return Service(config, engine=engine, registry=CollectorRegistry(), clock=clock)


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as client:
        yield client


def put_reference(client: TestClient, ages: np.ndarray, countries: list[str]) -> None:
    records = [
        {"features": {"age": float(a), "country": c}, "prediction": "approved", "label": "approved"}
        for a, c in zip(ages, countries, strict=True)
    ]
    response = client.put(
        "/v1/models/credit/reference",
        content=orjson.dumps(records),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201, response.text


def post_window(
    client: TestClient, ages: np.ndarray, countries: list[str | None], *, at: float, prefix: str
) -> None:
    records = [
        {
            "id": f"{prefix}{i}",
            "timestamp": at - i,
            "features": {"age": None if np.isnan(a) else float(a), "country": c},
            "prediction": "rejected" if i % 3 else "approved",
        }
        for i, (a, c) in enumerate(zip(ages, countries, strict=True))
    ]
    response = client.post(
        "/v1/models/credit/predictions",
        content=orjson.dumps(records),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 202, response.text


def evaluate(client: TestClient) -> dict[str, Any]:
    response = client.post("/v1/models/credit/evaluate")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_evaluation_matches_scipy(client: TestClient) -> None:
    rng = np.random.default_rng(42)
    reference_ages = rng.normal(40, 10, 400)
    reference_countries = list(rng.choice(["DE", "FR", "US"], 400, p=[0.5, 0.3, 0.2]))
    put_reference(client, reference_ages, reference_countries)
    current_ages = rng.normal(45, 10, 300)
    current_ages[:10] = np.nan
    current_countries: list[str | None] = list(rng.choice(["DE", "FR", "US", "GB"], 300))
    current_countries[0] = None
    post_window(client, current_ages, current_countries, at=NOW - 10, prefix="c")
    post_window(client, rng.normal(0, 1, 50), ["DE"] * 50, at=NOW - 7200, prefix="old")

    result = evaluate(client)
    assert result["model"] == "credit"
    assert result["window"]["n"] == 300
    assert result["window"]["end"] == "2027-01-15T08:00:00Z"
    assert result["reference"] == {"version": 1, "n": 400}
    age = result["features"]["age"]
    present = current_ages[~np.isnan(current_ages)]
    expected = scipy.stats.ks_2samp(reference_ages, present)
    assert age["n"] == 290 and age["missing"] == 10
    assert age["missing_ratio"] == pytest.approx(10 / 300, abs=1e-12)
    assert age["ks_statistic"] == pytest.approx(expected.statistic, abs=1e-9)
    assert age["ks_pvalue"] == pytest.approx(expected.pvalue, abs=1e-9)
    assert age["wasserstein"] == pytest.approx(
        scipy.stats.wasserstein_distance(reference_ages, present), rel=1e-9
    )
    assert age["wasserstein_normalized"] == pytest.approx(
        age["wasserstein"] / np.std(reference_ages), rel=1e-9
    )
    assert age["status"] == "critical"  # p-value far below 0.01
    country = result["features"]["country"]
    assert "ks_pvalue" not in country
    counts = {c: current_countries.count(c) for c in ("DE", "FR", "US", "GB")}
    table = [
        [reference_countries.count(c) for c in ("DE", "FR", "US", "GB")],
        [counts[c] for c in ("DE", "FR", "US", "GB")],
    ]
    chi2 = scipy.stats.chi2_contingency(table, correction=False)
    assert country["chi2_statistic"] == pytest.approx(chi2.statistic, rel=1e-9)
    assert country["chi2_pvalue"] == pytest.approx(chi2.pvalue, abs=1e-9)
    assert country["n"] == 299 and country["missing"] == 1
    assert set(result["outputs"]) == {"__prediction__", "__label__"}
    assert result["outputs"]["__prediction__"]["type"] == "categorical"
    assert result["outputs"]["__prediction__"]["n"] == 300
    assert result["outputs"]["__label__"]["status"] == "insufficient"  # no labels yet
    assert result["outputs"]["__label__"]["n"] == 0


def test_psi_matches_a_hand_computation(client: TestClient) -> None:
    # Reference 1..100 with 10 bins: deciles at 10.9, 20.8, ... ; current all in the lowest bin.
    reference = np.arange(1, 101, dtype=float)
    put_reference(client, reference, ["DE"] * 100)
    current = np.full(60, 1.0)
    post_window(client, current, ["DE"] * 60, at=NOW, prefix="c")
    result = evaluate(client)
    # bins hold 10% each in the reference; the current has 100% in bin 0 and 0 elsewhere,
    # smoothed to 1e-4: PSI = (1 - .1) ln(1/.1) + 9 (1e-4 - .1) ln(1e-4/.1)
    expected = 0.9 * np.log(10) + 9 * (1e-4 - 0.1) * np.log(1e-4 / 0.1)
    assert result["features"]["age"]["psi"] == pytest.approx(expected, rel=1e-9)
    assert result["features"]["country"]["psi"] == pytest.approx(0.0, abs=1e-12)
    assert result["features"]["country"]["status"] == "ok"


def test_insufficient_samples_invent_no_statistic(client: TestClient) -> None:
    put_reference(client, np.arange(100, dtype=float), ["DE"] * 100)
    post_window(client, np.arange(49, dtype=float), ["DE"] * 49, at=NOW, prefix="c")
    result = evaluate(client)
    for name in ("age", "country"):
        feature = result["features"][name]
        assert feature["status"] == "insufficient"
        assert feature["n"] == 49
        assert set(feature) == {"type", "status", "n", "missing", "missing_ratio"}
    assert result["drifted_share"] is None


def test_no_reference_yet(client: TestClient) -> None:
    post_window(client, np.arange(60, dtype=float), ["DE"] * 60, at=NOW, prefix="c")
    result = evaluate(client)
    assert result["reference"] == {"version": None, "n": 0}
    assert result["features"]["age"]["status"] == "no_reference"


def test_history_latest_and_metrics(client: TestClient, clock: Clock, service: Service) -> None:
    assert client.get("/v1/models/credit/drift").status_code == 404
    rng = np.random.default_rng(1)
    put_reference(client, rng.normal(0, 1, 200), ["DE"] * 200)
    post_window(client, rng.normal(0, 1, 100), ["DE"] * 100, at=NOW, prefix="a")
    first = evaluate(client)
    clock.now += 60
    second = evaluate(client)
    assert client.get("/v1/models/credit/drift").json() == second
    history = client.get("/v1/models/credit/drift/history").json()
    ids = [entry.pop("id") for entry in history["evaluations"]]  # the store's, for reproduce
    assert history["evaluations"] == [first, second] and ids[0] < ids[1]
    since = client.get(
        "/v1/models/credit/drift/history", params={"since": "2027-01-15T08:00:30Z"}
    ).json()
    assert [{k: v for k, v in e.items() if k != "id"} for e in since["evaluations"]] == [second]
    only_age = client.get("/v1/models/credit/drift/history", params={"feature": "age"}).json()
    assert [set(e["features"]) for e in only_age["evaluations"]] == [{"age"}, {"age"}]
    assert (
        client.get("/v1/models/credit/drift/history", params={"feature": "nope"}).status_code == 404
    )
    bad = client.get("/v1/models/credit/drift/history", params={"since": "yesterday"})
    assert bad.status_code == 422

    registry = service.registry
    labels = {"model": "credit", "feature": "age"}
    assert registry.get_sample_value("drift_monitor_feature_psi", labels) == pytest.approx(
        second["features"]["age"]["psi"]
    )
    assert registry.get_sample_value("drift_monitor_feature_ks_pvalue", labels) == pytest.approx(
        second["features"]["age"]["ks_pvalue"]
    )
    assert registry.get_sample_value(
        "drift_monitor_feature_chi2_pvalue", {"model": "credit", "feature": "country"}
    ) == pytest.approx(second["features"]["country"]["chi2_pvalue"])
    assert (
        registry.get_sample_value(
            "drift_monitor_window_samples", {"model": "credit", "window": "current"}
        )
        == 100
    )
    assert (
        registry.get_sample_value(
            "drift_monitor_last_evaluation_timestamp_seconds", {"model": "credit"}
        )
        == NOW + 60
    )
    assert (
        registry.get_sample_value(
            "drift_monitor_evaluation_duration_seconds_count", {"model": "credit"}
        )
        == 2
    )
    text = client.get("/metrics").text
    assert 'drift_monitor_feature_psi{feature="age",model="credit"}' in text


def test_latest_evaluation_survives_restart(engine: Engine, clock: Clock) -> None:
    config = parse_config(CONFIG)
    first = Service(config, engine=engine, registry=CollectorRegistry(), clock=clock)
    with TestClient(create_app(first)) as client:
        put_reference(client, np.arange(100, dtype=float), ["DE"] * 100)
        post_window(client, np.arange(100, dtype=float), ["FR"] * 100, at=NOW, prefix="c")
        evaluate(client)
    second = Service(config, engine=engine, registry=CollectorRegistry(), clock=clock)
    second.start(run_jobs=False)
    assert second.registry.get_sample_value(
        "drift_monitor_feature_psi", {"model": "credit", "feature": "age"}
    ) == pytest.approx(0.0, abs=1e-12)
    assert (
        second.registry.get_sample_value(
            "drift_monitor_feature_status", {"model": "credit", "feature": "country"}
        )
        == 2
    )
    second.stop()
