"""The msgspec fast path only ever accepts what the complete validator accepts, the same way.

For arbitrary bodies (valid and broken alike), ``FastPredictionDecoder`` either declines
(``None``) or returns the batch the complete validator returns for the same body.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import codec
from monitor.config import parse_config
from monitor.domain import PredictionBatch
from monitor.errors import InvalidRecordsError, PayloadError, RecordIssue
from monitor.ingest import RecordValidator, decode_records
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
RECEIVED = 1_770_000_000.0  # 2026-02-02T02:40:00Z

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(
        ["yes", "no", "1", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "n\x00", "\\u0000"]
    ),
)
#: The latest timestamp accepted at RECEIVED with the default skew (one day).
LATEST = RECEIVED + 86_400
timestamps = st.one_of(
    st.none(),
    st.floats(min_value=-10, max_value=2e9, allow_nan=False),
    st.floats(min_value=-1e300, max_value=1e300, allow_nan=False),
    st.integers(-5, 2**31),
    st.integers(-(2**63), 2**63),
    st.sampled_from([LATEST - 0.5, LATEST, LATEST + 0.5, LATEST + 1, 253402300799, 253402300800]),
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T01:00:00+01:00",
            "2026-01-01T00:00:00",
            "soon",
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:59:59+01:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-01:00",
            "2026-02-03T02:40:00Z",  # LATEST
            "2026-02-03T02:40:01Z",
        ]
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


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        (-1, "must not be before 1970-01-01T00:00:00Z"),
        ("1969-12-31T23:59:59Z", "must not be before 1970-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00Z", "must not be before 1970-01-01T00:00:00Z"),
        (1e300, "must not be after 9999-12-31T23:59:59Z"),
        (253402300800, "must not be after 9999-12-31T23:59:59Z"),
        ("9999-12-31T23:59:59-01:00", "must not be after 9999-12-31T23:59:59Z"),
        (
            LATEST + 1,
            "is more than 86400 seconds ahead of the server's clock (2026-02-02T02:40:00Z)",
        ),
        (
            "2026-02-03T02:40:01Z",
            "is more than 86400 seconds ahead of the server's clock (2026-02-02T02:40:00Z)",
        ),
    ],
)
def test_a_timestamp_out_of_range_is_refused_on_both_paths(timestamp: Any, reason: str) -> None:
    record = {"id": "a", "features": {"x": 1}, "prediction": 1.5, "timestamp": timestamp}
    config = CONFIG.model("r")
    assert config is not None
    body = orjson.dumps([record])
    assert (
        FastPredictionDecoder(config).predictions(body, "application/json", received_at=RECEIVED)
        is None
    )
    with pytest.raises(InvalidRecordsError) as refused:
        RecordValidator(config).predictions([record], received_at=RECEIVED)
    assert refused.value.issues == [RecordIssue(0, "timestamp", reason)]
    with pytest.raises(InvalidRecordsError) as refused:
        RecordValidator(config).labels(
            [{"id": "a", "label": 2.0, "timestamp": timestamp}], received_at=RECEIVED
        )
    assert refused.value.issues == [RecordIssue(0, "timestamp", reason)]


def test_the_bounds_themselves_are_accepted_on_both_paths() -> None:
    stamps = [0, "1970-01-01T00:00:00Z", LATEST, "2026-02-03T02:40:00Z"]
    body = orjson.dumps(
        [
            {"id": i, "features": {"x": 1}, "prediction": 1.5, "timestamp": t}
            for i, t in enumerate(stamps)
        ]
    )
    batch = check("r", body)
    assert batch is not None
    assert batch.timestamps == [0.0, 0.0, LATEST, LATEST]


def test_the_future_bound_follows_the_configured_skew() -> None:
    config = CONFIG.model("r")
    assert config is not None
    fast = FastPredictionDecoder(config, max_future_seconds=60)
    complete = RecordValidator(config, max_future_seconds=60)
    ok = [{"id": "a", "features": {"x": 1}, "prediction": 1.5, "timestamp": RECEIVED + 60}]
    late = [{"id": "a", "features": {"x": 1}, "prediction": 1.5, "timestamp": RECEIVED + 61}]
    assert fast.predictions(orjson.dumps(ok), "application/json", received_at=RECEIVED) is not None
    assert complete.predictions(ok, received_at=RECEIVED).timestamps == [RECEIVED + 60]
    assert fast.predictions(orjson.dumps(late), "application/json", received_at=RECEIVED) is None
    with pytest.raises(InvalidRecordsError) as refused:
        complete.predictions(late, received_at=RECEIVED)
    assert refused.value.issues == [
        RecordIssue(
            0,
            "timestamp",
            "is more than 60 seconds ahead of the server's clock (2026-02-02T02:40:00Z)",
        )
    ]


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        (math.nan, "must be a number of Unix seconds, not NaN"),
        (math.inf, "must not be after 9999-12-31T23:59:59Z"),
        (-math.inf, "must not be before 1970-01-01T00:00:00Z"),
        (10**400, "must not be after 9999-12-31T23:59:59Z"),
        (-(10**400), "must not be before 1970-01-01T00:00:00Z"),
    ],
    ids=["nan", "inf", "-inf", "huge", "-huge"],
)
def test_nan_infinities_and_huge_integers_are_refused(timestamp: Any, reason: str) -> None:
    """JSON cannot carry these (a body with ``1e400`` is malformed on both paths); records
    handed over from Python (``Service.store_predictions``, a replay) can."""
    config = CONFIG.model("r")
    assert config is not None
    record = {"id": "a", "features": {"x": 1}, "prediction": 1.5, "timestamp": timestamp}
    with pytest.raises(InvalidRecordsError) as refused:
        RecordValidator(config).predictions([record], received_at=RECEIVED)
    assert refused.value.issues == [RecordIssue(0, "timestamp", reason)]


@pytest.mark.parametrize("literal", [b"1e400", b"-1e400", b"NaN", b"Infinity"])
def test_a_body_with_an_infinite_or_nan_timestamp_is_malformed_on_both_paths(
    literal: bytes,
) -> None:
    config = CONFIG.model("r")
    assert config is not None
    body = b'[{"id": "a", "features": {"x": 1}, "prediction": 1.5, "timestamp": ' + literal + b"}]"
    assert (
        FastPredictionDecoder(config).predictions(body, "application/json", received_at=RECEIVED)
        is None
    )
    with pytest.raises(PayloadError):
        decode_records(body, "application/json")


NUL = "must not contain the NUL character (\\u0000)"


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"id": "a\x00", "features": {"x": 1, "k": "u"}, "prediction": "yes"}, "id"),
        ({"id": "a", "features": {"x": 1, "k": "\x00"}, "prediction": "yes"}, "features.k"),
        ({"id": "a", "features": {"x": 1, "k": "u"}, "prediction": "yes\x00"}, "prediction"),
    ],
)
def test_a_nul_character_is_refused_on_both_paths(record: dict[str, Any], field: str) -> None:
    config = CONFIG.model("c")
    assert config is not None
    body = orjson.dumps([record])
    assert b"\\u0000" in body
    assert (
        FastPredictionDecoder(config).predictions(body, "application/json", received_at=0) is None
    )
    with pytest.raises(InvalidRecordsError) as refused:
        RecordValidator(config).predictions([record], received_at=RECEIVED)
    assert refused.value.issues == [RecordIssue(0, field, NUL)]


def test_a_nul_character_in_a_label_or_its_id_is_refused() -> None:
    config = CONFIG.model("c")
    assert config is not None
    labels = [{"id": "a\x00", "label": "yes"}, {"id": "b", "label": "no\x00"}]
    with pytest.raises(InvalidRecordsError) as refused:
        RecordValidator(config).labels(labels, received_at=RECEIVED)
    assert refused.value.issues == [RecordIssue(0, "id", NUL), RecordIssue(1, "label", NUL)]


def test_an_escaped_backslash_before_u0000_is_no_nul() -> None:
    """The fast path declines on the text ``\\u0000``; the complete validator then sees the
    six characters it stands for, and stores them."""
    body = orjson.dumps([{"id": "\\u0000", "features": {"x": 1, "k": "u"}, "prediction": "yes"}])
    config = CONFIG.model("c")
    assert config is not None
    assert (
        FastPredictionDecoder(config).predictions(body, "application/json", received_at=0) is None
    )
    batch = RecordValidator(config).predictions(orjson.loads(body), received_at=RECEIVED)
    assert batch.ids == ["\\u0000"]
