"""Regression metrics equal scikit-learn's to 1e-9; MAPE skips zero targets, R2 None if constant."""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    r2_score,
)

from monitor.stats.performance import RegressionMetrics, regression_metrics

Floats = npt.NDArray[np.float64]


def assert_matches_sklearn(y_true: Floats, y_pred: Floats) -> RegressionMetrics:
    metrics = regression_metrics(y_true=y_true, y_pred=y_pred)
    assert metrics.n == y_true.size
    assert metrics.mae == pytest.approx(mean_absolute_error(y_true, y_pred), rel=1e-9, abs=1e-9)
    rmse = math.sqrt(mean_squared_error(y_true, y_pred))
    assert metrics.rmse == pytest.approx(rmse, rel=1e-9, abs=1e-9)
    nonzero = y_true != 0.0
    assert metrics.mape_n == int(nonzero.sum())
    if metrics.mape_n:
        kept_true, kept_pred = y_true[nonzero], y_pred[nonzero]
        if np.all(np.abs(kept_true) >= np.finfo(np.float64).eps):
            expected = mean_absolute_percentage_error(kept_true, kept_pred)
        else:  # scikit-learn divides by at least eps; we divide by |y_true| as it is
            expected = np.mean(np.abs(kept_pred - kept_true) / np.abs(kept_true))
        assert metrics.mape == pytest.approx(expected, rel=1e-9, abs=1e-9)
    else:
        assert metrics.mape is None
    if np.ptp(y_true) > 0:
        assert metrics.r2 == pytest.approx(r2_score(y_true, y_pred), rel=1e-9, abs=1e-9)
    else:
        assert metrics.r2 is None
    return metrics


@pytest.mark.parametrize("seed", range(10))
def test_random_data_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5000))
    scale = 10.0 ** rng.integers(-3, 7)
    y_true = rng.normal(size=n) * scale + scale
    y_pred = y_true + rng.normal(size=n) * scale * rng.random()
    assert_matches_sklearn(y_true, y_pred)


def test_root_mean_squared_error_matches_sklearn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    if not hasattr(sklearn_metrics, "root_mean_squared_error"):
        pytest.skip("scikit-learn < 1.4 has no root_mean_squared_error")
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.normal(size=1000), rng.normal(size=1000)
    expected = sklearn_metrics.root_mean_squared_error(y_true, y_pred)
    assert regression_metrics(y_true=y_true, y_pred=y_pred).rmse == pytest.approx(expected, 1e-12)


def test_large_window_matches_sklearn() -> None:
    rng = np.random.default_rng(2)
    y_true = np.round(rng.lognormal(size=500_000), 1)  # about 2% zero targets
    y_pred = y_true * rng.normal(1.0, 0.1, size=y_true.size)
    metrics = assert_matches_sklearn(y_true, y_pred)
    assert 0 < metrics.mape_n < metrics.n


def test_zero_targets_are_skipped_by_mape() -> None:
    y_true = np.array([0.0, 2.0, 0.0, -4.0])
    y_pred = np.array([1.0, 3.0, -1.0, -3.0])
    metrics = assert_matches_sklearn(y_true, y_pred)
    assert metrics.mape_n == 2
    assert metrics.mape == pytest.approx((1 / 2 + 1 / 4) / 2)
    # scikit-learn divides by max(|y|, eps) instead: the zero targets swamp the mean.
    assert mean_absolute_percentage_error(y_true, y_pred) > 1e15


def test_all_zero_targets_have_no_mape() -> None:
    metrics = assert_matches_sklearn(np.zeros(5), np.arange(5.0))
    assert metrics.mape is None and metrics.mape_n == 0
    assert metrics.mae == 2.0 and metrics.rmse == math.sqrt(6.0)


def test_constant_targets_have_no_r2() -> None:
    # A mean computed in floating point need not equal the constant (0.1 * 3 / 3 != 0.1 is
    # possible), which would make the denominator tiny instead of zero; constancy is exact.
    for constant in (0.1, 3.0, -7.3, 1e-300):
        y_true = np.full(7, constant)
        y_pred = y_true + np.linspace(-1.0, 1.0, 7)
        metrics = assert_matches_sklearn(y_true, y_pred)
        assert metrics.r2 is None
    perfect = regression_metrics(y_true=np.full(3, 2.0), y_pred=np.full(3, 2.0))
    assert perfect.r2 is None and perfect.mae == 0.0 and perfect.rmse == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # scikit-learn's force_finite convention says 1.0 here, though nothing was explained.
        assert r2_score(np.full(3, 2.0), np.full(3, 2.0)) == 1.0


def test_single_prediction() -> None:
    metrics = assert_matches_sklearn(np.array([4.0]), np.array([5.0]))
    assert (metrics.n, metrics.mae, metrics.rmse, metrics.mape, metrics.r2) == (
        1,
        1.0,
        1.0,
        0.25,
        None,
    )


def test_perfect_and_mean_predictions() -> None:
    y_true = np.array([1.0, 2.0, 4.0, 9.0])
    assert assert_matches_sklearn(y_true, y_true).r2 == 1.0
    assert assert_matches_sklearn(y_true, np.full(4, y_true.mean())).r2 == pytest.approx(0.0)


def test_lists_are_accepted() -> None:
    assert regression_metrics(y_true=[1.0, 2.0], y_pred=[1.0, 3.0]) == regression_metrics(
        y_true=np.array([1.0, 2.0]), y_pred=np.array([1.0, 3.0])
    )


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([], [], "non-empty 1-D"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "non-empty 1-D"),
        ([1.0, 2.0], [1.0], "y_pred has 1"),
        ([1.0, np.nan], [1.0, 2.0], "y_true must be finite"),
        ([1.0, 2.0], [1.0, np.inf], "y_pred must be finite"),
    ],
)
def test_invalid_input_is_refused(y_true: list[float], y_pred: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        regression_metrics(y_true=y_true, y_pred=y_pred)
