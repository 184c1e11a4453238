"""Reference profiles: invariants, quantile definition, folding, binary round trips."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats import (
    OTHER,
    CategoricalProfile,
    NumericProfile,
    profile_categorical,
    profile_numeric,
)
from monitor.stats.psi import sorted_bin_counts

Floats = npt.NDArray[np.float64]
Mutation = Callable[[bytes], bytes]

values_with_missing = st.one_of(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300),
    st.lists(st.integers(-2, 2).map(float), min_size=1, max_size=300),
    st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.5, -3.25, float("nan")]), min_size=1, max_size=300),
).map(lambda values: np.array(values, dtype=np.float64))


@settings(max_examples=150, deadline=None)
@given(
    values=values_with_missing,
    bins=st.integers(1, 20),
    grid_size=st.integers(1, 300),
)
def test_numeric_profile_invariants(values: Floats, bins: int, grid_size: int) -> None:
    present = values[~np.isnan(values)]
    if present.size == 0:
        with pytest.raises(ValueError, match="no non-missing"):
            profile_numeric(values, bins=bins, grid_size=grid_size)
        return
    profile = profile_numeric(values, bins=bins, grid_size=grid_size)
    assert profile.n == present.size
    assert profile.missing == values.size - present.size
    assert np.array_equal(profile.sorted_values, np.sort(present))
    assert np.all(np.diff(profile.psi_edges) > 0) and np.all(np.diff(profile.grid) > 0)
    assert np.all(np.isin(profile.psi_edges, profile.grid))
    assert np.all(np.isin(profile.grid, present))
    assert profile.grid[0] == present.min() and profile.grid[-1] == present.max()
    assert np.all(profile.psi_edges < present.max())
    assert profile.psi_edges.size <= bins - 1
    reference_counts = sorted_bin_counts(profile.sorted_values, profile.psi_edges)
    assert np.all(reference_counts > 0)  # no empty reference bin, by construction
    assert profile.mean == pytest.approx(float(np.mean(present)), rel=1e-9, abs=1e-9)
    assert profile.std == pytest.approx(float(np.std(present)), rel=1e-9, abs=1e-9)
    assert not profile.sorted_values.flags.writeable


@settings(max_examples=100, deadline=None)
@given(values=values_with_missing, bins=st.integers(2, 12))
def test_edges_are_numpy_inverted_cdf_quantiles(values: Floats, bins: int) -> None:
    present = values[~np.isnan(values)]
    if present.size == 0:
        return
    profile = profile_numeric(values, bins=bins)
    quantiles = np.quantile(present, np.arange(1, bins) / bins, method="inverted_cdf")
    expected = np.unique(quantiles)
    assert np.array_equal(profile.psi_edges, expected[expected < present.max()])


def test_grid_holds_quantiles_and_psi_edges() -> None:
    values = np.arange(1.0, 101.0)
    profile = profile_numeric(values, bins=3, grid_size=4)
    # quarters: 1, 25, 50, 75, 100; thirds: 34, 67 (ceil(100 i / 3)-th value)
    assert profile.grid.tolist() == [1.0, 25.0, 34.0, 50.0, 67.0, 75.0, 100.0]
    assert profile.psi_edges.tolist() == [34.0, 67.0]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([np.nan, np.nan]), "no non-missing"),
        (np.array([], dtype=np.float64), "no non-missing"),
        (np.array([1.0, np.inf]), "infinite"),
        (np.array([[1.0, 2.0]]), "1-D"),
    ],
)
def test_numeric_profile_rejects_bad_input(values: Floats, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        profile_numeric(values)


def test_numeric_profile_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="bins"):
        profile_numeric(np.array([1.0]), bins=0)
    with pytest.raises(ValueError, match="grid_size"):
        profile_numeric(np.array([1.0]), grid_size=0)


def test_constructor_checks_invariants() -> None:
    good = profile_numeric(np.array([1.0, 2.0, 3.0]), bins=2, grid_size=2)
    values, edges, grid = good.sorted_values, good.psi_edges, good.grid
    with pytest.raises(ValueError, match="sorted"):
        NumericProfile(3, 0, values[::-1].copy(), edges, grid, 2.0, 1.0)
    with pytest.raises(ValueError, match="equal len"):
        NumericProfile(4, 0, values, edges, grid, 2.0, 1.0)
    with pytest.raises(ValueError, match="grid"):
        NumericProfile(3, 0, values, edges, np.array([1.0, 2.5, 3.0]), 2.0, 1.0)
    with pytest.raises(ValueError, match="psi_edges"):
        NumericProfile(3, 0, values, np.array([3.0]), grid, 2.0, 1.0)
    with pytest.raises(ValueError, match="float64"):
        NumericProfile(3, 0, values.astype(np.float32), edges, grid, 2.0, 1.0)


@settings(max_examples=100, deadline=None)
@given(values=values_with_missing, bins=st.integers(1, 12), grid_size=st.integers(1, 50))
def test_numeric_round_trip(values: Floats, bins: int, grid_size: int) -> None:
    if np.isnan(values).all():
        return
    profile = profile_numeric(values, bins=bins, grid_size=grid_size)
    data = profile.to_bytes()
    restored = NumericProfile.from_bytes(data)
    assert restored == profile
    assert restored.to_bytes() == data
    assert (restored.mean, restored.std) == (profile.mean, profile.std)
    assert restored.sorted_values.dtype == np.float64


def test_numeric_bytes_are_compact_and_versioned() -> None:
    profile = profile_numeric(np.arange(1000.0), bins=10, grid_size=100)
    data = profile.to_bytes()
    assert data[:4] == b"DMNP" and struct.unpack_from("<H", data, 4) == (1,)
    arrays = profile.n + profile.psi_edges.size + profile.grid.size
    assert len(data) == 56 + 8 * arrays


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda data: data[:20], "truncated"),
        (lambda data: b"XXXX" + data[4:], "not a"),
        (lambda data: data[:4] + struct.pack("<H", 2) + data[6:], "version 2"),
        (lambda data: data + b"\0", "lengths"),
        (lambda data: data[:-8], "lengths"),
        # swap the first two sorted values: the blob parses but is not sorted
        (lambda data: data[:56] + data[64:72] + data[56:64] + data[72:], "sorted"),
    ],
)
def test_numeric_from_bytes_rejects_corrupt_data(mutate: Mutation, message: str) -> None:
    data = profile_numeric(np.array([1.0, 2.0, 3.0, 4.0]), bins=2).to_bytes()
    with pytest.raises(ValueError, match=message):
        NumericProfile.from_bytes(mutate(data))


def test_profiles_compare_by_value() -> None:
    a = profile_numeric(np.array([1.0, 2.0, 3.0]))
    b = profile_numeric(np.array([3.0, 1.0, 2.0, np.nan]))
    assert a != b  # the missing count differs
    assert a == profile_numeric(np.array([2.0, 3.0, 1.0]))
    assert a != "profile"


def test_categorical_profile_folds_rare_categories_with_ties_by_name() -> None:
    values = ["d"] * 5 + ["b"] * 3 + ["a"] * 3 + ["c"] * 3 + ["e"] + [None] * 2
    profile = profile_categorical(values, max_categories=3)
    assert list(profile.counts.items()) == [("d", 5), ("a", 3), ("b", 3), (OTHER, 4)]
    assert (profile.n, profile.missing, profile.max_categories) == (15, 2, 3)


def test_categorical_profile_without_folding_has_no_other() -> None:
    profile = profile_categorical(["x", "y", "x"], max_categories=2)
    assert profile.counts == {"x": 2, "y": 1}


def test_category_named_other_shares_the_other_bin_when_folding() -> None:
    profile = profile_categorical([OTHER, "a", "a", "b", "c"], max_categories=1)
    assert profile.counts == {"a": 2, OTHER: 3}


def test_categorical_profile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no non-missing"):
        profile_categorical([None, None])
    with pytest.raises(ValueError, match="max_categories"):
        profile_categorical(["a"], max_categories=0)
    with pytest.raises(ValueError, match="sum of counts"):
        CategoricalProfile(n=3, missing=0, counts={"a": 2}, max_categories=5)


categories = st.lists(
    st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["a", "b", "é", "", OTHER])),
    min_size=1,
    max_size=100,
)


@settings(max_examples=150, deadline=None)
@given(values=categories, max_categories=st.integers(1, 8))
def test_categorical_round_trip_and_invariants(
    values: list[str | None], max_categories: int
) -> None:
    if all(value is None for value in values):
        return
    profile = profile_categorical(values, max_categories=max_categories)
    assert profile.n == sum(value is not None for value in values)
    assert profile.missing == values.count(None)
    assert sum(profile.counts.values()) == profile.n
    assert len(profile.counts) <= max_categories + 1
    restored = CategoricalProfile.from_bytes(profile.to_bytes())
    assert restored == profile
    assert list(restored.counts) == list(profile.counts)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda data: data[:10], "truncated"),
        (lambda data: b"DMNP" + data[4:], "not a"),
        (lambda data: data + b"x", "name lengths"),
        (lambda data: data[:-1], "name lengths"),
    ],
)
def test_categorical_from_bytes_rejects_corrupt_data(mutate: Mutation, message: str) -> None:
    data = profile_categorical(["a", "bb", "a"]).to_bytes()
    with pytest.raises(ValueError, match=message):
        CategoricalProfile.from_bytes(mutate(data))
