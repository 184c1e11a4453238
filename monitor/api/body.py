"""Receive a request body under a size limit and a time limit.

- **Size** (``server.max_body_bytes``): the declared ``Content-Length`` is checked before
  anything is read, and a streamed body is given up as soon as it passes the limit, so an
  oversized body is never held whole in memory. Before the 413 is sent, the rest of the body is
  read and discarded, up to ``DISCARD_FACTOR`` times the limit in all (a lingering close): a
  client that writes its whole body before it reads the answer (urllib, requests) would
  otherwise have its connection reset under it and never see the 413. A client that sent
  ``Expect: 100-continue`` has sent nothing yet and is answered at once.
- **Time** (``server.body_timeout``): the whole body, discarded part included, must arrive
  within it from the start of the request; otherwise 408 and the connection is closed, so a
  slow or short body (less than its ``Content-Length``) cannot hold a connection for ever.
- **Coding**: ``gzip`` (any number of members, ``ingest.payload``) or none; any other
  ``Content-Encoding`` is 415.

``ingest_body`` adds what every record-carrying endpoint checks first (the model exists, the
content type is accepted) and counts each refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal

from starlette.requests import ClientDisconnect

from monitor.api.problems import ProblemError
from monitor.errors import PayloadError, PayloadTooLargeError
from monitor.ingest.decode import JSON_TYPES, NDJSON_TYPES
from monitor.ingest.payload import Payload

if TYPE_CHECKING:
    from monitor.service import Service

RECORD_TYPES = ("application/json", "application/x-ndjson")
REFERENCE_TYPES = ("application/json", "application/x-ndjson", "text/csv")
#: A body over the limit is read and discarded up to this many times the limit in all.
DISCARD_FACTOR = 4
#: A body decompressing to more than this is large: stored a chunk at a time, in a slot.
LARGE_BODY_BYTES = 1024 * 1024
_CODINGS: dict[str, Literal["identity", "gzip"]] = {
    "": "identity",
    "identity": "identity",
    "gzip": "gzip",
    "x-gzip": "gzip",
}


async def ingest_body(
    service: Service,
    model: str,
    chunks: AsyncIterator[bytes],
    *,
    content_type: str | None,
    content_length: str | None,
    content_encoding: str | None,
    expect: str | None,
    accepted: tuple[str, ...],
) -> Payload:
    """The body as received, with its media type; 404, 415, 413, 408 or 400 as a domain or
    problem error, each refusal of a body counted in ``drift_monitor_records_rejected_total``."""
    service.model(model)  # 404 before reading a byte of the body
    media_type = (content_type or "").split(";")[0].strip().lower()
    known = JSON_TYPES | NDJSON_TYPES | ({"text/csv"} if "text/csv" in accepted else set())
    if media_type not in known:
        service.reject(model, "unsupported_media_type")
        raise ProblemError(
            415,
            "Unsupported Media Type",
            f"Content-Type {media_type or '(none)'!r} is not accepted; "
            f"send one of {', '.join(accepted)}",
            kind="unsupported-media-type",
        )
    try:
        encoding = content_coding(content_encoding)
    except ProblemError:
        service.reject(model, "unsupported_media_type")
        raise
    server = service.config.server
    try:
        data = await receive_body(
            chunks,
            content_length=content_length,
            expect=expect,
            max_bytes=server.max_body_bytes,
            timeout_seconds=server.body_timeout.total_seconds(),
        )
    except PayloadTooLargeError:
        service.reject(model, "too_large")
        raise
    return Payload(data, media_type, encoding, server.max_decompressed_bytes)


def content_coding(content_encoding: str | None) -> Literal["identity", "gzip"]:
    """The coding a ``Content-Encoding`` value names (repeated fields joined with ``", "``, as
    RFC 9110 5.3 makes them one list: see ``header_value``); 415 for any other."""
    encoding = _CODINGS.get((content_encoding or "").strip().lower())
    if encoding is None:
        raise ProblemError(
            415,
            "Unsupported Media Type",
            f"Content-Encoding {content_encoding!r} is not supported (send gzip or no encoding)",
            kind="unsupported-encoding",
        )
    return encoding


def header_value(values: list[str]) -> str | None:
    """One header's fields as one value (a list joined with ``", "``), None when absent."""
    return ", ".join(values) if values else None


def small_body(service: Service, model: str, payload: Payload) -> bytes | None:
    """The decompressed body when it is at most ``LARGE_BODY_BYTES``, else None (a large
    body); a malformed gzip body is counted and raised."""
    try:
        return payload.small(LARGE_BODY_BYTES)
    except PayloadError:
        service.reject(model, "malformed_body")
        raise


def decompressed_body(service: Service, model: str, payload: Payload) -> bytes:
    """The whole decompressed body; a malformed or too large one is counted and raised."""
    try:
        return payload.decompressed()
    except PayloadTooLargeError:
        service.reject(model, "too_large")
        raise
    except PayloadError:
        service.reject(model, "malformed_body")
        raise


async def receive_body(
    chunks: AsyncIterator[bytes],
    *,
    content_length: str | None,
    expect: str | None,
    max_bytes: int,
    timeout_seconds: float,
) -> bytes:
    """The body's bytes; ``PayloadTooLargeError`` past ``max_bytes``, after discarding the
    rest of the body as the module says; ``ProblemError`` 408 past ``timeout_seconds``."""
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    declared = int(content_length) if content_length and content_length.isdigit() else None
    discard_limit = DISCARD_FACTOR * max_bytes
    if declared is not None and declared > max_bytes:
        continuing = (expect or "").strip().lower() == "100-continue"
        if not continuing and declared <= discard_limit:
            await _discard(chunks, deadline=deadline, limit=discard_limit)
        raise PayloadTooLargeError(max_bytes)
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    parts.clear()
                    break
                parts.append(chunk)
    except TimeoutError:
        raise body_timeout(timeout_seconds) from None
    if size > max_bytes:
        await _discard(chunks, deadline=deadline, limit=discard_limit - size)
        raise PayloadTooLargeError(max_bytes)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _discard(chunks: AsyncIterator[bytes], *, deadline: float, limit: int) -> None:
    """Read and drop up to ``limit`` more bytes of the body, until ``deadline``."""
    dropped = 0
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in chunks:
                dropped += len(chunk)
                if dropped >= limit:
                    return
    except (TimeoutError, ClientDisconnect):
        return  # the 413 goes out all the same; the connection is closed after it


def body_timeout(seconds: float) -> ProblemError:
    return ProblemError(
        408,
        "Request Timeout",
        f"the request body was not received within {seconds:g} seconds",
        kind="body-timeout",
        headers={"Connection": "close"},
    )
