"""Prometheus metrics on an injected registry. Label values come only from the config."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

from monitor import __version__

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
        for model in models:  # export zeros from the start so rate() works from the first scrape
            self.records_ingested.labels(model)
            self.records_duplicate.labels(model)
            self.labels_ingested.labels(model)
            self.label_corrections.labels(model)
            for reason in REJECT_REASONS:
                self.records_rejected.labels(model, reason)
        for kind in ("predictions", "labels"):
            self.retention_deleted.labels(kind)
