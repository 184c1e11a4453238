"""The Grafana unit a dashboard query's values are in, worked out from the query itself, and the
unit a panel gives a query's series, for ``test_dashboards.py``.

``expected_unit(expr)`` reads what the query measures:

* seconds (``s``): a quantile of a ``_seconds`` histogram, or ``time()`` minus a timestamp;
* a rate of a counter: what the counter counts, per second (``rate``), per minute
  (``rate(...) * 60``) or per hour (``increase(...[1h])``): records (``recps``, Grafana's
  records/sec, or ``count:rec/h``), HTTP requests (``reqps``: the API's requests, and webhook
  delivery attempts, each one POST), database errors and evaluations (custom ``count:`` units
  naming them); an ``increase`` over a longer window is a plain count (``short``);
* a gauge: a share or a proportion (``percentunit``: values in 0..1 shown as percent), a count
  (``short``), or a dimensionless statistic (``none``); a ``count(...)`` is a count; a
  threshold is in the unit of its statistic.

Grafana's unit ids: ``packages/grafana-data/src/valueFormats/categories.ts`` (``recps`` and
``rowsps`` since Grafana 10.1); ``count:<symbol>`` is its custom count unit (``getValueFormat``).
"""

from __future__ import annotations

import re
from typing import Any

from replica_aggregation import statistic_of

METRIC = re.compile(r"(?<![A-Za-z0-9_:])drift_monitor_[A-Za-z0-9_:]*")
#: What each counter counts: the Grafana units of its rate per second, minute and hour.
COUNTED = {
    "drift_monitor_records_ingested_total": "records",
    "drift_monitor_records_rejected_total": "records",
    "drift_monitor_records_duplicate_total": "records",
    "drift_monitor_labels_ingested_total": "records",
    "drift_monitor_label_corrections_total": "records",
    "drift_monitor_retention_deleted_records_total": "records",
    "drift_monitor_http_request_duration_seconds_count": "requests",
    "drift_monitor_webhook_deliveries_total": "requests",
    "drift_monitor_database_errors_total": "errors",
    "drift_monitor_evaluation_duration_seconds_count": "evaluations",
}
RATE_UNITS = {
    ("records", "s"): "recps",
    ("records", "h"): "count:rec/h",
    ("requests", "s"): "reqps",
    ("errors", "s"): "count:errors/s",
    ("evaluations", "min"): "count:evaluations/min",
}
#: Statistics whose values are shares or proportions in 0..1.
PROPORTIONS = {
    "accuracy",
    "estimated_accuracy",
    "precision",
    "recall",
    "f1",
    "mape",
    "missing_ratio",
    "label_coverage",
    "drifted_share",
    # group fairness: rates, and their differences and ratios
    "selection_rate",
    "true_positive_rate",
    "false_positive_rate",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    # canary against stable: a difference of accuracies
    "canary_accuracy_delta",
}
COUNT_GAUGES = re.compile(
    r"drift_monitor_(window_samples|feature_samples|performance_samples|labels_unmatched"
    r"|segment_samples|fairness_group_predictions|fairness_group_labelled"
    r"|version_records|version_performance_samples"
    r"|webhook_outbox_pending|alerts?_firing)"
)
STATISTIC = re.compile(r'statistic=~?"([^"]+)"')


def gauge_unit(metric: str, expr: str) -> str:
    if COUNT_GAUGES.fullmatch(metric):
        return "short"
    if metric == "drift_monitor_threshold":
        match = STATISTIC.search(expr)
        assert match, f"a threshold query names its statistic: {expr!r}"
        units = {"percentunit" if s in PROPORTIONS else "none" for s in match[1].split("|")}
        assert len(units) == 1, f"statistics of different units in {expr!r}"
        return units.pop()
    if metric.endswith("_ratio") or statistic_of(metric) in PROPORTIONS:
        return "percentunit"
    return "none"


def expected_unit(expr: str) -> str:
    """The unit of the values ``expr`` gives (see the module docstring)."""
    metrics = set(METRIC.findall(expr))
    assert len(metrics) == 1, f"one drift-monitor metric per query: {expr!r}"
    (metric,) = metrics
    if "histogram_quantile(" in expr and metric.endswith("_seconds_bucket"):
        return "s"
    if re.search(r"\btime\(\)\s*-", expr) and metric.endswith("_timestamp_seconds"):
        return "s"
    if re.match(r"\s*count\s*(by\s*\([^)]*\)\s*)?\(", expr):
        return "short"
    if "rate(" in expr:
        per = "min" if re.search(r"\)\s*\*\s*60\s*$", expr) else "s"
        return RATE_UNITS[COUNTED[metric], per]
    increase = re.search(r"increase\(.*\[(\w+)\]\)", expr)
    if increase:
        return RATE_UNITS[COUNTED[metric], "h"] if increase[1] == "1h" else "short"
    return gauge_unit(metric, expr)


def field_names(panel: dict[str, Any], target: dict[str, Any]) -> set[str]:
    """The names a panel's field overrides can match for the target's series: the column a
    table renames ``Value #<refId>`` to, or a legend without ``{{label}}`` placeholders."""
    names = set()
    if target.get("format") == "table":
        original = f"Value #{target['refId']}"
        renamed = original
        for transformation in panel.get("transformations", []):
            if transformation["id"] == "organize":
                renamed = transformation["options"].get("renameByName", {}).get(original, renamed)
        names.add(renamed)
    legend = target.get("legendFormat", "")
    if legend and "{{" not in legend:
        names.add(legend)
    return names


def applied_unit(panel: dict[str, Any], target: dict[str, Any]) -> str | None:
    """The unit the panel displays the target's values in: its default, or the last unit
    override matching the target (by query, ``byFrameRefID``, or by field name)."""
    field_config = panel.get("fieldConfig", {})
    unit = field_config.get("defaults", {}).get("unit")
    for override in field_config.get("overrides", []):
        units = [p["value"] for p in override["properties"] if p["id"] == "unit"]
        if not units:
            continue
        matcher = override["matcher"]
        assert matcher["id"] in ("byFrameRefID", "byName"), (panel["title"], matcher)
        if (matcher["id"] == "byFrameRefID" and matcher["options"] == target["refId"]) or (
            matcher["id"] == "byName" and matcher["options"] in field_names(panel, target)
        ):
            unit = units[-1]
    return unit
