"""Alert names as Prometheus and Alertmanager see them, and where each one's runbook is.

One name per kind of problem, CamelCase and prefixed with the system (the Prometheus
convention); the statistic that breached is the ``rule`` label. The shipped Prometheus rules
(``deploy/prometheus/rules.yml``) and the service's ``format: alertmanager`` webhooks both use
these names, so Alertmanager deduplicates the two sources.

==================================  ===========================================================
DriftMonitorFeatureDrift            psi, ks_statistic, ks_pvalue, wasserstein,
                                    wasserstein_normalized, jensen_shannon, chi2_pvalue
DriftMonitorFeatureMissingValues    missing_ratio
DriftMonitorManyFeaturesDrifted     drifted_share
DriftMonitorPerformanceDegraded     accuracy, precision, recall, f1, roc_auc, average_precision,
                                    log_loss, mae, rmse, mape, r2
DriftMonitorEstimatedAccuracyLow    estimated_accuracy
DriftMonitorLabelCoverageLow        label_coverage
DriftMonitorFairnessDisparity       demographic_parity_difference, demographic_parity_ratio,
                                    equalized_odds_difference, equalized_odds_ratio,
                                    equal_opportunity_difference
DriftMonitorCanaryRegression        canary_psi, canary_accuracy_delta (model versions: the
                                    canary against the stable version)
==================================  ===========================================================

and, in the Prometheus rules only, ``OPERATIONAL``: DriftMonitorEvaluationStale,
DriftMonitorWebhookDeliveriesFailing and DriftMonitorDown.

Each alert's runbook is ``docs/runbooks/<AlertName>.md``, published at
``runbook_url(<AlertName>)``: what the alert means, what to check, what to do.
"""

from __future__ import annotations

from types import MappingProxyType

#: The published documentation (the MkDocs site built from ``docs/``): its ``site_url``.
DOCS_URL = "https://drift-monitor.readthedocs.io/en/latest/"

_KINDS = {
    "DriftMonitorFeatureDrift": (
        "psi",
        "ks_statistic",
        "ks_pvalue",
        "wasserstein",
        "wasserstein_normalized",
        "jensen_shannon",
        "chi2_pvalue",
    ),
    "DriftMonitorFeatureMissingValues": ("missing_ratio",),
    "DriftMonitorManyFeaturesDrifted": ("drifted_share",),
    "DriftMonitorPerformanceDegraded": (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "average_precision",
        "log_loss",
        "mae",
        "rmse",
        "mape",
        "r2",
    ),
    "DriftMonitorEstimatedAccuracyLow": ("estimated_accuracy",),
    "DriftMonitorLabelCoverageLow": ("label_coverage",),
    "DriftMonitorFairnessDisparity": (
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "equalized_odds_ratio",
        "equal_opportunity_difference",
    ),
    "DriftMonitorCanaryRegression": ("canary_psi", "canary_accuracy_delta"),
}

#: The alert name of each thresholded statistic (a threshold rule of ``monitor.yaml``).
ALERT_NAMES = MappingProxyType(
    {statistic: name for name, statistics in _KINDS.items() for statistic in statistics}
)
#: Alerts about drift-monitor itself, raised by the Prometheus rules only.
OPERATIONAL = (
    "DriftMonitorEvaluationStale",
    "DriftMonitorWebhookDeliveriesFailing",
    "DriftMonitorDown",
)


def alert_name(rule: str) -> str:
    """The alert name of a threshold rule (its statistic).

    >>> alert_name("ks_pvalue"), alert_name("rmse")
    ('DriftMonitorFeatureDrift', 'DriftMonitorPerformanceDegraded')
    """
    try:
        return ALERT_NAMES[rule]
    except KeyError:
        raise KeyError(f"no alert name for rule {rule!r}") from None


def runbook_url(alert: str) -> str:
    """Where the runbook of ``alert`` is published (``docs/runbooks/<alert>.md``).

    >>> runbook_url("DriftMonitorDown")
    'https://drift-monitor.readthedocs.io/en/latest/runbooks/DriftMonitorDown/'
    """
    return f"{DOCS_URL}runbooks/{alert}/"
