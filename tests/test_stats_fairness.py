"""Group fairness equals fairlearn's (the independent reference) to 1e-12, and hand-computed cases.

fairlearn is called with its defaults (``method="between_groups"``, ``agg="worst_case"``) on 0/1
arrays with ``pos_label=1``; the cases it answers differently by design (a rate with an empty
denominator) are asserted separately against the module docstring.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score

from monitor.stats.fairness import group_fairness

TOLERANCE = 1e-12


def close(actual: float | None, expected: float) -> bool:
    assert actual is not None
    return math.isclose(actual, expected, rel_tol=0, abs_tol=TOLERANCE)


def fairlearn_reference(
    groups: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray
) -> dict[str, float]:
    kwargs = {"sensitive_features": groups}
    return {
        "demographic_parity_difference": demographic_parity_difference(y_true, y_pred, **kwargs),
        "demographic_parity_ratio": demographic_parity_ratio(y_true, y_pred, **kwargs),
        "equalized_odds_difference": equalized_odds_difference(y_true, y_pred, **kwargs),
        "equalized_odds_ratio": equalized_odds_ratio(y_true, y_pred, **kwargs),
        "equal_opportunity_difference": equal_opportunity_difference(y_true, y_pred, **kwargs),
    }


def assert_equals_fairlearn(groups: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> None:
    result = group_fairness(groups, y_pred == 1, y_true == 1)
    for name, expected in fairlearn_reference(groups, y_true, y_pred).items():
        assert close(getattr(result, name), float(expected)), name
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "accuracy": accuracy_score,
            "true_positive_rate": lambda t, p: true_positive_rate(t, p, pos_label=1),
            "false_positive_rate": lambda t, p: false_positive_rate(t, p, pos_label=1),
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    ).by_group
    assert [g.group for g in result.groups] == [str(name) for name in frame.index]
    for rates in result.groups:
        row = frame.loc[rates.group]
        for metric in ("selection_rate", "accuracy", "true_positive_rate", "false_positive_rate"):
            assert close(getattr(rates, metric), float(row[metric])), (rates.group, metric)


def test_random_groups_equal_fairlearn() -> None:
    rng = np.random.default_rng(16)
    size = 5_000
    groups = rng.choice(np.array(["a", "b", "c", "d"]), size=size, p=[0.4, 0.3, 0.2, 0.1])
    bias = {"a": 0.5, "b": 0.4, "c": 0.3, "d": 0.6}
    y_true = (rng.random(size) < 0.45).astype(int)
    chance = np.array([bias[g] for g in groups]) + 0.3 * y_true
    y_pred = (rng.random(size) < chance).astype(int)
    assert_equals_fairlearn(groups, y_true, y_pred)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["x", "y", "z"]), st.booleans(), st.booleans()),
        min_size=1,
        max_size=80,
    )
)
def test_any_data_with_both_labels_per_group_equals_fairlearn(
    rows: list[tuple[str, bool, bool]],
) -> None:
    # every group gets a selected positive and a selected negative, so each rate and ratio is
    # defined (fairlearn's ratio of all-zero rates is NaN, and min() over NaN depends on order)
    for group in ("x", "y", "z"):
        rows = [*rows, (group, True, True), (group, False, True)]
    groups = np.array([r[0] for r in rows])
    y_true = np.array([int(r[1]) for r in rows])
    y_pred = np.array([int(r[2]) for r in rows])
    result = group_fairness(groups, y_pred == 1, y_true == 1)
    reference = fairlearn_reference(groups, y_true, y_pred)
    for name, expected in reference.items():
        assert close(getattr(result, name), float(expected)), name


def test_hand_computed_two_groups() -> None:
    # f: predictions 1,1,0,0 labels 1,0,1,0 -> selection 2/4, TP 1/2, FP 1/2, accuracy 2/4
    # m: predictions 1,1,1,0 labels 1,1,0,0 -> selection 3/4, TP 2/2, FP 1/2, accuracy 3/4
    groups = np.array(["f"] * 4 + ["m"] * 4)
    selected = np.array([1, 1, 0, 0, 1, 1, 1, 0], dtype=bool)
    positive = np.array([1, 0, 1, 0, 1, 1, 0, 0], dtype=bool)
    result = group_fairness(groups, selected, positive)
    f, m = result.groups
    assert (f.selection_rate, f.accuracy, f.true_positive_rate, f.false_positive_rate) == (
        0.5,
        0.5,
        0.5,
        0.5,
    )
    assert (m.selection_rate, m.accuracy, m.true_positive_rate, m.false_positive_rate) == (
        0.75,
        0.75,
        1.0,
        0.5,
    )
    assert result.demographic_parity_difference == 0.25
    assert result.demographic_parity_ratio == 0.5 / 0.75
    assert result.equal_opportunity_difference == 0.5  # TPR 1.0 - 0.5
    assert result.equalized_odds_difference == 0.5  # max(TPR 0.5, FPR 0.0)
    assert result.equalized_odds_ratio == 0.5  # min(TPR 0.5 / 1.0, FPR 0.5 / 0.5)


def test_selection_rates_need_no_labels() -> None:
    groups = np.array(["a", "a", "b", "b", "b"])
    selected = np.array([True, False, True, True, True])
    result = group_fairness(groups, selected)
    assert [g.selection_rate for g in result.groups] == [0.5, 1.0]
    assert result.demographic_parity_ratio == 0.5
    assert result.demographic_parity_difference == 0.5
    assert [g.accuracy for g in result.groups] == [None, None]
    assert result.equalized_odds_difference is None
    assert result.equal_opportunity_difference is None


def test_unlabelled_predictions_count_for_selection_only() -> None:
    groups = np.array(["a", "a", "a", "b", "b"])
    selected = np.array([True, True, False, True, False])
    positive = np.array([True, False, False, True, False])
    labelled = np.array([True, False, False, True, True])
    result = group_fairness(groups, selected, positive, labelled)
    a, b = result.groups
    assert (a.predictions, a.labelled, a.positives, a.negatives) == (3, 1, 1, 0)
    assert a.selection_rate == 2 / 3 and a.accuracy == 1.0
    assert a.true_positive_rate == 1.0 and a.false_positive_rate is None
    assert (b.labelled, b.positives, b.negatives) == (2, 1, 1)
    assert b.false_positive_rate == 0.0
    # FPR defined in one group only: no FPR disparity, so no equalized odds
    assert result.equalized_odds_difference is None and result.equalized_odds_ratio is None
    assert result.equal_opportunity_difference == 0.0


def test_a_group_without_positives_takes_no_part_in_tpr_disparities() -> None:
    # fairlearn reports TPR 0.0 for group c (no positives) and an opportunity gap of 1.0
    groups = np.array(["a", "a", "b", "b", "c"])
    selected = np.array([True, False, True, False, False])
    positive = np.array([True, False, True, False, False])
    result = group_fairness(groups, selected, positive)
    assert result.groups[2].true_positive_rate is None
    assert result.equal_opportunity_difference == 0.0
    assert equal_opportunity_difference(
        positive.astype(int), selected.astype(int), sensitive_features=groups
    ) == pytest.approx(1.0)


def test_ratio_of_all_zero_rates_is_none() -> None:
    result = group_fairness(np.array(["a", "b"]), np.array([False, False]))
    assert result.demographic_parity_difference == 0.0
    assert result.demographic_parity_ratio is None


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        group_fairness(np.array(["a"]), np.array([True, False]))
