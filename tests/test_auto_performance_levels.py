"""``auto`` levels of every performance metric and of the missing-value ratio (issue 14, item 1):
each level is checked against windows drawn afresh from the population the reference came
from (not from the reference itself), scored one by one; the missing-value ratio against a
brute-force search of scipy's binomial law; and the levels reach the evaluation JSON and the
alert observations of a real ``Service``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.alerts.observe import observe
from monitor.config import parse_config
from monitor.evaluation import levels
from monitor.evaluation.document import to_document
from monitor.service import Service
from monitor.stats import null_levels
from monitor.stats.performance import classification_metrics_of_codes, regression_metrics
from monitor.stats.performance.null import LabelledSample
from monitor.thresholds import breaches

START = 1_800_000_000.0


def classifier_population(rng: np.random.Generator, size: int) -> LabelledSample:
    """Three classes; scores from a softmax of noisy logits; the label agrees with the argmax
    about 80 % of the time."""
    logits = rng.normal(size=(size, 3)) * 1.5
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predicted = scores.argmax(axis=1)
    draw = rng.random(size)
    actual = np.where(draw < scores.max(axis=1) + 0.15, predicted, rng.integers(3, size=size))
    return LabelledSample(("a", "b", "c"), predicted, actual, scores)


def regression_population(rng: np.random.Generator, size: int) -> LabelledSample:
    """Targets away from zero (MAPE is defined), errors skewed (a gamma's)."""
    truth = rng.lognormal(mean=1.0, sigma=0.5, size=size)
    error = rng.gamma(shape=2.0, scale=0.3, size=size) - 0.6
    return LabelledSample((), truth + error, truth)


def window_metrics(sample: LabelledSample) -> dict[str, float | None]:
    if not sample.classes:
        found = regression_metrics(y_true=sample.actual, y_pred=sample.predicted)
        return {"mae": found.mae, "rmse": found.rmse, "mape": found.mape, "r2": found.r2}
    result = classification_metrics_of_codes(
        true_codes=sample.actual,
        pred_codes=sample.predicted,
        classes=list(sample.classes),
        scores=sample.scores,
    )
    return {
        "precision": result.macro_precision,
        "recall": result.macro_recall,
        "f1": result.macro_f1,
        "roc_auc": result.roc_auc,
        "average_precision": result.average_precision,
        "log_loss": result.log_loss,
    }


@pytest.mark.parametrize(
    ("population", "metrics"),
    [
        (
            classifier_population,
            ("precision", "recall", "f1", "roc_auc", "average_precision", "log_loss"),
        ),
        (regression_population, ("mae", "rmse", "mape", "r2")),
    ],
)
def test_resampled_levels_hold_their_chance_on_fresh_windows(population, metrics) -> None:
    """A level at chance 0.01 for windows of 300 is breached by about 1 % of windows drawn
    afresh from the population: at most twice that, and not below a third of it (the grid
    takes the size down, the safe side)."""
    rng = np.random.default_rng(14)
    # a reference so large that its own noise is negligible: the level's centre is the
    # population's value (a smaller reference moves it, which n_eff accounts for on average)
    reference = population(rng, 200_000)
    alpha, n, windows = 0.01, 300, 6_000
    cache: dict[object, object] = {}
    found = {
        metric: levels.level(metric, alpha, n=n, labelled=reference, cache=cache)
        for metric in metrics
    }
    assert all(level is not None and math.isfinite(level) for level in found.values()), found
    breached = dict.fromkeys(metrics, 0)
    for _ in range(windows):
        for metric, value in window_metrics(population(rng, n)).items():
            if metric in found and value is not None:
                breached[metric] += breaches(metric, value, found[metric])
    for metric, count in breached.items():
        rate = count / windows
        assert alpha / 3 <= rate <= 2 * alpha, (metric, rate, found[metric])


def test_a_resampled_level_deep_in_the_tail_keeps_its_chance() -> None:
    """The skewness correction matters in the tail: MAE of skewed errors at a chance of 1e-3
    over windows of 64, checked on 2 million fresh windows (their mean absolute errors drawn
    directly with numpy); the plain normal quantile misses the same check."""
    rng = np.random.default_rng(3)
    errors = lambda size: rng.exponential(size=size)  # noqa: E731
    reference = LabelledSample((), errors(20_000), np.zeros(20_000))
    alpha, n = 1e-3, 64
    level = levels.level("mae", alpha, n=n, labelled=reference, cache={})
    assert level is not None
    means = np.concatenate([errors((200_000, n)).mean(axis=1) for _ in range(10)])
    rate = float(np.mean(means >= level))
    assert alpha / 2.5 <= rate <= 1.5 * alpha, (rate, level)
    mean, sd, _ = levels.resampled_moments(reference, n, {})["mae"]
    plain = mean + sd * scipy.stats.norm.isf(alpha)
    assert float(np.mean(means >= plain)) > 1.5 * alpha  # the normal is too light there


@pytest.mark.parametrize("p", [0.0, 0.003, 0.05, 0.3])
@pytest.mark.parametrize(("alpha", "n", "m"), [(1e-4, 360, 10_000), (0.01, 100, None)])
def test_the_missing_ratio_level_is_the_smallest_unlikely_count(p, alpha, n, m) -> None:
    trials = max(1, round(n if m is None else n * m / (n + m)))
    unlikely = [k for k in range(trials + 1) if scipy.stats.binom.sf(k - 1, trials, p) <= alpha]
    expected = min(unlikely) / trials if unlikely else 2.0
    assert null_levels.upper_proportion_level(alpha, p=p, n=n, m=m) == expected
    chance = null_levels.chance("missing_ratio", expected, n=n, m=m, p=p)
    assert chance is not None and chance <= alpha


CONFIG = """
models:
  - name: m
    task: classification
    classes: [a, b, c]
    features:
      - {name: x, type: numeric}
    window: {duration: 1h}
    schedule: 10m
    min_samples: 50
    calibration: {false_alarms_per_week: 1}
    thresholds:
      missing_ratio: {critical: auto}
      f1: {critical: auto}
      roc_auc: {critical: auto}
      log_loss: {critical: auto}
"""


def test_performance_levels_reach_the_evaluation_and_the_alerts(engine: Engine) -> None:
    rng = np.random.default_rng(5)
    clock = [START]
    config = parse_config(CONFIG)
    service = Service(config, engine=engine, registry=CollectorRegistry(), clock=lambda: clock[0])
    service.start(run_jobs=False)

    def records(sample: LabelledSample, prefix: str, *, missing: float = 0.0) -> list[dict]:
        return [
            {
                "id": f"{prefix}{i}",
                "timestamp": clock[0] - 1800 + i,
                "features": {"x": None if rng.random() < missing else float(rng.normal())},
                "prediction": sample.classes[sample.predicted[i]],
                "label": sample.classes[sample.actual[i]],
                "scores": dict(zip(sample.classes, sample.scores[i].tolist(), strict=True)),
            }
            for i in range(len(sample))
        ]

    reference = classifier_population(rng, 4_000)
    service.store_reference("m", records(reference, "r", missing=0.01), source="test")
    model = config.models[0]
    critical = levels.alphas(model)["critical"]
    # f1, roc_auc, log_loss, and missing_ratio on x: 4 critical tests
    assert levels.family(model) == {"warning": 0, "critical": 4}
    assert critical == pytest.approx(1 / (7 * 86400 / 600 * 4), rel=1e-12)

    window = classifier_population(rng, 400)
    # a worse model: a third of its labels replaced at random
    worse = rng.random(400) < 0.35
    window = LabelledSample(
        window.classes,
        window.predicted,
        np.where(worse, rng.integers(3, size=400), window.actual),
        window.scores,
    )
    clock[0] += 7200
    batch = records(window, "w", missing=0.2)
    service.store_predictions("m", [{k: v for k, v in r.items() if k != "label"} for r in batch])
    service.store_labels("m", [{"id": r["id"], "label": r["label"]} for r in batch])
    evaluation = service.evaluate("m")
    document = to_document(evaluation)
    resolved = document["performance"]["thresholds"]
    profiles = service.evaluator._profiles["m"]
    assert profiles.labelled is not None and len(profiles.labelled) == 4_000
    for metric in ("f1", "roc_auc", "log_loss"):
        assert resolved[metric]["n"] == 400
        assert resolved[metric]["critical"] == levels.level(
            metric,
            critical,
            n=400,
            labelled=profiles.labelled,
            calibration=profiles.calibration,
            cache={},
        )
    x = document["features"]["x"]
    total = x["n"] + x["missing"]
    assert x["thresholds"]["missing_ratio"]["n"] == total
    profile = profiles.numeric["x"]
    assert x["thresholds"]["missing_ratio"]["critical"] == null_levels.upper_proportion_level(
        critical, p=profile.missing / (profile.n + profile.missing), n=total, m=4_000
    )
    seen = {(o.rule, o.feature): o for o in observe(model, evaluation)}
    assert seen[("missing_ratio", "x")].severity == "critical"
    assert seen[("missing_ratio", "x")].n == total
    assert seen[("f1", "")].severity == "critical" and seen[("f1", "")].n == 400
    assert seen[("f1", "")].threshold == resolved["f1"]["critical"]
    service.stop()


def test_profiles_stored_before_labelled_samples_are_built_again(engine: Engine) -> None:
    """A reference profiled by an earlier release (no labelled sample stored) is profiled
    again once a model asks for a resampled level, and the sample is stored with it."""
    from monitor.evaluation.profiles import LABELLED
    from monitor.storage.evaluations import load_profiles, store_profiles

    rng = np.random.default_rng(2)
    config = parse_config(CONFIG)
    clock = [START]
    service = Service(config, engine=engine, registry=CollectorRegistry(), clock=lambda: clock[0])
    service.start(run_jobs=False)
    sample = classifier_population(rng, 500)
    rows = [
        {
            "features": {"x": float(rng.normal())},
            "prediction": sample.classes[sample.predicted[i]],
            "label": sample.classes[sample.actual[i]],
        }
        for i in range(500)
    ]
    info = service.store_reference("m", rows, source="test")
    service.evaluate("m")
    with service.database.write() as connection:
        blobs = load_profiles(connection, model="m", version=info.version)
        assert blobs is not None and LABELLED in blobs
        del blobs[LABELLED]
        store_profiles(connection, model="m", version=info.version, blobs=blobs)
    service.evaluator._profiles.clear()
    service.evaluate("m")
    assert len(service.evaluator._profiles["m"].labelled) == 500
    with service.database.read() as connection:
        assert LABELLED in load_profiles(connection, model="m", version=info.version)
    service.stop()
