"""The floor for bench/ingest.py: a bare ASGI endpoint that only reads the body, parses it with
orjson and answers 202, served by uvicorn with the same settings as ``monitor serve``.

Whatever the real service costs above this is validation, storage and framework overhead.

    python bench/floor.py --port 8001
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST`` anything: parse the JSON array, answer 202; ``GET`` anything: 200 (readiness)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["method"] != "POST":
        await _respond(send, 200, b'{"status":"ok"}')
        return
    body = await _read_body(receive)
    try:
        records = orjson.loads(body)
    except orjson.JSONDecodeError:
        await _respond(send, 400, b'{"detail":"body is not valid JSON"}')
        return
    n = len(records) if isinstance(records, list) else 0
    await _respond(send, 202, orjson.dumps({"accepted": n, "duplicates": 0}))


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
