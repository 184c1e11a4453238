"""What every incremental summary of the ingest log reads and locks (see ``jobs.summaries``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, text, update


def ready_seq(connection: Connection, *, table: str, after: int, cutoff: float) -> int:
    """The highest seq in ``table`` (predictions or labels, of any model) of a row received at
    or before ``cutoff``; ``after`` if there is none after it.

    A row with a lower seq that is not visible yet belongs to a transaction open since before
    ``cutoff``: the summary lag assumes none stays open that long. Taking every model's rows as
    the bound moves a quiet model's mark past its neighbours' traffic, so the scans that start
    from it stay short. Read backwards from the newest row: it stops at the first one old enough.
    """
    row = connection.execute(
        text(
            f"SELECT seq FROM {table} WHERE seq > :after AND received_at <= :cutoff"
            " ORDER BY seq DESC LIMIT 1"
        ),
        {"after": after, "cutoff": cutoff},
    ).first()
    return after if row is None else int(row[0])


def locked(
    connection: Connection,
    query: Select[Any],
    *,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    column: str,
) -> Select[Any]:
    """``query`` (which reads a mark row of ``table``) made to read it under the row's lock, so
    that summarisers on every replica act on a mark one at a time.

    PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite: pysqlite opens the transaction at the first
    write, so a SELECT before it would read outside the transaction and two processes could
    both act on the same mark. A write that changes nothing (``column`` set to itself) takes
    SQLite's write lock first: the read that follows is inside the transaction, and a second
    summariser waits, then sees the new mark.
    """
    if connection.dialect.name == "postgresql":
        return query.with_for_update()
    own = table.c[column]
    connection.execute(update(table).where(*where).values({own: own}))
    return query
