"""Read a request body under a size limit, decompressing gzip under a second limit.

The declared ``Content-Length`` is checked before anything is read, and a streamed body is
abandoned as soon as it passes the limit, so an oversized body is never held whole in memory.
"""

from __future__ import annotations

import zlib

from starlette.requests import Request

from monitor.errors import PayloadError, PayloadTooLargeError


class UnsupportedEncodingError(PayloadError):
    pass


async def read_body(request: Request, *, max_bytes: int, max_decompressed_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(max_bytes)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise UnsupportedEncodingError(
            f"Content-Encoding {encoding!r} is not supported (use gzip or none)"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(max_bytes)
        chunks.append(chunk)
    body = b"".join(chunks)
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
