"""Exact drift statistics of a current numeric window against its reference profile.

Missing values (NaN) are counted and reported as ``missing_ratio = missing / (n + missing)``;
every other statistic is computed on the non-missing values only, so missing values never move
them. The current window is sorted once; then:

* PSI over the profile's right-closed bins (:mod:`monitor.stats.psi`), and the base-2
  Jensen-Shannon distance over the same bins, unsmoothed (:mod:`monitor.stats.jensen_shannon`);
* KS statistic and p-value equal to ``scipy.stats.ks_2samp`` (:mod:`monitor.stats.ks`);
* Wasserstein-1 equal to ``scipy.stats.wasserstein_distance`` (:mod:`monitor.stats.wasserstein`),
  and the same divided by the reference standard deviation (``None`` when that is 0).

Current values must be finite or NaN: infinite values raise ``ValueError`` (their Wasserstein
distance would be infinite or undefined), so the caller decides whether they mean "missing".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.stats.ecdf import merge_sorted
from monitor.stats.jensen_shannon import jensen_shannon_distance
from monitor.stats.ks import EXACT_MAX_N, ks_pvalue, ks_statistic
from monitor.stats.profile import NumericProfile
from monitor.stats.psi import population_stability_index, sorted_bin_counts
from monitor.stats.wasserstein import wasserstein_distance


@dataclass(frozen=True, slots=True)
class NumericDrift:
    """Drift statistics of one numeric feature in one window.

    Attributes
    ----------
    n : int
        Non-missing current values.
    missing : int
        Missing (NaN) current values.
    missing_ratio : float
        ``missing / (n + missing)``.
    psi : float
        Population stability index over the profile's PSI bins.
    ks_statistic, ks_pvalue : float
        Two-sample Kolmogorov-Smirnov distance and two-sided p-value.
    ks_bound : float
        ``0.0`` on the exact path; on the histogram path a proven bound on
        ``|ks_statistic - exact KS statistic|`` (the exact one is never smaller).
    wasserstein : float
        Wasserstein-1 distance, in the feature's units (approximate on the histogram path).
    wasserstein_normalized : float or None
        ``wasserstein`` divided by the reference standard deviation; ``None`` if that is 0.
    jensen_shannon : float
        Base-2 Jensen-Shannon distance over the PSI bins, in ``[0, 1]``.
    exact : bool
        ``True`` for :func:`compare_numeric`, ``False`` for the histogram path.
    """

    n: int
    missing: int
    missing_ratio: float
    psi: float
    ks_statistic: float
    ks_pvalue: float
    ks_bound: float
    wasserstein: float
    wasserstein_normalized: float | None
    jensen_shannon: float
    exact: bool


def compare_numeric(
    profile: NumericProfile, current: npt.NDArray[np.float64], *, ks_exact_max_n: int = EXACT_MAX_N
) -> NumericDrift:
    """Compare a current window with the reference, exactly.

    Parameters
    ----------
    profile : NumericProfile
        The reference.
    current : ndarray of float64
        Current values, 1-D; NaN marks a missing value.
    ks_exact_max_n : int
        The KS p-value is exact up to this sample size (``ks.ks_pvalue``'s ``exact_max_n``).

    Returns
    -------
    NumericDrift
        Statistics with ``exact=True`` and ``ks_bound=0.0``.

    Raises
    ------
    ValueError
        If no current value is non-missing, a value is infinite, or the array is not 1-D.

    Examples
    --------
    >>> from monitor.stats.profile import profile_numeric
    >>> profile = profile_numeric(np.array([1.0, 2.0, 3.0, 4.0]), bins=2)
    >>> drift = compare_numeric(profile, np.array([3.0, 4.0, np.nan]))
    >>> drift.n, drift.missing, drift.ks_statistic, drift.ks_pvalue, drift.wasserstein
    (2, 1, 0.5, 0.9333333333333332, 1.0)

    PSI bins ``(-inf, 2], (2, inf)``: reference ``(0.5, 0.5)``, current ``(0, 1)``, the empty
    bin floored at ``1e-4``: ``(1e-4 - 0.5) ln(1e-4 / 0.5) + 0.5 ln 2``.

    >>> round(drift.psi, 6), round(drift.jensen_shannon, 6)
    (4.604318, 0.557923)
    """
    values = np.asarray(current, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"current must be 1-D, got shape {values.shape}")
    missing = int(np.count_nonzero(np.isnan(values)))
    # NaN sorts last, so the non-missing values are the sorted prefix.
    current_sorted = np.sort(values)[: values.size - missing]
    n = int(current_sorted.size)
    if n == 0:
        raise ValueError("the current window has no non-missing value")
    if np.isinf(current_sorted[0]) or np.isinf(current_sorted[-1]):
        raise ValueError("the current window has infinite values; map them to NaN or clip them")
    merged = merge_sorted(profile.sorted_values, current_sorted)
    statistic, p_value = ks_pvalue(
        ks_statistic(merged), n_reference=profile.n, n_current=n, exact_max_n=ks_exact_max_n
    )
    psi, jensen_shannon = bin_statistics(
        profile, sorted_bin_counts(current_sorted, profile.psi_edges)
    )
    wasserstein = wasserstein_distance(merged)
    return NumericDrift(
        n=n,
        missing=missing,
        missing_ratio=missing / (n + missing),
        psi=psi,
        ks_statistic=statistic,
        ks_pvalue=p_value,
        ks_bound=0.0,
        wasserstein=wasserstein,
        wasserstein_normalized=normalize_wasserstein(profile, wasserstein),
        jensen_shannon=jensen_shannon,
        exact=True,
    )


def bin_statistics(
    profile: NumericProfile, current_counts: npt.NDArray[np.int64]
) -> tuple[float, float]:
    """PSI and Jensen-Shannon distance of current counts over the profile's PSI bins.

    Parameters
    ----------
    profile : NumericProfile
        The reference; its own PSI bin counts are recomputed from ``sorted_values``.
    current_counts : ndarray of int64
        Current counts per PSI bin (``len(profile.psi_edges) + 1`` of them).

    Returns
    -------
    tuple of float
        ``(psi, jensen_shannon)``.

    Examples
    --------
    >>> from monitor.stats.profile import profile_numeric
    >>> bin_statistics(profile_numeric(np.array([1.0, 2.0]), bins=2), np.array([5, 5]))
    (0.0, 0.0)
    """
    reference_counts = sorted_bin_counts(profile.sorted_values, profile.psi_edges)
    return (
        population_stability_index(reference_counts, current_counts),
        jensen_shannon_distance(reference_counts, current_counts),
    )


def normalize_wasserstein(profile: NumericProfile, wasserstein: float) -> float | None:
    """``wasserstein / profile.std``, or ``None`` for a constant reference.

    Parameters
    ----------
    profile : NumericProfile
        The reference, whose population standard deviation is the unit.
    wasserstein : float
        A Wasserstein-1 distance in the feature's units.

    Returns
    -------
    float or None
        The distance in reference standard deviations.

    Examples
    --------
    >>> from monitor.stats.profile import profile_numeric
    >>> normalize_wasserstein(profile_numeric(np.array([0.0, 2.0])), 0.5)
    0.5
    >>> normalize_wasserstein(profile_numeric(np.array([3.0, 3.0])), 0.5) is None
    True
    """
    return wasserstein / profile.std if profile.std > 0.0 else None
