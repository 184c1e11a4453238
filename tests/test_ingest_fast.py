"""The msgspec fast path only ever accepts what the complete validator accepts, the same way.

For arbitrary bodies (valid and broken alike), ``FastPredictionDecoder`` either declines
(``None``) or returns the batch the complete validator returns for the same body.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import codec
from monitor.config import parse_config
from monitor.domain import PredictionBatch
from monitor.errors import InvalidRecordsError
from monitor.ingest import RecordValidator
from monitor.ingest.fast import FastPredictionDecoder

CONFIG = parse_config("""
models:
  - name: c
    task: classification
    classes: [yes, "no", "1"]
    features:
      - {name: x, type: numeric}
      - {name: k, type: categorical}
  - name: r
    task: regression
    features:
      - {name: x, type: numeric}
""")
RECEIVED = 1_700_000_000.0

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["yes", "no", "1", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00"]),
)
timestamps = st.one_of(
    st.none(),
    st.floats(min_value=-10, max_value=2e9, allow_nan=False),
    st.integers(-5, 2**31),
    st.sampled_from(
        ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00", "soon"]
    ),
)


@st.composite
def records(draw: st.DrawFn, features: list[str]) -> Any:
    record: dict[str, Any] = {
        "id": draw(st.one_of(st.sampled_from(["a", "b", "c"]), st.integers(0, 3), scalars)),
        "features": {name: draw(scalars) for name in features if draw(st.booleans()) or True},
        "prediction": draw(scalars),
    }
    if draw(st.booleans()):
        record["timestamp"] = draw(timestamps)
    if draw(st.booleans()):
        record["scores"] = draw(
            st.dictionaries(st.sampled_from(["yes", "no", "1", "x"]), scalars, max_size=3)
        )
    if draw(st.integers(0, 9)) == 0:
        del record["features"][features[0]]
    if draw(st.integers(0, 9)) == 0:
        record["features"]["extra"] = 1
    if draw(st.integers(0, 19)) == 0:
        record["other"] = 1
    return record


def canonical(batch: PredictionBatch) -> Any:
    return (
        batch.ids,
        batch.timestamps,
        [codec.decode(f) for f in batch.features],
        batch.prediction_classes,
        batch.prediction_values,
        [None if s is None else codec.decode(s) for s in batch.scores],
        batch.duplicates_in_batch,
    )


def check(model: str, body: bytes, media_type: str = "application/json") -> PredictionBatch | None:
    config = CONFIG.model(model)
    assert config is not None
    fast = FastPredictionDecoder(config).predictions(body, media_type, received_at=RECEIVED)
    if fast is None:
        return None
    lines = body.splitlines() if media_type == "application/x-ndjson" else None
    parsed = [orjson.loads(line) for line in lines] if lines else orjson.loads(body)
    if isinstance(parsed, dict):
        parsed = parsed["records"]
    try:
        complete = RecordValidator(config).predictions(parsed, received_at=RECEIVED)
    except InvalidRecordsError as exc:
        pytest.fail(f"the fast path accepted what the validator refuses: {exc.issues}")
    assert canonical(fast) == canonical(complete)
    return fast


@settings(max_examples=400, deadline=None)
@given(st.lists(records(["x", "k"]), max_size=6), st.booleans())
def test_classification_fast_path_agrees(batch: list[Any], wrapped: bool) -> None:
    body = orjson.dumps({"records": batch} if wrapped else batch)
    check("c", body)


@settings(max_examples=300, deadline=None)
@given(st.lists(records(["x"]), min_size=1, max_size=6))
def test_regression_fast_path_agrees_on_ndjson(batch: list[Any]) -> None:
    body = b"\n".join(orjson.dumps(record) for record in batch)
    check("r", body, "application/x-ndjson")


def test_a_well_formed_batch_takes_the_fast_path() -> None:
    body = orjson.dumps(
        [
            {
                "id": "a",
                "features": {"x": 1, "k": "u"},
                "prediction": "yes",
                "timestamp": "2026-01-01T00:00:00Z",
                "scores": {"yes": 0.5, "no": 0.5},
            },
            {"id": 7, "features": {"x": None, "k": True}, "prediction": 1},
            {"id": "a", "features": {"x": 2.5, "k": None}, "prediction": "no"},
        ]
    )
    batch = check("c", body)
    assert batch is not None
    assert batch.ids == ["a", "7"] and batch.duplicates_in_batch == 1
    assert batch.timestamps == [1767225600.0, RECEIVED]
    assert batch.prediction_classes == ["yes", "1"]


@pytest.mark.parametrize(
    "record",
    [
        {"id": "a", "features": {"x": "1", "k": "u"}, "prediction": "yes"},
        {"id": "a", "features": {"x": 1}, "prediction": "yes"},
        {"id": "a", "features": {"x": 1, "k": "u"}, "prediction": "maybe"},
        {
            "id": "a",
            "features": {"x": 1, "k": "u"},
            "prediction": "yes",
            "timestamp": "2026-01-01T00:00:00",
        },
        {"id": "", "features": {"x": 1, "k": "u"}, "prediction": "yes"},
        {"id": "a", "features": {"x": 1, "k": "u"}, "prediction": "yes", "scores": {"x": 0.1}},
        {"id": "a", "features": {"x": 1, "k": "u"}, "prediction": "yes", "scores": {"yes": 2}},
        {"id": "a", "features": {"x": True, "k": "u"}, "prediction": "yes"},
    ],
)
def test_the_fast_path_declines_what_is_invalid(record: dict[str, Any]) -> None:
    config = CONFIG.model("c")
    assert config is not None
    decoder = FastPredictionDecoder(config)
    assert decoder.predictions(orjson.dumps([record]), "application/json", received_at=0) is None
