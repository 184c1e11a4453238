"""Request bodies against a real ``monitor serve``: every client reads the 413 of an oversize
body (no connection reset), and a short body is answered 408 once the body timeout passes."""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import free_port, start_server

CONFIG = """
server: {host: 127.0.0.1, port: 1, max_body_bytes: 1048576, body_timeout: 1s}
storage: {url: "sqlite:///%s"}
models:
  - name: m
    task: classification
    classes: [a, b]
    features:
      - {name: x, type: numeric}
"""
REPEAT = 20
OVERSIZE = b"[" + b" " * 1_600_000 + b"]"  # 1.6 MB, over the 1 MiB limit


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("serve-bodies")
    config = directory / "monitor.yaml"
    config.write_text(CONFIG % (directory / "monitor.db"))
    port = free_port()
    process = start_server(config, port, directory / "server.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


PATH = "/v1/models/m/predictions"


def test_urllib_reads_the_413(server: str) -> None:
    statuses = []
    for _ in range(REPEAT):
        request = urllib.request.Request(
            server + PATH, data=OVERSIZE, headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=10)
        statuses.append(raised.value.code)
        assert raised.value.headers["Content-Type"] == "application/problem+json"
    assert statuses == [413] * REPEAT


def test_requests_reads_the_413(server: str) -> None:
    requests = pytest.importorskip("requests")
    statuses = [
        requests.post(
            server + PATH, data=OVERSIZE, headers={"Content-Type": "application/json"}, timeout=10
        ).status_code
        for _ in range(REPEAT)
    ]
    assert statuses == [413] * REPEAT


def test_httpx_reads_the_413_declared_or_chunked(server: str) -> None:
    def chunked() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for start in range(0, len(OVERSIZE), 65536):
            yield OVERSIZE[start : start + 65536]

    with httpx.Client(base_url=server, timeout=10) as client:
        declared = [
            client.post(PATH, content=OVERSIZE, headers={"content-type": "application/json"})
            for _ in range(REPEAT)
        ]
        streamed = [
            client.post(PATH, content=chunked(), headers={"content-type": "application/json"})
            for _ in range(REPEAT)
        ]
    assert [r.status_code for r in declared + streamed] == [413] * (2 * REPEAT)
    assert declared[0].json()["limit_bytes"] == 1048576


@pytest.mark.parametrize("expect", ["100-continue", ""])  # curl's default, and without it
def test_curl_reads_the_413(server: str, tmp_path: Path, expect: str) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(OVERSIZE)
    statuses = []
    for _ in range(REPEAT):
        done = subprocess.run(
            [
                "curl",
                "--silent",
                "--show-error",
                "--output",
                "/dev/null",
                "--write-out",
                "%{http_code}",
                "--header",
                "Content-Type: application/json",
                "--header",
                f"Expect: {expect}",
                "--data-binary",
                f"@{body}",
                server + PATH,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        statuses.append(done.stdout)
    assert statuses == ["413"] * REPEAT


def test_a_short_body_is_answered_408_and_closed(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(
            b"POST /v1/models/m/predictions HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{"id": '
        )
        received = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"content-type: application/problem+json" in head.lower()
    assert b"the request body was not received within 1 seconds" in body
