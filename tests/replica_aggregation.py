"""How a PromQL expression of the shipped rules and dashboards must read drift-monitor's series
so that several replicas, scraped as separate instances, give one series per model (and
feature ...), not one per replica:

* a counter or histogram (``_total``, ``_bucket``, ``_count``, ``_sum``) is per replica: its
  innermost aggregation is ``sum``, so the replicas' counts add up;
* a gauge describes a model (or the shared database: the outbox backlog) and is the same on
  every replica: its innermost aggregation is ``max``, or ``min`` for a statistic that is worse
  when lower (a p-value, accuracy ...: the direction of ``monitor.thresholds``), so the value
  is the one the alert rules compare, and never ``sum`` (which would count it once a replica);
* ``drift_monitor_build_info`` is counted (how many replicas run each version, or serve a job);
* ``absent(...)`` needs nothing: it gives one series, or none, whatever the replicas.

``unaggregated(expr)`` lists what breaks these; the static tests of ``rules.yml`` and of the
dashboards use it, and ``test_prometheus_replicas.py`` checks the outcome against two real
replicas.
"""

from __future__ import annotations

import re

from monitor.thresholds import LOWER_IS_WORSE

METRIC = re.compile(r"(?<![A-Za-z0-9_:])drift_monitor_[A-Za-z0-9_:]*")
AGGREGATION = re.compile(
    r"\b(sum|max|min|count|avg|group|topk|bottomk|quantile|stddev|stdvar"
    r"|absent|absent_over_time)\s*"
    r"(?:(?:by|without)\s*\([^()]*\)\s*)?$"
)
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def statistic_of(metric: str) -> str | None:
    """The thresholded statistic a gauge exports, if any (``accuracy`` for its interval)."""
    if metric == "drift_monitor_label_coverage_ratio":
        return "label_coverage"
    if metric in ("drift_monitor_canary_psi", "drift_monitor_canary_accuracy_delta"):
        return metric.removeprefix("drift_monitor_")  # canary against stable
    for prefix in (
        "drift_monitor_feature_",
        "drift_monitor_model_",
        "drift_monitor_segment_feature_",  # a segment value's, as the model's
        "drift_monitor_segment_model_",
        "drift_monitor_version_model_",  # a compared model version's, as the model's
        "drift_monitor_fairness_group_",  # a group's rate (accuracy is worse when lower)
        "drift_monitor_fairness_",
    ):
        if metric.startswith(prefix):
            return re.sub(r"_(lower|upper)$", "", metric.removeprefix(prefix))
    return None


def expected_aggregation(metric: str) -> str:
    if metric.endswith(COUNTER_SUFFIXES):
        return "sum"
    if metric == "drift_monitor_build_info":
        return "count"
    return "min" if statistic_of(metric) in LOWER_IS_WORSE else "max"


def enclosing_aggregations(expr: str, position: int) -> list[str]:
    """The aggregation operators whose parentheses enclose ``position``, innermost first
    (quoted strings skipped)."""
    opened: list[int] = []
    quoted = False
    for index, char in enumerate(expr[:position]):
        if char == '"' and (index == 0 or expr[index - 1] != "\\"):
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            opened.append(index)
        elif char == ")":
            opened.pop()
    found = []
    for index in reversed(opened):
        match = AGGREGATION.search(expr[:index])
        if match:
            found.append(match.group(1))
    return found


def unaggregated(expr: str) -> list[str]:
    """Each drift-monitor series in ``expr`` not aggregated over replicas as it must be."""
    problems = []
    for match in METRIC.finditer(expr):
        metric = match.group(0)
        aggregations = enclosing_aggregations(expr, match.start())
        want = expected_aggregation(metric)
        got = aggregations[0] if aggregations else None
        if got in ("absent", "absent_over_time"):  # one series, or none, however many replicas
            continue
        if got != want:
            problems.append(f"{metric}: innermost aggregation {got}, want {want} (in {expr!r})")
    return problems
