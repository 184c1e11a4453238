"""Decode a body into a list of raw records: a JSON array, ``{"records": [...]}``, or NDJSON."""

from __future__ import annotations

from typing import Any

import orjson

from monitor.errors import PayloadError

NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
JSON_TYPES = frozenset({"application/json"})


def decode_records(body: bytes, media_type: str) -> list[Any]:
    """Return the records of ``body``; raise ``PayloadError`` saying where the syntax breaks.

    >>> decode_records(b'[{"id": "a"}]', "application/json")
    [{'id': 'a'}]
    >>> decode_records(b'{"id": "a"}\\n\\n{"id": "b"}\\n', "application/x-ndjson")
    [{'id': 'a'}, {'id': 'b'}]
    """
    if media_type in NDJSON_TYPES:
        return _decode_ndjson(body)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    if isinstance(data, dict) and set(data) == {"records"}:
        data = data["records"]
    if not isinstance(data, list):
        raise PayloadError('body must be a JSON array of records or {"records": [...]}')
    return data


def _decode_ndjson(body: bytes) -> list[Any]:
    records = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise PayloadError(
                f"line {number} of the NDJSON body is not valid JSON: {exc}"
            ) from None
    return records
