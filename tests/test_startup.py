"""Starting without the database: the backoff, the log lines, what counts as an outage, and
what the API answers until the service has started (``monitor.startup``, ``api.readiness``).
The real processes are in ``test_serve_without_database.py``."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from monitor.api import create_app
from monitor.config import Config, load_config
from monitor.errors import ConfigError, ConfigIssue
from monitor.service import Service
from monitor.startup import Backoff, StorageConnector
from monitor.storage import create_database_engine
from monitor.storage.unavailable import unavailable_reason

PG_URL = "postgresql+psycopg://monitor:s3cret@db.internal:5432/monitor"
PG_SHOWN = "postgresql+psycopg://monitor:***@db.internal:5432/monitor"
REFUSED = (
    'connection failed: connection to server at "10.0.0.7", port 5432 failed: '
    "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?"
)


def refused() -> OperationalError:
    return OperationalError("SELECT 1", {}, psycopg.OperationalError(REFUSED))


# -- backoff ---------------------------------------------------------------------------------


def test_backoff_doubles_from_half_a_second_to_thirty() -> None:
    backoff = Backoff()
    delays = [backoff.delay(attempt, draw=0.5) for attempt in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_backoff_jitter_stays_within_a_fifth_and_under_the_cap() -> None:
    backoff = Backoff()
    assert backoff.delay(3, draw=0.0) == pytest.approx(1.6)
    assert backoff.delay(3, draw=0.75) == pytest.approx(2.2)
    assert backoff.delay(6, draw=0.999) == pytest.approx(16 * 1.1996)
    assert backoff.delay(7, draw=0.0) == pytest.approx(24.0)
    assert backoff.delay(7, draw=0.999) == 30.0  # jitter never exceeds the cap
    assert backoff.delay(100_000, draw=0.5) == 30.0  # a week of attempts: no overflow


# -- the connector -----------------------------------------------------------------------------


class FlakyStart:
    """A ``start`` that raises ``errors`` in turn, then succeeds."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def connector_for(start: FlakyStart, waits: list[float], **kwargs: object) -> StorageConnector:
    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    return StorageConnector(
        start,
        database=PG_SHOWN,
        unavailable=lambda error: unavailable_reason(error, url=PG_URL),
        wait=wait,
        draw=lambda: 0.5,
        **kwargs,  # type: ignore[arg-type]
    )


def test_connector_retries_with_backoff_and_logs_one_line_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = FlakyStart([refused() for _ in range(8)])
    waits: list[float] = []
    connector = connector_for(start, waits)
    with caplog.at_level(logging.INFO, logger="monitor.startup"):
        assert connector.run() is True
    assert start.calls == 9
    assert connector.attempts == 9
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert connector.failure is None
    reason = (
        'connection failed: connection to server at "10.0.0.7", port 5432 failed: '
        "Connection refused"
    )
    expected = [
        f"database {PG_SHOWN} not reachable (attempt {n}, retrying in {delay}s): {reason}"
        for n, delay in enumerate(["0.5", "1.0", "2.0", "4.0", "8.0", "16.0", "30.0", "30.0"], 1)
    ]
    expected.append(f"database {PG_SHOWN} reachable after 9 attempts; the service is ready")
    assert [r.getMessage() for r in caplog.records] == expected
    assert [r.levelname for r in caplog.records] == ["WARNING"] * 8 + ["INFO"]
    assert all(r.exc_info is None for r in caplog.records)  # no traceback
    assert "s3cret" not in caplog.text


def test_connector_logs_nothing_when_the_first_attempt_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    with caplog.at_level(logging.INFO, logger="monitor.startup"):
        assert connector_for(FlakyStart([]), waits).run() is True
    assert waits == []
    assert caplog.records == []


def test_an_error_that_is_no_outage_ends_the_attempts(caplog: pytest.LogCaptureFixture) -> None:
    error = ProgrammingError("CREATE TABLE", {}, psycopg.errors.InsufficientPrivilege("denied"))
    start = FlakyStart([refused(), error])
    waits: list[float] = []
    failures: list[BaseException] = []
    connector = connector_for(start, waits, on_failure=failures.append)
    with caplog.at_level(logging.INFO, logger="monitor.startup"):
        assert connector.run() is False
    assert start.calls == 2
    assert waits == [0.5]
    assert failures == [error]
    assert connector.failure is error
    last = caplog.records[-1]
    assert (last.levelname, last.getMessage()) == ("ERROR", "start-up failed")
    assert last.exc_info is not None and last.exc_info[1] is error  # a defect: the traceback


def test_a_config_error_at_start_is_logged_as_its_issues(caplog: pytest.LogCaptureFixture) -> None:
    error = ConfigError([ConfigIssue("ref.csv", None, "record 3.x", "must be a number")])
    failures: list[BaseException] = []
    connector = connector_for(FlakyStart([error]), [], on_failure=failures.append)
    with caplog.at_level(logging.INFO, logger="monitor.startup"):
        assert connector.run() is False
    assert failures == [error]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("ERROR", "ref.csv: record 3.x: must be a number", None)
    ]


def test_stop_ends_the_wait_between_attempts() -> None:
    """With the real wait (an hour's backoff), ``stop()`` ends the attempts without another."""
    waiting = threading.Event()
    start = FlakyStart([refused() for _ in range(3)])

    def unavailable(error: BaseException) -> str | None:
        waiting.set()  # called right before the wait
        return unavailable_reason(error, url=PG_URL)

    connector = StorageConnector(
        start,
        database=PG_SHOWN,
        unavailable=unavailable,
        backoff=Backoff(initial_seconds=3600, max_seconds=3600),
    )
    connector.start()
    assert waiting.wait(timeout=10)
    connector.stop(timeout=10)
    assert not connector.running
    assert start.calls == 1
    assert connector.failure is None


def test_stop_before_the_first_attempt_makes_none() -> None:
    start = FlakyStart([])
    connector = connector_for(start, [])
    connector.stop()
    assert connector.run() is False
    assert start.calls == 0


# -- what an outage is -------------------------------------------------------------------------


def test_refused_connection_is_an_outage_in_one_line_without_the_password() -> None:
    error = OperationalError(
        "SELECT 1", {}, psycopg.OperationalError('password "s3cret" rejected\nsecond line')
    )
    assert unavailable_reason(error, url=PG_URL) == 'password "***" rejected'
    assert unavailable_reason(refused(), url=PG_URL) == (
        'connection failed: connection to server at "10.0.0.7", port 5432 failed: '
        "Connection refused"
    )


def test_sqlite_that_cannot_open_its_file_is_an_outage_naming_the_directory() -> None:
    error = OperationalError(None, None, sqlite3.OperationalError("unable to open database file"))
    assert unavailable_reason(error, url="sqlite:////data/x/monitor.db") == (
        "unable to open database file (check that the directory /data/x exists and is writable)"
    )


def test_other_errors_are_no_outage() -> None:
    integrity = IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert unavailable_reason(integrity, url=PG_URL) is None
    assert unavailable_reason(ValueError("bug"), url=PG_URL) is None
    assert unavailable_reason(ConfigError([]), url=PG_URL) is None


def test_a_real_unopenable_sqlite_file_is_an_outage(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    url = f"sqlite:///{tmp_path / 'file' / 'sub' / 'monitor.db'}"
    engine = create_database_engine(url)
    try:
        with pytest.raises(OperationalError) as caught:
            engine.connect().close()
    finally:
        engine.dispose()
    assert unavailable_reason(caught.value, url=url) == (
        "unable to open database file (check that the directory "
        f"{tmp_path / 'file' / 'sub'} exists and is writable)"
    )


# -- what clients see before the service has started --------------------------------------


def test_before_start_database_routes_answer_503_with_retry_after(
    database_url: str, config: Config
) -> None:
    service = Service(config, engine=create_database_engine(database_url))
    app = create_app(service, manage_service=False, stop_service=True)
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "unavailable",
            "checks": {"config": "ok", "database": "starting"},
        }
        features = {"age": 30, "income": 1.0, "country": "fr"}
        record = {"id": "r1", "features": features, "prediction": "approved"}
        for method, path, body in [
            ("POST", "/v1/models/credit/predictions", [record]),
            ("POST", "/v1/models/credit/labels", [{"id": "r1", "label": "approved"}]),
            ("GET", "/v1/models", None),
            ("GET", "/v1/models/credit/drift", None),
            ("POST", "/v1/models/credit/evaluate", None),
            ("POST", "/v1/cloudevents", None),
        ]:
            response = client.request(method, path, json=body)
            assert response.status_code == 503, path
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "5"
            assert response.json() == {
                "type": "urn:drift-monitor:problem:not-ready",
                "title": "Service not ready",
                "status": 503,
                "detail": "the service is starting and has not reached its database yet; "
                "nothing of this request was stored",
                "instance": path,
            }
        assert client.get("/metrics").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/no-such-page").status_code == 404

        service.start(run_jobs=False)
        assert client.get("/readyz").json() == {
            "status": "ok",
            "checks": {"config": "ok", "database": "ok"},
        }
        stored = client.post("/v1/models/credit/predictions", json=[record])
        assert stored.status_code == 202
        assert stored.json() == {"accepted": 1, "duplicates": 0}
        assert client.get("/v1/models/credit").json()["counts"]["predictions"] == 1


def test_start_stores_the_reference_file_as_validated_ahead(
    database_url: str, tmp_path: Path
) -> None:
    """``serve`` validates the reference files before waiting for the database; the attempt
    that reaches it stores what was validated, however long the wait (the file is not read
    again, so a file edited meanwhile cannot fail the start with an error of its own)."""
    reference = tmp_path / "ref.csv"
    reference.write_text("x\n1\n2\n")
    (tmp_path / "monitor.yaml").write_text(
        "models:\n  - {name: m, task: regression, features: [{name: x, type: numeric}],"
        " reference: {path: ref.csv}}\n"
    )
    service = Service(
        load_config(tmp_path / "monitor.yaml"), engine=create_database_engine(database_url)
    )
    service.read_reference_files()
    reference.write_text("x\nnot-a-number\n")
    service.start(run_jobs=False)
    try:
        info = service.reference("m")
        assert info is not None and (info.version, info.n) == (1, 2)
    finally:
        service.stop()


def test_read_reference_files_raises_the_config_error_without_a_database(tmp_path: Path) -> None:
    (tmp_path / "ref.csv").write_text("x\n1\nnot-a-number\n")
    (tmp_path / "monitor.yaml").write_text(
        "models:\n  - {name: m, task: regression, features: [{name: x, type: numeric}],"
        " reference: {path: ref.csv}}\n"
    )
    unreachable = "sqlite:///" + str(tmp_path / "ref.csv" / "monitor.db")  # under a file
    service = Service(
        load_config(tmp_path / "monitor.yaml"), engine=create_database_engine(unreachable)
    )
    with pytest.raises(ConfigError) as caught:
        service.read_reference_files()
    assert [str(issue) for issue in caught.value.issues] == [
        f"{tmp_path / 'ref.csv'}: record 1.features.x: 'not-a-number' is not a finite number"
    ]
