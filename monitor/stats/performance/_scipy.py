"""Typed doors into the SciPy routines this subpackage uses (SciPy ships no type information).

The same pattern as :mod:`monitor.stats._scipy`: every call is wrapped with a typed signature and
a typed result, so the rest of the subpackage type-checks under ``mypy --strict``.
``scipy.optimize.isotonic_regression`` needs SciPy 1.12 or later.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.optimize as _optimize  # type: ignore[import-untyped]
import scipy.special as _special  # type: ignore[import-untyped]


def ndtri(probability: float) -> float:
    """Quantile function of the standard normal distribution (``scipy.stats.norm.ppf``)."""
    return float(_special.ndtri(probability))


def isotonic_regression(
    values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Weighted least-squares non-decreasing fit of ``values`` (pool adjacent violators)."""
    result = _optimize.isotonic_regression(values, weights=weights, increasing=True)
    return np.asarray(result.x, dtype=np.float64)
