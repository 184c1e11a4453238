"""Group commit isolates failures, on SQLite and PostgreSQL: a batch the database refuses
fails alone, with its own error; the batches it shared a transaction with are written again
without it and succeed, each exactly once and all or nothing; a failure of the database
itself fails every waiting batch, without retrying forever."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select

from monitor import codec
from monitor.domain import IngestResult, LabelBatch, PredictionBatch
from monitor.errors import StorageError
from monitor.storage import migrate
from monitor.storage import repository as repo
from monitor.storage.database import Database
from monitor.storage.group_commit import GroupCommitWriter
from monitor.storage.tables import labels, predictions

GOOD = 200


def batch(ids: list[str], ts: float = 1.0) -> PredictionBatch:
    n = len(ids)
    return PredictionBatch(
        ids,
        [ts] * n,
        [codec.encode({"x": 1.0})] * n,
        ["a"] * n,
        [None] * n,
        [None] * n,
    )


def poisoned(engine: Engine, ids: list[str]) -> PredictionBatch:
    """A batch past validation that the database refuses: on PostgreSQL an id holding NUL
    (a DataError from the server, the defect this guards against); on SQLite, which stores
    NUL, a feature blob the driver cannot bind."""
    poison = batch(ids)
    if engine.dialect.name == "postgresql":
        poison.ids[-1] = "bad\x00id"
    else:
        poison.features[-1] = object()  # type: ignore[call-overload]
    return poison


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(predictions.c.id)).scalars())


async def gathered(works: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    return await asyncio.gather(*(work() for work in works), return_exceptions=True)


@pytest.mark.parametrize("size", [1, 3, 100])
def test_a_poison_batch_fails_alone_among_200_concurrent_good_ones(
    engine: Engine, size: int
) -> None:
    """Batches of 1 and 3 records share merged statements on PostgreSQL; batches of 100 are
    inserted one statement each. Either way the poison's neighbours are all stored."""
    migrate(engine)
    writer = GroupCommitWriter(Database(engine))
    good = [
        repo.PredictionWrite("m", batch([f"g{w}-{i}" for i in range(size)]), 1.0)
        for w in range(GOOD)
    ]
    poison = repo.PredictionWrite("m", poisoned(engine, [f"p-{i}" for i in range(size)]), 1.0)
    order = [*good[: GOOD // 2], poison, *good[GOOD // 2 :]]

    async def all_at_once() -> list[Any]:
        # submitted in one go: they wait together, and the first group holds all of them
        return await gathered([lambda w=w: writer.submit(w) for w in order])

    results = asyncio.run(all_at_once())
    failed = results.pop(GOOD // 2)
    assert isinstance(failed, StorageError)
    assert results == [IngestResult(accepted=size, duplicates=0)] * GOOD
    ids = stored_ids(engine)
    assert len(ids) == GOOD * size  # each exactly once, nothing of the poison
    assert set(ids) == {i for w in good for i in w.batch.ids}


def test_duplicates_are_counted_as_if_each_was_written_alone(engine: Engine) -> None:
    """Written again after a failure, a batch repeating an earlier batch's id still counts it
    as a duplicate, and one repeating the poison's ids stores them."""
    migrate(engine)
    writer = GroupCommitWriter(Database(engine))
    works = [
        repo.PredictionWrite("m", batch(["a", "b"]), 1.0),
        repo.PredictionWrite("m", poisoned(engine, ["c", "d"]), 1.0),
        repo.PredictionWrite("m", batch(["b", "c"]), 1.0),
    ]
    results = asyncio.run(gathered([lambda w=w: writer.submit(w) for w in works]))
    assert results[0] == IngestResult(accepted=2, duplicates=0)
    assert isinstance(results[1], StorageError)
    assert results[2] == IngestResult(accepted=1, duplicates=1)
    assert sorted(stored_ids(engine)) == ["a", "b", "c"]


def test_a_work_that_fails_after_writing_leaves_nothing(engine: Engine) -> None:
    """All or nothing per batch: what a failing work wrote before it failed is undone, and
    its neighbours (a labels write among them) are stored."""
    migrate(engine)
    writer = GroupCommitWriter(Database(engine))

    class Broken(RuntimeError):
        pass

    calls = []

    def half_written(connection: Connection) -> IngestResult:
        calls.append(1)
        repo.insert_predictions(connection, model="m", batch=batch(["half"]), received_at=1.0)
        raise Broken("failed after writing")

    def label(connection: Connection) -> IngestResult:
        return repo.upsert_labels(
            connection, model="m", batch=LabelBatch(["x"], [2.0], ["a"], [None]), received_at=2.0
        )

    works: list[Callable[[Connection], IngestResult]] = [
        repo.PredictionWrite("m", batch(["x"]), 1.0),
        half_written,
        label,
    ]
    results = asyncio.run(gathered([lambda w=w: writer.submit(w) for w in works]))
    assert results[0] == IngestResult(accepted=1, duplicates=0)
    assert isinstance(results[1], Broken)
    assert results[2].accepted == 1 and results[2].label_delays == (1.0,)
    assert stored_ids(engine) == ["x"]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(labels)).scalar() == 1
    assert len(calls) == 2  # with the group, then alone
    alone = asyncio.run(gathered([lambda: writer.submit(half_written)]))
    assert isinstance(alone[0], Broken)
    assert len(calls) == 3  # alone already: not written again
    assert stored_ids(engine) == ["x"]


class FailingBegins:
    """An engine whose transactions cannot begin (the database is down), counting tries."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.begins = 0
        self.lock = threading.Lock()

    def write(self) -> Any:
        with self.lock:
            self.begins += 1
        raise ConnectionRefusedError("the database is down")


def test_a_database_failure_fails_every_batch_once(engine: Engine) -> None:
    """Not batch-specific: nothing is written again, every waiting request gets the error."""
    down = FailingBegins(engine)
    writer = GroupCommitWriter(down)  # type: ignore[arg-type]
    works = [repo.PredictionWrite("m", batch([f"w{i}"]), 1.0) for i in range(20)]
    results = asyncio.run(gathered([lambda w=w: writer.submit(w) for w in works]))
    assert all(isinstance(r, ConnectionRefusedError) for r in results)
    assert down.begins == 1


def test_a_commit_failure_fails_the_group_without_retrying(engine: Engine) -> None:
    """A failure at commit names no batch: every batch of the group fails, once."""
    migrate(engine)
    tries = []

    class FailingCommit:
        @contextlib.contextmanager
        def write(self) -> Any:
            tries.append(1)
            with engine.connect() as connection:
                transaction = connection.begin()
                yield connection
                transaction.rollback()
                raise ConnectionResetError("lost at commit")

    writer = GroupCommitWriter(FailingCommit())  # type: ignore[arg-type]
    works = [repo.PredictionWrite("m", batch([f"w{i}"]), 1.0) for i in range(5)]
    results = asyncio.run(gathered([lambda w=w: writer.submit(w) for w in works]))
    assert all(isinstance(r, ConnectionResetError) for r in results)
    assert tries == [1]
    assert stored_ids(engine) == []


def test_later_groups_are_written_after_a_failed_one(engine: Engine) -> None:
    migrate(engine)
    writer = GroupCommitWriter(Database(engine))

    async def two_groups() -> list[Any]:
        first = await gathered(
            [
                lambda: writer.submit(repo.PredictionWrite("m", poisoned(engine, ["p"]), 1.0)),
                lambda: writer.submit(repo.PredictionWrite("m", batch(["a"]), 1.0)),
            ]
        )
        second = await writer.submit(repo.PredictionWrite("m", batch(["b"]), 1.0))
        return [*first, second]

    results = asyncio.run(two_groups())
    assert isinstance(results[0], StorageError)
    assert results[1:] == [IngestResult(1, 0), IngestResult(1, 0)]
    assert sorted(stored_ids(engine)) == ["a", "b"]
