"""Quiet by default (issue 14 item 5): the example config, replayed over a week of hourly
windows resampled from its own reference (no drift), raises no alert; the same week with the
fixed levels it used to ship (PSI 0.1/0.25, KS p 0.01, accuracy 0.9/0.8, against a reference
whose own accuracy is 0.904) raises many. The demo's config stays quiet over many windows of its
own undrifted traffic."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.config import parse_config
from monitor.demo import config_file
from monitor.demo.traffic import MODEL, make_record, reference_records
from monitor.service import Service
from monitor.storage import create_database_engine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
START = 1_800_000_000.0
FIXED = """    thresholds:
      psi: {warning: 0.1, critical: 0.25}
      ks_pvalue: {critical: 0.01, features: [age]}
      accuracy: {warning: 0.9, critical: 0.8}
"""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def example_service(tmp_path: Path, clock: Clock, *, fixed: bool = False) -> Service:
    text = (EXAMPLES / "monitor.yaml").read_text()
    if fixed:
        start = text.index("    thresholds:")
        end = text.index("    drift:")
        text = text[:start] + FIXED + text[end:]
    config = parse_config(text, base_dir=EXAMPLES, environ={})
    engine = create_database_engine(f"sqlite:///{tmp_path / 'week.db'}")
    service = Service(config, engine=engine, registry=CollectorRegistry(), clock=clock)
    service.start(run_jobs=False)
    return service


def replay_hours(service: Service, clock: Clock, hours: int, *, per_hour: int = 360) -> int:
    """Hourly windows resampled from the reference, each evaluated at its end; the number of
    alert events recorded."""
    rows = list(csv.DictReader((EXAMPLES / "data" / "reference.csv").open()))
    rng = np.random.default_rng(14)
    for hour in range(hours):
        picks = rng.integers(len(rows), size=per_hour)
        times = np.sort(rng.uniform(0, 3600, per_hour)) + START + hour * 3600
        records = []
        labels = []
        for i, (pick, t) in enumerate(zip(picks, times, strict=True)):
            row = rows[int(pick)]
            record_id = f"h{hour}-{i}"
            records.append(
                {
                    "id": record_id,
                    "timestamp": float(t),
                    "features": {
                        "age": float(row["age"]),
                        "income": float(row["income"]),
                        "country": row["country"],
                    },
                    "prediction": row["prediction"],
                }
            )
            labels.append({"id": record_id, "label": row["label"]})
        clock.now = START + (hour + 1) * 3600
        service.store_predictions("credit", records)
        service.store_labels("credit", labels)
        service.evaluate("credit", at=clock.now, webhooks=False)
    return len(service.alert_history(model="credit", since=None, limit=1000))


def test_the_example_config_is_quiet_for_a_week_like_its_reference(tmp_path: Path) -> None:
    clock = Clock()
    service = example_service(tmp_path, clock)
    assert replay_hours(service, clock, 168) == 0
    service.stop()


def test_the_fixed_levels_it_replaces_cry_wolf_on_the_same_data(tmp_path: Path) -> None:
    clock = Clock()
    service = example_service(tmp_path, clock, fixed=True)
    assert replay_hours(service, clock, 24) >= 5
    service.stop()


def test_the_demo_config_is_quiet_on_its_own_undrifted_traffic(tmp_path: Path) -> None:
    with config_file() as path:
        text = path.read_text()
    config = parse_config(text, environ={"MONITOR_DEMO_DATABASE_URL": "sqlite://"})
    clock = Clock()
    engine = create_database_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    service = Service(config, engine=engine, registry=CollectorRegistry(), clock=clock)
    service.start(run_jobs=False)
    service.store_reference(MODEL, reference_records(), source="test")
    rng = random.Random(5)
    window = 120.0  # the demo's 2-minute window at ~40 records a second
    for step in range(15):
        records = []
        labels = []
        for i in range(4800):
            record, label = make_record(rng, drifted=False)
            record_id = f"s{step}-{i}"
            timestamp = START + step * window + i * window / 4800
            records.append({"id": record_id, "timestamp": timestamp, **record})
            labels.append({"id": record_id, "label": label})
        clock.now = START + (step + 1) * window
        for first in range(0, 4800, 1200):
            service.store_predictions(MODEL, records[first : first + 1200])
            service.store_labels(MODEL, labels[first : first + 1200])
        service.evaluate(MODEL, at=clock.now, webhooks=False)
    assert service.alert_history(model=MODEL, since=None, limit=1000) == []
    service.stop()
