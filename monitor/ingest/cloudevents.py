"""CloudEvents from KServe's InferenceService logger and Seldon Core v1's request logger, as
prediction records and labels. Pure: parsing and mapping; no I/O.

KServe logs each inference twice, as a request event and (on HTTP 200 only) a response event
sharing one ``ce-id``; Seldon Core v1 does the same with ``ce-requestid`` and also logs feedback
(``io.seldon.serving.feedback``) whose ``truth`` holds the labels. The first half waits, its
parsed payload ``pack``-ed, in the database until the other arrives (``jobs.cloudevents``);
``paired_records`` maps a pair to one record per row, ``labels_of`` maps feedback to labels
with the same ids.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

import orjson

from monitor import codec
from monitor.config import ModelConfig
from monitor.ingest.validate import (
    MAX_ID_LENGTH,
    MAX_VERSION_LENGTH,
    NUL,
    NUL_REASON,
    storable_version,
)

Kind = Literal["request", "response", "feedback"]
Flavor = Literal["kserve", "seldon"]

STRUCTURED = "application/cloudevents+json"

#: ce-type → (flavor, kind)
TYPES: dict[str, tuple[Flavor, Kind]] = {
    "org.kubeflow.serving.inference.request": ("kserve", "request"),
    "org.kubeflow.serving.inference.response": ("kserve", "response"),
    "io.seldon.serving.inference.request": ("seldon", "request"),
    "io.seldon.serving.inference.response": ("seldon", "response"),
    "io.seldon.serving.feedback": ("seldon", "feedback"),
}


class CloudEventError(ValueError):
    """The event cannot be used; ``status`` is 400 (malformed) or 422 (payload not mappable)."""

    def __init__(self, detail: str, status: int = 400) -> None:
        self.status = status
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    flavor: Flavor
    kind: Kind
    source: str
    time: str | None
    service: str | None  # ce-inferenceservicename
    request_id: str | None  # ce-requestid (Seldon)
    data: Any  # the decoded JSON payload
    endpoint: str | None = None  # ce-endpoint: KServe's default|canary, Seldon's predictor

    @property
    def pair_key(self) -> str:
        """What the two halves share: ``ce-id`` for KServe, ``ce-requestid`` for Seldon."""
        if self.flavor == "seldon":
            return self.request_id or self.id
        return self.id


def parse_event(headers: Mapping[str, str], body: bytes) -> Event:
    """An event in binary content mode (``ce-*`` headers, the payload as body) or structured
    mode (``Content-Type: application/cloudevents+json``). ``headers`` by lower-case name."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == STRUCTURED:
        envelope = _json(body, "the structured event")
        if not isinstance(envelope, dict):
            raise CloudEventError("a structured event must be a JSON object")
        attributes = {str(k).lower(): v for k, v in envelope.items() if k not in _DATA_KEYS}
        data = _structured_data(envelope)
    else:
        attributes = {
            name[3:]: unquote(value)
            for name, value in headers.items()
            if name.startswith("ce-") and len(name) > 3
        }
        data = _json(body, "the event's data") if body.strip() else None
    for required in ("id", "type", "specversion", "source"):
        value = attributes.get(required)
        if not isinstance(value, str) or not value:
            where = f"ce-{required} header" if content_type != STRUCTURED else f"{required!r}"
            raise CloudEventError(f"the event has no {where}")
    event_type = attributes["type"]
    known = TYPES.get(event_type)
    if known is None:
        raise CloudEventError(
            f"unsupported event type {event_type!r}; expected one of {list(TYPES)}"
        )
    if data is None:
        raise CloudEventError("the event has no data")
    _check_lengths(attributes)
    return Event(
        id=attributes["id"],
        type=event_type,
        flavor=known[0],
        kind=known[1],
        source=attributes["source"],
        time=_optional(attributes.get("time")),
        service=_optional(attributes.get("inferenceservicename")),
        request_id=_optional(attributes.get("requestid")),
        data=data,
        endpoint=_optional(attributes.get("endpoint")),
    )


_DATA_KEYS = ("data", "data_base64")
_MAX_TIME_LENGTH = 64  # an RFC 3339 timestamp is at most 35 characters long


def _check_lengths(attributes: Mapping[str, Any]) -> None:
    """The ids become record ids (at most ``MAX_ID_LENGTH`` characters), so an event with a
    longer one could never be stored; neither can one whose ``time`` is no timestamp, nor one
    whose stored attributes hold a NUL character (which PostgreSQL's text columns refuse;
    ``%00`` in a header, ``\\u0000`` in a structured event)."""
    for name in ("id", "requestid", "time"):
        value = attributes.get(name)
        if isinstance(value, str) and NUL in value:
            raise CloudEventError(f"ce-{name} {NUL_REASON}", 422)
    for name in ("id", "requestid"):
        value = attributes.get(name)
        if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
            raise CloudEventError(
                f"ce-{name} is {len(value)} characters long; record ids are at most "
                f"{MAX_ID_LENGTH}",
                422,
            )
    value = attributes.get("time")
    if isinstance(value, str) and len(value) > _MAX_TIME_LENGTH:
        raise CloudEventError(f"ce-time is {len(value)} characters long: not a timestamp", 422)


def _optional(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _json(raw: bytes | str, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CloudEventError(f"{what} is not JSON: {exc}") from None


def _structured_data(envelope: dict[str, Any]) -> Any:
    if "data_base64" in envelope:
        encoded = envelope["data_base64"]
        if not isinstance(encoded, str):
            raise CloudEventError("data_base64 must be a string")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise CloudEventError("data_base64 is not valid base64") from None
        return _json(raw, "data_base64")
    data = envelope.get("data")
    if isinstance(data, str):  # JSON sent as a string
        return _json(data, "data")
    return data


def service_name(event: Event) -> str:
    """The InferenceService / SeldonDeployment the event is about: ``ce-inferenceservicename``,
    else the last path segment of ``ce-source``."""
    if event.service:
        return event.service
    segments = [s for s in event.source.rstrip("/").split("/") if s]
    return segments[-1] if segments else event.source


def find_model(models: Sequence[ModelConfig], service: str) -> ModelConfig | None:
    for model in models:
        if (model.inference_service or model.name) == service:
            return model
    return None


# -- payloads -------------------------------------------------------------------------------

Row = dict[str, Any]  # features of one row
Output = tuple[Any, dict[str, float] | None]  # prediction, scores


def request_rows(model: ModelConfig, event: Event) -> list[Row]:
    """The feature rows of a request payload (KServe v1 / v2, or a SeldonMessage)."""
    data = event.data
    if event.flavor == "seldon":
        names, rows = _seldon_rows(data, "request")
        return [_features(model, row, names, f"row {i}") for i, row in enumerate(rows)]
    if isinstance(data, dict) and "instances" in data:
        instances = data["instances"]
        if not isinstance(instances, list) or not instances:
            raise CloudEventError("'instances' must be a non-empty list", 422)
        return [_features(model, row, None, f"instances[{i}]") for i, row in enumerate(instances)]
    if isinstance(data, dict) and "inputs" in data:
        return _v2_inputs(model, data["inputs"])
    raise CloudEventError(
        "the request payload has neither 'instances' (KServe v1) nor 'inputs' (v2)", 422
    )


def response_rows(model: ModelConfig, event: Event) -> list[Output]:
    """The prediction (and scores) of each row of a response payload."""
    data = event.data
    if event.flavor == "seldon":
        names, rows = _seldon_rows(data, "response")
        return [_output(model, row, names, f"row {i}") for i, row in enumerate(rows)]
    if isinstance(data, dict) and "predictions" in data:
        predictions = data["predictions"]
        if not isinstance(predictions, list) or not predictions:
            raise CloudEventError("'predictions' must be a non-empty list", 422)
        return [_output(model, row, None, f"predictions[{i}]") for i, row in enumerate(predictions)]
    if isinstance(data, dict) and "outputs" in data:
        return _v2_outputs(model, data["outputs"])
    raise CloudEventError(
        "the response payload has neither 'predictions' (KServe v1) nor 'outputs' (v2)", 422
    )


#: ``ce-endpoint`` values of KServe (KFServing) that name a version: its canary rollout's two
#: endpoints. Newer KServe sends the predictor's service name there, which names none.
KSERVE_VERSION_ENDPOINTS = frozenset({"default", "canary"})


def response_version(event: Event) -> str | None:
    """The model version a response event names, if any. Neither KServe nor Seldon sends a
    version header: the Open Inference Protocol (v2) response's ``model_version`` (KServe,
    Seldon Core 2 / MLServer); else ``ce-endpoint``: Seldon Core's predictor, which is what a
    canary splits traffic by, or KServe's ``default`` / ``canary`` endpoint."""
    data = event.data
    if isinstance(data, dict):
        version = data.get("model_version")
        if isinstance(version, str) and version:
            return _storable(version, "'model_version'")
    if event.flavor == "seldon" or event.endpoint in KSERVE_VERSION_ENDPOINTS:
        return _storable(event.endpoint, "'ce-endpoint'") if event.endpoint else None
    return None


def _storable(version: str, where: str) -> str:
    """``version``, refused (422, naming ``where``) when a record could not carry it: the
    response half is refused itself, never waits, and so never makes its request's
    prediction refused after it was acknowledged."""
    if not storable_version(version):
        raise CloudEventError(
            f"{where} names the model version, which must be 1 to {MAX_VERSION_LENGTH}"
            " characters without NUL",
            422,
        )
    return version


def truth_rows(model: ModelConfig, event: Event) -> list[Any]:
    """The label of each row of a Seldon feedback's ``truth``."""
    data = event.data
    if not isinstance(data, dict) or not isinstance(data.get("truth"), dict):
        raise CloudEventError("a feedback event needs a 'truth' SeldonMessage", 422)
    names, rows = _seldon_rows(data["truth"], "truth")
    return [_output(model, row, names, f"truth row {i}")[0] for i, row in enumerate(rows)]


def _features(model: ModelConfig, row: Any, names: list[str] | None, where: str) -> Row:
    order = [f.name for f in model.features]
    if isinstance(row, dict):
        return dict(row)  # the validator names missing or unknown features
    if not isinstance(row, list):
        raise CloudEventError(f"{where} must be a list of feature values or an object", 422)
    if names is not None and sorted(names) == sorted(order) and len(names) == len(row):
        return dict(zip(names, row, strict=True))
    if len(row) != len(order):
        raise CloudEventError(
            f"{where} has {len(row)} values; model {model.name!r} has {len(order)} features "
            f"({', '.join(order)})",
            422,
        )
    return dict(zip(order, row, strict=True))


def _output(model: ModelConfig, row: Any, names: list[str] | None, where: str) -> Output:
    """A scalar is the prediction; a list of one value too; a list with one probability per
    class becomes scores (by ``names`` when they are the classes, else the classes' order)
    with the most probable class as the prediction."""
    if isinstance(row, dict):
        raise CloudEventError(f"{where}: an object is not a prediction", 422)
    if not isinstance(row, list):
        return row, None
    if len(row) == 1 and not isinstance(row[0], list):
        return row[0], None
    classes = model.classes or []
    if model.task == "classification" and len(row) == len(classes):
        labels = names if names is not None and sorted(names) == sorted(classes) else classes
        if not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in row):
            raise CloudEventError(f"{where}: class probabilities must be numbers", 422)
        scores = {label: float(p) for label, p in zip(labels, row, strict=True)}
        best = max(range(len(row)), key=lambda i: row[i])
        return labels[best], scores
    raise CloudEventError(
        f"{where} has {len(row)} values: expected one prediction"
        + (f" or {len(classes)} class probabilities" if classes else ""),
        422,
    )


def _seldon_rows(message: Any, what: str) -> tuple[list[str] | None, list[Any]]:
    """``names`` and rows of a SeldonMessage's ``data`` (``ndarray`` or ``tensor``)."""
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, dict):
        raise CloudEventError(f"the {what} is not a SeldonMessage with 'data'", 422)
    names = data.get("names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise CloudEventError(f"the {what}'s data.names must be a list of strings", 422)
    if "ndarray" in data:
        rows = data["ndarray"]
        if not isinstance(rows, list) or not rows:
            raise CloudEventError(f"the {what}'s data.ndarray must be a non-empty list", 422)
        return names, rows
    tensor = data.get("tensor")
    if isinstance(tensor, dict):
        return names, _reshape(tensor.get("shape"), tensor.get("values"), f"the {what}'s tensor")
    raise CloudEventError(f"the {what}'s data has neither 'ndarray' nor 'tensor'", 422)


def _flatten(values: Any) -> list[Any]:
    if not isinstance(values, list):
        return [values]
    flat: list[Any] = []
    for value in values:
        flat.extend(_flatten(value))
    return flat


def _reshape(shape: Any, values: Any, what: str) -> list[Any]:
    """Rows of a row-major tensor: scalars for shape [n], lists for [n, k]."""
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise CloudEventError(f"{what} needs a shape [rows] or [rows, columns]", 422)
    flat = _flatten(values)
    size = shape[0] * (shape[1] if len(shape) == 2 else 1)
    if len(flat) != size or size == 0:
        raise CloudEventError(f"{what} has {len(flat)} values; its shape {shape} needs {size}", 422)
    if len(shape) == 1:
        return flat
    width = shape[1]
    return [flat[i * width : (i + 1) * width] for i in range(shape[0])]


def _tensors(tensors: Any, what: str) -> list[tuple[str, list[Any]]]:
    if not isinstance(tensors, list) or not tensors:
        raise CloudEventError(f"'{what}' must be a non-empty list of tensors", 422)
    found = []
    for i, tensor in enumerate(tensors):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise CloudEventError(f"{what}[{i}] must be a tensor with a name", 422)
        rows = _reshape(tensor.get("shape"), tensor.get("data"), f"{what}[{i}]")
        found.append((tensor["name"], rows))
    return found


def _v2_inputs(model: ModelConfig, inputs: Any) -> list[Row]:
    """One 2-D tensor whose columns follow the feature order, or one tensor per feature."""
    tensors = _tensors(inputs, "inputs")
    order = [f.name for f in model.features]
    by_name = dict(tensors)
    if len(tensors) > 1 or (len(order) == 1 and tensors[0][0] == order[0]):
        if sorted(by_name) != sorted(order) or len(by_name) != len(tensors):
            raise CloudEventError(
                f"inputs are named {sorted(by_name)}; one tensor per feature needs exactly "
                f"{sorted(order)}",
                422,
            )
        counts = {len(rows) for rows in by_name.values()}
        if len(counts) != 1:
            raise CloudEventError("the input tensors have different numbers of rows", 422)
        columns = {name: [_single(v, f"inputs {name!r}") for v in rows] for name, rows in tensors}
        return [{name: columns[name][i] for name in order} for i in range(counts.pop())]
    _, rows = tensors[0]
    return [
        _features(model, _as_list(row), None, f"inputs[0] row {i}") for i, row in enumerate(rows)
    ]


def _v2_outputs(model: ModelConfig, outputs: Any) -> list[Output]:
    """One output tensor; or, of several, one with a value per row (the prediction) and one
    with a probability per class (the scores)."""
    tensors = _tensors(outputs, "outputs")
    if len(tensors) == 1:
        _, rows = tensors[0]
        return [_output(model, row, None, f"outputs[0] row {i}") for i, row in enumerate(rows)]
    classes = model.classes or []
    single = [
        rows for _, rows in tensors if all(not isinstance(r, list) or len(r) == 1 for r in rows)
    ]
    wide = [
        rows
        for _, rows in tensors
        if rows and isinstance(rows[0], list) and len(rows[0]) == len(classes) > 1
    ]
    if not single and not wide:
        raise CloudEventError("none of the outputs holds one prediction per row", 422)
    if wide:
        scored = [_output(model, row, None, f"outputs row {i}") for i, row in enumerate(wide[0])]
        if not single:
            return scored
        if len(single[0]) != len(scored):
            raise CloudEventError("the output tensors have different numbers of rows", 422)
        return [(_single(p, "outputs"), s) for p, (_, s) in zip(single[0], scored, strict=True)]
    return [(_single(p, "outputs"), None) for p in single[0]]


def _as_list(row: Any) -> list[Any]:
    return row if isinstance(row, list) else [row]


def _single(value: Any, where: str) -> Any:
    if isinstance(value, list):
        if len(value) != 1:
            raise CloudEventError(f"{where}: expected one value per row", 422)
        return value[0]
    return value


def record_ids(base: str, rows: int) -> list[str]:
    """``base`` for a single row, ``base-0``, ``base-1``, ... for several."""
    return [base] if rows == 1 else [f"{base}-{i}" for i in range(rows)]


def records_of(
    base: str,
    rows: list[Row],
    outputs: list[Output],
    timestamp: str | None,
    model_version: str | None = None,
) -> list[dict[str, Any]]:
    """Prediction records of a paired request and response."""
    if len(rows) != len(outputs):
        raise CloudEventError(
            f"the request has {len(rows)} rows but the response {len(outputs)} predictions", 422
        )
    records = []
    for record_id, features, (prediction, scores) in zip(
        record_ids(base, len(rows)), rows, outputs, strict=True
    ):
        record: dict[str, Any] = {"id": record_id, "features": features, "prediction": prediction}
        if timestamp is not None:
            record["timestamp"] = timestamp
        if scores is not None:
            record["scores"] = scores
        if model_version is not None:
            record["model_version"] = model_version
        records.append(record)
    return records


def labels_of(base: str, truths: list[Any], timestamp: str | None) -> list[dict[str, Any]]:
    labels = []
    for record_id, label in zip(record_ids(base, len(truths)), truths, strict=True):
        entry: dict[str, Any] = {"id": record_id, "label": label}
        if timestamp is not None:
            entry["timestamp"] = timestamp
        labels.append(entry)
    return labels


# -- waiting halves ---------------------------------------------------------------------------


def pack(rows: list[Row] | list[Output]) -> bytes:
    """A half's parsed rows (request) or outputs (response), as it waits for the other half."""
    return codec.encode(rows)


def pack_response(outputs: list[Output], model_version: str | None) -> bytes:
    """A response half's outputs as it waits, each with the ``model_version`` the response
    named (``response_version``) when it named one."""
    if model_version is None:
        return pack(outputs)
    return codec.encode([[prediction, scores, model_version] for prediction, scores in outputs])


def paired_records(
    base: str, *, request: bytes, response: bytes, timestamp: str | None
) -> list[dict[str, Any]]:
    """Prediction records of a request's and a response's ``pack``-ed payloads.

    >>> rows = pack([{"age": 42}])
    >>> paired_records("ev-1", request=rows, response=pack([("yes", None)]), timestamp=None)
    [{'id': 'ev-1', 'features': {'age': 42}, 'prediction': 'yes'}]
    """
    rows: list[Row] = codec.decode(request)
    decoded = codec.decode(response)
    outputs: list[Output] = [(entry[0], entry[1]) for entry in decoded]
    version = decoded[0][2] if decoded and len(decoded[0]) > 2 else None
    return records_of(base, rows, outputs, timestamp, version)
