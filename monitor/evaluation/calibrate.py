"""What a model's threshold levels mean: ``monitor calibrate``'s report.

For every rule a level can be derived for (``evaluation.levels``), every feature it covers and
every severity: the level at the configured window size ``n`` (an ``auto`` level resolved, a
number as written) and at ``min_samples``; the false alarms per week it implies when the data
come from the reference's distribution (``E * chance(level, n) / alerts.for``, the bound
``evaluation.levels`` budgets with); and the records per window a given shift needs before the
shift's own statistic reaches the level (about even odds of a breach in one evaluation): a
shift of the numeric reference by 0.1, 0.25 and 0.5 of its standard deviation, and for a
categorical feature 10 % of the mass moved to its rarest category.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from monitor.config import ModelConfig
from monitor.evaluation import levels
from monitor.evaluation.profiles import ReferenceProfiles
from monitor.stats import CategoricalProfile, NumericProfile, null_levels
from monitor.stats.jensen_shannon import jensen_shannon_distance
from monitor.stats.psi import population_stability_index, sorted_bin_counts
from monitor.thresholds import LOWER_IS_WORSE

NUMERIC_SHIFTS = (0.1, 0.25, 0.5)
MASS_SHIFT = 0.1
#: the statistics a shift of the feature's distribution moves (not its missing values)
SHIFTED = (levels.NUMERIC | levels.CATEGORICAL) - {"missing_ratio"}
_SCALE = 10**12  # proportions as integer counts for the count-based statistics


@dataclass(frozen=True, slots=True)
class Line:
    """One (feature, statistic, severity) of a model's report."""

    model: str
    feature: str  # "" for a model-level rule
    statistic: str
    severity: str
    configured: float | str
    n: int
    level: float | None
    level_at_min_samples: float | None
    false_alarms_per_week: float | None
    #: shift name ("0.1 sd", "10% mass") -> records per window to reach the level; None: not
    #: at any size (the shift's statistic stays inside the level, or beyond the reference)
    records_to_catch: dict[str, int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def report(config: ModelConfig, profiles: ReferenceProfiles, *, n: int) -> list[Line]:
    """The report of ``config`` for windows of ``n`` records, against ``profiles``."""
    chances = levels.alphas(config)
    per_week = levels.WEEK_SECONDS / config.schedule.total_seconds()
    lines = []
    for statistic, threshold in config.thresholds.items():
        if statistic not in levels.NUMERIC | levels.CATEGORICAL | levels.MODEL_LEVEL:
            continue
        targets: list[tuple[str, Any, Any]] = []
        for name, covered in levels.covered(config, statistic, threshold):
            profile = profiles.numeric.get(name) or profiles.categorical.get(name)
            if name == "" or profile is not None:  # a feature rule needs the column's profile
                targets.append((name, covered, profile))
        for name, covered, profile in targets:
            for severity in ("warning", "critical"):
                configured = getattr(covered, severity)
                if configured is None:
                    continue

                at = functools.partial(
                    _level_at,
                    statistic,
                    configured,
                    chances.get(severity),
                    profile=profile,
                    profiles=profiles,
                    name=name,
                )
                level = at(n)
                lines.append(
                    Line(
                        model=config.name,
                        feature=name,
                        statistic=statistic,
                        severity=severity,
                        configured=configured,
                        n=n,
                        level=level,
                        level_at_min_samples=at(config.min_samples),
                        false_alarms_per_week=_false_alarms(
                            statistic, level, n, profile, profiles, name, per_week, config
                        ),
                        records_to_catch=_records_to_catch(
                            statistic,
                            profile,
                            profiles,
                            name,
                            configured,
                            chances.get(severity),
                            config.min_samples,
                        ),
                    )
                )
    return lines


def _level_at(
    statistic: str,
    configured: float | str,
    alpha: float | None,
    n: int,
    *,
    profile: NumericProfile | CategoricalProfile | None,
    profiles: ReferenceProfiles,
    name: str,
) -> float | None:
    """The level compared with in a window of ``n``: a number as configured, ``auto`` resolved."""
    if configured != "auto":
        return float(configured)
    assert alpha is not None
    return levels.level(
        statistic,
        alpha,
        n=n,
        profile=profile,
        cache=profiles.null_cache,
        name=name,
        accuracy=profiles.accuracy,
        labelled=profiles.labelled,
        calibration=profiles.calibration,
    )


def _bins(profile: NumericProfile | CategoricalProfile) -> int:
    if isinstance(profile, CategoricalProfile):
        return max(len(profile.counts), 2)
    return len(profile.psi_edges) + 1


def _false_alarms(
    statistic: str,
    level: float | None,
    n: int,
    profile: NumericProfile | CategoricalProfile | None,
    profiles: ReferenceProfiles,
    name: str,
    per_week: float,
    config: ModelConfig,
) -> float | None:
    if level is None:
        return None
    if statistic == "accuracy":
        if profiles.accuracy is None:
            return None
        p, m = profiles.accuracy
        found = null_levels.chance("accuracy", level, n=n, m=m, p=p)
    elif statistic in levels.RESAMPLED:
        moments = levels.resampled_moments(
            profiles.labelled, n, profiles.null_cache, profiles.calibration
        ).get(statistic)
        if moments is None:
            return None
        mean, sd, skew = moments
        lower = statistic in LOWER_IS_WORSE
        found = null_levels.skewed_normal_chance(level, mean=mean, sd=sd, skew=skew, lower=lower)
    elif statistic == "missing_ratio":
        assert profile is not None
        total = profile.n + profile.missing
        found = null_levels.chance(statistic, level, n=n, m=total, p=profile.missing / total)
    elif statistic in ("psi", "jensen_shannon"):
        assert profile is not None
        top, draws = levels.binned_draws(profile, name, n, profiles.null_cache, statistic)
        found = null_levels.chance_from_draws(top, level, draws=draws)
        if found is None:  # a level below the draws kept: chi-square
            found = null_levels.chance(statistic, level, n=n, m=profile.n, bins=_bins(profile))
    else:
        assert profile is not None
        scale = None
        if isinstance(profile, NumericProfile) and statistic.startswith("wasserstein"):
            scale = levels.wasserstein_scale(profile, name, profiles.null_cache)
            if statistic == "wasserstein_normalized":
                level *= profile.std
        found = null_levels.chance(
            "wasserstein" if scale is not None else statistic,
            level,
            n=n,
            m=profile.n,
            bins=_bins(profile),
            wasserstein=scale,
        )
    return None if found is None else per_week * found / config.alerts.for_


def _shifted(
    profile: NumericProfile | CategoricalProfile,
) -> dict[str, tuple[np.ndarray, np.ndarray, float, float]]:
    """Per shift: (reference proportions, shifted proportions, KS distance, W1 distance) over
    the PSI bins or the categories."""
    found = {}
    if isinstance(profile, NumericProfile):
        values = profile.sorted_values
        reference = sorted_bin_counts(values, profile.psi_edges) / values.size
        for shift in NUMERIC_SHIFTS:
            moved = values + shift * profile.std
            current = sorted_bin_counts(moved, profile.psi_edges) / values.size
            grid = np.concatenate([values, moved])
            distance = (
                np.abs(
                    np.searchsorted(values, grid, side="right")
                    - np.searchsorted(moved, grid, side="right")
                ).max()
                / values.size
            )
            found[f"{shift:g} sd"] = (reference, current, float(distance), shift * profile.std)
    else:
        counts = np.array(list(profile.counts.values()), dtype=np.float64)
        reference = counts / counts.sum()
        current = (1.0 - MASS_SHIFT) * reference
        current[int(np.argmin(reference))] += MASS_SHIFT
        found[f"{MASS_SHIFT:.0%} mass"] = (reference, current, math.nan, math.nan)
    return found


def _records_to_catch(
    statistic: str,
    profile: NumericProfile | CategoricalProfile | None,
    profiles: ReferenceProfiles,
    name: str,
    configured: float | str,
    alpha: float | None,
    min_samples: int,
) -> dict[str, int | None]:
    if profile is None or statistic not in SHIFTED:
        return {}
    m = profile.n
    dof = max(_bins(profile) - 1, 1)
    found: dict[str, int | None] = {}
    for shift, (reference, current, ks, w1) in _shifted(profile).items():
        as_counts = (reference * _SCALE).astype(np.int64), (current * _SCALE).astype(np.int64)
        value = {
            "psi": population_stability_index(*as_counts),
            "jensen_shannon": jensen_shannon_distance(*as_counts),
            "ks_statistic": ks,
            "wasserstein": w1,
            "wasserstein_normalized": w1 / profile.std
            if isinstance(profile, NumericProfile) and profile.std > 0
            else math.nan,
        }.get(statistic)
        if configured != "auto" and statistic.endswith("_pvalue"):
            alpha = float(configured)  # a p-value's level is its chance
        elif configured != "auto":  # a number: the shift's statistic reaches it, or never
            if value is None or not math.isfinite(value):
                found[shift] = None
            else:
                found[shift] = min_samples if value >= float(configured) else None
            continue
        assert alpha is not None
        n_eff = _effective_needed(
            statistic, alpha, dof, value, (reference, current, ks), profile, profiles, name
        )
        found[shift] = _records(n_eff, m, min_samples)
    return found


def _effective_needed(
    statistic: str,
    alpha: float,
    dof: int,
    value: float | None,
    shifted: tuple[np.ndarray, np.ndarray, float],
    profile: NumericProfile | CategoricalProfile,
    profiles: ReferenceProfiles,
    name: str,
) -> float | None:
    """The effective size at which the shift's statistic reaches the ``auto`` level."""
    reference, current, ks = shifted
    scale = None
    if isinstance(profile, NumericProfile) and statistic.startswith("wasserstein"):
        scale = levels.wasserstein_scale(profile, name, profiles.null_cache)
    quantile = null_levels.scaled_quantile(statistic, alpha, bins=dof + 1, wasserstein=scale)
    if quantile is None:
        return None
    if statistic == "psi":  # n_eff PSI reaches the quantile
        target = value
    elif statistic == "jensen_shannon":
        target = None if value is None else 8.0 * math.log(2.0) * value * value
    elif statistic == "chi2_pvalue":  # n_eff times the chi-square divergence
        target = float(np.sum((current - reference) ** 2 / reference))
    elif statistic in ("ks_statistic", "ks_pvalue"):  # sqrt(n_eff) D
        quantile, target = quantile * quantile, ks * ks
    elif isinstance(profile, NumericProfile) and value is not None:  # sqrt(n_eff) W
        shift = value * profile.std if statistic == "wasserstein_normalized" else value
        quantile, target = quantile * quantile, shift * shift
    else:
        return None
    if target is None or not math.isfinite(target) or target <= 0.0:
        return None
    return quantile / target


def _records(n_eff: float | None, m: int, min_samples: int) -> int | None:
    """The window size ``n`` with ``n m / (n + m) = n_eff``; None beyond what ``m`` allows."""
    if n_eff is None or not math.isfinite(n_eff) or n_eff >= m:
        return None
    return max(min_samples, math.ceil(n_eff * m / (m - n_eff)))


def yaml_snippet(lines: list[Line]) -> str:
    """The levels at ``n`` as fixed numbers, to paste as the model's ``thresholds``: per
    statistic the first feature's levels, the features covered, and ``overrides`` for the
    features whose levels differ."""
    by_statistic: dict[str, dict[str, dict[str, float]]] = {}
    for line in lines:
        if line.level is not None:
            levels_of = by_statistic.setdefault(line.statistic, {})
            levels_of.setdefault(line.feature, {})[line.severity] = line.level

    def flow(found: dict[str, float]) -> str:
        return "{" + ", ".join(f"{k}: {v:.6g}" for k, v in found.items()) + "}"

    out = ["thresholds:"]
    for statistic, features in by_statistic.items():
        if list(features) == [""]:
            out.append(f"  {statistic}: {flow(features[''])}")
            continue
        first = next(iter(features.values()))
        out.append(f"  {statistic}:")
        out.extend(f"    {key}: {value:.6g}" for key, value in first.items())
        out.append(f"    features: [{', '.join(features)}]")
        differ = {name: found for name, found in features.items() if found != first}
        if differ:
            out.append("    overrides:")
            out.extend(f"      {name}: {flow(found)}" for name, found in differ.items())
    return "\n".join(out)
