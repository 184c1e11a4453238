"""A request body as received, and its decompressed bytes: whole or a piece at a time.

A gzip body may hold several members one after the other (``cat a.gz b.gz``, RFC 1952 2.2):
every member is read, and the decompressed limit applies to all of them together. Bytes after
the last member that do not start another one make the body malformed, never silently dropped.

>>> import gzip
>>> inflate(gzip.compress(b"a\\n") + gzip.compress(b"b\\n"), max_bytes=100)
b'a\\nb\\n'
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from monitor.errors import PayloadError, PayloadTooLargeError

#: Compressed bytes handed to zlib per call, so that a call's output stays near the piece size.
_INPUT_BYTES = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
#: Decompressed bytes per piece when a body is read a piece at a time.
PIECE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Payload:
    """A body as it arrived: its bytes, media type and content coding (``gzip`` or
    ``identity``), with the decompressed limit it is read under."""

    data: bytes
    media_type: str
    encoding: Literal["identity", "gzip"]
    max_decompressed_bytes: int

    def pieces(self, *, piece_bytes: int = PIECE_BYTES) -> Iterator[bytes]:
        """The decompressed body, at most ``piece_bytes`` at a time. Raises ``PayloadError``
        (or ``PayloadTooLargeError``) when the reading reaches the fault, after the pieces
        before it."""
        if self.encoding == "identity":
            yield self.data
            return
        yield from inflate_pieces(
            self.data, max_bytes=self.max_decompressed_bytes, piece_bytes=piece_bytes
        )

    def decompressed(self) -> bytes:
        if self.encoding == "identity":
            return self.data
        return inflate(self.data, max_bytes=self.max_decompressed_bytes)

    def small(self, limit: int) -> bytes | None:
        """The decompressed body when it is at most ``limit`` bytes, else None. Decompresses
        at most ``limit + 1`` bytes, so a large body costs nothing here."""
        if self.encoding == "identity":
            return self.data if len(self.data) <= limit else None
        if limit >= self.max_decompressed_bytes:
            return self.decompressed()
        parts: list[bytes] = []
        size = 0
        for piece in inflate_pieces(self.data, max_bytes=limit, piece_bytes=limit + 1, lax=True):
            size += len(piece)
            if size > limit:
                return None
            parts.append(piece)
        return b"".join(parts)


def inflate(data: bytes, *, max_bytes: int) -> bytes:
    """Every member of gzip ``data`` decompressed; ``PayloadTooLargeError`` past ``max_bytes``
    (without producing more than ``max_bytes + 1`` bytes), ``PayloadError`` when it is not
    gzip, is truncated, or has other bytes after its last member."""
    return b"".join(inflate_pieces(data, max_bytes=max_bytes, piece_bytes=max_bytes + 1))


def inflate_pieces(
    data: bytes, *, max_bytes: int, piece_bytes: int, lax: bool = False
) -> Iterator[bytes]:
    """``inflate`` a piece (at most ``piece_bytes``) at a time. With ``lax``, output past
    ``max_bytes`` ends the pieces instead of raising (the caller only wants to know)."""
    view = memoryview(data)
    start = 0
    produced = 0
    try:
        while True:  # one gzip member per round
            member = zlib.decompressobj(16 + zlib.MAX_WBITS)
            position = start
            while not member.eof:
                if position >= len(view):
                    raise PayloadError("gzip body is truncated")
                pending: bytes | memoryview = view[position : position + _INPUT_BYTES]
                position += len(pending)
                while True:
                    out = member.decompress(pending, piece_bytes)
                    produced += len(out)
                    if produced > max_bytes:
                        if lax:
                            yield out
                            return
                        raise PayloadTooLargeError(max_bytes, "decompressed request body")
                    if out:
                        yield out
                    pending = member.unconsumed_tail
                    # a full piece may leave output inside zlib even with no input left
                    if member.eof or (not pending and len(out) < piece_bytes):
                        break
            start = position - len(member.unused_data)
            if start >= len(view):
                return
            if view[start : start + 2] != _GZIP_MAGIC:
                raise PayloadError(
                    f"body has {len(view) - start} bytes after the end of its gzip data"
                )
    except zlib.error as exc:
        raise PayloadError(f"body is not valid gzip: {exc}") from None
