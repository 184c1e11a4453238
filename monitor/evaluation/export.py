"""A window's records as JSON Lines or CSV, for a retraining pipeline (``GET .../export``).

JSON Lines: one object per prediction, ``{"id", "timestamp", "features", "prediction",
"scores", "label", "label_timestamp", "model_version"}`` (timestamps RFC 3339 UTC; ``scores``,
``label``, ``label_timestamp`` and ``model_version`` null when absent). CSV: the columns of
``monitor.csv_columns``, ``id, timestamp, <features in config order>, prediction,
score_<class> for each class (classification), label, label_timestamp, model_version``; a
missing value is an empty cell. Either replays (``monitor replay``) to the same evaluations,
scores and model versions included.

A time RFC 3339 cannot write (stored before ingest refused such times: ``1e300``, a year after
9999) is written as its Unix seconds, a number, rather than failing the export midway.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from monitor import codec, timestamps
from monitor.config import ModelConfig
from monitor.csv_columns import header

Row = tuple[Any, ...]  # id, ts, features, prediction, scores, label, label ts, model version


def _instant(seconds: float | None) -> str | float | None:
    if seconds is None:
        return None
    written = timestamps.rfc3339(seconds)
    return seconds if written is None else written


def jsonl(chunks: Iterable[list[Row]]) -> Iterator[bytes]:
    for rows in chunks:
        lines = [
            orjson.dumps(
                {
                    "id": record_id,
                    "timestamp": _instant(ts),
                    "features": codec.decode(bytes(features)),
                    "prediction": prediction,
                    "scores": None if scores is None else codec.decode(bytes(scores)),
                    "label": label,
                    "label_timestamp": _instant(label_ts),
                    "model_version": version,
                }
            )
            for record_id, ts, features, prediction, scores, label, label_ts, version in rows
        ]
        yield b"\n".join(lines) + b"\n"


class _RowsEndingInLineFeed:
    """What ``csv.writer(lineterminator="\\r\\n")`` writes to, each row ending in ``"\\n"``
    instead. The writer quotes a cell that holds a character of its line terminator: with
    ``"\\n"`` alone it left a bare ``"\\r"`` (an id, a category, a ``model_version``)
    unquoted, and a reader ends the row there."""

    def __init__(self, buffer: io.StringIO) -> None:
        self.buffer = buffer

    def write(self, row: str) -> int:
        return self.buffer.write(row[:-2] + "\n")  # one call per row, ending in "\r\n"


def csv_rows(model: ModelConfig, chunks: Iterable[list[Row]]) -> Iterator[bytes]:
    names = [f.name for f in model.features]
    classes = model.classes or []
    buffer = io.StringIO()
    writer = csv.writer(_RowsEndingInLineFeed(buffer), lineterminator="\r\n")
    writer.writerow(header(names, classes))
    for rows in chunks:
        for record_id, ts, features, prediction, scores, label, label_ts, version in rows:
            values = codec.decode(bytes(features))
            probabilities = {} if scores is None else codec.decode(bytes(scores))
            writer.writerow(
                [
                    record_id,
                    _instant(ts),
                    *(_cell(values.get(name)) for name in names),
                    _cell(prediction),
                    *(_cell(probabilities.get(name)) for name in classes),
                    _cell(label),
                    _instant(label_ts) or "",
                    _cell(version),
                ]
            )
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)
