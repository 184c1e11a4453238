"""Incremental summaries of the ingest log, and the one protocol replicas follow to keep them.

Three summaries are kept up to date from the ingest log instead of being recomputed from it at
every evaluation: the drift histograms (``jobs.drift_histograms``), the labelled-window buckets
(``jobs.labelled_windows``) and the unmatched-label ids (``jobs.unmatched``). Each one's
progress is a *mark*: how far into the log (by ``seq``) it covers. The rules, the same for all
three and for any number of replicas, are written once here:

* **Ready rows only.** A step takes rows in seq order up to ``Summary.ready``: the highest seq
  received ``SUMMARY_LAG_SECONDS`` ago or earlier. A transaction still in flight (on this
  replica or another) may commit a lower seq than one already visible; the lag assumes none
  stays open that long, so no row is ever skipped. Rows after the mark are read directly by
  the evaluation until they are summarised.
* **Chunks.** A step reads a bounded number of rows, so memory stays bounded however far
  behind the mark is; the caller loops.
* **Compare and set.** A step computes outside any lock, then writes in one transaction that
  first takes the mark row's lock and re-reads it (``Summary.unmoved``). If the mark moved,
  another summariser did that step first: nothing is written, and the step starts again from
  the new mark. So concurrent summarisers never count a row twice, and never wait on each
  other's computation.
* **Build lease.** A summary built in several transactions (the labelled buckets' first
  build) marks itself as being built, with the builder's token and the time. Others leave it
  alone for ``BUILD_LEASE_SECONDS``; after that it is taken as abandoned (its replica died)
  and built again. Meanwhile readers use the plain query.

A mark held only in memory (the unmatched-label ids, each replica's own) follows the first two
rules; it needs no lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from sqlalchemy import Connection

from monitor.storage import summaries as store
from monitor.storage.database import Database

#: Rows younger than this are left to the next step (see the module docstring).
SUMMARY_LAG_SECONDS = 30.0
#: A build marked as running for longer than this is taken as abandoned.
BUILD_LEASE_SECONDS = 600.0

M = TypeVar("M")


def ready_seq(database: Database, *, table: str, after: int, now: float) -> int:
    """The seq up to which ``table``'s rows (predictions or labels) may be summarised at
    ``now``: the highest received ``SUMMARY_LAG_SECONDS`` before it; ``after`` if none."""
    with database.read() as connection:
        return store.ready_seq(
            connection, table=table, after=after, cutoff=now - SUMMARY_LAG_SECONDS
        )


class Marks(Protocol[M]):
    """Where one summary's mark is stored."""

    def read(self, connection: Connection, *, lock: bool = False) -> M | None:
        """The mark; None if there is none. ``lock``: under the row's lock (see
        ``storage.summaries.locked``), inside a write transaction."""

    def write(self, connection: Connection, mark: M) -> None:
        """Replace the mark."""


class Summary(Generic[M]):
    """One summary's mark, read and moved by the rules of the module docstring."""

    def __init__(self, *, database: Database, clock: Callable[[], float], marks: Marks[M]) -> None:
        self.database = database
        self.clock = clock
        self.marks = marks

    def mark(self) -> M | None:
        """The stored mark, read without a lock (a step's starting point)."""
        with self.database.read() as connection:
            return self.marks.read(connection)

    def ready(self, table: str, *, after: int, now: float | None = None) -> int:
        """See ``ready_seq``; ``now`` defaults to the clock's."""
        return ready_seq(
            self.database, table=table, after=after, now=self.clock() if now is None else now
        )

    @contextlib.contextmanager
    def unmoved(self, expected: M | None) -> Iterator[Connection | None]:
        """A write transaction holding the mark's lock; None instead of the connection when
        the mark is no longer ``expected`` (another summariser moved first: leave it to that
        one)."""
        with self.database.write() as connection:
            current = self.marks.read(connection, lock=True)
            yield connection if current == expected else None

    def advance(
        self, expected: M, to: M, write: Callable[[Connection], object] | None = None
    ) -> bool:
        """Run ``write`` and move the mark from ``expected`` to ``to`` in one transaction,
        unless the mark moved meanwhile (then nothing is written: False)."""
        with self.unmoved(expected) as connection:
            if connection is None:
                return False
            if write is not None:
                write(connection)
            self.marks.write(connection, to)
        return True

    def building(self, since: float | None, now: float) -> bool:
        """Whether a build that began at ``since`` is still within its lease."""
        return since is not None and now - since < BUILD_LEASE_SECONDS
