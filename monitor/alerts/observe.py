"""What an evaluation says about each alert rule: one observation per (rule, feature).

A rule is a statistic with thresholds in the model's config (``thresholds: {psi: {...}}``).
Feature statistics (PSI, KS, Wasserstein, Jensen-Shannon, chi-square, missing ratio) give one
observation per feature, the model's outputs (``__prediction__``, ``__label__``) included,
unless the rule lists ``features``; model-level ones (``drifted_share``, the performance
metrics, ``label_coverage``, ``estimated_accuracy``) give one with the feature ``""``.

When several features are tested by p-value at once (``ks_pvalue`` for numeric features,
``chi2_pvalue`` for categorical ones: one family), ``alerts.correction`` adjusts the p-values
before they meet the thresholds: ``bonferroni`` multiplies each by the number of tests (capped
at 1), ``benjamini-hochberg`` takes the step-up adjusted p-values that control the false
discovery rate (as ``scipy.stats.false_discovery_control`` computes them).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.config import ModelConfig, ThresholdConfig
from monitor.config.schema import FAIRNESS_STATISTICS
from monitor.domain import Evaluation
from monitor.evaluation.groups import segment_model
from monitor.thresholds import Severity, severity

FEATURE_STATISTICS = frozenset(
    {
        "psi",
        "ks_statistic",
        "ks_pvalue",
        "wasserstein",
        "wasserstein_normalized",
        "jensen_shannon",
        "chi2_pvalue",
        "missing_ratio",
    }
)
P_VALUES = frozenset({"ks_pvalue", "chi2_pvalue"})


@dataclass(frozen=True, slots=True)
class Observation:
    rule: str
    feature: str  # "" for a model-level rule
    value: float | None  # None: not computed this time (insufficient samples, no labels...)
    severity: Severity | None
    threshold: float | None  # the level breached
    n: int | None = None  # the window size an ``auto`` level was resolved for


def observe(config: ModelConfig, evaluation: Evaluation) -> list[Observation]:
    adjusted = _adjusted_p_values(config, evaluation)
    found: list[Observation] = []
    for rule, threshold in config.thresholds.items():
        if rule in FAIRNESS_STATISTICS:
            continue  # one observation per sensitive feature: _group_observations
        if rule in CANARY_RULES:
            found.extend(_canary(config, evaluation, rule, threshold))
        elif rule in FEATURE_STATISTICS:
            for feature in (*evaluation.features, *evaluation.outputs):
                levels = threshold.for_feature(feature.name)  # narrowed, or overridden
                if levels is None:
                    continue
                if rule in P_VALUES:
                    value = adjusted.get((rule, feature.name))
                else:
                    value = feature.statistics.get(rule)
                resolved = feature.levels.get(rule)
                found.append(_observation(rule, feature.name, value, levels, resolved))
        else:
            performance = evaluation.performance
            resolved = None if performance is None else performance.levels.get(rule)
            value = _model_value(rule, evaluation)
            found.append(_observation(rule, "", value, threshold, resolved))
    return found + _group_observations(config, evaluation)


# --- segments and fairness ---------------------------------------------------------------------


def _group_observations(config: ModelConfig, evaluation: Evaluation) -> list[Observation]:
    """A segment value's rules are the model's (as the segment overrides them), observed on
    its drift and performance with the feature ``<segment>=<value>/<feature>`` (``<segment>=
    <value>`` for a model-level rule); a fairness rule gives one observation per sensitive
    feature, with that feature."""
    found: list[Observation] = []
    segments = {segment.name: segment for segment in config.segments}
    for result in evaluation.segments:
        segment = segments.get(result.segment)
        if segment is None or result.refused is not None:
            continue
        part = dataclasses.replace(
            evaluation,
            features=result.features,
            outputs=result.outputs,
            drifted_share=result.drifted_share,
            performance=result.performance,
            labels=None,
            segments=(),
            fairness=(),
        )
        prefix = f"{result.segment}={result.value}"
        for observation in observe(segment_model(config, segment), part):
            if observation.rule == "label_coverage":
                continue  # coverage is the model's: its labels arrive for every segment alike
            name = prefix if not observation.feature else f"{prefix}/{observation.feature}"
            found.append(dataclasses.replace(observation, feature=_bounded(name)))
    for fairness in evaluation.fairness:
        for rule, threshold in config.thresholds.items():
            if rule in FAIRNESS_STATISTICS:
                value = fairness.metrics.get(rule)
                found.append(_observation(rule, fairness.feature, value, threshold, None))
    return found


def _bounded(name: str) -> str:
    """A key that fits the alert store's feature column (160 characters)."""
    if len(name) <= 160:
        return name
    return name[:143] + "~" + hashlib.sha256(name.encode()).hexdigest()[:16]


def _observation(
    rule: str,
    feature: str,
    value: float | None,
    threshold: ThresholdConfig,
    resolved: Mapping[str, float | int | None] | None,
) -> Observation:
    """``resolved``: an ``auto`` rule's levels for this window (evaluation.levels); an
    ``auto`` rule without them (nothing evaluated) breaches nothing."""
    n = None
    if threshold.auto:
        if resolved is None:
            return Observation(rule, feature, value, None, None)
        threshold = ThresholdConfig.resolved(resolved["warning"], resolved["critical"])
        n = int(resolved["n"] or 0)
    level = severity(rule, value, threshold)
    limit = None
    if level is not None:
        found = threshold.critical if level == "critical" else threshold.warning
        limit = None if isinstance(found, str) else found
    return Observation(rule, feature, value, level, limit, n)


def _model_value(rule: str, evaluation: Evaluation) -> float | None:
    if rule == "drifted_share":
        return evaluation.drifted_share
    if rule == "label_coverage":
        return None if evaluation.labels is None else evaluation.labels.coverage
    performance = evaluation.performance
    if performance is None:
        return None
    if rule == "estimated_accuracy":
        return performance.estimated_accuracy
    if performance.status == "insufficient":
        return None
    return performance.metrics.get(rule)


def _adjusted_p_values(config: ModelConfig, evaluation: Evaluation) -> dict[tuple[str, str], float]:
    tests = [
        (statistic, feature.name, value)
        for feature in (*evaluation.features, *evaluation.outputs)
        for statistic in P_VALUES
        if (value := feature.statistics.get(statistic)) is not None
    ]
    p = [value for _, _, value in tests]
    method = config.alerts.correction
    if method == "bonferroni":
        p = [min(1.0, value * len(p)) for value in p]
    elif method == "benjamini-hochberg":
        p = benjamini_hochberg(p)
    return {(statistic, name): value for (statistic, name, _), value in zip(tests, p, strict=True)}


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values, in the input's order.

    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.2])
    [0.04, 0.05333333333333334, 0.05333333333333334, 0.2]
    """
    m = len(p_values)
    order = sorted(range(m), key=p_values.__getitem__)
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):  # from the largest p-value down
        index = order[rank - 1]
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = running
    return adjusted


# -- canary against stable (issue 16, item 3) -------------------------------------------------

#: ``canary_psi``: per feature and output, the canary's PSI against the stable version;
#: ``canary_accuracy_delta``: the canary's accuracy minus the stable one's (model level).
CANARY_RULES = frozenset({"canary_psi", "canary_accuracy_delta"})


def _canary(
    config: ModelConfig, evaluation: Evaluation, rule: str, threshold: ThresholdConfig
) -> list[Observation]:
    """Without a comparison this time (no second version, a window from histograms), each
    observation has no value, so the rule's alerts hold."""
    canary = evaluation.canary
    if rule == "canary_accuracy_delta":
        value = None if canary is None else canary.accuracy_delta
        return [_observation(rule, "", value, threshold, None)]
    if canary is None:
        names = [f.name for f in (*evaluation.features, *evaluation.outputs)]
        values: dict[str, float | None] = dict.fromkeys(names)
    else:
        values = {f.name: f.statistics.get("psi") for f in canary.drift}
    found = []
    for name, value in values.items():
        levels = threshold.for_feature(name)
        if levels is not None:
            found.append(_observation(rule, name, value, levels, None))
    return found
