"""The CSV export quotes every cell that holds a line break, a bare carriage return included:
the id, a categorical value, a class label or a ``model_version`` with ``\\r`` in it comes back
as it was stored, read by Python's csv reader and by ``monitor replay``'s CSV source, and the
file is a reference as it is."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.api import create_app
from monitor.config import parse_config
from monitor.replay import open_source
from monitor.service import Service

NOW = 1_800_000_000.0
CONFIG = """
models:
  - name: m
    task: classification
    classes: [a, "b\\rc"]
    features:
      - {name: x, type: numeric}
      - {name: c, type: categorical}
    window: {duration: 1h}
"""
AWKWARD = ["v\r1", "v\r\n2", "v\n3", 'v"4,', "\r", "v5"]


def stored_records() -> list[dict[str, Any]]:
    return [
        {
            "id": f"r\r{i}",
            "timestamp": NOW - 100 + i,
            "features": {"x": float(i), "c": f"u\r{value}"},
            "prediction": "b\rc" if i % 2 else "a",
            "model_version": value,
        }
        for i, value in enumerate(AWKWARD)
    ]


def test_cells_with_a_carriage_return_are_quoted_and_read_back(engine: Engine) -> None:
    model = parse_config(CONFIG)
    service = Service(model, engine=engine, registry=CollectorRegistry(), clock=lambda: NOW)
    service.start(run_jobs=False)
    records = stored_records()
    with TestClient(create_app(service, manage_service=False, stop_service=True)) as client:
        answer = client.post(
            "/v1/models/m/predictions",
            content=orjson.dumps(records),
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 202, answer.text
        labels = [{"id": r["id"], "label": "b\rc"} for r in records]
        assert client.post("/v1/models/m/labels", json=labels).status_code == 202
        window = {"start": repr(NOW - 3600), "end": repr(NOW), "format": "csv"}
        exported = client.get("/v1/models/m/export", params=window)
        assert exported.status_code == 200
        as_reference = client.put(
            "/v1/models/m/reference", content=exported.content, headers={"content-type": "text/csv"}
        )
        assert as_reference.status_code == 201, as_reference.text
        assert as_reference.json()["n"] == len(records)
    rows = list(csv.DictReader(io.StringIO(exported.content.decode(), newline="")))
    assert [(r["id"], r["c"], r["prediction"], r["label"], r["model_version"]) for r in rows] == [
        (r["id"], r["features"]["c"], r["prediction"], "b\rc", r["model_version"]) for r in records
    ]
    replayed = list(open_source(io.BytesIO(exported.content), model.models[0], "csv"))
    assert [r.prediction for r in replayed] == records
    assert [r.label for r in replayed] == ["b\rc"] * len(records)
