"""The pairing state of logged inferences (CloudEvents from KServe and Seldon Core v1), shared
by every replica and kept across restarts: halves waiting for their other half
(``cloudevent_halves``) and the events already handled (``cloudevent_seen``).

Every function runs inside the caller's transaction. Pairing is race-free on PostgreSQL with
concurrent replicas: a half is inserted with ``ON CONFLICT DO NOTHING`` (a concurrent insert of
the same key waits for the first transaction to end), and an existing row is locked with
``SELECT ... FOR UPDATE`` before it is acted on, so exactly one transaction takes a waiting half.
On SQLite the caller holds the service's write lock, and the first statement of each function
is a write, which takes the database's write lock before anything is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, Table, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from monitor.storage.tables import cloudevent_halves, cloudevent_seen

Kind = Literal["request", "response"]
PAIRED = "paired"


@dataclass(frozen=True, slots=True)
class Half:
    """One half of a logged inference, as it waits for the other."""

    flavor: str
    pair_key: str
    kind: Kind
    model: str
    event_id: str
    event_type: str
    event_time: str | None
    payload: bytes  # the parsed rows (request) or outputs (response), MessagePack


@dataclass(frozen=True, slots=True)
class Offer:
    """What ``offer`` found. ``status``: ``waiting`` (the half is kept: nothing was waiting, or
    a half of the same kind, which it replaced), ``partner`` (the other half, taken: the caller
    stores the pair in this transaction) or ``paired`` (the pair was stored already).
    ``expired``: a half past its time that this one replaced, never to be paired."""

    status: Literal["waiting", "partner", "paired"]
    partner: Half | None = None
    expired: Half | None = None


def _insert(connection: Connection, table: Table) -> PgInsert | SqliteInsert:
    """An INSERT of the connection's dialect, which has ``ON CONFLICT``."""
    if connection.dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


def remember(
    connection: Connection, *, event_id: str, event_type: str, now: float, until: float
) -> bool:
    """Remember the event (``ce-id``, ``ce-type``) until ``until``; False when it is
    remembered already (a re-sent event). A concurrent transaction remembering the same event
    waits for this one to end."""
    statement = _insert(connection, cloudevent_seen).values(
        event_id=event_id, event_type=event_type, expires_at=until
    )
    statement = statement.on_conflict_do_update(
        index_elements=[cloudevent_seen.c.event_id, cloudevent_seen.c.event_type],
        set_={"expires_at": statement.excluded.expires_at},
        where=cloudevent_seen.c.expires_at <= now,  # forgotten, only not deleted yet
    )
    # RETURNING, not rowcount: psycopg reports -1 rows for these statements
    return connection.execute(statement.returning(cloudevent_seen.c.event_id)).first() is not None


def offer(
    connection: Connection, half: Half, *, now: float, until: float, paired_until: float
) -> Offer:
    """Keep ``half`` waiting until ``until``, or take the other half of its pair if that one
    is waiting. A taken half's row is marked paired until ``paired_until`` (the caller stores
    the pair in the same transaction), so that a half of it re-sent later is a duplicate. A row
    past its time counts as absent: the half replaces it."""
    table = cloudevent_halves
    values = {
        "flavor": half.flavor,
        "pair_key": half.pair_key,
        "kind": half.kind,
        "model": half.model,
        "event_id": half.event_id,
        "event_type": half.event_type,
        "event_time": half.event_time,
        "payload": half.payload,
        "expires_at": until,
    }
    key = (table.c.flavor == half.flavor, table.c.pair_key == half.pair_key)
    query = select(*_HALF, table.c.expires_at).where(*key)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    while True:
        statement = (
            _insert(connection, table)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(table.c.flavor)
        )
        if connection.execute(statement).first() is not None:
            return Offer("waiting")
        row = connection.execute(query).one_or_none()
        if row is not None:
            break
        # deleted (it expired) between the insert and the select: insert again

    kind, expires_at = str(row.kind), float(row.expires_at)
    if expires_at > now and kind == PAIRED:
        return Offer("paired")
    if expires_at > now and kind != half.kind:
        connection.execute(
            update(table)
            .where(*key)
            .values(
                kind=PAIRED,
                model=half.model,
                event_id=half.event_id,
                event_type=half.event_type,
                event_time=half.event_time,
                payload=None,
                expires_at=paired_until,
            )
        )
        return Offer("partner", partner=_half(row))
    connection.execute(update(table).where(*key).values(**values))
    expired = _half(row) if expires_at <= now and kind != PAIRED else None
    return Offer("waiting", expired=expired)


def expire(connection: Connection, *, now: float) -> list[tuple[str, str]]:
    """Delete the halves and remembered events past their time; return (model, kind) of each
    deleted half that was still waiting for its other half. Rows another transaction holds (on
    PostgreSQL) are left for the next run, so replicas expiring at once never wait for each
    other, and each row is deleted, and counted, by one of them."""
    halves, seen = cloudevent_halves.c, cloudevent_seen.c
    due_halves = select(halves.flavor, halves.pair_key).where(halves.expires_at <= now)
    due_seen = select(seen.event_id, seen.event_type).where(seen.expires_at <= now)
    if connection.dialect.name == "postgresql":
        due_halves = due_halves.with_for_update(skip_locked=True)
        due_seen = due_seen.with_for_update(skip_locked=True)
    deleted = connection.execute(
        delete(cloudevent_halves)
        .where(tuple_(halves.flavor, halves.pair_key).in_(due_halves))
        .returning(halves.model, halves.kind)
    ).all()
    connection.execute(
        delete(cloudevent_seen).where(tuple_(seen.event_id, seen.event_type).in_(due_seen))
    )
    return [(str(model), str(kind)) for model, kind in deleted if kind != PAIRED]


_HALF = (
    cloudevent_halves.c.flavor,
    cloudevent_halves.c.pair_key,
    cloudevent_halves.c.kind,
    cloudevent_halves.c.model,
    cloudevent_halves.c.event_id,
    cloudevent_halves.c.event_type,
    cloudevent_halves.c.event_time,
    cloudevent_halves.c.payload,
)


def _half(row: Sequence[object]) -> Half:
    flavor, pair_key, kind, model, event_id, event_type, event_time, payload = row[:8]
    assert kind in ("request", "response")
    return Half(
        flavor=str(flavor),
        pair_key=str(pair_key),
        kind=kind,
        model=str(model),
        event_id=str(event_id),
        event_type=str(event_type),
        event_time=None if event_time is None else str(event_time),
        payload=bytes(payload),  # type: ignore[call-overload]
    )
