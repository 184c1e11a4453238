"""Histogram path: grid counts, PSI identical to the exact path, the proven KS bound."""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats import (
    compare_numeric,
    compare_numeric_histogram,
    grid_counts,
    profile_numeric,
)

Floats = npt.NDArray[np.float64]


def exact_ks_statistic(reference: Floats, current: Floats) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # method="asymp" returns the raw statistic (the exact method rounds it to a lattice)
        return float(scipy.stats.ks_2samp(reference, current, method="asymp").statistic)


def test_grid_counts_are_right_closed_with_open_outer_bins() -> None:
    profile = profile_numeric(np.array([1.0, 2.0, 3.0]), grid_size=3)
    assert profile.grid.tolist() == [1.0, 2.0, 3.0]
    counts, missing = grid_counts(profile, np.array([-5.0, 1.0, 1.5, 2.0, 3.0, 3.5, np.nan]))
    assert counts.tolist() == [2, 2, 1, 1]
    assert missing == 1
    assert counts.dtype == np.int64


def test_grid_counts_merge_by_addition() -> None:
    rng = np.random.default_rng(0)
    profile = profile_numeric(rng.normal(size=1_000), grid_size=50)
    first, second = rng.normal(size=300), rng.normal(size=500)
    first[::7] = np.nan
    counts_a, missing_a = grid_counts(profile, first)
    counts_b, missing_b = grid_counts(profile, second)
    counts, missing = grid_counts(profile, np.concatenate((first, second)))
    assert np.array_equal(counts_a + counts_b, counts) and missing_a + missing_b == missing
    merged = compare_numeric_histogram(profile, counts_a + counts_b, missing=missing)
    assert merged == compare_numeric_histogram(profile, counts, missing=missing)


def test_grid_counts_rejects_infinite_and_2d() -> None:
    profile = profile_numeric(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="infinite"):
        grid_counts(profile, np.array([1.0, -np.inf]))
    with pytest.raises(ValueError, match="1-D"):
        grid_counts(profile, np.ones((2, 2)))


def test_compare_histogram_validates_counts() -> None:
    profile = profile_numeric(np.array([1.0, 2.0, 3.0]), grid_size=3)
    with pytest.raises(ValueError, match="4 integers"):
        compare_numeric_histogram(profile, np.array([1, 2, 3]), missing=0)
    with pytest.raises(ValueError, match="4 integers"):
        compare_numeric_histogram(profile, np.array([1.0, 2.0, 3.0, 4.0]), missing=0)
    with pytest.raises(ValueError, match=">= 0"):
        compare_numeric_histogram(profile, np.array([1, -1, 3, 0]), missing=0)
    with pytest.raises(ValueError, match=">= 0"):
        compare_numeric_histogram(profile, np.array([1, 1, 3, 0]), missing=-2)
    with pytest.raises(ValueError, match="no non-missing"):
        compare_numeric_histogram(profile, np.zeros(4, dtype=np.int64), missing=3)


samples = st.one_of(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=150),
    st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=150),
    st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0, 7.0]), min_size=1, max_size=150),
).map(lambda values: np.array(values, dtype=np.float64))


@settings(max_examples=500, deadline=None)
@given(
    reference=samples,
    current=samples,
    bins=st.integers(1, 12),
    grid_size=st.sampled_from([1, 2, 3, 7, 25, 1000]),
)
def test_histogram_agrees_with_exact_path(
    reference: Floats, current: Floats, bins: int, grid_size: int
) -> None:
    profile = profile_numeric(reference, bins=bins, grid_size=grid_size)
    counts, missing = grid_counts(profile, current)
    approximate = compare_numeric_histogram(profile, counts, missing=missing)
    exact = compare_numeric(profile, current)
    # identical: every PSI edge is a grid point
    assert approximate.psi == exact.psi
    assert abs(approximate.psi - exact.psi) <= 1e-12
    assert approximate.jensen_shannon == exact.jensen_shannon
    assert (approximate.n, approximate.missing) == (exact.n, exact.missing)
    # the KS statistic at grid points is a lower bound, within the proven ks_bound
    d_exact = exact_ks_statistic(reference, current)
    assert approximate.ks_statistic <= d_exact + 1e-12
    assert d_exact <= approximate.ks_statistic + approximate.ks_bound + 1e-12
    assert 0.0 <= approximate.ks_bound <= 1.0
    assert 0.0 <= approximate.ks_pvalue <= 1.0
    assert not approximate.exact and exact.exact and exact.ks_bound == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_ks_bound_is_small_for_continuous_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=20_000)
    current = rng.normal(loc=0.1 * seed, size=20_000)
    profile = profile_numeric(reference)
    counts, missing = grid_counts(profile, current)
    drift = compare_numeric_histogram(profile, counts, missing=missing)
    d_exact = exact_ks_statistic(reference, current)
    assert drift.ks_statistic <= d_exact <= drift.ks_statistic + drift.ks_bound
    # the bound is at most the largest grid-bin mass, ~1/1000 here
    assert drift.ks_bound < 0.004
    en = 20_000 * 20_000 / 40_000
    expected_p = float(scipy.stats.kstwobign.sf(np.sqrt(en) * drift.ks_statistic))
    assert abs(drift.ks_pvalue - expected_p) <= 1e-12


def test_psi_matches_exact_path_on_large_window() -> None:
    rng = np.random.default_rng(9)
    reference = np.round(rng.gamma(2.0, size=50_000), 2)
    current = np.round(rng.gamma(2.2, size=80_000), 2)
    profile = profile_numeric(reference)
    counts, missing = grid_counts(profile, current)
    approximate = compare_numeric_histogram(profile, counts, missing=missing)
    assert approximate.psi == compare_numeric(profile, current).psi
