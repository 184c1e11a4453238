"""Read the rows an evaluation needs: a time window, the last N records, a reference."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, func, null, select, text

from monitor.storage.tables import labels, predictions, reference_records


@dataclass(frozen=True, slots=True)
class Rows:
    """Stored records column by column: encoded features, prediction, (joined) label, scores.
    ``features`` may be emptied once decoded (``jobs.evaluate``); the length stays."""

    features: list[bytes]
    predictions: list[Any]
    labels: list[Any]
    first_ts: float | None
    last_ts: float | None
    scores: list[bytes | None]
    #: each record's ``model_version`` (None for a record without one, and for references)
    versions: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.predictions)


def _window_select(model: str, *, regression: bool, labelled: bool = True) -> Select[Any]:
    """The window's columns, with each record's label joined. ``labelled=False`` (the model
    has no label stored at all) skips the join, a label lookup per record, and reads NULL."""
    prediction = predictions.c.prediction_value if regression else predictions.c.prediction_class
    if not labelled:
        return select(
            predictions.c.features,
            prediction,
            null().label("label"),
            predictions.c.ts,
            predictions.c.scores,
            predictions.c.model_version,
        ).where(predictions.c.model == model)
    label = labels.c.label_value if regression else labels.c.label_class
    return (
        select(
            predictions.c.features,
            prediction,
            label,
            predictions.c.ts,
            predictions.c.scores,
            predictions.c.model_version,
        )
        .select_from(
            predictions.outerjoin(
                labels, (labels.c.model == predictions.c.model) & (labels.c.id == predictions.c.id)
            )
        )
        .where(predictions.c.model == model)
    )


def has_labels(connection: Connection, *, model: str) -> bool:
    return _count_labels(connection, model=model, limit=1) > 0


#: Rows fetched from the cursor at a time by ``_rows``.
FETCH_ROWS = 4_096


def _rows(result: Any) -> Rows:
    """Rows fetched straight from the DBAPI cursor and transposed in C: building SQLAlchemy
    Row objects cost more than the database read itself for a 100k-record window.

    Fetched a few thousand at a time, so that only those rows' tuples are alive besides the
    columns: a whole window's row tuples (about 0.2 KB each) freed at once among the feature
    objects still held left Python's object allocator 20 MB larger, fragmented, after each
    exact-path evaluation (bench/soak.py)."""
    cursor = result.cursor
    features: list[bytes] = []
    prediction_values: list[Any] = []
    label_values: list[Any] = []
    stamps: list[float] = []
    scores: list[bytes | None] = []
    versions: list[str | None] = []
    while cursor is not None:
        fetched = cursor.fetchmany(FETCH_ROWS)
        if not fetched:
            break
        blobs, predicted, labelled, times, scored, versioned = _transposed(fetched)
        del fetched
        features.extend(blobs)
        prediction_values.extend(predicted)
        label_values.extend(labelled)
        stamps.extend(times)
        scores.extend(scored)
        versions.extend(versioned)
    if not features:
        return Rows([], [], [], None, None, [])
    return Rows(
        features, prediction_values, label_values, min(stamps), max(stamps), scores, versions
    )


def _transposed(fetched: list[Any]) -> tuple[tuple[Any, ...], ...]:
    """The fetched rows' columns (``_window_select``'s), encoded blobs as ``bytes``."""
    blobs, predicted, labelled, times, scored, versioned = zip(*fetched, strict=True)
    if type(blobs[0]) is not bytes:  # drivers that hand out memoryview
        blobs = tuple(bytes(blob) for blob in blobs)
        scored = tuple(None if blob is None else bytes(blob) for blob in scored)
    return blobs, predicted, labelled, times, scored, versioned


def _between(
    connection: Connection, *, model: str, start: float, end: float, regression: bool
) -> Select[Any]:
    labelled = has_labels(connection, model=model)
    return _window_select(model, regression=regression, labelled=labelled).where(
        predictions.c.ts > start, predictions.c.ts <= end
    )


def rows_between(
    connection: Connection, *, model: str, start: float, end: float, regression: bool
) -> Rows:
    """Records with ``start < ts <= end`` (prediction time)."""
    query = _between(connection, model=model, start=start, end=end, regression=regression)
    return _rows(connection.execute(query))


def stream_rows_between(
    connection: Connection, *, model: str, start: float, end: float, regression: bool, chunk: int
) -> Iterator[Rows]:
    """Records with ``start < ts <= end`` (prediction time), as ``rows_between`` reads them,
    ``chunk`` at a time from a server-side cursor: a window too large to hold, read once."""
    query = _between(connection, model=model, start=start, end=end, regression=regression)
    result = connection.execution_options(stream_results=True, yield_per=chunk).execute(query)
    for fetched in result.partitions(chunk):
        blobs, predicted, labelled, times, scored, versioned = _transposed(list(fetched))
        del fetched
        yield Rows(
            list(blobs),
            list(predicted),
            list(labelled),
            min(times),
            max(times),
            list(scored),
            list(versioned),
        )


def version_counts(
    connection: Connection, *, model: str, start: float, end: float
) -> dict[str, int]:
    """Records with ``start < ts <= end`` per ``model_version`` (records without one left out)."""
    query = (
        select(predictions.c.model_version, func.count())
        .where(
            predictions.c.model == model,
            predictions.c.ts > start,
            predictions.c.ts <= end,
            predictions.c.model_version.is_not(None),
        )
        .group_by(predictions.c.model_version)
    )
    return {str(version): int(n) for version, n in connection.execute(query)}


def count_between(
    connection: Connection, *, model: str, start: float, end: float, limit: int | None = None
) -> int:
    """Records with ``start < ts <= end``; with ``limit``, counting stops past ``limit``."""
    inner = select(predictions.c.seq).where(
        predictions.c.model == model, predictions.c.ts > start, predictions.c.ts <= end
    )
    if limit is not None:
        inner = inner.limit(limit + 1)
    query = select(func.count()).select_from(inner.subquery())
    return int(connection.execute(query).scalar_one())


def last_rows(
    connection: Connection, *, model: str, count: int, skip: int = 0, regression: bool
) -> Rows:
    """The ``count`` most recently ingested records, after skipping the ``skip`` newest."""
    labelled = has_labels(connection, model=model)
    query = (
        _window_select(model, regression=regression, labelled=labelled)
        .order_by(predictions.c.seq.desc())
        .limit(count)
        .offset(skip)
    )
    return _rows(connection.execute(query))


def first_rows(connection: Connection, *, model: str, count: int, regression: bool) -> Rows:
    """The first ``count`` records ever ingested for the model (a ``first_records`` reference)."""
    query = _window_select(model, regression=regression).order_by(predictions.c.seq).limit(count)
    return _rows(connection.execute(query))


def reference_rows(connection: Connection, *, model: str, version: int, regression: bool) -> Rows:
    prediction = (
        reference_records.c.prediction_value if regression else reference_records.c.prediction_class
    )
    label = reference_records.c.label_value if regression else reference_records.c.label_class
    query = (
        select(
            reference_records.c.features,
            prediction,
            label,
            reference_records.c.row,
            reference_records.c.scores,
            null().label("model_version"),
        )
        .where(reference_records.c.model == model, reference_records.c.version == version)
        .order_by(reference_records.c.row)
    )
    rows = _rows(connection.execute(query))
    return Rows(rows.features, rows.predictions, rows.labels, None, None, rows.scores)


def nth_last_ts(connection: Connection, *, model: str, n: int) -> float | None:
    """Prediction time of the n-th most recently ingested record (a records window's start)."""
    query = (
        select(predictions.c.ts)
        .where(predictions.c.model == model)
        .order_by(predictions.c.seq.desc())
        .limit(1)
        .offset(n - 1)
    )
    value = connection.execute(query).scalar()
    return None if value is None else float(value)


def earliest_ts(connection: Connection, *, model: str) -> float | None:
    """The earliest prediction time of the model's records."""
    value = connection.execute(
        select(func.min(predictions.c.ts)).where(predictions.c.model == model)
    ).scalar()
    return None if value is None else float(value)


def _count_labels(connection: Connection, *, model: str, limit: int) -> int:
    """The model's stored labels, counted up to ``limit`` (so it costs at most that many)."""
    sql = text(
        "SELECT COUNT(*) FROM (SELECT 1 FROM labels WHERE model = :model LIMIT :limit) AS kept"
    )
    return int(connection.execute(sql, {"model": model, "limit": limit}).scalar_one())


def unmatched_label_count(connection: Connection, *, model: str) -> int:
    """Labels stored for ids that have no prediction (yet)."""
    exists = (
        select(predictions.c.seq)
        .where(predictions.c.model == labels.c.model, predictions.c.id == labels.c.id)
        .exists()
    )
    query = select(func.count()).select_from(labels).where(labels.c.model == model, ~exists)
    return int(connection.execute(query).scalar_one())


#: Rows per export page (one query each).
EXPORT_PAGE = 5_000


@dataclass(frozen=True, slots=True)
class ExportKey:
    """Where an export page ended: the last row's prediction time and ingest sequence."""

    ts: float
    seq: int


@dataclass(frozen=True, slots=True)
class ExportPage:
    rows: list[tuple[Any, ...]]
    last: ExportKey | None


def export_page(
    connection: Connection,
    *,
    model: str,
    start: float,
    end: float,
    regression: bool,
    after: ExportKey | None = None,
    limit: int | None = None,
) -> ExportPage:
    """Up to ``limit`` of the model's predictions with prediction time in ``(start, end]``,
    oldest first (by time, then ingest order) and after ``after``, with their labels when
    they have one: rows of (id, ts, features, prediction, scores, label, label ts, model
    version).

    Each page is one short query (keyset pagination on ``(ts, seq)``), so an export of any
    length holds no cursor or snapshot open between pages."""
    prediction = predictions.c.prediction_value if regression else predictions.c.prediction_class
    label = labels.c.label_value if regression else labels.c.label_class
    query = (
        select(
            predictions.c.id,
            predictions.c.ts,
            predictions.c.features,
            prediction,
            predictions.c.scores,
            label,
            labels.c.ts,
            predictions.c.model_version,
            predictions.c.seq,
        )
        .select_from(
            predictions.outerjoin(
                labels, (labels.c.model == predictions.c.model) & (labels.c.id == predictions.c.id)
            )
        )
        .where(predictions.c.model == model, predictions.c.ts > start, predictions.c.ts <= end)
        .order_by(predictions.c.ts, predictions.c.seq)
        .limit(EXPORT_PAGE if limit is None else limit)
    )
    if after is not None:
        query = query.where(
            predictions.c.ts >= after.ts,
            (predictions.c.ts > after.ts) | (predictions.c.seq > after.seq),
        )
    rows = [tuple(row) for row in connection.execute(query)]
    if not rows:
        return ExportPage([], None)
    last = ExportKey(float(rows[-1][1]), int(rows[-1][-1]))
    return ExportPage([row[:-1] for row in rows], last)
