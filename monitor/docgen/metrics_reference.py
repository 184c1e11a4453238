"""The metrics reference: every metric family a running service exports, read from its registry
(name as scraped, type, labels, help text).

``exported_families`` builds a real ``Service`` on a throw-away SQLite file with a config that
touches every kind of metric (a classification model with scores, labels, numeric and ``auto``
thresholds, a webhook route), evaluates it once and collects the registry, so the table is what
``GET /metrics`` shows, custom collectors included.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

#: A model that exercises every family: classification with scores and labels, numeric and
#: ``auto`` levels (resolved levels), a route (webhook metrics).
_CONFIG = """
models:
  - name: m
    task: classification
    classes: [a, b]
    min_samples: 1
    features: [{name: x, type: numeric}, {name: c, type: categorical}]
    calibration: {false_alarms_per_week: 1}
    thresholds:
      psi: {warning: auto, critical: auto}
      accuracy: {warning: 0.9, critical: 0.8}
    alerts: {routes: [hook]}
webhooks:
  - {name: hook, url: "http://127.0.0.1:9/hook", allow_private: true}
"""

#: Label names that only a histogram's or summary's own series carry.
_SERIES_LABELS = {"le", "quantile"}


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: ``name`` as scraped (``_total`` on counters, ``_info`` on infos)."""

    name: str
    family: str
    type: str
    labels: tuple[str, ...]
    help: str


def _scraped_name(family: str, kind: str) -> str:
    return {"counter": f"{family}_total", "info": f"{family}_info"}.get(kind, family)


def families_of(registry: CollectorRegistry) -> list[Family]:
    """Every family the registry's collectors yield, sorted by name. Label names come from the
    collector or family declaring them (so a family without series yet still has them), else
    from its series."""
    found: dict[str, Family] = {}
    # a metric object declares its label names, a custom collector's family its own
    collectors: list[Any] = list(registry._collector_to_names)
    for collector in collectors:
        for metric in collector.collect():
            declared: tuple[str, ...] = tuple(
                getattr(collector, "_labelnames", ()) or getattr(metric, "_labelnames", ())
            )
            seen = {key for sample in metric.samples for key in sample.labels}
            labels = tuple(declared) or tuple(sorted(seen - _SERIES_LABELS))
            found[metric.name] = Family(
                name=_scraped_name(metric.name, metric.type),
                family=metric.name,
                type=metric.type,
                labels=labels,
                help=metric.documentation,
            )
    return sorted(found.values(), key=lambda family: family.name)


def exported_families() -> list[Family]:
    """The families of a service that stored a reference, predictions and labels and
    evaluated once."""
    from monitor.config import parse_config
    from monitor.service import Service
    from monitor.storage import create_database_engine

    with tempfile.TemporaryDirectory(prefix="drift-monitor-docgen-") as directory:
        engine = create_database_engine(f"sqlite:///{Path(directory) / 'docgen.db'}")
        service = Service(parse_config(_CONFIG), engine=engine, registry=CollectorRegistry())
        service.start(run_jobs=False)
        try:
            reference = [
                {
                    "features": {"x": float(i % 7), "c": "uv"[i % 2]},
                    "prediction": "ab"[i % 2],
                    "label": "ab"[i % 3 == 0],
                    "scores": {"a": 0.3, "b": 0.7} if i % 2 else {"a": 0.8, "b": 0.2},
                }
                for i in range(60)
            ]
            service.store_reference("m", reference, source="docgen")
            records = [
                {
                    "id": str(i),
                    "features": {"x": float(i % 5), "c": "uv"[i % 3 == 0]},
                    "prediction": "ab"[i % 2],
                    "scores": {"a": 0.4, "b": 0.6},
                }
                for i in range(20)
            ]
            service.store_predictions("m", records)
            service.store_labels(
                "m", [{"id": str(i), "label": "ab"[i % 4 == 0]} for i in range(20)]
            )
            service.evaluate("m")
            return families_of(service.registry)
        finally:
            service.stop()
            engine.dispose()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def metrics_reference(families: list[Family] | None = None) -> str:
    """The Markdown table of ``families`` (by default the service's)."""
    rows = exported_families() if families is None else families
    lines = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
    for family in rows:
        labels = ", ".join(f"`{label}`" for label in family.labels) or "none"
        cells = [f"`{family.name}`", family.type, labels, family.help]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"
