"""Threshold levels that cannot mean what they say, refused with file, line and key.

Checked after the schema, for a model's levels and each per-feature override's:

- **Range**: a level outside the values its statistic can take would always or never breach:
  p-values, shares and quality metrics lie in [0, 1] (``jensen_shannon`` is the base-2 distance
  of ``monitor.stats.jensen_shannon``, also in [0, 1]); distances, divergences and errors are
  never negative; ``r2`` is at most 1. NaN is no level.
- **Order**: the warning level must come before the critical one in the statistic's direction
  (``monitor.thresholds``, the one definition): warning <= critical where higher is worse,
  warning >= critical where lower is worse. Equal levels are allowed (critical wins).
"""

from __future__ import annotations

import math
from typing import Any

from monitor.config.paths import PathKey, format_path, line_for
from monitor.config.schema import Config
from monitor.errors import ConfigIssue
from monitor.thresholds import HIGHER_IS_WORSE, LOWER_IS_WORSE

_PROPORTION = (0.0, 1.0, "a proportion")
_P_VALUE = (0.0, 1.0, "a p-value")

#: What each statistic is, and the least and most it can be.
RANGES: dict[str, tuple[float, float, str]] = {
    "psi": (0.0, math.inf, "a divergence"),
    "ks_statistic": (0.0, 1.0, "a distance between distribution functions"),
    "ks_pvalue": _P_VALUE,
    "wasserstein": (0.0, math.inf, "a distance"),
    "wasserstein_normalized": (0.0, math.inf, "a distance"),
    "jensen_shannon": (0.0, 1.0, "a base-2 distance"),
    "chi2_pvalue": _P_VALUE,
    "missing_ratio": (0.0, 1.0, "a share of records"),
    "drifted_share": (0.0, 1.0, "a share of features"),
    "accuracy": _PROPORTION,
    "precision": _PROPORTION,
    "recall": _PROPORTION,
    "f1": _PROPORTION,
    "roc_auc": (0.0, 1.0, "an area under a curve"),
    "average_precision": _PROPORTION,
    "log_loss": (0.0, math.inf, "a loss"),
    "mae": (0.0, math.inf, "an error"),
    "rmse": (0.0, math.inf, "an error"),
    "mape": (0.0, math.inf, "a relative error"),
    "r2": (-math.inf, 1.0, "a coefficient of determination"),
    "label_coverage": _PROPORTION,
    "estimated_accuracy": _PROPORTION,
    "canary_psi": (0.0, math.inf, "a divergence"),
    "canary_accuracy_delta": (-1.0, 1.0, "a difference of proportions"),
    "demographic_parity_difference": _PROPORTION,
    "demographic_parity_ratio": (0.0, 1.0, "a ratio of the smallest rate to the largest"),
    "equalized_odds_difference": _PROPORTION,
    "equalized_odds_ratio": (0.0, 1.0, "a ratio of the smallest rate to the largest"),
    "equal_opportunity_difference": _PROPORTION,
}


def level_issues(config: Config, lines: dict[PathKey, int], file: str) -> list[ConfigIssue]:
    """Every level out of its statistic's range and every warning/critical pair out of order."""
    issues = []
    for m, model in enumerate(config.models):
        rules: list[tuple[PathKey, str, Any]] = [
            (("models", m, "thresholds", statistic), statistic, threshold)
            for statistic, threshold in model.thresholds.items()
        ]
        rules += [  # segments' own levels
            (("models", m, "segments", s, "thresholds", statistic), statistic, threshold)
            for s, segment in enumerate(model.segments)
            for statistic, threshold in segment.thresholds.items()
        ]
        for at, statistic, threshold in rules:
            levels = [(at, threshold.warning, threshold.critical)]
            levels += [
                ((*at, "overrides", feature), override.warning, override.critical)
                for feature, override in threshold.overrides.items()
            ]
            for loc, warning, critical in levels:
                found = [
                    *_out_of_range(statistic, (*loc, "warning"), warning),
                    *_out_of_range(statistic, (*loc, "critical"), critical),
                    *_out_of_order(statistic, loc, warning, critical),
                ]
                issues += [
                    ConfigIssue(file, line_for(key, lines), format_path(key), message)
                    for key, message in found
                ]
    return issues


def _number(level: Any) -> float | None:
    """A level to check; None for an unset one, or one that is not a number (such as a future
    ``auto``, resolved from the reference: it is checked where it is resolved)."""
    if isinstance(level, bool) or not isinstance(level, (int, float)):
        return None
    return float(level)


def _format(value: float) -> str:
    return f"{value:.15g}"


def _out_of_range(statistic: str, loc: PathKey, level: Any) -> list[tuple[PathKey, str]]:
    value = _number(level)
    if value is None or statistic not in RANGES:
        return []
    least, most, what = RANGES[statistic]
    if least <= value <= most:
        return []
    if math.isinf(most):
        allowed = f"{_format(least)} or more"
    elif math.isinf(least):
        allowed = f"at most {_format(most)}"
    else:
        allowed = f"from {_format(least)} to {_format(most)}"
    if math.isnan(value):
        wrong = "nan is not a number"
    elif value < least:
        wrong = f"{_format(value)} is below {_format(least)}"
    else:
        wrong = f"{_format(value)} is above {_format(most)}"
    return [(loc, f"{wrong}: {statistic} is {what}, {allowed}")]


def _out_of_order(
    statistic: str, loc: PathKey, warning_level: Any, critical_level: Any
) -> list[tuple[PathKey, str]]:
    warning, critical = _number(warning_level), _number(critical_level)
    if warning is None or critical is None or math.isnan(warning) or math.isnan(critical):
        return []
    if statistic in HIGHER_IS_WORSE and warning > critical:
        bound, side = "at most", "higher"
    elif statistic in LOWER_IS_WORSE and warning < critical:
        bound, side = "at least", "lower"
    else:
        return []
    return [
        (
            loc,
            f"warning {_format(warning)} must be {bound} critical {_format(critical)} "
            f"({side} {statistic} is worse)",
        )
    ]
