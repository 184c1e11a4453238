"""KS on the exact path equals scipy.stats.ks_2samp; the cheap p-value paths are provably close."""

from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import numpy.typing as npt
import pytest
import scipy.stats
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from monitor.stats import compare_numeric, profile_numeric
from monitor.stats import ks as ks_module
from monitor.stats._scipy import attempt_exact_2kssamp
from monitor.stats.ks import (
    NEGLIGIBLE_P,
    ks_asymptotic_pvalue,
    ks_pvalue,
    permutation_tail_bound,
)
from monitor.stats.smirnov import in_series_band

Floats = npt.NDArray[np.float64]


def scipy_ks(reference: Floats, current: Floats) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's exact -> asymp fallback notice
        result = scipy.stats.ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


def assert_matches_scipy(reference: Floats, current: Floats) -> None:
    drift = compare_numeric(profile_numeric(reference), current)
    statistic, p_value = scipy_ks(reference, current)
    assert abs(drift.ks_statistic - statistic) <= 1e-9
    assert abs(drift.ks_pvalue - p_value) <= 1e-9


def draw(rng: np.random.Generator, scenario: str, size: int, *, current: bool) -> Floats:
    if scenario == "same":
        return rng.normal(size=size)
    if scenario == "small_shift":
        return rng.normal(loc=0.03 if current else 0.0, size=size)
    if scenario == "moderate_shift":
        return rng.normal(loc=0.15 if current else 0.0, size=size)
    if scenario == "large_shift":
        return rng.normal(loc=1.0 if current else 0.0, size=size)
    if scenario == "scale":
        return rng.normal(scale=1.5 if current else 1.0, size=size)
    if scenario == "ties":
        return rng.integers(0, 6 if current else 5, size=size).astype(np.float64)
    if scenario == "rounded":
        return np.round(rng.normal(loc=0.1 if current else 0.0, size=size), 1)
    raise AssertionError(scenario)


SCENARIOS = ["same", "small_shift", "moderate_shift", "large_shift", "scale", "ties", "rounded"]
SIZES = [
    (1, 1),
    (1, 7),
    (3, 2),
    (10, 10),
    (50, 7),
    (101, 100),
    (999, 1000),
    (4_000, 3_000),
    (9_999, 10_000),
    (10_000, 10_000),
    (10_000, 10_001),
    (10_001, 9_999),
    (20_000, 500),
    (500, 20_000),
]


@pytest.mark.parametrize(("n_reference", "n_current"), SIZES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_matches_scipy_on_seeded_cases(n_reference: int, n_current: int, scenario: str) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{n_reference}/{n_current}/{scenario}".encode()))
    reference = draw(rng, scenario, n_reference, current=False)
    current = draw(rng, scenario, n_current, current=True)
    assert_matches_scipy(reference, current)


@pytest.mark.parametrize("scenario", ["same", "small_shift", "large_shift", "ties"])
def test_matches_scipy_at_100k(scenario: str) -> None:
    rng = np.random.default_rng(len(scenario))
    assert_matches_scipy(
        draw(rng, scenario, 100_000, current=False), draw(rng, scenario, 100_000, current=True)
    )


samples = st.one_of(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60),
    st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=60),
).map(lambda values: np.array(values, dtype=np.float64))


@settings(max_examples=400, deadline=None)
@given(reference=samples, current=samples)
def test_matches_scipy_on_random_small_samples(reference: Floats, current: Floats) -> None:
    assert_matches_scipy(reference, current)


@settings(max_examples=150, deadline=None)
@given(
    n_reference=st.integers(1, 200),
    n_current=st.integers(1, 200),
    fraction=st.floats(0.0, 1.0),
)
def test_tail_bound_is_above_the_exact_probability(
    n_reference: int, n_current: int, fraction: float
) -> None:
    gcd = math.gcd(n_reference, n_current)
    lcm = n_reference // gcd * n_current
    h = max(1, round(fraction * lcm))
    success, _, exact = attempt_exact_2kssamp(n_reference, n_current, gcd, h / lcm)
    assume(success)  # scipy gives up (p > 1 by rounding) for some h ~ 1 with equal sizes
    assert permutation_tail_bound(n_reference, n_current, h) >= exact * (1 - 1e-9)


def test_tail_bound_is_small_enough_to_matter() -> None:
    # 10_000 vs 1_000 values at D = 0.2: exact p ~ 3e-32, scipy's exact routine takes ~20 ms.
    assert permutation_tail_bound(10_000, 1_000, 2_000 * 10) < NEGLIGIBLE_P


def test_cheap_path_skips_the_exact_routine_and_stays_within_1e9(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=9_000)
    current = rng.normal(loc=0.5, size=2_000)
    expected_statistic, expected_p = scipy_ks(reference, current)

    def refuse(*args: object) -> tuple[bool, float, float]:
        raise AssertionError("the exact routine should not run when p is provably negligible")

    monkeypatch.setattr(ks_module, "attempt_exact_2kssamp", refuse)
    drift = compare_numeric(profile_numeric(reference), current)
    assert expected_p < 1e-10
    assert drift.ks_statistic == expected_statistic
    assert abs(drift.ks_pvalue - expected_p) <= 1e-9


def test_equal_sizes_use_scipy_exact_routine_bit_for_bit() -> None:
    rng = np.random.default_rng(4)
    reference = rng.normal(size=300)
    current = rng.normal(loc=0.4, size=300)
    drift = compare_numeric(profile_numeric(reference), current)
    assert (drift.ks_statistic, drift.ks_pvalue) == scipy_ks(reference, current)


@settings(max_examples=100, deadline=None)
@given(
    statistic=st.floats(0.0, 1.0),
    n_reference=st.integers(1, 30_000),
    n_current=st.integers(1, 30_000),
)
def test_asymptotic_pvalue_is_kstwo_or_provably_negligible(
    statistic: float, n_reference: int, n_current: int
) -> None:
    larger, smaller = sorted((float(n_reference), float(n_current)), reverse=True)
    n_effective = max(float(np.round(larger * smaller / (larger + smaller))), 1.0)
    expected = float(np.clip(scipy.stats.kstwo.sf(statistic, n_effective), 0.0, 1.0))
    ours = ks_asymptotic_pvalue(statistic, n_reference=n_reference, n_current=n_current)
    negligible = 2.0 * math.exp(-2.0 * n_effective * statistic**2) < NEGLIGIBLE_P
    if negligible or in_series_band(int(n_effective), statistic):
        assert abs(ours - expected) <= 1e-9
    else:  # SciPy's own kstwo.sf, called
        assert ours == expected


def test_pvalue_switches_to_asymptotic_above_10000() -> None:
    statistic, p_value = ks_pvalue(0.012, n_reference=10_001, n_current=20_000)
    en = 10_001 * 20_000 / 30_001
    assert statistic == 0.012
    assert p_value == float(scipy.stats.kstwo.sf(0.012, np.round(en)))


def test_exact_path_rounds_statistic_to_the_lattice_like_scipy() -> None:
    statistic, _ = ks_pvalue(1 / 3 + 1e-13, n_reference=3, n_current=6)
    assert statistic == 2 / 6
