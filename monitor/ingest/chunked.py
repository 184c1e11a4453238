"""A large body's records, decoded and validated a chunk at a time.

Decoding a whole body at once keeps every parsed record alive together: about five times the
body's size (``tests/test_request_bodies.py`` measures it). Here the decompressed text is cut
into chunks of about ``CHUNK_BYTES`` at record boundaries, and each chunk is decoded and
validated into a ``PredictionBatch`` that the caller stores before the next one is decoded, in
one transaction. So the extra memory of a request is its compressed body, one chunk of text and
one decoded chunk (an NDJSON body is never whole in memory), or, for a JSON array, which cannot
be cut before it is parsed, the decompressed text plus one chunk.

The batches are the same as one decode of the whole body would give, and so are the errors:
record indices and NDJSON line numbers count from the start of the body, and every invalid
record of every chunk is reported (``InvalidRecordsError``, raised after the last chunk).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import orjson

from monitor.domain import LabelBatch, PredictionBatch
from monitor.errors import MAX_REPORTED_ISSUES, InvalidRecordsError, RecordIssue
from monitor.ingest.decode import NDJSON_TYPES, decode_records

#: Decompressed bytes of records decoded at a time: a chunk decodes to a few MiB of objects.
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete records: NDJSON lines (``media_type`` NDJSON, starting at line ``first_line``
    of the body) or a JSON array of them (``application/json``)."""

    text: bytes
    media_type: str
    first_line: int = 1


class _Wrapped(msgspec.Struct, forbid_unknown_fields=True):
    records: list[msgspec.Raw]


_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_WRAPPED = msgspec.json.Decoder(_Wrapped)


def record_chunks(
    pieces: Iterable[bytes], media_type: str, *, chunk_bytes: int | None = None
) -> Iterator[Chunk]:
    """Cut the decompressed ``pieces`` of a body into chunks of whole records, in order."""
    size = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    if media_type in NDJSON_TYPES:
        yield from _ndjson_chunks(pieces, media_type, size)
    else:
        yield from _array_chunks(_whole(pieces), size)


def _ndjson_chunks(pieces: Iterable[bytes], media_type: str, size: int) -> Iterator[Chunk]:
    buffer = bytearray()
    line = 1
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            # the last line end within the chunk size, else the first after it (a long line)
            end = buffer.rfind(b"\n", 0, size) + 1 or buffer.find(b"\n", size) + 1
            if end == 0:  # a line longer than a chunk: it waits for its end
                break
            text = bytes(buffer[:end])
            del buffer[:end]
            yield Chunk(text, media_type, line)
            line += text.count(b"\n")
    if buffer:
        yield Chunk(bytes(buffer), media_type, line)


def _whole(pieces: Iterable[bytes]) -> bytes | bytearray:
    """The pieces as one buffer, grown in place: joining a list of them would hold the body
    twice."""
    body: bytes | bytearray = b""
    for piece in pieces:
        if not body:
            body = piece
            continue
        if isinstance(body, bytes):
            body = bytearray(body)
        body += piece
    return body


_LEADING_SPACE = re.compile(rb"\s*")


def _array_chunks(body: bytes | bytearray, size: int) -> Iterator[Chunk]:
    start = _LEADING_SPACE.match(body).end()  # type: ignore[union-attr]
    wrapped = body[start : start + 1] == b"{"
    try:
        raws = _RAW_WRAPPED.decode(body).records if wrapped else _RAW_ARRAY.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # not an array of records (or a form only orjson takes): the whole-body decoder
        # raises its PayloadError, or gives the records
        records = decode_records(bytes(body), "application/json")
        yield Chunk(orjson.dumps(records), "application/json")
        return
    group: list[msgspec.Raw] = []
    group_size = 0
    for raw in raws:
        group.append(raw)
        group_size += len(raw)
        if group_size >= size:
            yield _array_chunk(group)
            group, group_size = [], 0
    if group or not raws:
        yield _array_chunk(group)


def _array_chunk(raws: list[msgspec.Raw]) -> Chunk:
    return Chunk(b"[" + b",".join(raws) + b"]", "application/json")


B = TypeVar("B", PredictionBatch, LabelBatch)


def validated_batches(
    chunks: Iterable[Chunk],
    *,
    validate: Callable[[list[Any]], B],
    fast: Callable[[bytes, str], B | None] | None = None,
) -> Iterator[B]:
    """Each chunk's validated batch, in order, until a chunk has an invalid record; then the
    remaining chunks are only validated, and ``InvalidRecordsError`` names every invalid
    record of the body. ``fast`` is a fast path (None: let ``validate`` decide)."""
    issues: list[RecordIssue] = []  # the first MAX_REPORTED_ISSUES of the body
    invalid = omitted = 0
    offset = 0  # records in the chunks before this one
    for chunk in chunks:
        batch = None if fast is None else fast(chunk.text, chunk.media_type)
        if batch is not None:
            count = len(batch) + batch.duplicates_in_batch
        else:
            records = decode_records(chunk.text, chunk.media_type, first_line=chunk.first_line)
            count = len(records)
            try:
                batch = validate(records)
            except InvalidRecordsError as exc:
                room = MAX_REPORTED_ISSUES - len(issues)
                issues.extend(
                    RecordIssue(i.index + offset, i.field, i.reason) for i in exc.issues[:room]
                )
                invalid += exc.records
                omitted += exc.omitted + max(0, len(exc.issues) - room)
            del records
        if not invalid and batch is not None:
            yield batch
        batch = None
        offset += count
    if invalid:
        raise InvalidRecordsError(issues, records=invalid, omitted=omitted)
