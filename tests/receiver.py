"""A webhook receiver for tests: an HTTP(S) server on a loopback address that answers from a
script."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLWRyaWZ0LW1vbml0b3I="


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """An HTTP server on ``host`` (127.0.0.1) that answers from a script (then 200) and keeps
    every request it got; with ``tls``, HTTPS, keeping the server name (SNI) of each
    handshake. ``on_request``, when set, is called with each request's headers and body
    before it is answered (in the request's thread): a test moves its clock there to play a
    slow receiver, or runs another sender meanwhile."""

    def __init__(
        self, port: int = 0, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> None:
        self.script: list[Answer] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.server_names: list[str | None] = []
        self.on_request: Callable[[dict[str, str], bytes], None] | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:  # requests may arrive at once (several senders)
                    receiver.requests.append((headers, body))
                    answer = receiver.script.pop(0) if receiver.script else Answer()
                if receiver.on_request is not None:
                    receiver.on_request(headers, body)
                time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        if tls is not None:

            def record(connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
                receiver.server_names.append(name)

            tls.sni_callback = record
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.host = host
        self.scheme = "http" if tls is None else "https"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
