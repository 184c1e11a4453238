"""Accuracy estimated without labels: confidence-based performance estimation (CBPE).

Labels often arrive late or never. A classifier whose probabilities are calibrated still says how
often it should be right: if prediction ``i`` is for class ``c_i`` and the calibrated probability
of ``c_i`` is ``q_i``, the expected number of correct predictions in the window is ``sum q_i``.
So, for ``m`` predictions,

    estimated accuracy = mean_i q_i,     standard error = sqrt(sum_i q_i (1 - q_i)) / m

where ``q_i`` is the calibrated probability of the predicted class given the score the model
gave it (isotonic maps fitted on the labelled reference, :mod:`.calibration`), and the standard
error is that of the realised accuracy around the estimate: each prediction is right with
probability ``q_i``, independently. This is NannyML's CBPE for accuracy, except that
multi-class calibrated probabilities are not renormalised to sum to one (see
:mod:`.calibration` for why).

The predicted class is the one the model sent (``y_pred``), if given; otherwise the argmax of
the raw scores row (ties to the class first in configuration order). Pass ``y_pred`` whenever the
model does not predict the argmax (a tuned decision threshold, a cost matrix).

When the estimate can be trusted
--------------------------------
* Calibration: the maps were fitted on a labelled reference that represents the model's
  behaviour, with enough rows per class (hundreds at least); scores outside the reference's
  range are mapped to the end values of the maps.
* No concept shift: the relation between scores and true classes, ``P(y | scores)``, is the
  same in the window as in the reference. Covariate shift (the inputs, hence the scores, move)
  is exactly what the estimate follows; a change in what the right answer is for given inputs
  (new fraud patterns, a relabelled class) is invisible without labels, and the estimate then
  stays optimistic while the realised accuracy falls. Compare it with the realised accuracy
  whenever labels arrive.
* Multi-class: each class's map conditions on that class's score alone (one-vs-rest), an
  approximation to calibrating the whole scores vector. In the simulations described in
  :mod:`.calibration` the estimate was unbiased for calibrated models and off by 0.2 to 1.3
  percentage points for strongly mis-calibrated 3- and 5-class ones; binary models have no such
  approximation.
* The standard error covers only the sampling noise of a window; it assumes the calibration is
  exact and says nothing about concept shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.stats.performance.calibration import Calibration, calibrated_probability_of
from monitor.stats.performance.labels import Labels, encode_labels
from monitor.stats.performance.scoring import check_scores


@dataclass(frozen=True, slots=True)
class AccuracyEstimate:
    """Expected accuracy of a window's predictions from their calibrated scores alone.

    Attributes
    ----------
    value : float
        Mean calibrated probability that the predicted class is right, in ``[0, 1]``.
    standard_error : float
        Standard deviation of the realised accuracy around ``value`` if the calibration is
        right: ``sqrt(sum q_i (1 - q_i)) / n``.
    n : int
        Predictions in the window.
    """

    value: float
    standard_error: float
    n: int


def estimate_accuracy(
    calibration: Calibration, scores: npt.ArrayLike, *, y_pred: Labels | None = None
) -> AccuracyEstimate:
    """Estimate the accuracy of a window from its scores (CBPE).

    Parameters
    ----------
    calibration : Calibration
        Fitted on the labelled reference by :func:`.calibration.fit_calibration`.
    scores : array_like of float
        The window's scores, shape ``(m, len(calibration.classes))`` with ``m >= 1``, columns in
        class order, in ``[0, 1]``.
    y_pred : sequence of str, optional
        The predicted classes as the model sent them; by default the argmax of each scores row.

    Returns
    -------
    AccuracyEstimate
        Estimated accuracy and its standard error (module docstring).

    Raises
    ------
    ValueError
        If there are no predictions, the shapes disagree, a score is outside ``[0, 1]`` or a
        predicted class is not one of the classes.

    Examples
    --------
    A reference on which a score of 0.9 for "yes" is right 3 times in 4, and 0.2 right
    (i.e. "no") 3 times in 4:

    >>> from monitor.stats.performance.calibration import fit_calibration
    >>> reference = np.array([[0.1, 0.9]] * 4 + [[0.8, 0.2]] * 4)
    >>> calibration = fit_calibration(
    ...     reference, ["yes", "yes", "yes", "no", "no", "no", "no", "yes"], classes=["no", "yes"]
    ... )
    >>> estimate = estimate_accuracy(calibration, np.array([[0.1, 0.9], [0.8, 0.2]]))
    >>> estimate.value, round(estimate.standard_error, 6)
    (0.75, 0.306186)

    With the predictions given, a prediction of "no" at a "yes" score of 0.9 is right 1 in 4:

    >>> estimate_accuracy(calibration, np.array([[0.1, 0.9]]), y_pred=["no"]).value
    0.25
    """
    checked = check_scores(scores, n=None, n_classes=len(calibration.classes))
    m = checked.shape[0]
    if m == 0:
        raise ValueError("no predictions to estimate the accuracy of")
    if y_pred is None:
        pred_codes = np.argmax(checked, axis=1)
    else:
        pred_codes = encode_labels(y_pred, classes=calibration.classes)
        if pred_codes.size != m:
            raise ValueError(f"scores has {m} rows but y_pred has {pred_codes.size} labels")
    right = calibrated_probability_of(calibration, checked, pred_codes)
    return AccuracyEstimate(
        value=float(np.mean(right)),
        standard_error=math.sqrt(float(np.dot(right, 1.0 - right))) / m,
        n=int(m),
    )
