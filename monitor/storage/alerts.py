"""Active alerts and the history of alert events (see ``alerts.lifecycle``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

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


def record(connection: Connection, entry: HistoryEntry) -> None:
    connection.execute(
        insert(alert_history).values(
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
    )


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
