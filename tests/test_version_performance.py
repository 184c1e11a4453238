"""Per-version performance of the canary comparison: each compared version's labelled records
scored by the same function as the whole window, through the real service on SQLite and
PostgreSQL, equal to scikit-learn's on the version's subset (classification with scores, and
regression), in the evaluation JSON (read back unchanged) and the per-version gauges."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm
from group_records import NOW, running
from sqlalchemy import Engine

from monitor.evaluation.document import from_document, to_document
from monitor.service import Service

CONFIG = """
models:
  - name: credit
    task: classification
    classes: [approved, rejected]
    features: [{name: age, type: numeric}]
    window: {duration: 1h}
    min_samples: 50
    versions: {stable: v1, canary: v2}
    thresholds:
      accuracy: {warning: 0.8}
      f1: {critical: auto}
    calibration: {false_alarms_per_week: 1}
  - name: demand
    task: regression
    features: [{name: x, type: numeric}]
    window: {duration: 1h}
    min_samples: 50
    versions: compare
    thresholds: {mae: {warning: 1.5}}
"""
CLASSES = np.array(["approved", "rejected"])


@pytest.fixture
def service(engine: Engine) -> Iterator[Service]:
    with running(engine, CONFIG) as service:
        yield service


def classification(service: Service, rng: np.random.Generator) -> dict[str, dict[str, Any]]:
    """A reference, then v1 (right 85% of the time), v2 (65%) and v3 (not compared) with
    scores, every record labelled but one in seven."""
    service.store_reference(
        "credit",
        [
            {"features": {"age": float(a)}, "prediction": "approved", "label": "approved"}
            for a in rng.normal(40, 10, 300)
        ],
        source="test",
    )
    sent: dict[str, dict[str, Any]] = {}
    records, labels = [], []
    for version, n, right in (("v1", 300, 0.85), ("v2", 180, 0.65), ("v3", 40, 0.5)):
        approved = rng.random(n)  # the score of approved
        predicted = np.where(approved >= 0.5, "approved", "rejected")
        wrong = rng.random(n) >= right
        flipped = np.where(predicted == "approved", "rejected", "approved")
        truth = np.where(wrong, flipped, predicted)
        labelled = np.arange(n) % 7 != 3
        sent[version] = {"truth": truth, "predicted": predicted, "approved": approved}
        sent[version]["labelled"] = labelled
        for i in range(n):
            record_id = f"{version}-{i}"
            records.append(
                {
                    "id": record_id,
                    "timestamp": NOW - 10 - i,
                    "features": {"age": float(rng.normal(40, 10))},
                    "prediction": str(predicted[i]),
                    "scores": {"approved": float(approved[i]), "rejected": 1 - float(approved[i])},
                    "model_version": version,
                }
            )
            if labelled[i]:
                labels.append({"id": record_id, "label": str(truth[i])})
    service.store_predictions("credit", records)
    service.store_labels("credit", labels)
    return sent


def test_each_version_scores_as_scikit_learn_on_its_subset(service: Service) -> None:
    sent = classification(service, np.random.default_rng(3))
    evaluation = service.evaluate("credit")
    document = to_document(evaluation)
    versions = document["versions"]
    for role, version in (("stable", "v1"), ("canary", "v2")):
        part = sent[version]
        keep = part["labelled"]
        y_true, y_pred = part["truth"][keep], part["predicted"][keep]
        approved = part["approved"][keep]
        body = versions[role]
        assert body["version"] == version
        performance = body["performance"]
        assert performance["n"] == body["labelled"] == int(keep.sum())
        # the accuracy the delta compares is unchanged, and the same as the performance's
        accuracy = skm.accuracy_score(y_true, y_pred)
        assert body["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert performance["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=list(CLASSES), average="macro", zero_division=np.nan
        )
        assert performance["precision"] == pytest.approx(precision, abs=1e-12)
        assert performance["recall"] == pytest.approx(recall, abs=1e-12)
        assert performance["f1"] == pytest.approx(f1, abs=1e-12)
        # the positive class of the binary scores is the second class, rejected
        is_rejected = (y_true == "rejected").astype(int)
        assert performance["roc_auc"] == pytest.approx(
            skm.roc_auc_score(is_rejected, 1 - approved), abs=1e-12
        )
        assert performance["average_precision"] == pytest.approx(
            skm.average_precision_score(is_rejected, 1 - approved), abs=1e-12
        )
        matrix = np.column_stack([approved, 1 - approved])
        assert performance["log_loss"] == pytest.approx(
            skm.log_loss(y_true, matrix, labels=list(CLASSES)), abs=1e-12
        )
        assert (
            performance["confusion_matrix"]
            == skm.confusion_matrix(y_true, y_pred, labels=list(CLASSES)).tolist()
        )
        # the model's numeric level applies; its auto level (resolved for the whole window
        # around the reference) does not, and nothing is estimated without labels
        assert performance["status"] == ("ok" if accuracy >= 0.8 else "warning")
        assert "thresholds" not in performance
        assert performance["estimated_accuracy"] is None
    assert versions["stable"]["performance"]["status"] == "ok"
    assert versions["canary"]["performance"]["status"] == "warning"
    # the whole window keeps its own auto level
    assert "f1" in document["performance"]["thresholds"]
    assert to_document(from_document(document)) == document

    registry = service.metrics.registry
    for role, version in (("stable", "v1"), ("canary", "v2")):
        labels = {"model": "credit", "version": version}
        performance = versions[role]["performance"]
        for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
            assert registry.get_sample_value(
                f"drift_monitor_version_model_{name}", labels
            ) == pytest.approx(performance[name], abs=1e-12)
        assert registry.get_sample_value(
            "drift_monitor_version_model_accuracy_lower", labels
        ) == pytest.approx(performance["accuracy_lower"], abs=1e-12)
        assert (
            registry.get_sample_value("drift_monitor_version_performance_samples", labels)
            == performance["n"]
        )
    # only the compared versions are label values
    assert (
        registry.get_sample_value(
            "drift_monitor_version_model_accuracy", {"model": "credit", "version": "v3"}
        )
        is None
    )


def test_each_version_of_a_regression_model_scores_as_scikit_learn(service: Service) -> None:
    rng = np.random.default_rng(8)
    service.store_reference(
        "demand",
        [{"features": {"x": float(x)}, "prediction": float(x)} for x in rng.normal(0, 1, 200)],
        source="test",
    )
    sent: dict[str, dict[str, Any]] = {}
    records, labels = [], []
    for version, n, noise in (("b", 160, 0.5), ("a", 90, 2.0)):
        x = rng.normal(0, 1, n)
        predicted = 3 * x + 10
        truth = predicted + rng.normal(0, noise, n)
        labelled = np.arange(n) % 5 != 0
        sent[version] = {"predicted": predicted, "truth": truth, "labelled": labelled}
        for i in range(n):
            record_id = f"{version}-{i}"
            records.append(
                {
                    "id": record_id,
                    "timestamp": NOW - 10 - i,
                    "features": {"x": float(x[i])},
                    "prediction": float(predicted[i]),
                    "model_version": version,
                }
            )
            if labelled[i]:
                labels.append({"id": record_id, "label": float(truth[i])})
    service.store_predictions("demand", records)
    service.store_labels("demand", labels)
    document = to_document(service.evaluate("demand"))
    versions = document["versions"]
    # versions: compare takes the more frequent one as stable
    assert (versions["stable"]["version"], versions["canary"]["version"]) == ("b", "a")
    for role, version in (("stable", "b"), ("canary", "a")):
        part = sent[version]
        keep = part["labelled"]
        y_true, y_pred = part["truth"][keep], part["predicted"][keep]
        performance = versions[role]["performance"]
        assert versions[role]["accuracy"] is None
        assert performance["n"] == int(keep.sum())
        assert performance["mae"] == pytest.approx(
            skm.mean_absolute_error(y_true, y_pred), abs=1e-12
        )
        assert performance["rmse"] == pytest.approx(
            np.sqrt(skm.mean_squared_error(y_true, y_pred)), abs=1e-12
        )
        assert performance["mape"] == pytest.approx(
            skm.mean_absolute_percentage_error(y_true, y_pred), abs=1e-12
        )
        assert performance["r2"] == pytest.approx(skm.r2_score(y_true, y_pred), abs=1e-12)
        assert service.metrics.registry.get_sample_value(
            "drift_monitor_version_model_mae", {"model": "demand", "version": version}
        ) == pytest.approx(performance["mae"], abs=1e-12)
    assert versions["stable"]["performance"]["status"] == "ok"  # MAE about 0.4
    assert versions["canary"]["performance"]["status"] == "warning"  # about 1.6
    assert to_document(from_document(document)) == document


def test_a_document_stored_before_has_no_version_performance(service: Service) -> None:
    classification(service, np.random.default_rng(4))
    document = to_document(service.evaluate("credit"))
    for role in ("stable", "canary"):
        del document["versions"][role]["performance"]
    read = from_document(document)
    assert read.canary is not None and read.canary.stable.performance is None
    assert to_document(read)["versions"]["stable"]["performance"] is None
