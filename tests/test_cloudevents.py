"""POST /v1/cloudevents: KServe's and Seldon Core v1's logged inferences, through the real app."""

from __future__ import annotations

import base64
import gzip
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from server_process import free_port, start_server
from sqlalchemy import Engine, func, select

from monitor.api import create_app
from monitor.config import Config, parse_config
from monitor.service import Service
from monitor.storage import create_database_engine
from monitor.storage.tables import cloudevent_halves, predictions

CONFIG_YAML = """
server:
  cloudevents: {pair_timeout: 30s}
models:
  - name: credit
    inference_service: credit-model
    task: classification
    classes: [approved, rejected]
    features:
      - {name: age, type: numeric}
      - {name: income, type: numeric}
      - {name: country, type: categorical}
  - name: price
    task: regression
    features:
      - {name: rooms, type: numeric}
      - {name: city, type: categorical}
"""

KSERVE_REQUEST = "org.kubeflow.serving.inference.request"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"
SELDON_REQUEST = "io.seldon.serving.inference.request"
SELDON_RESPONSE = "io.seldon.serving.inference.response"
SELDON_FEEDBACK = "io.seldon.serving.feedback"
TIME = "2026-11-23T12:00:00Z"


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_435_200.0  # TIME: the events' times are not ahead of the clock

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config() -> Config:
    return parse_config(CONFIG_YAML)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(config: Config, engine: Engine, clock: Clock) -> Service:
    return Service(config, engine=engine, registry=CollectorRegistry(), clock=clock)


@contextmanager
def serving(service: Service) -> Iterator[TestClient]:
    """The app of a started service without its scheduled jobs: expiry runs when the tests
    say (or at an event), on the test's clock."""
    service.start(run_jobs=False)
    with TestClient(create_app(service, manage_service=False, stop_service=True)) as client:
        yield client


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with serving(service) as client:
        yield client


def kserve(
    client: httpx.Client,
    ce_type: str,
    ce_id: str,
    data: Any,
    *,
    service: str | None = "credit-model",
    time: str | None = TIME,
    **extra: str,
) -> Any:
    """A binary-mode event as KServe's agent sends it."""
    headers = {
        "content-type": "application/json",
        "ce-id": ce_id,
        "ce-type": ce_type,
        "ce-specversion": "1.0",
        "ce-source": f"http://localhost:9081/{service or 'credit-model'}",
        "ce-namespace": "models",
        "ce-component": "predictor",
        "ce-endpoint": f"{service}-predictor",
        **extra,
    }
    if service is not None:
        headers["ce-inferenceservicename"] = service
    if time is not None:
        headers["ce-time"] = time
    return client.post("/v1/cloudevents", content=orjson.dumps(data), headers=headers)


def seldon(client: TestClient, ce_type: str, ce_id: str, request_id: str, data: Any) -> Any:
    headers = {
        "content-type": "application/json",
        "ce-id": ce_id,
        "ce-type": ce_type,
        "ce-specversion": "1.0",
        "ce-source": "http://10.1.2.3:8000/",
        "ce-modelid": "classifier",
        "ce-inferenceservicename": "price",
        "ce-namespace": "seldon",
        "ce-endpoint": "default",
        "ce-requestid": request_id,
    }
    return client.post("/v1/cloudevents", content=orjson.dumps(data), headers=headers)


def exported(client: TestClient, model: str = "credit") -> list[dict[str, Any]]:
    response = client.get(f"/v1/models/{model}/export", params={"start": "0", "end": "4102444800"})
    assert response.status_code == 200, response.text
    rows = [orjson.loads(line) for line in response.text.splitlines() if line]
    return sorted(
        (
            {
                k: row.get(k)
                for k in ("id", "timestamp", "features", "prediction", "scores", "label")
            }
            for row in rows
        ),
        key=lambda r: r["id"],
    )


def unpaired(service: Service, model: str, kind: str) -> float:
    value = service.registry.get_sample_value(
        "drift_monitor_cloudevents_unpaired_total", {"model": model, "kind": kind}
    )
    assert value is not None
    return value


V1_REQUEST = {"instances": [[42, 1200.5, "DE"]]}
V1_RESPONSE = {"predictions": ["approved"]}
APPROVED_42 = {
    "id": "ev-1",
    "features": {"age": 42, "income": 1200.5, "country": "DE"},
    "prediction": "approved",
    "scores": None,
    "label": None,
}


def strip_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "timestamp"} for row in rows]


# -- KServe v1 --------------------------------------------------------------------------------


def test_request_then_response_is_one_record(client: TestClient) -> None:
    first = kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending"
    assert exported(client) == []
    second = kserve(client, KSERVE_RESPONSE, "ev-1", V1_RESPONSE)
    assert second.status_code == 200, second.text
    assert second.json()["accepted"] == 1
    (row,) = exported(client)
    assert strip_time([row]) == [APPROVED_42]
    assert row["timestamp"] is not None and row["timestamp"].startswith("2026-11-23T12:00:00")


def test_response_first_pairs_the_same(client: TestClient) -> None:
    assert kserve(client, KSERVE_RESPONSE, "ev-1", V1_RESPONSE).json()["status"] == "pending"
    assert kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST).json()["status"] == "stored"
    assert strip_time(exported(client)) == [APPROVED_42]


def test_object_rows_and_class_probabilities_become_scores(client: TestClient) -> None:
    request = {
        "instances": [
            {"age": 30, "income": 10.0, "country": "FR"},
            {"age": 31, "income": 20.0, "country": "IT"},
        ]
    }
    kserve(client, KSERVE_REQUEST, "batch", request)
    answer = kserve(client, KSERVE_RESPONSE, "batch", {"predictions": [[0.2, 0.8], [0.9, 0.1]]})
    assert answer.status_code == 200, answer.text
    assert strip_time(exported(client)) == [
        {
            "id": "batch-0",
            "features": {"age": 30, "income": 10.0, "country": "FR"},
            "prediction": "rejected",
            "scores": {"approved": 0.2, "rejected": 0.8},
            "label": None,
        },
        {
            "id": "batch-1",
            "features": {"age": 31, "income": 20.0, "country": "IT"},
            "prediction": "approved",
            "scores": {"approved": 0.9, "rejected": 0.1},
            "label": None,
        },
    ]


def test_labels_join_by_the_event_ids(client: TestClient) -> None:
    kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST)
    kserve(client, KSERVE_RESPONSE, "ev-1", V1_RESPONSE)
    labels = client.post("/v1/models/credit/labels", json=[{"id": "ev-1", "label": "rejected"}])
    assert labels.status_code == 202
    assert exported(client)[0]["label"] == "rejected"


def test_unpaired_request_expires_and_is_counted(
    client: TestClient, service: Service, clock: Clock
) -> None:
    kserve(client, KSERVE_REQUEST, "lonely", V1_REQUEST)
    clock.now += 29
    kserve(client, KSERVE_REQUEST, "other", V1_REQUEST)
    assert unpaired(service, "credit", "request") == 0
    clock.now += 2  # "lonely" is now 31 s old, "other" 2 s
    late = kserve(client, KSERVE_RESPONSE, "lonely", V1_RESPONSE)
    assert late.status_code == 200
    assert late.json()["status"] == "pending"  # its request was dropped
    assert unpaired(service, "credit", "request") == 1
    assert unpaired(service, "credit", "response") == 0
    assert kserve(client, KSERVE_RESPONSE, "other", V1_RESPONSE).json()["status"] == "stored"
    assert [r["id"] for r in exported(client)] == ["other"]
    clock.now += 31
    kserve(client, KSERVE_REQUEST, "third", V1_REQUEST)
    assert unpaired(service, "credit", "response") == 1


def test_resent_events_are_deduplicated(client: TestClient, service: Service, clock: Clock) -> None:
    kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST)
    again = kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    kserve(client, KSERVE_RESPONSE, "ev-1", V1_RESPONSE)
    # the request half re-sent after its pair was stored waits for nothing and stores nothing
    late = kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST)
    assert late.status_code == 200
    assert late.json()["status"] == "duplicate"
    assert kserve(client, KSERVE_RESPONSE, "ev-1", V1_RESPONSE).json()["status"] == "duplicate"
    clock.now += 60
    kserve(client, KSERVE_REQUEST, "ev-2", V1_REQUEST)
    assert unpaired(service, "credit", "request") == 0  # ev-2 is still fresh
    assert strip_time(exported(client)) == [APPROVED_42]


def test_percent_encoded_headers_and_source_fallback(client: TestClient) -> None:
    kserve(
        client,
        KSERVE_REQUEST,
        "id%20with%2Fslash",
        V1_REQUEST,
        service=None,
        **{
            "ce-source": "http%3A%2F%2Flocalhost%3A9081%2Fcredit-model",
            "ce-time": TIME.replace(":", "%3A"),
        },
    )
    answer = kserve(
        client,
        KSERVE_RESPONSE,
        "id%20with%2Fslash",
        V1_RESPONSE,
        service=None,
        **{"ce-source": "http%3A%2F%2Flocalhost%3A9081%2Fcredit-model"},
    )
    assert answer.status_code == 200, answer.text
    (row,) = exported(client)
    assert row["id"] == "id with/slash"
    assert row["timestamp"].startswith("2026-11-23T12:00:00")


@pytest.mark.parametrize("coding", ["br", "deflate", "gzip, gzip", "zstd"])
def test_an_unsupported_content_coding_is_415(client: TestClient, coding: str) -> None:
    """The body was read as if it had no coding: ``br`` of plain JSON was stored."""
    response = kserve(
        client, KSERVE_REQUEST, "ev-coded", V1_REQUEST, **{"content-encoding": coding}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        f"Content-Encoding {coding!r} is not supported (send gzip or no encoding)"
    )
    assert kserve(client, KSERVE_RESPONSE, "ev-coded", V1_RESPONSE).json()["status"] == "pending"


def test_a_gzip_event_is_read(client: TestClient) -> None:
    """A gzip body was parsed as JSON text: 400 "the event's data is not JSON"."""
    headers = {
        "content-type": "application/json",
        "content-encoding": "gzip",
        "ce-id": "ev-gz",
        "ce-type": KSERVE_REQUEST,
        "ce-specversion": "1.0",
        "ce-source": "http://localhost:9081/credit-model",
        "ce-inferenceservicename": "credit-model",
        "ce-time": TIME,
    }
    response = client.post(
        "/v1/cloudevents", content=gzip.compress(orjson.dumps(V1_REQUEST)), headers=headers
    )
    assert response.status_code == 200, response.text
    assert kserve(client, KSERVE_RESPONSE, "ev-gz", V1_RESPONSE).json()["status"] == "stored"
    assert strip_time(exported(client)) == [{**APPROVED_42, "id": "ev-gz"}]


def test_unknown_service_is_404(client: TestClient) -> None:
    answer = kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST, service="fraud-model")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert "fraud-model" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not JSON"),
        (orjson.dumps({"rows": [[1, 2, "DE"]]}), 422, "instances"),
        (orjson.dumps({"instances": [[1, 2]]}), 422, "has 2 values"),
    ],
)
def test_malformed_body_is_a_problem(
    client: TestClient, body: bytes, status: int, needle: str
) -> None:
    headers = {
        "content-type": "application/json",
        "ce-id": "bad",
        "ce-type": KSERVE_REQUEST,
        "ce-specversion": "1.0",
        "ce-source": "x",
        "ce-inferenceservicename": "credit-model",
    }
    answer = client.post("/v1/cloudevents", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert needle in answer.json()["detail"]


def test_missing_attributes_and_unknown_type_are_400(client: TestClient) -> None:
    no_id = client.post(
        "/v1/cloudevents",
        json=V1_REQUEST,
        headers={"ce-type": KSERVE_REQUEST, "ce-specversion": "1.0", "ce-source": "x"},
    )
    assert no_id.status_code == 400
    assert "ce-id" in no_id.json()["detail"]
    other = kserve(client, "com.example.thing", "ev-1", V1_REQUEST)
    assert other.status_code == 400
    assert "com.example.thing" in other.json()["detail"]


@pytest.mark.parametrize(
    ("header", "value"), [("ce-id", "ev%00-1"), ("ce-requestid", "r%00"), ("ce-time", "%00")]
)
def test_a_nul_in_a_stored_attribute_is_422(client: TestClient, header: str, value: str) -> None:
    """PostgreSQL's text columns refuse NUL: refused alike on both databases, before any
    write."""
    if header == "ce-time":
        answer = kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST, time=value)
    else:
        answer = kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST, **{header: value})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == f"{header} must not contain the NUL character (\\u0000)"
    structured = client.post(
        "/v1/cloudevents",
        content=orjson.dumps(
            {
                "specversion": "1.0",
                "id": "ev\x00-2",
                "type": KSERVE_REQUEST,
                "source": "x",
                "inferenceservicename": "credit-model",
                "data": V1_REQUEST,
            }
        ),
        headers={"content-type": "application/cloudevents+json"},
    )
    assert structured.status_code == 422, structured.text
    assert kserve(client, KSERVE_REQUEST, "ev-3", V1_REQUEST).status_code == 200


def test_an_event_time_out_of_range_is_422_naming_the_timestamp(
    client: TestClient, clock: Clock
) -> None:
    kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST, time="1969-12-31T23:59:59Z")
    answer = kserve(client, KSERVE_RESPONSE, "ev-1", V1_RESPONSE, time="1969-12-31T23:59:59Z")
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"index": 0, "field": "timestamp", "reason": "must not be before 1970-01-01T00:00:00Z"}
    ]
    late = "2026-11-24T12:00:01Z"  # a day and a second ahead of the clock
    kserve(client, KSERVE_REQUEST, "ev-2", V1_REQUEST, time=late)
    answer = kserve(client, KSERVE_RESPONSE, "ev-2", V1_RESPONSE, time=late)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "timestamp"
    assert exported(client) == []


def test_invalid_records_are_422_and_nothing_stored(client: TestClient) -> None:
    kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST)
    answer = kserve(client, KSERVE_RESPONSE, "ev-1", {"predictions": ["maybe"]})
    assert answer.status_code == 422
    assert exported(client) == []


def test_structured_mode_with_data_and_data_base64(client: TestClient) -> None:
    def structured(ce_type: str, **data: Any) -> Any:
        envelope = {
            "specversion": "1.0",
            "id": "st-1",
            "type": ce_type,
            "source": "http://localhost:9081/",
            "time": TIME,
            "inferenceservicename": "credit-model",
            **data,
        }
        return client.post(
            "/v1/cloudevents",
            content=orjson.dumps(envelope),
            headers={"content-type": "application/cloudevents+json; charset=utf-8"},
        )

    assert structured(KSERVE_REQUEST, data=V1_REQUEST).status_code == 200
    encoded = base64.b64encode(orjson.dumps(V1_RESPONSE)).decode()
    answer = structured(KSERVE_RESPONSE, data_base64=encoded)
    assert answer.status_code == 200, answer.text
    assert strip_time(exported(client)) == [{**APPROVED_42, "id": "st-1"}]


# -- KServe v2 (Open Inference Protocol) ------------------------------------------------------


def test_v2_one_2d_tensor_with_probabilities(client: TestClient) -> None:
    request = {
        "id": "x",
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 3],
                "datatype": "BYTES",
                "data": [50, 5.5, "DE", 60, 6.5, "FR"],
            }
        ],
    }
    response = {
        "model_name": "credit",
        "outputs": [
            {
                "name": "output-0",
                "shape": [2, 2],
                "datatype": "FP64",
                "data": [[0.7, 0.3], [0.4, 0.6]],
            }
        ],
    }
    assert kserve(client, KSERVE_REQUEST, "v2", request).status_code == 200
    answer = kserve(client, KSERVE_RESPONSE, "v2", response)
    assert answer.status_code == 200, answer.text
    assert strip_time(exported(client)) == [
        {
            "id": "v2-0",
            "features": {"age": 50, "income": 5.5, "country": "DE"},
            "prediction": "approved",
            "scores": {"approved": 0.7, "rejected": 0.3},
            "label": None,
        },
        {
            "id": "v2-1",
            "features": {"age": 60, "income": 6.5, "country": "FR"},
            "prediction": "rejected",
            "scores": {"approved": 0.4, "rejected": 0.6},
            "label": None,
        },
    ]


def test_v2_one_tensor_per_feature_regression(client: TestClient) -> None:
    request = {
        "inputs": [
            {"name": "city", "shape": [1], "datatype": "BYTES", "data": ["Berlin"]},
            {"name": "rooms", "shape": [1], "datatype": "INT64", "data": [3]},
        ]
    }
    response = {
        "outputs": [{"name": "predict", "shape": [1, 1], "datatype": "FP64", "data": [250000.0]}]
    }
    kserve(client, KSERVE_RESPONSE, "p-1", response, service="price")
    answer = kserve(client, KSERVE_REQUEST, "p-1", request, service="price")
    assert answer.status_code == 200, answer.text
    assert strip_time(exported(client, "price")) == [
        {
            "id": "p-1",
            "features": {"rooms": 3, "city": "Berlin"},
            "prediction": 250000.0,
            "scores": None,
            "label": None,
        }
    ]


def test_v2_shape_mismatch_is_422(client: TestClient) -> None:
    request = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3]}]}
    answer = kserve(client, KSERVE_REQUEST, "v2", request)
    assert answer.status_code == 422
    assert "shape" in answer.json()["detail"]


# -- Seldon Core v1 ---------------------------------------------------------------------------


def test_seldon_pairs_by_request_id_and_feedback_labels(client: TestClient) -> None:
    request = {"data": {"names": ["city", "rooms"], "ndarray": [["Paris", 2], ["Rome", 4]]}}
    response = {"data": {"names": ["t:0"], "tensor": {"shape": [2, 1], "values": [100.0, 200.0]}}}
    # each half has its own ce-id; ce-requestid pairs them
    assert seldon(client, SELDON_REQUEST, "a1", "puid-7", request).json()["status"] == "pending"
    stored = seldon(client, SELDON_RESPONSE, "b2", "puid-7", response)
    assert stored.status_code == 200, stored.text
    assert stored.json()["accepted"] == 2
    # a retried request (a new ce-id, the same request id) after its pair was stored
    assert seldon(client, SELDON_REQUEST, "a1-retry", "puid-7", request).json() == {
        "model": "price",
        "id": "a1-retry",
        "type": SELDON_REQUEST,
        "status": "duplicate",
    }
    feedback = {
        "request": request,
        "response": response,
        "reward": 1.0,
        "truth": {"data": {"ndarray": [[110.0], [190.0]]}},
    }
    labelled = seldon(client, SELDON_FEEDBACK, "c3", "puid-7", feedback)
    assert labelled.status_code == 200, labelled.text
    assert seldon(client, SELDON_FEEDBACK, "c3", "puid-7", feedback).json()["status"] == "duplicate"
    assert strip_time(exported(client, "price")) == [
        {
            "id": "puid-7-0",
            "features": {"rooms": 2, "city": "Paris"},
            "prediction": 100.0,
            "scores": None,
            "label": 110.0,
        },
        {
            "id": "puid-7-1",
            "features": {"rooms": 4, "city": "Rome"},
            "prediction": 200.0,
            "scores": None,
            "label": 190.0,
        },
    ]


def test_ingest_token_is_required_when_configured(engine: Engine) -> None:
    token = "i" * 20
    config = parse_config(
        CONFIG_YAML.replace("server:\n", f"server:\n  auth: {{ingest_tokens: ['{token}']}}\n")
    )
    service = Service(config, engine=engine, registry=CollectorRegistry())
    with TestClient(create_app(service)) as client:
        assert kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST).status_code == 401
        answer = kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST, authorization=f"Bearer {token}")
        assert answer.status_code == 200


def test_config_rejects_unknown_cloudevents_keys() -> None:
    with pytest.raises(ValueError, match="pair_timeout_s"):
        parse_config(CONFIG_YAML.replace("pair_timeout: 30s", "pair_timeout_s: 30"))
    assert parse_config(CONFIG_YAML).server.cloudevents.pair_timeout.total_seconds() == 30


# -- pairing state in the database: restarts, replicas, races, expiry -------------------------


def replica(config: Config, database_url: str, clock: Clock) -> Service:
    """A service of its own (engine, registry) on the shared database: another process."""
    return Service(
        config,
        engine=create_database_engine(database_url),
        registry=CollectorRegistry(),
        clock=clock,
    )


def stored_ids(database_url: str, model: str = "credit") -> list[str]:
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            return sorted(
                connection.execute(select(predictions.c.id).where(predictions.c.model == model))
                .scalars()
                .all()
            )
    finally:
        engine.dispose()


def waiting_halves(database_url: str) -> int:
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).where(cloudevent_halves.c.kind != "paired")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_pending_half_survives_a_restart(config: Config, database_url: str, clock: Clock) -> None:
    first = replica(config, database_url, clock)
    with serving(first) as client:
        assert kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST).json()["status"] == "pending"
    del first  # the process is gone; only the database remains
    clock.now += 20
    second = replica(config, database_url, clock)
    with serving(second) as client:
        answer = kserve(client, KSERVE_RESPONSE, "ev-1", V1_RESPONSE)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "stored"
        assert answer.json()["accepted"] == 1
        assert strip_time(exported(client)) == [APPROVED_42]
        # the request re-sent to the new process is still known
        assert kserve(client, KSERVE_REQUEST, "ev-1", V1_REQUEST).json()["status"] == "duplicate"
    assert waiting_halves(database_url) == 0


def test_halves_on_two_replicas_pair_once(config: Config, database_url: str, clock: Clock) -> None:
    a, b = replica(config, database_url, clock), replica(config, database_url, clock)
    with serving(a) as on_a, serving(b) as on_b:
        assert kserve(on_a, KSERVE_REQUEST, "ev-1", V1_REQUEST).json()["status"] == "pending"
        # the same half re-sent, to the other replica
        assert kserve(on_b, KSERVE_REQUEST, "ev-1", V1_REQUEST).json()["status"] == "duplicate"
        stored = kserve(on_b, KSERVE_RESPONSE, "ev-1", V1_RESPONSE)
        assert stored.json() == {
            "model": "credit",
            "id": "ev-1",
            "type": KSERVE_RESPONSE,
            "status": "stored",
            "accepted": 1,
            "duplicates": 0,
        }
        assert kserve(on_a, KSERVE_RESPONSE, "ev-1", V1_RESPONSE).json()["status"] == "duplicate"
        assert kserve(on_a, KSERVE_REQUEST, "ev-1", V1_REQUEST).json()["status"] == "duplicate"
        # Seldon: a retried half (a new ce-id, the same request id) on the other replica
        request = {"data": {"ndarray": [[2, "Paris"]]}}
        response = {"data": {"ndarray": [[100.0]]}}
        assert seldon(on_a, SELDON_REQUEST, "a1", "puid-1", request).json()["status"] == "pending"
        assert seldon(on_b, SELDON_RESPONSE, "b1", "puid-1", response).json()["status"] == "stored"
        retried = seldon(on_b, SELDON_RESPONSE, "b1-retry", "puid-1", response)
        assert retried.json()["status"] == "duplicate"
        assert strip_time(exported(on_a)) == strip_time(exported(on_b)) == [APPROVED_42]
    assert stored_ids(database_url) == ["ev-1"]
    assert stored_ids(database_url, "price") == ["puid-1"]
    assert (
        a.registry.get_sample_value("drift_monitor_records_ingested_total", {"model": "credit"})
        == 0
    )
    assert (
        b.registry.get_sample_value("drift_monitor_records_ingested_total", {"model": "credit"})
        == 1
    )


def test_concurrent_halves_on_two_replicas_pair_exactly_once(
    config: Config, database_url: str, clock: Clock
) -> None:
    """Both halves of each inference posted at once, to different replicas, some re-sent; and
    Seldon responses retried under a new ce-id at once on both replicas. Every pair is stored
    exactly once (one ``stored`` answer each) and no half is left waiting."""
    pairs = 60 if database_url.startswith("postgresql") else 30
    a, b = replica(config, database_url, clock), replica(config, database_url, clock)
    request = {"data": {"ndarray": [[2, "Paris"]]}}
    response = {"data": {"ndarray": [[100.0]]}}
    with serving(a) as on_a, serving(b) as on_b, ThreadPoolExecutor(16) as pool:
        posts = []
        for i in range(pairs):
            first, second = (on_a, on_b) if i % 2 else (on_b, on_a)
            posts.append((first, KSERVE_REQUEST, f"c-{i}", V1_REQUEST))
            posts.append((second, KSERVE_RESPONSE, f"c-{i}", V1_RESPONSE))
            if i % 5 == 0:  # a re-sent request, to the other replica
                posts.append((second, KSERVE_REQUEST, f"c-{i}", V1_REQUEST))
        started = time.monotonic()
        answers = list(pool.map(lambda post: kserve(*post).json(), posts))
        requests = [(on_a, SELDON_REQUEST, f"a-{i}", f"s-{i}", request) for i in range(pairs)]
        responses = [
            (replica_client, SELDON_RESPONSE, f"b-{i}{retry}", f"s-{i}", response)
            for i in range(pairs)
            for replica_client, retry in ((on_a, ""), (on_b, "-retry"))
        ]
        for posts_at_once in (requests, responses):
            answers += pool.map(lambda post: seldon(*post).json(), posts_at_once)
        assert time.monotonic() - started < 10
    statuses: dict[str, list[str]] = {}
    for answer in answers:
        key = answer["id"].removesuffix("-retry").replace("a-", "s-").replace("b-", "s-")
        statuses.setdefault(key, []).append(answer["status"])
    for i in range(pairs):
        resent = ["duplicate"] if i % 5 == 0 else []
        assert sorted(statuses[f"c-{i}"]) == sorted(["pending", "stored", *resent]), i
        assert sorted(statuses[f"s-{i}"]) == ["duplicate", "pending", "stored"], i
    assert stored_ids(database_url) == sorted(f"c-{i}" for i in range(pairs))
    assert stored_ids(database_url, "price") == sorted(f"s-{i}" for i in range(pairs))
    assert waiting_halves(database_url) == 0
    for model in ("credit", "price"):
        ingested = sum(
            s.registry.get_sample_value("drift_monitor_records_ingested_total", {"model": model})
            or 0
            for s in (a, b)
        )
        assert ingested == pairs


def test_expiry_counts_unpaired_halves_once_and_deletes_them(
    config: Config, database_url: str, clock: Clock
) -> None:
    a, b = replica(config, database_url, clock), replica(config, database_url, clock)
    with serving(a) as on_a, serving(b):
        kserve(on_a, KSERVE_REQUEST, "r-1", V1_REQUEST)
        kserve(on_a, KSERVE_REQUEST, "r-2", V1_REQUEST)
        kserve(on_a, KSERVE_RESPONSE, "s-1", V1_RESPONSE)
        kserve(on_a, KSERVE_REQUEST, "p-1", V1_REQUEST)
        kserve(on_a, KSERVE_RESPONSE, "p-1", V1_RESPONSE)  # paired: never counted
        clock.now += 29
        assert b.cloudevents.expire() == 0
        assert waiting_halves(database_url) == 3
        clock.now += 1  # 30 s: the pair_timeout
        assert b.cloudevents.expire() == 3
        assert a.cloudevents.expire() == 0  # deleted, and counted, by one replica
        assert waiting_halves(database_url) == 0
        assert unpaired(b, "credit", "request") == 2
        assert unpaired(b, "credit", "response") == 1
        assert unpaired(a, "credit", "request") == unpaired(a, "credit", "response") == 0
        # the late other half waits afresh (and the pair's memory outlives the halves)
        late = kserve(on_a, KSERVE_RESPONSE, "r-1", V1_RESPONSE)
        assert late.json()["status"] == "pending"
        assert kserve(on_a, KSERVE_REQUEST, "p-1", V1_REQUEST).json()["status"] == "duplicate"
    assert stored_ids(database_url) == ["p-1"]


def test_expiry_is_a_scheduled_job(config: Config, engine: Engine) -> None:
    clock = Clock()
    service = Service(config, engine=engine, registry=CollectorRegistry(), clock=clock)
    with TestClient(create_app(service)) as client:
        kserve(client, KSERVE_REQUEST, "lonely", V1_REQUEST)
        clock.now += 3600
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and unpaired(service, "credit", "request") == 0:
            time.sleep(0.1)
        assert unpaired(service, "credit", "request") == 1


SERVE_CONFIG = """
server: {host: 127.0.0.1, port: 1}
storage: {url: "%s"}
models:
  - name: credit
    inference_service: credit-model
    task: classification
    classes: [approved, rejected]
    features:
      - {name: age, type: numeric}
      - {name: income, type: numeric}
      - {name: country, type: categorical}
"""


def test_a_pending_half_survives_sigkill(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(SERVE_CONFIG % database_url)
    log = tmp_path / "server.log"
    port = free_port()
    process = start_server(config, port, log)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        first = kserve(client, KSERVE_REQUEST, "killed", V1_REQUEST)
        assert first.json()["status"] == "pending", log.read_text()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    restarted = start_server(config, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            answer = kserve(client, KSERVE_RESPONSE, "killed", V1_RESPONSE)
            assert answer.json()["status"] == "stored", log.read_text()
        assert stored_ids(database_url) == ["killed"]
    finally:
        restarted.terminate()
        restarted.wait(timeout=15)
