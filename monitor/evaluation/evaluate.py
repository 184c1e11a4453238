"""Compare a current window with the reference profiles, feature by feature.

Two entry points share the decisions: ``evaluate_drift`` takes the window's raw columns (the
exact path); ``evaluate_drift_counts`` takes merged histogram counts (the path for windows
larger than ``drift.exact_max_samples``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from monitor.config import ModelConfig, ThresholdConfig
from monitor.config.schema import StatisticName
from monitor.domain import Evaluation, FeatureDrift, Status, Window
from monitor.evaluation import levels
from monitor.evaluation.columns import Columns
from monitor.evaluation.counts import Counts
from monitor.evaluation.profiles import OUTPUT_NAMES, ReferenceProfiles
from monitor.stats import (
    CategoricalDrift,
    CategoricalProfile,
    NumericDrift,
    NumericProfile,
    compare_categorical,
    compare_categorical_counts,
    compare_numeric,
    compare_numeric_histogram,
)
from monitor.stats.ks import EXACT_MAX_N
from monitor.thresholds import breaches, worst_status


def evaluate_drift(
    model: ModelConfig,
    profiles: ReferenceProfiles | None,
    current: Columns,
    *,
    window: Window,
    evaluated_at: float,
    ks_exact_max_n: int = EXACT_MAX_N,
) -> Evaluation:
    """Every configured feature, then the model's outputs (``__prediction__``, ``__label__``),
    compared exactly with the reference; statuses from the model's thresholds. The KS p-value
    is exact up to ``ks_exact_max_n`` values (segments lower it: ``evaluation.groups``)."""

    def numeric(name: str) -> FeatureDrift:
        values = current.numeric.get(name, np.empty(0, dtype=np.float64))
        missing = int(np.isnan(values).sum())
        profile = None if profiles is None else profiles.numeric.get(name)
        return _numeric(
            model,
            name,
            n=values.size - missing,
            missing=missing,
            compare=None
            if profile is None
            else (lambda: compare_numeric(profile, values, ks_exact_max_n=ks_exact_max_n)),
            levels=_levels(model, profiles, name),
        )

    def categorical(name: str) -> FeatureDrift:
        values = current.categorical.get(name, [])
        missing = values.count(None)
        profile = None if profiles is None else profiles.categorical.get(name)
        return _categorical(
            model,
            name,
            n=len(values) - missing,
            missing=missing,
            compare=None if profile is None else (lambda: compare_categorical(profile, values)),
            levels=_levels(model, profiles, name),
        )

    outputs = [
        numeric(name) if name in current.numeric else categorical(name)
        for name in OUTPUT_NAMES
        if profiles is not None
        and (name in profiles.numeric or name in profiles.categorical)
        and (name in current.numeric or name in current.categorical)
    ]
    return _evaluation(model, profiles, window, evaluated_at, numeric, categorical, outputs)


def evaluate_drift_counts(
    model: ModelConfig,
    profiles: ReferenceProfiles,
    counts: Mapping[str, Counts],
    *,
    window: Window,
    evaluated_at: float,
) -> Evaluation:
    """As ``evaluate_drift``, from histogram counts merged over the window's buckets."""

    def numeric(name: str) -> FeatureDrift:
        profile = profiles.numeric.get(name)
        found = counts.get(name)
        grid = found.numeric if found is not None else None
        missing = found.missing if found is not None else 0
        n = int(grid.sum()) if grid is not None else 0

        def compare() -> NumericDrift:
            assert profile is not None and grid is not None
            return compare_numeric_histogram(profile, grid, missing=missing)

        usable = profile is not None and grid is not None
        return _numeric(
            model,
            name,
            n=n,
            missing=missing,
            compare=compare if usable else None,
            levels=_levels(model, profiles, name),
        )

    def categorical(name: str) -> FeatureDrift:
        profile = profiles.categorical.get(name)
        found = counts.get(name)
        categories = found.categories if found is not None else None
        missing = found.missing if found is not None else 0
        n = sum(categories.values()) if categories else 0

        def compare() -> CategoricalDrift:
            assert profile is not None and categories is not None
            return compare_categorical_counts(profile, categories, missing=missing)

        usable = profile is not None and categories is not None
        return _categorical(
            model,
            name,
            n=n,
            missing=missing,
            compare=compare if usable else None,
            levels=_levels(model, profiles, name),
        )

    outputs = [
        numeric(name) if name in profiles.numeric else categorical(name)
        for name in OUTPUT_NAMES
        if name in counts
    ]
    return _evaluation(model, profiles, window, evaluated_at, numeric, categorical, outputs)


def _evaluation(
    model: ModelConfig,
    profiles: ReferenceProfiles | None,
    window: Window,
    evaluated_at: float,
    numeric: Callable[[str], FeatureDrift],
    categorical: Callable[[str], FeatureDrift],
    outputs: list[FeatureDrift],
) -> Evaluation:
    features = tuple(
        numeric(f.name) if f.type == "numeric" else categorical(f.name) for f in model.features
    )
    evaluated = [f for f in features if f.status in ("ok", "warning", "critical")]
    drifted_share = (
        sum(f.status == "critical" for f in evaluated) / len(evaluated) if evaluated else None
    )
    return Evaluation(
        model=model.name,
        evaluated_at=evaluated_at,
        window=window,
        reference_version=None if profiles is None else profiles.version,
        reference_n=0 if profiles is None else profiles.n,
        features=features,
        outputs=tuple(outputs),
        drifted_share=drifted_share,
        status=_model_status(model, features, drifted_share),
    )


def _model_status(
    model: ModelConfig, features: tuple[FeatureDrift, ...], drifted_share: float | None
) -> Status:
    if drifted_share is None:
        return features[0].status if features else "insufficient"
    statuses = {f.status for f in features}
    share = model.thresholds.get("drifted_share")
    levels = [] if share is None else [("critical", share.critical), ("warning", share.warning)]
    for level, limit in levels:
        if isinstance(limit, int | float) and breaches("drifted_share", drifted_share, limit):
            statuses.add(level)  # type: ignore[arg-type]
    for level in ("critical", "warning"):
        if level in statuses:
            return level
    return "ok"


#: A feature's thresholds for a window of n: (levels by statistic, auto levels resolved).
Levels = Callable[[int, int], tuple[dict[StatisticName, ThresholdConfig], dict[str, Any]]]


def _levels(model: ModelConfig, profiles: ReferenceProfiles | None, name: str) -> Levels:
    """The thresholds of feature ``name``, ``auto`` levels resolved for the window's n (the
    missing-value ratio's for its n and missing values together)."""
    profile: NumericProfile | CategoricalProfile | None = None
    if profiles is not None:
        profile = profiles.numeric.get(name) or profiles.categorical.get(name)

    def for_n(n: int, missing: int) -> tuple[dict[StatisticName, ThresholdConfig], dict[str, Any]]:
        found: dict[StatisticName, ThresholdConfig] = {}
        resolved: dict[str, Any] = {}
        for statistic, threshold in model.thresholds_for(name).items():
            numbers, auto = levels.resolve(
                model,
                statistic,
                threshold,
                n=n + missing if statistic == "missing_ratio" else n,
                profile=profile,
                cache=None if profiles is None else profiles.null_cache,
                name=name,
            )
            found[statistic] = numbers
            if auto is not None:
                resolved[statistic] = auto.to_dict()
        return found, resolved

    return for_n


def _missing_ratio(n: int, missing: int) -> dict[str, float | None]:
    return {"missing_ratio": missing / (n + missing)} if n + missing else {}


def _numeric(
    model: ModelConfig,
    name: str,
    *,
    n: int,
    missing: int,
    compare: Callable[[], NumericDrift] | None,
    levels: Levels,
) -> FeatureDrift:
    if compare is None:
        return FeatureDrift(name, "numeric", "no_reference", n, missing, _missing_ratio(n, missing))
    if n < model.min_samples:
        return FeatureDrift(name, "numeric", "insufficient", n, missing, _missing_ratio(n, missing))
    drift = compare()
    statistics: dict[str, float | None] = {
        "psi": drift.psi,
        "ks_statistic": drift.ks_statistic,
        "ks_pvalue": drift.ks_pvalue,
        "wasserstein": drift.wasserstein,
        "wasserstein_normalized": drift.wasserstein_normalized,
        "jensen_shannon": drift.jensen_shannon,
        "missing_ratio": drift.missing_ratio,
    }
    thresholds, resolved = levels(n, missing)
    status = worst_status(statistics, thresholds)
    return FeatureDrift(
        name, "numeric", status, n, missing, statistics, drift.exact, drift.ks_bound, resolved
    )


def _categorical(
    model: ModelConfig,
    name: str,
    *,
    n: int,
    missing: int,
    compare: Callable[[], CategoricalDrift] | None,
    levels: Levels,
) -> FeatureDrift:
    ratio = _missing_ratio(n, missing)
    if compare is None:
        return FeatureDrift(name, "categorical", "no_reference", n, missing, ratio)
    if n < model.min_samples:
        return FeatureDrift(name, "categorical", "insufficient", n, missing, ratio)
    drift = compare()
    statistics: dict[str, float | None] = {
        "psi": drift.psi,
        "chi2_statistic": drift.chi2_statistic,
        "chi2_pvalue": drift.chi2_pvalue,
        "jensen_shannon": drift.jensen_shannon,
        "missing_ratio": drift.missing_ratio,
    }
    thresholds, resolved = levels(n, missing)
    status = worst_status(statistics, thresholds)
    return FeatureDrift(name, "categorical", status, n, missing, statistics, levels=resolved)


__all__ = ["evaluate_drift", "evaluate_drift_counts"]
