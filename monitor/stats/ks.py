"""Two-sample Kolmogorov-Smirnov statistic and p-value, as ``scipy.stats.ks_2samp`` gives them.

Statistic
---------
``D = sup_t |F_ref(t) - F_cur(t)|`` over the two ECDFs. It is read off the merged support
(:mod:`monitor.stats.ecdf`) at the last position of every run of tied values, with the same
float operations as ``ks_2samp`` (``count_ref / n_ref - count_cur / n_cur``), so it is equal to
SciPy's bit for bit.

P-value (two-sided; ``ks_2samp(method="auto")``)
------------------------------------------------
* ``max(n_ref, n_cur) > 10_000``: SciPy uses ``kstwo.sf(D, round(en))`` with
  ``en = n_ref n_cur / (n_ref + n_cur)``, and so do we, except where that value is provably below
  ``NEGLIGIBLE_P = 1e-10``. By the DKW inequality with Massart's constants (Massart 1990,
  Ann. Probab. 18: ``P(D_n^+ >= x) <= exp(-2 n x^2)`` once ``exp(-2 n x^2) <= 1/2``), the exact
  two-sided probability and ``2 P(D_n^+ >= x)`` are both ``<= 2 exp(-2 n x^2)``; where
  ``2 exp(-2 n x^2) < 1e-10`` every branch of ``kstwo.sf`` returns one of those two, or 0. Then
  we return Kolmogorov's limit ``kolmogorov(sqrt(n) x)`` clipped to that bound: both values lie
  in ``[0, 1e-10]`` and differ by less than ``1e-9``. This matters for speed: there
  ``kstwo.sf`` sums the O(n) Birnbaum-Tingey series, ~50 ms at ``n = 50_000``. Above that
  bound, where ``kstwo.sf`` is ``2 * smirnov(n, D)`` (``2.2 <= n D^2``, p-values below about
  0.02), we sum the same series vectorised (:mod:`monitor.stats.smirnov`, ~2 ms, within
  1e-9 of SciPy's by the bound proved there); elsewhere we call ``kstwo.sf``.
* Otherwise SciPy computes the exact permutation probability ``P(D_{n,m} >= D)`` with ``D``
  rounded to the lattice ``h / lcm(n_ref, n_cur)``; it costs O(n_ref * n_cur * D) when the sizes
  differ (~100 ms at 10_000 vs 9_999 with ``D = 0.1``). We call the same routine
  (``_attempt_exact_2kssamp``), so p-value and rounded statistic are SciPy's bit for bit, except
  when a rigorous upper bound ``U`` on the exact probability (:func:`permutation_tail_bound`) is
  below ``1e-10``: then the exact value and our answer ``min(kolmogorov(sqrt(en) D), U)`` both lie
  in ``[0, U]`` and differ by less than ``1e-10``. If SciPy's exact routine reports a
  floating-point failure we fall back, as SciPy does, to ``kstwo.sf(D, round(en))``.

The bound ``U``
---------------
Under the null hypothesis the merged order is a uniformly random arrangement of ``n_ref``
reference and ``n_cur`` current values (SciPy's exact p-value is this lattice-path probability;
it ignores ties). Let ``N = n_ref + n_cur`` and ``a_k`` the number of reference values among the
first ``k``; ``a_k`` is the success count of ``k`` draws without replacement from an urn of ``N``
balls, ``n_ref`` of them white, with mean ``k p``, ``p = n_ref / N``. At position ``k``,
``F_ref - F_cur = a_k / n_ref - (k - a_k) / n_cur = N S_k / (n_ref n_cur)`` with
``S_k = a_k - k p``; so ``D >= h / lcm`` iff ``|S_k| >= s = h gcd(n_ref, n_cur) / N`` for some
``1 <= k <= N - 1``, and by the union bound::

    P(D >= h / lcm) <= sum_{k=1}^{N-1} [ P(S_k >= s) + P(S_k <= -s) ].

Each tail is bounded by the smallest of four proven inequalities: Hoeffding's (1963, Thm. 1,
valid without replacement by Thm. 4) ``P(mean - mu >= e) <= exp(-k KL(mu + e || mu))`` and
Serfling's (1974, Cor. 1.1) ``P(mean - mu >= e) <= exp(-2 k e^2 / (1 - (k - 1) / N))``, each
applied to the first ``k`` draws and, through ``a_k = n_ref - (white balls among the other
N - k)``, to the remaining ``N - k`` draws; the lower tail uses the black balls. ``s`` is shrunk
by a relative ``1e-12`` so rounding can only loosen the bound; the factor 10 between ``1e-10``
and ``1e-9`` absorbs any rounding in the final comparison.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from monitor.stats._scipy import attempt_exact_2kssamp, kolmogorov, kstwo_sf, xlogy
from monitor.stats.ecdf import MergedSamples
from monitor.stats.smirnov import in_series_band, smirnov

#: ``ks_2samp(method="auto")`` computes exact p-values up to this sample size (SciPy's value).
EXACT_MAX_N = 10_000
#: A p-value provably below this may be returned approximately (see the module docstring).
NEGLIGIBLE_P = 1e-10


def ks_statistic(merged: MergedSamples) -> float:
    """Two-sample KS distance ``sup |F_ref - F_cur|`` of merged samples.

    Parameters
    ----------
    merged : MergedSamples
        The two samples on their merged support.

    Returns
    -------
    float
        The statistic, in ``[0, 1]``.

    Examples
    --------
    >>> from monitor.stats.ecdf import merge_sorted
    >>> ks_statistic(merge_sorted(np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 4.0])))
    0.5
    """
    # The last merged position has distance 1 - 1 = 0; every other run of ties ends at a gap.
    return float(np.max(merged.distance[:-1], where=merged.gaps > 0.0, initial=0.0))


def ks_pvalue(
    statistic: float, *, n_reference: int, n_current: int, exact_max_n: int = EXACT_MAX_N
) -> tuple[float, float]:
    """Statistic and two-sided p-value as ``scipy.stats.ks_2samp`` reports them.

    Parameters
    ----------
    statistic : float
        The KS distance of the two samples.
    n_reference, n_current : int
        Sample sizes (non-missing values).
    exact_max_n : int
        The exact p-value up to this sample size, the asymptotic one above (SciPy's ``auto``
        at the default; a smaller value trades the exact p-value of mid-sized samples, whose
        cost grows with the product of the sizes, for ``method="asymp"``'s).

    Returns
    -------
    tuple of float
        ``(statistic, p_value)``. On SciPy's exact path the statistic comes back rounded to
        the lattice ``h / lcm(n_reference, n_current)``, as SciPy returns it.

    Examples
    --------
    >>> ks_pvalue(0.5, n_reference=4, n_current=2)
    (0.5, 0.9333333333333332)
    >>> ks_pvalue(0.0, n_reference=20_000, n_current=20_000)
    (0.0, 1.0)
    """
    if max(n_reference, n_current) > exact_max_n:
        return statistic, ks_asymptotic_pvalue(
            statistic, n_reference=n_reference, n_current=n_current
        )
    return _exact_pvalue(statistic, n_reference, n_current)


def ks_limit_pvalue(statistic: float, *, n_reference: int, n_current: int) -> float:
    """Kolmogorov's limiting two-sided p-value ``kolmogorov(sqrt(en) * statistic)``.

    Examples
    --------
    >>> round(ks_limit_pvalue(0.02, n_reference=10_000, n_current=10_000), 6)
    0.036631
    """
    en = n_reference * n_current / (n_reference + n_current)
    return min(max(kolmogorov(math.sqrt(en) * statistic), 0.0), 1.0)


def ks_asymptotic_pvalue(statistic: float, *, n_reference: int, n_current: int) -> float:
    """``kstwo.sf(statistic, round(en))``, SciPy's large-sample two-sided KS p-value.

    Parameters
    ----------
    statistic : float
        The KS distance.
    n_reference, n_current : int
        Sample sizes; ``en = n_reference n_current / (n_reference + n_current)`` is rounded
        half to even, as ``np.round`` does, and taken at least 1.

    Returns
    -------
    float
        The p-value; where it is provably below ``NEGLIGIBLE_P`` a value within ``1e-10`` of it
        (module docstring).

    Examples
    --------
    >>> round(ks_asymptotic_pvalue(0.02, n_reference=10_000, n_current=10_000), 6)
    0.036139
    >>> ks_asymptotic_pvalue(0.5, n_reference=50_000, n_current=50_000) < 1e-300
    True
    """
    larger, smaller = sorted((float(n_reference), float(n_current)), reverse=True)
    n_effective = max(float(np.round(larger * smaller / (larger + smaller))), 1.0)
    dkw_bound = 2.0 * math.exp(-2.0 * n_effective * statistic * statistic)
    if dkw_bound < NEGLIGIBLE_P:
        return min(kolmogorov(math.sqrt(n_effective) * statistic), dkw_bound)
    if in_series_band(int(n_effective), statistic):  # SciPy's 2 * smirnov, 25x faster
        return min(max(2.0 * smirnov(int(n_effective), statistic), 0.0), 1.0)
    return min(max(kstwo_sf(statistic, n_effective), 0.0), 1.0)


def _exact_pvalue(statistic: float, n_reference: int, n_current: int) -> tuple[float, float]:
    gcd = math.gcd(n_reference, n_current)
    lcm = (n_reference // gcd) * n_current
    h = int(np.round(statistic * lcm))
    rounded = h * 1.0 / lcm
    if h == 0:
        return rounded, 1.0
    # With equal sizes SciPy's closed-form sum is already O(n) and cheaper than the bound.
    if n_reference != n_current:
        en = n_reference * n_current / (n_reference + n_current)
        estimate = kolmogorov(math.sqrt(en) * rounded)
        # The estimate only decides whether the bound is worth computing; the bound decides.
        if estimate < NEGLIGIBLE_P:
            bound = permutation_tail_bound(n_reference, n_current, h)
            if bound < NEGLIGIBLE_P:
                return rounded, min(estimate, bound)
    success, rounded, p_value = attempt_exact_2kssamp(n_reference, n_current, gcd, statistic)
    if not success:
        p_value = ks_asymptotic_pvalue(rounded, n_reference=n_reference, n_current=n_current)
    return rounded, min(max(p_value, 0.0), 1.0)


def permutation_tail_bound(n_reference: int, n_current: int, h: int) -> float:
    """Rigorous upper bound on the exact permutation probability ``P(D >= h / lcm)``.

    Parameters
    ----------
    n_reference, n_current : int
        Sample sizes.
    h : int
        Lattice numerator of the statistic: ``D = h / lcm(n_reference, n_current)``.

    Returns
    -------
    float
        An upper bound (possibly above 1) from Hoeffding's and Serfling's inequalities for
        sampling without replacement and a union bound over positions (module docstring).

    Examples
    --------
    >>> permutation_tail_bound(1_000, 500, 500) < 1e-30
    True
    >>> permutation_tail_bound(100, 50, 1) > 1.0
    True
    """
    total = n_reference + n_current
    shift = h * math.gcd(n_reference, n_current) / total * (1.0 - 1e-12)
    share = n_reference / total
    first = np.arange(1, total, dtype=np.float64)
    rest = total - first
    serfling = np.minimum(
        np.exp(-2.0 * shift * shift * total / (first * (rest + 1.0))),
        np.exp(-2.0 * shift * shift * total / (rest * (first + 1.0))),
    )
    upper = np.minimum(
        _hoeffding(first, shift / first, share), _hoeffding(rest, shift / rest, 1.0 - share)
    )
    lower = np.minimum(
        _hoeffding(first, shift / first, 1.0 - share), _hoeffding(rest, shift / rest, share)
    )
    return float(np.sum(np.minimum(serfling, upper) + np.minimum(serfling, lower)))


def _hoeffding(
    draws: npt.NDArray[np.float64], excess: npt.NDArray[np.float64], mean: float
) -> npt.NDArray[np.float64]:
    """Hoeffding's bound on ``P(sample mean - mean >= excess)`` for 0/1 draws; 0 if impossible."""
    target = np.minimum(mean + excess, 1.0)
    divergence = xlogy(target, target / mean) + xlogy(1.0 - target, (1.0 - target) / (1.0 - mean))
    result: npt.NDArray[np.float64] = np.where(
        mean + excess > 1.0, 0.0, np.exp(-draws * divergence)
    )
    return result


def ks_histogram_statistic(
    reference_cdf: npt.NDArray[np.float64],
    reference_cdf_left: npt.NDArray[np.float64],
    current_cdf: npt.NDArray[np.float64],
) -> tuple[float, float]:
    """KS distance at grid points, and a proven bound on its distance to the exact statistic.

    Parameters
    ----------
    reference_cdf : ndarray of float64
        ``F_ref(g_j)`` at each grid point ``g_j`` (exact: the profile keeps the sorted values).
    reference_cdf_left : ndarray of float64
        The left limits ``F_ref(g_j-)``.
    current_cdf : ndarray of float64
        ``F_cur(g_j)`` from the cumulative grid counts.

    Returns
    -------
    tuple of float
        ``(d_grid, bound)`` with ``d_grid <= D_exact <= d_grid + bound`` (up to rounding).

    Notes
    -----
    ``d_grid = max_j |F_ref(g_j) - F_cur(g_j)|`` is attained at real points, so
    ``d_grid <= D_exact``. Any other ``t`` lies strictly inside one grid bin
    ``(g_{j-1}, g_j)`` (with ``g_{-1} = -inf``, ``g_G = +inf``), where monotonicity gives
    ``F_ref(t) <= F_ref(g_j-)`` and ``F_cur(t) >= F_cur(g_{j-1})``, and
    ``F_cur(t) <= F_cur(g_j)`` and ``F_ref(t) >= F_ref(g_{j-1})``; hence::

        |F_ref(t) - F_cur(t)| <= max(F_ref(g_j-) - F_cur(g_{j-1}), F_cur(g_j) - F_ref(g_{j-1}))

    (with ``F(g_{-1}) = 0`` and ``F_ref(g_G-) = F_cur(g_G) = 1``). The largest of these and
    ``d_grid`` bounds ``D_exact``. Writing ``F_ref(g_j-) = F_ref(g_{j-1}) + a_j`` and
    ``F_cur(g_j) = F_cur(g_{j-1}) + c_j`` shows ``bound <= max_j max(a_j, c_j)``: the largest
    reference mass strictly inside a grid bin or current mass in one.

    Examples
    --------
    Reference ``{1, 2, 3, 4}`` on grid ``(1, 3)``; current ``{2, 2}``, all in bin ``(1, 3]``:

    >>> ks_histogram_statistic(np.array([0.25, 0.75]), np.array([0.0, 0.5]), np.array([0.0, 1.0]))
    (0.25, 0.5)

    The exact distance is 0.5 (at ``t = 2``), inside ``[0.25, 0.25 + 0.5]``.
    """
    d_grid = float(np.max(np.abs(reference_cdf - current_cdf), initial=0.0))
    reference_inside = np.append(reference_cdf_left, 1.0) - np.insert(current_cdf, 0, 0.0)
    current_inside = np.append(current_cdf, 1.0) - np.insert(reference_cdf, 0, 0.0)
    d_upper = max(d_grid, float(np.max(reference_inside)), float(np.max(current_inside)))
    return d_grid, d_upper - d_grid
