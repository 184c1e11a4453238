"""Drift statistics: arrays in, frozen dataclasses out; no I/O, clock, logging or config.

This package imports only NumPy, SciPy and the standard library, and could be lifted out as its
own package. Its modules, one idea each::

    profile.py         NumericProfile / CategoricalProfile: the reference, built once, stored
    compare.py         compare_numeric: the exact path (PSI, KS, Wasserstein, Jensen-Shannon)
    histogram.py       grid_counts + compare_numeric_histogram: mergeable counts, bounded KS
    categorical.py     compare_categorical(_counts): PSI, chi-square, Jensen-Shannon on categories
    categories.py      category_counts, folding of rare categories, OTHER
    psi.py             PSI and its empty-bin floor PSI_EPSILON; right-closed numeric bins
    ks.py              KS statistic and p-value equal to scipy's ks_2samp; the histogram bound
    wasserstein.py     Wasserstein-1, exact and from grid counts
    jensen_shannon.py  base-2 Jensen-Shannon distance
    null_levels.py     levels each statistic passes with a given chance under no drift
    chi2.py            chi-square test of homogeneity
    fairness.py        group_fairness: per-group selection rate, accuracy, TPR, FPR; disparities
    ecdf.py            two sorted samples merged: shared by KS and Wasserstein
    _scipy.py          typed wrappers of the SciPy functions used
    performance/       model performance from labels (sklearn-equal metrics, Wilson intervals)
                       and accuracy estimated from scores alone (CBPE)

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> profile = profile_numeric(rng.normal(size=5_000))
>>> drift = compare_numeric(profile, rng.normal(loc=1.0, size=2_000))
>>> drift.ks_pvalue < 1e-10 and drift.psi > 0.5
True
"""

from __future__ import annotations

from monitor.stats.categorical import (
    CategoricalDrift,
    compare_categorical,
    compare_categorical_counts,
)
from monitor.stats.categories import OTHER, category_counts
from monitor.stats.compare import NumericDrift, compare_numeric
from monitor.stats.histogram import compare_numeric_histogram, grid_counts
from monitor.stats.profile import (
    CategoricalProfile,
    NumericProfile,
    profile_categorical,
    profile_numeric,
)
from monitor.stats.psi import MISSING_EPSILON, PSI_EPSILON

__all__ = [
    "MISSING_EPSILON",
    "OTHER",
    "PSI_EPSILON",
    "CategoricalDrift",
    "CategoricalProfile",
    "NumericDrift",
    "NumericProfile",
    "category_counts",
    "compare_categorical",
    "compare_categorical_counts",
    "compare_numeric",
    "compare_numeric_histogram",
    "grid_counts",
    "profile_categorical",
    "profile_numeric",
]
