"""PSI: hand-computed answers, the empty-bin floor, and the right-closed numeric bins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.stats import MISSING_EPSILON, PSI_EPSILON, compare_numeric, profile_numeric
from monitor.stats.psi import population_stability_index, sorted_bin_counts


def test_epsilon_is_documented_value() -> None:
    assert PSI_EPSILON == MISSING_EPSILON == 1e-4


def test_psi_worked_by_hand() -> None:
    # reference proportions 0.4 0.3 0.2 0.1; current 0.25 each
    #   (0.25-0.4) ln(0.25/0.4) = -0.15 * -0.470004 = 0.070501
    #   (0.25-0.3) ln(0.25/0.3) = -0.05 * -0.182322 = 0.009116
    #   (0.25-0.2) ln(0.25/0.2) =  0.05 *  0.223144 = 0.011157
    #   (0.25-0.1) ln(0.25/0.1) =  0.15 *  0.916291 = 0.137444
    #                                           sum = 0.228217
    psi = population_stability_index(np.array([40, 30, 20, 10]), np.array([25, 25, 25, 25]))
    assert psi == pytest.approx(0.228217, abs=1e-6)
    expected = sum(
        (c - r) * math.log(c / r) for r, c in [(0.4, 0.25), (0.3, 0.25), (0.2, 0.25), (0.1, 0.25)]
    )
    assert psi == pytest.approx(expected, abs=1e-12)


def test_empty_bins_are_floored_at_epsilon_without_renormalising() -> None:
    # reference (0.5, 0.5, 0); current (0, 0.5, 0.5): the zeros become 1e-4, nothing else moves
    psi = population_stability_index(np.array([5, 5, 0]), np.array([0, 3, 3]))
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.0 + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert psi == pytest.approx(expected, rel=1e-12)
    assert psi == pytest.approx(2 * 0.4999 * math.log(5000), rel=1e-12)


def test_small_nonzero_proportions_are_not_floored() -> None:
    # current proportion 1/100_000 < epsilon is used as is
    psi = population_stability_index(np.array([1, 1]), np.array([1, 99_999]))
    c0, c1 = 1e-5, 0.99999
    expected = (c0 - 0.5) * math.log(c0 / 0.5) + (c1 - 0.5) * math.log(c1 / 0.5)
    assert psi == pytest.approx(expected, rel=1e-12)


def test_identical_proportions_give_exactly_zero() -> None:
    assert population_stability_index(np.array([3, 0, 7]), np.array([30, 0, 70])) == 0.0


def test_bins_are_right_closed() -> None:
    values = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 9.0])
    assert sorted_bin_counts(values, np.array([2.0, 5.0])).tolist() == [3, 3, 1]
    assert sorted_bin_counts(values, np.array([0.5])).tolist() == [0, 7]


def test_numeric_psi_by_hand_through_compare() -> None:
    # reference 1..10 with bins=2 -> edge at the median 5: bins (-inf, 5], (5, inf) = (0.5, 0.5)
    # current: 5, 5, 6 -> 5 sits on the edge and goes to the lower bin: (2/3, 1/3)
    profile = profile_numeric(np.arange(1.0, 11.0), bins=2)
    assert profile.psi_edges.tolist() == [5.0]
    drift = compare_numeric(profile, np.array([5.0, 5.0, 6.0]))
    expected = (2 / 3 - 0.5) * math.log((2 / 3) / 0.5) + (1 / 3 - 0.5) * math.log((1 / 3) / 0.5)
    assert drift.psi == pytest.approx(expected, rel=1e-12)
    assert drift.psi == pytest.approx(0.1155245, abs=1e-7)


def test_heavy_ties_merge_edges_and_leave_no_empty_reference_bin() -> None:
    reference = np.array([0.0] * 80 + [1.0] * 15 + [2.0] * 5)
    profile = profile_numeric(reference, bins=10)
    # deciles (values at sorted positions 9, 19, ..., 89) are 0 eight times, then 1
    assert profile.psi_edges.tolist() == [0.0, 1.0]
    assert sorted_bin_counts(profile.sorted_values, profile.psi_edges).tolist() == [80, 15, 5]


def test_edges_equal_to_the_maximum_are_dropped() -> None:
    # every decile of 5 zeros and 95 ones is 1, the maximum: one bin, which holds everything
    profile = profile_numeric(np.array([0.0] * 5 + [1.0] * 95), bins=10)
    assert profile.psi_edges.size == 0
    assert compare_numeric(profile, np.array([0.0, 0.0])).psi == 0.0
