"""The fast path of ingest: decode and validate a body in one C pass with msgspec.

``FastPredictionDecoder`` builds, from one model's config, a msgspec type whose ``features``
struct has exactly the configured features (typed numeric or categorical, all required, no
others) and decodes a body straight into it. It only ever *accepts*: any body it cannot take
whole (a type error, a missing feature, a naive timestamp, an unknown class...) makes it return
``None``, and the caller runs the complete validator (``validate.RecordValidator``), which is
the one definition of what is valid and reports every problem of the batch. So the fast path
changes speed, never behaviour: whatever it accepts, the complete validator accepts the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from monitor import codec
from monitor.config.schema import ModelConfig
from monitor.domain import PredictionBatch
from monitor.ingest.decode import NDJSON_TYPES
from monitor.ingest.validate import MAX_CATEGORY_LENGTH, MAX_ID_LENGTH, class_label

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)] | int
_Timestamp = Annotated[datetime, msgspec.Meta(tz=True)] | Annotated[float, msgspec.Meta(ge=0)]
_Category = Annotated[str, msgspec.Meta(max_length=MAX_CATEGORY_LENGTH)] | int | bool | None
_Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)


class FastPredictionDecoder:
    def __init__(self, model: ModelConfig) -> None:
        fields: list[tuple[str, Any]] = [
            (f.name, float | None if f.type == "numeric" else _Category) for f in model.features
        ]
        features = msgspec.defstruct(f"{model.name}_features", fields, forbid_unknown_fields=True)
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
            ],
            forbid_unknown_fields=True,
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
        try:
            if media_type in NDJSON_TYPES:
                records = self._lines.decode_lines(body)
            elif body.lstrip()[:1] == b"{":
                records = self._wrapped.decode(body).records
            else:
                records = self._array.decode(body)
        except _DECODE_ERRORS:
            return None
        ids: list[str] = []
        timestamps: list[float] = []
        features: list[bytes] = []
        classes: list[str | None] = []
        values: list[float | None] = []
        scores: list[bytes | None] = []
        seen: set[str] = set()
        duplicates = 0
        encode = codec.encode
        known = self._classes
        classification = self._classification
        for record in records:
            record_id = record.id if type(record.id) is str else str(record.id)
            label = class_label(record.prediction) if classification else None
            if classification and label not in known:
                return None
            score_map = record.scores
            if score_map is not None and (
                not classification or not score_map or not known.issuperset(score_map)
            ):
                return None
            if record_id in seen:
                duplicates += 1
                continue
            seen.add(record_id)
            ids.append(record_id)
            stamp = record.timestamp
            if stamp is None:
                timestamps.append(received_at)
            elif type(stamp) is datetime:
                timestamps.append(stamp.timestamp())
            else:
                timestamps.append(float(stamp))
            features.append(encode(record.features))
            classes.append(label)
            values.append(None if classification else record.prediction)
            scores.append(None if score_map is None else encode(score_map))
        return PredictionBatch(ids, timestamps, features, classes, values, scores, duplicates)
