"""Classification performance over the labelled predictions of one window.

Labels are encoded once to integer codes (:mod:`.labels`), the confusion matrix is one
``np.bincount``, and every count-based metric is read off it:

* accuracy ``= trace / n``; for class ``c``, with ``TP`` its diagonal cell, ``predicted`` its
  column sum and ``actual`` its row sum: precision ``= TP / predicted``, recall
  ``= TP / actual``, F1 ``= 2 TP / (predicted + actual)`` (the harmonic mean of precision and
  recall where both are defined, ``= 2 TP / (2 TP + FP + FN)``).
* Accuracy, precision and recall are binomial proportions and carry a 95% Wilson interval
  (:mod:`.interval`), so an alert rule can tell a real drop from a thin sample.

Undefined values are ``None``, never a made-up number: a class's precision is undefined when the
class was never predicted, its recall when it never occurred, its F1 when neither happened. This
is scikit-learn's ``zero_division=np.nan``; its default (``"warn"``) reports ``0.0`` instead.

Macro averages are the unweighted mean over the configured classes *whose value is defined*:
``precision_recall_fscore_support(y_true, y_pred, labels=classes, average="macro",
zero_division=np.nan)``. A class that is simply absent from the window therefore neither drags
the average to zero nor lifts it; a class that occurs but is never predicted still counts, with
recall 0 and F1 0. With ``n >= 1`` every macro average is defined: some class occurs (so a
recall and an F1 exist) and some class is predicted (so a precision exists).

With ``scores``, ROC AUC, average precision and log loss are added as :mod:`.scoring`
defines them: for two classes the positive class is ``classes[1]``, for more the one-vs-rest
macro average.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.stats.performance.interval import Proportion, proportion
from monitor.stats.performance.labels import Labels, check_classes, encode_labels
from monitor.stats.performance.scoring import check_scores, log_loss, ranking_metrics


@dataclass(frozen=True, slots=True)
class ClassificationMetrics:
    """Classification performance over ``n`` labelled predictions.

    Attributes
    ----------
    n : int
        Labelled predictions.
    classes : tuple of str
        The configured classes, in configuration order: the keys of the per-class dicts and the
        row and column order of ``confusion_matrix``.
    accuracy : Proportion
        Correct predictions out of ``n``, with its Wilson interval.
    precision : dict of str to (Proportion or None)
        Per class, true positives out of the predictions of that class; ``None`` when the class
        was never predicted.
    recall : dict of str to (Proportion or None)
        Per class, true positives out of the occurrences of that class; ``None`` when the class
        never occurred.
    f1 : dict of str to (float or None)
        Per class, ``2 TP / (predicted + actual)``; ``None`` when the class was neither
        predicted nor occurred.
    macro_precision, macro_recall, macro_f1 : float
        Unweighted means over the classes whose value is defined (see the module docstring).
    confusion_matrix : tuple of tuple of int
        ``confusion_matrix[i][j]`` counts predictions of ``classes[j]`` whose true class is
        ``classes[i]``.
    roc_auc : float or None
        Binary: ``classes[1]`` is the positive class. Multi-class: one-vs-rest macro average.
        ``None`` without scores, or when undefined (see :mod:`.scoring`).
    average_precision : float or None
        As ``roc_auc``, scikit-learn's step-wise average precision.
    log_loss : float or None
        Mean negative log probability of the true class; ``None`` without scores.
    """

    n: int
    classes: tuple[str, ...]
    accuracy: Proportion
    precision: dict[str, Proportion | None]
    recall: dict[str, Proportion | None]
    f1: dict[str, float | None]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    confusion_matrix: tuple[tuple[int, ...], ...]
    roc_auc: float | None
    average_precision: float | None
    log_loss: float | None


def classification_metrics(
    *,
    y_true: Labels,
    y_pred: Labels,
    classes: Sequence[str],
    scores: npt.ArrayLike | None = None,
) -> ClassificationMetrics:
    """Accuracy, per-class and macro precision/recall/F1, confusion matrix, and score metrics.

    Parameters
    ----------
    y_true : sequence of str
        The true class of each labelled prediction, each one of ``classes``.
    y_pred : sequence of str
        The predicted class, same length, each one of ``classes``.
    classes : sequence of str
        The model's configured classes, at least two, distinct, in configuration order.
    scores : array_like of float, optional
        Shape ``(n, len(classes))``: the probability of each class, columns in ``classes``
        order, values in ``[0, 1]`` (rows need not sum to one). Without it, ``roc_auc``,
        ``average_precision`` and ``log_loss`` are ``None``.

    Returns
    -------
    ClassificationMetrics
        The metrics; see the module docstring for each definition.

    Raises
    ------
    ValueError
        If there are no predictions, the lengths differ, a label is not a configured class, or
        ``scores`` has the wrong shape or a value outside ``[0, 1]``.

    Examples
    --------
    >>> metrics = classification_metrics(
    ...     y_true=["cat", "cat", "dog", "dog", "dog"],
    ...     y_pred=["cat", "dog", "dog", "dog", "cat"],
    ...     classes=["dog", "cat"],
    ...     scores=[[0.2, 0.8], [0.6, 0.4], [0.9, 0.1], [0.7, 0.3], [0.4, 0.6]],
    ... )
    >>> metrics.confusion_matrix
    ((2, 1), (1, 1))
    >>> accuracy = metrics.accuracy
    >>> accuracy.value, round(accuracy.lower, 4), round(accuracy.upper, 4)
    (0.6, 0.2307, 0.8824)
    >>> metrics.recall["cat"].value, metrics.f1["cat"], metrics.macro_f1
    (0.5, 0.5, 0.5833333333333333)

    ``classes[1]`` (``"cat"``) is the positive class: cats score 0.8 and 0.4, dogs 0.1, 0.3
    and 0.6, so five of the six cat-dog pairs are ordered right.

    >>> round(metrics.roc_auc, 12), round(metrics.average_precision, 12)
    (0.833333333333, 0.833333333333)

    A class never predicted has no precision, but it still counts in the macro recall:

    >>> metrics = classification_metrics(
    ...     y_true=["a", "b", "c"], y_pred=["a", "a", "c"], classes=["a", "b", "c"]
    ... )
    >>> metrics.precision["b"] is None, metrics.recall["b"].value, metrics.macro_recall
    (True, 0.0, 0.6666666666666666)
    >>> metrics.roc_auc is None
    True
    """
    classes = check_classes(classes)
    return classification_metrics_of_codes(
        true_codes=encode_labels(y_true, classes=classes),
        pred_codes=encode_labels(y_pred, classes=classes),
        classes=classes,
        scores=scores,
    )


def classification_metrics_of_codes(
    *,
    true_codes: npt.NDArray[np.integer[Any]],
    pred_codes: npt.NDArray[np.integer[Any]],
    classes: Sequence[str],
    scores: npt.ArrayLike | None = None,
) -> ClassificationMetrics:
    """``classification_metrics`` on labels already encoded as codes (``encode_labels``):
    code ``i`` is ``classes[i]``.

    Examples
    --------
    >>> import numpy as np
    >>> metrics = classification_metrics_of_codes(
    ...     true_codes=np.array([1, 1, 0]), pred_codes=np.array([1, 0, 0]), classes=["a", "b"]
    ... )
    >>> metrics.confusion_matrix, metrics.accuracy.successes
    (((1, 0), (1, 1)), 2)
    """
    classes = check_classes(classes)
    truth: npt.NDArray[np.intp] = np.asarray(true_codes, dtype=np.intp)
    predicted_codes: npt.NDArray[np.intp] = np.asarray(pred_codes, dtype=np.intp)
    n, n_classes = truth.size, len(classes)
    for codes in (truth, predicted_codes):
        if codes.size and (codes.min() < 0 or codes.max() >= n_classes):
            raise ValueError(f"class codes must be in [0, {n_classes})")
    if n == 0:
        raise ValueError("no labelled predictions")
    if predicted_codes.size != n:
        raise ValueError(f"y_true has {n} labels but y_pred has {predicted_codes.size}")
    checked = None if scores is None else check_scores(scores, n=n, n_classes=n_classes)
    confusion = np.bincount(truth * n_classes + predicted_codes, minlength=n_classes**2)
    confusion = confusion.reshape(n_classes, n_classes)
    true_positives = np.diagonal(confusion).tolist()
    predicted = confusion.sum(axis=0).tolist()
    actual = confusion.sum(axis=1).tolist()

    precision = {
        label: proportion(successes=tp, n=count) if count else None
        for label, tp, count in zip(classes, true_positives, predicted, strict=True)
    }
    recall = {
        label: proportion(successes=tp, n=count) if count else None
        for label, tp, count in zip(classes, true_positives, actual, strict=True)
    }
    f1 = {
        label: 2 * tp / (p + a) if p + a else None
        for label, tp, p, a in zip(classes, true_positives, predicted, actual, strict=True)
    }

    roc_auc = average_precision = loss = None
    if checked is not None:
        roc_auc, average_precision = ranking_metrics(checked, truth)
        loss = log_loss(checked, truth)

    return ClassificationMetrics(
        n=n,
        classes=classes,
        accuracy=proportion(successes=sum(true_positives), n=n),
        precision=precision,
        recall=recall,
        f1=f1,
        macro_precision=_defined_mean([p.value for p in precision.values() if p is not None]),
        macro_recall=_defined_mean([r.value for r in recall.values() if r is not None]),
        macro_f1=_defined_mean([f for f in f1.values() if f is not None]),
        confusion_matrix=tuple(tuple(row) for row in confusion.tolist()),
        roc_auc=roc_auc,
        average_precision=average_precision,
        log_loss=loss,
    )


def _defined_mean(values: list[float]) -> float:
    # Never empty when n >= 1: see the module docstring.
    return sum(values) / len(values)
