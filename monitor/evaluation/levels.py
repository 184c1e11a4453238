"""``auto`` threshold levels: derived from the model's false-alarm budget, resolved for the
window's actual size at each evaluation.

A model with ``calibration: {false_alarms_per_week: B}`` may give a level as ``auto``. The
levels are set so that, when the current data come from the reference's distribution, the
expected number of firing alerts of the model per week, over all its ``auto`` rules (the
family: every covered feature, the prediction and the label, times every statistic), stays
within ``B`` (critical; warning levels get ``10 B`` unless set as numbers):

* Each evaluation tests every member of the family. A firing needs ``alerts.for`` consecutive
  breaching evaluations of its alert, and an alert fires again only after it resolved, so the
  firings of a week are at most its breaches divided by ``alerts.for``. With ``E`` evaluations a
  week (``7 d / schedule``) and ``F`` tests, a chance ``alpha = B * for / (E * F)`` per test
  keeps the expected firings within ``B``. This counts every evaluation as a fresh chance: with
  overlapping windows (a window longer than the schedule) consecutive tests are correlated and
  the true rate is lower; the budget is an upper bound, not a target.
* Each statistic's level at ``alpha`` is its no-drift quantile for the window's ``n`` and the
  reference's ``m`` (``stats.null_levels``): PSI and Jensen-Shannon from their exact law,
  simulated over the reference's bins or categories (``binned_draws``), the KS statistic from
  Kolmogorov's law, p-values at ``alpha`` itself, Wasserstein from a Brownian bridge on the
  reference's quantiles, accuracy and the missing-value ratio from the binomial law around the
  reference's own value, and the other performance metrics from the reference's labelled
  predictions resampled into windows of the size (``resampled_moments``; a skewness-corrected
  normal quantile). A level depending on ``n`` is resolved again at every evaluation for the
  ``n`` it sees.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.config import ModelConfig, ThresholdConfig
from monitor.stats import CategoricalProfile, NumericProfile, null_levels
from monitor.stats.performance import Calibration
from monitor.stats.performance.null import (
    CLASSIFICATION,
    REGRESSION,
    SCORED,
    LabelledSample,
    resampled_metrics,
)
from monitor.stats.psi import sorted_bin_counts
from monitor.thresholds import LOWER_IS_WORSE

WEEK_SECONDS = 7 * 86_400.0
#: warning levels' budget, as a multiple of the critical one, when both are ``auto``
WARNING_FACTOR = 10.0
#: the largest chance per test an ``auto`` level may take
MAX_ALPHA = 0.5
#: statistics of each kind of column that an ``auto`` rule tests
NUMERIC = frozenset(
    {
        "psi",
        "ks_statistic",
        "ks_pvalue",
        "wasserstein",
        "wasserstein_normalized",
        "jensen_shannon",
        "missing_ratio",
    }
)
CATEGORICAL = frozenset({"psi", "chi2_pvalue", "jensen_shannon", "missing_ratio"})
#: performance metrics whose no-drift law is the reference's labelled predictions resampled
RESAMPLED = frozenset(CLASSIFICATION + SCORED + REGRESSION + ("estimated_accuracy",)) - {"accuracy"}
MODEL_LEVEL = RESAMPLED | {"accuracy"}
#: draws of each resampled law: up to ``MAX_DRAWS``, fewer for large windows (the cost of a
#: draw grows with its size), never fewer than ``MIN_DRAWS``
MAX_DRAWS = 4_000
MIN_DRAWS = 1_000
DRAWN_PAIRS = 4_000_000
PREDICTION = "__prediction__"
LABEL = "__label__"
#: The outputs an ``auto`` missing-value level does not test: every record has a prediction,
#: and a label's missing values are the labels still to come (``label_coverage`` watches
#: those), not a change of the data.
UNTESTED_MISSING = (PREDICTION, LABEL)


@dataclass(frozen=True, slots=True)
class Resolved:
    """An ``auto`` rule's levels as resolved for one evaluation, and the size they are for."""

    warning: float | None
    critical: float | None
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"warning": self.warning, "critical": self.critical, "n": self.n}


def columns(config: ModelConfig) -> list[tuple[str, str]]:
    """(name, kind) of every column a feature rule may test: the features, the prediction and
    the label (tested when the reference has labels and the window is read exactly; counted
    always, so the family is never undercounted)."""
    found: list[tuple[str, str]] = [(f.name, f.type) for f in config.features]
    kind = "numeric" if config.task == "regression" else "categorical"
    found.extend([(PREDICTION, kind), (LABEL, kind)])
    return found


def covered(
    config: ModelConfig, statistic: str, threshold: ThresholdConfig
) -> list[tuple[str, ThresholdConfig]]:
    """(column, its levels) of every test ``statistic``'s rule runs: ``""`` for a model-level
    rule, else each column the rule covers and the statistic applies to."""
    if statistic in MODEL_LEVEL:
        return [("", threshold)]
    found = []
    for name, kind in columns(config):
        levels = threshold.for_feature(name)
        if levels is None or statistic not in (NUMERIC if kind == "numeric" else CATEGORICAL):
            continue
        if statistic == "missing_ratio" and name in UNTESTED_MISSING:
            continue  # see UNTESTED_MISSING
        found.append((name, levels))
    return found


def family(config: ModelConfig) -> dict[str, int]:
    """The number of tests each evaluation runs at each severity with an ``auto`` level."""
    counts = {"warning": 0, "critical": 0}
    for statistic, threshold in config.thresholds.items():
        for _, levels in covered(config, statistic, threshold):
            for severity in counts:
                if getattr(levels, severity) == "auto":
                    counts[severity] += 1
    return counts


def resamples(config: ModelConfig) -> bool:
    """Whether an ``auto`` level of the model resamples the reference's labelled predictions."""
    return any(
        statistic in RESAMPLED and threshold.auto
        for statistic, threshold in config.thresholds.items()
    )


def alphas(config: ModelConfig) -> dict[str, float]:
    """The chance per test of each severity's ``auto`` levels (see the module docstring)."""
    if config.calibration is None:
        return {}
    per_week = WEEK_SECONDS / config.schedule.total_seconds()
    budget = config.calibration.false_alarms_per_week * config.alerts.for_
    found = {}
    for severity, tests in family(config).items():
        if tests:
            scale = WARNING_FACTOR if severity == "warning" else 1.0
            found[severity] = min(MAX_ALPHA, scale * budget / (per_week * tests))
    return found


def level(
    statistic: str,
    alpha: float,
    *,
    n: int,
    profile: NumericProfile | CategoricalProfile | None = None,
    cache: dict[Any, Any] | None = None,
    name: str = "",
    accuracy: tuple[float, int] | None = None,
    labelled: LabelledSample | None = None,
    calibration: Calibration | None = None,
) -> float | None:
    """The level of ``statistic`` at chance ``alpha`` for a window of ``n``; None when it cannot
    be derived (no reference profile, no reference accuracy, no labelled reference)."""
    if statistic in ("ks_pvalue", "chi2_pvalue"):
        return null_levels.pvalue_level(alpha)
    if statistic == "accuracy":
        if accuracy is None or n <= 0:
            return None
        return null_levels.proportion_level(alpha, p=accuracy[0], n=n, m=accuracy[1])
    if statistic in RESAMPLED:
        moments = resampled_moments(labelled, n, cache, calibration).get(statistic)
        if moments is None or not math.isfinite(moments[1]):
            return None
        mean, sd, skew = moments
        lower = statistic in LOWER_IS_WORSE
        return null_levels.skewed_normal_level(alpha, mean=mean, sd=sd, skew=skew, lower=lower)
    if profile is None or n <= 0:
        return None
    if statistic == "missing_ratio":
        if name in UNTESTED_MISSING:
            return None
        total = profile.n + profile.missing
        p = profile.missing / total
        return null_levels.upper_proportion_level(alpha, p=p, n=n, m=total)
    m = profile.n
    if isinstance(profile, CategoricalProfile):
        bins = max(len(profile.counts), 2)
    else:
        bins = len(profile.psi_edges) + 1
    if statistic in ("psi", "jensen_shannon"):
        top, draws = binned_draws(profile, name, n, cache, statistic)
        found = null_levels.level_from_draws(top, alpha, draws=draws)
        if found is not None:  # simulated: the exact law, rare bins included
            return found
        if statistic == "psi":  # a chance too large for the draws kept: chi-square
            return null_levels.psi_level(alpha, bins=bins, n=n, m=m)
        return null_levels.jensen_shannon_level(alpha, bins=bins, n=n, m=m)
    if not isinstance(profile, NumericProfile):
        return None
    if statistic == "ks_statistic":
        return null_levels.ks_statistic_level(alpha, n=n, m=m)
    if statistic in ("wasserstein", "wasserstein_normalized"):
        mean, variance = wasserstein_scale(profile, name, cache)
        found = null_levels.wasserstein_level(alpha, mean=mean, variance=variance, n=n, m=m)
        if statistic == "wasserstein":
            return found
        return found / profile.std if profile.std > 0 else None
    return None


#: Window sizes are simulated on a grid of 4 steps per doubling (19 % apart), each size taken
#: down to its step (a smaller n has higher levels: the level for the step is the safe side).
GRID_STEPS = 4
#: The draws kept of each simulated law: its top 2 %, for chances up to 0.02.
KEPT_SHARE = 0.02


def grid_size(n: int) -> int:
    """``n`` taken down to the simulation grid.

    >>> grid_size(360), grid_size(1000), grid_size(1)
    (304, 861, 1)
    """
    return max(1, math.floor(2 ** (math.floor(GRID_STEPS * math.log2(n)) / GRID_STEPS)))


def binned_draws(
    profile: NumericProfile | CategoricalProfile,
    name: str,
    n: int,
    cache: dict[Any, Any] | None,
    statistic: str,
) -> tuple[Any, int]:
    """The simulated no-drift law of ``statistic`` (PSI or Jensen-Shannon) over the feature's
    bins at the grid size of ``n``: (the top ``KEPT_SHARE`` of the draws, descending; the number
    of draws). Drawn once per reference, feature, statistic and grid size (``cache``), from a
    generator seeded by them, so every replica gets the same levels."""
    size = grid_size(n)
    key = ("binned", name, statistic, size)
    if cache is not None and key in cache:
        return cache[key]  # type: ignore[no-any-return]
    if isinstance(profile, CategoricalProfile):
        counts = np.array(list(profile.counts.values()), dtype=np.float64)
    else:
        counts = sorted_bin_counts(profile.sorted_values, profile.psi_edges).astype(np.float64)
    rng = np.random.default_rng(zlib.crc32(f"{name}:{statistic}:{size}".encode()))
    draws = null_levels.simulate_binned(
        counts / counts.sum(), n=size, m=profile.n, binomial=rng.binomial, statistic=statistic
    )
    kept = max(1, math.ceil(KEPT_SHARE * len(draws)))
    found = (draws[:kept].copy(), len(draws))
    if cache is not None:
        cache[key] = found
    return found


def resampled_moments(
    labelled: LabelledSample | None,
    n: int,
    cache: dict[Any, Any] | None,
    calibration: Calibration | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Mean, standard deviation and skewness of each performance metric over windows of
    ``n_eff`` pairs (``n`` the window's, ``m`` the reference's labelled predictions) resampled
    from the labelled reference, ``n_eff`` taken down to the grid: drawn once per reference and
    grid size (``cache``), from a generator seeded by the size, so every replica gets the same
    levels. Empty without a labelled reference."""
    if labelled is None or n <= 0 or len(labelled) == 0:
        return {}
    size = grid_size(max(1, round(null_levels.effective_n(n, labelled.reference_n))))
    key = ("resampled", size, calibration is not None)
    if cache is not None and key in cache:
        return cache[key]  # type: ignore[no-any-return]
    rng = np.random.default_rng(zlib.crc32(f"performance:{size}".encode()))
    draws = max(MIN_DRAWS, min(MAX_DRAWS, DRAWN_PAIRS // size))
    values = resampled_metrics(
        labelled, n=size, draws=draws, integers=rng.integers, calibration=calibration
    )
    found = {name: null_levels.moments(draws_of) for name, draws_of in values.items()}
    if cache is not None:
        cache[key] = found
    return found


def wasserstein_scale(
    profile: NumericProfile, name: str, cache: dict[Any, Any] | None
) -> tuple[float, float]:
    """The no-drift Wasserstein scale of a numeric profile: simulated once per reference
    (``cache``), from a generator seeded by the feature's name, so it is reproducible."""
    key = ("wasserstein", name)
    if cache is not None and key in cache:
        return cache[key]  # type: ignore[no-any-return]
    probabilities = np.linspace(0.0, 1.0, 1001)
    grid = np.quantile(profile.sorted_values, probabilities)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    found = null_levels.wasserstein_scale(grid, probabilities, normals=rng.standard_normal)
    if cache is not None:
        cache[key] = found
    return found


def resolve(
    config: ModelConfig,
    statistic: str,
    threshold: ThresholdConfig,
    *,
    n: int,
    profile: NumericProfile | CategoricalProfile | None = None,
    cache: dict[Any, Any] | None = None,
    name: str = "",
    accuracy: tuple[float, int] | None = None,
    labelled: LabelledSample | None = None,
    calibration: Calibration | None = None,
) -> tuple[ThresholdConfig, Resolved | None]:
    """``threshold`` with its ``auto`` levels replaced by numbers for a window of ``n`` (an
    ``auto`` level that cannot be derived becomes None: it breaches nothing), and what was
    resolved; ``threshold`` itself and None when it has no ``auto`` level."""
    if not threshold.auto:
        return threshold, None
    chances = alphas(config)
    values: dict[str, float | None] = {}
    for severity in ("warning", "critical"):
        configured = getattr(threshold, severity)
        if configured != "auto":
            values[severity] = configured
            continue
        found = level(
            statistic,
            chances[severity],
            n=n,
            profile=profile,
            cache=cache,
            name=name,
            accuracy=accuracy,
            labelled=labelled,
            calibration=calibration,
        )
        values[severity] = None if found is None or not math.isfinite(found) else found
    resolved = Resolved(values["warning"], values["critical"], n)
    numbers = ThresholdConfig.resolved(values["warning"], values["critical"])
    return numbers, resolved
