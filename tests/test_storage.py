"""Storage on SQLite and PostgreSQL: migrations, duplicates, retention, references."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, inspect

from monitor.config import Config, parse_config
from monitor.domain import LabelBatch, PredictionBatch
from monitor.service import Service
from monitor.storage import migrate
from monitor.storage import repository as repo


def batch(ids: list[str], timestamps: list[float]) -> PredictionBatch:
    n = len(ids)
    return PredictionBatch(
        ids, timestamps, [b'{"age":1}'] * n, ["approved"] * n, [None] * n, [None] * n
    )


def test_migrate_is_idempotent_and_creates_every_table(engine: Engine) -> None:
    assert migrate(engine) == 6
    assert migrate(engine) == 6
    tables = set(inspect(engine).get_table_names())
    assert {
        "predictions",
        "labels",
        "references",
        "reference_records",
        "evaluations",
        "deliveries",
        "schema_version",
    } <= tables


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
    assert info.source == f"file:{reference}"
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
