"""What the databases cannot store or the service cannot use is refused with 422 naming the
field, alike on SQLite and PostgreSQL: timestamps outside the documented range (records,
labels, ``evaluate?at=``), and strings holding NUL. A time stored before the range was
enforced still exports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor import codec
from monitor.api import create_app
from monitor.config import Config, parse_config
from monitor.domain import LabelBatch, PredictionBatch
from monitor.service import Service
from monitor.storage import repository as repo

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the service's clock
DAY = 86_400.0
NUL_REASON = "must not contain the NUL character (\\u0000)"

CONFIG = """
server: {max_timestamp_skew: %s}
models:
  - name: credit
    task: classification
    classes: [approved, rejected]
    features:
      - {name: age, type: numeric}
      - {name: country, type: categorical}
    window: {duration: 1h}
    min_samples: 1
"""


def make_config(skew: str = "1d") -> Config:
    return parse_config(CONFIG % skew)


@pytest.fixture
def service(engine: Engine) -> Service:
    return Service(make_config(), engine=engine, registry=CollectorRegistry(), clock=lambda: NOW)


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as client:
        yield client


def record(i: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"r{i}",
        "timestamp": NOW - 60,
        "features": {"age": 30 + i, "country": "DE"},
        "prediction": "approved",
    }
    base.update(overrides)
    return base


def post(client: TestClient, path: str, body: Any) -> Any:
    return client.post(
        path, content=orjson.dumps(body), headers={"content-type": "application/json"}
    )


def stored(service: Service) -> tuple[int, int]:
    counts = service.counts("credit")
    return counts.predictions, counts.labels


OUT_OF_RANGE = [
    (-1, "must not be before 1970-01-01T00:00:00Z"),
    ("1969-12-31T23:59:59Z", "must not be before 1970-01-01T00:00:00Z"),
    (1e300, "must not be after 9999-12-31T23:59:59Z"),
    ("9999-12-31T23:59:59-01:00", "must not be after 9999-12-31T23:59:59Z"),
    (
        NOW + DAY + 1,
        "is more than 86400 seconds ahead of the server's clock (2026-01-01T00:00:00Z)",
    ),
]


@pytest.mark.parametrize(("timestamp", "reason"), OUT_OF_RANGE)
@pytest.mark.parametrize("kind", ["predictions", "labels"])
def test_a_timestamp_out_of_range_is_422_naming_it(
    client: TestClient, service: Service, kind: str, timestamp: Any, reason: str
) -> None:
    good = record(1) if kind == "predictions" else {"id": "r1", "label": "approved"}
    bad = {**good, "id": "r2", "timestamp": timestamp}
    response = post(client, f"/v1/models/credit/{kind}", [good, bad])
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"index": 1, "field": "timestamp", "reason": reason}]
    assert stored(service) == (0, 0)


def test_the_range_bounds_are_accepted(client: TestClient, service: Service) -> None:
    batch = [record(1, timestamp=0), record(2, timestamp=NOW + DAY)]
    assert post(client, "/v1/models/credit/predictions", batch).status_code == 202
    labels = [{"id": "r1", "label": "approved", "timestamp": NOW + DAY}]
    assert post(client, "/v1/models/credit/labels", labels).status_code == 202
    assert stored(service) == (2, 1)


def test_the_future_bound_is_configured_by_max_timestamp_skew(engine: Engine) -> None:
    service = Service(
        make_config("1h"), engine=engine, registry=CollectorRegistry(), clock=lambda: NOW
    )
    with TestClient(create_app(service)) as client:
        late = post(client, "/v1/models/credit/predictions", [record(1, timestamp=NOW + 3601)])
        assert late.status_code == 422
        assert late.json()["errors"][0]["reason"] == (
            "is more than 3600 seconds ahead of the server's clock (2026-01-01T00:00:00Z)"
        )
        ok = post(client, "/v1/models/credit/predictions", [record(1, timestamp=NOW + 3600)])
        assert ok.status_code == 202


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        ("nan", "must be a number of Unix seconds, not NaN"),
        ("inf", "must not be after 9999-12-31T23:59:59Z"),
        ("-inf", "must not be before 1970-01-01T00:00:00Z"),
        ("1e300", "must not be after 9999-12-31T23:59:59Z"),
        ("-1", "must not be before 1970-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00Z", "must not be before 1970-01-01T00:00:00Z"),
        (
            str(NOW + DAY + 1),
            "is more than 86400 seconds ahead of the server's clock (2026-01-01T00:00:00Z)",
        ),
    ],
)
def test_evaluate_at_out_of_range_is_422_naming_at(
    client: TestClient, service: Service, at: str, reason: str
) -> None:
    response = client.post("/v1/models/credit/evaluate", params={"at": at})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": "query.at", "reason": reason}]
    assert service.latest_evaluation("credit") is None


def test_evaluate_at_a_time_in_range_evaluates(client: TestClient) -> None:
    response = client.post("/v1/models/credit/evaluate", params={"at": "2025-12-31T23:00:00Z"})
    assert response.status_code == 200
    assert response.json()["evaluated_at"] == "2025-12-31T23:00:00Z"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_query_time_must_be_a_finite_number(client: TestClient, value: str) -> None:
    """Window bounds are times in the accepted range (1970 to 9999), never NaN or infinite."""
    for path, name, params in [
        ("/v1/models/credit/export", "start", {"start": value, "end": "1"}),
        ("/v1/models/credit/export", "end", {"start": "0", "end": value}),
        ("/v1/models/credit/drift/history", "since", {"since": value}),
        ("/v1/alerts/history", "since", {"since": value}),
    ]:
        response = client.get(path, params=params)
        assert response.status_code == 422, (path, name)
        assert response.json()["errors"][0]["field"] == f"query.{name}"


def test_export_writes_a_time_stored_before_the_range_as_unix_seconds(
    client: TestClient, service: Service
) -> None:
    """Rows stored by an earlier version (a ``1e300`` label time, a year-8307 prediction)
    export with the time as its number, and leave the database usable."""
    with service.engine.begin() as connection:
        repo.insert_predictions(
            connection,
            model="credit",
            batch=PredictionBatch(
                ["old", "far"],
                [NOW - 10, 2e11],
                [codec.encode({"age": 1, "country": "DE"})] * 2,
                ["approved", "rejected"],
                [None, None],
                [None, None],
            ),
            received_at=NOW,
        )
        repo.upsert_labels(
            connection,
            model="credit",
            batch=LabelBatch(["old"], [1e300], ["approved"], [None]),
            received_at=NOW,
        )
    response = client.get("/v1/models/credit/export", params={"start": "0", "end": "253402300799"})
    assert response.status_code == 200
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    assert [(r["id"], r["timestamp"], r["label_timestamp"]) for r in rows] == [
        ("old", "2025-12-31T23:59:50Z", 1e300),
        ("far", "8307-10-01T19:33:20Z", None),
    ]
    csv = client.get(
        "/v1/models/credit/export",
        params={"start": "0", "end": "253402300799", "format": "csv"},
    )
    assert csv.status_code == 200
    assert csv.text.splitlines() == [
        "id,timestamp,age,country,prediction,score_approved,score_rejected,label,label_timestamp"
        ",model_version",
        "old,2025-12-31T23:59:50Z,1,DE,approved,,,approved,1e+300,",
        "far,8307-10-01T19:33:20Z,1,DE,rejected,,,,,",
    ]
    again = post(client, "/v1/models/credit/predictions", [record(1)])
    assert again.status_code == 202


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("predictions", [record(1, id="a\x00b")], "id"),
        (
            "predictions",
            [record(1, features={"age": 1, "country": "D\x00E"})],
            "features.country",
        ),
        ("predictions", [record(1, prediction="approved\x00")], "prediction"),
        ("labels", [{"id": "a\x00", "label": "approved"}], "id"),
        ("labels", [{"id": "a", "label": "approved\x00"}], "label"),
    ],
)
def test_a_nul_character_is_422_naming_the_field(
    client: TestClient, service: Service, kind: str, body: list[Any], field: str
) -> None:
    response = post(
        client,
        f"/v1/models/credit/{kind}",
        [*body, *([record(9)] if kind == "predictions" else [])],
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [{"index": 0, "field": field, "reason": NUL_REASON}]
    assert stored(service) == (0, 0)
    assert post(client, "/v1/models/credit/predictions", [record(2)]).status_code == 202


def test_a_nul_character_in_a_reference_is_422(client: TestClient) -> None:
    response = client.put(
        "/v1/models/credit/reference",
        content=orjson.dumps([{"features": {"age": 1, "country": "\x00"}}]),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": 0, "field": "features.country", "reason": NUL_REASON}
    ]


@pytest.mark.parametrize(
    "path", ["/v1/deliveries/a%00b/resend", "/v1/deliveries/a/resend?route=x%00"]
)
def test_resending_an_id_holding_nul_is_404(client: TestClient, path: str) -> None:
    """PostgreSQL refuses a NUL even in a parameter compared with: answered as no such
    delivery (none can hold one), on SQLite alike."""
    response = client.post(path)
    assert response.status_code == 404
    assert response.json()["type"] == "urn:drift-monitor:problem:delivery-not-found"


TEXT_TIME = "2026-01-01T00:00:00Z"  # NOW: a time in range, written several ways below


@pytest.mark.parametrize(
    "text",
    [
        TEXT_TIME + "\u0000garbage",  # Python's fromisoformat stopped reading at the NUL
        "20260101T000000Z",  # ISO 8601 basic format, not RFC 3339
        "2025-W53-4T00:00:00Z",  # an ISO week date
        "2026-01-01T00:00Z",  # no seconds
    ],
)
@pytest.mark.parametrize("path", ["predictions", "labels"])
def test_a_timestamp_that_is_not_rfc_3339_is_422(
    client: TestClient, service: Service, path: str, text: str
) -> None:
    """The complete validator parsed with ``datetime.fromisoformat``, which takes ISO 8601
    forms RFC 3339 does not, and ignored everything after a NUL."""
    body = (
        [record(1, timestamp=text)]
        if path == "predictions"
        else [{"id": "r1", "label": "approved", "timestamp": text}]
    )
    response = post(client, f"/v1/models/credit/{path}", body)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "index": 0,
            "field": "timestamp",
            "reason": "must be an RFC 3339 date-time, e.g. 2024-05-01T12:00:00Z",
        }
    ]
    assert stored(service) == (0, 0)


@pytest.mark.parametrize("text", ["2026-01-01t00:00:00z", "2026-01-01 00:00:00Z"])
def test_a_record_is_valid_whatever_else_its_batch_holds(
    client: TestClient, service: Service, text: str
) -> None:
    """RFC 3339 allows ``t``, ``z`` and a space: the fast path took them and the complete
    validator refused them, so a record's validity depended on the rest of its batch (and
    labels, only ever completely validated, refused what predictions took)."""
    alone = post(client, "/v1/models/credit/predictions", [record(1, timestamp=text)])
    assert alone.status_code == 202
    mixed = post(
        client,
        "/v1/models/credit/predictions",
        [record(2, timestamp=text), record(3, prediction="maybe")],
    )
    assert mixed.status_code == 422
    assert [e["index"] for e in mixed.json()["errors"]] == [1]
    label = post(
        client, "/v1/models/credit/labels", [{"id": "r1", "label": "approved", "timestamp": text}]
    )
    assert label.status_code == 202
    assert stored(service) == (1, 1)


REFERENCE_CSV = {"content-type": "text/csv"}


def test_a_reference_csv_ending_rows_with_a_bare_cr_is_read(client: TestClient) -> None:
    """A carriage return alone ends a CSV row as well (schemathesis found it a 500)."""
    body = b"age,country\r\n30,DE\r31,FR\n32,GB\r\n"
    response = client.put("/v1/models/credit/reference", content=body, headers=REFERENCE_CSV)
    assert response.status_code == 201, response.text
    assert response.json()["n"] == 3


def test_a_reference_csv_the_csv_reader_refuses_is_400_naming_the_row(
    client: TestClient,
) -> None:
    """A cell over the csv module's field limit (128 KiB) raised ``csv.Error``: a 500."""
    body = b"age,country\n30,DE\n31," + b"x" * 200_000 + b"\n"
    response = client.put("/v1/models/credit/reference", content=body, headers=REFERENCE_CSV)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "CSV data row 1 cannot be read: field larger than field limit (131072)"
    )
