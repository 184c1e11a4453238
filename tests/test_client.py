"""The Python client (``monitor.client``): real HTTP against the real service, and, in virtual
time (``virtual_time``), against a scripted monitor (an httpx ``MockTransport``) that is down,
slow, failing and back: bounded shutdown, retries in parallel, every record delivered once."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import py_compile
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from server_process import free_port, start_server
from virtual_time import VirtualClock, VirtualTimeLoop

from monitor.client import CLOSE_TIMEOUT, AsyncMonitor, Monitor

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [
    ROOT / "examples" / name
    for name in ("client_plain.py", "client_fastapi.py", "sklearn_server.py")
]
INGEST = "ingest-token-0123456789"
READ = "read-token-0123456789abc"
MODELS = ("sync", "aio", "plain", "fastapi", "sklearn")
MODEL_YAML = """
  - name: {name}
    task: classification
    classes: [approved, rejected]
    features:
      - {{name: age, type: numeric}}
      - {{name: income, type: numeric}}
      - {{name: country, type: categorical}}
"""


# -- the real service ------------------------------------------------------------------------


@dataclass
class Service:
    url: str
    log: Path

    def counts(self, model: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/v1/models/{model}", headers={"Authorization": f"Bearer {READ}"}
        )
        assert response.status_code == 200, response.text
        counts: dict[str, Any] = response.json()["counts"]
        return counts


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("client")
    config = directory / "monitor.yaml"
    config.write_text(
        f'storage: {{url: "sqlite:///{directory / "monitor.db"}"}}\n'
        f"server:\n  auth: {{ingest_tokens: [{INGEST}], read_tokens: [{READ}]}}\n"
        "models:" + "".join(MODEL_YAML.format(name=name) for name in MODELS)
    )
    port = free_port()
    log = directory / "server.log"
    process = start_server(config, port, log)
    try:
        yield Service(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        process.wait(timeout=15)


def features(i: int) -> dict[str, Any]:
    return {
        "age": 18 + i % 60,
        "income": float("nan") if i % 11 == 0 else 20_000.0 + 37.5 * i,  # NaN: sent as null
        "country": ("DE", "FR", "NL")[i % 3],
    }


def timestamp(i: int, now: datetime) -> datetime | float | None:
    """Every form the client takes: an aware datetime (not UTC), Unix seconds, or none."""
    moment = now - timedelta(seconds=i)
    if i % 3 == 0:
        return moment.astimezone(timezone(timedelta(hours=2)))
    if i % 3 == 1:
        return moment.timestamp()
    return None


def test_sync_client_against_the_service(service: Service) -> None:
    now = datetime.now(UTC)
    with Monitor(service.url, "sync", token=INGEST, batch_size=250, flush_interval=0.2) as monitor:
        for i in range(1000):
            monitor.log_prediction(
                f"s-{i}",
                features(i),
                "approved" if i % 4 else "rejected",
                scores={"approved": 0.75, "rejected": 0.25} if i % 4 else None,
                timestamp=timestamp(i, now),
            )
        for i in range(600):
            monitor.log_label(
                f"s-{i}", "approved" if i % 2 else "rejected", timestamp=timestamp(i, now)
            )
        assert monitor.flush(timeout=60)  # a shared machine: more than the default's 5 s
    stats = monitor.stats()
    assert stats["sent"] == 1600, (stats, service.log.read_text()[-3000:])
    assert (stats["dropped"], stats["rejected"], stats["failed"], stats["queued"]) == (0, 0, 0, 0)
    counts = service.counts("sync")
    assert (counts["predictions"], counts["labels"], counts["labelled_predictions"]) == (
        1000,
        600,
        600,
    )
    # what was stored: the aware datetime (+02:00) and the Unix seconds at the right instant,
    # no timestamp = the time received, NaN = missing, the label's own timestamp
    exported = httpx.get(
        f"{service.url}/v1/models/sync/export",
        params={"start": now.timestamp() - 2000, "end": now.timestamp() + 600},
        headers={"Authorization": f"Bearer {READ}"},
    )
    assert exported.status_code == 200, exported.text
    rows = {row["id"]: row for row in map(json.loads, exported.text.splitlines())}
    assert len(rows) == 1000

    def instant(value: str) -> float:
        return datetime.fromisoformat(value).timestamp()

    for i in (999, 997, 3, 1):  # a datetime, Unix seconds, a datetime, Unix seconds
        expected = now.timestamp() - i
        assert instant(rows[f"s-{i}"]["timestamp"]) == pytest.approx(expected, abs=1e-3)
        assert instant(rows[f"s-{i}"]["label_timestamp"] or "1970-01-01T00:00:00Z") == (
            pytest.approx(expected, abs=1e-3) if i < 600 else 0.0
        )
    assert instant(rows["s-2"]["timestamp"]) >= now.timestamp() - 1  # received at
    assert rows["s-11"]["features"] == {"age": 29, "income": None, "country": "NL"}
    assert rows["s-11"]["label"] == "approved" and rows["s-12"]["label"] == "rejected"
    assert rows["s-1"]["scores"] == {"approved": 0.75, "rejected": 0.25}
    assert rows["s-4"]["scores"] is None and rows["s-4"]["prediction"] == "rejected"
    # closed: further records are not queued, and say so
    monitor.log_prediction("late", features(0), "approved")
    assert monitor.dropped == 1


def test_async_client_against_the_service(service: Service) -> None:
    # created and fed outside any event loop: those records wait for the loop (lazy start)
    monitor = AsyncMonitor(service.url, "aio", token=INGEST, batch_size=300, flush_interval=0.2)
    now = datetime.now(UTC)
    for i in range(100):
        monitor.log_prediction(f"a-{i}", features(i), "approved", timestamp=timestamp(i, now))
    assert monitor.stats()["queued"] == 100

    async def main() -> None:
        async with monitor:
            for i in range(100, 1000):
                monitor.log_prediction(
                    f"a-{i}", features(i), "rejected", timestamp=timestamp(i, now)
                )
                if i % 100 == 0:
                    await asyncio.sleep(0)  # a server handles requests between logs
            for i in range(600):
                monitor.log_label(f"a-{i}", "approved")
            assert await monitor.flush(timeout=30)
            assert monitor.sent == 1600

    asyncio.run(main())
    stats = monitor.stats()
    assert stats == {
        "sent": 1600,
        "dropped": 0,
        "rejected": 0,
        "failed": 0,
        "retries": stats["retries"],
        "queued": 0,
    }, service.log.read_text()[-3000:]
    counts = service.counts("aio")
    assert (counts["predictions"], counts["labels"], counts["labelled_predictions"]) == (
        1000,
        600,
        600,
    )


# -- a scripted monitor, in virtual time ------------------------------------------------------

URL = "http://monitor.test"


@dataclass
class Reply:
    status: int = 202
    body: dict[str, Any] | None = None  # None: {"accepted": n, "duplicates": 0}
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # how long the answer takes, in virtual time


REFUSE = None  # an answer of None: the connection is refused


@dataclass
class Seen:
    at: float
    path: str
    ids: list[str]
    headers: dict[str, str]
    status: int | None = None  # None: refused, or not answered (yet)
    answered_at: float | None = None


class FakeMonitor:
    """An httpx ``MockTransport`` handler: answers each POSTed batch with ``answer(ids)`` (by
    default the script's next reply, then 202) after its virtual ``seconds``, and keeps every
    request with the ids it carried, when, and what it got."""

    def __init__(
        self,
        now: Callable[[], float],
        script: list[Reply | None] | None = None,
        *,
        answer: Callable[[list[str]], Reply | None] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.now = now
        self.script = list(script or [])
        self.answer = answer or self._next
        self.sleep = sleep
        self.requests: list[Seen] = []
        self.busy = self.most_busy = 0
        self.lock = threading.Lock()

    def _next(self, ids: list[str]) -> Reply | None:
        return self.script.pop(0) if self.script else Reply()

    def _begin(self, request: httpx.Request) -> tuple[Seen, Reply | None]:
        ids = [str(record["id"]) for record in json.loads(request.content)]
        with self.lock:
            seen = Seen(self.now(), request.url.path, ids, dict(request.headers))
            self.requests.append(seen)
            reply = self.answer(ids)
            if reply is not None:
                self.busy += 1
                self.most_busy = max(self.most_busy, self.busy)
        if reply is None:
            raise httpx.ConnectError("connection refused", request=request)
        return seen, reply

    def _end(self, seen: Seen, reply: Reply) -> httpx.Response:
        with self.lock:
            self.busy -= 1
            seen.status, seen.answered_at = reply.status, self.now()
        body = reply.body if reply.body is not None else {"accepted": len(seen.ids)}
        kind = "application/json" if reply.status < 400 else "application/problem+json"
        return httpx.Response(
            reply.status, json=body, headers={"content-type": kind, **reply.headers}
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        seen, reply = self._begin(request)
        if reply.seconds:
            assert self.sleep is not None
            self.sleep(reply.seconds)
        return self._end(seen, reply)

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        seen, reply = self._begin(request)
        await asyncio.sleep(reply.seconds)
        return self._end(seen, reply)

    def acknowledged(self) -> list[str]:
        """Every id in a batch answered 2xx, as often as it was."""
        return [i for seen in self.requests if seen.status == 202 for i in seen.ids]


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def run_virtual(main: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)


def log_mixed(monitor: Monitor | AsyncMonitor, count: int) -> list[str]:
    """Predictions and labels for them, alternately."""
    logged = []
    for i in range(count):
        if i % 2:
            monitor.log_label(f"r-{i - 1}", "approved")
            logged.append(f"label:r-{i - 1}")
        else:
            monitor.log_prediction(f"r-{i}", features(i), "approved")
            logged.append(f"prediction:r-{i}")
    return logged


def delivered(fake: FakeMonitor) -> list[str]:
    return sorted(
        f"{seen.path.rsplit('/', 1)[1][:-1]}:{i}"
        for seen in fake.requests
        if seen.status == 202
        for i in seen.ids
    )


def closed_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "monitor.client"]


@pytest.mark.parametrize("outage", ["down", "slow"])
def test_close_with_the_monitor_unreachable_returns_within_its_default_bound(
    outage: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = f"close-{outage}"
    clock = VirtualClock(model)
    fake = FakeMonitor(
        clock.now,
        answer=lambda ids: REFUSE if outage == "down" else Reply(seconds=60),
        sleep=clock.sleep,
    )
    monitor = Monitor(URL, model, transport=httpx.MockTransport(fake.handle), clock=clock)
    assert monitor.close_timeout == CLOSE_TIMEOUT == 5.0
    for i in range(1000):  # two full batches: sent at once
        monitor.log_prediction(f"p-{i}", features(i), "approved")
    for i in range(10):  # not due yet: close sends them
        monitor.log_label(f"p-{i}", "approved")
    started = clock.now()
    with caplog.at_level(logging.WARNING, logger="monitor.client"):
        assert monitor.close() is False
    assert clock.now() - started == CLOSE_TIMEOUT
    assert monitor.stats() == {
        "sent": 0,
        "dropped": 0,
        "rejected": 0,
        "failed": 1010,
        "retries": monitor.retries,
        "queued": 0,
    }
    (line,) = closed_lines(caplog)  # one line, with the count
    assert "closed after 5 s with 1010 record(s) of model" in line and "counted in failed" in line
    if outage == "down":
        assert monitor.retries >= 3  # each batch was being retried
    else:
        assert [len(seen.ids) for seen in fake.requests] == [500, 500, 10]  # under way, in time
        clock.advance(60)  # the late answers come: the records are not counted twice
        for sender in monitor._senders:
            sender.join(10)
        assert [seen.status for seen in fake.requests] == [202, 202, 202]
        assert (monitor.sent, monitor.failed, monitor.retries) == (0, 1010, 0)
    monitor.log_prediction("late", features(0), "approved")
    assert monitor.dropped == 1


@pytest.mark.parametrize("outage", ["down", "slow"])
def test_aclose_with_the_monitor_unreachable_returns_within_its_default_bound(
    outage: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeMonitor(
        loop_time, answer=lambda ids: REFUSE if outage == "down" else Reply(seconds=60)
    )

    async def main() -> tuple[AsyncMonitor, float]:
        async with AsyncMonitor(
            URL, "close-aio", transport=httpx.MockTransport(fake.ahandle)
        ) as monitor:
            for i in range(1000):
                monitor.log_prediction(f"p-{i}", features(i), "approved")
            for i in range(10):
                monitor.log_label(f"p-{i}", "approved")
            started = loop_time()
        return monitor, loop_time() - started  # leaving the block closed it

    with caplog.at_level(logging.WARNING, logger="monitor.client"):
        monitor, elapsed = run_virtual(main())
    assert elapsed == pytest.approx(CLOSE_TIMEOUT, abs=1e-9)
    assert monitor.stats() == {
        "sent": 0,
        "dropped": 0,
        "rejected": 0,
        "failed": 1010,
        "retries": monitor.retries,
        "queued": 0,
    }
    (line,) = closed_lines(caplog)
    assert "closed after 5 s with 1010 record(s) of model" in line
    if outage == "down":
        assert monitor.retries >= 3
    else:
        assert [len(seen.ids) for seen in fake.requests] == [500, 500, 10]
        assert [seen.status for seen in fake.requests] == [None, None, None]  # cancelled


def check_delivered_once(
    fake: FakeMonitor, monitor: Monitor | AsyncMonitor, logged: list[str]
) -> None:
    statuses = [seen.status for seen in fake.requests]
    assert statuses[:3] == [503, 503, 503] and set(statuses[3:]) == {202}
    assert delivered(fake) == sorted(logged)  # every record, each exactly once
    assert monitor.stats() == {
        "sent": 1500,
        "dropped": 0,
        "rejected": 0,
        "failed": 0,
        "retries": 3,
        "queued": 0,
    }
    # the batch answered 503 with Retry-After: 7 was sent again 7 s later, the same batch
    first = fake.requests[0]
    again = next(s for s in fake.requests[1:] if (s.path, s.ids) == (first.path, first.ids))
    assert again.at - first.at == pytest.approx(7.0, abs=1e-9)
    assert {seen.path for seen in fake.requests} == {
        "/v1/models/again/predictions",
        "/v1/models/again/labels",
    }
    assert all(seen.headers["authorization"] == "Bearer t0ken" for seen in fake.requests)


SCRIPT_503: list[Reply | None] = [Reply(503, headers={"Retry-After": "7"}), Reply(503), Reply(503)]


def test_503_then_202_delivers_every_record_once() -> None:
    clock = VirtualClock("again")
    fake = FakeMonitor(clock.now, list(SCRIPT_503))
    monitor = Monitor(
        URL,
        "again",
        token="t0ken",
        batch_size=250,
        transport=httpx.MockTransport(fake.handle),
        clock=clock,
    )
    logged = log_mixed(monitor, 1500)
    assert monitor.close(timeout=None) is True
    check_delivered_once(fake, monitor, logged)


def test_503_then_202_delivers_every_record_once_asyncio() -> None:
    fake = FakeMonitor(loop_time, list(SCRIPT_503))

    async def main() -> tuple[AsyncMonitor, list[str]]:
        monitor = AsyncMonitor(
            URL, "again", token="t0ken", batch_size=250, transport=httpx.MockTransport(fake.ahandle)
        )
        logged = log_mixed(monitor, 1500)
        assert await monitor.aclose(timeout=None) is True
        return monitor, logged

    monitor, logged = run_virtual(main())
    check_delivered_once(fake, monitor, logged)


def stuck_first_batch(ids: list[str]) -> Reply:
    """The first batch is answered 503 for ever, every other 202; each answer takes 1 s."""
    return Reply(503 if "p-0" in ids else 202, seconds=1.0)


def check_not_held_back(
    fake: FakeMonitor, monitor: Monitor | AsyncMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    stuck = [seen for seen in fake.requests if "p-0" in seen.ids]
    others = [seen for seen in fake.requests if "p-0" not in seen.ids]
    assert fake.most_busy == 3  # max_in_flight: in parallel, and never more
    assert len(others) == 19 and {seen.status for seen in others} == {202}
    # every other batch went out while the stuck one was still being retried
    assert max(seen.answered_at or 0 for seen in others) < stuck[-1].at
    # its budget: no attempt after 30 s from its first
    assert len(stuck) > 3 and stuck[-1].at - stuck[0].at <= 30
    assert monitor.stats() == {
        "sent": 950,
        "dropped": 0,
        "rejected": 0,
        "failed": 50,
        "retries": len(stuck) - 1,
        "queued": 0,
    }
    (line,) = closed_lines(caplog)
    assert "gave up 50 predictions of model" in line and "HTTP 503" in line


def test_a_batch_being_retried_does_not_hold_back_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = VirtualClock("parallel")
    fake = FakeMonitor(clock.now, answer=stuck_first_batch, sleep=clock.sleep)
    monitor = Monitor(
        URL,
        "parallel",
        batch_size=50,
        max_in_flight=3,
        max_retry_seconds=30,
        transport=httpx.MockTransport(fake.handle),
        clock=clock,
    )
    with caplog.at_level(logging.WARNING, logger="monitor.client"):
        for i in range(1000):
            monitor.log_prediction(f"p-{i}", features(i), "approved")
        assert monitor.close(timeout=None) is True
    check_not_held_back(fake, monitor, caplog)


def test_a_batch_being_retried_does_not_hold_back_the_others_asyncio(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeMonitor(loop_time, answer=stuck_first_batch)

    async def main() -> AsyncMonitor:
        monitor = AsyncMonitor(
            URL,
            "parallel",
            batch_size=50,
            max_in_flight=3,
            max_retry_seconds=30,
            transport=httpx.MockTransport(fake.ahandle),
        )
        for i in range(1000):
            monitor.log_prediction(f"p-{i}", features(i), "approved")
        assert await monitor.aclose(timeout=None) is True
        return monitor

    with caplog.at_level(logging.WARNING, logger="monitor.client"):
        monitor = run_virtual(main())
    check_not_held_back(fake, monitor, caplog)


def test_flush_waits_the_default_bound_an_explicit_timeout_or_until_given_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = VirtualClock("bounds")
    down = True
    fake = FakeMonitor(clock.now, answer=lambda ids: REFUSE if down else Reply())
    monitor = Monitor(
        URL,
        "bounds",
        max_retry_seconds=60,
        transport=httpx.MockTransport(fake.handle),
        clock=clock,
    )
    for i in range(10):
        monitor.log_prediction(f"b-{i}", features(i), "approved")
    started = clock.now()
    assert monitor.flush() is False  # the default bound: it stops waiting, the records stay
    assert clock.now() - started == CLOSE_TIMEOUT
    assert (monitor.failed, monitor.stats()["queued"]) == (0, 10)
    started = clock.now()
    assert monitor.flush(timeout=12) is False  # an explicit timeout wins
    assert clock.now() - started == 12
    down = False  # back: the next retry gets through
    assert monitor.flush(timeout=None) is True
    assert (monitor.sent, monitor.failed) == (10, 0)
    for i in range(10, 20):
        monitor.log_prediction(f"b-{i}", features(i), "approved")
    down = True
    started = clock.now()
    with caplog.at_level(logging.WARNING, logger="monitor.client"):
        assert monitor.close(timeout=None) is True  # until the batch's budget is spent
    assert 30 < clock.now() - started <= 60
    assert (monitor.sent, monitor.failed, monitor.stats()["queued"]) == (10, 10, 0)
    (line,) = closed_lines(caplog)  # given up, nothing left unsent at close
    assert "gave up 10 predictions of model 'bounds' after 60 s of retries" in line


def test_full_queue_drops_and_counts_then_gives_up() -> None:
    clock = VirtualClock("full")
    fake = FakeMonitor(clock.now, answer=lambda ids: REFUSE)
    monitor = Monitor(
        URL,
        "full",
        max_queue=10,
        batch_size=4,
        flush_interval=30,
        max_retry_seconds=0.5,
        transport=httpx.MockTransport(fake.handle),
        clock=clock,
    )
    try:
        for i in range(100):
            monitor.log_prediction(i, features(i), "approved")
        # the records held, waiting or being sent (two batches of 4), are at most max_queue
        assert monitor.dropped == 90
        assert monitor.stats()["queued"] == 10
        assert monitor.flush(timeout=None) is True  # forced out, retried for 0.5 s, given up
        assert monitor.stats() == {
            "sent": 0,
            "dropped": 90,
            "rejected": 0,
            "failed": 10,
            "retries": monitor.retries,
            "queued": 0,
        }
        assert monitor.retries >= 3
    finally:
        monitor.close()


def test_invalid_batch_is_rejected_once_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    problem = {
        "type": "urn:drift-monitor:problem:invalid-records",
        "title": "Invalid records",
        "status": 400,
        "detail": "1 invalid record(s), nothing of the batch was stored",
        "errors": [{"index": 3, "field": "features.age", "reason": "must be a number"}],
    }
    clock = VirtualClock("invalid")
    fake = FakeMonitor(clock.now, [Reply(400, body=problem)])
    with (
        caplog.at_level(logging.WARNING, logger="monitor.client"),
        Monitor(URL, "invalid", transport=httpx.MockTransport(fake.handle), clock=clock) as monitor,
    ):
        for i in range(5):
            monitor.log_prediction(f"x-{i}", features(i), "approved")
        assert monitor.flush(timeout=None)
        assert len(fake.requests) == 1
        assert monitor.stats() == {
            "sent": 0,
            "dropped": 0,
            "rejected": 5,
            "failed": 0,
            "retries": 0,
            "queued": 0,
        }
        for i in range(5, 8):
            monitor.log_prediction(f"x-{i}", features(i), "approved")
        assert monitor.flush(timeout=None)
        # and records the client cannot serialize are refused at once, never queued
        monitor.log_prediction("naive", features(0), "approved", timestamp=datetime.now())
        monitor.log_label("", "approved")
        monitor.log_prediction("obj", {"age": object()}, "approved")
    assert [seen.status for seen in fake.requests] == [400, 202]
    assert monitor.sent == 3 and monitor.rejected == 5 + 3 and monitor.retries == 0
    rejected = [line for line in closed_lines(caplog) if "rejected by" in line]
    assert len(rejected) == 1
    assert "HTTP 400" in rejected[0] and problem["detail"] in rejected[0]
    assert "features.age must be a number" in rejected[0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_other_4xx_are_never_retried_and_408_429_5xx_are(status: int) -> None:
    clock = VirtualClock(f"status-{status}")
    fake = FakeMonitor(clock.now, [Reply(status), Reply(408), Reply(429), Reply(500)])
    monitor = Monitor(
        URL, f"status-{status}", transport=httpx.MockTransport(fake.handle), clock=clock
    )
    monitor.log_prediction("a", features(0), "approved")
    assert monitor.flush(timeout=None)
    monitor.log_prediction("b", features(1), "approved")
    assert monitor.close(timeout=None)
    assert [seen.status for seen in fake.requests] == [status, 408, 429, 500, 202]
    assert (monitor.rejected, monitor.sent, monitor.retries) == (1, 1, 3)


# -- the examples ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_compiles(path: Path) -> None:
    py_compile.compile(str(path), doraise=True)


def test_plain_example_against_the_service(service: Service) -> None:
    env = {**os.environ, "MONITOR_TOKEN": INGEST}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES[0]), "--url", service.url, "--model", "plain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sent=30 dropped=0 rejected=0 failed=0" in result.stdout
    counts = service.counts("plain")
    assert (counts["predictions"], counts["labels"]) == (20, 10)


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # pydantic resolves the annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
@pytest.mark.parametrize(
    ("path", "model"),
    [(EXAMPLES[1], "fastapi"), (EXAMPLES[2], "sklearn")],
    ids=["client_fastapi", "sklearn_server"],
)
def test_fastapi_examples_against_the_service(
    path: Path, model: str, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setenv("MONITOR_URL", service.url)
    monkeypatch.setenv("MONITOR_MODEL", model)
    monkeypatch.setenv("MONITOR_TOKEN", INGEST)
    app = load(path).app
    label_path = "/feedback" if model == "fastapi" else "/labels"
    with TestClient(app) as client:  # runs the lifespan: the monitor is closed on exit
        for i in range(5):
            applicant = {
                "age": 30 + i,
                "income": None if i == 2 else 40_000 + 10_000 * i,
                "country": "DE",
            }
            answer = client.post("/predict", json=applicant)
            assert answer.status_code == 200, answer.text
            assert answer.json()["prediction"] in ("approved", "rejected")
            key = "outcome" if model == "fastapi" else "label"
            labelled = client.post(label_path, json={"id": answer.json()["id"], key: "approved"})
            assert labelled.status_code == 204, labelled.text
    counts = service.counts(model)
    assert (counts["predictions"], counts["labels"], counts["labelled_predictions"]) == (5, 5, 5)
