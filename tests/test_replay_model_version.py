"""``monitor replay`` reads ``model_version`` from every format: a JSON Lines record carries it
as an ingest record does; CSV and Parquet have an optional ``model_version`` column, whose empty
cell (null) is a record without one."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load_config
from monitor.replay.sources import open_source

CONFIG = """
models:
  - name: m
    task: classification
    classes: [a, b]
    features:
      - {name: x, type: numeric}
      - {name: c, type: categorical}
    window: {duration: 1h}
"""
ROWS: list[dict[str, Any]] = [
    {"id": "r1", "timestamp": "2026-11-02T00:00:10Z", "x": 1.5, "c": "u", "prediction": "a",
     "label": "a", "model_version": "v1"},
    {"id": "r2", "timestamp": "2026-11-02T00:00:20Z", "x": 2.5, "c": "v", "prediction": "b",
     "label": "a", "model_version": "v2"},
    {"id": "r3", "timestamp": "2026-11-02T00:00:30Z", "x": 3.5, "c": "u", "prediction": "b",
     "label": "b", "model_version": None},
]  # fmt: skip


def jsonl() -> bytes:
    lines = []
    for row in ROWS:
        record = {
            "id": row["id"],
            "timestamp": row["timestamp"],
            "features": {"x": row["x"], "c": row["c"]},
            "prediction": row["prediction"],
            "label": row["label"],
        }
        if row["model_version"] is not None:
            record["model_version"] = row["model_version"]
        lines.append(json.dumps(record) + "\n")
    return "".join(lines).encode()


def table_csv() -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(ROWS[0]), lineterminator="\n")
    writer.writeheader()
    for row in ROWS:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue().encode()


def table_parquet() -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(ROWS), out)
    return out.getvalue()


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet"])
def test_every_format_reads_each_records_model_version(tmp_path: Path, file_format: str) -> None:
    (tmp_path / "monitor.yaml").write_text(CONFIG)
    model = load_config(tmp_path / "monitor.yaml", environ={}).models[0]
    data = {"jsonl": jsonl, "csv": table_csv, "parquet": table_parquet}[file_format]()
    records = list(open_source(io.BytesIO(data), model, file_format))  # type: ignore[arg-type]
    assert [r.prediction.get("model_version") for r in records] == ["v1", "v2", None]
    assert "model_version" not in records[2].prediction  # an empty cell: no version
    assert [r.prediction["features"] for r in records] == [
        {"x": row["x"], "c": row["c"]} for row in ROWS
    ]
