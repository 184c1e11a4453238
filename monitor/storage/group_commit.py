"""Group commit: writes from concurrent requests share one transaction and one commit.

Requests ``await writer.submit(work)``; one drain task at a time runs every waiting ``work``
in a single transaction on one worker thread, then resolves each request with its own result.
A ``work`` may decode and validate its body before it writes: doing that on the writer thread,
not the event loop, keeps the two from contending for the GIL row by row. A ``work`` that
raises a ``MonitorError`` (invalid records, a malformed body) must do so before it writes; it
fails alone.

**Failures are isolated.** When a work (or a combined statement of several) raises anything
else, the group's transaction is rolled back and each of its works is written again alone, in a
transaction of its own and in the same order: the one the database refuses fails with its own
error, every other is stored (all or nothing each, exactly once) and answered with its own
result. A work must therefore write the same way when it is run again. A failure that names no
work (the connection or the transaction cannot begin, the commit fails) is the database's: it
fails every work of the group at once, and a work written alone that meets such a failure fails
the ones not yet written with it, so nothing is tried more than twice.

Works of a ``CombinedWork`` class that stand next to each other in a group are handed to their
class's ``write_together`` in one call, which may store them with fewer statements (one
round trip for many small batches on PostgreSQL) but must give each its own result.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any, Self, TypeVar, cast

from sqlalchemy import Connection

from monitor.errors import MonitorError
from monitor.storage.database import Database, translate

T = TypeVar("T")


class _Refused:
    """A work's own failure: its request gets ``error``, the others go on."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _WorkFailed(Exception):
    """A work (or a combined run of works) raised while writing: a failure of that work,
    not of the database, as far as the group can tell."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(str(error))


class CombinedWork(abc.ABC):
    """A work that can be written together with its neighbours of the same class."""

    @abc.abstractmethod
    def __call__(self, connection: Connection) -> Any:
        """Write this work alone."""

    @classmethod
    @abc.abstractmethod
    def write_together(cls, connection: Connection, works: Sequence[Self]) -> list[Any]:
        """Write ``works`` in their order inside the caller's transaction and return their
        results in the same order. Must not raise ``MonitorError``: the works were validated
        when they were made. A failure here has every work of the group written again alone
        (``__call__``), so that only the failing one fails."""


class GroupCommitWriter:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._pending: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        self._draining = False

    async def submit(self, work: Callable[[Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    results = await asyncio.to_thread(self._write, [w for w, _ in group])
                except BaseException as exc:  # the transaction failed: so did each write
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, _Refused):
                        future.set_exception(result.error)
                    else:
                        future.set_result(result)
        finally:
            self._draining = False

    def _write(self, works: list[Callable[[Connection], Any]]) -> list[Any]:
        """Each work's result (or ``_Refused``), the group written in one transaction, or
        each work alone when that fails because of a work. Raises when the database fails."""
        try:
            return self._write_together(works)
        except _WorkFailed as failed:
            if len(works) == 1:  # it was alone already
                return [_Refused(failed.error)]
        results: list[Any] = []
        for done, work in enumerate(works):
            try:
                results.extend(self._write_together([work]))
            except _WorkFailed as failed:
                results.append(_Refused(failed.error))
            except Exception as exc:  # the database's failure: the rest fail with it
                results.extend(_Refused(exc) for _ in works[done:])
                break
        return results

    def _write_together(self, works: list[Callable[[Connection], Any]]) -> list[Any]:
        """Write ``works`` in one transaction; ``_WorkFailed`` when one of them raised."""
        results: list[Any] = []
        with self._database.write() as connection:
            for kind, run in itertools.groupby(works, key=type):
                if issubclass(kind, CombinedWork):
                    try:
                        results.extend(
                            kind.write_together(connection, cast(list[CombinedWork], list(run)))
                        )
                    except Exception as exc:
                        raise _WorkFailed(translate(exc)) from exc
                    continue
                for work in run:
                    try:
                        results.append(work(connection))
                    except MonitorError as exc:  # refused before writing: the others go on
                        results.append(_Refused(exc))
                    except Exception as exc:
                        raise _WorkFailed(translate(exc)) from exc
        return results
