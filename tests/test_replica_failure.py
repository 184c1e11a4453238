"""Failure of a replica, with real ``monitor serve`` processes on PostgreSQL (a schema of their
own): ``kill -9`` of one of three replicas in the middle of an ingest load loses no
acknowledged record, no alert transition and no delivery, and the other two go on evaluating
every tick. (A replica whose database connections are cut: ``test_database_outage.py``.)"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from receiver import SECRET, Receiver
from server_process import free_port, start_server
from sqlalchemy import create_engine, func, select, text
from test_replicas_process import PERIOD, Replica, assert_once_per_tick, poll, ticks_until

from monitor.storage import create_database_engine
from monitor.storage.tables import predictions

POSTGRES_ENV = "MONITOR_TEST_DATABASE_URL"
BATCH = 200  # records per ingest request
CLIENTS = 3  # concurrent ingest clients

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
  - name: flapping
    task: regression
    features: [{name: x, type: numeric}]
    window: {records: 50}
    min_samples: 10
    schedule: 1h
    thresholds:
      psi: {critical: 0.25, features: [x]}
    alerts: {for: 1, routes: [hook]}
webhooks:
  - {name: hook, url: "%(hook)s", secret: "%(secret)s", timeout: 1s, allow_private: true}
"""


@dataclass
class Load:
    """What the clients sent and what the replicas acknowledged."""

    sent: set[str] = field(default_factory=set)
    acknowledged: set[str] = field(default_factory=set)
    accepted: int = 0
    duplicates: int = 0
    in_flight_at_victim: int = 0  # requests to the victim not yet answered
    rounds: int = 0  # alert rounds acknowledged
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def schema_url() -> Iterator[str]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_ENV}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def start_replicas(config: Path, tmp: Path, n: int) -> list[Replica]:
    """``n`` replicas started at once (each ready when returned)."""
    ports = [free_port() for _ in range(n)]
    started: dict[int, Replica | BaseException] = {}

    def start(i: int) -> None:
        log = tmp / f"replica{i}.log"
        try:
            started[i] = Replica(start_server(config, ports[i], log), ports[i], log)
        except BaseException as error:
            started[i] = error

    threads = [threading.Thread(target=start, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replicas = [r for r in started.values() if isinstance(r, Replica)]
    failed = [e for e in started.values() if not isinstance(e, Replica)]
    if failed:
        stop_replicas(replicas)
        raise failed[0]
    return [r for _, r in sorted(started.items()) if isinstance(r, Replica)]


def stop_replicas(replicas: list[Replica]) -> None:
    for replica in replicas:
        if replica.process.poll() is None:
            replica.process.send_signal(signal.SIGTERM)
    for replica in replicas:
        try:
            replica.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait(timeout=10)


def post_until_acknowledged(
    clients: list[httpx.Client], first: int, path: str, body: object, victim: int, load: Load
) -> httpx.Response:
    """POST ``body`` to replica ``first``, and on to the next replica (as a load balancer
    would) while the answer is a transport error or a 503; the acknowledged answer."""
    for attempt in range(60):
        n = (first + attempt) % len(clients)
        counted = n == victim
        if counted:
            with load.lock:
                load.in_flight_at_victim += 1
        try:
            response = clients[n].post(path, json=body)
        except httpx.TransportError:
            continue  # the replica is gone: not acknowledged, send it elsewhere
        finally:
            if counted:
                with load.lock:
                    load.in_flight_at_victim -= 1
        if response.status_code != 503:
            return response
        time.sleep(0.2)
    raise AssertionError(f"{path}: no replica acknowledged the request")


def ingest(
    clients: list[httpx.Client], me: int, victim: int, load: Load, stop: threading.Event
) -> None:
    """Batches of records with unique ids, each sent on until a replica acknowledges it."""
    batch = 0
    while not stop.is_set():
        ids = [f"c{me}-b{batch}-{i}" for i in range(BATCH)]
        records = [
            {"id": i, "features": {"x": k / BATCH}, "prediction": 1.0} for k, i in enumerate(ids)
        ]
        with load.lock:
            load.sent.update(ids)
        path = "/v1/models/ticking/predictions"
        response = post_until_acknowledged(clients, me + batch, path, records, victim, load)
        assert response.status_code == 202, response.text
        answer = response.json()
        assert answer["accepted"] + answer["duplicates"] == BATCH
        with load.lock:
            load.acknowledged.update(ids)
            load.accepted += answer["accepted"]
            load.duplicates += answer["duplicates"]
        batch += 1
        stop.wait(0.01)  # leave the 2 cores some room: ticks run meanwhile


def flap(clients: list[httpx.Client], victim: int, load: Load, stop: threading.Event) -> None:
    """Rounds of drifted, normal, drifted ... records, each followed by an evaluation (on
    another replica than the records), each round acknowledged: one alert transition a round
    (counted in ``load.rounds``)."""
    rounds = 0
    while not stop.is_set():
        shift = 10.0 if rounds % 2 == 0 else 0.0
        records = [
            {"id": f"f{rounds}-{i}", "features": {"x": i / 50 + shift}, "prediction": 1.0}
            for i in range(50)
        ]
        path = "/v1/models/flapping/predictions"
        sent = post_until_acknowledged(clients, rounds, path, records, victim, load)
        assert sent.status_code == 202, sent.text
        path = "/v1/models/flapping/evaluate"
        evaluated = post_until_acknowledged(clients, rounds + 1, path, None, victim, load)
        assert evaluated.status_code == 200, evaluated.text
        rounds += 1
        load.rounds = rounds


def test_sigkill_of_a_replica_mid_load_loses_nothing_acknowledged(
    schema_url: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG % {"url": schema_url, "hook": receiver.url, "secret": SECRET})
    replicas = start_replicas(config, tmp_path, 3)
    victim = 1
    load = Load()
    stop = threading.Event()
    errors: list[BaseException] = []
    clients = [httpx.Client(base_url=r.url, timeout=30) for r in replicas]
    try:
        reference = [{"features": {"x": i / 200}} for i in range(200)]
        for model in ("ticking", "flapping"):
            response = clients[0].put(f"/v1/models/{model}/reference", json=reference)
            assert response.status_code in (200, 201), response.text

        def run(work: object, *args: object) -> None:
            assert callable(work)
            try:
                work(*args)
            except BaseException as error:
                errors.append(error)

        threads = [
            threading.Thread(target=run, args=(ingest, clients, me, victim, load, stop))
            for me in range(CLIENTS)
        ]
        threads.append(threading.Thread(target=run, args=(flap, clients, victim, load, stop)))
        started = time.time()
        for thread in threads:
            thread.start()
        poll(  # a few ticks and alert rounds, then a moment a request is in flight at it
            lambda: (
                time.time() > started + 2 * PERIOD and load.rounds >= 4 and load.in_flight_at_victim
            ),
            timeout=60,
            what="load on every replica",
        )
        replicas[victim].process.send_signal(signal.SIGKILL)  # requests in flight at it
        killed = time.time()
        replicas[victim].process.wait(timeout=10)
        survivor = replicas[0]
        ticks = poll(
            lambda: ticks_until(survivor, killed + 3 * PERIOD),
            timeout=60,
            what="ticks after the kill",
        )
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
        assert errors == []
        assert not any(thread.is_alive() for thread in threads)

        # Every record: acknowledged (the clients sent each batch on until one was), stored once.
        assert load.acknowledged == load.sent
        engine = create_database_engine(schema_url)
        with engine.connect() as connection:
            stored = Counter(
                connection.execute(
                    select(predictions.c.id).where(predictions.c.model == "ticking")
                ).scalars()
            )
            total = connection.execute(
                select(func.count()).where(predictions.c.model == "ticking")
            ).scalar_one()
        engine.dispose()
        assert set(stored) == load.acknowledged
        assert set(stored.values()) == {1} and total == len(load.sent)
        # a batch stored by the victim but not acknowledged counts as duplicates when sent on
        assert load.accepted + load.duplicates == len(load.sent)
        assert load.accepted <= len(load.sent)

        # Every tick once, the ones around the kill included, each by one replica.
        around = [t for t in ticks if t >= started - PERIOD]
        assert_once_per_tick(around)
        assert min(around) < killed and max(around) >= killed + 3 * PERIOD

        # One alert transition a round, none lost or doubled, each delivered.
        done = load.rounds
        assert done >= 4
        history = clients[0].get("/v1/alerts/history", params={"model": "flapping", "limit": 1000})
        events = list(reversed(history.json()))  # newest first
        assert [e["type"] for e in events] == ["alert.firing", "alert.resolved"] * (done // 2) + [
            "alert.firing"
        ] * (done % 2)
        ids = {e["event_id"] for e in events}
        assert len(ids) == done

        def all_delivered() -> list[dict[str, object]] | None:
            rows = clients[0].get("/v1/deliveries", params={"limit": 1000}).json()
            return rows if {r["status"] for r in rows} == {"delivered"} else None

        # up to a lease (3 x 1 s + 30 s) for a delivery the victim was sending when killed
        delivered = poll(all_delivered, timeout=90, what="every delivery delivered")
        assert {d["event_id"] for d in delivered} == ids
        received = Counter(headers["webhook-id"] for headers, _ in receiver.requests)
        assert set(received) == ids
        # a send in flight at the victim is sent again, with the same webhook-id: one at most
        assert sum(n - 1 for n in received.values()) <= 1
    finally:
        stop.set()
        for client in clients:
            client.close()
        stop_replicas(replicas)
        receiver.stop()
