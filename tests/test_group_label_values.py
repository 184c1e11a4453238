"""Label values that come from traffic (fairness groups without a reference, the versions
``versions: compare`` picks) with quotes, backslashes, line breaks and non-ASCII characters:
``GET /metrics`` stays parseable, in the Prometheus text format and in OpenMetrics, and each
value reads back as sent."""

from __future__ import annotations

import orjson
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from monitor.api import create_app
from monitor.config import parse_config
from monitor.service import Service

NOW = 1_800_000_000.0
CONFIG = """
models:
  - name: m
    task: classification
    classes: [approved, denied]
    features:
      - {name: x, type: numeric}
      - {name: gender, type: categorical}
    window: {duration: 1h}
    min_samples: 5
    versions: compare
    fairness: {sensitive: [gender], positive: approved}
"""
GROUPS = ["a\nb", 'q"uo\\te', "\u2028", "é🙂", "", " "]
VERSIONS = ['v"1\\', "v\n2"]


def label_values(families: list[Metric], name: str, label: str) -> set[str]:
    return {s.labels[label] for f in families for s in f.samples if s.name == name}


def test_hostile_label_values_read_back_as_sent(engine: Engine) -> None:
    service = Service(
        parse_config(CONFIG), engine=engine, registry=CollectorRegistry(), clock=lambda: NOW
    )
    service.start(run_jobs=False)
    records = [
        {
            "id": f"r{i}",
            "timestamp": NOW - 1 - i,
            "features": {"x": float(i % 7), "gender": GROUPS[i % len(GROUPS)]},
            "prediction": "approved" if i % 3 else "denied",
            "model_version": VERSIONS[0] if i % 5 else VERSIONS[1],
        }
        for i in range(120)
    ]
    with TestClient(create_app(service, manage_service=False, stop_service=True)) as client:
        answer = client.post(
            "/v1/models/m/predictions",
            content=orjson.dumps(records),
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 202, answer.text
        assert client.post("/v1/models/m/evaluate").status_code == 200
        text = client.get("/metrics").text
        openmetrics = client.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        ).text
    for families in (
        list(text_string_to_metric_families(text)),
        list(openmetrics_families(openmetrics)),
    ):
        rate = "drift_monitor_fairness_group_selection_rate"
        assert label_values(families, rate, "group") == set(GROUPS)
        assert label_values(families, "drift_monitor_version_records", "version") == set(VERSIONS)
