"""Levels under no drift: the value a statistic passes with probability ``alpha`` when the
current window (``n`` values) and the reference (``m`` values) come from one distribution.

These are the large-sample null distributions of the two-sample statistics, in terms of the
effective size ``n_eff = n m / (n + m)`` (both samples carry noise; ``m = inf``: a known
reference)::

    PSI                    n_eff * PSI                 ~ chi2(k - 1)
    Jensen-Shannon (bits)  8 ln2 * n_eff * JS_distance^2 ~ chi2(k - 1)
    KS statistic           sqrt(n_eff) * D             ~ Kolmogorov (scipy's kstwobign)
    KS, chi-square p       p                           ~ Uniform(0, 1): the level is alpha
    Wasserstein-1          sqrt(n_eff) * W             ~ integral of |B(F(x))| dx
    a proportion (accuracy)  round(n_eff) p_hat  ~ Binomial(round(n_eff), p)

with ``k`` the number of bins (or categories) and ``B`` a Brownian bridge. PSI and
Jensen-Shannon are, to second order, the chi-square divergence (PSI exactly so; JS divided by
8). The Wasserstein law depends on the reference's shape: it is simulated on the reference's
quantile grid and its upper tail taken from a gamma distribution with the simulated mean and
variance (``alpha`` is small, often below what a few thousand draws resolve).

Examples
--------
>>> round(psi_level(0.01, bins=10, n=1_000, m=10_000), 4)
0.0238
>>> round(ks_statistic_level(0.01, n=1_000, m=None), 4)
0.0515
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

import monitor.stats._scipy as _scipy


def effective_n(n: int, m: int | None) -> float:
    """``n m / (n + m)``; ``n`` when the reference is taken as known (``m`` None).

    >>> effective_n(100, 100), effective_n(100, None)
    (50.0, 100.0)
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    return float(n) if m is None else n * m / (n + m)


def _check(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def scaled_quantile(
    statistic: str,
    alpha: float,
    *,
    bins: int = 2,
    wasserstein: tuple[float, float] | None = None,
) -> float | None:
    """The no-drift quantile at ``alpha`` of the statistic's scaled form, which does not
    depend on the sizes: ``n_eff PSI``, ``8 ln2 n_eff JS^2`` and a chi-square test's
    ``n_eff X^2`` (chi-square), ``sqrt(n_eff) D`` (Kolmogorov), ``sqrt(n_eff) W`` (the gamma
    of the Wasserstein scale). None for another statistic."""
    _check(alpha)
    if statistic in ("psi", "jensen_shannon", "chi2_pvalue"):
        return _scipy.chi2_isf(alpha, max(bins - 1, 1))
    if statistic in ("ks_statistic", "ks_pvalue"):
        return _scipy.kolmogorov_isf(alpha)
    if statistic.startswith("wasserstein") and wasserstein is not None:
        mean, variance = wasserstein
        if mean <= 0.0 or variance <= 0.0:
            return 0.0
        return _scipy.gamma_isf(alpha, mean * mean / variance, variance / mean)
    return None


def psi_level(alpha: float, *, bins: int, n: int, m: int | None) -> float:
    """The PSI exceeded with probability ``alpha`` under no drift, over ``bins`` bins."""
    _check(alpha)
    return _scipy.chi2_isf(alpha, max(bins - 1, 1)) / effective_n(n, m)


def jensen_shannon_level(alpha: float, *, bins: int, n: int, m: int | None) -> float:
    """The base-2 Jensen-Shannon distance exceeded with probability ``alpha`` under no drift."""
    _check(alpha)
    quantile = _scipy.chi2_isf(alpha, max(bins - 1, 1))
    return math.sqrt(quantile / (8.0 * math.log(2.0) * effective_n(n, m)))


def ks_statistic_level(alpha: float, *, n: int, m: int | None) -> float:
    """The two-sample KS statistic exceeded with probability ``alpha`` under no drift."""
    _check(alpha)
    return min(1.0, _scipy.kolmogorov_isf(alpha) / math.sqrt(effective_n(n, m)))


def pvalue_level(alpha: float) -> float:
    """A p-value's level: under no drift it is uniform, so below ``alpha`` with that chance."""
    _check(alpha)
    return alpha


def proportion_level(alpha: float, *, p: float, n: int, m: int | None) -> float:
    """The proportion (accuracy, say) that a window of ``n`` labelled predictions falls to or
    below with probability at most ``alpha`` when its true value is the reference's ``p``
    (estimated from ``m``): ``k / N`` for the binomial law of ``N = round(n_eff)`` trials, ``k``
    the largest count with ``P(X <= k) <= alpha`` (the binomial's lower tail is longer than the
    normal approximation's: at 0.92, 3 times as many breaches); -1 when no count is that
    unlikely (nothing breaches).

    >>> proportion_level(0.05, p=0.5, n=100, m=None)
    0.41
    """
    _check(alpha)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    trials = max(1, round(effective_n(n, m)))
    k = _scipy.binom_ppf(alpha, trials, p)  # the smallest k with P(X <= k) >= alpha
    while k >= 0 and _scipy.binom_cdf(k, trials, p) > alpha:
        k -= 1
    return -1.0 if k < 0 else k / trials


def wasserstein_scale(
    grid: npt.NDArray[np.float64],
    probabilities: npt.NDArray[np.float64],
    *,
    normals: Callable[[tuple[int, int]], npt.NDArray[np.float64]],
    draws: int = 4_000,
) -> tuple[float, float]:
    """Mean and variance of ``sqrt(n_eff) W`` under no drift for a reference whose quantiles
    at ``probabilities`` (increasing in [0, 1]; include 0 and 1 with the reference's minimum
    and maximum so that its tails count) are ``grid``: draws of the trapezoid sum of
    ``|B(u)|`` over the grid, ``B`` a Brownian bridge (0 at 0 and 1) built from standard
    normal draws of the given shape, ``normals(shape)`` (a seeded generator's
    ``standard_normal``: this package draws nothing itself)."""
    x = np.asarray(grid, dtype=np.float64)
    u = np.asarray(probabilities, dtype=np.float64)
    if x.ndim != 1 or x.shape != u.shape or len(x) < 2:
        raise ValueError("grid and probabilities must be 1-D, of one length, at least 2")
    inner = (u > 0.0) & (u < 1.0)
    points = u[inner]
    steps = np.diff(np.concatenate([[0.0], points]))
    totals = np.empty(draws, dtype=np.float64)
    for first in range(0, draws, 500):
        size = min(500, draws - first)
        bridge = np.zeros((size, len(u)), dtype=np.float64)
        if len(points):
            walk = np.cumsum(normals((size, len(points))) * np.sqrt(steps), axis=1)
            end = walk[:, -1:] + normals((size, 1)) * math.sqrt(1.0 - points[-1])
            bridge[:, inner] = np.abs(walk - points * end)  # |W(u) - u W(1)|
        totals[first : first + size] = (bridge[:, 1:] + bridge[:, :-1]) @ np.diff(x) / 2.0
    return float(totals.mean()), float(totals.var())


def wasserstein_level(
    alpha: float, *, mean: float, variance: float, n: int, m: int | None
) -> float:
    """The Wasserstein-1 distance exceeded with probability ``alpha`` under no drift, from the
    ``wasserstein_scale`` of the reference: the gamma distribution of that mean and variance,
    scaled by ``1 / sqrt(n_eff)``."""
    _check(alpha)
    if mean <= 0.0 or variance <= 0.0:
        return 0.0  # a constant reference: any difference is drift
    shape = mean * mean / variance
    return _scipy.gamma_isf(alpha, shape, variance / mean) / math.sqrt(effective_n(n, m))


def chance(
    statistic: str,
    level: float,
    *,
    n: int,
    m: int | None,
    bins: int = 2,
    wasserstein: tuple[float, float] | None = None,
    p: float | None = None,
) -> float | None:
    """The chance that ``statistic`` breaches ``level`` in a window of ``n`` under no drift:
    the inverse of the ``*_level`` functions (``wasserstein``: the scale's mean and variance;
    ``p``: the reference's accuracy, or its missing-value ratio). None for a statistic
    without a known law.

    >>> level = psi_level(0.01, bins=10, n=500, m=5_000)
    >>> round(chance("psi", level, n=500, m=5_000, bins=10), 12)
    0.01
    """
    n_eff = effective_n(n, m)
    dof = max(bins - 1, 1)
    if statistic == "psi":
        return _scipy.chi2_sf(level * n_eff, dof)
    if statistic == "jensen_shannon":
        return _scipy.chi2_sf(8.0 * math.log(2.0) * n_eff * level * level, dof)
    if statistic == "ks_statistic":
        return min(1.0, _scipy.kolmogorov(level * math.sqrt(n_eff)))
    if statistic in ("ks_pvalue", "chi2_pvalue"):
        return min(max(level, 0.0), 1.0)
    if statistic == "wasserstein" and wasserstein is not None:
        mean, variance = wasserstein
        if mean <= 0.0 or variance <= 0.0:
            return 0.0
        return _scipy.gamma_sf(level * math.sqrt(n_eff), mean * mean / variance, variance / mean)
    if statistic == "accuracy" and p is not None:
        trials = max(1, round(n_eff))
        return _scipy.binom_cdf(math.floor(level * trials + 1e-9), trials, p)
    if statistic == "missing_ratio" and p is not None:
        trials = max(1, round(n_eff))
        return _scipy.binom_sf(math.ceil(level * trials - 1e-9) - 1, trials, p)
    return None


#: Draws of the simulated no-drift law of PSI and Jensen-Shannon (``simulate_binned``): about
#: 15 beyond a chance of 7e-5 (a budget of 1 over 1,008 evaluations and 13 tests), read
#: 50,000 at a time.
SIMULATION_DRAWS = 200_000
#: A reference this many times the window's size is taken as exact (its own noise is small
#: beside the window's), which halves the draws.
EXACT_REFERENCE = 50
_CHUNK = 50_000


def simulate_binned(
    proportions: npt.NDArray[np.float64],
    *,
    n: int,
    m: int | None,
    binomial: Callable[[npt.NDArray[np.int64], npt.NDArray[np.float64]], npt.NDArray[np.int64]],
    draws: int = SIMULATION_DRAWS,
    statistic: str = "psi",
) -> npt.NDArray[np.float64]:
    """Draws of ``statistic`` (``psi``, or ``jensen_shannon``: the base-2 distance), sorted
    descending, between a window
    of ``n`` and a reference of ``m`` (None: the proportions themselves) both drawn from the
    bin ``proportions``: the statistics' exact law under no drift, floors and empty bins
    included, where the chi-square approximation is too light in the tail (a rare category
    left empty, floored at 1e-4, alone passes the chi-square level).

    Counts are drawn bin by bin as conditional binomials (``binomial(trials, p)``, a seeded
    generator's ``binomial``: this package draws nothing itself).
    """
    p = np.asarray(proportions, dtype=np.float64)
    p = p[p > 0] / p[p > 0].sum()
    rows = _psi_rows if statistic == "psi" else _js_rows
    found = np.empty(draws, dtype=np.float64)
    for first in range(0, draws, _CHUNK):
        size = min(_CHUNK, draws - first)
        current = _multinomial(n, p, size, binomial) / n
        if m is None or m >= EXACT_REFERENCE * n:
            reference = p[None, :]
        else:
            reference = _multinomial(m, p, size, binomial) / m
        found[first : first + size] = rows(reference, current)
    return -np.sort(-found)


def _multinomial(
    n: int,
    p: npt.NDArray[np.float64],
    size: int,
    binomial: Callable[[npt.NDArray[np.int64], npt.NDArray[np.float64]], npt.NDArray[np.int64]],
) -> npt.NDArray[np.float64]:
    counts = np.empty((size, len(p)), dtype=np.float64)
    left = np.full(size, n, dtype=np.int64)
    mass = 1.0
    for i, share in enumerate(p[:-1]):
        chance = np.full(size, min(1.0, share / mass) if mass > 0 else 0.0)
        drawn = binomial(left, chance)
        counts[:, i] = drawn
        left = left - drawn
        mass -= share
    counts[:, -1] = left
    return counts


def _psi_rows(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """PSI of each row, empty proportions floored at 1e-4 as ``stats.psi`` does."""
    r = np.where(reference == 0.0, 1e-4, reference)
    c = np.where(current == 0.0, 1e-4, current)
    r = np.broadcast_to(r, c.shape)
    return np.asarray(np.sum((c - r) * np.log(c / r), axis=1), dtype=np.float64)


def _js_rows(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Base-2 Jensen-Shannon distance of each row, unsmoothed as ``stats.jensen_shannon``."""
    r = np.broadcast_to(reference, current.shape)
    middle = (r + current) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(r > 0, r * np.log2(r / middle), 0.0)
        right = np.where(current > 0, current * np.log2(current / middle), 0.0)
    divergence = np.maximum((left.sum(axis=1) + right.sum(axis=1)) / 2.0, 0.0)
    return np.asarray(np.sqrt(divergence), dtype=np.float64)


def level_from_draws(
    descending: npt.NDArray[np.float64], alpha: float, *, draws: int | None = None
) -> float | None:
    """The smallest level that at most ``alpha`` of the draws reach: ``descending`` holds the
    largest of ``draws`` draws (all of them by default), sorted descending; None when the
    level lies below what it holds.

    >>> level_from_draws(np.array([5.0, 4.0, 3.0, 2.0]), 0.25) > 4.0
    True
    """
    _check(alpha)
    index = int(alpha * (len(descending) if draws is None else draws))
    if index >= len(descending):
        return None
    return float(np.nextafter(descending[index], np.inf))


def chance_from_draws(
    descending: npt.NDArray[np.float64], level: float, *, draws: int | None = None
) -> float | None:
    """The share of the draws at or above ``level`` (arguments as for ``level_from_draws``);
    None when the level lies below what ``descending`` holds."""
    reached = int(np.searchsorted(-descending, -level, side="right"))
    if reached >= len(descending) and draws is not None and draws > len(descending):
        return None
    return reached / (len(descending) if draws is None else draws)


def upper_proportion_level(alpha: float, *, p: float, n: int, m: int | None) -> float:
    """The proportion (a missing-value ratio, say) that a window of ``n`` reaches or exceeds
    with probability at most ``alpha`` when its true value is the reference's ``p``: ``k / N``
    for the binomial law of ``N = round(n_eff)`` trials, ``k`` the smallest count with
    ``P(X >= k) <= alpha``; 2 when no count is that unlikely (nothing breaches). With ``p``
    0 (a reference without one missing value) a single one breaches.

    >>> upper_proportion_level(0.05, p=0.5, n=100, m=None)
    0.59
    >>> upper_proportion_level(0.01, p=0.0, n=50, m=None)
    0.02
    """
    _check(alpha)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    trials = max(1, round(effective_n(n, m)))
    k = _scipy.binom_isf(alpha, trials, p) + 1  # P(X >= k) = P(X > k - 1) <= alpha
    while k >= 1 and _scipy.binom_sf(k - 2, trials, p) <= alpha:
        k -= 1
    return 2.0 if k > trials else k / trials


def moments(values: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """Mean, standard deviation and skewness of the finite ``values`` (NaN where undefined).

    >>> moments(np.array([1.0, 2.0, 3.0, np.nan]))
    (2.0, 0.816496580927726, 0.0)
    """
    finite = values[np.isfinite(values)]
    if finite.size < 3:
        return math.nan, math.nan, math.nan
    mean = float(finite.mean())
    centred = finite - mean
    sd = float(np.sqrt(np.mean(centred**2)))
    skew = float(np.mean(centred**3) / sd**3) if sd > 0 else 0.0
    return mean, sd, skew


#: the largest skewness ``skewed_normal_level`` corrects for: the expansion
#: ``z + (z^2 - 1) g / 6`` is monotone while ``|z| < 3 / |g|``, so 0.6 keeps it so to 5
MAX_SKEW = 0.6


def skewed_normal_level(alpha: float, *, mean: float, sd: float, skew: float, lower: bool) -> float:
    """The level a statistic with these moments passes with probability ``alpha``: the
    Cornish-Fisher quantile ``mean + sd (z + (z^2 - 1) skew / 6)`` (``z`` the normal quantile;
    the lower tail when ``lower``), the skewness correcting the normal's tail to first order.
    The skewness is bounded (``|skew| <= MAX_SKEW``) so that the expansion stays monotone out
    to ``|z| = 5`` (a chance of 3e-7).

    >>> round(skewed_normal_level(0.025, mean=0.0, sd=1.0, skew=0.0, lower=True), 3)
    -1.96
    """
    _check(alpha)
    z = -_scipy.norm_isf(alpha) if lower else _scipy.norm_isf(alpha)
    gamma = min(MAX_SKEW, max(-MAX_SKEW, skew))
    return mean + sd * (z + (z * z - 1.0) * gamma / 6.0)


def skewed_normal_chance(
    level: float, *, mean: float, sd: float, skew: float, lower: bool
) -> float:
    """The chance of passing ``level`` under ``skewed_normal_level``'s law: its exact inverse
    (the quadratic in ``z`` solved, on its monotone branch).

    >>> round(skewed_normal_chance(-1.96, mean=0.0, sd=1.0, skew=0.0, lower=True), 3)
    0.025
    """
    if not sd > 0:
        return 0.0 if (level < mean if lower else level > mean) else 1.0
    w = (level - mean) / sd
    g = min(MAX_SKEW, max(-MAX_SKEW, skew)) / 6.0
    if g == 0.0:
        z = w
    else:  # g z^2 + z - (g + w) = 0, the root through z = w at g = 0
        discriminant = 1.0 + 4.0 * g * (g + w)
        if discriminant < 0.0:  # beyond the branch's end: past any z
            z = -math.inf if g > 0 else math.inf
        else:
            z = 2.0 * (g + w) / (1.0 + math.sqrt(discriminant))
    return _scipy.norm_cdf(z) if lower else _scipy.norm_cdf(-z)
