"""The real ``monitor serve`` process: every acknowledged record survives ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
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


def test_acknowledged_records_survive_sigkill(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG % database_url)
    log = tmp_path / "server.log"
    port = free_port()
    process = start_server(config, port, log)
    acknowledged: list[str] = []
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            batch = 0
            while not stop.is_set():
                ids = [f"b{batch}-{i}" for i in range(50)]
                records = [
                    {"id": i, "features": {"x": 1.5, "c": "k"}, "prediction": "a"} for i in ids
                ]
                try:
                    response = client.post("/v1/models/m/predictions", json=records)
                except httpx.TransportError:
                    return  # the server is gone; this batch was never acknowledged
                if response.status_code == 202:
                    assert response.json() == {"accepted": 50, "duplicates": 0}
                    acknowledged.extend(ids)
                batch += 1

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 500 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    stop.set()
    sender.join(timeout=10)
    assert len(acknowledged) >= 500, log.read_text()

    restarted = start_server(config, port, log)
    try:
        counts = httpx.get(f"http://127.0.0.1:{port}/v1/models/m").json()["counts"]
        assert counts["predictions"] >= len(acknowledged)
        engine = create_database_engine(database_url)
        with engine.connect() as connection:
            stored = repo.prediction_ids(connection, model="m")
        engine.dispose()
        assert set(acknowledged) <= stored
        again = httpx.post(
            f"http://127.0.0.1:{port}/v1/models/m/predictions",
            json=[{"id": acknowledged[0], "features": {"x": 1, "c": "k"}, "prediction": "b"}],
        )
        assert again.json() == {"accepted": 0, "duplicates": 1}
    finally:
        restarted.terminate()
        restarted.wait(timeout=15)


def test_serve_refuses_an_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text("models: []\nbogus: 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{config}:2: bogus: unknown key" in result.stderr


def test_serve_reads_config_path_from_environment(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MONITOR_CONFIG": str(tmp_path / "absent.yaml")},
    )
    assert result.returncode == 1
    assert f"{tmp_path / 'absent.yaml'}: cannot read file" in result.stderr


@pytest.mark.parametrize("argv", [["monitor"], [sys.executable, "-m", "monitor"]])
def test_version(argv: list[str]) -> None:
    from monitor import __version__

    executable = Path(sys.executable).parent / "monitor"
    command = [str(executable), *argv[1:]] if argv == ["monitor"] else argv
    result = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"drift-monitor {__version__}"
