"""Per-time-bucket histograms: summarise records once, merge buckets for large windows.

Numeric counts are stored as little-endian int64 arrays (one count per grid bin), categorical
counts as a JSON object. Buckets and replicas merge by addition.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from monitor.evaluation.counts import Counts
from monitor.storage.summaries import locked
from monitor.storage.tables import histogram_buckets, histogram_watermarks


@dataclass(frozen=True, slots=True)
class HistogramMarks:
    """The mark of (model, reference version)'s histograms: the last ingest seq summarised
    (``jobs.summaries.Marks``)."""

    model: str
    version: int

    def _where(self) -> tuple[ColumnElement[bool], ...]:
        table = histogram_watermarks
        return (table.c.model == self.model, table.c.reference_version == self.version)

    def read(self, connection: Connection, *, lock: bool = False) -> int:
        """0 when nothing is summarised yet (the row is created then)."""
        where = self._where()
        query = select(histogram_watermarks.c.last_seq).where(*where)
        if lock:
            query = locked(
                connection, query, table=histogram_watermarks, where=where, column="last_seq"
            )
        value = connection.execute(query).scalar()
        if value is None:
            # Two replicas may both find no row: whichever inserts second inserts nothing.
            dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
            connection.execute(
                dialect_insert(histogram_watermarks)
                .values(model=self.model, reference_version=self.version, last_seq=0)
                .on_conflict_do_nothing()
            )
            value = connection.execute(query).scalar()
        return int(value or 0)

    def write(self, connection: Connection, mark: int) -> None:
        connection.execute(update(histogram_watermarks).where(*self._where()).values(last_seq=mark))


class LogRow(NamedTuple):
    """A record of the ingest log, as ``rows_after`` reads it."""

    seq: int
    ts: float
    features: bytes
    prediction: Any


def rows_after(
    connection: Connection,
    *,
    model: str,
    after_seq: int,
    limit: int,
    regression: bool,
    upto: int = 2**62,
) -> list[LogRow]:
    """The model's records with seq in ``(after_seq, upto]``, in order, ``limit`` at most.

    The scan walks the primary key from ``after_seq`` on, so it costs the records ingested
    since (of every model), not the model's whole table. On SQLite ``+model`` keeps the
    planner off the (model, ts) index, which would read all of the model's rows and sort them;
    no extra index on the ingest path is needed.
    """
    column = "prediction_value" if regression else "prediction_class"
    model_term = "+model" if connection.dialect.name == "sqlite" else "model"
    query = text(
        f"SELECT seq, ts, features, {column} FROM predictions"
        f" WHERE seq > :after AND seq <= :upto AND {model_term} = :model"
        " ORDER BY seq LIMIT :limit"
    )
    params = {"after": after_seq, "upto": upto, "model": model, "limit": limit}
    return [LogRow(int(s), t, bytes(f), p) for s, t, f, p in connection.execute(query, params)]


def rows_in_time(
    connection: Connection,
    *,
    model: str,
    start: float,
    end: float,
    upto_seq: int,
    regression: bool,
    chunk: int,
) -> Iterator[list[LogRow]]:
    """The model's records with ``start < ts <= end`` and seq at most ``upto_seq`` (summarised
    ones), ``chunk`` at a time: the part of a window's edge bucket that lies inside it."""
    column = "prediction_value" if regression else "prediction_class"
    query = text(
        f"SELECT seq, ts, features, {column} FROM predictions"
        " WHERE model = :model AND ts > :start AND ts <= :end AND seq <= :upto"
    )
    params = {"model": model, "start": start, "end": end, "upto": upto_seq}
    result = connection.execution_options(stream_results=True, yield_per=chunk).execute(
        query, params
    )
    for rows in result.partitions(chunk):
        yield [LogRow(int(s), t, bytes(f), p) for s, t, f, p in rows]


def add_to_buckets(
    connection: Connection,
    *,
    model: str,
    version: int,
    additions: Mapping[tuple[str, float], Counts],
) -> None:
    """Add counts to stored buckets (read, add, write) inside the caller's transaction."""
    starts = sorted({start for _, start in additions})
    existing: dict[tuple[str, float], Counts] = {}
    if starts:
        query = select(
            histogram_buckets.c.feature,
            histogram_buckets.c.bucket_start,
            histogram_buckets.c.counts,
            histogram_buckets.c.missing,
        ).where(
            histogram_buckets.c.model == model,
            histogram_buckets.c.reference_version == version,
            histogram_buckets.c.bucket_start.in_(starts),
        )
        for feature, start, blob, missing in connection.execute(query):
            key = (feature, start)
            if key in additions:
                existing[key] = Counts.decode(additions[key].kind, bytes(blob), int(missing))
    new_rows = []
    for key, counts in additions.items():
        if key in existing:
            merged = existing[key]
            merged.add(counts)
            connection.execute(
                update(histogram_buckets)
                .where(
                    histogram_buckets.c.model == model,
                    histogram_buckets.c.reference_version == version,
                    histogram_buckets.c.feature == key[0],
                    histogram_buckets.c.bucket_start == key[1],
                )
                .values(counts=merged.encode(), missing=merged.missing)
            )
        else:
            new_rows.append(
                {
                    "model": model,
                    "reference_version": version,
                    "feature": key[0],
                    "bucket_start": key[1],
                    "counts": counts.encode(),
                    "missing": counts.missing,
                }
            )
    if new_rows:
        connection.execute(insert(histogram_buckets), new_rows)


def merged_counts(
    connection: Connection,
    *,
    model: str,
    version: int,
    start: float,
    end: float,
    kinds: Mapping[str, str],
) -> dict[str, Counts]:
    """Every feature's counts summed over the buckets starting in [start, end)."""
    query = select(
        histogram_buckets.c.feature, histogram_buckets.c.counts, histogram_buckets.c.missing
    ).where(
        histogram_buckets.c.model == model,
        histogram_buckets.c.reference_version == version,
        histogram_buckets.c.bucket_start >= start,
        histogram_buckets.c.bucket_start < end,
    )
    merged: dict[str, Counts] = {}
    for feature, blob, missing in connection.execute(query):
        if feature not in kinds:
            continue
        counts = Counts.decode(kinds[feature], bytes(blob), int(missing))
        if feature in merged:
            merged[feature].add(counts)
        else:
            merged[feature] = counts
    return merged


def delete_buckets_before(connection: Connection, *, cutoff: float) -> int:
    result = connection.execute(
        delete(histogram_buckets).where(histogram_buckets.c.bucket_start < cutoff)
    )
    return int(result.rowcount)
