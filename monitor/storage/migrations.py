"""Bring a database to the current schema. Safe to run from several replicas at once."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from monitor.storage.engine import is_postgresql
from monitor.storage.tables import (
    deliveries,
    evaluations,
    histogram_buckets,
    histogram_watermarks,
    labels,
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


#: Ordered steps; step N brings the schema from version N-1 to N. Append, never edit.
STEPS: tuple[Callable[[Connection], None], ...] = (
    _v1_initial,
    _v2_reference_profiles,
    _v3_histograms,
    _v4_reference_scores,
    _v5_predictions_by_sequence,
    _v6_drop_predictions_by_sequence,
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
