"""Regression performance over the labelled predictions of one window.

With errors ``e_i = y_pred_i - y_true_i`` over ``n`` labelled predictions:

* ``MAE = mean |e_i|`` and ``RMSE = sqrt(mean e_i^2)``, in the target's units; equal to
  scikit-learn's ``mean_absolute_error`` and ``root_mean_squared_error``.
* ``MAPE = mean |e_i| / |y_true_i|`` over the ``mape_n`` predictions whose target is *not zero*,
  as a fraction (``0.05`` is 5%); ``None`` when every target is zero. Zero targets are skipped
  because their percentage error is infinite; scikit-learn's
  ``mean_absolute_percentage_error`` instead divides by ``max(|y_true|, eps)`` with
  ``eps = 2.2e-16``, which turns each zero target into an error of order ``1e16`` and swamps
  the mean. On the non-zero subset the two agree (for ``|y_true| >= eps``). Report ``mape_n``
  beside ``mape``: a MAPE over few non-zero targets is thin.
* ``R2 = 1 - sum e_i^2 / sum (y_true_i - mean(y_true))^2``, equal to scikit-learn's
  ``r2_score``; ``None`` when the targets are constant (always so for ``n = 1``), where the
  denominator is zero. scikit-learn reports ``1.0`` there for perfect predictions and ``0.0``
  otherwise (``force_finite=True``), or NaN / ``-inf`` (``force_finite=False``); neither says
  anything about the model. Constancy is tested exactly (``min == max``), so that rounding in
  the mean of a constant sample cannot produce a huge negative R2.

Sums of squares are taken on values scaled by a power of two (exact), so they neither underflow
nor overflow; a MAPE or R2 whose true value is beyond the float range is ``inf`` or ``-inf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class RegressionMetrics:
    """Regression performance over ``n`` labelled predictions.

    Attributes
    ----------
    n : int
        Labelled predictions.
    mae : float
        Mean absolute error, in target units.
    rmse : float
        Root mean squared error, in target units.
    mape : float or None
        Mean absolute percentage error over the non-zero targets, as a fraction; ``None`` when
        every target is zero.
    mape_n : int
        Predictions with a non-zero target: those ``mape`` averages over.
    r2 : float or None
        Coefficient of determination; ``None`` when the targets are constant.
    """

    n: int
    mae: float
    rmse: float
    mape: float | None
    mape_n: int
    r2: float | None


def regression_metrics(*, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> RegressionMetrics:
    """MAE, RMSE, MAPE (non-zero targets only) and R2 of one window's labelled predictions.

    Parameters
    ----------
    y_true : array_like of float
        Observed targets, 1-D, finite.
    y_pred : array_like of float
        Predictions, same shape, finite.

    Returns
    -------
    RegressionMetrics
        The metrics, defined in the module docstring.

    Raises
    ------
    ValueError
        If the arrays are empty, not 1-D, of different lengths, or hold NaN or infinity.

    Examples
    --------
    Errors ``1, -2, 0, 1`` on targets ``2, 4, 0, 6``: MAE ``4/4``, RMSE ``sqrt(6/4)``, MAPE over
    the three non-zero targets ``(1/2 + 2/4 + 1/6) / 3``, and R2 ``1 - 6/20``.

    >>> metrics = regression_metrics(
    ...     y_true=np.array([2.0, 4.0, 0.0, 6.0]), y_pred=np.array([3.0, 2.0, 0.0, 7.0])
    ... )
    >>> metrics.mae, round(metrics.rmse, 12), round(metrics.mape, 12), metrics.mape_n
    (1.0, 1.224744871392, 0.388888888889, 3)
    >>> round(metrics.r2, 12)
    0.7
    >>> regression_metrics(y_true=np.array([5.0, 5.0]), y_pred=np.array([5.0, 6.0])).r2 is None
    True
    """
    observed = _finite_vector(y_true, "y_true")
    predicted = _finite_vector(y_pred, "y_pred")
    if predicted.size != observed.size:
        raise ValueError(f"y_true has {observed.size} values but y_pred has {predicted.size}")
    errors = predicted - observed
    absolute_errors = np.abs(errors)
    nonzero = observed != 0.0
    mape_n = int(np.count_nonzero(nonzero))
    mape = None
    if mape_n:
        with np.errstate(over="ignore"):  # a ratio beyond 1.8e308 is honestly infinite
            mape = float(np.mean(absolute_errors[nonzero] / np.abs(observed[nonzero])))
    error_norm = _norm(errors)
    r2 = None
    if observed.min() != observed.max():
        # Not constant, so the mean differs from the minimum or the maximum: the norm is > 0.
        ratio = error_norm / _norm(observed - observed.mean())
        r2 = 1.0 - ratio * ratio  # -inf, not OverflowError, past 1.3e154
    return RegressionMetrics(
        n=int(observed.size),
        mae=float(np.mean(absolute_errors)),
        rmse=error_norm / math.sqrt(observed.size),
        mape=mape,
        mape_n=mape_n,
        r2=r2,
    )


def _norm(values: npt.NDArray[np.float64]) -> float:
    """``sqrt(sum(values**2))`` without the squares under- or overflowing.

    The values are scaled by a power of two near their largest magnitude first, which is exact,
    so ordinary data give the same digits as the unscaled formula.
    """
    largest = float(np.max(np.abs(values)))
    if largest == 0.0:
        return 0.0
    scale = math.ldexp(1.0, math.frexp(largest)[1])
    scaled = values / scale
    return scale * math.sqrt(float(np.dot(scaled, scaled)))


def _finite_vector(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (no NaN or infinity)")
    return array
