"""Segments and fairness through the real service on SQLite and PostgreSQL: per-segment metrics
equal scikit-learn's on the subset, fairness equals fairlearn's on the window, both held below
``min_samples``, exported to Prometheus with group labels, and observed by the alert rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import group_records
import numpy as np
import pytest
import sklearn.metrics as skm
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    equalized_odds_ratio,
)
from group_records import NOW, running
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.alerts.observe import observe
from monitor.config import parse_config
from monitor.evaluation.document import from_document, to_document
from monitor.service import Service

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
    min_samples: 30
    segments:
      - {name: market, feature: country, values: [FR, DE], thresholds: {psi: {critical: 0.5}}}
      - {name: sex, feature: gender}
    fairness: {sensitive: [gender, country], positive: approved}
    thresholds:
      psi: {critical: 0.25}
      accuracy: {warning: 0.6}
      demographic_parity_ratio: {critical: 0.8}
      equal_opportunity_difference: {warning: 0.1}
"""


@pytest.fixture
def service(engine: Engine) -> Iterator[Service]:
    with running(engine, CONFIG) as service:
        yield service


def store(service: Service, rng: np.random.Generator, *, labelled: int) -> dict[str, Any]:
    return group_records.store(service, rng, n=2000, labelled=labelled)


def test_segments_equal_scikit_learn_on_each_subset(service: Service) -> None:
    current = store(service, np.random.default_rng(5), labelled=2000)
    evaluation = service.evaluate("m")
    document = to_document(evaluation)
    market = document["segments"]["market"]
    assert market["feature"] == "country"
    assert list(market["values"]) == ["FR", "DE", "__other__"]
    groups = {"FR": ["FR"], "DE": ["DE"], "__other__": ["IT", "ES"]}
    for value, countries in groups.items():
        subset = np.isin(current["country"], countries)
        body = market["values"][value]
        assert body["n"] == int(subset.sum())
        y_true, y_pred = current["truth"][subset], current["predicted"][subset]
        performance = body["performance"]
        assert performance["n"] == int(subset.sum())
        assert performance["accuracy"] == pytest.approx(
            skm.accuracy_score(y_true, y_pred), abs=1e-12
        )
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=["approved", "denied"], average="macro", zero_division=np.nan
        )
        assert performance["precision"] == pytest.approx(precision, abs=1e-12)
        assert performance["recall"] == pytest.approx(recall, abs=1e-12)
        assert performance["f1"] == pytest.approx(f1, abs=1e-12)
    # x drifted in DE only: its PSI against DE's own reference is over the segment's level 0.5
    assert market["values"]["DE"]["features"]["x"]["psi"] > 0.5
    assert market["values"]["DE"]["features"]["x"]["status"] == "critical"
    assert market["values"]["DE"]["status"] == "critical"
    assert market["values"]["FR"]["features"]["x"]["psi"] < 0.25
    assert market["values"]["FR"]["features"]["x"]["status"] == "ok"
    # a segment without values takes the reference's categories
    assert set(document["segments"]["sex"]["values"]) == {"f", "m", "__other__"}
    assert document["segments"]["sex"]["values"]["__other__"]["status"] == "insufficient"
    # the document reads back to the same evaluation
    assert to_document(from_document(document)) == document


def test_fairness_equals_fairlearn_on_the_window(service: Service) -> None:
    current = store(service, np.random.default_rng(6), labelled=2000)
    evaluation = service.evaluate("m")
    fairness = to_document(evaluation)["fairness"]
    y_true = (current["truth"] == "approved").astype(int)
    y_pred = (current["predicted"] == "approved").astype(int)
    for feature in ("gender", "country"):
        groups = current[feature]
        body = fairness[feature]
        reference = {
            "demographic_parity_difference": demographic_parity_difference,
            "demographic_parity_ratio": demographic_parity_ratio,
            "equalized_odds_difference": equalized_odds_difference,
            "equalized_odds_ratio": equalized_odds_ratio,
            "equal_opportunity_difference": equal_opportunity_difference,
        }
        for name, metric in reference.items():
            expected = float(metric(y_true, y_pred, sensitive_features=groups))
            assert body[name] == pytest.approx(expected, abs=1e-12), (feature, name)
        for group, rates in body["groups"].items():
            subset = groups == group
            assert rates["predictions"] == int(subset.sum())
            assert rates["selection_rate"] == pytest.approx(y_pred[subset].mean(), abs=1e-12)
    # women are approved half as often: below the four-fifths rule
    assert fairness["gender"]["demographic_parity_ratio"] < 0.8
    assert fairness["gender"]["status"] == "critical"
    observations = {
        (o.rule, o.feature): o.severity
        for o in observe(service.model("m"), evaluation)
        if o.rule.startswith(("demographic", "equal"))
    }
    assert observations[("demographic_parity_ratio", "gender")] == "critical"
    assert ("demographic_parity_ratio", "") not in observations


def test_fairness_waits_for_labels_but_not_for_selection_rates(service: Service) -> None:
    store(service, np.random.default_rng(7), labelled=40)  # about 20 per gender: under 30
    evaluation = service.evaluate("m")
    gender = to_document(evaluation)["fairness"]["gender"]
    assert gender["status"] == "insufficient"
    assert gender["demographic_parity_ratio"] is not None
    assert gender["equal_opportunity_difference"] is None
    assert gender["equalized_odds_difference"] is None
    # a segment value with too few labels has drift, but performance held
    de = to_document(evaluation)["segments"]["market"]["values"]["DE"]
    assert de["features"]["x"]["psi"] is not None
    assert de["performance"]["status"] == "insufficient"
    assert "accuracy" not in de["performance"]


def test_group_series_carry_their_labels_and_others_do_not(service: Service) -> None:
    store(service, np.random.default_rng(8), labelled=2000)
    evaluation = service.evaluate("m")
    registry = service.metrics.registry
    de_psi = registry.get_sample_value(
        "drift_monitor_segment_feature_psi",
        {"model": "m", "segment": "market", "segment_value": "DE", "feature": "x"},
    )
    assert (
        de_psi
        == to_document(evaluation)["segments"]["market"]["values"]["DE"]["features"]["x"]["psi"]
    )
    assert (
        registry.get_sample_value(
            "drift_monitor_fairness_demographic_parity_ratio", {"model": "m", "sensitive": "gender"}
        )
        == to_document(evaluation)["fairness"]["gender"]["demographic_parity_ratio"]
    )
    assert (
        registry.get_sample_value(
            "drift_monitor_fairness_group_predictions",
            {"model": "m", "sensitive": "gender", "group": "f"},
        )
        == to_document(evaluation)["fairness"]["gender"]["groups"]["f"]["predictions"]
    )
    for metric in registry.collect():
        for sample in metric.samples:
            has_segment = "segment" in sample.labels
            assert has_segment == sample.name.startswith("drift_monitor_segment_"), sample.name
            has_group = "group" in sample.labels or "sensitive" in sample.labels
            assert has_group == sample.name.startswith("drift_monitor_fairness_"), sample.name


def test_segment_alerts_are_observed_per_segment_value(service: Service) -> None:
    store(service, np.random.default_rng(9), labelled=2000)
    evaluation = service.evaluate("m")
    observations = {(o.rule, o.feature): o for o in observe(service.model("m"), evaluation)}
    de = observations[("psi", "market=DE/x")]
    assert de.severity == "critical" and de.threshold == 0.5  # the segment's own level
    assert observations[("psi", "market=FR/x")].severity is None
    assert ("accuracy", "market=FR") in observations
    assert ("label_coverage", "market=FR") not in observations


LARGE = """
models:
  - name: m
    task: classification
    classes: [approved, denied]
    features: [{name: x, type: numeric}, {name: country, type: categorical}]
    min_samples: 10
    drift: {exact_max_samples: 1000, max_categories: 3}
    segments:
      - {name: market, feature: country}
      - {name: listed, feature: country, values: [FR]}
    fairness: {sensitive: [country], positive: approved}
"""


def large_service(engine: Engine, rows: int) -> Service:
    service = Service(
        parse_config(LARGE), engine=engine, registry=CollectorRegistry(), clock=lambda: NOW
    )
    service.start(run_jobs=False)
    countries = ["FR", "DE", "IT", "ES", "PT"]  # five: more than max_categories
    service.store_reference(
        "m",
        [
            {"features": {"x": float(i % 7), "country": countries[i % 5]}, "prediction": "denied"}
            for i in range(500)
        ],
        source="test",
    )
    service.store_predictions(
        "m",
        [
            {
                "id": f"r{i}",
                "timestamp": NOW - 100,
                "features": {"x": float(i % 7), "country": countries[i % 5]},
                "prediction": "approved",
            }
            for i in range(rows)
        ],
    )
    return service


def test_a_segment_on_a_feature_of_too_many_categories_is_refused_unless_listed(
    engine: Engine,
) -> None:
    service = large_service(engine, 500)
    try:
        document = to_document(service.evaluate("m"))
    finally:
        service.stop()
    assert document["segments"]["market"]["values"] == {}
    assert document["segments"]["market"]["refused"] == (
        "the reference of 'country' has more than drift.max_categories (3) categories (or one"
        " named __other__): list the segment's values"
    )
    assert set(document["segments"]["listed"]["values"]) == {"FR", "__other__"}
    # fairness groups: the reference's three most frequent categories, the rest __other__
    assert len(document["fairness"]["country"]["groups"]) == 4
    assert "__other__" in document["fairness"]["country"]["groups"]


def test_a_window_evaluated_from_histograms_has_its_groups_too(engine: Engine) -> None:
    service = large_service(engine, 1500)
    try:
        evaluation = service.evaluate("m")
    finally:
        service.stop()
    assert evaluation.window.n == 1500  # over exact_max_samples: the histogram path
    document = to_document(evaluation)
    assert document["features"]["x"]["exact"] is False
    assert "groups_skipped" not in document
    assert document["segments"]["market"]["refused"].startswith("the reference of 'country'")
    listed = document["segments"]["listed"]["values"]
    assert {value: body["n"] for value, body in listed.items()} == {"FR": 300, "__other__": 1200}
    groups = document["fairness"]["country"]["groups"]
    assert sum(group["predictions"] for group in groups.values()) == 1500
    assert groups["__other__"]["selection_rate"] == 1.0  # every prediction approved


def test_segment_and_fairness_alerts_fire_through_the_service(service: Service) -> None:
    store(service, np.random.default_rng(9), labelled=2000)
    service.evaluate("m")
    firing = {
        (stored.alert.rule, stored.alert.feature, stored.alert.severity)
        for stored in service.active_alerts("m")
        if stored.alert.state == "firing"
    }
    assert ("psi", "market=DE/x", "critical") in firing
    assert ("demographic_parity_ratio", "gender", "critical") in firing
    assert not any(feature.startswith("market=FR/") for _, feature, _ in firing)


def test_a_group_ks_pvalue_is_exact_up_to_its_limit_and_asymptotic_above() -> None:
    from scipy.stats import ks_2samp

    from monitor.evaluation.groups import SEGMENT_KS_EXACT_MAX_N
    from monitor.stats import compare_numeric, profile_numeric

    rng = np.random.default_rng(12)
    for size, method in ((SEGMENT_KS_EXACT_MAX_N, "exact"), (SEGMENT_KS_EXACT_MAX_N + 1, "asymp")):
        reference, current = rng.normal(size=size), rng.normal(0.1, size=size - 7)
        drift = compare_numeric(
            profile_numeric(reference), current, ks_exact_max_n=SEGMENT_KS_EXACT_MAX_N
        )
        expected = ks_2samp(reference, current, method=method).pvalue
        assert drift.ks_pvalue == pytest.approx(expected, rel=1e-9, abs=1e-12), method
