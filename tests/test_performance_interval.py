"""The Wilson score interval against published values and an independent derivation."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from monitor.stats.performance import CONFIDENCE, proportion, wilson_interval


def score_test_roots(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson interval by its definition, not its closed form: the roots in ``p0`` of
    ``(p - p0)^2 = z^2 p0 (1 - p0) / n``, i.e. of ``a p0^2 - b p0 + c = 0`` with
    ``a = 1 + z^2/n``, ``b = 2p + z^2/n``, ``c = p^2``, solved in 60-digit decimals (the roots
    nearly coincide for large ``n``, where float64 loses them to cancellation)."""
    with localcontext() as context:
        context.prec = 60
        z2_n = Decimal(norm.ppf((1 + confidence) / 2)) ** 2 / n
        p = Decimal(successes) / n
        a, b, c = 1 + z2_n, 2 * p + z2_n, p * p
        root = (b * b - 4 * a * c).sqrt()
        return float((b - root) / (2 * a)), float((b + root) / (2 * a))


# Newcombe (1998), Table I, method 3 (Wilson score, no continuity correction), 95%. Recomputed
# independently from the closed form with z = 1.959963984540054 before being written here:
#   81/263 -> 0.2552885, 0.3662096    15/148 -> 0.0623864, 0.1604872
#    0/20  -> 0.0,       0.1611252     1/29  -> 0.0061132, 0.1717552
NEWCOMBE = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize(("successes", "n", "lower", "upper"), NEWCOMBE)
def test_newcombe_1998_worked_examples(successes: int, n: int, lower: float, upper: float) -> None:
    low, high = wilson_interval(successes=successes, n=n)
    assert round(low, 4) == lower and round(high, 4) == upper


def test_hand_computed_value() -> None:
    # 8/10 at 95%: z^2/n = 0.384146, centre = (0.8 + 0.192073) / 1.384146 = 0.716740,
    # half-width = 1.959964 / 1.384146 * sqrt(0.016 + 0.00960365) = 0.226578.
    z = 1.959963984540054
    assert norm.ppf(0.975) == pytest.approx(z, abs=1e-15)
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    low, high = wilson_interval(successes=8, n=10)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-15)
    assert (low, high) == pytest.approx((0.490162, 0.943318), abs=1e-6)


def test_extremes_are_exact() -> None:
    assert wilson_interval(successes=0, n=7)[0] == 0.0
    assert wilson_interval(successes=7, n=7)[1] == 1.0
    # At the extremes the other bound is n / (n + z^2) from the closed form.
    z2 = norm.ppf(0.975) ** 2
    assert wilson_interval(successes=7, n=7)[0] == pytest.approx(7 / (7 + z2), rel=1e-14)
    assert wilson_interval(successes=0, n=7)[1] == pytest.approx(z2 / (7 + z2), rel=1e-14)


def test_higher_confidence_is_wider() -> None:
    low95, high95 = wilson_interval(successes=30, n=50)
    low99, high99 = wilson_interval(successes=30, n=50, confidence=0.99)
    assert low99 < low95 < 0.6 < high95 < high99
    assert CONFIDENCE == 0.95


def test_thin_sample_interval_covers_a_real_drop() -> None:
    # 8/10 does not rule out the reference accuracy of 0.93; 800/1000 does.
    assert proportion(successes=8, n=10).upper > 0.93
    assert proportion(successes=800, n=1000).upper < 0.93


@pytest.mark.parametrize(
    ("successes", "n", "confidence"),
    [(0, 0, 0.95), (-1, 5, 0.95), (6, 5, 0.95), (1, 5, 0.0), (1, 5, 1.0), (1, 5, 1.5)],
)
def test_invalid_input_is_refused(successes: int, n: int, confidence: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(successes=successes, n=n, confidence=confidence)


@settings(max_examples=300, deadline=None)
@given(
    data=st.integers(1, 10**7).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    confidence=st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99, 0.999]),
)
def test_interval_is_the_score_test_inversion(data: tuple[int, int], confidence: float) -> None:
    successes, n = data
    result = proportion(successes=successes, n=n, confidence=confidence)
    assert 0.0 <= result.lower <= result.value <= result.upper <= 1.0
    assert result.value == successes / n and (result.successes, result.n) == (successes, n)
    low, high = score_test_roots(successes, n, confidence)
    assert result.lower == pytest.approx(low, abs=1e-12)
    assert result.upper == pytest.approx(high, abs=1e-12)
