"""Table definitions. Times are Unix seconds (double precision) in every table."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

#: An auto-incrementing 64-bit key that is SQLite's rowid alias on SQLite.
Serial = BigInteger().with_variant(Integer(), "sqlite")
Seconds = Float(precision=53)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

predictions = Table(
    "predictions",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("id", String(256), nullable=False),
    Column("ts", Seconds, nullable=False),
    Column("received_at", Seconds, nullable=False),
    Column("features", LargeBinary, nullable=False),  # JSON object, as validated
    Column("prediction_class", String(256)),
    Column("prediction_value", Seconds),
    Column("scores", LargeBinary),  # JSON object class -> probability
    Column("model_version", String(128)),  # schema version 13: the version that predicted
    UniqueConstraint("model", "id", name="uq_predictions_model_id"),
    Index("ix_predictions_model_ts", "model", "ts"),
)

labels = Table(
    "labels",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("id", String(256), nullable=False),
    Column("ts", Seconds, nullable=False),
    Column("received_at", Seconds, nullable=False),
    Column("label_class", String(256)),
    Column("label_value", Seconds),
    Column("corrections", Integer, nullable=False, server_default="0"),
    UniqueConstraint("model", "id", name="uq_labels_model_id"),
    Index("ix_labels_model_ts", "model", "ts"),
)

references = Table(
    "references",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("created_at", Seconds, nullable=False),
    Column("source", String(512), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("n", Integer, nullable=False),
)

reference_records = Table(
    "reference_records",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("features", LargeBinary, nullable=False),
    Column("prediction_class", String(256)),
    Column("prediction_value", Seconds),
    Column("label_class", String(256)),
    Column("label_value", Seconds),
    Column("scores", LargeBinary),  # added in schema version 4
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("created_at", Seconds, nullable=False),
    Column("window_start", Seconds),
    Column("window_end", Seconds),
    Column("n", Integer, nullable=False),
    Column("reference_version", Integer),
    Column("result", LargeBinary, nullable=False),  # the evaluation's JSON document
    Index("ix_evaluations_model_created", "model", "created_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("route", String(128), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("created_at", Seconds, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Seconds, nullable=False),
    Column("last_error", String(1024)),
    Column("body", LargeBinary, nullable=False),
    # the claim of the sender attempting the row now (None when nobody is): its outcome is
    # recorded only while the claim is still its own (storage.deliveries)
    Column("lease_token", String(32)),
    Index("ix_deliveries_status_next", "status", "next_attempt_at"),
)

reference_profiles = Table(
    "reference_profiles",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("feature", String(160), primary_key=True),
    Column("kind", String(16), nullable=False),  # numeric | categorical
    Column("profile", LargeBinary, nullable=False),
)

#: Per-time-bucket histograms of a model's records on its reference profiles' grids, for
#: windows too large to evaluate exactly. Counts add up across buckets and replicas.
histogram_buckets = Table(
    "histogram_buckets",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("reference_version", Integer, primary_key=True),
    Column("feature", String(160), primary_key=True),
    Column("bucket_start", Seconds, primary_key=True),
    Column("counts", LargeBinary, nullable=False),  # int64 array (numeric) or JSON (categorical)
    Column("missing", BigInteger, nullable=False),
)

#: Ingest sequence up to which a model's records are summarised in histogram_buckets.
histogram_watermarks = Table(
    "histogram_watermarks",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("reference_version", Integer, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

#: Active alerts (pending or firing), one per (model, rule, feature); see alerts.lifecycle.
alerts = Table(
    "alerts",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("rule", String(64), primary_key=True),
    Column("feature", String(160), primary_key=True),  # "" for a model-level rule
    Column("state", String(16), nullable=False),  # pending | firing
    Column("severity", String(16), nullable=False),
    Column("breaches", Integer, nullable=False),
    Column("clears", Integer, nullable=False),
    Column("value", Seconds, nullable=False),
    Column("threshold", Seconds, nullable=False),
    Column("since", Seconds, nullable=False),
    Column("episode", String(64)),  # the id of the alert.firing event, once firing
    Column("routes", String(1024), nullable=False, server_default=""),  # where it was sent
)

#: Every alert event (firing, escalated, resolved), kept until retention.
alert_history = Table(
    "alert_history",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("episode", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("feature", String(160), nullable=False),
    Column("type", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("value", Seconds, nullable=False),
    Column("threshold", Seconds, nullable=False),
    Column("at", Seconds, nullable=False),
    Column("routes", String(1024), nullable=False),  # routes the event was queued to
    Index("ix_alert_history_model_at", "model", "at"),
    # an event is recorded once (schema version 11; see jobs/alerting.py for the ids)
    Index("ux_alert_history_event_id", "event_id", unique=True),
)

# Labelled predictions (prediction joined with its label) per time bucket, as packed columns
# (monitor/evaluation/labelled.py), so that a window's performance merges buckets instead of
# joining every row again. ``clock`` is the time the pairs are bucketed by: "prediction_time"
# or "label_time" (a model's ``performance.window_by``).
performance_buckets = Table(
    "performance_buckets",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("clock", String(16), primary_key=True),
    Column("bucket_start", Seconds, primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("columns", LargeBinary, nullable=False),
)

# What the buckets of (model, clock) hold: every pair whose prediction's seq is at most
# ``prediction_seq`` and whose label's seq is at most ``label_seq``, bucketed at or after
# ``horizon`` (older pairs are not kept: no window reaches them).
performance_watermarks = Table(
    "performance_watermarks",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("clock", String(16), primary_key=True),
    Column("prediction_seq", BigInteger, nullable=False),
    Column("label_seq", BigInteger, nullable=False),
    Column("horizon", Seconds, nullable=False),
    # While a first build of the buckets runs (in several transactions): when it began, and
    # the builder's token in ``prediction_seq`` (negated); NULL once the buckets are complete.
    Column("building_since", Seconds),
)

# A label corrected in place (its seq unchanged) leaves the buckets that hold its old pair
# stale: the times to rebuild, written in the correcting transaction.
performance_stale = Table(
    "performance_stale",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("prediction_ts", Seconds, nullable=False),
    Column("old_label_ts", Seconds, nullable=False),
    Column("new_label_ts", Seconds, nullable=False),
)

# Halves of logged inferences (CloudEvents from KServe or Seldon) waiting for their other half,
# one row per (flavor, pair_key): kind "request" or "response" with the parsed rows or outputs
# as a MessagePack array in ``payload``; or, once the pair is stored, kind "paired" (no
# payload), kept until ``expires_at`` so that a half re-sent later is known as a duplicate.
cloudevent_halves = Table(
    "cloudevent_halves",
    metadata,
    Column("flavor", String(16), primary_key=True),  # kserve | seldon
    Column("pair_key", String(256), primary_key=True),  # ce-id (Seldon: ce-requestid)
    Column("kind", String(16), nullable=False),  # request | response | paired
    Column("model", String(128), nullable=False),
    Column("event_id", String(256), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("event_time", String(64)),  # ce-time as sent
    Column("payload", LargeBinary),
    Column("expires_at", Seconds, nullable=False),
    Index("ix_cloudevent_halves_expires_at", "expires_at"),
)

# Events already handled, by (ce-id, ce-type), remembered until ``expires_at``: a re-sent one is
# answered as a duplicate.
cloudevent_seen = Table(
    "cloudevent_seen",
    metadata,
    Column("event_id", String(256), primary_key=True),
    Column("event_type", String(128), primary_key=True),
    Column("expires_at", Seconds, nullable=False),
    Index("ix_cloudevent_seen_expires_at", "expires_at"),
)

# One row per (model, tick) that a replica claimed to evaluate (monitor/storage/ticks.py): the
# primary key lets one claim win; a claim whose lease ran out before ``done_at`` was set is
# taken over by another replica.
evaluation_ticks = Table(
    "evaluation_ticks",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("tick", Seconds, primary_key=True),  # a multiple of the model's schedule
    Column("claimed_by", String(128), nullable=False),  # the replica's id
    Column("lease_until", Seconds, nullable=False),
    Column("done_at", Seconds),  # set in the transaction that stores the evaluation
)
