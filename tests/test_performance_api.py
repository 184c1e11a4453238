"""Rolling performance through the real app on SQLite and PostgreSQL, against scikit-learn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
import sklearn.metrics as skm
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.api import create_app
from monitor.config import parse_config
from monitor.service import Service

NOW = 1_800_000_000.0
CONFIG = """
models:
  - name: clf
    task: classification
    classes: [no, yes]
    features: [{name: x, type: numeric}]
    window: {duration: 1h}
    min_samples: 20
    thresholds: {accuracy: {warning: 0.9, critical: 0.6}}
  - name: reg
    task: regression
    features: [{name: x, type: numeric}]
    min_samples: 20
"""


@pytest.fixture
def service(engine: Engine) -> Service:
    return Service(
        parse_config(CONFIG), engine=engine, registry=CollectorRegistry(), clock=lambda: NOW
    )


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as client:
        yield client


def post(client: TestClient, path: str, body: Any) -> Any:
    response = client.post(
        path, content=orjson.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code in (200, 202), response.text
    return response.json()


def test_classification_metrics_equal_scikit_learn(client: TestClient, service: Service) -> None:
    rng = np.random.default_rng(11)
    n = 400
    p_yes = rng.random(n)
    predicted = np.where(p_yes > 0.5, "yes", "no")
    truth = np.where(rng.random(n) < p_yes, "yes", "no")
    reference = [
        {
            "features": {"x": float(v)},
            "prediction": str(pr),
            "label": str(t),
            "scores": {"no": float(1 - s), "yes": float(s)},
        }
        for v, pr, t, s in zip(rng.normal(size=n), predicted, truth, p_yes, strict=True)
    ]
    response = client.put(
        "/v1/models/clf/reference",
        content=orjson.dumps(reference),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201
    scores = rng.random(300)
    current_pred = np.where(scores > 0.5, "yes", "no")
    current_true = np.where(rng.random(300) < scores * 0.8, "yes", "no")
    post(
        client,
        "/v1/models/clf/predictions",
        [
            {
                "id": f"r{i}",
                "timestamp": NOW - 100 - i,
                "features": {"x": 0.1},
                "prediction": str(current_pred[i]),
                "scores": {"no": float(1 - scores[i]), "yes": float(scores[i])},
            }
            for i in range(300)
        ],
    )
    labelled = range(0, 300, 2)  # half the window gets labels, some before their prediction
    post(
        client,
        "/v1/models/clf/labels",
        [{"id": f"r{i}", "label": str(current_true[i]), "timestamp": NOW - 50} for i in labelled],
    )
    post(client, "/v1/models/clf/labels", [{"id": "ghost", "label": "yes"}])
    result = post(client, "/v1/models/clf/evaluate", None)
    idx = list(labelled)
    y_true, y_pred, y_score = current_true[idx], current_pred[idx], scores[idx]
    performance = result["performance"]
    assert performance["n"] == 150
    assert performance["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-9)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=["no", "yes"], average="macro", zero_division=np.nan
    )
    assert performance["precision"] == pytest.approx(precision, abs=1e-9)
    assert performance["recall"] == pytest.approx(recall, abs=1e-9)
    assert performance["f1"] == pytest.approx(f1, abs=1e-9)
    assert performance["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y_true == "yes", y_score), abs=1e-9
    )
    assert performance["average_precision"] == pytest.approx(
        skm.average_precision_score(y_true == "yes", y_score), abs=1e-9
    )
    assert performance["log_loss"] == pytest.approx(
        skm.log_loss(y_true, np.column_stack([1 - y_score, y_score]), labels=["no", "yes"]),
        abs=1e-9,
    )
    assert (
        performance["confusion_matrix"]
        == skm.confusion_matrix(y_true, y_pred, labels=["no", "yes"]).tolist()
    )
    assert performance["accuracy_lower"] < performance["accuracy"] < performance["accuracy_upper"]
    assert 0.3 < performance["estimated_accuracy"] < 1.0
    labels = result["labels"]
    assert labels["predictions"] == 300 and labels["labelled"] == 150
    assert labels["coverage"] == 0.5
    assert labels["unmatched"] == 1
    assert labels["delay_seconds_p50"] == pytest.approx(np.median([50 + i for i in idx]))
    registry = service.registry
    assert registry.get_sample_value("drift_monitor_model_accuracy", {"model": "clf"}) == (
        pytest.approx(performance["accuracy"])
    )
    assert registry.get_sample_value("drift_monitor_label_coverage_ratio", {"model": "clf"}) == 0.5
    assert registry.get_sample_value(
        "drift_monitor_model_estimated_accuracy", {"model": "clf"}
    ) == pytest.approx(performance["estimated_accuracy"])
    assert (
        registry.get_sample_value("drift_monitor_label_delay_seconds_count", {"model": "clf"})
        == 150
    )
    history = client.get("/v1/models/clf/performance/history").json()["evaluations"]
    assert [h["performance"] for h in history] == [performance]


def test_regression_metrics_equal_scikit_learn(client: TestClient) -> None:
    rng = np.random.default_rng(5)
    y_pred = rng.normal(10, 3, 120)
    y_true = y_pred + rng.normal(0, 1, 120)
    y_true[:3] = 0.0  # MAPE skips zero targets
    post(
        client,
        "/v1/models/reg/labels",
        [{"id": str(i), "label": float(t)} for i, t in enumerate(y_true)],
    )
    post(
        client,
        "/v1/models/reg/predictions",
        [
            {"id": str(i), "timestamp": NOW - 10, "features": {"x": 1.0}, "prediction": float(p)}
            for i, p in enumerate(y_pred)
        ],
    )
    performance = post(client, "/v1/models/reg/evaluate", None)["performance"]
    assert performance["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred), abs=1e-9)
    assert performance["rmse"] == pytest.approx(
        np.sqrt(skm.mean_squared_error(y_true, y_pred)), abs=1e-9
    )
    assert performance["r2"] == pytest.approx(skm.r2_score(y_true, y_pred), abs=1e-9)
    assert performance["mape"] == pytest.approx(
        skm.mean_absolute_percentage_error(y_true[3:], y_pred[3:]), abs=1e-9
    )


def test_thin_labels_are_insufficient(client: TestClient) -> None:
    post(
        client,
        "/v1/models/clf/predictions",
        [
            {"id": str(i), "timestamp": NOW - 10, "features": {"x": 1.0}, "prediction": "yes"}
            for i in range(30)
        ],
    )
    post(client, "/v1/models/clf/labels", [{"id": str(i), "label": "no"} for i in range(5)])
    result = post(client, "/v1/models/clf/evaluate", None)
    assert result["performance"]["status"] == "insufficient"
    assert "accuracy" not in result["performance"]
    assert result["labels"]["coverage"] == pytest.approx(5 / 30)


def test_all_wrong_is_critical(client: TestClient) -> None:
    post(
        client,
        "/v1/models/clf/predictions",
        [
            {"id": str(i), "timestamp": NOW - 10, "features": {"x": 1.0}, "prediction": "yes"}
            for i in range(30)
        ],
    )
    post(client, "/v1/models/clf/labels", [{"id": str(i), "label": "no"} for i in range(30)])
    performance = post(client, "/v1/models/clf/evaluate", None)["performance"]
    assert performance["accuracy"] == 0.0
    assert performance["status"] == "critical"
    assert performance["per_class"]["yes"]["precision"] == 0.0
    assert performance["per_class"]["no"]["precision"] is None  # never predicted
