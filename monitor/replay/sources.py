"""Readers of past predictions: CSV, JSON Lines and Parquet streams to ``ReplayRecord`` s.

Each reader takes an open binary stream and the model's config, yields one record per row in
file order, and holds one row (Parquet: one record batch) at a time, so memory stays constant
in the file's size. A reader checks what it must understand to replay a row (its timestamps,
the numbers of numeric cells); everything else is left to the ingest validator, which the
replay applies to every batch exactly as the HTTP API does.

JSON Lines: one object per line, shaped like an ingest record (``id``, ``timestamp``,
``features``, ``prediction``, ``scores``) plus optional ``label`` and ``label_timestamp``.
CSV and Parquet: the columns of ``monitor.csv_columns`` (what the CSV export writes): ``id``,
``timestamp``, ``prediction``, optional ``label``, ``label_timestamp``, ``score_<class>`` and
``model_version``, and one column per feature of the model. An empty CSV cell (a Parquet null
or NaN) is a missing value.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

from monitor import timestamps
from monitor.config import ModelConfig
from monitor.csv_columns import kind_of, score_class
from monitor.errors import ReplayInputError, RowIssue

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl", "parquet")
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
PARQUET_BATCH_ROWS = 4096


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """One row: the prediction as an ingest record (``timestamp`` in Unix seconds), and its
    label with the time the label became known, if the row has one. ``position`` is how far
    the source had read when it gave the row (``Source.position``: the end of the row)."""

    line: int
    timestamp: float
    prediction: dict[str, Any]
    label: Any = None
    label_timestamp: float | None = None
    position: int = 0


def format_of(name: str) -> Format | None:
    """The format a file name's extension says, if any.

    >>> format_of("logs/2026-11.csv"), format_of("x.NDJSON"), format_of("data.bin")
    ('csv', 'jsonl', None)
    """
    dot = name.rfind(".")
    return None if dot < 0 else _SUFFIXES.get(name[dot:].lower())


def parse_instant(value: object) -> float:
    """Unix seconds from a number, an RFC 3339 string with offset, or a ``datetime`` (one
    without time zone, as a Parquet timestamp column without one gives, is taken as UTC), in
    the fixed range of ``monitor.timestamps`` (the service checks how far ahead of its clock).

    >>> parse_instant("2026-11-23T12:00:00Z"), parse_instant("1795435200"), parse_instant(5)
    (1795435200.0, 1795435200.0, 5.0)
    >>> parse_instant("1e300")
    Traceback (most recent call last):
    ...
    monitor.timestamps.TimestampRangeError: must not be after 9999-12-31T23:59:59Z
    """
    return timestamps.check(_seconds(value), now=None, max_future_seconds=0.0)


def _seconds(value: object) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError("must be an RFC 3339 date-time or Unix seconds") from None
            if parsed.tzinfo is None:
                raise ValueError("needs a UTC offset (Z or +hh:mm)") from None
            return parsed.timestamp()
        return seconds
    raise ValueError("must be an RFC 3339 date-time or Unix seconds")


class Source:
    """A reader: iterate it for records. ``position`` and ``size`` measure progress in one
    unit (bytes, or rows for Parquet); ``size`` is ``None`` when unknown."""

    unit = "bytes"

    def __init__(self) -> None:
        self.position = 0
        self.size: int | None = None

    def __iter__(self) -> Iterator[ReplayRecord]:
        raise NotImplementedError


def _row_error(line: int, field: str, reason: str) -> ReplayInputError:
    return ReplayInputError([RowIssue(line, field, reason)])


def _record(
    line: int, prediction: dict[str, Any], label: Any, label_time: object, position: int
) -> ReplayRecord:
    """Take the timestamps out of a row (the replay orders and schedules by them)."""
    if prediction.get("timestamp") is None:
        raise _row_error(line, "timestamp", "is required to replay a record")
    try:
        timestamp = parse_instant(prediction["timestamp"])
    except ValueError as exc:
        raise _row_error(line, "timestamp", str(exc)) from None
    prediction["timestamp"] = timestamp
    label_timestamp = None
    if label is not None and label_time is not None:
        try:
            label_timestamp = parse_instant(label_time)
        except ValueError as exc:
            raise _row_error(line, "label_timestamp", str(exc)) from None
    return ReplayRecord(line, timestamp, prediction, label, label_timestamp, position)


class _Lines:
    """The lines of a binary stream, decoded, counting the bytes read."""

    def __init__(self, stream: IO[bytes], source: Source) -> None:
        self._stream = stream
        self._source = source

    def __iter__(self) -> Iterator[str]:
        first = True
        for raw in self._stream:
            self._source.position += len(raw)
            text = raw.decode("utf-8")
            if first:
                text = text.removeprefix("\ufeff")
                first = False
            yield text


class JsonLinesSource(Source):
    def __init__(self, stream: IO[bytes], *, size: int | None = None) -> None:
        super().__init__()
        self._stream = stream
        self.size = size

    def __iter__(self) -> Iterator[ReplayRecord]:
        for line, text in enumerate(_Lines(self._stream, self), start=1):
            if not text.strip():
                continue
            try:
                row = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise _row_error(line, "", f"not JSON: {exc}") from None
            if type(row) is not dict:
                raise _row_error(line, "", "must be an object")
            label = row.pop("label", None)
            label_time = row.pop("label_timestamp", None)
            yield _record(line, row, label, label_time, self.position)


class _Columns:
    """Maps a row of named cells (CSV text, or Parquet values) to a record."""

    def __init__(self, model: ModelConfig, columns: list[str]) -> None:
        self.numeric = {f.name for f in model.features if f.type == "numeric"}
        self.regression = model.task == "regression"
        features = {f.name for f in model.features}
        problems = []
        for required in ("id", "timestamp", "prediction"):
            if required not in columns:
                problems.append(RowIssue(1, required, "column is missing"))
        self.scores: dict[str, str] = {}
        self.features: list[str] = []
        for column in columns:
            kind = kind_of(column, features)
            if kind == "record":
                continue
            if kind == "score":
                self.scores[column] = score_class(column)
            elif kind == "feature":
                self.features.append(column)
            else:
                problems.append(
                    RowIssue(1, column, f"column is not a feature of model {model.name!r}")
                )
        for name in sorted(features - set(self.features)):
            problems.append(RowIssue(1, name, "no column for this feature"))
        if problems:
            raise ReplayInputError(problems)

    def record(self, line: int, row: dict[str, Any], position: int) -> ReplayRecord:
        features = {
            name: self._cell(line, f"features.{name}", row.get(name), name in self.numeric)
            for name in self.features
        }
        prediction: dict[str, Any] = {
            "id": self._missing(row.get("id")),
            "timestamp": self._missing(row.get("timestamp")),
            "features": features,
            "prediction": self._cell(line, "prediction", row.get("prediction"), self.regression),
        }
        scores = {}
        for column, label in self.scores.items():
            value = self._cell(line, column, row.get(column), True)
            if value is not None:
                scores[label] = value
        if scores:
            prediction["scores"] = scores
        version = self._missing(row.get("model_version"))
        if version is not None:
            prediction["model_version"] = version  # the validator checks it
        label = self._cell(line, "label", row.get("label"), self.regression)
        label_time = self._missing(row.get("label_timestamp"))
        return _record(line, prediction, label, label_time, position)

    @staticmethod
    def _missing(value: Any) -> Any:
        if value is None or value == "" or (type(value) is float and math.isnan(value)):
            return None
        return value

    def _cell(self, line: int, field: str, value: Any, numeric: bool) -> Any:
        """A cell's value: ``None`` when missing, a float for a numeric column written as text;
        anything else as it is, for the validator to judge."""
        value = self._missing(value)
        if value is None or not numeric or type(value) is not str:
            return value
        try:
            number = float(value)
        except ValueError:
            raise _row_error(line, field, f"not a number: {value!r}") from None
        return None if math.isnan(number) else number


class CsvSource(Source):
    def __init__(self, stream: IO[bytes], model: ModelConfig, *, size: int | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._model = model
        self.size = size

    def __iter__(self) -> Iterator[ReplayRecord]:
        reader = csv.reader(_Lines(self._stream, self))
        header = next(reader, None)
        if header is None:
            return
        columns = _Columns(self._model, header)
        for cells in reader:
            if not cells:
                continue
            line = reader.line_num
            if len(cells) != len(header):
                raise _row_error(line, "", f"has {len(cells)} fields, the header {len(header)}")
            yield columns.record(line, dict(zip(header, cells, strict=True)), self.position)


class ParquetSource(Source):
    """Rows read one record batch at a time (``position``/``size`` in rows)."""

    unit = "rows"

    def __init__(self, stream: IO[bytes], model: ModelConfig) -> None:
        super().__init__()
        try:
            import pyarrow.parquet as pq
        except ImportError:  # an optional extra
            raise ReplayInputError(
                [
                    RowIssue(
                        0,
                        "",
                        "reading Parquet needs pyarrow: pip install 'drift-monitor[parquet]'",
                    )
                ]
            ) from None
        self._file = pq.ParquetFile(stream)
        self._model = model
        self.size = int(self._file.metadata.num_rows)

    def __iter__(self) -> Iterator[ReplayRecord]:
        columns = _Columns(self._model, list(self._file.schema_arrow.names))
        line = 0
        for batch in self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                line += 1
                self.position = line
                yield columns.record(line, row, line)


def open_source(
    stream: IO[bytes], model: ModelConfig, file_format: Format, *, size: int | None = None
) -> Source:
    """The reader of ``file_format`` over ``stream``."""
    if file_format == "csv":
        return CsvSource(stream, model, size=size)
    if file_format == "jsonl":
        return JsonLinesSource(stream, size=size)
    return ParquetSource(stream, model)
