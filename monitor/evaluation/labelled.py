"""Labelled predictions (a prediction joined with its label) as columns, and their stored form.

A model's performance is computed over the labelled predictions of its window. Joining a
million predictions with their labels on every evaluation costs seconds, so the pairs are kept
per time bucket as packed columns (``encode``/``decode``): a window is the concatenation of its
buckets, cut exactly at the window's edges by ``within``. Pure: rows in, arrays out.

Classification stores the predicted and the true class as codes (``classes[i]`` is code ``i``,
int16) and the scores as an ``(n, len(classes))`` float64 matrix with a NaN row where a record
came without scores; regression stores both values as float64.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from monitor import codec

FloatArray = npt.NDArray[np.float64]


class PairRow(NamedTuple):
    """A prediction joined with its label, as the storage layer reads it."""

    prediction_ts: float
    label_ts: float
    predicted: Any
    actual: Any
    scores: bytes | None  # MessagePack-encoded class scores; None without


_HEADER = struct.Struct("<BIH")  # format version, rows, classes (0: regression)
_FORMAT = 1
_NIL = b"\xc0"  # MessagePack nil: a record without scores


@dataclass(frozen=True, slots=True)
class Labelled:
    """Aligned columns of labelled predictions.

    ``predicted``/``actual`` hold class codes (int16) for a classifier and values (float64)
    for a regressor; ``scores`` is None for a regressor.
    """

    prediction_ts: FloatArray
    label_ts: FloatArray
    predicted: npt.NDArray[Any]
    actual: npt.NDArray[Any]
    scores: FloatArray | None

    def __len__(self) -> int:
        return int(self.prediction_ts.size)

    def times(self, *, by_label_time: bool) -> FloatArray:
        return self.label_ts if by_label_time else self.prediction_ts

    def take(self, index: npt.NDArray[Any]) -> Labelled:
        return Labelled(
            self.prediction_ts[index],
            self.label_ts[index],
            self.predicted[index],
            self.actual[index],
            None if self.scores is None else self.scores[index],
        )

    def within(self, start: float, end: float, *, by_label_time: bool) -> Labelled:
        """The pairs whose prediction (or label) time is in ``(start, end]``."""
        times = self.times(by_label_time=by_label_time)
        keep = (times > start) & (times <= end)
        return self if bool(keep.all()) else self.take(keep)

    def complete_scores(self) -> FloatArray | None:
        """The score matrix when every pair has scores, else None."""
        if self.scores is None or not len(self) or bool(np.isnan(self.scores).any()):
            return None
        return self.scores


def empty(n_classes: int) -> Labelled:
    """No pairs; ``n_classes`` 0 for a regressor."""
    times = np.empty(0, dtype=np.float64)
    values = np.empty(0, dtype=np.int16 if n_classes else np.float64)
    scores = np.empty((0, n_classes), dtype=np.float64) if n_classes else None
    return Labelled(times, times, values, values, scores)


def concat(parts: Sequence[Labelled], n_classes: int) -> Labelled:
    """The pairs of every part, in order."""
    parts = [part for part in parts if len(part)]
    if not parts:
        return empty(n_classes)
    if len(parts) == 1:
        return parts[0]
    return Labelled(
        np.concatenate([p.prediction_ts for p in parts]),
        np.concatenate([p.label_ts for p in parts]),
        np.concatenate([p.predicted for p in parts]),
        np.concatenate([p.actual for p in parts]),
        None if not n_classes else np.concatenate([p.scores for p in parts]),
    )


def from_rows(rows: Sequence[PairRow], classes: Sequence[str] | None) -> Labelled:
    """Columns of joined rows; ``classes`` None for a regressor.

    Raises ValueError if a class is not one of ``classes``.

    >>> scores = codec.encode({"a": 0.4, "b": 0.6})
    >>> rows = [(1.0, 5.0, "b", "a", scores), (2.0, 3.0, "a", "a", None)]
    >>> pairs = from_rows(rows, ["a", "b"])
    >>> pairs.predicted.tolist(), pairs.actual.tolist(), pairs.scores.tolist()
    ([1, 0], [0, 0], [[0.4, 0.6], [nan, nan]])
    """
    n = len(rows)
    if not n:
        return empty(len(classes or ()))
    prediction_ts, label_ts, predicted, actual, scores = zip(*rows, strict=True)
    times = (np.fromiter(prediction_ts, np.float64, n), np.fromiter(label_ts, np.float64, n))
    if classes is None:
        return Labelled(
            *times,
            np.fromiter(predicted, np.float64, n),
            np.fromiter(actual, np.float64, n),
            None,
        )
    return Labelled(
        *times,
        _codes(predicted, classes),
        _codes(actual, classes),
        score_rows(scores, classes),
    )


def _codes(labels: Iterable[Any], classes: Sequence[str]) -> npt.NDArray[np.int16]:
    index = {label: code for code, label in enumerate(classes)}
    try:
        return np.fromiter(map(index.__getitem__, labels), dtype=np.int16)
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is not one of the classes {list(classes)}") from None


@functools.lru_cache(maxsize=32)
def _score_decoder(classes: tuple[str, ...]) -> Any:
    names = [f"c{i}" for i in range(len(classes))]
    fields = msgspec.defstruct(
        "StoredScores",
        [(name, float) for name in names],
        rename=dict(zip(names, classes, strict=True)),
        gc=False,
    )
    return codec.decoder(list[fields | None])  # type: ignore[valid-type]


def score_rows(blobs: Sequence[bytes | None], classes: Sequence[str]) -> FloatArray:
    """Stored score objects as an ``(n, len(classes))`` matrix; a NaN row for a record without
    scores, or whose scores do not name every class.

    >>> score_rows([codec.encode({"b": 1, "a": 0}), None], ["a", "b"]).tolist()
    [[0.0, 1.0], [nan, nan]]
    """
    n, k = len(blobs), len(classes)
    matrix = np.full((n, k), np.nan)
    if not n:
        return matrix
    decoder = _score_decoder(tuple(classes))
    stored = [_NIL if blob is None else blob for blob in blobs]
    try:
        decoded = decoder.decode(codec.concat(stored))
    except msgspec.ValidationError:  # a row lacks a class: decode row by row
        decoded = [_decode_one(decoder, blob) for blob in stored]
    present = np.fromiter((row is not None for row in decoded), dtype=bool, count=n)
    rows = [row for row in decoded if row is not None]
    for i in range(k):
        matrix[present, i] = np.fromiter(map(attrgetter(f"c{i}"), rows), np.float64, len(rows))
    return matrix


def _decode_one(decoder: Any, blob: bytes) -> Any:
    try:
        return decoder.decode(codec.concat([blob]))[0]
    except msgspec.ValidationError:
        return None


def encode(pairs: Labelled) -> bytes:
    """Packed little-endian columns: the stored form of a bucket.

    >>> pairs = from_rows([(1.0, 2.0, 3.5, 4.0, None)], None)
    >>> again = decode(encode(pairs))
    >>> again.prediction_ts.tolist(), again.actual.tolist(), again.scores
    ([1.0], [4.0], None)
    """
    k = 0 if pairs.scores is None else pairs.scores.shape[1]
    value_type = "<i2" if k else "<f8"
    parts = [
        _HEADER.pack(_FORMAT, len(pairs), k),
        pairs.prediction_ts.astype("<f8").tobytes(),
        pairs.label_ts.astype("<f8").tobytes(),
        pairs.predicted.astype(value_type).tobytes(),
        pairs.actual.astype(value_type).tobytes(),
    ]
    if pairs.scores is not None:
        parts.append(np.ascontiguousarray(pairs.scores, dtype="<f8").tobytes())
    return b"".join(parts)


def decode(blob: bytes) -> Labelled:
    """The columns ``encode`` packed (read-only views of ``blob``)."""
    version, n, k = _HEADER.unpack_from(blob)
    if version != _FORMAT:
        raise ValueError(f"unknown labelled-columns format {version}")
    offset = _HEADER.size
    columns: list[npt.NDArray[Any]] = []
    for dtype, count in (("<f8", n), ("<f8", n), ("<i2" if k else "<f8", n)):
        columns.append(np.frombuffer(blob, dtype=dtype, count=count, offset=offset))
        offset += columns[-1].nbytes
    actual = np.frombuffer(blob, dtype=columns[-1].dtype, count=n, offset=offset)
    offset += actual.nbytes
    scores = None
    if k:
        scores = np.frombuffer(blob, dtype="<f8", count=n * k, offset=offset).reshape(n, k)
    return Labelled(columns[0], columns[1], columns[2], actual, scores)


def by_bucket(pairs: Labelled, *, bucket: float, by_label_time: bool) -> dict[float, Labelled]:
    """The pairs split by the time bucket (``floor(t / bucket) * bucket``) they fall in.

    >>> pairs = from_rows([(5.0, 70.0, 1.0, 1.0, None), (65.0, 66.0, 2.0, 2.0, None)], None)
    >>> sorted(by_bucket(pairs, bucket=60.0, by_label_time=False))
    [0.0, 60.0]
    >>> sorted(by_bucket(pairs, bucket=60.0, by_label_time=True))
    [60.0]
    """
    if not len(pairs):
        return {}
    starts = np.floor(pairs.times(by_label_time=by_label_time) / bucket) * bucket
    order = np.argsort(starts, kind="stable")
    sorted_starts = starts[order]
    edges = np.flatnonzero(np.diff(sorted_starts)) + 1
    groups = np.split(order, edges)
    return {float(starts[group[0]]): pairs.take(group) for group in groups}
