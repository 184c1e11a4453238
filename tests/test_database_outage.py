"""A real ``monitor serve`` whose PostgreSQL connections are cut recovers by itself: its
backends terminated by the server (``pg_terminate_backend``), or its line to the database cut
for a few schedule periods (a TCP proxy of the test's closes every connection and refuses new
ones). During the outage ingest answers 503 with ``Retry-After`` at once (never 500, never a
hang) and ``/readyz`` says the database is unreachable; afterwards, with no restart, ingest
is stored again, ticks are evaluated again, deliveries are sent again and ``/readyz`` is
ready. The database itself stays up for the test, which checks what was stored through it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from receiver import SECRET, Answer, Receiver
from server_process import free_port, start_server
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy
from test_replicas_process import PERIOD, Replica, poll, ticks_until

from monitor.storage import create_database_engine
from monitor.storage import engine as engine_module
from monitor.storage.engine import POSTGRESQL_CONNECT_ARGS, POSTGRESQL_SESSION_SETTINGS

POSTGRES_ENV = "MONITOR_TEST_DATABASE_URL"
OUTAGE_SECONDS = 2.5 * PERIOD
#: a request is never held longer than this during an outage (the test's bound on a hang)
ANSWER_WITHIN_SECONDS = 10.0

CONFIG = """
server: {host: 127.0.0.1, port: 1}
storage: {url: "%(url)s"}
models:
  - name: ticking
    task: regression
    features: [{name: x, type: numeric}]
    window: {records: 500}
    schedule: 2s
    min_samples: 10
webhooks:
  - {name: hook, url: "%(hook)s", secret: "%(secret)s", timeout: 1s, allow_private: true}
"""


@dataclass
class Setup:
    replica: Replica
    proxy: TcpProxy
    receiver: Receiver
    admin_url: str  # the database directly, not through the proxy
    application_name: str


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_ENV}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    parsed = make_url(base)
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    name = f"outage_{uuid.uuid4().hex[:10]}"
    through_proxy = parsed.set(
        host="127.0.0.1",
        port=proxy.port,
        query={**parsed.query, "application_name": name},
    ).render_as_string(hide_password=False)
    url = f"{through_proxy}&options={quote(f'-csearch_path={schema}')}"
    receiver = Receiver()
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG % {"url": url, "hook": receiver.url, "secret": SECRET})
    port, log = free_port(), tmp_path / "replica.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        process = start_server(config, port, log)
        admin_url = f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
        yield Setup(Replica(process, port, log), proxy, receiver, admin_url, name)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        proxy.close()
        receiver.stop()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def records(prefix: str, n: int = 50) -> list[dict[str, object]]:
    return [{"id": f"{prefix}-{i}", "features": {"x": i / n}, "prediction": 1.0} for i in range(n)]


def stored_ids(admin_url: str) -> Counter[str]:
    engine = create_engine(admin_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id FROM predictions WHERE model = 'ticking'"))
            return Counter(str(r) for r in rows.scalars())
    finally:
        engine.dispose()


def delivery(client: httpx.Client, event_id: str) -> dict[str, Any] | None:
    rows = client.get("/v1/deliveries", params={"limit": 1000}).json()
    return next((r for r in rows if r["event_id"] == event_id), None)


def delivered(client: httpx.Client, event_id: str) -> dict[str, Any] | None:
    found = delivery(client, event_id)
    return found if found is not None and found["status"] == "delivered" else None


def test_a_replica_whose_database_connections_are_cut_recovers_by_itself(setup: Setup) -> None:
    replica, proxy, receiver = setup.replica, setup.proxy, setup.receiver
    client = httpx.Client(base_url=replica.url, timeout=ANSWER_WITHIN_SECONDS)
    try:
        reference = [{"features": {"x": i / 200}} for i in range(200)]
        assert client.put("/v1/models/ticking/reference", json=reference).status_code == 201
        assert client.post("/v1/models/ticking/predictions", json=records("a")).status_code == 202
        posted_at = time.time()
        poll(lambda: ticks_until(replica, posted_at), timeout=30, what="a first tick")

        # 1. The server terminates the replica's backends (an administrator, a failover): the
        # next request is served on a fresh connection.
        engine = create_engine(setup.admin_url)
        with engine.begin() as connection:
            terminated = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": setup.application_name},
            ).scalar_one()
        engine.dispose()
        assert terminated >= 1
        after_terminate = client.post("/v1/models/ticking/predictions", json=records("b"))
        assert after_terminate.status_code == 202, after_terminate.text
        assert client.get("/readyz").status_code == 200

        # A delivery that fails once, asking to be retried after 3 s: due during the outage.
        receiver.script = [Answer(503, {"retry-after": "3"})]
        first_event = client.post("/v1/webhooks/hook/test").json()["event_id"]
        poll(
            lambda: (found := delivery(client, first_event)) and found["attempts"] == 1,
            timeout=30,
            what="the first attempt",
        )

        # 2. The line is cut for 2.5 periods: every connection closed, new ones refused.
        proxy.cut()
        cut_at = time.time()
        answers: list[httpx.Response] = []
        readiness: list[httpx.Response] = []
        n = 0
        while time.time() < cut_at + OUTAGE_SECONDS:
            answers.append(client.post("/v1/models/ticking/predictions", json=records(f"c{n}")))
            readiness.append(client.get("/readyz"))
            assert client.get("/healthz").status_code == 200
            n += 1
            time.sleep(0.2)
        proxy.restore()
        restored_at = time.time()
        assert [a.status_code for a in answers] == [503] * n
        for answer in answers:
            assert answer.headers["retry-after"] == "5"
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"] == "urn:drift-monitor:problem:storage"
        assert [(r.status_code, r.json()["checks"]["database"]) for r in readiness] == [
            (503, "unreachable")
        ] * n

        # 3. Restored: ready again, stores again, ticks again, delivers again; no restart.
        poll(lambda: client.get("/readyz").status_code == 200, timeout=30, what="ready again")
        again = client.post("/v1/models/ticking/predictions", json=records("d"))
        assert again.status_code == 202, again.text
        assert again.json() == {"accepted": 50, "duplicates": 0}
        assert replica.process.poll() is None
        poll(lambda: ticks_until(replica, restored_at + PERIOD), timeout=30, what="ticks again")
        second_event = client.post("/v1/webhooks/hook/test").json()["event_id"]
        for event_id, attempts in ((first_event, 2), (second_event, 1)):
            found = poll(
                lambda event_id=event_id: delivered(client, event_id),  # type: ignore[misc]
                timeout=30,
                what=f"event {event_id} delivered",
            )
            assert found["attempts"] == attempts
        received = Counter(headers["webhook-id"] for headers, _ in receiver.requests)
        assert received == Counter({first_event: 2, second_event: 1})

        # 4. The line stalls: open connections closed, new ones accepted and never answered
        # (a frozen server, a lost network). Each request still gets its answer, bounded by
        # the connect timeout (``storage.engine``), not held for as long as the stall lasts.
        proxy.stall()
        stalled = [
            client.post("/v1/models/ticking/predictions", json=records(f"e{n}")) for n in range(2)
        ]
        assert [s.status_code for s in stalled] == [503, 503]
        assert {s.headers["retry-after"] for s in stalled} == {"5"}
        assert client.get("/readyz").status_code == 503
        proxy.restore()
        poll(lambda: client.get("/readyz").status_code == 200, timeout=30, what="ready again")
        assert client.post("/v1/models/ticking/predictions", json=records("f")).status_code == 202

        stored = stored_ids(setup.admin_url)
        assert set(stored.values()) == {1}
        assert {i.rsplit("-", 1)[0] for i in stored} == {"a", "b", "d", "f"}
        assert "Traceback" not in replica.log.read_text()
    finally:
        client.close()


def test_postgresql_connections_bound_how_long_a_lost_peer_holds_them() -> None:
    """The libpq settings reach the driver (a URL's own value of one takes precedence), and
    the server's side of them is set on each session."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_ENV}")
    expected = {name: str(value) for name, value in POSTGRESQL_CONNECT_ARGS.items()}
    assert expected["connect_timeout"] == "5"
    own = f"{base}{'&' if '?' in base else '?'}connect_timeout=2&keepalives_idle=7"
    for url, overrides in ((base, {}), (own, {"connect_timeout": "2", "keepalives_idle": "7"})):
        engine = create_database_engine(url)
        try:
            with engine.connect() as connection:
                driver = connection.connection.driver_connection
                assert driver is not None
                parameters = driver.info.get_parameters()
                session = {
                    name: connection.execute(text(f"SHOW {name}")).scalar_one()
                    for name, _, _ in POSTGRESQL_SESSION_SETTINGS
                }
        finally:
            engine.dispose()
        assert {k: parameters[k] for k in expected} == {**expected, **overrides}
        assert session == {  # PostgreSQL 14 or later (the CI's)
            "tcp_keepalives_idle": "30",  # seconds, as PostgreSQL shows them
            "tcp_keepalives_interval": "10",
            "tcp_keepalives_count": "3",
            "tcp_user_timeout": "60000",  # milliseconds
            "client_connection_check_interval": "10s",
        }


def test_a_session_setting_the_server_refuses_is_left_out_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server without one of the settings (an older or compatible server, a platform
    without the socket option) still serves; the others are set; one warning per process."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_ENV}")
    settings = (("no_such_setting", "1", 0), ("tcp_keepalives_idle", "31", 0))
    monkeypatch.setattr(engine_module, "POSTGRESQL_SESSION_SETTINGS", settings)
    monkeypatch.setattr(engine_module, "_REFUSED_SETTINGS", set())
    engine = create_database_engine(base)
    try:
        with (
            caplog.at_level("WARNING", logger="monitor.storage.engine"),
            engine.connect() as first,
            engine.connect() as second,  # two connections: the refusal is said once
        ):
            shown = [
                c.execute(text("SHOW tcp_keepalives_idle")).scalar_one() for c in (first, second)
            ]
    finally:
        engine.dispose()
    assert shown == ["31", "31"]
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "PostgreSQL refused no_such_setting = 1"
    ]
