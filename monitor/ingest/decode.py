"""Decode a body into raw records: a JSON array, ``{"records": [...]}``, or NDJSON.

``decode_records`` returns them all at once; ``iter_records`` one at a time, for a large body
(a reference upload) whose parsed records would otherwise all be alive together.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import msgspec
import orjson

from monitor.errors import PayloadError

NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
JSON_TYPES = frozenset({"application/json"})


def decode_records(body: bytes, media_type: str, *, first_line: int = 1) -> list[Any]:
    """Return the records of ``body``; raise ``PayloadError`` saying where the syntax breaks
    (an NDJSON line is numbered from ``first_line``: a chunk of a larger body counts on).

    >>> decode_records(b'[{"id": "a"}]', "application/json")
    [{'id': 'a'}]
    >>> decode_records(b'{"id": "a"}\\n\\n{"id": "b"}\\n', "application/x-ndjson")
    [{'id': 'a'}, {'id': 'b'}]
    """
    if media_type in NDJSON_TYPES:
        return list(_iter_ndjson(body, first_line))
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    if isinstance(data, dict) and set(data) == {"records"}:
        data = data["records"]
    if not isinstance(data, list):
        raise PayloadError('body must be a JSON array of records or {"records": [...]}')
    return data


def _iter_ndjson(body: bytes, first_line: int = 1) -> Iterator[Any]:
    for number, line in enumerate(io.BytesIO(body), start=first_line):  # no copy of the body
        if not line.strip():
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(
                f"line {number} of the NDJSON body is not valid JSON: {exc}"
            ) from None


class _Wrapped(msgspec.Struct, forbid_unknown_fields=True):
    records: list[msgspec.Raw]


_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_WRAPPED = msgspec.json.Decoder(_Wrapped)


def iter_records(body: bytes, media_type: str) -> Iterator[Any]:
    """The records of ``body`` one by one, as ``decode_records`` would give them. The body's
    syntax is checked whole before the first record (the same ``PayloadError``), and each
    record is parsed only when it is reached.

    >>> list(iter_records(b'{"records": [{"id": 1}, [2]]}', "application/json"))
    [{'id': 1}, [2]]
    """
    if media_type in NDJSON_TYPES:
        yield from _iter_ndjson(body)
        return
    try:
        stripped = body.lstrip()
        raws = (
            _RAW_WRAPPED.decode(body).records if stripped[:1] == b"{" else _RAW_ARRAY.decode(body)
        )
    except (msgspec.DecodeError, msgspec.ValidationError):
        yield from decode_records(body, media_type)  # its error, or its records
        return
    for raw in raws:
        yield orjson.loads(memoryview(raw))
