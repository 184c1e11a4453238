"""Wire schemas: what the API documents and answers. Mapped from domain values here only.

Every time is answered as an RFC 3339 date-time in UTC (``DateTime``, written by
``monitor.timestamps``), never as Unix seconds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from monitor import timestamps
from monitor.config import ModelConfig, format_duration
from monitor.domain import ModelCounts, ReferenceInfo
from monitor.ingest.validate import MAX_VERSION_LENGTH
from monitor.storage.alerts import HistoryEntry
from monitor.storage.alerts import Stored as StoredAlert
from monitor.storage.deliveries import Delivery

#: A time as answered: RFC 3339 in UTC, ``Z``; microseconds when there are any.
DateTime = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 in UTC, e.g. 2026-11-23T12:00:00Z",
        }
    ),
]


class PredictionIn(BaseModel):
    """One prediction record (documentation of the body; parsing is done by ``ingest``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Unique per model; a record with a stored id is a duplicate.")
    timestamp: str | float | None = Field(
        None, description="RFC 3339 date-time with offset, or Unix seconds; receipt time if absent."
    )
    features: dict[str, float | str | bool | None] = Field(
        description="Every configured feature; null marks a missing value."
    )
    prediction: str | float | int | bool = Field(description="Class label, or a number.")
    scores: dict[str, float] | None = Field(None, description="Class -> probability.")
    model_version: Annotated[str, Field(min_length=1, max_length=MAX_VERSION_LENGTH)] | None = (
        Field(None, description="The version of the model that made the prediction.")
    )


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The id of the prediction this label belongs to.")
    label: str | float | int | bool
    timestamp: str | float | None = None


class ReferenceRecordIn(BaseModel):
    """One reference record: a prediction record, or a labelled one, with ``id`` and
    ``timestamp`` allowed and ignored; no other field."""

    model_config = ConfigDict(extra="forbid")

    features: dict[str, float | str | bool | None]
    prediction: str | float | int | bool | None = None
    label: str | float | int | bool | None = None
    scores: dict[str, float] | None = None
    id: str | int | None = None
    timestamp: str | float | None = None


class IngestOut(BaseModel):
    accepted: int = Field(description="Records newly stored.")
    duplicates: int = Field(description="Records whose id was already stored (or repeated).")


class LabelIngestOut(IngestOut):
    corrections: int = Field(description="Labels that replaced a different earlier label.")


class ReferenceOut(BaseModel):
    model: str
    version: int
    n: int
    source: str
    created_at: DateTime
    digest: str

    @classmethod
    def of(cls, info: ReferenceInfo) -> ReferenceOut:
        return cls(
            model=info.model,
            version=info.version,
            n=info.n,
            source=info.source,
            created_at=timestamps.written(info.created_at),
            digest=info.digest,
        )


class AlertOut(BaseModel):
    model: str
    rule: str
    feature: str | None
    state: Literal["pending", "firing"]
    severity: Literal["warning", "critical"]
    value: float
    threshold: float
    since: DateTime = Field(description="When the alert entered its state.")
    episode: str | None
    routes: list[str]

    @classmethod
    def of(cls, stored: StoredAlert) -> AlertOut:
        alert = stored.alert
        return cls(
            model=stored.model,
            rule=alert.rule,
            feature=alert.feature or None,
            state=alert.state,
            severity=alert.severity,
            value=alert.value,
            threshold=alert.threshold,
            since=timestamps.written(alert.since),
            episode=stored.episode,
            routes=list(stored.routes),
        )


class AlertEventOut(BaseModel):
    event_id: str
    episode: str
    type: Literal["alert.firing", "alert.escalated", "alert.resolved"]
    model: str
    rule: str
    feature: str | None
    severity: Literal["warning", "critical"]
    value: float
    threshold: float
    at: DateTime
    routes: list[str]

    @classmethod
    def of(cls, entry: HistoryEntry) -> AlertEventOut:
        return cls(
            event_id=entry.event_id,
            episode=entry.episode,
            type=entry.type,
            model=entry.model,
            rule=entry.rule,
            feature=entry.feature or None,
            severity=entry.severity,
            value=entry.value,
            threshold=entry.threshold,
            at=timestamps.written(entry.at),
            routes=list(entry.routes),
        )


class DeliveryOut(BaseModel):
    event_id: str
    route: str
    model: str | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: DateTime
    next_attempt_at: DateTime | None
    last_error: str | None
    event: dict[str, Any]

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            event_id=delivery.event_id,
            route=delivery.route,
            model=delivery.model or None,
            status=delivery.status,
            attempts=delivery.attempts,
            created_at=timestamps.written(delivery.created_at),
            next_attempt_at=timestamps.written(delivery.next_attempt_at)
            if delivery.status == "pending"
            else None,
            last_error=delivery.last_error,
            event=orjson.loads(delivery.body),
        )


class WindowOut(BaseModel):
    start: DateTime = Field(description="Prediction times after this (excluded) ...")
    end: DateTime = Field(description="... up to this (included).")
    n: int = Field(description="Records in the window.")


class LineageWindowOut(WindowOut):
    labelled: int
    digest: str | None


class LineageOut(BaseModel):
    """What the evaluation compared (``evaluation.document.lineage_document``)."""

    config_digest: str
    reference: dict[str, Any]
    window: LineageWindowOut
    model_versions: dict[str, int]
    monitor_version: str


class EvaluationOut(BaseModel):
    """An evaluation (docs: drift.md, Evaluation JSON). Documents the answer, which
    ``evaluation.document`` writes; each feature's statistics are named in it."""

    model: str
    evaluated_at: DateTime
    status: Literal["ok", "warning", "critical", "insufficient", "no_reference"]
    window: WindowOut
    reference: dict[str, int | None] = Field(description="The reference's version and size.")
    drifted_share: float | None
    duration_seconds: float
    features: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    performance: dict[str, Any] | None = None
    labels: dict[str, Any] | None = None
    lineage: LineageOut | None = None
    versions: dict[str, Any] | None = Field(
        None,
        description="Canary against stable: each compared version's drift, accuracy and"
        " performance (as the whole window's), and the canary against the stable version.",
    )
    segments: dict[str, Any] | None = Field(None, description="Per segment value (when set).")
    fairness: dict[str, Any] | None = Field(None, description="Per sensitive feature.")


class StoredEvaluationOut(EvaluationOut):
    id: int = Field(description="The stored evaluation's id (monitor reproduce).")


class EvaluationHistoryOut(BaseModel):
    model: str
    evaluations: list[StoredEvaluationOut] = Field(description="Oldest first.")


class PerformanceEntryOut(BaseModel):
    evaluated_at: DateTime
    window: WindowOut
    performance: dict[str, Any] | None = None
    labels: dict[str, Any] | None = None


class PerformanceHistoryOut(BaseModel):
    model: str
    evaluations: list[PerformanceEntryOut] = Field(description="Oldest first.")


class ReadyOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description="config: ok or loading; database: ok or unreachable")


class FeatureOut(BaseModel):
    name: str
    type: str


class CountsOut(BaseModel):
    """The model's stored records. A record time that RFC 3339 cannot write (stored by a
    version that did not check the range) is answered as null."""

    predictions: int
    labels: int
    labelled_predictions: int
    first_timestamp: DateTime | None
    last_timestamp: DateTime | None

    @classmethod
    def of(cls, counts: ModelCounts) -> CountsOut:
        return cls(
            predictions=counts.predictions,
            labels=counts.labels,
            labelled_predictions=counts.labelled_predictions,
            first_timestamp=_stored(counts.first_timestamp),
            last_timestamp=_stored(counts.last_timestamp),
        )


def _stored(seconds: float | None) -> str | None:
    return None if seconds is None else timestamps.rfc3339(seconds)


class ModelOut(BaseModel):
    name: str
    task: str
    classes: list[str] | None
    features: list[FeatureOut]
    window: dict[str, Any]
    schedule: str
    min_samples: int
    reference_source: dict[str, Any] | None
    reference: ReferenceOut | None = None
    counts: CountsOut | None = None

    @classmethod
    def of(
        cls,
        model: ModelConfig,
        *,
        reference: ReferenceInfo | None = None,
        counts: ModelCounts | None = None,
    ) -> ModelOut:
        window: dict[str, Any] = (
            {"duration": format_duration(model.window.duration)}
            if model.window.duration is not None
            else {"records": model.window.records}
        )
        source = None
        if model.reference is not None:
            source = model.reference.model_dump(mode="json", exclude_defaults=True)
            if model.reference.path is not None:  # as written: never the host's absolute path
                source["path"] = model.reference.written_path
        return cls(
            name=model.name,
            task=model.task,
            classes=model.classes,
            features=[FeatureOut(name=f.name, type=f.type) for f in model.features],
            window=window,
            schedule=format_duration(model.schedule),
            min_samples=model.min_samples,
            reference_source=source,
            reference=ReferenceOut.of(reference) if reference else None,
            counts=CountsOut.of(counts) if counts else None,
        )


def body_doc(
    schema: type[BaseModel], media_types: tuple[str, ...], *, min_records: int = 0
) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its raw body: documents the accepted shapes."""
    items = {"$ref": f"#/components/schemas/{schema.__name__}"}
    records: dict[str, Any] = {"type": "array", "items": items}
    if min_records:
        records["minItems"] = min_records
    content: dict[str, Any] = {}
    for media_type in media_types:
        if media_type == "application/json":
            content[media_type] = {
                "schema": {
                    "oneOf": [
                        records,
                        {
                            "type": "object",
                            "properties": {"records": records},
                            "required": ["records"],
                            "additionalProperties": False,  # decode.decode_records
                        },
                    ]
                }
            }
        elif media_type == "text/csv":
            content[media_type] = {
                "schema": {
                    "type": "string",
                    "description": "header: feature names, optional prediction, label and"
                    " score_<class> columns",
                }
            }
        else:
            content[media_type] = {
                "schema": {"type": "string", "description": "one JSON record per line"}
            }
    return {"requestBody": {"required": True, "content": content}}
