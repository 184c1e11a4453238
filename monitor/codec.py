"""The stored form of a record's feature values and class scores: a MessagePack map.

Every prediction and reference row keeps its feature object (and its score object, when sent)
as one MessagePack map from name to value. Compared with JSON text it is about half the size
(a float is 9 bytes, not up to 24 characters), so inserts write fewer pages, and reading a
window back decodes floats without parsing text. Schema version 7 converted rows stored as JSON
before that (see ``storage.migrations``).

>>> blob = encode({"age": 41.5, "country": "DE", "income": None})
>>> decode(blob)
{'age': 41.5, 'country': 'DE', 'income': None}
>>> decode(concat([encode({"a": 1}), encode({"a": 2})]))
[{'a': 1}, {'a': 2}]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

#: Encode a feature or score object (a dict or a msgspec Struct; values are None, bool, int
#: within 64 bits, float or str).
encode = msgspec.msgpack.Encoder().encode

_decode = msgspec.msgpack.Decoder().decode


def decode(blob: bytes) -> Any:
    """One stored object (or a ``concat`` of several) as plain Python values."""
    return _decode(blob)


def decoder(kind: Any) -> msgspec.msgpack.Decoder[Any]:
    """A decoder of stored objects into ``kind`` (a Struct, or ``list`` of one for ``concat``)."""
    return msgspec.msgpack.Decoder(kind)


def concat(blobs: Sequence[bytes]) -> bytes:
    """The stored objects as one MessagePack array, so one decode call reads them all."""
    n = len(blobs)
    if n < 16:
        head = bytes((0x90 | n,))
    elif n < 1 << 16:
        head = b"\xdc" + n.to_bytes(2, "big")
    else:
        head = b"\xdd" + n.to_bytes(4, "big")
    return head + b"".join(blobs)


def is_json(blob: bytes) -> bool:
    """Whether a stored object is JSON text from before schema version 7: a JSON object starts
    with ``{`` (0x7b), which as MessagePack is the integer 123, never a map."""
    return blob[:1] == b"{"
