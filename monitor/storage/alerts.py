"""Active alerts and the history of alert events (see ``alerts.lifecycle``).

Alert state changes are serialised per model: ``lock_model`` is taken first in the
transaction that moves a model's alerts, so two evaluations of one model (on one replica or
several) apply the lifecycle one after the other, each against the states the other
committed. ``record`` refuses an event id already recorded (a unique index), so a transition
is never recorded twice even so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.alerts.lifecycle import Alert
from monitor.storage.tables import alert_history, alerts


@dataclass(frozen=True, slots=True)
class Stored:
    """An active alert with where its episode went."""

    model: str
    alert: Alert
    episode: str | None  # the alert.firing event's id, once firing
    routes: tuple[str, ...]  # routes the firing was sent to


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    event_id: str
    episode: str
    model: str
    rule: str
    feature: str
    type: str
    severity: str
    value: float
    threshold: float
    at: float
    routes: tuple[str, ...]


def _routes(text: str) -> tuple[str, ...]:
    return tuple(r for r in text.split(",") if r)


def active(connection: Connection, *, model: str | None = None) -> list[Stored]:
    query = select(alerts).order_by(alerts.c.model, alerts.c.rule, alerts.c.feature)
    if model is not None:
        query = query.where(alerts.c.model == model)
    found = []
    for row in connection.execute(query).mappings():
        alert = Alert(
            row["rule"],
            row["feature"],
            row["state"],
            row["severity"],
            row["breaches"],
            row["clears"],
            row["value"],
            row["threshold"],
            row["since"],
        )
        found.append(Stored(row["model"], alert, row["episode"], _routes(row["routes"])))
    return found


def save(connection: Connection, stored: Stored) -> None:
    """Insert or replace the active alert."""
    alert = stored.alert
    values = {
        "state": alert.state,
        "severity": alert.severity,
        "breaches": alert.breaches,
        "clears": alert.clears,
        "value": alert.value,
        "threshold": alert.threshold,
        "since": alert.since,
        "episode": stored.episode,
        "routes": ",".join(stored.routes),
    }
    key = (
        alerts.c.model == stored.model,
        alerts.c.rule == alert.rule,
        alerts.c.feature == alert.feature,
    )
    if not connection.execute(update(alerts).where(*key).values(**values)).rowcount:
        connection.execute(
            insert(alerts).values(
                model=stored.model, rule=alert.rule, feature=alert.feature, **values
            )
        )


def remove(connection: Connection, *, model: str, rule: str, feature: str) -> None:
    connection.execute(
        delete(alerts).where(
            alerts.c.model == model, alerts.c.rule == rule, alerts.c.feature == feature
        )
    )


#: pg_advisory_xact_lock's first key for the per-model alert lock ("alrt"); the second is the
#: model's hash (two models sharing one only wait for each other).
_LOCK_CLASS = 0x616C7274


def lock_model(connection: Connection, *, model: str) -> None:
    """Hold ``model``'s alert lock until the transaction ends. On PostgreSQL a transaction
    advisory lock (a row lock would not cover a model with no alert row yet); on SQLite the
    ``Database``'s write lock already serialises writers, in one process (SQLite shared by
    several processes is no supported replica set-up)."""
    if connection.dialect.name == "postgresql":
        digest = hashlib.blake2b(model.encode(), digest_size=4).digest()
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:cls, :key)"),
            {"cls": _LOCK_CLASS, "key": int.from_bytes(digest, "big", signed=True)},
        )


def last_event_id(connection: Connection, *, model: str, rule: str, feature: str) -> str | None:
    """The id of the latest event of one alert (model, rule, feature), if any."""
    found = connection.execute(
        select(alert_history.c.event_id)
        .where(
            alert_history.c.model == model,
            alert_history.c.rule == rule,
            alert_history.c.feature == feature,
        )
        .order_by(alert_history.c.seq.desc())
        .limit(1)
    ).scalar()
    return None if found is None else str(found)


def record(connection: Connection, entry: HistoryEntry) -> bool:
    """Record an event; False (nothing written) when its id is recorded already."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    inserted = connection.execute(
        dialect.insert(alert_history)
        .values(
            event_id=entry.event_id,
            episode=entry.episode,
            model=entry.model,
            rule=entry.rule,
            feature=entry.feature,
            type=entry.type,
            severity=entry.severity,
            value=entry.value,
            threshold=entry.threshold,
            at=entry.at,
            routes=",".join(entry.routes),
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(alert_history.c.seq)  # a row back when inserted (rowcount says -1 here)
    )
    return inserted.first() is not None


def history(
    connection: Connection, *, model: str | None, since: float | None, limit: int
) -> list[HistoryEntry]:
    """Alert events, newest first."""
    query = select(alert_history).order_by(alert_history.c.seq.desc()).limit(limit)
    if model is not None:
        query = query.where(alert_history.c.model == model)
    if since is not None:
        query = query.where(alert_history.c.at >= since)
    return [
        HistoryEntry(
            row["event_id"],
            row["episode"],
            row["model"],
            row["rule"],
            row["feature"],
            row["type"],
            row["severity"],
            row["value"],
            row["threshold"],
            row["at"],
            _routes(row["routes"]),
        )
        for row in connection.execute(query).mappings()
    ]


def last_sent(
    connection: Connection, *, model: str, rule: str | None, feature: str | None, route: str
) -> float | None:
    """When this alert (or any alert of the model, for ``rule=None``) last fired to
    ``route``: for the route's cooldown."""
    query = (
        select(alert_history.c.at, alert_history.c.routes)
        .where(alert_history.c.model == model, alert_history.c.type == "alert.firing")
        .order_by(alert_history.c.seq.desc())
        .limit(200)
    )
    if rule is not None:
        query = query.where(alert_history.c.rule == rule)
    if feature is not None:
        query = query.where(alert_history.c.feature == feature)
    for at, routes in connection.execute(query):
        if route in _routes(routes):
            return float(at)
    return None
