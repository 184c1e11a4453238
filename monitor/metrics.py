"""Prometheus metrics on an injected registry. Label values come only from the config."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.domain import Evaluation

#: Per-feature statistics exported as drift_monitor_feature_<name>{model,feature}.
FEATURE_STATISTICS = {
    "psi": "Population stability index of the feature, current window vs reference.",
    "ks_statistic": "Two-sample Kolmogorov-Smirnov statistic (numeric features).",
    "ks_pvalue": "Two-sample Kolmogorov-Smirnov p-value (numeric features).",
    "wasserstein": "Wasserstein-1 distance, in the feature's units (numeric features).",
    "wasserstein_normalized": "Wasserstein distance divided by the reference's std deviation.",
    "jensen_shannon": "Jensen-Shannon distance (base 2, in [0, 1]) over the PSI bins.",
    "chi2_statistic": "Chi-square statistic of homogeneity (categorical features).",
    "chi2_pvalue": "Chi-square test p-value (categorical features).",
    "missing_ratio": "Share of the window's records with the feature missing.",
}
STATUS_VALUES = {"ok": 0, "warning": 1, "critical": 2}

REJECT_REASONS = ("invalid_record", "malformed_body", "too_large", "unsupported_media_type")


class Metrics:
    """The service's metrics. Build one per registry; tests pass a fresh ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry, models: list[str]) -> None:
        self.registry = registry
        self.info = Info("drift_monitor_build", "drift-monitor version.", registry=registry)
        self.info.info({"version": __version__})
        self.records_ingested = Counter(
            "drift_monitor_records_ingested",
            "Prediction records stored (duplicates excluded).",
            ["model"],
            registry=registry,
        )
        self.records_duplicate = Counter(
            "drift_monitor_records_duplicate",
            "Prediction records skipped because their id was already stored.",
            ["model"],
            registry=registry,
        )
        self.records_rejected = Counter(
            "drift_monitor_records_rejected",
            "Records refused, by reason (a refused body counts each record it held, or 1).",
            ["model", "reason"],
            registry=registry,
        )
        self.labels_ingested = Counter(
            "drift_monitor_labels_ingested",
            "Ground-truth labels stored (new ids).",
            ["model"],
            registry=registry,
        )
        self.label_corrections = Counter(
            "drift_monitor_label_corrections",
            "Labels that replaced a different earlier label for the same id.",
            ["model"],
            registry=registry,
        )
        self.reference_version = Gauge(
            "drift_monitor_reference_version",
            "Version of the reference data set in force.",
            ["model"],
            registry=registry,
        )
        self.retention_deleted = Counter(
            "drift_monitor_retention_deleted_records",
            "Raw records deleted by the retention sweep.",
            ["kind"],
            registry=registry,
        )
        self.evaluation_duration = Histogram(
            "drift_monitor_evaluation_duration_seconds",
            "Time to evaluate a model: database read, statistics and storing the result.",
            ["model"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.last_evaluation = Gauge(
            "drift_monitor_last_evaluation_timestamp_seconds",
            "Unix time of the model's latest evaluation.",
            ["model"],
            registry=registry,
        )
        for model in models:  # export zeros from the start so rate() works from the first scrape
            self.records_ingested.labels(model)
            self.records_duplicate.labels(model)
            self.labels_ingested.labels(model)
            self.label_corrections.labels(model)
            for reason in REJECT_REASONS:
                self.records_rejected.labels(model, reason)
        for kind in ("predictions", "labels"):
            self.retention_deleted.labels(kind)

    def observe_evaluation(self, evaluation: Evaluation) -> None:
        self.evaluation_duration.labels(evaluation.model).observe(evaluation.duration_seconds)
        self.last_evaluation.labels(evaluation.model).set(evaluation.evaluated_at)


class DriftCollector(Collector):
    """Builds the drift gauges at scrape time from the latest evaluations held in memory:
    a scrape never queries the database."""

    def __init__(self, latest: Callable[[], Mapping[str, Evaluation]]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[GaugeMetricFamily]:
        latest = dict(self._latest())
        families = {
            name: GaugeMetricFamily(
                f"drift_monitor_feature_{name}", text, labels=["model", "feature"]
            )
            for name, text in FEATURE_STATISTICS.items()
        }
        status = GaugeMetricFamily(
            "drift_monitor_feature_status",
            "Feature status: 0 ok, 1 warning, 2 critical (absent when insufficient).",
            labels=["model", "feature"],
        )
        samples = GaugeMetricFamily(
            "drift_monitor_window_samples",
            "Records in the latest evaluation's window: current, and the reference.",
            labels=["model", "window"],
        )
        feature_samples = GaugeMetricFamily(
            "drift_monitor_feature_samples",
            "Non-missing values of the feature in the latest current window.",
            labels=["model", "feature"],
        )
        drifted = GaugeMetricFamily(
            "drift_monitor_drifted_features_ratio",
            "Share of evaluated features whose status is critical.",
            labels=["model"],
        )
        model_status = GaugeMetricFamily(
            "drift_monitor_model_status",
            "Worst feature status of the model: 0 ok, 1 warning, 2 critical.",
            labels=["model"],
        )
        for model, evaluation in sorted(latest.items()):
            samples.add_metric([model, "current"], evaluation.window.n)
            samples.add_metric([model, "reference"], evaluation.reference_n)
            if evaluation.drifted_share is not None:
                drifted.add_metric([model], evaluation.drifted_share)
            if evaluation.status in STATUS_VALUES:
                model_status.add_metric([model], STATUS_VALUES[evaluation.status])
            for feature in (*evaluation.features, *evaluation.outputs):
                feature_samples.add_metric([model, feature.name], feature.n)
                if feature.status in STATUS_VALUES:
                    status.add_metric([model, feature.name], STATUS_VALUES[feature.status])
                for name, value in feature.statistics.items():
                    if value is not None and name in families:
                        families[name].add_metric([model, feature.name], value)
        yield from families.values()
        yield status
        yield feature_samples
        yield samples
        yield drifted
        yield model_status
