"""Categorical drift: bins, chi-square and Jensen-Shannon against scipy, worked answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from scipy.spatial.distance import jensenshannon

from monitor.stats import (
    OTHER,
    CategoricalProfile,
    category_counts,
    compare_categorical,
    compare_categorical_counts,
    profile_categorical,
)
from monitor.stats.categorical import category_bins
from monitor.stats.chi2 import chi2_homogeneity
from monitor.stats.jensen_shannon import jensen_shannon_distance


def test_category_counts_separates_missing() -> None:
    assert category_counts(["a", None, "b", "a", None]) == ({"a": 2, "b": 1}, 2)
    assert category_counts([]) == ({}, 0)


@pytest.mark.parametrize("seed", range(40))
def test_chi2_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 30))
    reference = rng.integers(0, 1000, size=k) * (rng.random(k) < 0.8)
    current = rng.integers(0, 50, size=k) * (rng.random(k) < 0.8)
    reference[0] += 1
    current[1] += 1  # positive totals
    table = np.stack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    statistic, p_value = chi2_homogeneity(reference, current)
    if table.shape[1] < 2:
        assert (statistic, p_value) == (0.0, 1.0)
        return
    expected = scipy.stats.chi2_contingency(table, correction=False)
    assert abs(statistic - expected.statistic) <= 1e-9
    assert abs(p_value - expected.pvalue) <= 1e-9


def test_chi2_by_hand() -> None:
    # table [[30, 10], [20, 40]]: totals rows 40, 60; columns 50, 50; grand 100
    # expected [[20, 20], [30, 30]]; chi2 = 100/20 + 100/20 + 100/30 + 100/30 = 16.6667
    statistic, p_value = chi2_homogeneity(np.array([30, 10]), np.array([20, 40]))
    assert statistic == pytest.approx(50 / 3, rel=1e-12)
    assert p_value == pytest.approx(math.erfc(math.sqrt(50 / 3 / 2)), rel=1e-9)  # chi2 with 1 dof


def test_chi2_single_category_is_degenerate() -> None:
    assert chi2_homogeneity(np.array([5, 0]), np.array([9, 0])) == (0.0, 1.0)


@pytest.mark.parametrize("seed", range(20))
def test_jensen_shannon_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 20))
    reference = rng.integers(0, 100, size=k) * (rng.random(k) < 0.7)
    current = rng.integers(0, 100, size=k) * (rng.random(k) < 0.7)
    reference[0] += 1
    current[-1] += 1
    ours = jensen_shannon_distance(reference, current)
    assert abs(ours - float(jensenshannon(reference, current, base=2))) <= 1e-12
    assert 0.0 <= ours <= 1.0


def test_unseen_categories_get_bins_capped_at_max_categories() -> None:
    profile = profile_categorical(["a", "a", "b"], max_categories=2)
    counts = {"a": 1, "n1": 5, "n2": 3, "n3": 3, "n4": 1}
    reference, current = category_bins(profile, counts)
    # bins: a, b, then the 2 most frequent new ones (n1, then n2 before n3 by name), then rest
    assert reference.tolist() == [2, 1, 0, 0, 0]
    assert current.tolist() == [1, 0, 5, 3, 4]


def test_folded_profile_counts_unknown_categories_in_other() -> None:
    profile = profile_categorical(["a"] * 4 + ["b"] * 2 + ["c", "d"], max_categories=2)
    assert profile.counts == {"a": 4, "b": 2, OTHER: 2}
    # "c" was seen and folded, "z" never seen: the profile cannot tell them apart; both -> OTHER
    reference, current = category_bins(profile, {"c": 3, "z": 1, "a": 1})
    assert reference.tolist() == [4, 2, 2]
    assert current.tolist() == [1, 0, 4]


def test_categorical_psi_and_js_by_hand() -> None:
    profile = profile_categorical(["a", "a", "b", "b"])
    drift = compare_categorical(profile, ["a", "b", "b", "b", "new", None])
    # bins a, b, new: reference (0.5, 0.5, 0 -> 1e-4), current (0.2, 0.6, 0.2)
    expected_psi = (
        (0.2 - 0.5) * math.log(0.2 / 0.5)
        + (0.6 - 0.5) * math.log(0.6 / 0.5)
        + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    )
    assert drift.psi == pytest.approx(expected_psi, rel=1e-12)
    assert drift.jensen_shannon == pytest.approx(
        float(jensenshannon([0.5, 0.5, 0.0], [0.2, 0.6, 0.2], base=2)), abs=1e-12
    )
    expected = scipy.stats.chi2_contingency([[2, 2, 0], [1, 3, 1]], correction=False)
    assert drift.chi2_statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert drift.chi2_pvalue == pytest.approx(expected.pvalue, abs=1e-9)
    assert (drift.n, drift.missing, drift.missing_ratio) == (5, 1, 1 / 6)


def test_identical_samples_show_no_drift() -> None:
    values = ["x", "y", "y", "z", None]
    drift = compare_categorical(profile_categorical(values), values)
    assert (drift.psi, drift.chi2_statistic, drift.jensen_shannon) == (0.0, 0.0, 0.0)
    assert drift.chi2_pvalue == pytest.approx(1.0)


def test_counts_path_equals_values_path_and_merges_by_addition() -> None:
    profile = profile_categorical(["a", "b", "c", "a", None])
    first = ["a", "a", None, "q"]
    second = ["b", "q", "r", None, None]
    merged = {
        key: category_counts(first)[0].get(key, 0) + category_counts(second)[0].get(key, 0)
        for key in {"a", "b", "q", "r"}
    }
    assert compare_categorical_counts(profile, merged, missing=3) == compare_categorical(
        profile, first + second
    )


def test_zero_counts_are_ignored() -> None:
    profile = profile_categorical(["a", "b"])
    with_zeros = compare_categorical_counts(profile, {"a": 2, "zzz": 0}, missing=0)
    assert with_zeros == compare_categorical_counts(profile, {"a": 2}, missing=0)


def test_rejects_empty_and_negative_windows() -> None:
    profile = CategoricalProfile(n=1, missing=0, counts={"a": 1}, max_categories=5)
    with pytest.raises(ValueError, match="no non-missing"):
        compare_categorical(profile, [None])
    with pytest.raises(ValueError, match=">= 0"):
        compare_categorical_counts(profile, {"a": -1}, missing=0)
    with pytest.raises(ValueError, match=">= 0"):
        compare_categorical_counts(profile, {"a": 1}, missing=-1)
