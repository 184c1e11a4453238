"""The webhook outbox: one row per (event, route), written in the transaction that decides the
event, so an event is never lost, and sent by ``webhooks.sender`` until delivered or given up.

A row is ``pending`` (``next_attempt_at`` says when it is due), ``delivered`` or ``failed``.
A sender claims a due row by moving its ``next_attempt_at`` past the attempt's timeout with a
conditional update (a lease), so two replicas never send the same row at once, and a sender
that dies mid-attempt leaves the row due again once the lease ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, update

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


def claim_due(
    connection: Connection, *, now: float, lease_until: float, limit: int
) -> list[Delivery]:
    """Pending rows due by ``now``, oldest first, each leased until ``lease_until`` for the
    caller alone (rows another sender claimed first are skipped)."""
    due = connection.execute(
        select(*_COLUMNS)
        .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    ).all()
    claimed = []
    for row in due:
        delivery = _delivery(row)
        taken = connection.execute(
            update(deliveries)
            .where(
                deliveries.c.event_id == delivery.event_id,
                deliveries.c.route == delivery.route,
                deliveries.c.status == PENDING,
                deliveries.c.next_attempt_at == delivery.next_attempt_at,
            )
            .values(next_attempt_at=lease_until)
        ).rowcount
        if taken == 1:
            claimed.append(delivery)
    return claimed


def record_attempt(
    connection: Connection,
    *,
    event_id: str,
    route: str,
    status: str,
    attempts: int,
    next_attempt_at: float,
    error: str | None,
) -> None:
    connection.execute(
        update(deliveries)
        .where(deliveries.c.event_id == event_id, deliveries.c.route == route)
        .values(
            status=status,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=None if error is None else error[:1024],
        )
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
            status=PENDING, attempts=0, next_attempt_at=now, created_at=now, last_error=None
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
