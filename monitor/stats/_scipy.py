"""Typed doors into SciPy: the one module that touches its untyped (and one private) API.

SciPy ships no type information, so every call is wrapped here with a typed signature and a
``float`` result. ``attempt_exact_2kssamp`` wraps ``scipy.stats._stats_py._attempt_exact_2kssamp``,
the routine ``scipy.stats.ks_2samp`` itself calls for its exact p-value; calling it (rather than
re-deriving it) is what makes our exact-path p-values equal SciPy's bit for bit. The test suite
checks against the public ``ks_2samp``, so a SciPy release that changes the routine fails loudly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.special as _special  # type: ignore[import-untyped]
import scipy.stats as _stats  # type: ignore[import-untyped]
from scipy.stats import _stats_py


def kstwo_sf(statistic: float, n: float) -> float:
    """Survival function of the one-sample two-sided Kolmogorov-Smirnov statistic ``D_n``."""
    return float(_stats.kstwo.sf(statistic, n))


def kolmogorov(x: float) -> float:
    """Kolmogorov's limiting survival function ``P(sqrt(n) D_n >= x)`` as ``n -> inf``."""
    return float(_special.kolmogorov(x))


def attempt_exact_2kssamp(
    n_reference: int, n_current: int, gcd: int, statistic: float
) -> tuple[bool, float, float]:
    """SciPy's exact two-sided two-sample KS p-value: ``(success, rounded statistic, p)``."""
    success, statistic, p_value = _stats_py._attempt_exact_2kssamp(
        n_reference, n_current, gcd, statistic, "two-sided"
    )
    return bool(success), float(statistic), float(p_value)


def chi2_sf(statistic: float, dof: int) -> float:
    """Survival function of the chi-square distribution with ``dof`` degrees of freedom, for a
    statistic of at least 0: ``scipy.special.chdtrc``, the function ``scipy.stats.chi2.sf``
    calls after checking its arguments (equal bit for bit; a microsecond instead of about 100,
    which a window of 30 segment groups of 20 categorical columns pays 600 times)."""
    return float(_special.chdtrc(dof, statistic))


def rel_entr(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Elementwise ``x * log(x / y)`` with ``0 * log(0 / y) = 0``."""
    return np.asarray(_special.rel_entr(x, y), dtype=np.float64)


def xlogy(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Elementwise ``x * log(y)`` with ``0 * log(y) = 0``."""
    return np.asarray(_special.xlogy(x, y), dtype=np.float64)


def gammaln(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Elementwise ``log |Gamma(x)|``."""
    return np.asarray(_special.gammaln(x), dtype=np.float64)


def chi2_isf(alpha: float, dof: int) -> float:
    """The chi-square quantile exceeded with probability ``alpha`` (``dof`` degrees)."""
    return float(_stats.chi2.isf(alpha, dof))


def kolmogorov_isf(alpha: float) -> float:
    """The value ``x`` with ``P(sqrt(n) D_n >= x) = alpha`` in Kolmogorov's limit."""
    return float(_special.kolmogi(alpha))


def norm_isf(alpha: float) -> float:
    """The standard normal quantile exceeded with probability ``alpha``."""
    return float(_stats.norm.isf(alpha))


def gamma_isf(alpha: float, shape: float, scale: float) -> float:
    """The gamma quantile exceeded with probability ``alpha``."""
    return float(_stats.gamma.isf(alpha, shape, scale=scale))


def gamma_sf(x: float, shape: float, scale: float) -> float:
    """The gamma survival function at ``x``."""
    return float(_stats.gamma.sf(x, shape, scale=scale))


def norm_cdf(x: float) -> float:
    """The standard normal distribution function at ``x``."""
    return float(_stats.norm.cdf(x))


def binom_ppf(alpha: float, trials: int, p: float) -> int:
    """The smallest count ``k`` with ``P(X <= k) >= alpha``, ``X ~ Binomial(trials, p)``."""
    return int(_stats.binom.ppf(alpha, trials, p))


def binom_cdf(k: int, trials: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(trials, p)``."""
    return float(_stats.binom.cdf(k, trials, p))


def binom_isf(alpha: float, trials: int, p: float) -> int:
    """The smallest count ``k`` with ``P(X > k) <= alpha``, ``X ~ Binomial(trials, p)``."""
    return int(_stats.binom.isf(alpha, trials, p))


def binom_sf(k: int, trials: int, p: float) -> float:
    """``P(X > k)`` for ``X ~ Binomial(trials, p)``."""
    return float(_stats.binom.sf(k, trials, p))
