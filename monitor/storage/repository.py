"""Repository functions: the only place that writes SQL. They take a connection and return
domain values; the caller owns the transaction (``with engine.begin() as connection``)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence, Set
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from monitor.domain import (
    IngestResult,
    LabelBatch,
    ModelCounts,
    PredictionBatch,
    ReferenceBatch,
    ReferenceInfo,
)
from monitor.storage import labelled
from monitor.storage.group_commit import CombinedWork
from monitor.storage.tables import labels, predictions, reference_records, references

_CHUNK = 500  # ids per IN (...) list; well under every backend's bound-parameter limit
_REFERENCE_CHUNK = 5_000  # reference rows per INSERT


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _is_postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


#: The columns of a stored prediction, in the order the PostgreSQL statements bind them.
_POSTGRESQL_COLUMNS = (
    "model, id, ts, received_at, features, prediction_class, prediction_value, scores,"
    " model_version"
)

#: One statement a batch, its columns bound as arrays in PostgreSQL's binary format (``%b``):
#: psycopg's text format escaped every byte of the feature objects and every id through a
#: regular expression, two thirds of the insert's time at 1000 records, and the server then
#: parsed that text back. Model and receipt time are bound once.
_POSTGRESQL_INSERT_PREDICTIONS = (
    f"INSERT INTO predictions ({_POSTGRESQL_COLUMNS})"
    " SELECT %(model)b::text, id, ts, %(received)b::float8, features, prediction_class,"
    " prediction_value, scores, model_version"
    " FROM unnest(%(ids)b::text[], %(ts)b::float8[], %(features)b::bytea[],"
    " %(classes)b::text[], %(values)b::float8[], %(scores)b::bytea[], %(versions)b::text[])"
    " AS batch (id, ts, features, prediction_class, prediction_value, scores, model_version)"
    " ON CONFLICT (model, id) DO NOTHING"
)

#: Several small batches in one statement: every column per row, and the stored rows' keys
#: returned so that each batch gets its own count.
_POSTGRESQL_INSERT_MERGED = (
    f"INSERT INTO predictions ({_POSTGRESQL_COLUMNS})"
    f" SELECT {_POSTGRESQL_COLUMNS}"
    " FROM unnest(%(models)b::text[], %(ids)b::text[], %(ts)b::float8[],"
    " %(received)b::float8[], %(features)b::bytea[], %(classes)b::text[],"
    " %(values)b::float8[], %(scores)b::bytea[], %(versions)b::text[])"
    f" AS batch ({_POSTGRESQL_COLUMNS})"
    " ON CONFLICT (model, id) DO NOTHING RETURNING model, id"
)

#: Batches below this many records share statements on PostgreSQL (at most
#: ``_MERGED_ROWS`` records each); larger ones are inserted alone, where a merged statement
#: measured no faster (at 100 records) or slower (at 1000: the merged lists and the returned
#: keys cost more than the round trips they save).
_MERGE_BELOW = 64
_MERGED_ROWS = 1024


@dataclass(frozen=True, slots=True)
class PredictionWrite(CombinedWork):
    """A batch to store (``insert_predictions``) as a group-commit work.

    Neighbouring writes of a group share statements on PostgreSQL: at batch 1 a statement's
    round trip, binding and parsing cost far more than its record, so a group of eight single
    records took eight times as long as one of them. SQLite inserts each as before."""

    model: str
    batch: PredictionBatch
    received_at: float

    def __call__(self, connection: Connection) -> IngestResult:
        return insert_predictions(
            connection, model=self.model, batch=self.batch, received_at=self.received_at
        )

    @classmethod
    def write_together(
        cls, connection: Connection, works: Sequence[PredictionWrite]
    ) -> list[IngestResult]:
        if not _is_postgresql(connection):
            return [work(connection) for work in works]
        results: list[IngestResult] = []
        for statement in _merged_statements(works):
            if len(statement) == 1:
                results.append(statement[0](connection))
            else:
                results.extend(_postgresql_insert_merged(connection, statement))
        return results


def _merged_statements(works: Sequence[PredictionWrite]) -> Iterator[list[PredictionWrite]]:
    """``works`` in order, cut into the writes of one statement each.

    A statement never holds the same (model, id) twice: which of two equal rows an
    ``INSERT ... ON CONFLICT DO NOTHING`` stores is the first in scan order, which no
    contract guarantees, so a write repeating a key of the statement starts the next one.
    """
    statement: list[PredictionWrite] = []
    keys: set[tuple[str, str]] = set()
    rows = 0
    for work in works:
        n = len(work.batch)
        if n >= _MERGE_BELOW:
            if statement:
                yield statement
                statement, keys, rows = [], set(), 0
            yield [work]
            continue
        own = {(work.model, record_id) for record_id in work.batch.ids}
        if statement and (rows + n > _MERGED_ROWS or not keys.isdisjoint(own)):
            yield statement
            statement, keys, rows = [], set(), 0
        statement.append(work)
        keys |= own
        rows += n
    if statement:
        yield statement


def _postgresql_insert_merged(
    connection: Connection, works: Sequence[PredictionWrite]
) -> list[IngestResult]:
    """Insert the batches of ``works`` (no (model, id) twice among them) in one statement."""
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "models",
            "ids",
            "ts",
            "received",
            "features",
            "classes",
            "values",
            "scores",
            "versions",
        )
    }
    for work in works:
        batch, n = work.batch, len(work.batch)
        columns["models"] += [work.model] * n
        columns["ids"] += batch.ids
        # float(): a binary array takes one Python type, and batches may differ in theirs
        columns["ts"] += map(float, batch.timestamps)
        columns["received"] += [float(work.received_at)] * n
        columns["features"] += batch.features
        columns["classes"] += batch.prediction_classes
        columns["values"] += (None if v is None else float(v) for v in batch.prediction_values)
        columns["scores"] += batch.scores
        columns["versions"] += batch.model_versions or [None] * n
    result = connection.exec_driver_sql(_POSTGRESQL_INSERT_MERGED, columns)
    stored = {(model, record_id) for model, record_id in result}
    results = []
    for work in works:
        accepted = sum((work.model, record_id) in stored for record_id in work.batch.ids)
        results.append(
            IngestResult(
                accepted=accepted,
                duplicates=len(work.batch) - accepted + work.batch.duplicates_in_batch,
            )
        )
    return results


def insert_predictions(
    connection: Connection, *, model: str, batch: PredictionBatch, received_at: float
) -> IngestResult:
    """Store the batch; a record whose id is already stored for the model is skipped."""
    if not len(batch):
        return IngestResult(accepted=0, duplicates=batch.duplicates_in_batch)
    if _is_postgresql(connection):
        accepted = connection.exec_driver_sql(
            _POSTGRESQL_INSERT_PREDICTIONS,
            {
                "model": model,
                "received": received_at,
                "ids": batch.ids,
                "ts": batch.timestamps,
                "features": batch.features,
                "classes": batch.prediction_classes,
                "values": batch.prediction_values,
                "scores": batch.scores,
                "versions": batch.model_versions or [None] * len(batch),
            },
        ).rowcount
    else:
        accepted = _sqlite_insert_predictions(connection, model, batch, received_at)
    return IngestResult(
        accepted=accepted, duplicates=len(batch) - accepted + batch.duplicates_in_batch
    )


#: Rows per multi-row INSERT on SQLite (5 parameters each, 2,562 a statement, well under
#: SQLITE_MAX_VARIABLE_NUMBER). One statement inserts its rows in one sqlite3_step, which runs
#: without the GIL, where executemany binds and steps row by row; it is also faster by itself.
_SQLITE_ROWS = 512


def _sqlite_statement_sizes(n: int) -> Iterator[int]:
    """Row counts of the statements that insert ``n`` rows: full statements, then powers of
    two, so at most 10 statement texts per task are ever prepared (and cached by the driver).

    >>> list(_sqlite_statement_sizes(1300))
    [512, 512, 256, 16, 4]
    """
    while n >= _SQLITE_ROWS:
        yield _SQLITE_ROWS
        n -= _SQLITE_ROWS
    size = _SQLITE_ROWS // 2
    while n:
        if n >= size:
            yield size
            n -= size
        size //= 2


@functools.cache
def _sqlite_insert_sql(rows: int, regression: bool, versioned: bool = False) -> str:
    """The model (?1) and receipt time (?2) are bound once per statement, and a row binds only
    the prediction column its task uses (the other is NULL): 5 values a row, not 8; 6 with
    the records' model versions (``versioned``)."""
    outputs = "NULL, column4" if regression else "column4, NULL"
    if not versioned:
        return (
            "INSERT OR IGNORE INTO predictions (model, id, ts, received_at, features,"
            " prediction_class, prediction_value, scores)"
            f" SELECT ?1, column1, column2, ?2, column3, {outputs}, column5"
            " FROM (VALUES " + ",".join(["(?, ?, ?, ?, ?)"] * rows) + ")"
        )
    return (
        "INSERT OR IGNORE INTO predictions (model, id, ts, received_at, features,"
        " prediction_class, prediction_value, scores, model_version)"
        f" SELECT ?1, column1, column2, ?2, column3, {outputs}, column5, column6"
        " FROM (VALUES " + ",".join(["(?, ?, ?, ?, ?, ?)"] * rows) + ")"
    )


def _sqlite_insert_predictions(
    connection: Connection, model: str, batch: PredictionBatch, received_at: float
) -> int:
    # A batch fills one of the two prediction columns (its task's); the other is all None.
    regression = batch.prediction_classes[0] is None
    outputs = batch.prediction_values if regression else batch.prediction_classes
    versioned = batch.model_versions is not None
    columns: list[Sequence[Any]] = [
        batch.ids,
        batch.timestamps,
        batch.features,
        outputs,
        batch.scores,
    ]
    if batch.model_versions is not None:
        columns.append(batch.model_versions)
    rows = zip(*columns, strict=True)
    accepted = 0
    for size in _sqlite_statement_sizes(len(batch)):
        parameters = (
            model,
            received_at,
            *itertools.chain.from_iterable(itertools.islice(rows, size)),
        )
        sql = _sqlite_insert_sql(size, regression, versioned)
        accepted += connection.exec_driver_sql(sql, parameters).rowcount
    return accepted


#: Labels on PostgreSQL, a statement a batch with its columns bound as arrays. The lookups
#: join the batch's ids (``unnest``) to the table instead of listing them in ``IN (...)``:
#: psycopg prepares a statement run five times, and the generic plan of ``id IN ($2, ...,
#: $501)`` builds and scans that 500-element array for every row it filters. A table loaded
#: since its last ``ANALYZE`` (a large body is one transaction) looks a few rows long to the
#: planner, which then filters every label of the model that way, 8 lookups a chunk: a
#: 120,000-label body into an empty table took 90 s, quadratic in the body. New labels are
#: found by ``ON CONFLICT`` on the unique key, which needs no plan, and only the ids that were
#: already stored are looked up.
_POSTGRESQL_INSERT_LABELS = (
    "INSERT INTO labels (model, id, ts, received_at, label_class, label_value)"
    " SELECT %(model)b::text, id, ts, %(received)b::float8, label_class, label_value"
    " FROM unnest(%(ids)b::text[], %(ts)b::float8[], %(classes)b::text[], %(values)b::float8[])"
    " AS batch (id, ts, label_class, label_value)"
    " ON CONFLICT (model, id) DO NOTHING RETURNING id"
)
_POSTGRESQL_STORED_LABELS = (
    "SELECT labels.id, labels.ts, labels.label_class, labels.label_value"
    " FROM unnest(%(ids)b::text[]) AS batch (id)"
    " JOIN labels ON labels.model = %(model)b::text AND labels.id = batch.id"
)
_POSTGRESQL_CORRECT_LABELS = (
    "UPDATE labels SET ts = batch.ts, received_at = %(received)b::float8,"
    " label_class = batch.label_class, label_value = batch.label_value,"
    " corrections = labels.corrections + 1"
    " FROM unnest(%(ids)b::text[], %(ts)b::float8[], %(classes)b::text[], %(values)b::float8[])"
    " AS batch (id, ts, label_class, label_value)"
    " WHERE labels.model = %(model)b::text AND labels.id = batch.id"
)
_POSTGRESQL_PREDICTION_TIMES = (
    "SELECT predictions.id, predictions.ts FROM unnest(%(ids)b::text[]) AS batch (id)"
    " JOIN predictions ON predictions.model = %(model)b::text AND predictions.id = batch.id"
)


@dataclass(frozen=True, slots=True)
class _Label:
    """One label of a batch: its id, time and value (class or number)."""

    record_id: str
    ts: float
    label_class: str | None
    label_value: float | None


def upsert_labels(
    connection: Connection, *, model: str, batch: LabelBatch, received_at: float
) -> IngestResult:
    """Store labels; a different label for a stored id replaces it and counts as a correction,
    the same label again counts as a duplicate. A correction of a stored prediction's label
    leaves a stale mark for its performance buckets (``storage.labelled``)."""
    rows = [
        _Label(record_id, float(ts), label_class, None if value is None else float(value))
        for record_id, ts, label_class, value in zip(
            batch.ids, batch.timestamps, batch.label_classes, batch.label_values, strict=True
        )
    ]
    if _is_postgresql(connection):  # insert first: only the ids already stored are looked up
        new_ids = _postgresql_insert_labels(connection, model, rows, received_at)
        stored = _stored_labels(connection, model, [r.record_id for r in rows], skip=new_ids)
    else:
        stored = _stored_labels(connection, model, batch.ids)
        new_ids = _insert_labels(
            connection, model, [r for r in rows if r.record_id not in stored], received_at
        )
    changed = [
        r
        for r in rows
        if (old := stored.get(r.record_id)) is not None
        and (old.label_class, old.label_value) != (r.label_class, r.label_value)
    ]
    _correct_labels(connection, model, changed, received_at)
    # One lookup of the prediction times, for the new labels' delays and the stale marks.
    predicted_at = _prediction_times(
        connection, model=model, ids=[*new_ids, *(r.record_id for r in changed)]
    )
    labelled.mark_stale(
        connection,
        model=model,
        rows=[
            (predicted_at[r.record_id], stored[r.record_id].ts, r.ts)
            for r in changed
            if r.record_id in predicted_at
        ],
    )
    duplicates = len(batch) - len(new_ids) - len(changed) + batch.duplicates_in_batch
    delays = tuple(
        r.ts - predicted_at[r.record_id]
        for r in rows
        if r.record_id in new_ids and r.record_id in predicted_at
    )
    return IngestResult(
        accepted=len(new_ids),
        duplicates=duplicates,
        corrections=len(changed),
        label_delays=delays,
    )


def _label_columns(model: str, rows: Sequence[_Label], received_at: float) -> dict[str, Any]:
    return {
        "model": model,
        "received": float(received_at),
        "ids": [r.record_id for r in rows],
        "ts": [r.ts for r in rows],
        "classes": [r.label_class for r in rows],
        "values": [r.label_value for r in rows],
    }


def _postgresql_insert_labels(
    connection: Connection, model: str, rows: Sequence[_Label], received_at: float
) -> set[str]:
    """Insert the labels whose id is not stored yet; their ids."""
    if not rows:
        return set()
    result = connection.exec_driver_sql(
        _POSTGRESQL_INSERT_LABELS, _label_columns(model, rows, received_at)
    )
    return {record_id for (record_id,) in result}


def _insert_labels(
    connection: Connection, model: str, rows: Sequence[_Label], received_at: float
) -> set[str]:
    """Insert ``rows`` (ids not stored yet); their ids."""
    if rows:
        connection.execute(
            insert(labels),
            [
                {
                    "model": model,
                    "id": r.record_id,
                    "ts": r.ts,
                    "received_at": received_at,
                    "label_class": r.label_class,
                    "label_value": r.label_value,
                }
                for r in rows
            ],
        )
    return {r.record_id for r in rows}


def _stored_labels(
    connection: Connection, model: str, ids: Sequence[str], *, skip: Set[str] = frozenset()
) -> dict[str, _Label]:
    """The stored label of each of ``ids`` (but those in ``skip``) that has one."""
    ids = [i for i in ids if i not in skip] if skip else ids
    if not ids:
        return {}
    if _is_postgresql(connection):
        found = connection.exec_driver_sql(
            _POSTGRESQL_STORED_LABELS, {"model": model, "ids": list(ids)}
        )
        return {row[0]: _stored_label(*row) for row in found}
    stored: dict[str, _Label] = {}
    for chunk in _chunks(ids):
        query = select(labels.c.id, labels.c.ts, labels.c.label_class, labels.c.label_value).where(
            labels.c.model == model, labels.c.id.in_(chunk)
        )
        stored.update((row[0], _stored_label(*row)) for row in connection.execute(query))
    return stored


def _stored_label(
    record_id: str, ts: float, label_class: str | None, label_value: float | None
) -> _Label:
    return _Label(record_id, float(ts), label_class, label_value)


def _correct_labels(
    connection: Connection, model: str, rows: Sequence[_Label], received_at: float
) -> None:
    """Replace the stored labels of ``rows`` with theirs, counting a correction each."""
    if not rows:
        return
    if _is_postgresql(connection):
        connection.exec_driver_sql(
            _POSTGRESQL_CORRECT_LABELS, _label_columns(model, rows, received_at)
        )
        return
    for r in rows:
        connection.execute(
            labels.update()
            .where(labels.c.model == model, labels.c.id == r.record_id)
            .values(
                ts=r.ts,
                received_at=received_at,
                label_class=r.label_class,
                label_value=r.label_value,
                corrections=labels.c.corrections + 1,
            )
        )


def _prediction_times(connection: Connection, *, model: str, ids: list[str]) -> dict[str, float]:
    """Prediction time of each of ``ids`` that has a stored prediction."""
    if not ids:
        return {}
    if _is_postgresql(connection):
        found = connection.exec_driver_sql(
            _POSTGRESQL_PREDICTION_TIMES, {"model": model, "ids": ids}
        )
        return {record_id: float(ts) for record_id, ts in found}
    times: dict[str, float] = {}
    for chunk in _chunks(ids):
        query = select(predictions.c.id, predictions.c.ts).where(
            predictions.c.model == model, predictions.c.id.in_(chunk)
        )
        times.update((record_id, float(ts)) for record_id, ts in connection.execute(query))
    return times


def store_reference(
    connection: Connection,
    *,
    model: str,
    batch: ReferenceBatch,
    source: str,
    digest: str,
    created_at: float,
) -> ReferenceInfo:
    """Store a reference data set as the model's next version, created at ``created_at``."""
    latest = connection.execute(
        select(func.max(references.c.version)).where(references.c.model == model)
    ).scalar()
    version = (latest or 0) + 1
    connection.execute(
        insert(references).values(
            model=model,
            version=version,
            created_at=created_at,
            source=source[:512],
            digest=digest,
            n=len(batch),
        )
    )
    columns = batch.rows()
    for first in range(0, len(batch), _REFERENCE_CHUNK):  # bounded memory for large sets
        rows = [
            {
                "model": model,
                "version": version,
                "row": row,
                "features": features,
                "prediction_class": pc,
                "prediction_value": pv,
                "label_class": lc,
                "label_value": lv,
                "scores": sc,
            }
            for row, (features, pc, pv, lc, lv, sc) in enumerate(
                itertools.islice(columns, _REFERENCE_CHUNK), start=first
            )
        ]
        connection.execute(insert(reference_records), rows)
    return ReferenceInfo(model, version, len(batch), source, created_at, digest)


def latest_reference(
    connection: Connection, *, model: str, version: int | None = None
) -> ReferenceInfo | None:
    """The model's newest reference, or its reference ``version`` when given."""
    query = select(references).where(references.c.model == model)
    if version is not None:
        query = query.where(references.c.version == version)
    row = (
        connection.execute(query.order_by(references.c.version.desc()).limit(1)).mappings().first()
    )
    if row is None:
        return None
    return ReferenceInfo(
        row["model"], row["version"], row["n"], row["source"], row["created_at"], row["digest"]
    )


def model_counts(connection: Connection, *, model: str) -> ModelCounts:
    n, first, last = connection.execute(
        select(func.count(), func.min(predictions.c.ts), func.max(predictions.c.ts)).where(
            predictions.c.model == model
        )
    ).one()
    n_labels = connection.execute(
        select(func.count()).select_from(labels).where(labels.c.model == model)
    ).scalar_one()
    labelled = connection.execute(
        select(func.count())
        .select_from(
            predictions.join(
                labels, (labels.c.model == predictions.c.model) & (labels.c.id == predictions.c.id)
            )
        )
        .where(predictions.c.model == model)
    ).scalar_one()
    return ModelCounts(
        predictions=n,
        labels=n_labels,
        labelled_predictions=labelled,
        first_timestamp=first,
        last_timestamp=last,
    )


def prediction_ids(connection: Connection, *, model: str) -> set[str]:
    """Every stored prediction id of a model (for tests and audits; not for hot paths)."""
    return set(
        connection.execute(select(predictions.c.id).where(predictions.c.model == model)).scalars()
    )


def delete_older_than(
    connection: Connection, *, cutoff: float, limit: int = 10_000
) -> tuple[int, int]:
    """Delete up to ``limit`` raw predictions and up to ``limit`` labels per model whose
    timestamp is before ``cutoff``. Call again while it returns non-zero counts: small chunks
    keep each transaction (and SQLite's write lock) short."""
    deleted = []
    for table in (predictions, labels):
        models = connection.execute(select(table.c.model).distinct()).scalars().all()
        total = 0
        for model in models:
            chunk = (
                select(table.c.seq)
                .where(table.c.model == model, table.c.ts < cutoff)
                .limit(limit)
                .scalar_subquery()
            )
            total += connection.execute(delete(table).where(table.c.seq.in_(chunk))).rowcount
        deleted.append(total)
    return deleted[0], deleted[1]
