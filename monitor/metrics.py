"""Prometheus metrics on an injected registry. Label values come only from the config."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
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

#: Model performance exported as drift_monitor_model_<name>{model}.
PERFORMANCE_METRICS = {
    "accuracy": "Accuracy over the window's labelled predictions.",
    "accuracy_lower": "Lower end of the accuracy's 95% Wilson interval.",
    "accuracy_upper": "Upper end of the accuracy's 95% Wilson interval.",
    "precision": "Macro-averaged precision over the window's labelled predictions.",
    "recall": "Macro-averaged recall over the window's labelled predictions.",
    "f1": "Macro-averaged F1 over the window's labelled predictions.",
    "roc_auc": "ROC AUC (binary; one-vs-rest macro for multi-class), from scores.",
    "average_precision": "Average precision (binary; one-vs-rest macro), from scores.",
    "log_loss": "Log loss of the scores.",
    "mae": "Mean absolute error (regression), in target units.",
    "rmse": "Root mean squared error (regression), in target units.",
    "mape": "Mean absolute percentage error over non-zero targets, as a fraction.",
    "r2": "Coefficient of determination (regression).",
    "estimated_accuracy": "Accuracy estimated from calibrated scores alone (CBPE), no labels.",
}

REJECT_REASONS = ("invalid_record", "malformed_body", "too_large", "unsupported_media_type")
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed", "lease_lost")
#: DB-API exception classes (PEP 249) counted by name; anything else counts as "other".
DATABASE_ERROR_KINDS = (
    "OperationalError",
    "IntegrityError",
    "InterfaceError",
    "ProgrammingError",
    "DataError",
    "InternalError",
    "NotSupportedError",
    "other",
)


class Metrics:
    """The service's metrics. Build one per registry; tests pass a fresh ``CollectorRegistry``."""

    def __init__(
        self, registry: CollectorRegistry, models: list[str], routes: list[str] | None = None
    ) -> None:
        self.registry = registry
        self.info = Info(
            "drift_monitor_build",
            "The running drift-monitor version (label version).",
            registry=registry,
        )
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
            "Records refused, by reason: invalid_record counts each invalid record of a refused "
            "batch; malformed_body, too_large and unsupported_media_type count 1 per request.",
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
            "Raw records deleted by the retention sweep, by kind (predictions, labels).",
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
        self.label_delay = Histogram(
            "drift_monitor_label_delay_seconds",
            "Label time minus prediction time, observed when a label arrives for a stored "
            "prediction.",
            ["model"],
            registry=registry,
            buckets=(
                60,
                300,
                900,
                3600,
                4 * 3600,
                12 * 3600,
                86400,
                3 * 86400,
                7 * 86400,
                14 * 86400,
                30 * 86400,
            ),
        )
        self.last_evaluation = Gauge(
            "drift_monitor_last_evaluation_timestamp_seconds",
            "Unix time of the model's latest evaluation.",
            ["model"],
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "drift_monitor_webhook_deliveries",
            "Webhook delivery attempts by route and outcome: delivered, retry (to be tried "
            "again), failed (given up, or refused without retrying), lease_lost (the attempt "
            "outlived its lease and another replica took the delivery over: not recorded).",
            ["route", "outcome"],
            registry=registry,
        )
        self.webhook_backlog = Gauge(
            "drift_monitor_webhook_outbox_pending",
            "Webhook deliveries waiting in the outbox (not yet delivered nor given up), by route; "
            "a count in the database, the same on every replica, updated every second.",
            ["route"],
            registry=registry,
        )
        self.alerts_firing = Gauge(
            "drift_monitor_alerts_firing",
            "Number of alerts firing, by model, rule (the statistic) and severity: a rule over "
            "features counts one alert per breaching feature; 0 when none fires.",
            ["model", "rule", "severity"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "drift_monitor_http_request_duration_seconds",
            "HTTP requests by route template (unmatched for unknown paths), method and status "
            "class (2xx, 4xx, ...), with their latency.",
            ["route", "method", "code"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.database_errors = Counter(
            "drift_monitor_database_errors",
            "Errors the database driver raised, by kind (OperationalError: unreachable, locked "
            "or failing; IntegrityError; ...), on requests and in background jobs alike.",
            ["kind"],
            registry=registry,
        )
        for kind in DATABASE_ERROR_KINDS:
            self.database_errors.labels(kind)
        self.threshold = Gauge(
            "drift_monitor_threshold",
            "A threshold level set in the config (monitor.yaml), by model, statistic and "
            "severity, so dashboards draw it and Prometheus rules compare against it (per-feature "
            "overrides are not exported).",
            ["model", "statistic", "severity"],
            registry=registry,
        )
        self.cloudevents_unpaired = Counter(
            "drift_monitor_cloudevents_unpaired",
            "Logged CloudEvents (request or response halves) dropped because their other half "
            "did not arrive within server.cloudevents.pair_timeout; some unpaired requests are "
            "normal (KServe logs a response only when the model answered 200).",
            ["model", "kind"],
            registry=registry,
        )
        for route in routes or []:
            for outcome in WEBHOOK_OUTCOMES:
                self.webhook_deliveries.labels(route, outcome)
            self.webhook_backlog.labels(route)
        for model in models:  # export zeros from the start so rate() works from the first scrape
            self.records_ingested.labels(model)
            self.records_duplicate.labels(model)
            self.labels_ingested.labels(model)
            self.label_corrections.labels(model)
            for half in ("request", "response"):
                self.cloudevents_unpaired.labels(model, half)
            for reason in REJECT_REASONS:
                self.records_rejected.labels(model, reason)
        for kind in ("predictions", "labels"):
            self.retention_deleted.labels(kind)

    def observe_evaluation(self, evaluation: Evaluation) -> None:
        self.evaluation_duration.labels(evaluation.model).observe(evaluation.duration_seconds)
        self.last_evaluation.labels(evaluation.model).set(evaluation.evaluated_at)


class WithoutCreated:
    """What ``/metrics`` exposes of a registry: every family, less the ``<name>_created``
    samples of counters and histograms (their creation times, one series per labelled child:
    an eighth of a scrape that no rule or dashboard reads). Local to this view, unlike
    prometheus_client's process-global ``disable_created_metrics()``."""

    def __init__(self, registry: Collector) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            created = f"{family.name}_created"
            if any(sample.name == created for sample in family.samples):
                trimmed = Metric(family.name, family.documentation, family.type, family.unit)
                trimmed.samples = [s for s in family.samples if s.name != created]
                family = trimmed
            yield family


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
            "Feature status: 0 ok, 1 warning, 2 critical (absent when insufficient or without a "
            "reference).",
            labels=["model", "feature"],
        )
        samples = GaugeMetricFamily(
            "drift_monitor_window_samples",
            "Records in the latest evaluation: window=current (the current window) and "
            "window=reference.",
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
            "Worst status of the model's features (and drifted_share thresholds): 0 ok, "
            "1 warning, 2 critical.",
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
        performance = {
            name: GaugeMetricFamily(f"drift_monitor_model_{name}", text, labels=["model"])
            for name, text in PERFORMANCE_METRICS.items()
        }
        performance_samples = GaugeMetricFamily(
            "drift_monitor_performance_samples",
            "Labelled predictions in the latest evaluation's window.",
            labels=["model"],
        )
        performance_status = GaugeMetricFamily(
            "drift_monitor_performance_status",
            "Performance status: 0 ok, 1 warning, 2 critical (absent when insufficient).",
            labels=["model"],
        )
        coverage = GaugeMetricFamily(
            "drift_monitor_label_coverage_ratio",
            "Labelled predictions / predictions in the latest evaluation's window.",
            labels=["model"],
        )
        unmatched = GaugeMetricFamily(
            "drift_monitor_labels_unmatched",
            "Labels stored for ids that have no prediction (yet).",
            labels=["model"],
        )
        resolved = GaugeMetricFamily(
            "drift_monitor_threshold_resolved",
            "An auto threshold level as resolved for the latest evaluation's window, by model,"
            " feature ('' for a model-level rule), statistic and severity; the shipped alerting"
            " rules compare with it.",
            labels=["model", "feature", "statistic", "severity"],
        )
        resolved_samples = GaugeMetricFamily(
            "drift_monitor_threshold_resolved_samples",
            "The window size (n) an auto threshold level was resolved for.",
            labels=["model", "feature", "statistic"],
        )

        def add_resolved(model: str, feature: str, levels: Mapping[str, Any]) -> None:
            for statistic, level in sorted(levels.items()):
                for severity in ("warning", "critical"):
                    if level.get(severity) is not None:
                        resolved.add_metric([model, feature, statistic, severity], level[severity])
                resolved_samples.add_metric([model, feature, statistic], level["n"])

        for model, evaluation in sorted(latest.items()):
            for feature in (*evaluation.features, *evaluation.outputs):
                add_resolved(model, feature.name, feature.levels)
            if evaluation.performance is not None:
                add_resolved(model, "", evaluation.performance.levels)
        for model, evaluation in sorted(latest.items()):
            if evaluation.performance is not None:
                result = evaluation.performance
                performance_samples.add_metric([model], result.n)
                if result.status in STATUS_VALUES:
                    performance_status.add_metric([model], STATUS_VALUES[result.status])
                values = dict(result.metrics)
                for name, (lower, upper) in result.intervals.items():
                    values[f"{name}_lower"], values[f"{name}_upper"] = lower, upper
                for name, value in values.items():
                    if value is not None and name in performance:
                        performance[name].add_metric([model], value)
            if evaluation.labels is not None:
                if evaluation.labels.coverage is not None:
                    coverage.add_metric([model], evaluation.labels.coverage)
                unmatched.add_metric([model], evaluation.labels.unmatched)
        yield resolved
        yield resolved_samples
        yield from performance.values()
        yield performance_samples
        yield performance_status
        yield coverage
        yield unmatched
        yield from families.values()
        yield status
        yield feature_samples
        yield samples
        yield drifted
        yield model_status
        yield from _version_families(latest)


# -- model versions: canary against stable (issue 16, item 3) ---------------------------------


def _version_families(latest: Mapping[str, Evaluation]) -> Iterator[GaugeMetricFamily]:
    """Only the two compared versions are label values (named in the config, or with
    ``versions: compare`` the window's two most frequent): never every version the traffic
    names, so the series stay bounded. A version's performance metrics are named like the
    model's (``drift_monitor_model_<metric>``): ``drift_monitor_version_model_<metric>`` with a
    ``version`` label, one family per metric, so each keeps its direction (accuracy worse when
    lower, MAE when higher) for the alert rules and dashboards."""
    records = GaugeMetricFamily(
        "drift_monitor_version_records",
        "Records of the compared model versions (stable, canary) in the latest window.",
        labels=["model", "version"],
    )
    psi = GaugeMetricFamily(
        "drift_monitor_canary_psi",
        "PSI of the canary version's records against the stable version's, same window.",
        labels=["model", "feature", "stable", "canary"],
    )
    delta = GaugeMetricFamily(
        "drift_monitor_canary_accuracy_delta",
        "Canary accuracy minus stable accuracy in the latest window, with Newcombe's interval"
        " (bound: value, lower, upper).",
        labels=["model", "stable", "canary", "bound"],
    )
    performance = {
        name: GaugeMetricFamily(
            f"drift_monitor_version_model_{name}",
            f"Per compared model version: {text}",
            labels=["model", "version"],
        )
        for name, text in PERFORMANCE_METRICS.items()
        if name != "estimated_accuracy"  # needs a calibration: the whole model's only
    }
    labelled = GaugeMetricFamily(
        "drift_monitor_version_performance_samples",
        "Labelled predictions of the compared model version in the latest window (those its"
        " drift_monitor_version_model_* metrics are over).",
        labels=["model", "version"],
    )
    for model, evaluation in sorted(latest.items()):
        canary = evaluation.canary
        if canary is None:
            continue
        pair = [canary.stable.version, canary.canary.version]
        for summary in (canary.stable, canary.canary):
            records.add_metric([model, summary.version], summary.n)
            if summary.performance is None:
                continue
            labelled.add_metric([model, summary.version], summary.performance.n)
            values = dict(summary.performance.metrics)
            for name, (lower, upper) in summary.performance.intervals.items():
                values[f"{name}_lower"], values[f"{name}_upper"] = lower, upper
            for name, value in values.items():
                if value is not None and name in performance:
                    performance[name].add_metric([model, summary.version], value)
        for feature in canary.drift:
            value = feature.statistics.get("psi")
            if value is not None:
                psi.add_metric([model, feature.name, *pair], value)
        bounds = {
            "value": canary.accuracy_delta,
            "lower": canary.accuracy_delta_lower,
            "upper": canary.accuracy_delta_upper,
        }
        for bound, value in bounds.items():
            if value is not None:
                delta.add_metric([model, *pair, bound], value)
    yield records
    yield psi
    yield delta
    yield from performance.values()
    yield labelled
