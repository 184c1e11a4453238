"""Segment and fairness gauges, built at scrape time from the latest evaluations in memory.

Only these series carry the group labels: ``segment`` (the segment's name) and
``segment_value`` (one of its configured or reference values, or ``__other__``) on the
``drift_monitor_segment_*`` series; ``sensitive`` and ``group`` on ``drift_monitor_fairness_*``.
Group values are bounded by the config (a segment's values, or at most
``drift.max_categories`` reference categories), never by traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.domain import Evaluation
from monitor.metrics import FEATURE_STATISTICS, PERFORMANCE_METRICS, STATUS_VALUES

FAIRNESS_METRICS = {
    "demographic_parity_difference": "Largest minus smallest selection rate across the groups.",
    "demographic_parity_ratio": "Smallest over largest selection rate across the groups.",
    "equalized_odds_difference": "The larger of the TPR and FPR differences across the groups.",
    "equalized_odds_ratio": "The smaller of the TPR and FPR ratios across the groups.",
    "equal_opportunity_difference": "Largest minus smallest true positive rate across groups.",
}
GROUP_RATES = {
    "selection_rate": "Share of the group's predictions that are the positive class.",
    "accuracy": "Accuracy over the group's labelled predictions.",
    "true_positive_rate": "Share of the group's labelled positives predicted positive.",
    "false_positive_rate": "Share of the group's labelled negatives predicted positive.",
    "predictions": "Predictions of the group in the latest evaluation's window.",
    "labelled": "Labelled predictions of the group in the latest evaluation's window.",
}
SEGMENT_LABELS = ["model", "segment", "segment_value"]


class GroupsCollector(Collector):
    def __init__(self, latest: Callable[[], Mapping[str, Evaluation]]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[GaugeMetricFamily]:
        latest = sorted(dict(self._latest()).items())
        drift = {
            name: GaugeMetricFamily(
                f"drift_monitor_segment_feature_{name}",
                f"Per segment value: {text}",
                labels=[*SEGMENT_LABELS, "feature"],
            )
            for name, text in FEATURE_STATISTICS.items()
        }
        performance = {
            name: GaugeMetricFamily(
                f"drift_monitor_segment_model_{name}",
                f"Per segment value: {text}",
                labels=SEGMENT_LABELS,
            )
            for name, text in PERFORMANCE_METRICS.items()
            if name != "estimated_accuracy"  # needs a calibration: the whole model's only
        }
        samples = GaugeMetricFamily(
            "drift_monitor_segment_samples",
            "Records of the segment value in the latest window: all, and labelled.",
            labels=[*SEGMENT_LABELS, "kind"],
        )
        status = GaugeMetricFamily(
            "drift_monitor_segment_status",
            "Worst drift or performance status of the segment value: 0 ok, 1 warning,"
            " 2 critical (absent when insufficient).",
            labels=SEGMENT_LABELS,
        )
        fairness = {
            name: GaugeMetricFamily(
                f"drift_monitor_fairness_{name}", text, labels=["model", "sensitive"]
            )
            for name, text in FAIRNESS_METRICS.items()
        }
        rates = {
            name: GaugeMetricFamily(
                f"drift_monitor_fairness_group_{name}", text, labels=["model", "sensitive", "group"]
            )
            for name, text in GROUP_RATES.items()
        }
        fairness_status = GaugeMetricFamily(
            "drift_monitor_fairness_status",
            "Fairness status per sensitive feature: 0 ok, 1 warning, 2 critical (absent when"
            " insufficient).",
            labels=["model", "sensitive"],
        )
        for model, evaluation in latest:
            for result in evaluation.segments:
                if result.refused is not None:
                    continue
                key = [model, result.segment, result.value]
                samples.add_metric([*key, "all"], result.n)
                if result.status in STATUS_VALUES:
                    status.add_metric(key, STATUS_VALUES[result.status])
                for feature in (*result.features, *result.outputs):
                    for name, value in feature.statistics.items():
                        if value is not None and name in drift:
                            drift[name].add_metric([*key, feature.name], value)
                if result.performance is not None:
                    samples.add_metric([*key, "labelled"], result.performance.n)
                    values = dict(result.performance.metrics)
                    for name, (lower, upper) in result.performance.intervals.items():
                        values[f"{name}_lower"], values[f"{name}_upper"] = lower, upper
                    for name, value in values.items():
                        if value is not None and name in performance:
                            performance[name].add_metric(key, value)
            for found in evaluation.fairness:
                if found.status in STATUS_VALUES:
                    fairness_status.add_metric([model, found.feature], STATUS_VALUES[found.status])
                for name, value in found.metrics.items():
                    if value is not None and name in fairness:
                        fairness[name].add_metric([model, found.feature], value)
                for group, group_rates in found.groups.items():
                    for name, value in group_rates.items():
                        if value is not None and name in rates:
                            rates[name].add_metric([model, found.feature, group], value)
        yield from drift.values()
        yield from performance.values()
        yield samples
        yield status
        yield from fairness.values()
        yield from rates.values()
        yield fairness_status
