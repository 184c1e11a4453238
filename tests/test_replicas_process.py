"""Three real ``monitor serve`` replicas on one PostgreSQL database (a schema of their own):
each tick of a model is evaluated by exactly one of them; concurrent ``POST .../evaluate``
calls across replicas never fail and record one event per alert transition; and a tick
claimed by a replica that is then killed (SIGKILL) is taken over by another within one
schedule period. PostgreSQL only: SQLite shared by several processes is no supported replica
set-up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from receiver import SECRET, Receiver
from server_process import free_port, start_server
from sqlalchemy import create_engine, select, text

from monitor.storage import create_database_engine
from monitor.storage.tables import evaluation_ticks

POSTGRES_ENV = "MONITOR_TEST_DATABASE_URL"
PERIOD = 2.0  # the ticking model's schedule, seconds

CONFIG = """
server: {host: 127.0.0.1, port: 1}
storage: {url: "%(url)s"}
models:
  - name: ticking
    task: regression
    features: [{name: x, type: numeric}]
    schedule: 2s
    min_samples: 10
  - name: storm
    task: regression
    features: [{name: x, type: numeric}]
    window: {records: 50}
    min_samples: 10
    schedule: 1h
    thresholds:
      psi: {critical: 0.25, features: [x]}
    alerts: {for: 1, routes: [hook]}
webhooks:
  - {name: hook, url: "%(hook)s", secret: "%(secret)s", allow_private: true}
"""

T = TypeVar("T")


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def replica_id(self) -> str:
        found = re.search(r"replica (\S+): scheduled evaluations", self.log.read_text())
        assert found is not None, self.log.read_text()
        return found.group(1)


@dataclass
class Cluster:
    replicas: list[Replica]
    database_url: str
    receiver: Receiver


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_ENV}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
    receiver = Receiver()
    tmp = tmp_path_factory.mktemp("replicas")
    config = tmp / "monitor.yaml"
    config.write_text(CONFIG % {"url": url, "hook": receiver.url, "secret": SECRET})
    replicas: list[Replica] = []
    try:
        for n in range(3):
            port, log = free_port(), tmp / f"replica{n}.log"
            replicas.append(Replica(start_server(config, port, log), port, log))
        first = replicas[0].url
        reference = [{"features": {"x": i / 200}} for i in range(200)]
        for model in ("ticking", "storm"):
            response = httpx.put(f"{first}/v1/models/{model}/reference", json=reference)
            assert response.status_code in (200, 201), response.text
        records = [{"id": str(i), "features": {"x": i / 50}, "prediction": 1.0} for i in range(50)]
        assert httpx.post(f"{first}/v1/models/ticking/predictions", json=records).status_code == 202
        yield Cluster(replicas, url, receiver)
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in replicas:
            try:
                replica.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait(timeout=10)
        receiver.stop()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def poll(until: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """``until()``'s first truthy answer, asked every 0.2 s for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = until()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def evaluated_ticks(replica: Replica, model: str) -> list[float]:
    response = httpx.get(f"{replica.url}/v1/models/{model}/drift/history", timeout=10)
    assert response.status_code == 200, response.text
    return [
        datetime.fromisoformat(e["evaluated_at"].replace("Z", "+00:00")).timestamp()
        for e in response.json()["evaluations"]
    ]


def ticks_until(replica: Replica, last: float) -> list[float] | None:
    """The ticking model's evaluated ticks once one at or after ``last`` is among them."""
    found = evaluated_ticks(replica, "ticking")
    return found if found and max(found) >= last else None


def assert_once_per_tick(ticks: list[float]) -> None:
    """Each tick at most once, and no tick missing between the first and the last."""
    counts = Counter(ticks)
    assert [t for t, n in counts.items() if n != 1] == []
    first, last = min(ticks), max(ticks)
    expected = [first + k * PERIOD for k in range(round((last - first) / PERIOD) + 1)]
    assert sorted(ticks) == expected


def test_three_replicas_evaluate_each_tick_once(cluster: Cluster) -> None:
    start = time.time()
    ticks = poll(
        lambda: ticks_until(cluster.replicas[0], start + 10), timeout=60, what="10 s of ticks"
    )
    assert all(t % PERIOD == 0 for t in ticks)  # evaluated as of the tick
    assert_once_per_tick(ticks)
    assert len([t for t in ticks if t >= start]) >= 5
    for replica in cluster.replicas[1:]:  # every replica reads the same history
        assert evaluated_ticks(replica, "ticking")[: len(ticks)] == ticks


def test_concurrent_evaluations_across_replicas_record_one_event_per_transition(
    cluster: Cluster,
) -> None:
    a, b = cluster.replicas[0], cluster.replicas[1]
    statuses: list[int] = []
    rounds = 10
    for n in range(rounds):  # drifted, normal, drifted ...: one transition a round
        shift = 10.0 if n % 2 == 0 else 0.0
        records = [
            {"id": f"s{n}-{i}", "features": {"x": i / 50 + shift}, "prediction": 1.0}
            for i in range(50)
        ]
        sent = httpx.post(f"{(a, b)[n % 2].url}/v1/models/storm/predictions", json=records)
        assert sent.status_code == 202
        barrier = threading.Barrier(4)

        def evaluate(replica: Replica, barrier: threading.Barrier) -> None:
            barrier.wait()
            response = httpx.post(f"{replica.url}/v1/models/storm/evaluate", timeout=30)
            statuses.append(response.status_code)

        threads = [
            threading.Thread(target=evaluate, args=(replica, barrier)) for replica in (a, b, a, b)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert statuses == [200] * (4 * rounds)
    history = httpx.get(f"{a.url}/v1/alerts/history", params={"model": "storm"}).json()
    events = list(reversed(history))  # newest first
    assert [e["type"] for e in events] == ["alert.firing", "alert.resolved"] * (rounds // 2)
    ids = {e["event_id"] for e in events}
    assert len(ids) == rounds

    def received() -> set[str] | None:
        got = {headers["webhook-id"] for headers, _ in cluster.receiver.requests}
        return got if got >= ids else None

    assert poll(received, timeout=30, what="every event delivered") == ids


def test_a_tick_claimed_by_a_killed_replica_is_taken_over_within_one_period(
    cluster: Cluster,
) -> None:
    victim = cluster.replicas[2]
    victim_id = victim.replica_id()
    claimed = (int(time.time() / PERIOD) + 2) * PERIOD  # a tick no replica has reached yet
    engine = create_database_engine(cluster.database_url)
    with engine.begin() as connection:  # the victim claims it, as at the tick's start ...
        connection.execute(
            evaluation_ticks.insert().values(
                model="ticking",
                tick=claimed,
                claimed_by=victim_id,
                lease_until=claimed + PERIOD / 2,
            )
        )
    victim.process.send_signal(signal.SIGKILL)  # ... and dies before it is done
    victim.process.wait(timeout=10)
    survivor = cluster.replicas[0]
    ticks = poll(
        lambda: ticks_until(survivor, claimed + 3 * PERIOD), timeout=60, what="ticks after it"
    )
    assert_once_per_tick(ticks)  # the claimed tick included, once
    assert claimed in ticks
    with engine.connect() as connection:
        rows: dict[float, Any] = {
            float(r["tick"]): r
            for r in connection.execute(
                select(evaluation_ticks).where(
                    evaluation_ticks.c.model == "ticking", evaluation_ticks.c.tick >= claimed
                )
            ).mappings()
        }
    engine.dispose()
    taken_over = rows[claimed]
    assert taken_over["claimed_by"] in {r.replica_id() for r in cluster.replicas[:2]}
    assert taken_over["done_at"] < claimed + 2 * PERIOD  # at the next tick's run
    for tick in (claimed + PERIOD, claimed + 2 * PERIOD):  # the next ticks, by the others
        assert rows[tick]["claimed_by"] != victim_id and rows[tick]["done_at"] is not None
