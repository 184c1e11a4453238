"""Read a request body under a size limit, decompressing gzip under a second limit.

The declared ``Content-Length`` is checked before anything is read, and a streamed body is
abandoned as soon as it passes the limit, so an oversized body is never held whole in memory.
``ingest_body`` adds what every record-carrying endpoint checks first (the model exists, the
content type is accepted) and counts each refusal.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from monitor.api.problems import ProblemError
from monitor.errors import PayloadError, PayloadTooLargeError
from monitor.ingest.decode import JSON_TYPES, NDJSON_TYPES

if TYPE_CHECKING:
    from monitor.service import Service

RECORD_TYPES = ("application/json", "application/x-ndjson")
REFERENCE_TYPES = ("application/json", "application/x-ndjson", "text/csv")


class UnsupportedEncodingError(PayloadError):
    pass


async def ingest_body(
    service: Service,
    model: str,
    chunks: AsyncIterator[bytes],
    *,
    content_type: str | None,
    content_length: str | None,
    content_encoding: str | None,
    accepted: tuple[str, ...],
) -> tuple[bytes, str]:
    """The (decompressed) body and its media type; 404, 415, 413 or 400 as a domain or
    problem error, each refusal counted in ``drift_monitor_records_rejected_total``."""
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
    server = service.config.server
    try:
        body = await read_body(
            chunks,
            content_length=content_length,
            content_encoding=content_encoding,
            max_bytes=server.max_body_bytes,
            max_decompressed_bytes=server.max_decompressed_bytes,
        )
    except PayloadTooLargeError:
        service.reject(model, "too_large")
        raise
    except PayloadError:
        service.reject(model, "malformed_body")
        raise
    return body, media_type


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    content_length: str | None,
    content_encoding: str | None,
    max_bytes: int,
    max_decompressed_bytes: int,
) -> bytes:
    if content_length is not None and content_length.isdigit() and int(content_length) > max_bytes:
        raise PayloadTooLargeError(max_bytes)
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise UnsupportedEncodingError(
            f"Content-Encoding {encoding!r} is not supported (use gzip or none)"
        )
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(max_bytes)
        parts.append(chunk)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    if encoding == "identity":
        return body
    return gunzip(body, max_decompressed_bytes=max_decompressed_bytes)


def gunzip(data: bytes, *, max_decompressed_bytes: int) -> bytes:
    """Decompress gzip ``data``, refusing output beyond the limit without producing it."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        output = decompressor.decompress(data, max_decompressed_bytes + 1)
        if len(output) > max_decompressed_bytes or decompressor.unconsumed_tail:
            raise PayloadTooLargeError(max_decompressed_bytes, "decompressed request body")
        if not decompressor.eof:
            raise PayloadError("gzip body is truncated")
    except zlib.error as exc:
        raise PayloadError(f"body is not valid gzip: {exc}") from None
    return output
