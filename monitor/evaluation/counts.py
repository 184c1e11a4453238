"""Mergeable counts of one feature over a time bucket: the histogram path's unit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt
import orjson


@dataclass(slots=True)
class Counts:
    """One feature's counts: a grid histogram (numeric) or category counts (categorical)."""

    kind: str
    numeric: npt.NDArray[np.int64] | None
    categories: dict[str, int] | None
    missing: int

    def add(self, other: Counts) -> None:
        self.missing += other.missing
        if self.numeric is not None and other.numeric is not None:
            self.numeric = self.numeric + other.numeric
        if self.categories is not None and other.categories is not None:
            for category, count in other.categories.items():
                self.categories[category] = self.categories.get(category, 0) + count

    def encode(self) -> bytes:
        if self.numeric is not None:
            return self.numeric.astype("<i8").tobytes()
        return msgspec.json.encode(self.categories or {})

    @classmethod
    def decode(cls, kind: str, blob: bytes, missing: int) -> Counts:
        if kind == "numeric":
            return cls(kind, np.frombuffer(blob, dtype="<i8").astype(np.int64), None, missing)
        return cls(kind, None, dict(orjson.loads(blob)), missing)


def merge_into(into: dict[str, Counts], additions: Mapping[str, Counts]) -> None:
    """Add each column's counts to ``into`` (pieces of a window added up)."""
    for name, found in additions.items():
        if name in into:
            into[name].add(found)
        else:
            into[name] = found
