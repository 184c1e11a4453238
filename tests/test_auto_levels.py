"""``auto`` threshold levels (issue 14, items 1 and 2): derived from the model's false-alarm
budget and resolved for each window's n, checked against the formulas written out here with
scipy (the chance per test from the budget, the schedule, ``alerts.for`` and the family of
tests; then each statistic's no-drift quantile), and carried into statuses, the evaluation JSON
and alert observations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.alerts.observe import observe
from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.evaluation.document import from_document, to_document
from monitor.service import Service

START = 1_800_000_000.0
CONFIG = """
models:
  - name: m
    task: classification
    classes: [no, yes]
    features:
      - {name: x, type: numeric}
      - {name: y, type: numeric}
      - {name: c, type: categorical}
    window: {duration: 1h}
    schedule: 10m
    min_samples: 50
    calibration: {false_alarms_per_week: 2}
    thresholds:
      psi: {warning: auto, critical: auto}
      ks_pvalue: {critical: auto}
      wasserstein: {critical: auto, features: [x]}
      accuracy: {critical: auto}
    alerts: {for: 3}
"""
WEEK_EVALUATIONS = 7 * 86400 / 600


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def service_for(engine: Engine, clock: Clock, text: str = CONFIG) -> Service:
    service = Service(parse_config(text), engine=engine, registry=CollectorRegistry(), clock=clock)
    service.start(run_jobs=False)
    return service


def test_the_chance_per_test_follows_the_budget_the_schedule_for_and_the_family() -> None:
    from monitor.evaluation import levels

    config = parse_config(CONFIG).models[0]
    # psi: x, y, c, the prediction and the label (categorical): 5 tests at each severity;
    # ks_pvalue: x, y (numeric only); wasserstein: x; accuracy: 1. Critical: 5 + 2 + 1 + 1.
    assert levels.family(config) == {"warning": 5, "critical": 9}
    chances = levels.alphas(config)
    assert chances["critical"] == pytest.approx(2 * 3 / (WEEK_EVALUATIONS * 9), rel=1e-12)
    assert chances["warning"] == pytest.approx(10 * 2 * 3 / (WEEK_EVALUATIONS * 5), rel=1e-12)


def test_auto_levels_are_resolved_for_each_windows_n(engine: Engine) -> None:
    from monitor.evaluation import levels

    rng = np.random.default_rng(8)
    clock = Clock(START)
    service = service_for(engine, clock)
    reference = [
        {
            "features": {"x": float(a), "y": float(b), "c": "uvw"[int(k)]},
            "prediction": "yes" if a > 0 else "no",
            "label": "yes" if a + e > 0 else "no",
        }
        for a, b, k, e in zip(
            rng.normal(size=3000),
            rng.normal(size=3000),
            rng.integers(3, size=3000),
            rng.normal(scale=0.5, size=3000),
            strict=True,
        )
    ]
    service.store_reference("m", reference, source="test")
    reference_accuracy = np.mean([r["prediction"] == r["label"] for r in reference])
    critical = 2 * 3 / (WEEK_EVALUATIONS * 9)
    warning = 10 * 2 * 3 / (WEEK_EVALUATIONS * 5)
    documents = []
    for size, shift in ((400, 0.0), (1500, 0.6)):
        clock.now += 7200  # the window of an hour holds this batch only
        records = []
        for i in range(size):
            a = float(rng.normal(loc=shift))
            records.append(
                {
                    "id": f"{size}-{i}",
                    "timestamp": clock.now - 1800 + i * 1800 / size,
                    "features": {"x": a, "y": float(rng.normal()), "c": "uvw"[i % 3]},
                    "prediction": "yes" if a > 0 else "no",
                }
            )
        service.store_predictions("m", records)
        service.store_labels(
            "m",
            [{"id": r["id"], "label": "yes" if rng.random() < 0.5 else "no"} for r in records],
        )
        evaluation = service.evaluate("m")
        document = to_document(evaluation)
        documents.append(document)
        n_eff = size * 3000 / (size + 3000)
        x = document["features"]["x"]
        assert x["n"] == size
        psi = x["thresholds"]["psi"]
        assert psi["n"] == size
        # PSI's law is simulated from the reference's bins (test_stats_null_levels checks the
        # simulation against numpy's multinomial): at the window's size taken down to the
        # grid, above the chi-square level it replaces (light in the tail)
        profiles = service.evaluator._profiles["m"]
        for severity, chance in (("critical", critical), ("warning", warning)):
            expected = levels.level(
                "psi", chance, n=size, profile=profiles.numeric["x"], name="x", cache={}
            )
            assert psi[severity] == expected
            assert psi[severity] > scipy.stats.chi2.isf(chance, 9) / n_eff
        assert x["thresholds"]["ks_pvalue"] == {"warning": None, "critical": critical, "n": size}
        assert x["thresholds"]["wasserstein"]["critical"] > 0
        assert "wasserstein" not in document["features"]["y"]["thresholds"]
        c = document["features"]["c"]["thresholds"]["psi"]
        assert c["critical"] == levels.level(
            "psi", critical, n=size, profile=profiles.categorical["c"], name="c", cache={}
        )
        accuracy = document["performance"]["thresholds"]["accuracy"]
        trials = round(size * 3000 / (size + 3000))  # every prediction labelled; m = 3000
        counts = np.arange(trials + 1)
        unlikely = counts[scipy.stats.binom.cdf(counts, trials, reference_accuracy) <= critical]
        expected = unlikely.max() / trials
        assert accuracy == {"warning": None, "critical": pytest.approx(expected), "n": size}
        assert from_document(document).feature("x").levels == x["thresholds"]  # type: ignore[union-attr]
    # The shifted window (x moved 0.6 sd; accuracy near 0.5) breaches; observations say so,
    # with the level and the n it was resolved for.
    shifted = from_document(documents[1])
    found = {(o.rule, o.feature): o for o in observe(service.model("m"), shifted)}
    psi_x = found[("psi", "x")]
    assert psi_x.severity == "critical" and psi_x.n == 1500
    assert psi_x.threshold == documents[1]["features"]["x"]["thresholds"]["psi"]["critical"]
    assert found[("accuracy", "")].severity == "critical" and found[("accuracy", "")].n == 1500
    assert documents[1]["features"]["x"]["status"] == "critical"
    assert found[("psi", "y")].severity is None
    service.stop()


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ("{psi: {critical: auto}}", "thresholds.psi: auto needs calibration"),
        ("{drifted_share: {critical: auto}}", "thresholds.drifted_share: auto is not available"),
        ("{label_coverage: {critical: auto}}", "label_coverage: auto is not available for"),
        ("{f1: {critical: auto}}", "thresholds.f1: auto f1 is for task: classification"),
    ],
)
def test_auto_is_refused_where_it_cannot_be_derived(thresholds: str, message: str) -> None:
    text = f"""
models:
  - name: m
    task: regression
    features: [{{name: x, type: numeric}}]
    thresholds: {thresholds}
"""
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_auto_p_values_with_a_correction_are_refused() -> None:
    text = """
models:
  - name: m
    task: regression
    features: [{name: x, type: numeric}]
    calibration: {false_alarms_per_week: 1}
    thresholds: {ks_pvalue: {critical: auto}}
    alerts: {correction: bonferroni}
"""
    with pytest.raises(ConfigError, match=r"set alerts\.correction: none"):
        parse_config(text)


def test_resolved_levels_are_exported_with_their_n(engine: Engine) -> None:
    rng = np.random.default_rng(9)
    clock = Clock(START)
    registry = CollectorRegistry()
    service = Service(parse_config(CONFIG), engine=engine, registry=registry, clock=clock)
    service.start(run_jobs=False)
    service.store_reference(
        "m",
        [
            {"features": {"x": float(v), "y": float(v), "c": "u"}, "prediction": "no"}
            for v in rng.normal(size=1000)
        ],
        source="test",
    )
    service.store_predictions(
        "m",
        [
            {
                "id": f"r{i}",
                "timestamp": START - 60 - i,
                "features": {"x": float(v), "y": float(v), "c": "u"},
                "prediction": "no",
            }
            for i, v in enumerate(rng.normal(size=300))
        ],
    )
    document = to_document(service.evaluate("m"))
    psi = document["features"]["x"]["thresholds"]["psi"]
    labels = {"model": "m", "feature": "x", "statistic": "psi"}
    value = registry.get_sample_value
    assert (
        value("drift_monitor_threshold_resolved", {**labels, "severity": "critical"})
        == (psi["critical"])
    )
    assert (
        value("drift_monitor_threshold_resolved", {**labels, "severity": "warning"})
        == (psi["warning"])
    )
    assert value("drift_monitor_threshold_resolved_samples", labels) == 300
    # a fixed level stays in drift_monitor_threshold; no auto rule is exported there
    assert (
        value("drift_monitor_threshold", {"model": "m", "statistic": "psi", "severity": "critical"})
        is None
    )
    service.stop()
