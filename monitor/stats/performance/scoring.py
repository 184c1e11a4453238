"""Metrics of the predicted probabilities: ROC AUC, average precision and log loss.

``scores`` has one row per prediction and one column per configured class, in configuration
order: ``scores[i, j]`` is the probability the model gave to ``classes[j]`` for prediction ``i``.
Every score must be finite and in ``[0, 1]``; rows need not sum to one.

ROC AUC and average precision
-----------------------------
For one class against the rest, with ``P`` positives and ``N`` negatives:

* ROC AUC is the Mann-Whitney probability that a random positive scores above a random
  negative, ties counting one half: ``sum over positives of (#negatives below + #negatives
  equal / 2) / (P N)``. The pairs are counted exactly, in integers; the value equals the
  trapezoidal area under the ROC curve that ``sklearn.metrics.roc_auc_score`` computes. It is
  undefined (``None``) when ``P = 0`` or ``N = 0``, where scikit-learn returns NaN with a
  warning.
* Average precision is scikit-learn's step-wise (not interpolated) area under the
  precision-recall curve: ``sum_t (R_t - R_{t-1}) P_t`` over the distinct scores ``t`` taken as
  thresholds in decreasing order, where ``P_t`` and ``R_t`` are the precision and recall of
  "score >= t". Tied scores enter together. It is undefined (``None``) when ``P = 0``;
  scikit-learn returns ``0.0`` there (with a warning). With ``N = 0`` it is ``1.0``.

Both come from sorting the positives' and the negatives' scores once each (no argsort).

Binary and multi-class:

* Two classes: the positive class is ``classes[1]``, the *second configured class*, scored by
  ``scores[:, 1]`` (column 0 is ignored). This equals
  ``roc_auc_score(y_true == classes[1], scores[:, 1])`` and the same for
  ``average_precision_score``. scikit-learn called on the string labels would instead take the
  greater label in sort order as positive.
* Three or more classes: one-vs-rest macro average, class ``j`` against the rest scored by
  ``scores[:, j]``, each class weighted equally. A class whose one-vs-rest value is undefined
  in the window (for ROC AUC: absent from ``y_true``, or the only class present; for average
  precision: absent from ``y_true``) is left out of the mean, and the mean is ``None`` when no
  class is left. When every class is present, this equals
  ``roc_auc_score(y_true, scores, multi_class="ovr", average="macro", labels=classes)``
  (scikit-learn also requires rows summing to one, and ``labels`` in sorted order, so the
  columns must be reordered to match) and
  ``average_precision_score(label_binarize(y_true, classes=classes), scores, average="macro")``;
  when a class is absent, scikit-learn's macro ROC AUC is undefined (NaN with a warning; older
  releases raise) and it scores the class's average precision ``0.0``, which would pull the
  macro average down only because the window lacked the class.

Log loss
--------
``-mean_i log(clip(scores[i, y_i], eps, 1 - eps))`` with ``eps = 2.22e-16`` (float64 machine
epsilon), where ``y_i`` is the true class: the natural-log cross-entropy of the probability the
model gave to the true class, *as sent*. Rows are not renormalised, so a model whose scores do
not sum to one is not rewarded for it. This equals ``sklearn.metrics.log_loss(y_true, scores,
labels=classes)`` from scikit-learn 1.5 on (1.3 and 1.4 renormalised rows that did not sum to
one); note that scikit-learn orders the columns by sorted label, not by ``labels``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: The clip applied to probabilities in the log loss (float64 machine epsilon, as scikit-learn).
LOG_LOSS_EPSILON: float = float(np.finfo(np.float64).eps)


def check_scores(
    scores: npt.ArrayLike, *, n: int | None, n_classes: int
) -> npt.NDArray[np.float64]:
    """``scores`` as a float64 array of shape ``(n, n_classes)`` with values in ``[0, 1]``.

    Parameters
    ----------
    scores : array_like of float
        Probabilities per class, one row per prediction.
    n : int or None
        Expected rows; ``None`` accepts any number.
    n_classes : int
        Expected columns.

    Returns
    -------
    ndarray of float64
        The scores (not copied when already float64).

    Raises
    ------
    ValueError
        On another shape, or a score that is NaN or outside ``[0, 1]``.

    Examples
    --------
    >>> check_scores([[0.2, 0.8]], n=1, n_classes=2)
    array([[0.2, 0.8]])
    """
    array = np.asarray(scores, dtype=np.float64)
    rows = array.shape[0] if n is None and array.ndim == 2 else n
    if array.shape != (rows, n_classes):
        expected = f"({'m' if rows is None else rows}, {n_classes})"
        raise ValueError(f"scores must have shape {expected}, got {array.shape}")
    # Written so that NaN fails it too.
    if array.size and not (np.all(array >= 0.0) and np.all(array <= 1.0)):
        raise ValueError("scores must be probabilities in [0, 1]")
    return array


def binary_ranking(
    scores: npt.NDArray[np.float64], positive: npt.NDArray[np.bool_]
) -> tuple[float | None, float | None]:
    """ROC AUC and average precision of one class against the rest.

    Parameters
    ----------
    scores : ndarray of float64
        The class's score per prediction, 1-D, no NaN.
    positive : ndarray of bool
        Whether each prediction's true class is this class.

    Returns
    -------
    tuple of (float or None)
        ``(roc_auc, average_precision)`` as defined in the module docstring.

    Examples
    --------
    Positives score 0.9 and 0.5, negatives 0.5 and 0.1: of the four positive-negative pairs,
    three are ordered right and one is tied, so ROC AUC is ``3.5 / 4``. The thresholds 0.9 and
    0.5 recover one positive each, at precisions 1 and 2/3.

    >>> binary_ranking(np.array([0.9, 0.5, 0.5, 0.1]), np.array([True, True, False, False]))
    (0.875, 0.8333333333333333)
    >>> binary_ranking(np.array([0.3, 0.6]), np.array([True, True]))
    (None, 1.0)
    """
    column = np.ascontiguousarray(scores)  # masking a strided column directly is 2x slower
    positive_scores = column[positive]
    negative_scores = column[~positive]
    positive_scores.sort()
    negative_scores.sort()
    n_positive, n_negative = positive_scores.size, negative_scores.size
    if n_positive == 0:
        return None, None
    is_first = np.empty(n_positive, dtype=np.bool_)
    is_first[0] = True
    np.not_equal(positive_scores[1:], positive_scores[:-1], out=is_first[1:])
    first = np.flatnonzero(is_first)
    thresholds = positive_scores[first]
    tied = np.diff(first, append=n_positive)
    negatives_below = np.searchsorted(negative_scores, thresholds, side="left")
    # Precision of "score >= t" at each distinct positive score t, weighted by the positives at
    # t (the recall step); thresholds holding only negatives add no recall, so no term.
    true_positives = n_positive - first
    false_positives = n_negative - negatives_below
    precision = true_positives / (true_positives + false_positives)
    average_precision = float(np.dot(tied, precision) / n_positive)
    if n_negative == 0:
        return None, average_precision
    # Negatives tied with a positive threshold count one half; look them up only where a
    # negative equals the threshold (none at all for continuous scores).
    negatives_up_to = negatives_below.copy()
    inside = negatives_below < n_negative
    tied_negative = np.zeros(thresholds.size, dtype=np.bool_)
    tied_negative[inside] = negative_scores[negatives_below[inside]] == thresholds[inside]
    if tied_negative.any():
        negatives_up_to[tied_negative] = np.searchsorted(
            negative_scores, thresholds[tied_negative], side="right"
        )
    twice_mann_whitney = int(np.dot(tied, negatives_below + negatives_up_to))
    return twice_mann_whitney / (2 * n_positive * n_negative), average_precision


def ranking_metrics(
    scores: npt.NDArray[np.float64], true_codes: npt.NDArray[np.intp]
) -> tuple[float | None, float | None]:
    """ROC AUC and average precision: binary on ``classes[1]``, else one-vs-rest macro.

    Parameters
    ----------
    scores : ndarray of float64
        Shape ``(n, k)`` with ``k >= 2``, checked by :func:`check_scores`.
    true_codes : ndarray of intp
        The true class code of each prediction (see :mod:`.labels`).

    Returns
    -------
    tuple of (float or None)
        ``(roc_auc, average_precision)`` as defined in the module docstring.

    Examples
    --------
    Class 0 (rows 0 and 4, scoring 0.5 and 0.1 against 0.2, 0.3, 0.4) wins 3 of 6 pairs, class 1
    (0.5 and 0.4 against 0.3, 0.3, 0.6) 4 of 6, class 2 all 4: ROC AUC ``(1/2 + 2/3 + 1) / 3``.

    >>> scores = np.array(
    ...     [[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4], [0.4, 0.4, 0.2], [0.1, 0.6, 0.3]]
    ... )
    >>> ranking_metrics(scores, np.array([0, 1, 2, 1, 0]))
    (0.7222222222222222, 0.7611111111111111)

    Class 2 is absent below, so the averages run over classes 0 and 1 only.

    >>> ranking_metrics(scores, np.array([0, 1, 0, 1, 0]))
    (0.5833333333333333, 0.6694444444444444)
    """
    n_classes = scores.shape[1]
    if n_classes == 2:
        return binary_ranking(scores[:, 1], true_codes == 1)
    roc_aucs: list[float] = []
    average_precisions: list[float] = []
    for code in range(n_classes):
        roc_auc, average_precision = binary_ranking(scores[:, code], true_codes == code)
        if roc_auc is not None:
            roc_aucs.append(roc_auc)
        if average_precision is not None:
            average_precisions.append(average_precision)
    return _mean_or_none(roc_aucs), _mean_or_none(average_precisions)


def log_loss(scores: npt.NDArray[np.float64], true_codes: npt.NDArray[np.intp]) -> float:
    """Mean negative log probability given to the true class, clipped, not renormalised.

    Parameters
    ----------
    scores : ndarray of float64
        Shape ``(n, k)`` with ``n >= 1``, checked by :func:`check_scores`.
    true_codes : ndarray of intp
        The true class code of each prediction.

    Returns
    -------
    float
        The log loss (natural logarithm), ``>= 0``.

    Examples
    --------
    >>> scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.4]])
    >>> round(log_loss(scores, np.array([0, 1, 1])), 12)
    0.414931599615
    >>> round(-(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3, 12)
    np.float64(0.414931599615)
    """
    true_scores = scores[np.arange(true_codes.size), true_codes]
    clipped = np.clip(true_scores, LOG_LOSS_EPSILON, 1.0 - LOG_LOSS_EPSILON)
    return float(-np.mean(np.log(clipped)))


def _mean_or_none(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
