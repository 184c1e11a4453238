"""Statistics to decisions: the one place that compares a value with its configured threshold.

Each statistic has its own direction. Distances and error metrics breach at or above the
threshold; p-values and quality metrics breach at or below it.

========================  =====================================================================
breaches at or above      psi, ks_statistic, wasserstein, wasserstein_normalized,
                          jensen_shannon, missing_ratio, drifted_share, log_loss, mae, rmse, mape
breaches at or below      ks_pvalue, chi2_pvalue, accuracy, precision, recall, f1, roc_auc,
                          average_precision, r2, label_coverage, estimated_accuracy
========================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # only annotations: monitor.config's level checks import the directions below
    from monitor.config import ThresholdConfig
    from monitor.config.schema import StatisticName

Severity = Literal["warning", "critical"]
Status = Literal["ok", "warning", "critical", "insufficient"]

HIGHER_IS_WORSE = frozenset(
    {
        "psi",
        "ks_statistic",
        "wasserstein",
        "wasserstein_normalized",
        "jensen_shannon",
        "missing_ratio",
        "drifted_share",
        "log_loss",
        "mae",
        "rmse",
        "mape",
        "canary_psi",  # the canary's PSI against the stable version
        "demographic_parity_difference",
        "equalized_odds_difference",
        "equal_opportunity_difference",
    }
)
LOWER_IS_WORSE = frozenset(
    {
        "canary_accuracy_delta",  # the canary's accuracy minus the stable version's
        "ks_pvalue",
        "chi2_pvalue",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "average_precision",
        "r2",
        "label_coverage",
        "estimated_accuracy",
        "demographic_parity_ratio",
        "equalized_odds_ratio",
    }
)


def breaches(statistic: str, value: float, limit: float) -> bool:
    """Whether ``value`` is on the bad side of ``limit`` for this statistic.

    >>> breaches("psi", 0.25, 0.25), breaches("ks_pvalue", 0.2, 0.01)
    (True, False)
    """
    if statistic in LOWER_IS_WORSE:
        return value <= limit
    return value >= limit


def severity(statistic: str, value: float | None, threshold: ThresholdConfig) -> Severity | None:
    """The severity a value reaches, ``None`` if it breaches neither level."""
    if value is None:
        return None
    for level in ("critical", "warning"):
        limit = getattr(threshold, level)
        # an ``auto`` level still unresolved (evaluation.levels resolves it) breaches nothing
        if isinstance(limit, int | float) and breaches(statistic, value, limit):
            return level
    return None


def worst_status(
    values: Mapping[str, float | None], thresholds: Mapping[StatisticName, ThresholdConfig]
) -> Status:
    """``critical`` if any configured statistic is critical, else ``warning`` if any is, else
    ``ok``. Statistics without a threshold do not count."""
    status: Status = "ok"
    for statistic, threshold in thresholds.items():
        if statistic not in values:
            continue
        level = severity(statistic, values[statistic], threshold)
        if level == "critical":
            return "critical"
        if level == "warning":
            status = "warning"
    return status
