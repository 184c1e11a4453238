"""A large body's records, decoded and validated a chunk at a time.

Decoding a whole body at once keeps every parsed record alive together: about five times the
body's size (``tests/test_request_bodies.py`` measures it). Here the decompressed text is cut
into chunks of about ``CHUNK_BYTES`` at record boundaries, and each chunk is decoded and
validated into a ``PredictionBatch`` that the caller stores before the next one is decoded, in
one transaction. So the extra memory of a request is its compressed body, one chunk of text and
one decoded chunk (an NDJSON body is never whole in memory), or, for a JSON array, the
decompressed text plus one chunk. A JSON array is cut without parsing it whole: parsing it
whole keeps an object per element alive, some 57 bytes for an element as short as ``1,``
(28 times the body). A record (an NDJSON line, an element of an array) may be at most
``MAX_RECORD_BYTES``: a parsed record costs up to about 30 times its text.

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
from monitor.errors import (
    MAX_REPORTED_ISSUES,
    InvalidRecordsError,
    PayloadError,
    PayloadTooLargeError,
    RecordIssue,
)
from monitor.ingest.decode import NDJSON_TYPES, decode_records

#: Decompressed bytes of records decoded at a time: a chunk decodes to a few MiB of objects.
CHUNK_BYTES = 256 * 1024
#: The longest record of a large body (an NDJSON line, an element of a JSON array): 413 above.
MAX_RECORD_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete records: NDJSON lines (``media_type`` NDJSON, starting at line ``first_line``
    of the body) or a JSON array of them (``application/json``)."""

    text: bytes
    media_type: str
    first_line: int = 1


_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


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
                if len(buffer) > MAX_RECORD_BYTES:
                    raise PayloadTooLargeError(MAX_RECORD_BYTES, f"line {line} of the NDJSON body")
                break
            if end > MAX_RECORD_BYTES + size:  # one line of the chunk may be too long
                _check_lines(buffer, end, line)
            text = bytes(buffer[:end])
            del buffer[:end]
            yield Chunk(text, media_type, line)
            line += text.count(b"\n")
    if buffer:
        if len(buffer) > MAX_RECORD_BYTES:
            _check_lines(buffer, len(buffer), line)
        yield Chunk(bytes(buffer), media_type, line)


def _check_lines(buffer: bytearray, end: int, first_line: int) -> None:
    start = 0
    line = first_line
    while start < end:
        stop = buffer.find(b"\n", start, end)
        stop = end if stop < 0 else stop + 1
        if stop - start > MAX_RECORD_BYTES:
            raise PayloadTooLargeError(MAX_RECORD_BYTES, f"line {line} of the NDJSON body")
        start = stop
        line += 1


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


_SPACE = b" \t\r\n"
_PLAIN_OPEN = re.compile(rb"[ \t\r\n]*\[")
_WRAPPED_OPEN = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"records"[ \t\r\n]*:[ \t\r\n]*\[')
#: Where one object of an array may end and the next begin (the group is the comma); inside a
#: record this text only occurs in a string. Other elements are cut at any comma.
_OBJECTS = re.compile(rb"\}[ \t\r\n]*(,)[ \t\r\n]*\{")
_COMMA = re.compile(rb"(,)")
#: Cuts tried before a chunk's end is found by scanning its strings (slow, but bounded).
_TRIES = 16


def _array_chunks(body: bytes | bytearray, size: int) -> Iterator[Chunk]:
    """The array's elements, a chunk of about ``size`` bytes at a time, each checked to parse.

    A cut is tried at a comma: if the text before it does not parse as elements, the comma
    was inside a record (a string, a nested value), and a later one is tried. A syntax error
    is reported where it is in the body, as the whole-body decoder would."""
    interior = _array_interior(body)
    if interior is None:
        yield _whole_array(body)
        return
    position, end = interior
    first = True
    while True:
        cut, resume = _cut(body, position, end, size, first=first)
        yield Chunk(b"[" + body[position:cut] + b"]", "application/json")
        if cut == end:
            return
        position, first = resume, False


def _cut(
    body: bytes | bytearray, position: int, end: int, size: int, *, first: bool
) -> tuple[int, int]:
    """(cut, resume): the elements from ``position`` up to ``cut``, the next from ``resume``."""
    look = position + size
    for _ in range(_TRIES):
        if look >= end:
            break
        window = min(end, look + MAX_RECORD_BYTES)
        found = _OBJECTS.search(body, look, window) or _COMMA.search(body, look, window)
        if found is None:
            break
        cut = found.start(1)
        if _parses(body, position, cut, first=first, last=False):
            return cut, cut + 1
        look = cut + 1  # the comma was inside a record (a string, a nested value)
    if end - position <= MAX_RECORD_BYTES + size:
        _parses(body, position, end, first=first, last=True)
        return end, end
    # many commas inside strings: find the last record's end the slow way, over a bounded span
    comma = _last_top_level_comma(body, position, position + MAX_RECORD_BYTES + size)
    if comma is None:
        raise PayloadTooLargeError(MAX_RECORD_BYTES, "a record of the JSON array")
    _parses(body, position, comma, first=first, last=True)
    return comma, comma + 1


def _parses(body: bytes | bytearray, position: int, cut: int, *, first: bool, last: bool) -> bool:
    """Whether ``body[position:cut]`` is whole elements. Raises the body's ``PayloadError``
    where the text is broken before the cut (or anywhere, when it is the ``last`` try)."""
    text = b"[" + body[position:cut] + b"]"
    try:
        count = len(_RAW_ARRAY.decode(text))
    except (msgspec.DecodeError, msgspec.ValidationError):
        fault = _fault(text)
        if fault >= len(text) - 1 and not last:
            return False
        if fault < len(text):
            _raise_at(body, position - 1 + fault, text)
        count = 1  # a form only orjson takes; it decodes the chunk
    if not count and not first:
        raise PayloadError(
            f"body is not valid JSON: no value after the comma at char {position - 1}"
        )
    return True


_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{},"]')


def _last_top_level_comma(body: bytes | bytearray, start: int, stop: int) -> int | None:
    depth = 0
    last = None
    for token in _TOKENS.finditer(body, start, stop):
        first_byte = body[token.start()]
        if first_byte == 0x22:  # '"'
            if token.end() - token.start() == 1:
                break  # a string that goes on past ``stop``
        elif first_byte in (0x5B, 0x7B):  # '[', '{'
            depth += 1
        elif first_byte in (0x5D, 0x7D):  # ']', '}'
            depth -= 1
        elif depth == 0:
            last = token.start()
    return last


def _fault(text: bytes) -> int:
    """Where orjson finds ``text`` broken (its length when it parses)."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return exc.pos
    return len(text)


def _raise_at(body: bytes | bytearray, at: int, text: bytes) -> None:
    """Raise orjson's error for ``text``, placed at ``at`` in the body."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        line = body.count(b"\n", 0, at) + 1
        column = at - (body.rfind(b"\n", 0, at) + 1) + 1
        raise PayloadError(
            f"body is not valid JSON: {exc.msg}: line {line} column {column} (char {at})"
        ) from None


def _array_interior(body: bytes | bytearray) -> tuple[int, int] | None:
    """(start, end) of the text between the brackets of an array of records (plain or
    ``{"records": [...]}``), None when the body does not start as one."""
    plain = _PLAIN_OPEN.match(body)
    opened = plain or _WRAPPED_OPEN.match(body)
    if opened is None:
        return None
    end = _content_end(body)
    if plain is None:
        end = _content_end(body, end - 1) if body[end - 1 : end] == b"}" else -1
    if end <= opened.end() or body[end - 1 : end] != b"]":
        if plain is None:
            raise PayloadError('body must be a JSON array of records or {"records": [...]}')
        raise PayloadError("body is not valid JSON: the array is not closed at its end")
    return opened.end(), end - 1


def _content_end(body: bytes | bytearray, end: int | None = None) -> int:
    """The length of ``body[:end]`` without its trailing JSON whitespace (without copying)."""
    end = len(body) if end is None else end
    while end:
        block = body[max(0, end - 65536) : end]
        kept = len(block.rstrip(_SPACE))
        if kept:
            return end - len(block) + kept
        end -= len(block)
    return 0


def _whole_array(body: bytes | bytearray) -> Chunk:
    """A body that is not an array of records, whose error the whole-body decoder names (or,
    for a form only it takes, its records)."""
    if len(body) > MAX_RECORD_BYTES:
        raise PayloadError('body must be a JSON array of records or {"records": [...]}')
    records = decode_records(bytes(body), "application/json")
    return Chunk(orjson.dumps(records), "application/json")


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
