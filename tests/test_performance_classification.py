"""Classification metrics equal scikit-learn's (the independent reference) to 1e-9.

scikit-learn is called with the settings the module docstrings name: ``labels=classes`` and
``zero_division=np.nan`` for precision/recall/F1, the positive class ``classes[1]`` for binary
ROC AUC and average precision, one-vs-rest macro for more classes, and columns reordered to
sorted label order wherever scikit-learn assumes it (multi-class ROC AUC and log loss).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.preprocessing import label_binarize

from monitor.stats.performance import ClassificationMetrics, classification_metrics

Floats = npt.NDArray[np.float64]
TOLERANCE = 1e-9
SKLEARN_VERSION = tuple(int(part) for part in sklearn.__version__.split(".")[:2])


def close(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    return math.isclose(actual, expected, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def sklearn_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str], scores: Floats | None
) -> dict[str, Any]:
    """Every metric as scikit-learn computes it, with the settings our docstrings name."""
    labels = list(classes)
    truth = np.asarray(y_true)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=np.nan
        )
        macro = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average="macro", zero_division=np.nan
        )
        expected: dict[str, Any] = {
            "accuracy": accuracy_score(y_true, y_pred),
            "precision": dict(zip(labels, map(nan_to_none, precision), strict=True)),
            "recall": dict(zip(labels, map(nan_to_none, recall), strict=True)),
            "f1": dict(zip(labels, map(nan_to_none, f1), strict=True)),
            "macro": macro[:3],
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
            "roc_auc": None,
            "average_precision": None,
            "log_loss": None,
        }
        if scores is None:
            return expected
        order = np.argsort(labels)  # scikit-learn's column order: sorted labels
        expected["log_loss"] = log_loss(y_true, scores[:, order], labels=labels)
        present = [label for label in labels if np.any(truth == label)]
        if len(labels) == 2:
            positive = truth == labels[1]
            if 0 < positive.sum() < positive.size:
                expected["roc_auc"] = roc_auc_score(positive, scores[:, 1])
            if positive.any():
                expected["average_precision"] = average_precision_score(positive, scores[:, 1])
        elif len(present) == len(labels):
            normalised = np.allclose(scores.sum(axis=1), 1.0)
            if normalised:
                expected["roc_auc"] = roc_auc_score(
                    y_true,
                    scores[:, order],
                    multi_class="ovr",
                    average="macro",
                    labels=np.asarray(labels)[order],
                )
            else:
                expected["roc_auc"] = np.mean(
                    [roc_auc_score(truth == c, scores[:, j]) for j, c in enumerate(labels)]
                )
            expected["average_precision"] = average_precision_score(
                label_binarize(y_true, classes=labels), scores, average="macro"
            )
        else:  # our documented rule: the mean over the classes where the value is defined
            roc_aucs = [
                roc_auc_score(truth == c, scores[:, j])
                for j, c in enumerate(labels)
                if c in present and len(present) > 1
            ]
            expected["roc_auc"] = float(np.mean(roc_aucs)) if roc_aucs else None
            expected["average_precision"] = float(
                np.mean(
                    [
                        average_precision_score(truth == c, scores[:, j])
                        for j, c in enumerate(labels)
                        if c in present
                    ]
                )
            )
    return expected


def assert_matches_sklearn(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    classes: Sequence[str],
    scores: Floats | None = None,
) -> ClassificationMetrics:
    metrics = classification_metrics(y_true=y_true, y_pred=y_pred, classes=classes, scores=scores)
    expected = sklearn_metrics(y_true, y_pred, classes, scores)
    assert metrics.n == len(y_true)
    assert metrics.classes == tuple(classes)
    assert close(metrics.accuracy.value, expected["accuracy"])
    for name in ("precision", "recall"):
        ours = getattr(metrics, name)
        assert list(ours) == list(classes)
        for label in classes:
            proportion = ours[label]
            value = None if proportion is None else proportion.value
            assert close(value, expected[name][label]), (name, label)
    assert list(metrics.f1) == list(classes)
    for label in classes:
        assert close(metrics.f1[label], expected["f1"][label]), ("f1", label)
    macro = (metrics.macro_precision, metrics.macro_recall, metrics.macro_f1)
    for ours_macro, theirs_macro in zip(macro, expected["macro"], strict=True):
        assert close(ours_macro, theirs_macro)
    assert [list(row) for row in metrics.confusion_matrix] == expected["confusion_matrix"]
    assert close(metrics.roc_auc, expected["roc_auc"])
    assert close(metrics.average_precision, expected["average_precision"])
    assert close(metrics.log_loss, expected["log_loss"])
    return metrics


def random_case(
    rng: np.random.Generator, classes: Sequence[str], n: int, *, decimals: int | None = None
) -> tuple[list[str], list[str], Floats]:
    """Scores from a softmax of noisy logits, labels drawn from them, predictions the argmax.

    Rounding the scores to ``decimals`` makes heavy ties.
    """
    k = len(classes)
    logits = rng.normal(size=(n, k)) * 2.0
    scores = np.exp(logits)
    scores /= scores.sum(axis=1, keepdims=True)
    if decimals is not None:  # round the cumulative sums, so that rows still sum to one
        cumulative = np.round(np.cumsum(scores, axis=1), decimals)
        cumulative[:, -1] = 1.0
        scores = np.diff(cumulative, axis=1, prepend=0.0)
    true_codes = (rng.random(n)[:, None] > np.cumsum(scores, axis=1)).sum(axis=1)
    true_codes = np.minimum(true_codes, k - 1)
    pred_codes = scores.argmax(axis=1)
    # Some predictions disagree with the argmax, as a tuned threshold would.
    flip = rng.random(n) < 0.1
    pred_codes[flip] = rng.integers(0, k, flip.sum())
    return [classes[i] for i in true_codes], [classes[i] for i in pred_codes], scores


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    "classes",
    [
        ("approved", "rejected"),
        ("yes", "no"),  # positive class "no" sorts first: binary ROC AUC must still use "no"
        ("a", "b", "c"),
        ("zeta", "alpha", "mid", "beta", "omega"),  # configuration order is not sorted order
    ],
    ids=lambda classes: "-".join(classes),
)
@pytest.mark.parametrize("decimals", [None, 1, 2], ids=["continuous", "ties1", "ties2"])
def test_random_data_matches_sklearn(
    seed: int, classes: tuple[str, ...], decimals: int | None
) -> None:
    rng = np.random.default_rng(seed)
    y_true, y_pred, scores = random_case(
        rng, classes, int(rng.integers(50, 3000)), decimals=decimals
    )
    assert_matches_sklearn(y_true, y_pred, classes, scores)
    assert_matches_sklearn(y_true, y_pred, classes)


def test_large_window_with_heavy_ties_matches_sklearn() -> None:
    rng = np.random.default_rng(11)
    y_true, y_pred, scores = random_case(rng, ("a", "b", "c"), 50_000, decimals=2)
    assert_matches_sklearn(y_true, y_pred, ("a", "b", "c"), scores)
    y_true, y_pred, scores = random_case(rng, ("neg", "pos"), 50_000, decimals=3)
    assert_matches_sklearn(y_true, y_pred, ("neg", "pos"), scores)


@st.composite
def small_windows(draw: st.DrawFn) -> tuple[tuple[str, ...], list[str], list[str], Floats]:
    """Up to 40 predictions over 2 to 4 classes; scores normalised from small integer weights,
    so ties are everywhere."""
    classes = ("d", "b", "a", "c")[: draw(st.integers(2, 4))]
    n, k = draw(st.integers(1, 40)), len(classes)
    codes = st.lists(st.integers(0, k - 1), min_size=n, max_size=n)
    y_true = [classes[i] for i in draw(codes)]
    y_pred = [classes[i] for i in draw(codes)]
    weights = draw(st.lists(st.sampled_from([0, 1, 1, 2, 3]), min_size=n * k, max_size=n * k))
    scores = np.array(weights, dtype=np.float64).reshape(n, k) + 1e-3
    return classes, y_true, y_pred, scores / scores.sum(axis=1, keepdims=True)


@settings(max_examples=150, deadline=None)
@given(window=small_windows())
def test_small_tied_windows_match_sklearn(
    window: tuple[tuple[str, ...], list[str], list[str], Floats],
) -> None:
    classes, y_true, y_pred, scores = window
    assert_matches_sklearn(y_true, y_pred, classes, scores)


def test_binary_positive_class_is_the_second_configured_class() -> None:
    # "no" is classes[1]: its score column 1 ranks the two "no" rows highest, so AUC = 1.
    metrics = classification_metrics(
        y_true=["yes", "no", "no", "yes"],
        y_pred=["yes", "no", "no", "no"],
        classes=["yes", "no"],
        scores=np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]]),
    )
    assert metrics.roc_auc == 1.0 and metrics.average_precision == 1.0


def test_one_class_only() -> None:
    rng = np.random.default_rng(1)
    classes = ("neg", "pos")
    scores = rng.random((40, 2))
    y_pred = [classes[i] for i in rng.integers(0, 2, 40)]
    # Only the negative class: no positive, so neither ROC AUC nor average precision.
    metrics = assert_matches_sklearn(["neg"] * 40, y_pred, classes, scores)
    assert metrics.roc_auc is None and metrics.average_precision is None
    assert metrics.recall["pos"] is None and metrics.recall["neg"] is not None
    # Only the positive class: ROC AUC undefined (no negative), average precision 1.
    metrics = assert_matches_sklearn(["pos"] * 40, y_pred, classes, scores)
    assert metrics.roc_auc is None and metrics.average_precision == 1.0
    # Three classes, one present: no one-vs-rest ROC AUC is defined; AP of that class only.
    three = ("a", "b", "c")
    scores3 = rng.dirichlet(np.ones(3), size=40)
    metrics = assert_matches_sklearn(["b"] * 40, ["b"] * 40, three, scores3)
    assert metrics.roc_auc is None
    assert metrics.average_precision == 1.0
    assert metrics.accuracy.value == 1.0 and metrics.macro_f1 == 1.0
    assert metrics.f1 == {"a": None, "b": 1.0, "c": None}


def test_class_absent_from_window_is_left_out_of_macro_averages() -> None:
    rng = np.random.default_rng(2)
    classes = ("a", "b", "c", "d")
    y_true, y_pred, scores = random_case(rng, classes[:3], 500)
    # "d": never true, never predicted
    with_d = np.column_stack((scores * 0.9, np.full(500, 0.1)))
    metrics = assert_matches_sklearn(y_true, y_pred, classes, with_d)
    assert (
        metrics.precision["d"] is None and metrics.recall["d"] is None and metrics.f1["d"] is None
    )
    without_d = classification_metrics(
        y_true=y_true, y_pred=y_pred, classes=classes[:3], scores=scores
    )
    assert metrics.macro_f1 == pytest.approx(without_d.macro_f1, rel=1e-12)
    assert metrics.macro_precision == pytest.approx(without_d.macro_precision, rel=1e-12)
    assert metrics.roc_auc == pytest.approx(without_d.roc_auc, rel=1e-12)
    assert metrics.average_precision == pytest.approx(without_d.average_precision, rel=1e-12)


def test_class_never_predicted() -> None:
    y_true = ["a", "b", "c", "b", "a", "c"]
    y_pred = ["a", "a", "c", "c", "a", "c"]
    metrics = assert_matches_sklearn(y_true, y_pred, ("a", "b", "c"))
    assert metrics.precision["b"] is None
    recall_b = metrics.recall["b"]
    assert recall_b is not None and recall_b.value == 0.0 and recall_b.n == 2
    assert metrics.f1["b"] == 0.0  # occurs, never predicted: F1 is defined and zero
    # The macro recall counts "b" at zero; the macro precision leaves it out.
    assert metrics.macro_recall == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert metrics.macro_precision == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_all_wrong_and_all_right() -> None:
    rng = np.random.default_rng(3)
    classes = ("a", "b", "c")
    codes = rng.integers(0, 3, 300)
    y_true = [classes[i] for i in codes]
    wrong = [classes[(i + 1) % 3] for i in codes]
    one_hot = np.eye(3)[codes]
    # The true class always scores 0, the others 0.5: every ranking is backwards.
    metrics = assert_matches_sklearn(y_true, wrong, classes, (1.0 - one_hot) / 2.0)
    assert metrics.accuracy.value == 0.0 and metrics.accuracy.lower == 0.0
    assert metrics.macro_f1 == 0.0 and metrics.roc_auc == 0.0
    assert metrics.log_loss == pytest.approx(-math.log(np.finfo(np.float64).eps))
    metrics = assert_matches_sklearn(y_true, y_true, classes, one_hot)
    assert metrics.accuracy.value == 1.0 and metrics.accuracy.upper == 1.0
    assert metrics.macro_f1 == 1.0 and metrics.roc_auc == 1.0 and metrics.average_precision == 1.0
    assert metrics.log_loss == pytest.approx(-math.log1p(-np.finfo(np.float64).eps), abs=1e-15)


@pytest.mark.parametrize("classes", [("a", "b"), ("a", "b", "c")])
def test_single_prediction(classes: tuple[str, ...]) -> None:
    scores = np.full((1, len(classes)), 1.0 / len(classes))
    metrics = assert_matches_sklearn(["b"], ["a"], classes, scores)
    assert metrics.n == 1 and metrics.accuracy.value == 0.0
    assert metrics.roc_auc is None  # one example holds one class
    assert metrics.confusion_matrix[1][0] == 1
    metrics = assert_matches_sklearn(["b"], ["b"], classes, scores)
    assert metrics.accuracy.value == 1.0


def test_constant_scores_give_chance_ranking() -> None:
    rng = np.random.default_rng(4)
    y_true = [("a", "b")[i] for i in rng.integers(0, 2, 100)]
    metrics = assert_matches_sklearn(y_true, y_true, ("a", "b"), np.full((100, 2), 0.5))
    assert metrics.roc_auc == 0.5
    assert metrics.average_precision == pytest.approx(y_true.count("b") / 100)


@pytest.mark.skipif(SKLEARN_VERSION < (1, 5), reason="scikit-learn < 1.5 renormalised rows")
def test_log_loss_uses_scores_as_sent_like_sklearn() -> None:
    rng = np.random.default_rng(5)
    classes = ("a", "b", "c")
    y_true, y_pred, _ = random_case(rng, classes, 400)
    scores = rng.random((400, 3)) * 0.6  # rows do not sum to one; some are near zero
    scores[:5] = 0.0
    metrics = assert_matches_sklearn(y_true, y_pred, classes, scores)
    codes = np.array([classes.index(label) for label in y_true])
    expected = -np.mean(np.log(np.clip(scores[np.arange(400), codes], 2.0**-52, 1 - 2.0**-52)))
    assert metrics.log_loss == pytest.approx(expected, rel=1e-12)


def test_accuracy_interval_is_wilson() -> None:
    y_true = ["a"] * 10
    y_pred = ["a"] * 8 + ["b"] * 2
    accuracy = classification_metrics(y_true=y_true, y_pred=y_pred, classes=["a", "b"]).accuracy
    assert (accuracy.successes, accuracy.n, accuracy.value) == (8, 10, 0.8)
    assert accuracy.lower == pytest.approx(0.4901624715366418, abs=1e-12)
    assert accuracy.upper == pytest.approx(0.9433178485456248, abs=1e-12)


def test_numpy_string_arrays_are_accepted() -> None:
    y_true = np.array(["a", "b", "b"])
    y_pred = np.array(["a", "b", "a"])
    from_arrays = classification_metrics(y_true=y_true, y_pred=y_pred, classes=["a", "b"])
    from_lists = classification_metrics(
        y_true=y_true.tolist(), y_pred=y_pred.tolist(), classes=["a", "b"]
    )
    assert from_arrays == from_lists


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_true": [], "y_pred": []}, "no labelled predictions"),
        ({"y_true": ["a"], "y_pred": ["a", "b"]}, "y_pred has 2"),
        ({"y_true": ["a", "x"], "y_pred": ["a", "b"]}, "'x' is not one of the classes"),
        ({"y_true": ["a", None], "y_pred": ["a", "b"]}, "None is not one of the classes"),
        ({"y_true": ["a"], "y_pred": ["a"], "classes": ["a"]}, "at least two classes"),
        ({"y_true": ["a"], "y_pred": ["a"], "classes": ["a", "a"]}, "distinct"),
        ({"y_true": ["a"], "y_pred": ["a"], "scores": [[0.5, 0.5, 0.0]]}, "shape"),
        ({"y_true": ["a"], "y_pred": ["a"], "scores": [0.5, 0.5]}, "shape"),
        ({"y_true": ["a"], "y_pred": ["a"], "scores": [[np.nan, 0.5]]}, r"\[0, 1\]"),
        ({"y_true": ["a"], "y_pred": ["a"], "scores": [[1.5, 0.5]]}, r"\[0, 1\]"),
        ({"y_true": ["a"], "y_pred": ["a"], "scores": [[-0.1, 0.5]]}, r"\[0, 1\]"),
    ],
)
def test_invalid_input_is_refused(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"classes": ["a", "b"], **kwargs}
    with pytest.raises(ValueError, match=message):
        classification_metrics(**arguments)
