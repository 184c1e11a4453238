"""Tick claims: which replica evaluates a model at a tick, decided by the database.

A model's ticks are the multiples of its ``schedule`` on the Unix epoch (as ``monitor replay``
defines them). Every replica tries to claim each tick; the claim is a row keyed by
(model, tick), so exactly one insert wins (``INSERT ... ON CONFLICT DO NOTHING``, on SQLite
and PostgreSQL alike). The winner holds a lease until ``lease_until``; it marks the tick done
in the transaction that stores the evaluation (``finish``), and only while the claim is still
its own, so an evaluation whose claim was taken over is rolled back rather than stored twice.
A claim whose lease ran out without ``done_at`` (its replica died, or hung) is taken over by
one replica: a conditional update that re-checks the row under its row lock, so two
replicas racing for it cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.storage.tables import evaluation_ticks as ticks


def claim(
    connection: Connection, *, model: str, tick: float, replica: str, now: float, lease: float
) -> bool:
    """Claim ``tick`` for ``replica`` until ``now + lease``: True when it is this replica's to
    evaluate (a new claim, or one taken over from a lapsed claimant), False when another
    replica holds it or it is done."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    inserted = connection.execute(
        insert(ticks)
        .values(model=model, tick=tick, claimed_by=replica, lease_until=now + lease)
        .on_conflict_do_nothing(index_elements=["model", "tick"])
        .returning(ticks.c.tick)  # a row back when inserted (rowcount is not reliable here)
    )
    if inserted.first() is not None:
        return True
    taken = connection.execute(
        update(ticks)
        .where(
            ticks.c.model == model,
            ticks.c.tick == tick,
            ticks.c.done_at.is_(None),
            ticks.c.lease_until < now,
        )
        .values(claimed_by=replica, lease_until=now + lease)
    )
    return bool(taken.rowcount == 1)


def claimable(
    connection: Connection, *, model: str, now: float, since: float, candidates: Iterable[float]
) -> list[float]:
    """Ticks of ``model`` at or after ``since`` there are to ``claim``, oldest first: those
    whose claim lapsed (lease over, not done) and those of ``candidates`` that nobody has
    claimed yet. A tick another replica holds or has done is left out, so a replica that lost
    it makes no claim attempt."""
    claimed = set()
    found = set()
    for tick, done_at, lease_until in connection.execute(
        select(ticks.c.tick, ticks.c.done_at, ticks.c.lease_until).where(
            ticks.c.model == model, ticks.c.tick >= since
        )
    ):
        claimed.add(float(tick))
        if done_at is None and lease_until < now:
            found.add(float(tick))
    found.update(tick for tick in candidates if tick >= since and tick not in claimed)
    return sorted(found)


def finish(connection: Connection, *, model: str, tick: float, replica: str, now: float) -> bool:
    """Mark ``tick`` done, inside the transaction that stores its evaluation; False (nothing
    changed) when the claim is no longer ``replica``'s: the caller must then roll back."""
    done = connection.execute(
        update(ticks)
        .where(
            ticks.c.model == model,
            ticks.c.tick == tick,
            ticks.c.claimed_by == replica,
            ticks.c.done_at.is_(None),
        )
        .values(done_at=now)
    )
    return bool(done.rowcount == 1)


def forget_before(connection: Connection, *, model: str, before: float) -> int:
    """Delete ``model``'s claims of ticks before ``before`` (done or abandoned for good)."""
    return int(
        connection.execute(
            delete(ticks).where(ticks.c.model == model, ticks.c.tick < before)
        ).rowcount
    )
