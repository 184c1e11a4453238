"""Prediction inserts on SQLite and PostgreSQL: one batch (binary array parameters on
PostgreSQL), neighbouring batches of a group (one merged statement on PostgreSQL), and the
group-commit writer that hands them over."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DBAPIError

from monitor import codec
from monitor.domain import IngestResult, PredictionBatch
from monitor.errors import ModelNotFoundError, StorageError
from monitor.storage import migrate
from monitor.storage import repository as repo
from monitor.storage.database import Database
from monitor.storage.group_commit import GroupCommitWriter
from monitor.storage.tables import predictions


def classified(ids: list[str], ts: float = 1.0, duplicates: int = 0) -> PredictionBatch:
    n = len(ids)
    return PredictionBatch(
        ids,
        [ts] * n,
        [codec.encode({"id": i}) for i in ids],
        ["approved"] * n,
        [None] * n,
        [codec.encode({"approved": 0.25, "rejected": 0.75})] * n,
        duplicates,
    )


def stored_rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                predictions.c.model,
                predictions.c.id,
                predictions.c.ts,
                predictions.c.received_at,
                predictions.c.features,
                predictions.c.prediction_class,
                predictions.c.prediction_value,
                predictions.c.scores,
            ).order_by(predictions.c.seq)
        ).all()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def test_every_column_round_trips_exactly(engine: Engine) -> None:
    """Ids and blobs that text-format arrays must escape (quotes, backslashes, braces, commas,
    NUL bytes, the word NULL) come back byte for byte; bytes, memoryview and bytearray
    features are stored alike; NULL scores and an all-NULL prediction column stay NULL."""
    migrate(engine)
    ids = ['a"b', "back\\slash", "{braces},", "NULL", "ünï cödé", " spaced "]
    blobs = [b"\x00\x01\\x00", b'{"a":1}', b"\\", b"NULL", b"\xff" * 300, b""]
    features: list[bytes] = [
        blobs[0],
        memoryview(blobs[1]),  # type: ignore[list-item]
        bytearray(blobs[2]),
        *blobs[3:],
    ]
    scores: list[bytes | None] = [None, b"s\x00", None, b"", None, b"\\\\"]
    batch = PredictionBatch(
        ids, [0, 1, 2, 3, 4, 2**40], features, ["approved"] * 6, [None] * 6, scores
    )
    regression = PredictionBatch(
        ids[:2], [0.5, 1.5], blobs[:2], [None] * 2, [-1.25, 3.0], [None] * 2
    )
    with engine.begin() as connection:
        first = repo.insert_predictions(connection, model="c", batch=batch, received_at=7)
        second = repo.insert_predictions(connection, model="r", batch=regression, received_at=8.5)
    assert (first, second) == (IngestResult(6, 0), IngestResult(2, 0))
    assert stored_rows(engine) == [
        *(
            ("c", i, float(t), 7.0, f, "approved", None, s)
            for i, t, f, s in zip(ids, [0, 1, 2, 3, 4, 2**40], blobs, scores, strict=True)
        ),
        ("r", ids[0], 0.5, 8.5, blobs[0], None, -1.25, None),
        ("r", ids[1], 1.5, 8.5, blobs[1], None, 3.0, None),
    ]


def test_a_batch_failing_midway_stores_nothing(engine: Engine) -> None:
    """A row the database refuses after hundreds of good ones rolls back the batch and the
    transaction's earlier batches: on PostgreSQL a NULL feature object, refused by the server
    inside the one statement; on SQLite (whose INSERT OR IGNORE skips NULLs) a value that
    cannot be bound, in the batch's second statement."""
    migrate(engine)
    n = 1300
    good = classified([f"g{i}" for i in range(n)])
    features: list[object] = list(good.features)
    features[900] = None if engine.dialect.name == "postgresql" else object()
    bad = PredictionBatch(
        [f"b{i}" for i in range(n)],
        good.timestamps,
        features,  # type: ignore[arg-type]
        good.prediction_classes,
        good.prediction_values,
        good.scores,
    )
    with pytest.raises(DBAPIError), engine.begin() as connection:
        repo.insert_predictions(connection, model="c", batch=good, received_at=1)
        repo.insert_predictions(connection, model="c", batch=bad, received_at=1)
    assert stored_rows(engine) == []


def test_neighbouring_writes_count_duplicates_each(engine: Engine) -> None:
    """Small writes share statements on PostgreSQL: each still gets its own counts, whether
    its ids repeat a stored record, another write of the same group (which must start a new
    statement), or its own batch; a large write in between and an empty one keep their
    place; mixed int and float times of different writes are stored as floats."""
    migrate(engine)
    with engine.begin() as connection:
        repo.insert_predictions(connection, model="c", batch=classified(["old"]), received_at=0)
    writes = [
        repo.PredictionWrite("c", classified(["a", "old"], ts=2), 5),
        repo.PredictionWrite("c", classified(["b"], duplicates=2), 5.5),
        repo.PredictionWrite("d", classified(["a"]), 6),  # same id, other model
        repo.PredictionWrite("c", classified(["a", "c"]), 6),  # repeats "a" of the first
        repo.PredictionWrite("c", classified([f"big{i}" for i in range(100)] + ["b"]), 7),
        repo.PredictionWrite("c", classified([]), 7),
        repo.PredictionWrite(
            "p",
            PredictionBatch(["x", "y"], [3, 4], [b"f", b"g"], [None, None], [1, 2.5], [None, None]),
            8,
        ),
    ]
    with engine.begin() as connection:
        results = repo.PredictionWrite.write_together(connection, writes)
    assert results == [
        IngestResult(1, 1),
        IngestResult(1, 2),
        IngestResult(1, 0),
        IngestResult(1, 1),
        IngestResult(100, 1),
        IngestResult(0, 0),
        IngestResult(2, 0),
    ]
    rows = stored_rows(engine)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("c", "old", 0.0),
        ("c", "a", 5.0),
        ("c", "b", 5.5),
        ("d", "a", 6.0),
        ("c", "c", 6.0),
        *(("c", f"big{i}", 7.0) for i in range(100)),
        ("p", "x", 8.0),
        ("p", "y", 8.0),
    ]
    assert rows[1][2:] == (2.0, 5.0, codec.encode({"id": "a"}), "approved", None, rows[1][7])
    assert codec.decode(rows[1][7]) == {"approved": 0.25, "rejected": 0.75}  # type: ignore[arg-type]
    assert rows[-1][2:] == (4.0, 8.0, b"g", None, 2.5, None)


def test_merged_statements_never_repeat_a_key_nor_grow_past_their_bound() -> None:
    small = [repo.PredictionWrite("c", classified([f"s{i}"]), 1) for i in range(3)]
    again = repo.PredictionWrite("c", classified(["s1"]), 1)
    large = repo.PredictionWrite("c", classified([f"l{i}" for i in range(64)]), 1)
    statements = list(repo._merged_statements([*small, again, large, small[0]]))
    assert statements == [small, [again], [large], [small[0]]]
    many = [
        repo.PredictionWrite("c", classified([f"{w}-{i}" for i in range(63)]), 1) for w in range(20)
    ]
    sizes = [len(s) for s in repo._merged_statements(many)]
    assert sizes == [16, 4]  # 16 x 63 = 1008 records, within 1024


def test_group_commit_writes_concurrent_batches_together(engine: Engine) -> None:
    """Concurrent requests share one transaction: merged writes each get their counts, a
    refused work fails alone, and so does a write the database refuses (the rest of its group
    is written again without it; see test_group_commit.py)."""
    migrate(engine)
    writer = GroupCommitWriter(Database(engine))

    def refused(_connection: Connection) -> IngestResult:
        raise ModelNotFoundError("nope")

    async def first_group() -> list[object]:
        return await asyncio.gather(
            writer.submit(repo.PredictionWrite("c", classified(["a", "b"]), 1)),
            writer.submit(refused),
            writer.submit(repo.PredictionWrite("c", classified(["b", "c"]), 1)),
            writer.submit(repo.PredictionWrite("c", classified(["d"]), 1)),
            return_exceptions=True,
        )

    results = asyncio.run(first_group())
    assert results[0] == IngestResult(2, 0)
    assert isinstance(results[1], ModelNotFoundError)
    assert results[2:] == [IngestResult(1, 1), IngestResult(1, 0)]

    broken = classified(["e", "f"])
    broken.features[1] = None if engine.dialect.name == "postgresql" else object()  # type: ignore[call-overload]

    async def failing_group() -> list[object]:
        return await asyncio.gather(
            writer.submit(repo.PredictionWrite("c", classified(["g"]), 1)),
            writer.submit(repo.PredictionWrite("c", broken, 1)),
            return_exceptions=True,
        )

    stored_g, failed = asyncio.run(failing_group())
    assert stored_g == IngestResult(1, 0)
    assert isinstance(failed, StorageError)
    assert [row[1] for row in stored_rows(engine)] == ["a", "b", "c", "d", "g"]
