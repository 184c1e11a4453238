"""Validate raw records against one model's config, collecting every problem of a batch.

A batch is all or nothing: if any record is invalid, ``InvalidRecordsError`` lists each bad
record's index, field and reason, and nothing is returned to store.

What the databases cannot store is invalid on both alike: a timestamp outside the range of
``monitor.timestamps``, and a NUL character (``\u0000``) in any string that is stored (an id,
a categorical value, a class label), which PostgreSQL's text columns refuse.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import msgspec

from monitor import codec, timestamps
from monitor.config.schema import MAX_CATEGORY_LENGTH, ModelConfig
from monitor.domain import FeatureValue, LabelBatch, PredictionBatch
from monitor.errors import RecordIssue, RecordIssues

_encode = codec.encode

MAX_ID_LENGTH = 256
NUL = "\x00"
NUL_REASON = "must not contain the NUL character (\\u0000)"
_PREDICTION_KEYS = frozenset(
    {"id", "timestamp", "features", "prediction", "scores", "model_version"}
)
#: Longest ``model_version`` a prediction may carry (the stored column's width).
MAX_VERSION_LENGTH = 128
_LABEL_KEYS = frozenset({"id", "timestamp", "label"})
_NUMERIC = 0
_CATEGORICAL = 1


class RecordValidator:
    """Validates prediction, label and reference records for one configured model."""

    def __init__(
        self,
        model: ModelConfig,
        *,
        max_future_seconds: float = timestamps.DEFAULT_MAX_FUTURE_SECONDS,
    ) -> None:
        self.model = model
        self.max_future_seconds = max_future_seconds
        self._kinds = {
            f.name: (_NUMERIC if f.type == "numeric" else _CATEGORICAL) for f in model.features
        }
        self._classes = frozenset(model.classes or ())
        self._classification = model.task == "classification"

    # -- predictions -------------------------------------------------------------------------

    def predictions(self, records: list[Any], *, received_at: float) -> PredictionBatch:
        issues = RecordIssues()
        ids: list[str] = []
        timestamps: list[float] = []
        features: list[bytes] = []
        classes: list[str | None] = []
        values: list[float | None] = []
        scores: list[bytes | None] = []
        versions: list[str | None] = []
        seen: set[str] = set()
        duplicates = 0
        dumps = _encode
        for index, record in enumerate(records):
            checked = self._checked_prediction(record, index, issues, received_at)
            if checked is None:
                continue
            record_id, timestamp, prediction_class, prediction_value = checked
            if record_id in seen:
                duplicates += 1
                continue
            seen.add(record_id)
            ids.append(record_id)
            timestamps.append(timestamp)
            features.append(dumps(record["features"]))
            classes.append(prediction_class)
            values.append(prediction_value)
            score_map = record.get("scores")
            scores.append(None if score_map is None else dumps(score_map))
            versions.append(record.get("model_version"))
        if issues:
            raise issues.error()
        return PredictionBatch(
            ids,
            timestamps,
            features,
            classes,
            values,
            scores,
            duplicates,
            model_versions=versions if any(v is not None for v in versions) else None,
        )

    def _checked_prediction(
        self, record: Any, index: int, issues: RecordIssues, received_at: float
    ) -> tuple[str, float, str | None, float | None] | None:
        """Check every field of one record, adding an issue for each problem."""
        before = len(issues)
        if type(record) is not dict:
            issues.append(RecordIssue(index, "", "must be an object"))
            return None
        for key in sorted(record.keys() - _PREDICTION_KEYS):
            issues.append(RecordIssue(index, str(key), "unknown field"))
        record_id = self._id(record, index, issues)
        timestamp = self._timestamp(record.get("timestamp"), index, issues, received_at)
        self._features(record.get("features"), index, issues)
        prediction_class, prediction_value = self._target(record, "prediction", index, issues)
        score_map = record.get("scores")
        if score_map is not None:
            self._scores(score_map, index, issues)
        version = record.get("model_version")
        if version is not None and not storable_version(version):
            issues.append(
                RecordIssue(
                    index,
                    "model_version",
                    f"must be a string of 1 to {MAX_VERSION_LENGTH} characters (no NUL)",
                )
            )
        if len(issues) != before or record_id is None:
            return None
        return record_id, timestamp, prediction_class, prediction_value

    # -- labels ------------------------------------------------------------------------------

    def labels(self, records: list[Any], *, received_at: float) -> LabelBatch:
        issues = RecordIssues()
        latest: dict[str, tuple[float, str | None, float | None]] = {}
        duplicates = 0
        for index, record in enumerate(records):
            before = len(issues)
            if type(record) is not dict:
                issues.append(RecordIssue(index, "", "must be an object"))
                continue
            for key in sorted(record.keys() - _LABEL_KEYS):
                issues.append(RecordIssue(index, str(key), "unknown field"))
            record_id = self._id(record, index, issues)
            timestamp = self._timestamp(record.get("timestamp"), index, issues, received_at)
            label_class, label_value = self._target(record, "label", index, issues)
            if len(issues) != before or record_id is None:
                continue
            if record_id in latest:
                duplicates += 1  # the later label in the batch wins, as a later batch would
            latest[record_id] = (timestamp, label_class, label_value)
        if issues:
            raise issues.error()
        return LabelBatch(
            ids=list(latest),
            timestamps=[v[0] for v in latest.values()],
            label_classes=[v[1] for v in latest.values()],
            label_values=[v[2] for v in latest.values()],
            duplicates_in_batch=duplicates,
        )

    # -- fields ------------------------------------------------------------------------------

    def _id(self, record: dict[str, Any], index: int, issues: RecordIssues) -> str | None:
        value = record.get("id")
        if type(value) is str:
            if not 0 < len(value) <= MAX_ID_LENGTH:
                issues.append(RecordIssue(index, "id", f"must be 1 to {MAX_ID_LENGTH} characters"))
                return None
            if NUL in value:
                issues.append(RecordIssue(index, "id", NUL_REASON))
                return None
            return value
        if type(value) is int:
            return str(value)
        reason = "is required" if value is None else "must be a string"
        issues.append(RecordIssue(index, "id", reason))
        return None

    def _timestamp(self, value: Any, index: int, issues: RecordIssues, default: float) -> float:
        """The record's time, or ``default`` (the receipt time, the clock's now) when it has
        none. It must lie in ``timestamps``' range, at most ``max_future_seconds`` after
        ``default``."""
        if value is None:
            return default
        seconds = self._seconds(value, index, issues)
        if seconds is None:
            return default
        try:
            return timestamps.check(
                seconds, now=default, max_future_seconds=self.max_future_seconds
            )
        except timestamps.TimestampRangeError as exc:
            issues.append(RecordIssue(index, "timestamp", str(exc)))
            return default

    @staticmethod
    def _seconds(value: Any, index: int, issues: RecordIssues) -> float | None:
        """Unix seconds from an RFC 3339 string with offset or a number (an ``int`` as it
        is: one too large for a float is still compared exactly)."""
        if type(value) is str:
            try:
                # RFC 3339 as the fast path reads it (msgspec): ``fromisoformat`` also took
                # ISO 8601 forms, and ignored whatever followed a NUL
                parsed = msgspec.convert(value, datetime)
            except msgspec.ValidationError:
                parsed = None
            if parsed is None:
                issues.append(
                    RecordIssue(
                        index,
                        "timestamp",
                        "must be an RFC 3339 date-time, e.g. 2024-05-01T12:00:00Z",
                    )
                )
                return None
            if parsed.tzinfo is None:
                issues.append(RecordIssue(index, "timestamp", "needs a UTC offset (Z or +hh:mm)"))
                return None
            return parsed.timestamp()
        if type(value) in (int, float):
            return value  # type: ignore[no-any-return]  # NaN, infinities, range: the caller's
        issues.append(
            RecordIssue(index, "timestamp", "must be an RFC 3339 date-time string or Unix seconds")
        )
        return None

    def _features(self, values: Any, index: int, issues: RecordIssues) -> None:
        if type(values) is not dict:
            reason = "is required" if values is None else "must be an object of feature values"
            issues.append(RecordIssue(index, "features", reason))
            return
        kinds = self._kinds
        known = 0
        for name, value in values.items():
            kind = kinds.get(name)
            if kind is None:
                issues.append(
                    RecordIssue(
                        index, f"features.{name}", f"not a feature of model {self.model.name!r}"
                    )
                )
                continue
            known += 1
            if value is None:
                continue
            kind_of_value = type(value)
            if kind == _NUMERIC:
                if kind_of_value is float or kind_of_value is int:
                    continue
                issues.append(
                    RecordIssue(
                        index, f"features.{name}", "must be a number or null (numeric feature)"
                    )
                )
            elif kind_of_value is str:
                if len(value) > MAX_CATEGORY_LENGTH:
                    issues.append(
                        RecordIssue(
                            index,
                            f"features.{name}",
                            f"longer than {MAX_CATEGORY_LENGTH} characters",
                        )
                    )
                elif NUL in value:
                    issues.append(RecordIssue(index, f"features.{name}", NUL_REASON))
            elif kind_of_value is not int and kind_of_value is not bool:
                issues.append(
                    RecordIssue(
                        index,
                        f"features.{name}",
                        "must be a string, integer, boolean or null (categorical feature)",
                    )
                )
        if known != len(kinds):
            for name in kinds:
                if name not in values:
                    issues.append(
                        RecordIssue(
                            index, f"features.{name}", "is missing (send null for a missing value)"
                        )
                    )

    def _target(
        self, record: dict[str, Any], field: str, index: int, issues: RecordIssues
    ) -> tuple[str | None, float | None]:
        """A prediction or label: a configured class, or a finite number for regression."""
        value = record.get(field)
        if value is None:
            issues.append(RecordIssue(index, field, "is required"))
            return None, None
        if self._classification:
            label = class_label(value)
            if label is not None and NUL in label:
                issues.append(RecordIssue(index, field, NUL_REASON))
                return None, None
            if label is None or label not in self._classes:
                classes = ", ".join(self.model.classes or ())
                issues.append(RecordIssue(index, field, f"must be one of the classes: {classes}"))
                return None, None
            return label, None
        if type(value) in (int, float) and math.isfinite(value):
            return None, float(value)
        issues.append(RecordIssue(index, field, "must be a number (regression model)"))
        return None, None

    def _scores(self, scores: Any, index: int, issues: RecordIssues) -> None:
        if not self._classification:
            issues.append(RecordIssue(index, "scores", "only classification models take scores"))
            return
        if type(scores) is not dict or not scores:
            issues.append(RecordIssue(index, "scores", "must be an object of class: probability"))
            return
        for label, probability in scores.items():
            if label not in self._classes:
                issues.append(RecordIssue(index, f"scores.{label}", "not one of the classes"))
            elif type(probability) not in (int, float) or not 0.0 <= probability <= 1.0:
                issues.append(
                    RecordIssue(index, f"scores.{label}", "must be a probability between 0 and 1")
                )

    def reference_row(
        self, record: Any, index: int, issues: RecordIssues
    ) -> (
        tuple[dict[str, FeatureValue], str | None, float | None, str | None, float | None, Any]
        | None
    ):
        """One reference record: ``features``, optional ``prediction``, ``label``, ``scores``."""
        if type(record) is not dict:
            issues.append(RecordIssue(index, "", "must be an object"))
            return None
        before = len(issues)
        allowed = {"features", "prediction", "label", "scores", "id", "timestamp"}
        for key in sorted(record.keys() - allowed):
            issues.append(RecordIssue(index, str(key), "unknown field"))
        features = record.get("features")
        self._features(features, index, issues)
        prediction: tuple[str | None, float | None] = (None, None)
        label: tuple[str | None, float | None] = (None, None)
        if record.get("prediction") is not None:
            prediction = self._target(record, "prediction", index, issues)
        if record.get("label") is not None:
            label = self._target(record, "label", index, issues)
        scores = record.get("scores")
        if scores is not None:
            self._scores(scores, index, issues)
        if len(issues) != before:
            return None
        assert isinstance(features, dict)
        return features, prediction[0], prediction[1], label[0], label[1], scores


def class_label(value: Any) -> str | None:
    """Map a JSON scalar to the string a class label is compared as (see config.schema)."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    return None


def storable_version(version: object) -> bool:
    """Whether a record can carry ``version`` as its ``model_version``: a string of 1 to
    ``MAX_VERSION_LENGTH`` characters without NUL."""
    return type(version) is str and 0 < len(version) <= MAX_VERSION_LENGTH and NUL not in version
