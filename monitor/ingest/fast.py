"""The fast path of ingest: decode and validate a body in one C pass with msgspec.

``FastPredictionDecoder`` builds, from one model's config, a msgspec type whose ``features``
struct has exactly the configured features (typed numeric or categorical, all required, no
others) and decodes a body straight into it. It only ever *accepts*: any body it cannot take
whole (a type error, a missing feature, a naive timestamp, an unknown class...) makes it return
``None``, and the caller runs the complete validator (``validate.RecordValidator``), which is
the one definition of what is valid and reports every problem of the batch. So the fast path
changes speed, never behaviour: whatever it accepts, the complete validator accepts the same way.

Two of its checks look at the batch, not a record: the timestamps' range (their minimum and
maximum, ``monitor.timestamps``), and NUL characters, which a JSON string can only hold
escaped (``\u0000``; a raw control character is invalid JSON), so a body without that escape
has none in any string.
"""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter
from typing import Annotated, Any

import msgspec

from monitor import codec
from monitor import timestamps as times
from monitor.config.schema import MAX_CATEGORY_LENGTH, ModelConfig
from monitor.domain import PredictionBatch
from monitor.ingest.decode import NDJSON_TYPES
from monitor.ingest.validate import (
    MAX_ID_LENGTH,
    MAX_VERSION_LENGTH,
    class_label,
)

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)] | int
_Timestamp = Annotated[datetime, msgspec.Meta(tz=True)] | Annotated[float, msgspec.Meta(ge=0)]
_Category = Annotated[str, msgspec.Meta(max_length=MAX_CATEGORY_LENGTH)] | int | bool | None
_Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Version = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_VERSION_LENGTH)]
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)
_ID = attrgetter("id")
_PREDICTION = attrgetter("prediction")
_SCORES = attrgetter("scores")
_VERSION = attrgetter("model_version")
_TIMESTAMP = attrgetter("timestamp")
_FEATURES = attrgetter("features")
NoneType = type(None)
_ESCAPED_NUL = b"\\u0000"


def _all_of_type(values: list[Any], kind: type) -> bool:
    return set(map(type, values)) <= {kind}


def _first_occurrences(ids: list[str]) -> list[int]:
    seen: set[str] = set()
    keep = []
    for index, record_id in enumerate(ids):
        if record_id not in seen:
            seen.add(record_id)
            keep.append(index)
    return keep


class FastPredictionDecoder:
    def __init__(
        self,
        model: ModelConfig,
        *,
        max_future_seconds: float = times.DEFAULT_MAX_FUTURE_SECONDS,
    ) -> None:
        self._max_future_seconds = max_future_seconds
        fields: list[tuple[str, Any]] = [
            (f.name, float | None if f.type == "numeric" else _Category) for f in model.features
        ]
        # gc=False: these hold scalars (and a str -> float dict), so they can never be part of
        # a cycle; untracked, a batch's structs cost the collector nothing to create and free.
        features = msgspec.defstruct(
            f"{model.name}_features", fields, forbid_unknown_fields=True, gc=False
        )
        self._classification = model.task == "classification"
        prediction: Any = (str | int | bool) if self._classification else float
        record = msgspec.defstruct(
            f"{model.name}_record",
            [
                ("id", _Id),
                ("features", features),
                ("prediction", prediction),
                ("timestamp", _Timestamp | None, None),
                ("scores", dict[str, _Probability] | None, None),
                ("model_version", _Version | None, None),
            ],
            forbid_unknown_fields=True,
            gc=False,
        )
        many: Any = list[record]  # type: ignore[valid-type]
        wrapper = msgspec.defstruct(
            f"{model.name}_batch", [("records", many)], forbid_unknown_fields=True
        )
        self._array: msgspec.json.Decoder[Any] = msgspec.json.Decoder(many)
        self._wrapped: msgspec.json.Decoder[Any] = msgspec.json.Decoder(wrapper)
        self._lines: msgspec.json.Decoder[Any] = msgspec.json.Decoder(record)
        self._classes = frozenset(model.classes or ())

    def predictions(
        self, body: bytes, media_type: str, *, received_at: float
    ) -> PredictionBatch | None:
        """The validated batch, or ``None`` when the complete validator must decide."""
        records: list[Any]
        if _ESCAPED_NUL in body:  # perhaps a NUL in a string (or a "\\u0000" in one)
            return None
        try:
            if media_type in NDJSON_TYPES:
                records = self._lines.decode_lines(body)
            elif body.lstrip()[:1] == b"{":
                records = self._wrapped.decode(body).records
            else:
                records = self._array.decode(body)
        except _DECODE_ERRORS:
            return None
        # Column by column with C-level map/attrgetter: the per-record Python work of a loop
        # cost about as much as the decode itself.
        ids: list[Any] = list(map(_ID, records))
        if not _all_of_type(ids, str):
            ids = [i if type(i) is str else str(i) for i in ids]
        predictions: list[Any] = list(map(_PREDICTION, records))
        classes: list[str | None]
        values: list[float | None]
        if self._classification:
            if not _all_of_type(predictions, str):
                predictions = [class_label(p) for p in predictions]
            if not self._classes.issuperset(predictions):
                return None
            classes, values = predictions, [None] * len(records)
        else:
            classes, values = [None] * len(records), predictions
        score_maps: list[Any] = list(map(_SCORES, records))
        if not _all_of_type(score_maps, NoneType):
            known = self._classes
            for score_map in score_maps:
                if score_map is not None and (
                    not self._classification or not score_map or not known.issuperset(score_map)
                ):
                    return None
        stamps: list[Any] = list(map(_TIMESTAMP, records))
        timestamps = [
            received_at
            if stamp is None
            else stamp.timestamp()
            if type(stamp) is datetime
            else float(stamp)
            for stamp in stamps
        ]
        # (JSON has no NaN, which these comparisons would let through)
        latest = times.latest(now=received_at, max_future_seconds=self._max_future_seconds)
        if timestamps and (min(timestamps) < times.EARLIEST or max(timestamps) > latest):
            return None
        versions: list[str | None] | None = list(map(_VERSION, records))
        if _all_of_type(versions or [], NoneType):
            versions = None
        features = list(map(codec.encode, map(_FEATURES, records)))
        scores = [None if m is None else codec.encode(m) for m in score_maps]
        duplicates = len(ids) - len(set(ids))
        if duplicates:  # the first of each id is kept
            keep = _first_occurrences(ids)
            ids = [ids[i] for i in keep]
            timestamps = [timestamps[i] for i in keep]
            features = [features[i] for i in keep]
            classes = [classes[i] for i in keep]
            values = [values[i] for i in keep]
            scores = [scores[i] for i in keep]
            if versions is not None:
                versions = [versions[i] for i in keep]
        return PredictionBatch(
            ids, timestamps, features, classes, values, scores, duplicates, versions
        )
