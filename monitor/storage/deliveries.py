"""The webhook outbox: one row per (event, route), written in the transaction that decides the
event, so an event is never lost, and sent by ``webhooks.sender`` until delivered or given up.

A row is ``pending`` (``next_attempt_at`` says when it is due), ``delivered`` or ``failed``.

Leases, so that replicas sharing the database send each row once:

* a sender claims one due row at a time (``claim_next``), just before attempting it: it moves
  the row's ``next_attempt_at`` to the lease's end and writes a token of its own into
  ``lease_token``. On PostgreSQL the row is picked ``FOR UPDATE SKIP LOCKED``, so concurrent
  senders take different rows without waiting for each other; on SQLite the service's write
  lock serialises claims. A leased row is not due, so nobody else claims it until the lease
  ends;
* right before sending, the sender extends the lease to cover the whole send (``renew``),
  provided the token is still its own;
* the outcome is recorded only if the token is still the sender's (``record_attempt``, a
  compare-and-set): a sender whose lease ended and passed to another records nothing.

A sender that dies mid-attempt leaves the row due again once its lease ends; another sends it
again, with the same event id (at-least-once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, and_, func, insert, select, update

from monitor.storage.tables import deliveries

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
STATUSES = (PENDING, DELIVERED, FAILED)


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: str
    route: str
    model: str
    created_at: float
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    body: bytes


_COLUMNS = (
    deliveries.c.event_id,
    deliveries.c.route,
    deliveries.c.model,
    deliveries.c.created_at,
    deliveries.c.status,
    deliveries.c.attempts,
    deliveries.c.next_attempt_at,
    deliveries.c.last_error,
    deliveries.c.body,
)


def _delivery(row: Sequence[object]) -> Delivery:
    event_id, route, model, created_at, status, attempts, next_at, error, body = row
    return Delivery(
        str(event_id),
        str(route),
        str(model),
        float(created_at),  # type: ignore[arg-type]
        str(status),
        int(attempts),  # type: ignore[call-overload]
        float(next_at),  # type: ignore[arg-type]
        None if error is None else str(error),
        bytes(body),  # type: ignore[call-overload]
    )


def enqueue(
    connection: Connection,
    *,
    event_id: str,
    bodies: Mapping[str, bytes],
    model: str,
    now: float,
) -> None:
    """Queue the event for each route (with that route's body), due now, inside the caller's
    transaction."""
    if bodies:
        connection.execute(
            insert(deliveries),
            [
                {
                    "event_id": event_id,
                    "route": route,
                    "model": model,
                    "created_at": now,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "body": body,
                }
                for route, body in bodies.items()
            ],
        )


def claim_next(
    connection: Connection, *, now: float, lease_until: float, token: str
) -> Delivery | None:
    """The oldest pending row due by ``now``, leased until ``lease_until`` under ``token`` for
    the caller alone, or None when no row is due (rows other senders hold are skipped).

    Returned as it was before the claim (its ``next_attempt_at`` the time it fell due)."""
    for _ in range(_CLAIM_TRIES):
        row = connection.execute(
            select(*_COLUMNS)
            .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)
            .order_by(deliveries.c.next_attempt_at)
            .limit(1)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has its write lock
        ).first()
        if row is None:
            return None
        delivery = _delivery(row)
        # Still due: without the row lock (SQLite in several processes) another sender may
        # have claimed it since it was read; then try the next one.
        taken = connection.execute(
            update(deliveries)
            .where(
                _key(delivery.event_id, delivery.route),
                deliveries.c.status == PENDING,
                deliveries.c.next_attempt_at <= now,
            )
            .values(next_attempt_at=lease_until, lease_token=token)
        ).rowcount
        if taken == 1:
            return delivery
    return None


_CLAIM_TRIES = 5


def renew(
    connection: Connection, *, event_id: str, route: str, token: str, lease_until: float
) -> bool:
    """Extend the lease held under ``token`` to ``lease_until``; False if the row is no
    longer the holder's (its lease passed to another sender, or the row was settled)."""
    return bool(
        connection.execute(
            update(deliveries)
            .where(_held(event_id, route, token))
            .values(next_attempt_at=lease_until)
        ).rowcount
        == 1
    )


def record_attempt(
    connection: Connection,
    *,
    event_id: str,
    route: str,
    token: str,
    status: str,
    attempts: int,
    next_attempt_at: float,
    error: str | None,
) -> bool:
    """Record the outcome of the attempt made under ``token`` and release the lease; False,
    recording nothing, if the row is no longer the holder's."""
    return bool(
        connection.execute(
            update(deliveries)
            .where(_held(event_id, route, token))
            .values(
                status=status,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_error=None if error is None else error[:1024],
                lease_token=None,
            )
        ).rowcount
        == 1
    )


def _key(event_id: str, route: str) -> ColumnElement[bool]:
    return and_(deliveries.c.event_id == event_id, deliveries.c.route == route)


def _held(event_id: str, route: str, token: str) -> ColumnElement[bool]:
    return and_(
        _key(event_id, route),
        deliveries.c.status == PENDING,
        deliveries.c.lease_token == token,
    )


def list_deliveries(
    connection: Connection, *, status: str | None, limit: int, model: str | None = None
) -> list[Delivery]:
    """The newest deliveries first, of one status (or all)."""
    query = select(*_COLUMNS).order_by(deliveries.c.created_at.desc()).limit(limit)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    if model is not None:
        query = query.where(deliveries.c.model == model)
    return [_delivery(row) for row in connection.execute(query)]


def resend(connection: Connection, *, event_id: str, route: str | None, now: float) -> int:
    """Queue a delivered or failed event again (one route, or all of its routes), due now,
    with a fresh retry window; return how many rows were queued."""
    query = update(deliveries).where(
        deliveries.c.event_id == event_id, deliveries.c.status != PENDING
    )
    if route is not None:
        query = query.where(deliveries.c.route == route)
    return connection.execute(
        query.values(
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            last_error=None,
            lease_token=None,
        )
    ).rowcount


def backlog(connection: Connection) -> dict[str, int]:
    """Pending deliveries per route."""
    rows = connection.execute(
        select(deliveries.c.route, func.count())
        .where(deliveries.c.status == PENDING)
        .group_by(deliveries.c.route)
    )
    return {str(route): int(count) for route, count in rows}
