"""Invariants of the performance metrics, checked with hypothesis on small, tie-heavy data."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats.performance import (
    ClassificationMetrics,
    Proportion,
    classification_metrics,
    estimate_accuracy,
    fit_calibration,
    regression_metrics,
)

CLASSES = ("a", "b", "c", "d")
SCORE_VALUES = [0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]


@st.composite
def windows(
    draw: st.DrawFn,
) -> tuple[tuple[str, ...], list[str], list[str], npt.NDArray[np.float64] | None]:
    k = draw(st.integers(2, 4))
    n = draw(st.integers(1, 60))
    classes = CLASSES[:k]
    codes = st.lists(st.integers(0, k - 1), min_size=n, max_size=n)
    y_true = [classes[i] for i in draw(codes)]
    y_pred = [classes[i] for i in draw(codes)]
    score = st.one_of(st.sampled_from(SCORE_VALUES), st.floats(0.0, 1.0))
    flat = draw(st.none() | st.lists(score, min_size=n * k, max_size=n * k))
    scores = None if flat is None else np.array(flat, dtype=np.float64).reshape(n, k)
    return classes, y_true, y_pred, scores


def check_proportion(value: Proportion | None, n: int | None = None) -> None:
    if value is None:
        return
    assert 0.0 <= value.lower <= value.value <= value.upper <= 1.0
    assert value.value == value.successes / value.n
    if n is not None:
        assert value.n == n


def without_log_loss(metrics: ClassificationMetrics) -> ClassificationMetrics:
    return replace(metrics, log_loss=None)


@settings(max_examples=300, deadline=None)
@given(window=windows(), seed=st.integers(0, 2**32 - 1))
def test_classification_ranges_counts_and_permutation_invariance(
    window: tuple[tuple[str, ...], list[str], list[str], npt.NDArray[np.float64] | None],
    seed: int,
) -> None:
    classes, y_true, y_pred, scores = window
    metrics = classification_metrics(y_true=y_true, y_pred=y_pred, classes=classes, scores=scores)
    n = len(y_true)
    check_proportion(metrics.accuracy, n)
    matrix = np.array(metrics.confusion_matrix)
    assert matrix.sum() == n and metrics.accuracy.successes == np.trace(matrix)
    for j, label in enumerate(classes):
        assert matrix[j].sum() == y_true.count(label)
        assert matrix[:, j].sum() == y_pred.count(label)
        check_proportion(metrics.precision[label], y_pred.count(label) or None)
        check_proportion(metrics.recall[label], y_true.count(label) or None)
        assert (metrics.precision[label] is None) == (label not in y_pred)
        assert (metrics.recall[label] is None) == (label not in y_true)
        f1 = metrics.f1[label]
        assert (f1 is None) == (label not in y_pred and label not in y_true)
        assert f1 is None or 0.0 <= f1 <= 1.0
    for macro in (metrics.macro_precision, metrics.macro_recall, metrics.macro_f1):
        assert 0.0 <= macro <= 1.0
    for ranking in (metrics.roc_auc, metrics.average_precision):
        assert ranking is None or 0.0 <= ranking <= 1.0
    assert (metrics.log_loss is None) == (scores is None)
    assert metrics.log_loss is None or metrics.log_loss >= 0.0

    order = np.random.default_rng(seed).permutation(n)
    shuffled = classification_metrics(
        y_true=[y_true[i] for i in order],
        y_pred=[y_pred[i] for i in order],
        classes=classes,
        scores=None if scores is None else scores[order],
    )
    # Everything but the log loss (a float sum, whose rounding depends on order) is exact.
    assert without_log_loss(shuffled) == without_log_loss(metrics)
    if metrics.log_loss is not None:
        assert shuffled.log_loss is not None
        assert math.isclose(shuffled.log_loss, metrics.log_loss, rel_tol=1e-12)


@settings(max_examples=150, deadline=None)
@given(window=windows(), seed=st.integers(0, 2**32 - 1))
def test_classification_does_not_depend_on_the_order_of_the_classes(
    window: tuple[tuple[str, ...], list[str], list[str], npt.NDArray[np.float64] | None],
    seed: int,
) -> None:
    classes, y_true, y_pred, scores = window
    if len(classes) == 2:
        return  # the binary positive class is classes[1] by definition
    order = np.random.default_rng(seed).permutation(len(classes))
    reordered = tuple(classes[i] for i in order)
    metrics = classification_metrics(y_true=y_true, y_pred=y_pred, classes=classes, scores=scores)
    other = classification_metrics(
        y_true=y_true,
        y_pred=y_pred,
        classes=reordered,
        scores=None if scores is None else scores[:, order],
    )
    assert other.precision == metrics.precision and other.recall == metrics.recall
    assert other.f1 == metrics.f1 and other.accuracy == metrics.accuracy
    np.testing.assert_array_equal(
        np.array(other.confusion_matrix), np.array(metrics.confusion_matrix)[np.ix_(order, order)]
    )
    pairs = [
        (other.macro_precision, metrics.macro_precision),
        (other.macro_recall, metrics.macro_recall),
        (other.macro_f1, metrics.macro_f1),
        (other.roc_auc, metrics.roc_auc),
        (other.average_precision, metrics.average_precision),
        (other.log_loss, metrics.log_loss),
    ]
    for ours, theirs in pairs:
        assert (ours is None) == (theirs is None)
        if ours is not None and theirs is not None:
            assert math.isclose(ours, theirs, rel_tol=1e-12, abs_tol=1e-15)


values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, 0.0, 1.0, -2.5, 1e-3]),
)


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(st.tuples(values, values), min_size=1, max_size=80),
    seed=st.integers(0, 2**32 - 1),
)
def test_regression_ranges_and_permutation_invariance(
    pairs: list[tuple[float, float]], seed: int
) -> None:
    y_true = np.array([pair[0] for pair in pairs])
    y_pred = np.array([pair[1] for pair in pairs])
    metrics = regression_metrics(y_true=y_true, y_pred=y_pred)
    assert 0.0 <= metrics.mae <= metrics.rmse * (1 + 1e-12)
    assert metrics.mape_n == np.count_nonzero(y_true)
    assert (metrics.mape is None) == (metrics.mape_n == 0)
    assert metrics.mape is None or metrics.mape >= 0.0
    assert (metrics.r2 is None) == (y_true.min() == y_true.max())
    assert metrics.r2 is None or metrics.r2 <= 1.0
    order = np.random.default_rng(seed).permutation(y_true.size)
    shuffled = regression_metrics(y_true=y_true[order], y_pred=y_pred[order])
    assert (shuffled.n, shuffled.mape_n) == (metrics.n, metrics.mape_n)
    for ours, theirs in [
        (shuffled.mae, metrics.mae),
        (shuffled.rmse, metrics.rmse),
        (shuffled.mape, metrics.mape),
        (shuffled.r2, metrics.r2),
    ]:
        assert (ours is None) == (theirs is None)
        if ours is not None and theirs is not None:
            assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=150, deadline=None)
@given(reference=windows(), current=windows(), seed=st.integers(0, 2**32 - 1))
def test_estimate_is_a_probability_with_a_bounded_standard_error(
    reference: tuple[tuple[str, ...], list[str], list[str], npt.NDArray[np.float64] | None],
    current: tuple[tuple[str, ...], list[str], list[str], npt.NDArray[np.float64] | None],
    seed: int,
) -> None:
    classes, y_true, _, reference_scores = reference
    _, _, _, current_scores = current
    if reference_scores is None or current_scores is None:
        return
    current_scores = current_scores[:, : len(classes)]
    if current_scores.shape[1] != len(classes):
        return
    calibration = fit_calibration(reference_scores, y_true, classes=classes)
    estimate = estimate_accuracy(calibration, current_scores)
    m = current_scores.shape[0]
    assert estimate.n == m
    assert 0.0 <= estimate.value <= 1.0
    assert 0.0 <= estimate.standard_error <= 0.5 / math.sqrt(m) + 1e-15
    order = np.random.default_rng(seed).permutation(m)
    shuffled = estimate_accuracy(calibration, current_scores[order])
    assert math.isclose(shuffled.value, estimate.value, rel_tol=1e-12, abs_tol=1e-15)
