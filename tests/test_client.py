"""The Python client (``monitor.client``): real HTTP, against the real service and against a
scripted stdlib receiver that is down, slow, failing and back."""

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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from server_process import free_port, start_server

from monitor.client import AsyncMonitor, Monitor

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
    slowest = 0.0
    with Monitor(service.url, "sync", token=INGEST, batch_size=250, flush_interval=0.2) as monitor:
        for i in range(1000):
            started = time.perf_counter()
            monitor.log_prediction(
                f"s-{i}",
                features(i),
                "approved" if i % 4 else "rejected",
                scores={"approved": 0.75, "rejected": 0.25} if i % 4 else None,
                timestamp=timestamp(i, now),
            )
            slowest = max(slowest, time.perf_counter() - started)
        for i in range(600):
            monitor.log_label(
                f"s-{i}", "approved" if i % 2 else "rejected", timestamp=timestamp(i, now)
            )
    assert slowest < 0.05
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

    async def main() -> float:
        slowest = 0.0
        async with monitor:
            for i in range(100, 1000):
                started = time.perf_counter()
                monitor.log_prediction(
                    f"a-{i}", features(i), "rejected", timestamp=timestamp(i, now)
                )
                slowest = max(slowest, time.perf_counter() - started)
                if i % 100 == 0:
                    await asyncio.sleep(0)  # a server handles requests between logs
            for i in range(600):
                monitor.log_label(f"a-{i}", "approved")
            assert await monitor.flush(timeout=30)
            assert monitor.sent == 1600
        return slowest

    assert asyncio.run(main()) < 0.05
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


# -- a scripted receiver -----------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 202
    body: dict[str, Any] | None = None  # None: {"accepted": n, "duplicates": 0}
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class IdReceiver:
    """A stdlib HTTP server that answers POSTed record batches from a script (then 202 with an
    ``accepted`` count) and keeps, per request, the ids it carried and the status it got.
    ``tests/receiver.py``'s ``Receiver`` answers without a body, hence this one."""

    def __init__(self, port: int = 0, script: list[Reply] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[tuple[str, list[str], int, dict[str, str]]] = []
        self.acknowledged: set[str] = set()  # ids of batches answered 2xx in time
        self.resent_after_ack: list[str] = []
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                ids = [str(record["id"]) for record in json.loads(body)]
                with lock:
                    reply = receiver.script.pop(0) if receiver.script else Reply()
                    receiver.resent_after_ack += sorted(receiver.acknowledged & set(ids))
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.requests.append((self.path, ids, reply.status, headers))
                    if 200 <= reply.status < 300 and reply.delay == 0:
                        receiver.acknowledged |= set(ids)
                time.sleep(reply.delay)
                answer = (
                    reply.body
                    if reply.body is not None
                    else {"accepted": len(ids), "duplicates": 0}
                )
                data = json.dumps(answer).encode()
                kind = "application/json" if reply.status < 400 else "application/problem+json"
                try:
                    self.send_response(reply.status)
                    for name, value in {"content-type": kind, **reply.headers}.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client timed out and left

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ids(self) -> set[str]:
        return {i for _, ids, _, _ in self.requests for i in ids}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_server_down_then_failing_then_slow_then_back() -> None:
    port = free_port()  # nothing listens there yet: connections are refused
    monitor = Monitor(
        f"http://127.0.0.1:{port}",
        "m",
        token="t0ken",
        batch_size=40,
        flush_interval=0.05,
        timeout=0.5,
        max_retry_seconds=60,
    )
    monitor.initial_backoff, monitor.max_backoff = 0.05, 0.2
    logged: list[str] = []
    durations: list[float] = []

    def log(start: int, stop: int) -> None:
        for i in range(start, stop):
            started = time.perf_counter()
            if i % 2:
                monitor.log_label(f"r-{i}", "approved")
            else:
                monitor.log_prediction(f"r-{i}", features(i), "approved")
            durations.append(time.perf_counter() - started)
            logged.append(f"r-{i}")

    receiver = None
    try:
        log(0, 150)
        wait_for(lambda: monitor.retries >= 3)  # refused, refused, refused: retrying
        receiver = IdReceiver(
            port,
            [Reply(503), Reply(429, headers={"Retry-After": "0"}), Reply(503), Reply(delay=1.5)],
        )
        log(150, 300)
        assert monitor.flush(timeout=20)
        assert max(durations) < 0.05
        assert receiver.script == []  # every scripted answer was given: 503, 429, 503, slow
        statuses = [status for _, _, status, _ in receiver.requests]
        assert statuses[:4] == [503, 429, 503, 202]
        assert receiver.requests[0][1] == receiver.requests[3][1] == receiver.requests[4][1]
        assert receiver.resent_after_ack == []  # never resent once acknowledged
        assert receiver.ids() == receiver.acknowledged == set(logged)
        assert {path for path, _, _, _ in receiver.requests} == {
            "/v1/models/m/predictions",
            "/v1/models/m/labels",
        }
        assert all(h["authorization"] == "Bearer t0ken" for _, _, _, h in receiver.requests)
        stats = monitor.stats()
        assert stats["sent"] == 300
        assert (stats["dropped"], stats["rejected"], stats["failed"]) == (0, 0, 0)
        assert stats["retries"] >= 3 + 4  # the refusals, then 503, 429, 503 and the timeout
    finally:
        monitor.close(timeout=5)
        if receiver is not None:
            receiver.stop()


def test_full_queue_drops_and_counts_then_gives_up() -> None:
    port = free_port()  # nothing listens
    monitor = Monitor(
        f"http://127.0.0.1:{port}",
        "m",
        max_queue=10,
        flush_interval=30,
        timeout=0.5,
        max_retry_seconds=0.5,
    )
    try:
        started = time.perf_counter()
        for i in range(100):
            monitor.log_prediction(i, features(i), "approved")
        assert time.perf_counter() - started < 0.5
        assert monitor.dropped == 90  # the flush interval is far away: nothing left the queue
        assert monitor.stats()["queued"] == 10
        assert monitor.flush(timeout=10)  # forced out, retried for 0.5 s, given up
        assert monitor.stats() == {
            "sent": 0,
            "dropped": 90,
            "rejected": 0,
            "failed": 10,
            "retries": monitor.retries,
            "queued": 0,
        }
        assert monitor.retries >= 1
    finally:
        monitor.close(timeout=1)


def test_invalid_batch_is_rejected_once_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    problem = {
        "type": "urn:drift-monitor:problem:invalid-records",
        "title": "Invalid records",
        "status": 400,
        "detail": "1 invalid record(s), nothing of the batch was stored",
        "errors": [{"index": 3, "field": "features.age", "reason": "must be a number"}],
    }
    receiver = IdReceiver(script=[Reply(400, body=problem)])
    try:
        with (
            caplog.at_level(logging.WARNING, logger="monitor.client"),
            Monitor(receiver.url, "m", flush_interval=0.05) as monitor,
        ):
            for i in range(5):
                monitor.log_prediction(f"x-{i}", features(i), "approved")
            assert monitor.flush(timeout=10)
            assert len(receiver.requests) == 1
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
            assert monitor.flush(timeout=10)
            # and records the client cannot serialize are refused at once, never queued
            monitor.log_prediction("naive", features(0), "approved", timestamp=datetime.now())
            monitor.log_label("", "approved")
            monitor.log_prediction("obj", {"age": object()}, "approved")
        assert [status for _, _, status, _ in receiver.requests] == [400, 202]
        assert monitor.sent == 3 and monitor.rejected == 5 + 3 and monitor.retries == 0
        rejected = [r.getMessage() for r in caplog.records if "rejected by" in r.getMessage()]
        assert len(rejected) == 1
        assert "HTTP 400" in rejected[0] and problem["detail"] in rejected[0]
        assert "features.age must be a number" in rejected[0]
    finally:
        receiver.stop()


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
