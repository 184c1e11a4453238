"""The ingest and model API through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.api import create_app
from monitor.config import Config
from monitor.service import Service
from monitor.storage import repository as repo


def record(i: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"r{i}",
        "timestamp": "2026-01-01T00:00:00Z",
        "features": {"age": 30 + i, "income": 1000.5 * i, "country": "DE"},
        "prediction": "approved",
    }
    base.update(overrides)
    return base


@pytest.fixture
def service(config: Config, engine: Engine) -> Service:
    return Service(config, engine=engine, registry=CollectorRegistry())


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as client:
        yield client


def post(client: TestClient, path: str, body: Any, **headers: str) -> Any:
    headers.setdefault("content-type", "application/json")
    return client.post(path, content=orjson.dumps(body), headers=headers)


def stored_ids(service: Service, model: str = "credit") -> set[str]:
    with service.engine.connect() as connection:
        return repo.prediction_ids(connection, model=model)


def test_batch_is_stored_and_duplicates_counted(client: TestClient, service: Service) -> None:
    response = post(client, "/v1/models/credit/predictions", [record(1), record(2)])
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "duplicates": 0}
    again = post(client, "/v1/models/credit/predictions", [record(2), record(3), record(3)])
    assert again.json() == {"accepted": 1, "duplicates": 2}
    assert stored_ids(service) == {"r1", "r2", "r3"}
    assert (
        service.registry.get_sample_value(
            "drift_monitor_records_ingested_total", {"model": "credit"}
        )
        == 3
    )
    assert (
        service.registry.get_sample_value(
            "drift_monitor_records_duplicate_total", {"model": "credit"}
        )
        == 2
    )


def test_records_wrapper_and_ndjson(client: TestClient, service: Service) -> None:
    wrapped = post(client, "/v1/models/credit/predictions", {"records": [record(1)]})
    assert wrapped.json() == {"accepted": 1, "duplicates": 0}
    lines = b"\n".join(orjson.dumps(record(i)) for i in (2, 3)) + b"\n"
    ndjson = client.post(
        "/v1/models/credit/predictions",
        content=lines,
        headers={"content-type": "application/x-ndjson"},
    )
    assert ndjson.status_code == 202 and ndjson.json() == {"accepted": 2, "duplicates": 0}
    assert stored_ids(service) == {"r1", "r2", "r3"}


def test_gzip_body(client: TestClient, service: Service) -> None:
    body = gzip.compress(orjson.dumps([record(i) for i in range(50)]))
    response = client.post(
        "/v1/models/credit/predictions",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.json() == {"accepted": 50, "duplicates": 0}
    assert len(stored_ids(service)) == 50


def test_invalid_batch_lists_every_problem_and_stores_nothing(
    client: TestClient, service: Service
) -> None:
    batch = [
        record(1),
        record(2, features={"age": "old", "income": None, "country": "DE", "height": 3}),
        record(3, prediction="maybe", timestamp="yesterday"),
        record(4, features={"age": 1, "country": "FR"}),
        "not an object",
    ]
    response = post(client, "/v1/models/credit/predictions", batch)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["title"] == "Invalid records"
    assert problem["type"] == "urn:drift-monitor:problem:invalid-records"
    assert problem["errors"] == [
        {
            "index": 1,
            "field": "features.age",
            "reason": "must be a number or null (numeric feature)",
        },
        {"index": 1, "field": "features.height", "reason": "not a feature of model 'credit'"},
        {
            "index": 2,
            "field": "timestamp",
            "reason": "must be an RFC 3339 date-time, e.g. 2024-05-01T12:00:00Z",
        },
        {
            "index": 2,
            "field": "prediction",
            "reason": "must be one of the classes: approved, rejected",
        },
        {
            "index": 3,
            "field": "features.income",
            "reason": "is missing (send null for a missing value)",
        },
        {"index": 4, "field": "", "reason": "must be an object"},
    ]
    assert stored_ids(service) == set()
    assert (
        service.registry.get_sample_value(
            "drift_monitor_records_rejected_total", {"model": "credit", "reason": "invalid_record"}
        )
        == 4
    )


def test_rejected_batch_leaves_earlier_data_intact(client: TestClient, service: Service) -> None:
    post(client, "/v1/models/credit/predictions", [record(1)])
    bad = post(client, "/v1/models/credit/predictions", [record(2), record(3, id=None)])
    assert bad.status_code == 422
    assert bad.json()["errors"] == [{"index": 1, "field": "id", "reason": "is required"}]
    assert stored_ids(service) == {"r1"}


def test_timestamps_null_features_and_scores(client: TestClient, service: Service) -> None:
    batch = [
        record(
            1,
            timestamp="2026-01-01T01:00:00+01:00",
            features={"age": None, "income": 5, "country": None},
            scores={"approved": 0.25, "rejected": 0.75},
        ),
        record(2, timestamp=None),
        record(3, timestamp=1767225600),
    ]
    assert post(client, "/v1/models/credit/predictions", batch).status_code == 202
    counts = client.get("/v1/models/credit").json()["counts"]
    assert counts["predictions"] == 3
    assert counts["first_timestamp"] == "2026-01-01T00:00:00Z"  # 1767225600


def test_naive_timestamp_and_bad_scores_are_refused(client: TestClient) -> None:
    batch = [
        record(1, timestamp="2026-01-01T00:00:00"),
        record(2, scores={"approved": 1.5, "other": 0.1}),
    ]
    errors = post(client, "/v1/models/credit/predictions", batch).json()["errors"]
    assert errors == [
        {"index": 0, "field": "timestamp", "reason": "needs a UTC offset (Z or +hh:mm)"},
        {"index": 1, "field": "scores.approved", "reason": "must be a probability between 0 and 1"},
        {"index": 1, "field": "scores.other", "reason": "not one of the classes"},
    ]


def test_regression_model(client: TestClient) -> None:
    good = {"id": "a", "features": {"rooms": 3, "city": "Paris"}, "prediction": 123.5}
    assert post(client, "/v1/models/price/predictions", [good]).status_code == 202
    bad = {
        "id": "b",
        "features": {"rooms": 3, "city": "Paris"},
        "prediction": "high",
        "scores": {"x": 1},
    }
    assert post(client, "/v1/models/price/predictions", [bad]).json()["errors"] == [
        {"index": 0, "field": "prediction", "reason": "must be a number (regression model)"},
        {"index": 0, "field": "scores", "reason": "only classification models take scores"},
    ]


def test_unknown_model_is_404(client: TestClient) -> None:
    response = post(client, "/v1/models/nope/predictions", [record(1)])
    assert response.status_code == 404
    assert response.json()["detail"] == "no model named 'nope' is configured"
    assert client.get("/v1/models/nope").status_code == 404


def test_malformed_json_is_400(client: TestClient, service: Service) -> None:
    response = client.post(
        "/v1/models/credit/predictions", content=b"[{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("body is not valid JSON")
    not_a_list = post(client, "/v1/models/credit/predictions", {"id": "x"})
    assert not_a_list.status_code == 400
    assert (
        service.registry.get_sample_value(
            "drift_monitor_records_rejected_total", {"model": "credit", "reason": "malformed_body"}
        )
        == 2
    )


def test_other_content_types_are_415(client: TestClient) -> None:
    response = client.post(
        "/v1/models/credit/predictions", content=b"a,b", headers={"content-type": "text/csv"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert "application/json" in response.json()["detail"]
    encoded = client.post(
        "/v1/models/credit/predictions",
        content=b"[]",
        headers={"content-type": "application/json", "content-encoding": "br"},
    )
    assert encoded.status_code == 415  # issue 12: an unsupported coding is 415


def test_body_over_the_limit_is_413_by_declared_length(
    client: TestClient, service: Service
) -> None:
    limit = service.config.server.max_body_bytes
    response = client.post(
        "/v1/models/credit/predictions",
        content=b"[" + b" " * limit + b"]",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["limit_bytes"] == limit


def test_streamed_body_over_the_limit_is_413(client: TestClient, service: Service) -> None:
    limit = service.config.server.max_body_bytes
    sent = 0

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        nonlocal sent
        yield b"["
        for _ in range(limit // 65536 + 2):
            sent += 65536
            yield b" " * 65536
        yield b"]"

    response = client.post(
        "/v1/models/credit/predictions",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_gzip_bomb_is_refused(client: TestClient, service: Service) -> None:
    limit = service.config.server.max_decompressed_bytes
    bomb = gzip.compress(b"[" + b" " * (limit + 10) + b"]")
    assert len(bomb) < service.config.server.max_body_bytes
    response = client.post(
        "/v1/models/credit/predictions",
        content=bomb,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 413
    assert response.json()["detail"].startswith("decompressed request body exceeds")


def test_labels_join_in_either_order_and_corrections(client: TestClient, service: Service) -> None:
    early = post(client, "/v1/models/credit/labels", [{"id": "r1", "label": "rejected"}])
    assert early.status_code == 202
    assert early.json() == {"accepted": 1, "duplicates": 0, "corrections": 0}
    post(client, "/v1/models/credit/predictions", [record(1), record(2)])
    late = post(
        client,
        "/v1/models/credit/labels",
        [{"id": "r2", "label": "approved", "timestamp": "2026-01-02T00:00:00Z"}],
    )
    assert late.json() == {"accepted": 1, "duplicates": 0, "corrections": 0}
    counts = client.get("/v1/models/credit").json()["counts"]
    assert counts["labels"] == 2 and counts["labelled_predictions"] == 2
    again = post(
        client,
        "/v1/models/credit/labels",
        [{"id": "r1", "label": "rejected"}, {"id": "r2", "label": "rejected"}],
    )
    assert again.json() == {"accepted": 0, "duplicates": 1, "corrections": 1}
    assert (
        service.registry.get_sample_value(
            "drift_monitor_label_corrections_total", {"model": "credit"}
        )
        == 1
    )


def test_invalid_labels(client: TestClient) -> None:
    response = post(
        client,
        "/v1/models/credit/labels",
        [{"id": "r1", "label": "nope"}, {"label": "approved", "extra": 1}],
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": 0, "field": "label", "reason": "must be one of the classes: approved, rejected"},
        {"index": 1, "field": "extra", "reason": "unknown field"},
        {"index": 1, "field": "id", "reason": "is required"},
    ]


def test_reference_upload_json_and_csv_is_versioned(client: TestClient) -> None:
    assert client.get("/v1/models/credit/reference").status_code == 404
    records = [
        {"features": {"age": 1, "income": 2.5, "country": "DE"}, "label": "approved"},
        {"features": {"age": None, "income": 3, "country": "FR"}},
    ]
    first = client.put(
        "/v1/models/credit/reference",
        content=orjson.dumps(records),
        headers={"content-type": "application/json"},
    )
    assert first.status_code == 201
    assert (first.json()["version"], first.json()["n"], first.json()["source"]) == (1, 2, "upload")
    csv = "age,income,country,prediction,label\n40,100.5,US,approved,rejected\n,7,,,\n41,8,GB,,\n"
    second = client.put(
        "/v1/models/credit/reference", content=csv.encode(), headers={"content-type": "text/csv"}
    )
    assert second.status_code == 201
    assert (second.json()["version"], second.json()["n"]) == (2, 3)
    assert client.get("/v1/models/credit/reference").json()["version"] == 2
    assert client.get("/v1/models/credit").json()["reference"]["version"] == 2


def test_a_csv_reference_carries_scores_as_replay_reads_them(
    client: TestClient, service: Service
) -> None:
    """``score_<class>`` columns, as ``monitor replay`` and the CSV export have them: the CSV
    reference stores what the same records as JSON store (the same digest), and the
    label-free estimate, calibrated on the reference's scores and labels, is the same."""
    import random
    import time

    rng = random.Random(5)
    reference = []
    for i in range(300):
        p = round(rng.uniform(0.05, 0.95), 6)
        reference.append(
            {
                "features": {"age": round(rng.gauss(40, 9), 3), "income": i / 7, "country": "DE"},
                "prediction": "approved" if p >= 0.5 else "rejected",
                "label": "approved" if rng.random() < p else "rejected",
                "scores": {"approved": p, "rejected": round(1 - p, 6)},
            }
        )
    reference[3]["scores"] = None  # a row without scores: its score cells are empty
    rows = ["age,income,country,prediction,score_approved,score_rejected,label"]
    for r in reference:
        scores = r["scores"] or {"approved": None, "rejected": None}
        cells = [*r["features"].values(), r["prediction"], *scores.values(), r["label"]]
        rows.append(",".join("" if c is None else str(c) for c in cells))
    as_json = client.put(
        "/v1/models/credit/reference",
        content=orjson.dumps([{k: v for k, v in r.items() if v is not None} for r in reference]),
        headers={"content-type": "application/json"},
    )
    assert as_json.status_code == 201
    records = [
        record(i, timestamp=None, scores={"approved": 0.7, "rejected": 0.3}) for i in range(40)
    ]
    assert post(client, "/v1/models/credit/predictions", records).status_code == 202
    at = time.time()
    from_json = service.evaluate("credit", at=at, webhooks=False).performance
    assert from_json is not None and from_json.estimated_accuracy is not None

    as_csv = client.put(
        "/v1/models/credit/reference",
        content="\n".join(rows).encode(),
        headers={"content-type": "text/csv"},
    )
    assert as_csv.status_code == 201, as_csv.json()
    assert (as_csv.json()["version"], as_csv.json()["digest"]) == (2, as_json.json()["digest"])
    from_csv = service.evaluate("credit", at=at, webhooks=False).performance
    assert from_csv == from_json


def test_invalid_reference_csv(client: TestClient) -> None:
    header_problem = client.put(
        "/v1/models/credit/reference",
        content=b"age,colour\n1,red\n",
        headers={"content-type": "text/csv"},
    )
    assert header_problem.status_code == 400
    assert header_problem.json()["detail"] == (
        "CSV header: unknown column(s) colour; missing feature column(s) income, country"
    )
    cell = client.put(
        "/v1/models/credit/reference",
        content=b"age,income,country\n1,2,DE\nold,2,DE\n",
        headers={"content-type": "text/csv"},
    )
    assert cell.status_code == 422
    assert cell.json()["errors"] == [
        {"index": 1, "field": "features.age", "reason": "'old' is not a finite number"}
    ]
    assert client.get("/v1/models/credit/reference").status_code == 404


def test_reference_csv_score_problems_name_the_class(client: TestClient) -> None:
    body = (
        b"age,income,country,score_approved,score_maybe\n"
        b"1,2,DE,high,\n"  # not a number
        b"1,2,DE,0.5,0.5\n"  # maybe is no class
        b"1,2,DE,1.5,\n"  # no probability
        b"1,2,DE,,\n"  # no scores: fine
    )
    response = client.put(
        "/v1/models/credit/reference", content=body, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": 0, "field": "scores.approved", "reason": "'high' is not a number"},
        {"index": 1, "field": "scores.maybe", "reason": "not one of the classes"},
        {"index": 2, "field": "scores.approved", "reason": "must be a probability between 0 and 1"},
    ]


def test_reference_csv_reports_parse_and_validation_problems_together(
    client: TestClient, service: Service
) -> None:
    """Indexes count data rows, blank lines included, for problems found while parsing the
    CSV and while validating its records alike; nothing is stored, each bad row counted once."""
    body = b"age,income,country,label\n1,2,DE,approved\n\nold,2,DE,\n3,4\n5,6,FR,maybe\n"
    response = client.put(
        "/v1/models/credit/reference", content=body, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": 2, "field": "features.age", "reason": "'old' is not a finite number"},
        {"index": 3, "field": "", "reason": "has 2 cells, the header 4"},
        {"index": 4, "field": "label", "reason": "must be one of the classes: approved, rejected"},
    ]
    assert client.get("/v1/models/credit/reference").status_code == 404
    rejected = service.metrics.records_rejected.labels("credit", "invalid_record")
    assert rejected._value.get() == 3


def test_reference_body_stores_what_the_parsed_records_store(
    client: TestClient, service: Service
) -> None:
    records = [
        {"features": {"age": i, "income": i / 3, "country": "DE" if i % 2 else None}}
        for i in range(40)
    ]
    uploaded = client.put(
        "/v1/models/credit/reference",
        content=b"\n".join(orjson.dumps(r) for r in records),
        headers={"content-type": "application/x-ndjson"},
    )
    assert uploaded.status_code == 201
    direct = service.store_reference("credit", records, source="direct")
    assert (direct.version, direct.n) == (2, 40)
    assert direct.digest == uploaded.json()["digest"]


def test_model_listing(client: TestClient) -> None:
    models = client.get("/v1/models").json()
    assert [m["name"] for m in models] == ["credit", "price"]
    credit = client.get("/v1/models/credit").json()
    assert credit["task"] == "classification"
    assert credit["classes"] == ["approved", "rejected"]
    assert credit["features"] == [
        {"name": "age", "type": "numeric"},
        {"name": "income", "type": "numeric"},
        {"name": "country", "type": "categorical"},
    ]
    assert credit["window"] == {"duration": "1h"}
    assert credit["counts"]["predictions"] == 0


def test_health_metrics_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"config": "ok", "database": "ok"}}
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'drift_monitor_records_ingested_total{model="credit"} 0.0' in metrics.text
    openmetrics = client.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/models/{model}/predictions"]["post"]["requestBody"]
    assert set(body["content"]) == {"application/json", "application/x-ndjson"}
    assert "PredictionIn" in spec["components"]["schemas"]
    labels = spec["paths"]["/v1/models/{model}/labels"]["post"]
    assert labels["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/LabelIn"},
    }
    stored = labels["responses"]["202"]["content"]["application/json"]["schema"]
    assert stored == {"$ref": "#/components/schemas/LabelIngestOut"}
    assert {"IngestOut", "LabelIngestOut", "LabelIn"} <= set(spec["components"]["schemas"])


def test_unknown_route_is_problem_json(client: TestClient) -> None:
    response = client.get("/v1/nothing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("kind", ["predictions", "labels"])
def test_ingest_routes_allow_only_post(client: TestClient, kind: str) -> None:
    response = client.get(f"/v1/models/credit/{kind}")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["instance"] == f"/v1/models/credit/{kind}"


def test_unexpected_ingest_error_is_500_problem_and_stores_nothing(
    client: TestClient, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("monitor.storage.repository.insert_predictions", broken)
    response = post(client, "/v1/models/credit/predictions", [record(1)])
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["title"]) == (500, "Internal Server Error")
    assert "disk on fire" not in response.text
    assert stored_ids(service) == set()


def test_ingest_answers_with_content_length(client: TestClient) -> None:
    response = post(client, "/v1/models/credit/predictions", [record(1)])
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json() == {"accepted": 1, "duplicates": 0}
