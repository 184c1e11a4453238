"""The no-drift law of a window's performance metrics, by resampling the reference.

When the current data come from the reference's distribution, a window's labelled predictions
are ``n`` pairs drawn from it. Resampling the reference's own labelled predictions (with
replacement) into windows of ``n`` and scoring each with the very functions that score a
window (``classification_metrics_of_codes``, ``regression_metrics``, ``estimate_accuracy``)
gives each metric's law at that size, undefined values (a class absent from a draw, constant
targets) left out as they are from a window's alert.

The draws are few (thousands) and the chances asked of them small (1e-4 and below), so
``null_levels.skewed_normal_level`` reads the level from the draws' mean, standard deviation
and skewness rather than from their order statistics.

Examples
--------
>>> import numpy as np
>>> sample = LabelledSample(
...     classes=("no", "yes"),
...     predicted=np.array([0, 1, 1, 0] * 50),
...     actual=np.array([0, 1, 0, 0] * 50),
...     scores=None,
... )
>>> draws = resampled_metrics(sample, n=40, draws=200, integers=np.random.default_rng(0).integers)
>>> sorted(draws), round(float(np.nanmean(draws["accuracy"])), 1)
(['accuracy', 'f1', 'precision', 'recall'], 0.7)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.stats.performance.calibration import Calibration
from monitor.stats.performance.classification import classification_metrics_of_codes
from monitor.stats.performance.estimation import estimate_accuracy
from monitor.stats.performance.regression import regression_metrics

#: the metrics each kind of model resamples (``estimated_accuracy`` also needs a calibration)
CLASSIFICATION = ("accuracy", "precision", "recall", "f1")
SCORED = ("roc_auc", "average_precision", "log_loss")
REGRESSION = ("mae", "rmse", "mape", "r2")


@dataclass(frozen=True, slots=True, eq=False)
class LabelledSample:
    """A reference's labelled predictions: class codes into ``classes`` (a classifier's) or
    values (a regression's, ``classes`` empty), and the scores when every pair has them."""

    classes: tuple[str, ...]
    predicted: npt.NDArray[Any]
    actual: npt.NDArray[Any]
    scores: npt.NDArray[np.float64] | None = None
    #: the labelled predictions of the reference this sample was taken from (0: its own length)
    total: int = 0

    def __post_init__(self) -> None:
        if self.predicted.shape != self.actual.shape or self.predicted.ndim != 1:
            raise ValueError("predicted and actual must be 1-D, of one length")
        if self.scores is not None and self.scores.shape != (len(self.actual), len(self.classes)):
            raise ValueError("scores must have one row per pair and one column per class")

    def __len__(self) -> int:
        return len(self.actual)

    @property
    def reference_n(self) -> int:
        """The labelled predictions of the reference: what its own noise is counted over."""
        return self.total or len(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelledSample):
            return NotImplemented
        return (
            self.classes == other.classes
            and self.reference_n == other.reference_n
            and np.array_equal(self.predicted, other.predicted)
            and np.array_equal(self.actual, other.actual)
            and (self.scores is None) == (other.scores is None)
            and (
                self.scores is None
                or other.scores is None
                or np.array_equal(self.scores, other.scores)
            )
        )

    def subsample(
        self, limit: int, permutation: Callable[[int], npt.NDArray[Any]]
    ) -> LabelledSample:
        """At most ``limit`` of the pairs, taken by ``permutation(len)`` (a seeded generator's
        ``permutation``) when there are more."""
        if len(self) <= limit:
            return self
        keep = np.sort(permutation(len(self))[:limit])
        scores = None if self.scores is None else self.scores[keep]
        return LabelledSample(
            self.classes, self.predicted[keep], self.actual[keep], scores, len(self)
        )


def resampled_metrics(
    sample: LabelledSample,
    *,
    n: int,
    draws: int,
    integers: Callable[..., npt.NDArray[np.int64]],
    calibration: Calibration | None = None,
) -> dict[str, npt.NDArray[np.float64]]:
    """Each metric over ``draws`` windows of ``n`` pairs resampled from ``sample`` (rows drawn
    by ``integers(0, len, size=n)`` for each, a seeded generator's ``integers``); NaN where a
    draw leaves the metric undefined. ``estimated_accuracy`` too when a ``calibration`` and
    scores are given."""
    if n < 1 or draws < 1 or len(sample) == 0:
        raise ValueError("n, draws and the sample must be non-empty")
    if not sample.classes:
        names: tuple[str, ...] = REGRESSION
    else:
        names = CLASSIFICATION + (SCORED if sample.scores is not None else ())
        if calibration is not None and sample.scores is not None:
            names += ("estimated_accuracy",)
    found = {name: np.full(draws, np.nan) for name in names}
    for i in range(draws):
        row = integers(0, len(sample), size=n)
        for name, value in _metrics(sample, row, calibration).items():
            found[name][i] = np.nan if value is None else value
    return found


def _metrics(
    sample: LabelledSample, row: npt.NDArray[np.int64], calibration: Calibration | None
) -> dict[str, float | None]:
    if not sample.classes:
        regression = regression_metrics(y_true=sample.actual[row], y_pred=sample.predicted[row])
        return {
            "mae": regression.mae,
            "rmse": regression.rmse,
            "mape": regression.mape,
            "r2": regression.r2,
        }
    scores = None if sample.scores is None else sample.scores[row]
    result = classification_metrics_of_codes(
        true_codes=sample.actual[row],
        pred_codes=sample.predicted[row],
        classes=list(sample.classes),
        scores=scores,
    )
    found: dict[str, float | None] = {
        "accuracy": result.accuracy.value,
        "precision": result.macro_precision,
        "recall": result.macro_recall,
        "f1": result.macro_f1,
    }
    if scores is not None:
        found.update(
            roc_auc=result.roc_auc,
            average_precision=result.average_precision,
            log_loss=result.log_loss,
        )
        if calibration is not None:
            predicted = [sample.classes[code] for code in sample.predicted[row]]
            found["estimated_accuracy"] = estimate_accuracy(
                calibration, scores, y_pred=predicted
            ).value
    return found
