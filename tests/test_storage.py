"""Storage on SQLite and PostgreSQL: migrations, duplicates, retention, references."""

from __future__ import annotations

import json
import time

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, inspect, select

from monitor import codec
from monitor.config import Config, parse_config
from monitor.domain import LabelBatch, PredictionBatch
from monitor.service import Service
from monitor.storage import migrate
from monitor.storage import repository as repo
from monitor.storage.migrations import STEPS
from monitor.storage.tables import predictions, reference_records, schema_version


def batch(ids: list[str], timestamps: list[float]) -> PredictionBatch:
    n = len(ids)
    return PredictionBatch(
        ids, timestamps, [codec.encode({"age": 1})] * n, ["approved"] * n, [None] * n, [None] * n
    )


def test_migrate_is_idempotent_and_creates_every_table(engine: Engine) -> None:
    assert migrate(engine) == 13
    assert migrate(engine) == 13
    tables = set(inspect(engine).get_table_names())
    assert {
        "predictions",
        "labels",
        "references",
        "reference_records",
        "evaluations",
        "deliveries",
        "schema_version",
        "performance_buckets",
        "performance_watermarks",
        "performance_stale",
        "cloudevent_halves",
        "cloudevent_seen",
        "evaluation_ticks",
    } <= tables


def test_migration_7_re_encodes_json_objects_as_msgpack(engine: Engine) -> None:
    """Rows stored as JSON text before schema version 7 read back as the same objects."""
    migrate(engine)
    features = [{"age": 41.5, "country": "DE"}, {"age": None, "country": 7}]
    scores = [{"yes": 0.25, "no": 0.75}, None]
    with engine.begin() as connection:
        for seq, (row_features, row_scores) in enumerate(zip(features, scores, strict=True)):
            connection.execute(
                predictions.insert().values(
                    model="m",
                    id=f"r{seq}",
                    ts=1.0,
                    received_at=1.0,
                    features=json.dumps(row_features).encode(),
                    scores=None if row_scores is None else json.dumps(row_scores).encode(),
                )
            )
        connection.execute(
            reference_records.insert().values(
                model="m", version=1, row=0, features=b'{"age": 3}', scores=b'{"yes": 1.0}'
            )
        )
        connection.execute(schema_version.update().values(version=6))
    assert migrate(engine) == len(STEPS)
    with engine.connect() as connection:
        stored = connection.execute(
            select(predictions.c.features, predictions.c.scores).order_by(predictions.c.seq)
        ).all()
        reference = connection.execute(
            select(reference_records.c.features, reference_records.c.scores)
        ).one()
    assert [codec.decode(f) for f, _ in stored] == features
    assert [None if s is None else codec.decode(s) for _, s in stored] == scores
    assert not any(codec.is_json(f) for f, _ in stored)
    assert (codec.decode(reference[0]), codec.decode(reference[1])) == ({"age": 3}, {"yes": 1.0})


def test_duplicates_within_and_across_batches(engine: Engine) -> None:
    migrate(engine)
    with engine.begin() as connection:
        first = repo.insert_predictions(
            connection, model="m", batch=batch(["a", "b"], [1, 2]), received_at=3
        )
        second = repo.insert_predictions(
            connection, model="m", batch=batch(["b", "c"], [1, 2]), received_at=3
        )
        other_model = repo.insert_predictions(
            connection, model="n", batch=batch(["a"], [1]), received_at=3
        )
    assert (first.accepted, first.duplicates) == (2, 0)
    assert (second.accepted, second.duplicates) == (1, 1)
    assert (other_model.accepted, other_model.duplicates) == (1, 0)


def test_retention_deletes_only_old_raw_records(engine: Engine) -> None:
    config: Config = parse_config("""
storage: {retention: 1d}
models:
  - {name: m, task: regression, features: [{name: x, type: numeric}]}
""")
    now = 1_000_000.0
    service = Service(config, engine=engine, registry=CollectorRegistry(), clock=lambda: now)
    service.start(run_jobs=False)
    day = 86400.0
    with engine.begin() as connection:
        repo.insert_predictions(
            connection,
            model="m",
            batch=batch(["old", "new"], [now - 2 * day, now - day / 2]),
            received_at=now,
        )
        repo.upsert_labels(
            connection,
            model="m",
            batch=LabelBatch(["old", "new"], [now - 3 * day, now - 1], [None, None], [1.0, 2.0]),
            received_at=now,
        )
    assert service.apply_retention() == (1, 1)
    with engine.connect() as connection:
        assert repo.prediction_ids(connection, model="m") == {"new"}
        assert repo.model_counts(connection, model="m").labels == 1
    assert (
        service.registry.get_sample_value(
            "drift_monitor_retention_deleted_records_total", {"kind": "predictions"}
        )
        == 1
    )
    service.stop()


def test_reference_file_is_stored_once_per_content(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reference = tmp_path / "ref.csv"
    reference.write_text("x\n1\n2\n")
    (tmp_path / "monitor.yaml").write_text(
        "models:\n  - {name: m, task: regression, features: [{name: x, type: numeric}],"
        " reference: {path: ref.csv}}\n"
    )
    from monitor.config import load_config

    config = load_config(tmp_path / "monitor.yaml")
    for expected_version in (1, 1):
        service = Service(config, engine=engine, registry=CollectorRegistry())
        service.start(run_jobs=False)
        info = service.reference("m")
        assert info is not None and (info.version, info.n) == (expected_version, 2)
        assert (
            service.registry.get_sample_value("drift_monitor_reference_version", {"model": "m"})
            == expected_version
        )
        service.stop()
    reference.write_text("x\n1\n2\n3\n")
    service = Service(config, engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=False)
    info = service.reference("m")
    assert info is not None and (info.version, info.n) == (2, 3)
    assert info.source == "file:ref.csv"  # as written in the config, not resolved
    service.stop()
    assert time.time() > info.created_at > 0


def test_retention_deletes_in_chunks(engine: Engine) -> None:
    migrate(engine)
    with engine.begin() as connection:
        repo.insert_predictions(
            connection, model="m", batch=batch(["a", "b", "c"], [1, 2, 9]), received_at=10
        )
    chunks = []
    while True:
        with engine.begin() as connection:
            chunk = repo.delete_older_than(connection, cutoff=5, limit=1)
        chunks.append(chunk)
        if chunk == (0, 0):
            break
    assert chunks == [(1, 0), (1, 0), (0, 0)]
    with engine.connect() as connection:
        assert repo.prediction_ids(connection, model="m") == {"c"}


def test_large_batches_store_every_column_across_statements(engine: Engine) -> None:
    """1,300 rows take several multi-row statements on SQLite; duplicates of stored ids are
    skipped in whichever statement they fall, and each task's prediction column is kept."""
    migrate(engine)
    n = 1300
    ids = [f"id{i}" for i in range(n)]
    classified = PredictionBatch(
        ids,
        [float(i) for i in range(n)],
        [codec.encode({"age": i}) for i in range(n)],
        ["approved" if i % 2 else "rejected" for i in range(n)],
        [None] * n,
        [codec.encode({"approved": 0.5, "rejected": 0.5})] * n,
    )
    regressed = PredictionBatch(
        ids,
        [1.0] * n,
        [codec.encode({"age": 1})] * n,
        [None] * n,
        [i / 4 for i in range(n)],
        [None] * n,
    )
    with engine.begin() as connection:
        early = repo.insert_predictions(
            connection, model="c", batch=batch(ids[100:400], [0.0] * 300), received_at=1.0
        )
        result = repo.insert_predictions(connection, model="c", batch=classified, received_at=9.0)
        regression = repo.insert_predictions(
            connection, model="r", batch=regressed, received_at=9.0
        )
    assert (early.accepted, result.accepted, result.duplicates) == (300, 1000, 300)
    assert (regression.accepted, regression.duplicates) == (1300, 0)
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                predictions.c.model,
                predictions.c.id,
                predictions.c.ts,
                predictions.c.received_at,
                predictions.c.features,
                predictions.c.prediction_class,
                predictions.c.prediction_value,
                predictions.c.scores,
            ).order_by(predictions.c.seq)
        ).all()
    classification_rows = [r for r in rows if r.model == "c" and r.received_at == 9.0]
    assert [r.id for r in classification_rows] == ids[:100] + ids[400:]
    row = classification_rows[-1]
    assert (row.ts, codec.decode(row.features), row.prediction_class, row.prediction_value) == (
        1299.0,
        {"age": 1299},
        "approved",
        None,
    )
    assert codec.decode(row.scores) == {"approved": 0.5, "rejected": 0.5}
    regression_rows = [r for r in rows if r.model == "r"]
    assert [r.prediction_value for r in regression_rows] == [i / 4 for i in range(n)]
    assert {r.prediction_class for r in regression_rows} == {None}


def test_window_rows_join_labels_once_the_model_has_any(engine: Engine) -> None:
    from monitor.storage import windows

    migrate(engine)
    with engine.begin() as connection:
        repo.insert_predictions(
            connection, model="m", batch=batch(["a", "b"], [1.0, 2.0]), received_at=1
        )
        before = windows.rows_between(connection, model="m", start=0, end=5, regression=False)
        repo.upsert_labels(
            connection,
            model="m",
            batch=LabelBatch(["b"], [3.0], ["rejected"], [None]),
            received_at=3,
        )
        after = windows.rows_between(connection, model="m", start=0, end=5, regression=False)
    assert (before.predictions, before.labels) == (["approved", "approved"], [None, None])
    assert sorted(zip(after.predictions, after.labels, strict=True), key=str) == sorted(
        [("approved", None), ("approved", "rejected")], key=str
    )


def test_window_rows_are_read_a_few_at_a_time_and_stay_aligned(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window is fetched ``FETCH_ROWS`` rows at a time (here 3, with a short last fetch);
    every row is read once, its features, prediction, label and scores in step."""
    from monitor.storage import windows

    monkeypatch.setattr(windows, "FETCH_ROWS", 3)
    migrate(engine)
    n = 10
    ids = [f"r{i}" for i in range(n)]
    features = [codec.encode({"age": i}) for i in range(n)]
    scores = [codec.encode({"approved": i / 10}) if i % 2 else None for i in range(n)]
    with engine.begin() as connection:
        repo.insert_predictions(
            connection,
            model="m",
            batch=PredictionBatch(
                ids,
                [float(i + 1) for i in range(n)],
                features,
                [f"p{i}" for i in range(n)],
                [None] * n,
                scores,
            ),
            received_at=1,
        )
        repo.upsert_labels(
            connection,
            model="m",
            batch=LabelBatch(["r4", "r7"], [20.0, 20.0], ["l4", "l7"], [None, None]),
            received_at=2,
        )
        rows = windows.rows_between(connection, model="m", start=0, end=n, regression=False)
    assert len(rows) == n and (rows.first_ts, rows.last_ts) == (1.0, float(n))
    found = sorted(
        zip(rows.features, rows.predictions, rows.labels, rows.scores, strict=True),
        key=lambda row: row[1],
    )
    expected = [(features[i], f"p{i}", {4: "l4", 7: "l7"}.get(i), scores[i]) for i in range(n)]
    assert found == sorted(expected, key=lambda row: row[1])
    assert all(type(blob) is bytes for blob in rows.features)
