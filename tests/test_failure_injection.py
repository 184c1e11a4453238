"""A failure injected mid-way through every write and streaming path leaves the database usable.

Each path is run with its n-th SQL statement failing, for n = 1, 2, ... until the path runs
through without reaching the failure. After every failure, every pooled connection must still
write and checkpoint, nothing may be left inside a transaction (PostgreSQL) or holding a read
snapshot (SQLite: a full checkpoint completes), and what the failing call wrote must be all
or nothing. On SQLite and PostgreSQL.

The export case is the defect of issue 12, item 1: a row that failed to format mid-stream used
to send a connection back to the pool with its cursor still open, after which about one ingest
request in five answered 503 (``database table is locked``) and the WAL checkpoint job failed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, event, func, select, text
from test_cloudevents import CONFIG_YAML as CLOUDEVENTS_YAML
from test_cloudevents import KSERVE_REQUEST, KSERVE_RESPONSE, V1_REQUEST, V1_RESPONSE, kserve

from monitor.api import create_app
from monitor.config import parse_config
from monitor.errors import StorageError
from monitor.evaluation import export
from monitor.service import Service
from monitor.storage import create_database_engine
from monitor.storage.tables import labels, predictions

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z

CONFIG = """
models:
  - name: credit
    inference_service: credit-model
    task: classification
    classes: [approved, rejected]
    features:
      - {name: age, type: numeric}
      - {name: income, type: numeric}
      - {name: country, type: categorical}
    window: {duration: 1h}
    min_samples: 5
    thresholds: {psi: {warning: 0.0, critical: 0.0}}
webhooks:
  - name: hook
    url: "http://127.0.0.1:9/hook"
    secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    allow_private: true
    timeout: 1s
"""
assert "credit-model" in CLOUDEVENTS_YAML  # the events below are addressed to that service


class InjectedFailure(Exception):
    """Raised by the driver hook in place of the n-th statement."""


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def named_engine(database_url: str) -> Iterator[Engine]:
    """The test database, with connections named so that PostgreSQL's view of them can be
    told from other processes' on the same server."""
    name = f"inject_{uuid.uuid4().hex[:10]}"
    url = database_url
    if url.startswith("postgresql"):
        url = f"{url}{'&' if '?' in url else '?'}application_name={name}"
    engine = create_database_engine(url)
    engine.info_name = name  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


def record(i: int, ts: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "timestamp": ts,
        "features": {"age": 20 + i % 50, "income": 1000.0 + i, "country": "DE" if i % 3 else "FR"},
        "prediction": "approved" if i % 2 else "rejected",
        **extra,
    }


class FailAt:
    """Fails the n-th statement run on ``engine`` from now on (counting from 1)."""

    def __init__(self, engine: Engine, n: int) -> None:
        self.engine, self.n, self.seen, self.fired = engine, n, 0, False

    def __enter__(self) -> FailAt:
        event.listen(self.engine, "before_cursor_execute", self._before)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)

    def _before(self, *_: object) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.fired = True
            raise InjectedFailure(f"statement {self.n} failed")


def assert_database_usable(service: Service) -> None:
    """Every pooled connection writes and checkpoints; nothing holds a transaction or a
    snapshot; then an ordinary ingest succeeds."""
    engine = service.engine
    held = [engine.connect() for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]
    try:
        for connection in held:
            with service.database._write_lock, connection.begin():  # as Database.write does
                connection.execute(select(func.count()).select_from(predictions)).scalar_one()
                connection.execute(labels.delete().where(labels.c.id == "__probe__"))
            if service.database.is_sqlite:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                connection.commit()
    finally:
        for connection in held:
            connection.close()
    with engine.connect() as connection:
        if service.database.is_sqlite:
            busy, wal_frames, copied = connection.exec_driver_sql(
                "PRAGMA wal_checkpoint(PASSIVE)"
            ).one()
            assert busy == 0 and wal_frames == copied, "a connection still holds a snapshot"
        else:
            stuck = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                    "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                ),
                {"name": engine.info_name},  # type: ignore[attr-defined]
            ).scalar_one()
            assert stuck == 0, "a pooled connection was left inside a transaction"
    probe = [record(10_000 + k, NOW - 5, id=f"probe-{uuid.uuid4().hex}") for k in range(3)]
    assert service.store_predictions("credit", probe).accepted == 3


def stored_ids(service: Service) -> set[str]:
    with service.database.read() as connection:
        return set(connection.execute(select(predictions.c.id)).scalars())


def fail_each_statement(service: Service, run: Callable[[], object], *, limit: int = 60) -> int:
    """Run ``run`` with its 1st, 2nd, ... statement failing until it completes without reaching
    the failure; check the database after each. The number of statements it ran."""
    for n in range(1, limit + 1):
        with FailAt(service.engine, n) as failing:
            try:
                run()
            except (InjectedFailure, StorageError, RuntimeError):
                assert failing.fired, "failed without the injected failure"
            else:
                if not failing.fired:
                    return n - 1
        assert_database_usable(service)
    raise AssertionError(f"still reaching statement {limit}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(named_engine: Engine, clock: Clock) -> Iterator[Service]:
    service = Service(
        parse_config(CONFIG), engine=named_engine, registry=CollectorRegistry(), clock=clock
    )
    service.start(run_jobs=False)
    yield service
    service.stop()


def seed(service: Service, n: int = 40) -> None:
    service.store_predictions("credit", [record(i, NOW - 3000 + i) for i in range(n)])
    service.store_labels(
        "credit",
        [{"id": f"r{i}", "label": "approved", "timestamp": NOW - 2000 + i} for i in range(n)],
    )


def test_export_failing_mid_stream_leaves_no_connection_behind(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(service, n=120)
    formatted = 0
    original = export._instant

    def fails_late(seconds: float | None) -> str | None:
        nonlocal formatted
        formatted += 1
        if formatted == 150:  # a row of the second page (pages of 50 rows below)
            raise OverflowError("timestamp out of range for platform time_t")
        return original(seconds)

    monkeypatch.setattr(export, "_instant", fails_late)
    monkeypatch.setattr("monitor.storage.windows.EXPORT_PAGE", 50)
    body = service.export("credit", start=0.0, end=NOW, media_type="application/x-ndjson")
    with pytest.raises(OverflowError):
        for _ in body:
            pass
    assert_database_usable(service)
    # a client that hangs up after the first page: the generator is left unfinished
    monkeypatch.setattr(export, "_instant", original)
    abandoned = service.export("credit", start=0.0, end=NOW, media_type="text/csv")
    next(abandoned)
    assert_database_usable(service)
    abandoned.close()


def test_export_over_http_after_a_failed_stream(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reproduction of issue 12, item 1, through the app: a stored label time that does
    not convert kills the export mid-stream; every later write still succeeds."""
    seed(service, n=120)
    with service.database.write() as connection:
        connection.execute(labels.update().where(labels.c.id == "r70").values(ts=1e300))
    monkeypatch.setattr("monitor.storage.windows.EXPORT_PAGE", 50)
    with TestClient(create_app(service, manage_service=False)) as client:
        response = client.get("/v1/models/credit/export", params={"start": 0, "end": NOW})
        assert response.status_code == 200
        lines = response.text.splitlines()
        assert len(lines) == 120  # the out-of-range time is exported as its number
        assert sum('"label_timestamp":1e+300' in line for line in lines) == 1
        for k in range(20):
            answer = client.post("/v1/models/credit/predictions", json=[record(500 + k, NOW - 10)])
            assert answer.status_code == 202, answer.text
    assert_database_usable(service)


def test_sync_ingest_paths(service: Service) -> None:
    batch = [record(i, NOW - 100 + i) for i in range(5)]
    statements = fail_each_statement(service, lambda: service.store_predictions("credit", batch))
    assert statements >= 1
    assert {f"r{i}" for i in range(5)} <= stored_ids(service)
    labels_batch = [{"id": f"r{i}", "label": "rejected", "timestamp": NOW - 50} for i in range(5)]
    fail_each_statement(service, lambda: service.store_labels("credit", labels_batch))
    corrected = [{"id": f"r{i}", "label": "approved", "timestamp": NOW - 40} for i in range(5)]
    fail_each_statement(service, lambda: service.store_labels("credit", corrected))
    reference = [record(i, NOW - 9000 + i) for i in range(30)]
    fail_each_statement(
        service, lambda: service.store_reference("credit", reference, source="test")
    )


def test_group_commit_path(service: Service) -> None:
    def run() -> object:
        body = b"\n".join(
            __import__("orjson").dumps(record(i, NOW - 100 + i, id=f"g{i}-{time.monotonic_ns()}"))
            for i in range(4)
        )

        async def submit() -> object:
            return await service.store_predictions_body("credit", body, "application/x-ndjson")

        return asyncio.run(submit())

    assert fail_each_statement(service, run) >= 1


def test_evaluation_and_summaries(service: Service, clock: Clock) -> None:
    seed(service)
    service.store_reference("credit", [record(i, NOW - 9000 + i) for i in range(30)], source="test")
    clock.now = NOW + 120  # past the summary lag
    assert fail_each_statement(service, lambda: service.evaluate("credit"), limit=120) >= 3
    clock.now += 60
    service.store_predictions("credit", [record(i, NOW + 100 + i) for i in range(200, 210)])
    fail_each_statement(service, lambda: service.evaluate("credit"), limit=120)


def test_webhook_outbox_paths(service: Service) -> None:
    fail_each_statement(service, lambda: service.send_test_event("hook"))
    fail_each_statement(service, service.webhooks.run_once)
    (delivery,) = service.deliveries(status=None, limit=10)[:1]
    fail_each_statement(service, lambda: service.resend(delivery.event_id, None))


def test_retention_path(service: Service, clock: Clock) -> None:
    seed(service)
    clock.now = NOW + service.config.storage.retention.total_seconds() + 10_000
    fail_each_statement(service, service.apply_retention)
    assert stored_ids(service) == set()


def test_cloudevents_pairing_path(service: Service) -> None:
    with TestClient(create_app(service, manage_service=False)) as client:
        ids = iter(range(1000))

        def pair() -> object:
            ce_id = f"ev-{next(ids)}"
            first = kserve(client, KSERVE_REQUEST, ce_id, V1_REQUEST)
            if first.status_code >= 500:
                raise RuntimeError(first.text)
            second = kserve(client, KSERVE_RESPONSE, ce_id, V1_RESPONSE)
            if second.status_code >= 500:
                raise RuntimeError(second.text)
            return second

        fail_each_statement(service, pair)
        fail_each_statement(service, service.cloudevents.expire)
