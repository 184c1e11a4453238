"""Reference data sets: from JSON/NDJSON records or from CSV, validated like predictions."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Iterable, Iterator
from typing import Any

from monitor import codec
from monitor.csv_columns import kind_of, score_class
from monitor.domain import FeatureValue, ReferenceBatch
from monitor.errors import PayloadError, RecordIssue, RecordIssues
from monitor.ingest.decode import iter_records
from monitor.ingest.validate import RecordValidator

_encode = codec.encode

_TARGET_COLUMNS = ("prediction", "label")  # read; the record's other columns are ignored


def reference_batch(data: bytes, media_type: str, validator: RecordValidator) -> ReferenceBatch:
    """Parse and validate a reference body or file (JSON, NDJSON or CSV) record by record, so
    that only the validated, encoded rows of a large set are kept, not all its parsed records;
    every problem of the set is reported at once."""
    issues = RecordIssues()
    records: Iterable[tuple[int, Any]]
    if media_type == "text/csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PayloadError("the CSV body is not UTF-8") from None
        records = iter_reference_csv(text, validator, issues)
    else:
        records = enumerate(iter_records(data, media_type))
    return validate_reference(records, validator, issues)


def validate_reference(
    records: Iterable[tuple[int, Any]],
    validator: RecordValidator,
    issues: RecordIssues | None = None,
) -> ReferenceBatch:
    """Validate (index, record) pairs (``features`` plus optional ``prediction``, ``label`` and
    ``scores``); ``issues`` may already hold problems found while parsing them."""
    issues = RecordIssues() if issues is None else issues
    batch = ReferenceBatch([], [], [], [], [], [])
    for index, record in records:
        row = validator.reference_row(record, index, issues)
        if row is None:
            continue
        features, prediction_class, prediction_value, label_class, label_value, scores = row
        batch.features.append(_encode(features))
        batch.prediction_classes.append(prediction_class)
        batch.prediction_values.append(prediction_value)
        batch.label_classes.append(label_class)
        batch.label_values.append(label_value)
        batch.scores.append(None if scores is None else _encode(scores))
    if issues:
        raise issues.error()
    if not len(batch):
        raise PayloadError("the reference data set has no records")
    return batch


def iter_reference_csv(
    text: str, validator: RecordValidator, issues: RecordIssues
) -> Iterator[tuple[int, dict[str, Any]]]:
    """CSV rows as (index, reference record), adding to ``issues`` what the CSV itself gets
    wrong (a row of the wrong length, a numeric cell that is not a finite number).

    The header names the model's features, and optionally ``prediction``, ``label`` and
    ``score_<class>`` columns (``monitor.csv_columns``: as the CSV export writes them and
    ``monitor replay`` reads them; ``id``, ``timestamp``, ``label_timestamp`` and
    ``model_version`` are ignored).
    An empty cell is a missing value (a row whose score cells are all empty has no scores); a
    blank line is skipped. Index 0 is the first data row. A header that does not fit the model
    is a ``PayloadError``.
    """
    # newline="": the reader sees the row ends itself, so a bare CR ends a row as well
    reader = _readable(csv.reader(io.StringIO(text, newline="")))
    try:
        header = next(reader)
    except StopIteration:
        raise PayloadError("the CSV body is empty") from None
    header = [column.strip() for column in header]
    model = validator.model
    kinds = {feature.name: feature.type for feature in model.features}
    unknown = [c for c in header if kind_of(c, kinds) is None]
    missing = [name for name in kinds if name not in header]
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if missing:
        problems.append(f"missing feature column(s) {', '.join(missing)}")
    if problems:
        raise PayloadError(f"CSV header: {'; '.join(problems)}")
    for index, row in enumerate(reader):
        if not row:
            continue
        if len(row) != len(header):
            issues.append(RecordIssue(index, "", f"has {len(row)} cells, the header {len(header)}"))
            continue
        features: dict[str, FeatureValue] = {}
        scores: dict[str, float] = {}
        record: dict[str, Any] = {"features": features}
        for column, cell in zip(header, row, strict=False):
            cell = cell.strip()
            kind = kinds.get(column)
            if kind is None:
                if column in _TARGET_COLUMNS and cell:
                    record[column] = _target_cell(cell, model.task == "regression")
                elif kind_of(column, kinds) == "score" and cell:
                    label = score_class(column)
                    try:
                        scores[label] = float(cell)
                    except ValueError:
                        issues.append(
                            RecordIssue(index, f"scores.{label}", f"{cell!r} is not a number")
                        )
                continue
            if not cell:
                features[column] = None
            elif kind == "numeric":
                try:
                    number = float(cell)
                except ValueError:
                    number = math.nan
                if not math.isfinite(number):
                    issues.append(
                        RecordIssue(index, f"features.{column}", f"{cell!r} is not a finite number")
                    )
                features[column] = number
            else:
                features[column] = cell
        if scores:
            record["scores"] = scores
        yield index, record


def _readable(rows: Iterator[list[str]]) -> Iterator[list[str]]:
    """The rows; what the csv module refuses (a cell over its field limit) is a
    ``PayloadError`` naming the row as ``iter_reference_csv`` indexes it, not a 500."""
    read = 0  # rows read, the header included
    try:
        for row in rows:
            yield row
            read += 1
    except csv.Error as exc:
        where = "header" if read == 0 else f"data row {read - 1}"
        raise PayloadError(f"CSV {where} cannot be read: {exc}") from None


def _target_cell(cell: str, numeric: bool) -> Any:
    if not numeric:
        return cell
    try:
        return float(cell)
    except ValueError:
        return cell  # left for the validator to report with its field name


def digest_batch(batch: ReferenceBatch) -> str:
    """A content digest of a reference, so an unchanged file is not stored again."""
    digest = hashlib.sha256()
    for row in batch.rows():
        digest.update(codec.encode(row))
    return digest.hexdigest()
