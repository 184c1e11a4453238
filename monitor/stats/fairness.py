"""Group fairness of a binary decision: per-group rates and the disparities between groups.

Definitions
-----------
A prediction is *selected* when the model predicted the positive class; a labelled prediction
is a *positive* when its label is the positive class. For each group ``a`` of one sensitive
feature::

    selection rate       P(selected | A = a)                over all its predictions
    accuracy             P(prediction == label | A = a)     over its labelled predictions
    true positive rate   P(selected | A = a, positive)      over its labelled positives
    false positive rate  P(selected | A = a, negative)      over its labelled negatives

and across the groups where a rate is defined (``max`` and ``min`` over groups)::

    demographic parity difference  max selection rate - min selection rate
    demographic parity ratio       min selection rate / max selection rate
    equal opportunity difference   max TPR - min TPR
    equalized odds difference      max(TPR difference, FPR difference)
    equalized odds ratio           min(min TPR / max TPR, min FPR / max FPR)

These are the definitions of ``fairlearn.metrics`` (``method="between_groups"``,
``agg="worst_case"``) and equal them to rounding (``tests/test_stats_fairness.py``). Where
fairlearn returns a number for an undefined rate, the value here is ``None``:

- a group without labelled positives has no true positive rate (fairlearn, through
  scikit-learn's ``confusion_matrix(normalize="true")``, reports 0.0), and likewise without
  labelled negatives no false positive rate; such a group takes no part in the TPR (FPR)
  disparities, since a rate of 0.0 read from no evidence would raise a false alarm;
- a ratio whose largest rate is 0 is ``None`` (fairlearn: NaN);
- a disparity over fewer than two groups with the rate defined is ``None``.

Whether there are enough predictions per group to trust these (``min_samples``) is the
caller's decision, as everywhere in :mod:`monitor.stats`.

Examples
--------
>>> import numpy as np
>>> groups = np.array(["f", "f", "f", "f", "m", "m", "m", "m"])
>>> selected = np.array([True, True, False, False, True, True, True, False])
>>> positive = np.array([True, False, True, False, True, True, False, False])
>>> result = group_fairness(groups, selected, positive)
>>> [g.selection_rate for g in result.groups]
[0.5, 0.75]
>>> result.demographic_parity_difference, result.demographic_parity_ratio
(0.25, 0.6666666666666666)
>>> result.equalized_odds_difference, result.equal_opportunity_difference
(0.5, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class GroupRates:
    """One group's rates; a rate is ``None`` when its denominator is empty.

    Attributes
    ----------
    group : str
        The sensitive feature's value.
    predictions, labelled, positives, negatives : int
        Predictions in the group; those with a label; labelled positives and negatives.
    selection_rate : float or None
        Share of the group's predictions that select the positive class.
    accuracy, true_positive_rate, false_positive_rate : float or None
        Over the labelled predictions, positives and negatives respectively.
    """

    group: str
    predictions: int
    labelled: int
    positives: int
    negatives: int
    selection_rate: float | None
    accuracy: float | None
    true_positive_rate: float | None
    false_positive_rate: float | None


@dataclass(frozen=True, slots=True)
class GroupFairness:
    """Per-group rates, in sorted group order, and the disparities between the groups."""

    groups: tuple[GroupRates, ...]
    demographic_parity_difference: float | None
    demographic_parity_ratio: float | None
    equalized_odds_difference: float | None
    equalized_odds_ratio: float | None
    equal_opportunity_difference: float | None


#: The counts per group that every rate and disparity is computed from
#: (:func:`fairness_counts`), in this order; counts of pieces of a window add up.
COUNTS = (
    "predictions",
    "selected",
    "labelled",
    "positives",
    "negatives",
    "true_positives",
    "false_positives",
)


def group_fairness(
    groups: npt.ArrayLike,
    selected: Bools,
    positive: Bools | None = None,
    labelled: Bools | None = None,
) -> GroupFairness:
    """Rates per group and the disparities between groups.

    Parameters
    ----------
    groups : array of str
        The sensitive feature's value for each prediction.
    selected : array of bool
        Whether each prediction is the positive class.
    positive : array of bool, optional
        Whether each prediction's label is the positive class; without it only selection rates
        (and demographic parity) are computed.
    labelled : array of bool, optional
        Which predictions have a label (``positive`` is ignored elsewhere); all, when omitted.
    """
    return fairness_from_counts(fairness_counts(groups, selected, positive, labelled))


def fairness_counts(
    groups: npt.ArrayLike,
    selected: Bools,
    positive: Bools | None = None,
    labelled: Bools | None = None,
) -> dict[str, npt.NDArray[np.int64]]:
    """Each group's :data:`COUNTS` (parameters as :func:`group_fairness`'s). Counts of the
    pieces of a window, added group by group, are the whole window's.

    >>> import numpy as np
    >>> counts = fairness_counts(np.array(["f", "m", "f"]), np.array([True, False, False]))
    >>> {group: c.tolist() for group, c in counts.items()}
    {'f': [2, 1, 0, 0, 0, 0, 0], 'm': [1, 0, 0, 0, 0, 0, 0]}
    """
    values = np.asarray(groups).astype(str)
    selected = np.asarray(selected, dtype=bool)
    if values.shape != selected.shape or values.ndim != 1:
        raise ValueError("groups and selected must be 1-d arrays of the same length")
    names, codes = np.unique(values, return_inverse=True)
    size = len(names)
    if positive is None:
        has_label = np.zeros(len(values), dtype=bool)
        is_positive = has_label
    else:
        is_positive = np.asarray(positive, dtype=bool)
        if is_positive.shape != selected.shape:
            raise ValueError("positive must have the length of groups")
        has_label = (
            np.ones(len(values), dtype=bool)
            if labelled is None
            else np.asarray(labelled, dtype=bool)
        )
        if has_label.shape != selected.shape:
            raise ValueError("labelled must have the length of groups")
        is_positive = is_positive & has_label
    is_negative = has_label & ~is_positive
    columns = [
        np.ones(len(values), dtype=bool),
        selected,
        has_label,
        is_positive,
        is_negative,
        is_positive & selected,
        is_negative & selected,
    ]
    table = np.stack([np.bincount(codes, weights=c, minlength=size) for c in columns], axis=1)
    return {str(name): table[i].astype(np.int64) for i, name in enumerate(names)}


def fairness_from_counts(counts: Mapping[str, npt.NDArray[np.int64]]) -> GroupFairness:
    """Rates per group and the disparities between groups from each group's :data:`COUNTS`
    (:func:`fairness_counts`); groups in sorted order."""
    rates = []
    for group in sorted(counts):
        (
            predictions,
            chosen,
            labelled_count,
            positives,
            negatives,
            true_positives,
            false_positives,
        ) = (int(c) for c in counts[group])
        true_negatives = negatives - false_positives
        rates.append(
            GroupRates(
                group=group,
                predictions=predictions,
                labelled=labelled_count,
                positives=positives,
                negatives=negatives,
                selection_rate=_share(chosen, predictions),
                accuracy=_share(true_positives + true_negatives, labelled_count),
                true_positive_rate=_share(true_positives, positives),
                false_positive_rate=_share(false_positives, negatives),
            )
        )
    selection = [g.selection_rate for g in rates]
    tpr = [g.true_positive_rate for g in rates]
    fpr = [g.false_positive_rate for g in rates]
    tpr_difference, fpr_difference = _difference(tpr), _difference(fpr)
    tpr_ratio, fpr_ratio = _ratio(tpr), _ratio(fpr)
    return GroupFairness(
        groups=tuple(rates),
        demographic_parity_difference=_difference(selection),
        demographic_parity_ratio=_ratio(selection),
        equalized_odds_difference=(
            None
            if tpr_difference is None or fpr_difference is None
            else max(tpr_difference, fpr_difference)
        ),
        equalized_odds_ratio=(
            None if tpr_ratio is None or fpr_ratio is None else min(tpr_ratio, fpr_ratio)
        ),
        equal_opportunity_difference=tpr_difference,
    )


def _share(part: float, whole: float) -> float | None:
    return None if whole == 0 else float(part) / float(whole)


def _defined(rates: list[float | None]) -> list[float]:
    return [rate for rate in rates if rate is not None]


def _difference(rates: list[float | None]) -> float | None:
    defined = _defined(rates)
    return max(defined) - min(defined) if len(defined) >= 2 else None


def _ratio(rates: list[float | None]) -> float | None:
    defined = _defined(rates)
    if len(defined) < 2 or max(defined) == 0:
        return None
    return min(defined) / max(defined)
