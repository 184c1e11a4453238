"""The no-drift levels of ``monitor.stats.null_levels`` against simulation with independent
implementations (numpy PSI as docs/drift.md defines it, scipy's ks_2samp, jensenshannon and
wasserstein_distance, numpy binomial draws): windows drawn from the reference's distribution
pass the level at ``alpha`` in about ``alpha`` of the draws. Seeded, so each rate is a fixed
number; the bounds are the large-sample approximation's error plus about three binomial
standard errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats

from monitor.stats import null_levels

DRAWS = 2_000


def deciles(reference: np.ndarray) -> np.ndarray:
    edges = np.unique(np.quantile(reference, np.arange(1, 10) / 10, method="inverted_cdf"))
    return edges[edges < reference.max()]


def proportions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / counts.sum()


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    r = np.where(reference == 0, 1e-4, reference)
    c = np.where(current == 0, 1e-4, current)
    return float(np.sum((c - r) * np.log(c / r)))


def rate(values: list[float], level: float, *, above: bool = True) -> float:
    array = np.asarray(values)
    return float(np.mean(array >= level if above else array <= level))


@pytest.mark.parametrize(("n", "m"), [(300, 5_000), (1_000, 1_000)])
def test_psi_and_jensen_shannon_levels(n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    psis, distances = [], []
    for _ in range(DRAWS):
        reference = rng.normal(size=m)
        edges = deciles(reference)
        r, c = proportions(reference, edges), proportions(rng.normal(size=n), edges)
        psis.append(psi(r, c))
        distances.append(float(scipy.spatial.distance.jensenshannon(r, c, base=2)))
    for alpha in (0.05, 0.01):
        level = null_levels.psi_level(alpha, bins=10, n=n, m=m)
        assert rate(psis, level) == pytest.approx(alpha, abs=0.4 * alpha + 0.004)
        level = null_levels.jensen_shannon_level(alpha, bins=10, n=n, m=m)
        assert rate(distances, level) == pytest.approx(alpha, abs=0.4 * alpha + 0.004)


def test_ks_statistic_level() -> None:
    rng = np.random.default_rng(3)
    n, m = 400, 2_000
    statistics = [
        scipy.stats.ks_2samp(rng.normal(size=m), rng.normal(size=n)).statistic for _ in range(DRAWS)
    ]
    for alpha in (0.05, 0.01):
        level = null_levels.ks_statistic_level(alpha, n=n, m=m)
        assert rate(statistics, level) == pytest.approx(alpha, abs=0.4 * alpha + 0.004)


def test_wasserstein_level() -> None:
    rng = np.random.default_rng(4)
    n, m = 400, 4_000
    reference = rng.exponential(size=m)  # skewed: the law depends on the shape
    probabilities = np.arange(0, 1001) / 1000  # 0 and 1: the minimum and the maximum
    grid = np.quantile(reference, probabilities)
    mean, variance = null_levels.wasserstein_scale(
        grid, probabilities, normals=np.random.default_rng(1).standard_normal
    )
    distances = [
        scipy.stats.wasserstein_distance(rng.exponential(size=m), rng.exponential(size=n))
        for _ in range(DRAWS)
    ]
    for alpha in (0.05, 0.01):
        level = null_levels.wasserstein_level(alpha, mean=mean, variance=variance, n=n, m=m)
        assert rate(distances, level) == pytest.approx(alpha, abs=0.5 * alpha + 0.004)


def test_proportion_level() -> None:
    rng = np.random.default_rng(5)
    p, n = 0.9, 500
    accuracies = rng.binomial(n, p, size=20_000) / n
    for alpha in (0.05, 0.01, 0.001):
        level = null_levels.proportion_level(alpha, p=p, n=n, m=None)
        # at most alpha (a binomial count cannot hit it exactly), and the next count above
        assert rate(accuracies, level, above=False) <= alpha * 1.1
        assert scipy.stats.binom.cdf(round(level * n) + 1, n, p) > alpha
        assert scipy.stats.binom.cdf(round(level * n), n, p) <= alpha


def test_pvalues_and_bad_arguments() -> None:
    assert null_levels.pvalue_level(0.003) == 0.003
    with pytest.raises(ValueError, match="alpha"):
        null_levels.psi_level(0.0, bins=10, n=10, m=None)
    with pytest.raises(ValueError, match="n must be positive"):
        null_levels.effective_n(0, 10)


def test_simulated_psi_and_jensen_shannon_laws_match_numpys_multinomial() -> None:
    """``simulate_binned`` against an independent simulation (numpy's multinomial, another
    seed), over Zipf-like categories with a rare one (expected about once a window), where
    the chi-square level is far too low: the levels at 1 % and 0.1 % agree within the draws'
    error, and independent windows reach them about as often as planned."""
    p = np.array([0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.04, 0.03, 0.02, 0.01, 0.007, 0.003])
    n, m = 360, 10_000
    psi = null_levels.simulate_binned(
        p, n=n, m=m, binomial=np.random.default_rng(1).binomial, draws=200_000
    )
    js = null_levels.simulate_binned(
        p,
        n=n,
        m=m,
        binomial=np.random.default_rng(3).binomial,
        draws=200_000,
        statistic="jensen_shannon",
    )
    rng = np.random.default_rng(2)
    current = rng.multinomial(n, p, size=200_000) / n
    reference = rng.multinomial(m, p, size=200_000) / m
    floored_c = np.where(current == 0, 1e-4, current)
    floored_r = np.where(reference == 0, 1e-4, reference)
    independent_psi = np.sum((floored_c - floored_r) * np.log(floored_c / floored_r), axis=1)
    independent_js = np.array(
        [
            scipy.spatial.distance.jensenshannon(r, c, base=2)
            for r, c in zip(reference[:20_000], current[:20_000], strict=True)
        ]
    )
    for alpha in (0.01, 0.001):
        level = null_levels.level_from_draws(psi, alpha)
        assert level is not None
        assert np.mean(independent_psi >= level) == pytest.approx(alpha, rel=0.25)
        assert level > null_levels.psi_level(alpha, bins=len(p), n=n, m=m)
    level = null_levels.level_from_draws(js, 0.01)
    assert level is not None
    assert np.mean(independent_js >= level) == pytest.approx(0.01, rel=0.3)
    kept = psi[:2000]
    assert null_levels.level_from_draws(kept, 0.5, draws=200_000) is None  # beyond the kept
    assert null_levels.chance_from_draws(kept, float(kept[-1]) / 2, draws=200_000) is None


@pytest.mark.parametrize("skew", [-2.0, -0.6, -0.2, 0.0, 0.3, 0.6, 5.0])
@pytest.mark.parametrize("alpha", [1e-6, 1e-3, 0.2])
@pytest.mark.parametrize("lower", [True, False])
def test_the_skewed_normal_chance_inverts_its_level(skew: float, alpha: float, lower: bool) -> None:
    """The Cornish-Fisher level and its chance are inverses, and with no skewness they are
    scipy's normal quantile and tail."""
    level = null_levels.skewed_normal_level(alpha, mean=1.0, sd=2.0, skew=skew, lower=lower)
    chance = null_levels.skewed_normal_chance(level, mean=1.0, sd=2.0, skew=skew, lower=lower)
    assert chance == pytest.approx(alpha, rel=1e-9)
    if skew == 0.0:
        expected = scipy.stats.norm.ppf(alpha if lower else 1 - alpha, loc=1.0, scale=2.0)
        assert level == pytest.approx(expected, rel=1e-9)
