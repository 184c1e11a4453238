"""Labelled predictions: the predictions-labels join, and its per-bucket summaries.

A pair is a prediction joined with its label on (model, id). The buckets of (model, clock)
hold, as packed columns, every pair whose prediction seq is at most the watermark's
``prediction_seq`` and whose label seq is at most its ``label_seq``, with a bucketed time at or
after its ``horizon``. Moving one watermark at a time keeps that exact: advancing the labels'
adds the pairs of the new labels with predictions already covered; advancing the predictions'
adds the pairs of the new predictions with labels already covered. A label corrected in place
keeps its seq, so the correcting transaction leaves a stale mark and its buckets are rebuilt.

Every query here is written out: they run on the evaluation's hot path and on SQLite the join
order is forced (``CROSS JOIN``) and ``+model`` keeps the planner on the primary key range.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, bindparam, delete, insert, select, text, update

from monitor.evaluation.labelled import PairRow
from monitor.storage.summaries import locked
from monitor.storage.tables import (
    performance_buckets,
    performance_stale,
    performance_watermarks,
)

#: No bound (seqs are 64-bit; times are Unix seconds).
ANY_SEQ = 2**62
ANY_TIME = 1e300


@dataclass(frozen=True, slots=True)
class Mark:
    """What the buckets of (model, clock) cover; ``building_since`` set while a first build
    runs, with the builder's token as ``-prediction_seq``."""

    prediction_seq: int
    label_seq: int
    horizon: float
    building_since: float | None = None


@dataclass(frozen=True, slots=True)
class LabelledMarks:
    """Where the mark of (model, clock)'s buckets is stored (``jobs.summaries.Marks``)."""

    model: str
    clock: str

    def _where(self) -> tuple[ColumnElement[bool], ...]:
        table = performance_watermarks
        return (table.c.model == self.model, table.c.clock == self.clock)

    def read(self, connection: Connection, *, lock: bool = False) -> Mark | None:
        table = performance_watermarks
        query = select(
            table.c.prediction_seq, table.c.label_seq, table.c.horizon, table.c.building_since
        ).where(*self._where())
        if lock:
            query = locked(connection, query, table=table, where=self._where(), column="horizon")
        row = connection.execute(query).first()
        if row is None:
            return None
        return Mark(int(row[0]), int(row[1]), float(row[2]), row[3])

    def write(self, connection: Connection, mark: Mark) -> None:
        table = performance_watermarks
        values = {
            "prediction_seq": mark.prediction_seq,
            "label_seq": mark.label_seq,
            "horizon": mark.horizon,
            "building_since": mark.building_since,
        }
        updated = connection.execute(update(table).where(*self._where()).values(**values))
        if not updated.rowcount:
            connection.execute(insert(table).values(model=self.model, clock=self.clock, **values))


def reset(connection: Connection, *, model: str) -> None:
    """Forget every bucket and mark of the model (of every clock)."""
    for table in (performance_buckets, performance_watermarks):
        connection.execute(delete(table).where(table.c.model == model))


def _columns(regression: bool) -> str:
    if regression:
        return "p.ts, l.ts, p.prediction_value, l.label_value, NULL"
    return "p.ts, l.ts, p.prediction_class, l.label_class, p.scores"


def _join(connection: Connection, driver: str) -> str:
    """The join driven from ``driver`` ("labels" or "predictions")."""
    on = "p.model = l.model AND p.id = l.id"
    first, second = (
        ("labels l", "predictions p")
        if driver == "labels"
        else (
            "predictions p",
            "labels l",
        )
    )
    keyword = "CROSS JOIN" if connection.dialect.name == "sqlite" else "JOIN"
    return f"{first} {keyword} {second} ON {on}"


def _pair(row: Any) -> PairRow:
    scores = row[5]
    return PairRow(row[1], row[2], row[3], row[4], None if scores is None else bytes(scores))


def pairs_after(
    connection: Connection,
    *,
    model: str,
    regression: bool,
    clock: str,
    driver: str,
    after: int,
    upto: int = ANY_SEQ,
    other_upto: int = ANY_SEQ,
    since: float = -ANY_TIME,
    until: float = ANY_TIME,
    limit: int | None = None,
) -> tuple[list[PairRow], int | None]:
    """Pairs of the rows of ``driver`` ("labels" or "predictions") with seq in
    ``(after, upto]`` whose partner's seq is at most ``other_upto`` and whose ``clock`` time is
    in ``[since, until]``, in the driver's seq order; with the last driver seq read when
    ``limit`` rows came back (None otherwise: the range was read to its end)."""
    own, other = ("l", "p") if driver == "labels" else ("p", "l")
    model_term = f"+{own}.model" if connection.dialect.name == "sqlite" else f"{own}.model"
    time = "l.ts" if clock == "label_time" else "p.ts"
    sql = (
        f"SELECT {own}.seq, {_columns(regression)} FROM {_join(connection, driver)}"
        f" WHERE {own}.seq > :after AND {own}.seq <= :upto AND {model_term} = :model"
        f" AND {other}.seq <= :other_upto AND {time} >= :since AND {time} <= :until"
        f" ORDER BY {own}.seq"
    )
    params: dict[str, Any] = {
        "after": after,
        "upto": upto,
        "model": model,
        "other_upto": other_upto,
        "since": since,
        "until": until,
    }
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = limit
    rows = connection.execute(text(sql), params).all()
    last = int(rows[-1][0]) if limit is not None and len(rows) == limit else None
    return [_pair(row) for row in rows], last


def _by_time_sql(connection: Connection, *, regression: bool, clock: str, upper: str) -> str:
    """Pairs with ``clock`` time from ``:start`` to ``:end`` (compared with ``upper``) within
    the seqs, driven from that time's index."""
    driver, own = ("labels", "l") if clock == "label_time" else ("predictions", "p")
    return (
        f"SELECT {own}.seq, {_columns(regression)} FROM {_join(connection, driver)}"
        f" WHERE {own}.model = :model AND {own}.ts >= :start AND {own}.ts {upper} :end"
        f" AND p.seq <= :prediction_upto AND l.seq <= :label_upto ORDER BY {own}.ts"
    )


def pairs_between(
    connection: Connection,
    *,
    model: str,
    regression: bool,
    clock: str,
    start: float,
    end: float,
    prediction_upto: int = ANY_SEQ,
    label_upto: int = ANY_SEQ,
    inclusive_end: bool = False,
) -> list[PairRow]:
    """Pairs whose ``clock`` time is in ``[start, end)`` (``[start, end]`` with
    ``inclusive_end``), within the given seqs, in time order."""
    sql = _by_time_sql(
        connection, regression=regression, clock=clock, upper="<=" if inclusive_end else "<"
    )
    params = {
        "model": model,
        "start": start,
        "end": end,
        "prediction_upto": prediction_upto,
        "label_upto": label_upto,
    }
    return [_pair(row) for row in connection.execute(text(sql), params)]


def pairs_of_last(
    connection: Connection, *, model: str, regression: bool, count: int
) -> list[PairRow]:
    """The pairs of the model's ``count`` most recently ingested predictions (a records
    window's labelled predictions), in ingest order."""
    sql = (
        f"SELECT p.seq, {_columns(regression)} FROM"
        " (SELECT * FROM predictions WHERE model = :model ORDER BY seq DESC LIMIT :count) p"
        " JOIN labels l ON p.model = l.model AND p.id = l.id ORDER BY p.seq"
    )
    params = {"model": model, "count": count}
    return [_pair(row) for row in connection.execute(text(sql), params)]


def stream_pairs_since(
    connection: Connection,
    *,
    model: str,
    regression: bool,
    clock: str,
    since: float,
    prediction_upto: int,
    label_upto: int,
    chunk: int,
) -> Iterator[list[PairRow]]:
    """Every pair with ``clock`` time at or after ``since`` within the seqs, in chunks, in time
    order (a first build)."""
    sql = _by_time_sql(connection, regression=regression, clock=clock, upper="<=")
    params = {
        "model": model,
        "start": since,
        "end": ANY_TIME,
        "prediction_upto": prediction_upto,
        "label_upto": label_upto,
    }
    result = connection.execution_options(stream_results=True, yield_per=chunk).execute(
        text(sql), params
    )
    for rows in result.partitions(chunk):
        yield [_pair(row) for row in rows]


def bucket_blobs(
    connection: Connection, *, model: str, clock: str, start: float, end: float
) -> list[bytes]:
    """The stored columns of the buckets starting in ``[start, end]``."""
    table = performance_buckets
    query = select(table.c.columns).where(
        table.c.model == model,
        table.c.clock == clock,
        table.c.bucket_start >= start,
        table.c.bucket_start <= end,
    )
    return [bytes(blob) for blob in connection.execute(query).scalars()]


def stored_buckets(
    connection: Connection, *, model: str, clock: str, starts: Sequence[float]
) -> dict[float, bytes]:
    table = performance_buckets
    query = select(table.c.bucket_start, table.c.columns).where(
        table.c.model == model, table.c.clock == clock, table.c.bucket_start.in_(starts)
    )
    return {float(start): bytes(blob) for start, blob in connection.execute(query)}


def write_buckets(
    connection: Connection,
    *,
    model: str,
    clock: str,
    contents: Mapping[float, tuple[int, bytes | None]],
    existing: Sequence[float],
) -> None:
    """Store each bucket's (n, columns), replacing the ``existing`` ones; None deletes."""
    table = performance_buckets
    present = set(existing)
    new_rows = []
    for start, (n, blob) in contents.items():
        where = (table.c.model == model, table.c.clock == clock, table.c.bucket_start == start)
        if blob is None:
            if start in present:
                connection.execute(delete(table).where(*where))
        elif start in present:
            connection.execute(update(table).where(*where).values(n=n, columns=blob))
        else:
            new_rows.append(
                {"model": model, "clock": clock, "bucket_start": start, "n": n, "columns": blob}
            )
    if new_rows:
        connection.execute(insert(table), new_rows)


def delete_buckets_before(
    connection: Connection, *, model: str | None, before: float, clock: str | None = None
) -> int:
    """Delete the buckets starting before ``before`` (of one model, or of all)."""
    table = performance_buckets
    query = delete(table).where(table.c.bucket_start < before)
    if model is not None:
        query = query.where(table.c.model == model)
    if clock is not None:
        query = query.where(table.c.clock == clock)
    return int(connection.execute(query).rowcount)


class StaleRow(NamedTuple):
    """A corrected label: the times whose buckets to rebuild."""

    seq: int
    prediction_ts: float
    old_label_ts: float
    new_label_ts: float


def mark_stale(
    connection: Connection, *, model: str, rows: Sequence[tuple[float, float, float]]
) -> None:
    """Record corrected labels: (prediction time, old label time, new label time) each."""
    if rows:
        connection.execute(
            insert(performance_stale),
            [
                {"model": model, "prediction_ts": p, "old_label_ts": old, "new_label_ts": new}
                for p, old, new in rows
            ],
        )


def stale_rows(connection: Connection, *, model: str, limit: int = 10_000) -> list[StaleRow]:
    table = performance_stale
    query = (
        select(table.c.seq, table.c.prediction_ts, table.c.old_label_ts, table.c.new_label_ts)
        .where(table.c.model == model)
        .order_by(table.c.seq)
        .limit(limit)
    )
    return [
        StaleRow(int(s), float(p), float(o), float(n)) for s, p, o, n in connection.execute(query)
    ]


def delete_stale(connection: Connection, *, seqs: Sequence[int]) -> None:
    if seqs:
        connection.execute(delete(performance_stale).where(performance_stale.c.seq.in_(seqs)))


def delete_stale_before(connection: Connection, *, cutoff: float) -> int:
    """Forget stale marks of pairs older than ``cutoff`` (retention, models since removed)."""
    table = performance_stale
    query = delete(table).where(table.c.prediction_ts < cutoff, table.c.new_label_ts < cutoff)
    return int(connection.execute(query).rowcount)


def unmatched_between(
    connection: Connection, *, model: str, after: int, upto: int = ANY_SEQ
) -> list[str]:
    """Ids of the model's labels with seq in ``(after, upto]`` that have no prediction."""
    model_term = "+l.model" if connection.dialect.name == "sqlite" else "l.model"
    sql = text(
        "SELECT l.id FROM labels l"
        f" WHERE l.seq > :after AND l.seq <= :upto AND {model_term} = :model"
        " AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.model = l.model AND p.id = l.id)"
    )
    params = {"after": after, "upto": upto, "model": model}
    return [str(record_id) for record_id in connection.execute(sql, params).scalars()]


def ids_present(connection: Connection, *, table: str, model: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` the model has in ``table`` (predictions or labels)."""
    found: set[str] = set()
    for first in range(0, len(ids), 500):
        chunk = list(ids[first : first + 500])
        sql = text(f"SELECT id FROM {table} WHERE model = :model AND id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        found.update(connection.execute(sql, {"model": model, "ids": chunk}).scalars())
    return found
