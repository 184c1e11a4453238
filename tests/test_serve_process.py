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


def test_pending_webhook_deliveries_survive_sigkill(database_url: str, tmp_path: Path) -> None:
    """Events queued while the receiver is down are still delivered, signed, after the server
    is killed with SIGKILL and started again."""
    import standardwebhooks
    from receiver import SECRET, Receiver

    hook_port = free_port()  # nobody listens there until the receiver starts
    config = tmp_path / "monitor.yaml"
    config.write_text(
        CONFIG % database_url
        + "webhooks:\n"
        + f'  - {{name: hook, url: "http://127.0.0.1:{hook_port}/hook", secret: "{SECRET}",'
        + " allow_private: true, timeout: 1s}\n"
    )
    log = tmp_path / "server.log"
    port = free_port()
    process = start_server(config, port, log)
    base = f"http://127.0.0.1:{port}"
    event_ids = [httpx.post(f"{base}/v1/webhooks/hook/test").json()["event_id"] for _ in range(3)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # tried at least once, and failed: the receiver is down
        pending = httpx.get(f"{base}/v1/deliveries", params={"status": "pending"}).json()
        if len(pending) == 3 and all(d["attempts"] >= 1 for d in pending):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(log.read_text())
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    receiver = Receiver(hook_port)
    restarted = start_server(config, port, log)
    try:
        # a delivery claimed at the kill is taken again once its lease ends: 3 x timeout + 30 s
        deadline = time.monotonic() + 60
        while len(receiver.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = [standardwebhooks.Webhook(SECRET).verify(b, h)["id"] for h, b in receiver.requests]
        assert sorted(seen) == sorted(event_ids), log.read_text()
    finally:
        restarted.terminate()
        restarted.wait(timeout=15)
        receiver.stop()
