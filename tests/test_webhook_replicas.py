"""Deliveries with several senders on one database (replicas): each event reaches the receiver
once, however slow it is, and a delivery whose sender stops mid-send (its lease ends) is sent
again by another, with the same ``webhook-id``, and recorded once. On SQLite and PostgreSQL,
each sender a ``Service`` on an engine of its own, as replicas are.

The receiver is slow on the test's clock: each request moves the shared clock on by
``SLOW_SECONDS`` before it is answered, so a lease that does not cover its send ends while the
send is in flight, without any real waiting.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from receiver import SECRET, Answer, Receiver
from server_process import free_port, start_server
from sqlalchemy import text

from monitor.config import parse_config
from monitor.service import Service
from monitor.storage import create_database_engine, migrate
from monitor.storage import deliveries as outbox
from monitor.storage.tables import schema_version
from monitor.webhooks.sender import LEASE_MARGIN_SECONDS

SLOW_SECONDS = 3.0
TIMEOUT_SECONDS = 5.0


class Clock:
    """The test's clock, moved by the receiver (safe to move from several threads)."""

    def __init__(self) -> None:
        self.now = time.time()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()


def replica(database_url: str, url: str, clock: Clock) -> Service:
    config = parse_config(
        f"""
models: [{{name: m, task: regression, features: [{{name: x, type: numeric}}]}}]
webhooks:
  - {{name: hook, url: "{url}", secret: "{SECRET}", timeout: {TIMEOUT_SECONDS:g}s,
      max_retry: 1h, allow_private: true}}
"""
    )
    service = Service(
        config,
        engine=create_database_engine(database_url),
        registry=CollectorRegistry(),
        clock=clock,
    )
    service.start(run_jobs=False)
    return service


@pytest.fixture
def replicas(database_url: str, receiver: Receiver) -> Iterator[list[Service]]:
    clock = Clock()
    services = [replica(database_url, receiver.url, clock) for _ in range(3)]
    yield services
    for service in services:
        service.stop()


def counted(service: Service, outcome: str) -> float:
    value = service.registry.get_sample_value(
        "drift_monitor_webhook_deliveries_total", {"route": "hook", "outcome": outcome}
    )
    return value or 0.0


def received(receiver: Receiver) -> Counter[str]:
    return Counter(headers["webhook-id"] for headers, _ in receiver.requests)


def rows(service: Service) -> dict[str, outbox.Delivery]:
    return {d.event_id: d for d in service.deliveries(status=None, limit=1000)}


def send_until_done(services: list[Service]) -> None:
    """Run every service's sender in a thread of its own until no delivery is pending."""
    errors: list[BaseException] = []

    def run(service: Service) -> None:
        deadline = time.monotonic() + 120  # a bound on a hung test, not a timing assertion
        try:
            while time.monotonic() < deadline:
                if service.webhooks.run_once() == 0:
                    if not service.deliveries(status="pending", limit=1):
                        return
                    threading.Event().wait(0.005)  # another sender holds the rest
            raise AssertionError("deliveries still pending")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(s,)) for s in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_three_senders_and_a_slow_receiver_send_each_event_once(
    replicas: list[Service], receiver: Receiver
) -> None:
    clock = replicas[0].clock
    assert isinstance(clock, Clock)
    receiver.on_request = lambda headers, body: clock.advance(SLOW_SECONDS)
    ids = {replicas[0].send_test_event("hook") for _ in range(30)}
    send_until_done(replicas)
    assert received(receiver) == Counter(dict.fromkeys(ids, 1))
    found = rows(replicas[0])
    assert {(d.status, d.attempts) for d in found.values()} == {("delivered", 1)}
    assert sum(counted(s, "delivered") for s in replicas) == 30
    assert sum(counted(s, outcome) for s in replicas for outcome in ("retry", "failed")) == 0
    assert sum(counted(s, "lease_lost") for s in replicas) == 0
    for service in replicas:  # nothing left, and the backlog each reports (the database's) 0
        assert service.webhooks.run_once() == 0
        backlog = service.registry.get_sample_value(
            "drift_monitor_webhook_outbox_pending", {"route": "hook"}
        )
        assert backlog == 0


def test_a_delivery_whose_lease_ends_mid_send_is_sent_again_and_recorded_once(
    replicas: list[Service], receiver: Receiver
) -> None:
    """The first sender stalls past its lease (as a sender that died would); a second sends
    the event again with the same webhook-id and records it delivered; the first's late
    answer is not recorded."""
    first, second, _ = replicas
    clock = first.clock
    assert isinstance(clock, Clock)
    event_id = first.send_test_event("hook")
    taken_over: list[int] = []

    def stall(headers: dict[str, str], body: bytes) -> None:
        if len(receiver.requests) == 1:  # the first attempt: its sender stalls
            clock.advance(3 * TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS + 1)
            taken_over.append(second.webhooks.run_once())

    receiver.on_request = stall
    assert first.webhooks.run_once() == 1
    assert taken_over == [1]
    assert received(receiver) == Counter({event_id: 2})
    (one, two) = receiver.requests
    assert one[0]["webhook-id"] == two[0]["webhook-id"] == event_id
    assert one[1] == two[1]  # the same body
    found = rows(first)[event_id]
    assert (found.status, found.attempts, found.last_error) == ("delivered", 1, None)
    assert (counted(second, "delivered"), counted(first, "delivered")) == (1, 0)
    assert counted(first, "lease_lost") == 1
    assert first.webhooks.run_once() == second.webhooks.run_once() == 0


def test_a_failure_answered_after_the_lease_passed_on_is_not_recorded(
    replicas: list[Service], receiver: Receiver
) -> None:
    """The late sender's 500 must not turn the other's delivered row back into a retry."""
    first, second, _ = replicas
    clock = first.clock
    assert isinstance(clock, Clock)
    event_id = first.send_test_event("hook")
    receiver.script = [Answer(500)]

    def stall(headers: dict[str, str], body: bytes) -> None:
        if len(receiver.requests) == 1:
            clock.advance(3 * TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS + 1)
            second.webhooks.run_once()

    receiver.on_request = stall
    first.webhooks.run_once()
    found = rows(first)[event_id]
    assert (found.status, found.attempts, found.last_error) == ("delivered", 1, None)
    assert (counted(first, "retry"), counted(first, "lease_lost")) == (0, 1)


def test_an_expired_lease_nobody_took_is_still_recorded(
    replicas: list[Service], receiver: Receiver
) -> None:
    """The lease is a promise not to send; a slow send whose row nobody else claimed keeps
    its outcome."""
    first = replicas[0]
    clock = first.clock
    assert isinstance(clock, Clock)
    event_id = first.send_test_event("hook")
    receiver.on_request = lambda headers, body: clock.advance(
        3 * TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS + 1
    )
    assert first.webhooks.run_once() == 1
    found = rows(first)[event_id]
    assert (found.status, found.attempts) == ("delivered", 1)
    assert (counted(first, "delivered"), counted(first, "lease_lost")) == (1, 0)


def test_a_claimed_delivery_is_not_sent_by_another_until_its_lease_ends(
    replicas: list[Service], database_url: str, receiver: Receiver
) -> None:
    """A sender that claimed a row and died (it never records) holds it until the lease
    ends, to the second: then another sends it."""
    first, second, _ = replicas
    clock = first.clock
    assert isinstance(clock, Clock)
    event_id = first.send_test_event("hook")
    with first.database.write() as connection:
        claimed = outbox.claim_next(
            connection, now=clock(), lease_until=clock() + 40.0, token="dead-sender"
        )
    assert claimed is not None and claimed.event_id == event_id
    start = clock.now
    clock.now = start + 39.999
    assert second.webhooks.run_once() == 0
    clock.now = start + 40.0
    assert second.webhooks.run_once() == 1
    assert received(receiver) == Counter({event_id: 1})
    assert rows(first)[event_id].status == "delivered"


def test_migration_12_keeps_pending_deliveries_claimable(database_url: str) -> None:
    """A database from before leases (no ``lease_token``) keeps its queued deliveries, and
    they are claimed and recorded after the migration."""
    engine = create_database_engine(database_url)
    try:
        migrate(engine)
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE deliveries DROP COLUMN lease_token"))
            connection.execute(schema_version.update().values(version=11))
            outbox_row = {"event_id": "evt_1", "route": "hook", "model": "m", "created_at": 5.0}
            connection.execute(
                text(
                    "INSERT INTO deliveries (event_id, route, model, created_at, status, "
                    "attempts, next_attempt_at, body) VALUES (:event_id, :route, :model, "
                    ":created_at, 'pending', 0, 5.0, :body)"
                ),
                {**outbox_row, "body": b"{}"},
            )
        assert migrate(engine) == 13
        with engine.begin() as connection:
            claimed = outbox.claim_next(connection, now=5.0, lease_until=50.0, token="t")
            assert claimed is not None and claimed.event_id == "evt_1"
            assert not outbox.record_attempt(
                connection,
                event_id="evt_1",
                route="hook",
                token="someone-else",
                status=outbox.DELIVERED,
                attempts=1,
                next_attempt_at=6.0,
                error=None,
            )
            assert outbox.record_attempt(
                connection,
                event_id="evt_1",
                route="hook",
                token="t",
                status=outbox.DELIVERED,
                attempts=1,
                next_attempt_at=6.0,
                error=None,
            )
            (row,) = outbox.list_deliveries(connection, status=None, limit=10)
            assert (row.status, row.attempts) == (outbox.DELIVERED, 1)
    finally:
        engine.dispose()


def test_three_serve_processes_deliver_each_event_once(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    """Three real ``monitor serve`` replicas on one PostgreSQL schema, one route to a slow
    receiver, 30 events queued through all three: each webhook-id is received once."""
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    answered = threading.Event()
    receiver.on_request = lambda headers, body: answered.wait(0.3)  # a slow receiver
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"""
server: {{host: 127.0.0.1, port: 1}}
storage: {{url: "{database_url}"}}
models: [{{name: m, task: regression, features: [{{name: x, type: numeric}}]}}]
webhooks:
  - {{name: hook, url: "{receiver.url}", secret: "{SECRET}", timeout: 2s,
      allow_private: true}}
"""
    )
    ports = [free_port() for _ in range(3)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for n, port in enumerate(ports):
            processes.append(start_server(config, port, tmp_path / f"replica{n}.log"))
        ids = [
            httpx.post(f"http://127.0.0.1:{ports[n % 3]}/v1/webhooks/hook/test").json()["event_id"]
            for n in range(30)
        ]
        deadline = time.monotonic() + 120  # a bound on a hung test, not a timing assertion
        base = f"http://127.0.0.1:{ports[0]}"
        while time.monotonic() < deadline:
            delivered = httpx.get(
                f"{base}/v1/deliveries", params={"status": "delivered", "limit": 100}
            ).json()
            if len(delivered) == 30:
                break
            threading.Event().wait(0.2)
        else:
            raise AssertionError("not all delivered in time")
        assert received(receiver) == Counter(dict.fromkeys(ids, 1))
        assert {d["attempts"] for d in delivered} == {1}
        totals: Counter[str] = Counter()
        for port in ports:
            exposition = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            for family in text_string_to_metric_families(exposition):
                for sample in family.samples:
                    if sample.name == "drift_monitor_webhook_deliveries_total":
                        totals[sample.labels["outcome"]] += int(sample.value)
        assert totals == Counter({"delivered": 30})
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)


def test_a_replica_killed_mid_send_leaves_the_delivery_to_another(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    """SIGKILL of the replica whose request is in flight: once its lease ends, another
    replica sends the event again, with the same webhook-id and body, and records it once."""
    arrived, release = threading.Event(), threading.Event()

    def hold_the_first(headers: dict[str, str], body: bytes) -> None:
        if len(receiver.requests) == 1:
            arrived.set()
            release.wait(30)

    receiver.on_request = hold_the_first
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"""
server: {{host: 127.0.0.1, port: 1}}
storage: {{url: "{database_url}"}}
models: [{{name: m, task: regression, features: [{{name: x, type: numeric}}]}}]
webhooks:
  - {{name: hook, url: "{receiver.url}", secret: "{SECRET}", timeout: 1s,
      allow_private: true}}
"""
    )
    first_port, second_port = free_port(), free_port()
    first = start_server(config, first_port, tmp_path / "first.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        event_id = httpx.post(f"http://127.0.0.1:{first_port}/v1/webhooks/hook/test").json()[
            "event_id"
        ]
        assert arrived.wait(60)
        first.kill()  # mid-send: the receiver has the request and has not answered
        first.wait(timeout=15)
        release.set()
        second = start_server(config, second_port, tmp_path / "second.log")
        base = f"http://127.0.0.1:{second_port}"
        deadline = time.monotonic() + 120  # the lease (3 x 1 s + 30 s), then one tick
        while time.monotonic() < deadline:
            (row,) = httpx.get(f"{base}/v1/deliveries").json()
            if row["status"] != "pending":
                break
            threading.Event().wait(0.5)
        assert (row["event_id"], row["status"], row["attempts"]) == (event_id, "delivered", 1)
        assert received(receiver) == Counter({event_id: 2})
        (one, two) = receiver.requests
        assert one[0]["webhook-id"] == two[0]["webhook-id"] == event_id
        assert one[1] == two[1]  # the same body
    finally:
        release.set()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=15)
