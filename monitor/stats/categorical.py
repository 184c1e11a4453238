"""Drift statistics of a current categorical window against its reference profile.

Bins
----
The reference bins are the profile's categories, in profile order, including ``OTHER`` when the
profile folded categories. Each current category is counted in:

* its own reference bin, if the profile kept it by name;
* ``OTHER``, if the profile folded categories: the profile keeps no names beyond the
  ``max_categories`` most frequent ones (that is what keeps it small), so a category outside
  them may have been folded into ``OTHER`` and is counted there, as every folded one must be;
* otherwise (the profile lists every reference category, so the category is new): a bin of its
  own, reference count 0. At most ``profile.max_categories`` new categories get bins, the most
  frequent ones (ties by name); all further new categories share one extra bin.

Missing values (``None``) are reported as ``missing_ratio`` and kept out of every bin.

Statistics
----------
PSI (:mod:`monitor.stats.psi`, zero proportions floored at ``PSI_EPSILON``), Pearson's
chi-square test of homogeneity of the ``2 x k`` table without Yates' correction
(:mod:`monitor.stats.chi2`), and the base-2 Jensen-Shannon distance over unsmoothed proportions
(:mod:`monitor.stats.jensen_shannon`), all over the bins above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.stats.categories import OTHER, category_counts, fold_rare
from monitor.stats.chi2 import chi2_homogeneity
from monitor.stats.jensen_shannon import jensen_shannon_distance
from monitor.stats.profile import CategoricalProfile
from monitor.stats.psi import population_stability_index


@dataclass(frozen=True, slots=True)
class CategoricalDrift:
    """Drift statistics of one categorical feature in one window.

    Attributes
    ----------
    n : int
        Non-missing current values.
    missing : int
        Missing (``None``) current values.
    missing_ratio : float
        ``missing / (n + missing)``.
    psi : float
        Population stability index over the category bins.
    chi2_statistic, chi2_pvalue : float
        Pearson chi-square test of homogeneity (no continuity correction).
    jensen_shannon : float
        Base-2 Jensen-Shannon distance over the category bins, in ``[0, 1]``.
    """

    n: int
    missing: int
    missing_ratio: float
    psi: float
    chi2_statistic: float
    chi2_pvalue: float
    jensen_shannon: float


def compare_categorical(
    profile: CategoricalProfile, current: Sequence[str | None]
) -> CategoricalDrift:
    """Compare a current window of categories with the reference.

    Parameters
    ----------
    profile : CategoricalProfile
        The reference.
    current : sequence of str or None
        Current categories; ``None`` marks a missing value.

    Returns
    -------
    CategoricalDrift
        The window's statistics.

    Raises
    ------
    ValueError
        If no current value is non-missing.

    Examples
    --------
    >>> from monitor.stats.profile import profile_categorical
    >>> profile = profile_categorical(["a", "a", "b", "b"])
    >>> drift = compare_categorical(profile, ["a", "b", None, "b", "b"])
    >>> drift.n, drift.missing_ratio, round(drift.chi2_statistic, 6)
    (4, 0.2, 0.533333)
    """
    counts, missing = category_counts(current)
    return compare_categorical_counts(profile, counts, missing=missing)


def compare_categorical_counts(
    profile: CategoricalProfile, counts: Mapping[str, int], *, missing: int
) -> CategoricalDrift:
    """Compare pre-counted current categories with the reference.

    Counts merge by addition, so windows can be counted in pieces (time buckets, replicas)
    and compared once.

    Parameters
    ----------
    profile : CategoricalProfile
        The reference.
    counts : mapping of str to int
        Count of each non-missing current category (zeros are ignored).
    missing : int
        Number of missing current values.

    Returns
    -------
    CategoricalDrift
        The window's statistics.

    Raises
    ------
    ValueError
        If a count or ``missing`` is negative, or all counts are zero.

    Examples
    --------
    >>> from monitor.stats.profile import profile_categorical
    >>> profile = profile_categorical(["a", "b"])
    >>> drift = compare_categorical_counts(profile, {"a": 1, "b": 1}, missing=0)
    >>> drift.psi, drift.chi2_statistic, drift.chi2_pvalue, drift.jensen_shannon
    (0.0, 0.0, 1.0, 0.0)
    """
    if missing < 0 or any(count < 0 for count in counts.values()):
        raise ValueError("counts and missing must be >= 0")
    reference_counts, current_counts = category_bins(profile, counts)
    n = int(current_counts.sum())
    if n == 0:
        raise ValueError("the current window has no non-missing value")
    chi2_statistic, chi2_pvalue = chi2_homogeneity(reference_counts, current_counts)
    return CategoricalDrift(
        n=n,
        missing=missing,
        missing_ratio=missing / (n + missing),
        psi=population_stability_index(reference_counts, current_counts),
        chi2_statistic=chi2_statistic,
        chi2_pvalue=chi2_pvalue,
        jensen_shannon=jensen_shannon_distance(reference_counts, current_counts),
    )


def category_bins(
    profile: CategoricalProfile, counts: Mapping[str, int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Reference and current counts over the comparison bins (module docstring).

    Parameters
    ----------
    profile : CategoricalProfile
        The reference.
    counts : mapping of str to int
        Current category counts.

    Returns
    -------
    tuple of ndarray of int64
        ``(reference_counts, current_counts)``: the profile's bins first, then the bins of
        new categories, then the shared bin of further new categories if any.

    Examples
    --------
    >>> profile = CategoricalProfile(n=3, missing=0, counts={"a": 2, "b": 1}, max_categories=2)
    >>> category_bins(profile, {"b": 4, "z": 1, "y": 2, "x": 1, "w": 0})
    (array([2, 1, 0, 0, 0]), array([0, 4, 2, 1, 1]))
    """
    binned = dict.fromkeys(profile.counts, 0)
    new: dict[str, int] = {}
    folded = OTHER in profile.counts
    for category, count in counts.items():
        if category in binned:
            binned[category] += count
        elif folded:
            binned[OTHER] += count
        elif count > 0:
            new[category] = count
    kept, rest, _ = fold_rare(new, limit=profile.max_categories)
    current = [*binned.values(), *kept.values(), *([rest] if rest else [])]
    reference = [*profile.counts.values(), *[0] * (len(current) - len(binned))]
    return np.array(reference, dtype=np.int64), np.array(current, dtype=np.int64)
