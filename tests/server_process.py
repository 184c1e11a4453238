"""Run ``monitor serve`` as a real process for the tests that need one, and give replicas a
PostgreSQL schema of their own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import create_engine, text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    config: Path,
    port: int,
    log: Path,
    *,
    wait_for: str = "/readyz",
    database_url: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``monitor serve`` and return once ``wait_for`` answers 200: ``/readyz`` (the
    database reached), or ``/healthz`` for a server that may be still without it. The
    database is the config's, or ``database_url`` (as ``MONITOR_DATABASE_URL``)."""
    env = {**os.environ}
    env.pop("MONITOR_DATABASE_URL", None)  # the config's SQLite file, whatever the caller has
    if database_url is not None:
        env["MONITOR_DATABASE_URL"] = database_url
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{wait_for}", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait(timeout=10)
    raise AssertionError(f"server did not answer {wait_for}:\n{log.read_text()}")


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh schema on the PostgreSQL database of ``base_url``: the URL whose connections use
    it (``search_path`` in the options), dropped with everything in it on exit."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    options = quote(f"-csearch_path={schema}")
    try:
        yield f"{base_url}{'&' if '?' in base_url else '?'}options={options}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
