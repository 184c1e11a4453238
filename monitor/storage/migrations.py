"""Bring a database to the current schema. Safe to run from several replicas at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import orjson
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Table,
    bindparam,
    inspect,
    select,
    text,
    tuple_,
)

from monitor import codec
from monitor.storage.engine import is_postgresql
from monitor.storage.tables import (
    alert_history,
    alerts,
    cloudevent_halves,
    cloudevent_seen,
    deliveries,
    evaluation_ticks,
    evaluations,
    histogram_buckets,
    histogram_watermarks,
    labels,
    performance_buckets,
    performance_stale,
    performance_watermarks,
    predictions,
    reference_profiles,
    reference_records,
    references,
    schema_version,
)


def _v1_initial(connection: Connection) -> None:
    for table in (predictions, labels, references, reference_records, evaluations, deliveries):
        table.create(connection, checkfirst=True)


def _v2_reference_profiles(connection: Connection) -> None:
    reference_profiles.create(connection, checkfirst=True)


def _v3_histograms(connection: Connection) -> None:
    histogram_buckets.create(connection, checkfirst=True)
    histogram_watermarks.create(connection, checkfirst=True)


def _v4_reference_scores(connection: Connection) -> None:
    columns = {c["name"] for c in inspect(connection).get_columns("reference_records")}
    if "scores" not in columns:
        connection.execute(
            text(
                "ALTER TABLE reference_records ADD COLUMN scores BYTEA"
                if connection.dialect.name == "postgresql"
                else "ALTER TABLE reference_records ADD COLUMN scores BLOB"
            )
        )


def _v5_predictions_by_sequence(connection: Connection) -> None:
    # The histogram path reads each model's records in ingest order after a watermark.
    connection.execute(
        text("CREATE INDEX IF NOT EXISTS ix_predictions_model_seq ON predictions (model, seq)")
    )


def _v6_drop_predictions_by_sequence(connection: Connection) -> None:
    # Reading after a watermark walks the primary key instead (histograms.rows_after): the
    # index of step 5 cost every insert a fourth B-tree.
    connection.execute(text("DROP INDEX IF EXISTS ix_predictions_model_seq"))


def _v7_stored_objects_as_msgpack(connection: Connection) -> None:
    # Feature and score objects were JSON text; they are MessagePack maps now (monitor.codec).
    _convert_objects(connection, predictions, (predictions.c.seq,))
    key = reference_records.c
    _convert_objects(connection, reference_records, (key.model, key.version, key.row))


def _convert_objects(
    connection: Connection, table: Table, key: tuple[Column[object], ...], chunk: int = 5000
) -> None:
    """Re-encode ``table``'s JSON ``features``/``scores`` as MessagePack, ``chunk`` rows at a
    time in key order."""
    last: tuple[object, ...] | None = None
    while True:
        query = select(*key, table.c.features, table.c.scores).order_by(*key).limit(chunk)
        if last is not None:
            query = query.where(tuple_(*key) > tuple_(*last))
        rows = connection.execute(query).all()
        if not rows:
            return
        last = tuple(rows[-1][: len(key)])
        updates = []
        for row in rows:
            features = cast(bytes, row[-2])
            scores = cast(bytes | None, row[-1])
            if codec.is_json(features) or (scores is not None and codec.is_json(scores)):
                keys = {f"k{i}": value for i, value in enumerate(row[: len(key)])}
                updates.append(
                    {
                        **keys,
                        "new_features": _msgpack(features),
                        "new_scores": None if scores is None else _msgpack(scores),
                    }
                )
        if updates:
            statement = (
                table.update()
                .where(*(column == bindparam(f"k{i}") for i, column in enumerate(key)))
                .values(features=bindparam("new_features"), scores=bindparam("new_scores"))
            )
            connection.execute(statement, updates)


def _msgpack(blob: bytes) -> bytes:
    return codec.encode(orjson.loads(blob)) if codec.is_json(blob) else blob


def _v8_alerts(connection: Connection) -> None:
    alerts.create(connection, checkfirst=True)
    alert_history.create(connection, checkfirst=True)


def _v9_performance_buckets(connection: Connection) -> None:
    performance_buckets.create(connection, checkfirst=True)
    performance_watermarks.create(connection, checkfirst=True)
    performance_stale.create(connection, checkfirst=True)


def _v10_cloudevents(connection: Connection) -> None:
    # CloudEvents pairing state, shared by replicas and kept across restarts.
    cloudevent_halves.create(connection, checkfirst=True)
    cloudevent_seen.create(connection, checkfirst=True)


def _v11_evaluation_ticks(connection: Connection) -> None:
    # One evaluation per model per tick whatever the number of replicas (storage/ticks.py), and
    # one alert event per transition: an event id is derived from the alert's previous event
    # (jobs/alerting.py), and a copy is refused by this index rather than recorded twice.
    evaluation_ticks.create(connection, checkfirst=True)
    connection.execute(
        text(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_alert_history_event_id "
            "ON alert_history (event_id)"
        )
    )


def _v12_delivery_leases(connection: Connection) -> None:
    # A sender's claim on a delivery, so that only the holder records the attempt's outcome.
    columns = {c["name"] for c in inspect(connection).get_columns("deliveries")}
    if "lease_token" not in columns:
        connection.execute(text("ALTER TABLE deliveries ADD COLUMN lease_token VARCHAR(32)"))


def _v13_model_versions(connection: Connection) -> None:
    # The model version that made each prediction (issue 16: versions seen, canary vs stable).
    columns = {c["name"] for c in inspect(connection).get_columns("predictions")}
    if "model_version" not in columns:
        connection.execute(text("ALTER TABLE predictions ADD COLUMN model_version VARCHAR(128)"))


#: Ordered steps; step N brings the schema from version N-1 to N. Append, never edit.
STEPS: tuple[Callable[[Connection], None], ...] = (
    _v1_initial,
    _v2_reference_profiles,
    _v3_histograms,
    _v4_reference_scores,
    _v5_predictions_by_sequence,
    _v6_drop_predictions_by_sequence,
    _v7_stored_objects_as_msgpack,
    _v8_alerts,
    _v9_performance_buckets,
    _v10_cloudevents,
    _v11_evaluation_ticks,
    _v12_delivery_leases,
    _v13_model_versions,
)
_LOCK_KEY = 0x64726966  # "drif": pg_advisory_xact_lock key that serialises migrations


def migrate(engine: Engine) -> int:
    """Apply the missing steps and return the schema version now in force."""
    with engine.begin() as connection:
        if is_postgresql(engine):
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        schema_version.create(connection, checkfirst=True)
        current = connection.execute(select(schema_version.c.version)).scalar()
        if current is None:
            connection.execute(schema_version.insert().values(version=0))
            current = 0
        for version, step in enumerate(STEPS, start=1):
            if version > current:
                step(connection)
                connection.execute(schema_version.update().values(version=version))
                current = version
        return current
