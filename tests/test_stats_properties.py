"""Invariants of every statistic, checked with hypothesis on random data with heavy ties."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats import (
    compare_categorical,
    compare_numeric,
    compare_numeric_histogram,
    grid_counts,
    profile_categorical,
    profile_numeric,
)

Floats = npt.NDArray[np.float64]

samples = st.one_of(
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=120),
    st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=120),
    st.lists(st.sampled_from([0.0, 0.0, 2.5, 1e-9, -1e6]), min_size=1, max_size=120),
).map(lambda values: np.array(values, dtype=np.float64))

categories = st.lists(
    st.one_of(st.sampled_from(["a", "b", "c", "d", "e", "f"]), st.text(max_size=3)),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(reference=samples, current=samples, bins=st.integers(1, 10), seed=st.integers(0, 2**32))
def test_numeric_ranges_and_permutation_invariance(
    reference: Floats, current: Floats, bins: int, seed: int
) -> None:
    profile = profile_numeric(reference, bins=bins, grid_size=30)
    drift = compare_numeric(profile, current)
    assert drift.psi >= 0.0
    assert 0.0 <= drift.ks_statistic <= 1.0
    assert 0.0 <= drift.ks_pvalue <= 1.0
    assert 0.0 <= drift.jensen_shannon <= 1.0
    assert drift.wasserstein >= 0.0
    shuffled = np.random.default_rng(seed).permutation(current)
    assert compare_numeric(profile, shuffled) == drift
    counts, missing = grid_counts(profile, current)
    histogram = compare_numeric_histogram(profile, counts, missing=missing)
    shuffled_counts, _ = grid_counts(profile, shuffled)
    assert compare_numeric_histogram(profile, shuffled_counts, missing=missing) == histogram
    assert histogram.psi >= 0.0 and 0.0 <= histogram.ks_pvalue <= 1.0
    assert histogram.wasserstein >= 0.0


@settings(max_examples=100, deadline=None)
@given(values=samples, bins=st.integers(1, 10))
def test_identical_samples_show_no_drift(values: Floats, bins: int) -> None:
    profile = profile_numeric(values, bins=bins)
    drift = compare_numeric(profile, values)
    assert drift.psi == 0.0
    assert drift.ks_statistic == 0.0 and drift.ks_pvalue == 1.0
    assert drift.wasserstein == 0.0 and drift.jensen_shannon == 0.0
    counts, missing = grid_counts(profile, values)
    histogram = compare_numeric_histogram(profile, counts, missing=missing)
    assert histogram.psi == 0.0 and histogram.ks_statistic == 0.0
    assert histogram.wasserstein == 0.0


@settings(max_examples=100, deadline=None)
@given(
    reference=samples,
    current=samples,
    positions=st.lists(st.integers(0, 200), min_size=1, max_size=20),
)
def test_missing_values_only_move_the_missing_counts(
    reference: Floats, current: Floats, positions: list[int]
) -> None:
    profile = profile_numeric(reference)
    with_missing = np.insert(current, np.minimum(positions, current.size), np.nan)
    clean = compare_numeric(profile, current)
    dirty = compare_numeric(profile, with_missing)
    assert dirty.missing == len(positions) and dirty.n == clean.n
    assert dirty.missing_ratio == len(positions) / with_missing.size
    for name in ("psi", "ks_statistic", "ks_pvalue", "wasserstein", "jensen_shannon"):
        assert getattr(dirty, name) == getattr(clean, name)
    # and in the reference
    dirty_profile = profile_numeric(np.insert(reference, 0, [np.nan, np.nan]))
    assert compare_numeric(dirty_profile, current).psi == clean.psi


@settings(max_examples=150, deadline=None)
@given(
    reference=categories,
    current=categories,
    max_categories=st.integers(1, 6),
    seed=st.integers(0, 2**32),
    missing=st.integers(0, 5),
)
def test_categorical_invariants(
    reference: list[str], current: list[str], max_categories: int, seed: int, missing: int
) -> None:
    profile = profile_categorical(reference, max_categories=max_categories)
    drift = compare_categorical(profile, current)
    assert drift.psi >= 0.0
    assert drift.chi2_statistic >= 0.0 and 0.0 <= drift.chi2_pvalue <= 1.0
    assert 0.0 <= drift.jensen_shannon <= 1.0
    order = np.random.default_rng(seed).permutation(len(current))
    shuffled: list[str | None] = [current[i] for i in order]
    assert compare_categorical(profile, shuffled) == drift
    with_missing = compare_categorical(profile, shuffled + [None] * missing)
    assert with_missing.psi == drift.psi and with_missing.chi2_pvalue == drift.chi2_pvalue
    assert with_missing.missing == missing
    same = compare_categorical(profile, reference)
    assert same.psi == 0.0 and same.chi2_statistic == 0.0 and same.jensen_shannon == 0.0
