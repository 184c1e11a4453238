"""Evaluation history and reference profiles."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.storage.tables import evaluations, reference_profiles


def store_evaluation(
    connection: Connection,
    *,
    model: str,
    created_at: float,
    window_start: float,
    window_end: float,
    n: int,
    reference_version: int | None,
    document: dict[str, Any],
) -> int:
    """Store an evaluation's document; its id (``GET .../drift/history`` answers it)."""
    result = connection.execute(
        insert(evaluations).values(
            model=model,
            created_at=created_at,
            window_start=window_start,
            window_end=window_end,
            n=n,
            reference_version=reference_version,
            result=orjson.dumps(document),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def latest_evaluation(connection: Connection, *, model: str) -> dict[str, Any] | None:
    blob = connection.execute(
        select(evaluations.c.result)
        .where(evaluations.c.model == model)
        .order_by(evaluations.c.seq.desc())
        .limit(1)
    ).scalar()
    return None if blob is None else orjson.loads(blob)


def evaluation_history(
    connection: Connection, *, model: str, since: float | None, until: float | None, limit: int
) -> list[dict[str, Any]]:
    """Evaluations oldest first, at most ``limit`` (the newest ones when there are more)."""
    query = select(evaluations.c.seq, evaluations.c.result).where(evaluations.c.model == model)
    if since is not None:
        query = query.where(evaluations.c.created_at >= since)
    if until is not None:
        query = query.where(evaluations.c.created_at <= until)
    query = query.order_by(evaluations.c.seq.desc()).limit(limit)
    documents = [{"id": seq, **orjson.loads(blob)} for seq, blob in connection.execute(query)]
    documents.reverse()
    return documents


def stored_evaluation(
    connection: Connection, *, model: str, evaluation_id: int
) -> tuple[tuple[float, float, float], dict[str, Any]] | None:
    """The time the model's evaluation ``evaluation_id`` was made as of and its window's
    start and end (to the bit, unlike its document's RFC 3339 times), and its document; or
    None."""
    row = connection.execute(
        select(
            evaluations.c.created_at,
            evaluations.c.window_start,
            evaluations.c.window_end,
            evaluations.c.result,
        ).where(evaluations.c.model == model, evaluations.c.seq == evaluation_id)
    ).first()
    if row is None:
        return None
    times = (float(row[0]), float(row[1]), float(row[2]))
    return times, {"id": evaluation_id, **orjson.loads(row[3])}


def store_profiles(
    connection: Connection, *, model: str, version: int, blobs: dict[str, tuple[str, bytes]]
) -> None:
    """Store a reference version's profiles. Two evaluations (on two replicas) may build and
    store the same version's at once: they are the same profiles, and the second keeps the
    first's rather than failing on the key."""
    connection.execute(
        delete(reference_profiles).where(
            reference_profiles.c.model == model, reference_profiles.c.version == version
        )
    )
    if blobs:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        connection.execute(
            dialect.insert(reference_profiles).on_conflict_do_nothing(),
            [
                {
                    "model": model,
                    "version": version,
                    "feature": name,
                    "kind": kind,
                    "profile": blob,
                }
                for name, (kind, blob) in blobs.items()
            ],
        )


def load_profiles(
    connection: Connection, *, model: str, version: int
) -> dict[str, tuple[str, bytes]] | None:
    """The stored profiles of a reference version, or None when none were stored yet."""
    rows = connection.execute(
        select(
            reference_profiles.c.feature, reference_profiles.c.kind, reference_profiles.c.profile
        ).where(reference_profiles.c.model == model, reference_profiles.c.version == version)
    ).all()
    if not rows:
        return None
    return {feature: (kind, bytes(blob)) for feature, kind, blob in rows}
