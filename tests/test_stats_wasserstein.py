"""Wasserstein-1: exact path equals scipy; the histogram approximation and its stated limits."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats import (
    NumericProfile,
    compare_numeric,
    compare_numeric_histogram,
    grid_counts,
    profile_numeric,
)

Floats = npt.NDArray[np.float64]


def histogram_wasserstein(profile: NumericProfile, current: Floats) -> float:
    counts, missing = grid_counts(profile, current)
    return compare_numeric_histogram(profile, counts, missing=missing).wasserstein


def model_wasserstein(profile: NumericProfile, counts: npt.NDArray[np.int64]) -> float:
    """The documented model, integrated step by step over every reference value: O(n) oracle.

    Inside grid bin j, F_cur~(t) = F_cur(g_{j-1}) + (c_j / r_j) (F_ref(t) - F_ref(g_{j-1})).
    """
    values, grid = profile.sorted_values, profile.grid
    reference_cdf = np.searchsorted(values, grid, side="right") / profile.n
    current_cdf = np.cumsum(counts)[:-1] / counts.sum()
    steps = np.flatnonzero(np.diff(values) > 0)  # [x_i, x_{i+1}) of positive width
    widths = values[steps + 1] - values[steps]
    bin_index = np.searchsorted(grid, values[steps], side="right") - 1  # bin = (g_b, g_{b+1})
    share = np.diff(current_cdf) / np.diff(reference_cdf)
    f_ref = (steps + 1) / profile.n
    f_cur = current_cdf[bin_index] + share[bin_index] * (f_ref - reference_cdf[bin_index])
    return float(np.dot(widths, np.abs(f_ref - f_cur)))


@pytest.mark.parametrize("seed", range(12))
def test_exact_path_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = (int(size) for size in rng.choice([1, 2, 10, 1_000, 30_000], size=2))
    if seed % 3 == 0:
        reference = rng.integers(0, 4, size=n).astype(np.float64)
        current = rng.integers(1, 6, size=m).astype(np.float64)
    else:
        reference = rng.lognormal(size=n)
        current = rng.lognormal(mean=0.2 * (seed % 4), size=m)
    drift = compare_numeric(profile_numeric(reference), current)
    expected = scipy.stats.wasserstein_distance(reference, current)
    assert drift.wasserstein == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_exact_path_at_100k_and_normalisation() -> None:
    rng = np.random.default_rng(100)
    reference = rng.normal(scale=2.0, size=100_000)
    current = rng.normal(loc=0.5, scale=2.0, size=100_000)
    drift = compare_numeric(profile_numeric(reference), current)
    expected = scipy.stats.wasserstein_distance(reference, current)
    assert drift.wasserstein == pytest.approx(expected, rel=1e-9)
    assert drift.wasserstein_normalized == pytest.approx(expected / np.std(reference), rel=1e-9)


def test_constant_reference_has_no_normalised_distance() -> None:
    drift = compare_numeric(profile_numeric(np.array([2.0, 2.0])), np.array([3.0]))
    assert drift.wasserstein == 1.0
    assert drift.wasserstein_normalized is None


samples = st.one_of(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=120),
    st.lists(st.integers(-4, 4).map(float), min_size=1, max_size=120),
).map(lambda values: np.array(values, dtype=np.float64))


@settings(max_examples=150, deadline=None)
@given(reference=samples, current=samples, grid_size=st.sampled_from([1, 2, 5, 20, 1000]))
def test_histogram_evaluates_the_documented_model(
    reference: Floats, current: Floats, grid_size: int
) -> None:
    profile = profile_numeric(reference, grid_size=grid_size)
    counts, _ = grid_counts(profile, current)
    ours = compare_numeric_histogram(profile, counts, missing=0).wasserstein
    assert ours == pytest.approx(model_wasserstein(profile, counts), rel=1e-9, abs=1e-9)


def test_histogram_is_exact_when_current_follows_the_reference_inside_bins() -> None:
    rng = np.random.default_rng(7)
    # discrete: every value is a grid point, so nothing is spread inside a bin
    reference = rng.integers(0, 20, size=5_000).astype(np.float64)
    current = rng.integers(5, 25, size=3_000).clip(max=19).astype(np.float64)
    profile = profile_numeric(reference)
    exact = scipy.stats.wasserstein_distance(reference, current)
    assert histogram_wasserstein(profile, current) == pytest.approx(exact, rel=1e-9)
    # a resample of the reference values themselves
    reference = rng.normal(size=2_000)
    current = rng.choice(reference, size=10_000)
    profile = profile_numeric(reference, grid_size=50)
    exact = scipy.stats.wasserstein_distance(reference, current)
    assert abs(histogram_wasserstein(profile, current) - exact) <= 0.05 * exact


def test_values_beyond_the_reference_count_at_its_edge() -> None:
    reference = np.arange(10.0)
    profile = profile_numeric(reference)
    far = histogram_wasserstein(profile, np.array([100.0, 1000.0]))
    at_edge = scipy.stats.wasserstein_distance(reference, [9.0])
    assert far == pytest.approx(at_edge, rel=1e-12)
    assert far < scipy.stats.wasserstein_distance(reference, [100.0, 1000.0])


SMOOTH = [
    ("normal", 0.0, 1.0),
    ("normal", 0.05, 1.0),
    ("normal", 0.5, 1.2),
    ("normal", 1.0, 0.8),
    ("gamma", 0.0, 1.0),
    ("gamma", 0.3, 1.2),
    ("uniform", 0.0, 1.0),
    ("uniform", 0.2, 0.8),
]


@pytest.mark.parametrize(("family", "shift", "scale"), SMOOTH)
@pytest.mark.parametrize(("n", "m"), [(10_000, 1_000), (50_000, 50_000), (100_000, 10_000)])
def test_histogram_tolerance_on_smooth_data(
    family: str, shift: float, scale: float, n: int, m: int
) -> None:
    """Stated tolerance (module docstring): 0.5% of the reference std plus 2% of W."""
    rng = np.random.default_rng(n + m)

    def draw(size: int, spread: float) -> Floats:
        if family == "normal":
            return rng.normal(scale=spread, size=size)
        if family == "gamma":
            return rng.gamma(2.0, scale=spread, size=size)
        return rng.uniform(0.0, spread, size=size)

    reference = draw(n, 1.0)
    current = draw(m, scale) + shift
    profile = profile_numeric(reference)
    exact = scipy.stats.wasserstein_distance(reference, current)
    error = abs(histogram_wasserstein(profile, current) - exact)
    assert error <= 0.005 * profile.std + 0.02 * exact


@settings(max_examples=150, deadline=None)
@given(reference=samples, current=samples, grid_size=st.sampled_from([1, 2, 5, 20, 1000]))
def test_histogram_error_bound_against_the_clipped_window(
    reference: Floats, current: Floats, grid_size: int
) -> None:
    """|W_hist - W(reference, clip(current))| <= sum_j c_j (g_j - g_{j-1}) (module docstring)."""
    profile = profile_numeric(reference, grid_size=grid_size)
    counts, _ = grid_counts(profile, current)
    ours = compare_numeric_histogram(profile, counts, missing=0).wasserstein
    clipped = np.clip(current, reference.min(), reference.max())
    exact = scipy.stats.wasserstein_distance(reference, clipped)
    inner_mass = counts[1:-1] / counts.sum()
    bound = float(np.dot(inner_mass, np.diff(profile.grid)))
    assert abs(ours - exact) <= bound + 1e-9 * max(1.0, exact)
