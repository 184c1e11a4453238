"""The vectorised one-sided KS tail against SciPy's, over the band where ``kstwo.sf`` uses it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats

from monitor.stats.ks import ks_asymptotic_pvalue
from monitor.stats.smirnov import MAX_N, in_series_band, smirnov


def band_points(count: int, seed: int, largest: int) -> list[tuple[int, float]]:
    rng = np.random.default_rng(seed)
    points = []
    while len(points) < count:
        n = int(rng.integers(141, largest + 1))
        x = math.sqrt(float(rng.uniform(2.2, 370.0 if rng.random() < 0.2 else 30.0)) / n)
        if in_series_band(n, x):
            points.append((n, x))
    return points


@pytest.mark.parametrize(
    ("n", "x"),
    [*band_points(60, seed=1, largest=200_000), *band_points(6, seed=2, largest=MAX_N)],
)
def test_smirnov_equals_scipy_to_1e_9(n: int, x: float) -> None:
    ours, theirs = smirnov(n, x), float(scipy.special.smirnov(n, x))
    assert abs(ours - theirs) < 1e-10
    if theirs > 1e-250:
        assert ours == pytest.approx(theirs, rel=1e-8)


def test_the_band_is_where_scipy_doubles_smirnov() -> None:
    """Inside the band ``kstwo.sf`` equals ``2 * smirnov`` exactly; just outside it does not
    (it sums another series), so the band's edges are SciPy's."""
    n = 50_000
    inside = math.sqrt(2.2 / n) * (1 + 1e-9)
    outside = math.sqrt(2.2 / n) * (1 - 1e-3)
    assert in_series_band(n, inside) and not in_series_band(n, outside)
    assert scipy.stats.kstwo.sf(inside, n) == 2 * scipy.special.smirnov(n, inside)
    assert scipy.stats.kstwo.sf(outside, n) != 2 * scipy.special.smirnov(n, outside)
    assert not in_series_band(140, 0.2) and not in_series_band(MAX_N + 1, 0.003)


@pytest.mark.parametrize(("n_reference", "n_current"), [(100_000, 100_000), (20_000, 50_000)])
def test_ks_pvalues_in_the_band_equal_ks_2samp(n_reference: int, n_current: int) -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=n_reference)
    en = round(n_reference * n_current / (n_reference + n_current))
    in_band = 0
    for shift in (0.015, 0.02, 0.03, 0.04):
        current = rng.normal(shift, 1.0, size=n_current)
        expected = scipy.stats.ks_2samp(reference, current)
        p = ks_asymptotic_pvalue(
            float(expected.statistic), n_reference=n_reference, n_current=n_current
        )
        assert abs(p - expected.pvalue) < 1e-9, (shift, p, expected.pvalue)
        in_band += in_series_band(en, float(expected.statistic))
    assert in_band >= 2
