"""A real ``monitor serve`` started without its database: it serves at once, says why it is
not ready (one log line per attempt, no traceback), refuses ingest with 503 and
``Retry-After``, and begins serving as soon as the database answers, with no restart. A config
error still ends it at once."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from server_process import free_port, start_server

from monitor.storage import create_database_engine
from monitor.storage import repository as repo

CONFIG = """
server: {host: 127.0.0.1, port: 1}
storage: {url: "%s"}
models:
  - name: m
    task: classification
    classes: [a, b]
    features:
      - {name: x, type: numeric}
      - {name: c, type: categorical}
"""
RECORD = {"id": "first", "features": {"x": 1.5, "c": "k"}, "prediction": "a"}
ATTEMPT = re.compile(r"not reachable \(attempt (\d+), retrying in (\d+\.\d)s\): (.*)$")
#: bounded waits (seconds); the backoff reaches 16 s only after 15.5 s of outage
WAIT_SECONDS = 60


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster, initialised but not running."""

    directory: Path
    port: int

    def url(self, password: str) -> str:
        return f"postgresql+psycopg://postgres:{password}@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(self.directory / "data"),
             *args],
            check=True,
            capture_output=True,
            timeout=120,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self.pg_ctl("start", "-w", "-t", "60", "-l", str(self.directory / "log"), "-o", options)


@pytest.fixture
def stopped_cluster() -> Iterator[Cluster]:
    missing = [tool for tool in ("initdb", "pg_ctl", "runuser") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} to run a throwaway PostgreSQL cluster")
    if os.geteuid() != 0:
        pytest.skip("needs root to run PostgreSQL as the postgres user (runuser)")
    directory = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
    shutil.chown(directory, "postgres", "postgres")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", "initdb", "-D", str(directory / "data"),
         "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    cluster = Cluster(directory, free_port())
    try:
        yield cluster
    finally:
        if (directory / "data" / "postmaster.pid").exists():
            cluster.pg_ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(directory, ignore_errors=True)


def wait_until(condition: object, what: str, log: Path) -> None:
    """Poll ``condition()`` (bounded): fail naming ``what`` with the server's log."""
    assert callable(condition)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {WAIT_SECONDS}s:\n{log.read_text()}")


def attempt_lines(log: Path) -> list[re.Match[str]]:
    return [m for line in log.read_text().splitlines() if (m := ATTEMPT.search(line))]


def check_not_ready(base: str) -> None:
    """What a client sees before the database is reached."""
    assert httpx.get(f"{base}/healthz").status_code == 200
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "starting"
    refused = httpx.post(f"{base}/v1/models/m/predictions", json=[RECORD])
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["type"] == "urn:drift-monitor:problem:not-ready"
    assert httpx.get(f"{base}/metrics").status_code == 200


def check_serves(base: str, url: str, log: Path) -> None:
    """The database answers: the same process becomes ready and stores what it accepts."""
    wait_until(
        lambda: httpx.get(f"{base}/readyz").status_code == 200, "/readyz did not turn 200", log
    )
    stored = httpx.post(f"{base}/v1/models/m/predictions", json=[RECORD])
    assert stored.status_code == 202, stored.text
    assert stored.json() == {"accepted": 1, "duplicates": 0}
    assert httpx.get(f"{base}/v1/models/m").json()["counts"]["predictions"] == 1
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            assert repo.prediction_ids(connection, model="m") == {"first"}
    finally:
        engine.dispose()


def check_attempts_logged(log: Path, reason: str) -> int:
    """One line per failed attempt, numbered from 1, no traceback; the number of them."""
    text = log.read_text()
    attempts = attempt_lines(log)
    assert [int(m[1]) for m in attempts] == list(range(1, len(attempts) + 1)), text
    assert all(m[3] == reason for m in attempts), text
    assert "Traceback" not in text
    assert f"reachable after {len(attempts) + 1} attempts; the service is ready" in text
    return len(attempts)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # uvicorn re-raises SIGTERM once shut down
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)


def test_serve_waits_for_postgresql_and_then_serves(
    stopped_cluster: Cluster, tmp_path: Path
) -> None:
    password = "pg-s3cret"  # trust authentication ignores it; the log must not show it
    url = stopped_cluster.url(password)
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG % url)
    log = tmp_path / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(config, port, log, wait_for="/healthz")
    try:
        check_not_ready(base)
        wait_until(lambda: len(attempt_lines(log)) >= 2, "no second attempt logged", log)
        check_not_ready(base)
        stopped_cluster.start()
        check_serves(base, url, log)
        reason = (
            'connection failed: connection to server at "127.0.0.1", '
            f"port {stopped_cluster.port} failed: Connection refused"
        )
        assert check_attempts_logged(log, reason) >= 2
        assert f"postgres:***@127.0.0.1:{stopped_cluster.port}" in log.read_text()
        assert password not in log.read_text()
    finally:
        stop(process)


def test_serve_waits_for_a_sqlite_directory_and_then_serves(tmp_path: Path) -> None:
    """A path under a regular file cannot be opened, even by root (which chmod does not
    stop); replacing the file with the directory, as fixing a volume mount would, lets the
    service start."""
    blocker = tmp_path / "volume"
    blocker.write_text("not a directory")
    database = blocker / "sub" / "monitor.db"
    url = f"sqlite:///{database}"
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG % url)
    log = tmp_path / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(config, port, log, wait_for="/healthz")
    try:
        check_not_ready(base)
        wait_until(lambda: len(attempt_lines(log)) >= 2, "no second attempt logged", log)
        check_not_ready(base)
        blocker.unlink()
        (blocker / "sub").mkdir(parents=True)
        check_serves(base, url, log)
        reason = (
            "unable to open database file "
            f"(check that the directory {blocker / 'sub'} exists and is writable)"
        )
        assert check_attempts_logged(log, reason) >= 2
    finally:
        stop(process)


def serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("MONITOR_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--config", str(config),
         "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT_SECONDS,
    )  # fmt: skip


def test_a_config_error_still_exits_1_at_once_without_the_database(tmp_path: Path) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    config = tmp_path / "monitor.yaml"
    config.write_text((CONFIG % unreachable).replace("task: classification", "task: clasification"))
    result = serve(config)
    assert result.returncode == 1
    assert result.stderr == (
        f"{config}:6: models[0].task: must be 'classification' or 'regression'\n"
    )


def test_an_invalid_reference_file_still_exits_1_at_once_without_the_database(
    tmp_path: Path,
) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    reference = tmp_path / "reference.csv"
    reference.write_text("x,c,prediction\n1.5,k,a\nnot-a-number,k,b\n")
    config = tmp_path / "monitor.yaml"
    config.write_text((CONFIG % unreachable) + "    reference: {path: reference.csv}\n")
    result = serve(config)
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"{reference}: record 1.features.x: 'not-a-number' is not a finite number\n"
    )


def test_a_start_up_error_that_is_no_outage_exits_1(tmp_path: Path) -> None:
    """A database that answers but refuses the migration (here: no schema to create tables
    in) is not retried: the process logs the error and exits 1 instead of serving unready."""
    base = os.environ.get("MONITOR_TEST_DATABASE_URL")
    if not base:
        pytest.skip("PostgreSQL not configured: set MONITOR_TEST_DATABASE_URL")
    separator = "&" if "?" in base else "?"
    url = f"{base}{separator}options=-csearch_path%3Dno_such_schema"
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG % url)
    result = serve(config)
    assert result.returncode == 1, result.stderr
    assert "ERROR monitor.startup: start-up failed" in result.stderr
    assert "not reachable" not in result.stderr


def test_sigterm_while_waiting_for_the_database_ends_the_process(tmp_path: Path) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG % unreachable)
    log = tmp_path / "server.log"
    process = start_server(config, free_port(), log, wait_for="/healthz")
    wait_until(lambda: len(attempt_lines(log)) >= 1, "no attempt logged", log)
    stop(process)  # within its bounded wait: the retry loop does not hold the process
    assert "Traceback" not in log.read_text()
    assert "the service is ready" not in log.read_text()
