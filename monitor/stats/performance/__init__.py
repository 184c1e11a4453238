"""Model performance over a window's labelled predictions, and accuracy estimated without labels.

Arrays and labels in, frozen dataclasses out; no I/O, clock, logging or config. Whether a
window has enough labelled predictions (``min_samples``) is the caller's decision: every
function here computes on whatever it is given, from one prediction up. The modules, one idea
each::

    classification.py  classification_metrics: accuracy, per-class and macro precision, recall,
                       F1, confusion matrix; with scores ROC AUC, average precision, log loss
    scoring.py         ROC AUC (Mann-Whitney), average precision, log loss from the scores
    regression.py      regression_metrics: MAE, RMSE, MAPE over non-zero targets, R2
    interval.py        Proportion and its Wilson score interval
    labels.py          class labels to integer codes, in configuration order
    calibration.py     fit_calibration: per-class isotonic maps fitted on the labelled reference
    estimation.py      estimate_accuracy: confidence-based performance estimation (CBPE)
    _scipy.py          typed wrappers of the SciPy functions used

Every metric equals scikit-learn's on the same data (to rounding) where scikit-learn defines
it; where it does not, or where its default would mislead a monitor, the value is ``None`` and
the module docstring says which scikit-learn setting it corresponds to.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> classes = ["no", "yes"]
>>> def predictions(size):
...     positive = rng.random(size)                     # P(yes), calibrated by construction
...     y_true = np.where(rng.random(size) < positive, "yes", "no")
...     return np.column_stack((1 - positive, positive)), y_true
>>> reference_scores, reference_labels = predictions(20_000)
>>> calibration = fit_calibration(reference_scores, reference_labels, classes=classes)
>>> scores, y_true = predictions(5_000)
>>> y_pred = np.where(scores[:, 1] > 0.5, "yes", "no")
>>> metrics = classification_metrics(y_true=y_true, y_pred=y_pred, classes=classes, scores=scores)
>>> estimate = estimate_accuracy(calibration, scores, y_pred=y_pred)
>>> abs(estimate.value - metrics.accuracy.value) < 4 * estimate.standard_error
True
>>> metrics.accuracy.lower < 0.75 < metrics.accuracy.upper
True
"""

from __future__ import annotations

from monitor.stats.performance.calibration import (
    Calibration,
    IsotonicMap,
    calibrated_probabilities,
    calibrated_probability_of,
    fit_calibration,
)
from monitor.stats.performance.classification import (
    ClassificationMetrics,
    classification_metrics,
    classification_metrics_of_codes,
)
from monitor.stats.performance.estimation import AccuracyEstimate, estimate_accuracy
from monitor.stats.performance.interval import CONFIDENCE, Proportion, proportion, wilson_interval
from monitor.stats.performance.labels import encode_labels
from monitor.stats.performance.regression import RegressionMetrics, regression_metrics
from monitor.stats.performance.scoring import LOG_LOSS_EPSILON

__all__ = [
    "CONFIDENCE",
    "LOG_LOSS_EPSILON",
    "AccuracyEstimate",
    "Calibration",
    "ClassificationMetrics",
    "IsotonicMap",
    "Proportion",
    "RegressionMetrics",
    "calibrated_probabilities",
    "calibrated_probability_of",
    "classification_metrics",
    "classification_metrics_of_codes",
    "encode_labels",
    "estimate_accuracy",
    "fit_calibration",
    "proportion",
    "regression_metrics",
    "wilson_interval",
]
