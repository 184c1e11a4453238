"""Model versions: a prediction record may carry ``model_version`` (JSON, NDJSON, the Python
client, CloudEvents); it is stored (schema version 13) and each evaluation's lineage counts the
versions seen in its window. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, inspect, select, text

from monitor.api import create_app
from monitor.client import Monitor
from monitor.config import parse_config
from monitor.ingest.fast import FastPredictionDecoder
from monitor.ingest.validate import RecordValidator
from monitor.service import Service
from monitor.storage import migrate
from monitor.storage.migrations import STEPS
from monitor.storage.tables import predictions, schema_version

NOW = 1_800_000_000.0
CONFIG = """
models:
  - name: credit
    inference_service: credit-model
    task: classification
    classes: [approved, rejected]
    features:
      - {name: age, type: numeric}
      - {name: country, type: categorical}
    window: {duration: 1h}
    min_samples: 10
"""


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def service(engine: Engine) -> Service:
    return Service(parse_config(CONFIG), engine=engine, registry=CollectorRegistry(), clock=Clock())


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with serving(service) as client:
        yield client


@contextmanager
def serving(service: Service) -> Iterator[TestClient]:
    """The app of a started service without its scheduled jobs: evaluations run when the
    tests say."""
    service.start(run_jobs=False)
    with TestClient(create_app(service, manage_service=False, stop_service=True)) as client:
        yield client


def record(i: int, version: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"r{i}",
        "timestamp": NOW - 1 - i,
        "features": {"age": 30.0 + i % 7, "country": "DE" if i % 2 else "FR"},
        "prediction": "approved" if i % 3 else "rejected",
    }
    if version is not None:
        body["model_version"] = version
    return body


def stored_versions(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as connection:
        rows = connection.execute(select(predictions.c.id, predictions.c.model_version))
        return {record_id: version for record_id, version in rows}


def post(client: TestClient, body: bytes, media_type: str = "application/json") -> Any:
    return client.post(
        "/v1/models/credit/predictions", content=body, headers={"content-type": media_type}
    )


def test_json_and_ndjson_records_keep_their_version(client: TestClient, engine: Engine) -> None:
    versions = ["v1", "v2", None, "v1"]
    array = [record(i, v) for i, v in enumerate(versions)]
    assert post(client, orjson.dumps(array)).status_code == 202
    lines = b"\n".join(orjson.dumps(record(10 + i, v)) for i, v in enumerate(versions))
    assert post(client, lines, "application/x-ndjson").status_code == 202
    expected = {f"r{i}": v for i, v in enumerate(versions)}
    expected |= {f"r{10 + i}": v for i, v in enumerate(versions)}
    assert stored_versions(engine) == expected


@pytest.mark.parametrize(
    ("version", "reason"),
    [(5, "must be a string"), ("", "must be a string"), ("x" * 129, "1 to 128 characters")],
)
def test_an_invalid_version_is_422_naming_the_field(
    client: TestClient, version: object, reason: str
) -> None:
    body = record(0, None) | {"model_version": version}
    answer = post(client, orjson.dumps([body]))
    assert answer.status_code == 422, answer.text
    text = answer.text
    assert "model_version" in text and reason in text


def test_the_fast_path_takes_versions_as_the_validator_does() -> None:
    model = parse_config(CONFIG).models[0]
    body = orjson.dumps([record(i, ("v1", None, "v2")[i % 3]) for i in range(9)])
    fast = FastPredictionDecoder(model).predictions(body, "application/json", received_at=NOW)
    full = RecordValidator(model).predictions(orjson.loads(body), received_at=NOW)
    assert fast is not None
    assert fast.model_versions == full.model_versions == ["v1", None, "v2"] * 3
    unversioned = orjson.dumps([record(i, None) for i in range(3)])
    fast = FastPredictionDecoder(model).predictions(
        unversioned, "application/json", received_at=NOW
    )
    assert fast is not None and fast.model_versions is None


def test_the_evaluation_counts_the_versions_in_its_window(client: TestClient) -> None:
    versions = ["v1"] * 30 + ["v2"] * 12 + [None] * 5
    assert (
        post(client, orjson.dumps([record(i, v) for i, v in enumerate(versions)])).status_code
        == 202
    )
    old = record(99, "v0") | {"timestamp": NOW - 7200}  # outside the window
    assert post(client, orjson.dumps([old])).status_code == 202
    evaluation = client.post("/v1/models/credit/evaluate").json()
    assert evaluation["lineage"]["model_versions"] == {"v1": 30, "v2": 12}


def test_migration_13_upgrades_a_version_12_database(engine: Engine) -> None:
    assert migrate(engine) == len(STEPS) == 13
    with engine.begin() as connection:  # back to version 12, with a record stored
        connection.execute(text("ALTER TABLE predictions DROP COLUMN model_version"))
        connection.execute(schema_version.update().values(version=12))
        connection.execute(
            text(
                "INSERT INTO predictions (model, id, ts, received_at, features)"
                " VALUES ('credit', 'old', 1.0, 1.0, :features)"
            ),
            {"features": b"\x80"},
        )
    assert "model_version" not in {c["name"] for c in inspect(engine).get_columns("predictions")}
    assert migrate(engine) == 13
    assert stored_versions(engine) == {"old": None}
    assert migrate(engine) == 13  # again: nothing to do


def test_the_client_sends_the_version() -> None:
    sent: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.extend(orjson.loads(request.content))  # a JSON array of records
        return httpx.Response(202, json={"accepted": 1, "duplicates": 0})

    monitor = Monitor(
        "http://monitor", "credit", batch_size=1, transport=httpx.MockTransport(handle)
    )
    monitor.log_prediction("a", {"age": 1}, "approved", model_version="v7")
    monitor.log_prediction("b", {"age": 2}, "approved")
    assert monitor.close(timeout=None) is True
    by_id = {r["id"]: r for r in sent}
    assert by_id["a"]["model_version"] == "v7" and "model_version" not in by_id["b"]


def kserve(client: TestClient, ce_type: str, data: Any, **headers: str) -> Any:
    return client.post(
        "/v1/cloudevents",
        content=orjson.dumps(data),
        headers={
            "content-type": "application/json",
            "ce-id": "ev-1",
            "ce-type": f"org.kubeflow.serving.inference.{ce_type}",
            "ce-specversion": "1.0",
            "ce-source": "http://localhost:9081/credit-model",
            "ce-inferenceservicename": "credit-model",
            "ce-time": "2027-01-15T07:59:00Z",
            **headers,
        },
    )


V2_REQUEST = {
    "inputs": [
        {"name": "age", "shape": [1], "datatype": "FP64", "data": [42.0]},
        {"name": "country", "shape": [1], "datatype": "BYTES", "data": ["DE"]},
    ]
}
V2_RESPONSE = {
    "model_name": "credit",
    "outputs": [{"name": "predict", "shape": [1], "datatype": "BYTES", "data": ["approved"]}],
}


@pytest.mark.parametrize(
    ("response", "endpoint", "expected"),
    [
        (V2_RESPONSE | {"model_version": "3"}, "credit-model-predictor", "3"),  # v2 body
        (V2_RESPONSE, "canary", "canary"),  # KServe's canary endpoint
        (V2_RESPONSE, "credit-model-predictor", None),  # a service name: no version
    ],
)
def test_kserve_events_give_the_version_they_name(
    client: TestClient, engine: Engine, response: Any, endpoint: str, expected: str | None
) -> None:
    assert kserve(client, "request", V2_REQUEST, **{"ce-endpoint": endpoint}).status_code == 200
    answer = kserve(client, "response", response, **{"ce-endpoint": endpoint})
    assert answer.status_code == 200 and answer.json()["status"] == "stored", answer.text
    assert stored_versions(engine) == {"ev-1": expected}


def test_counts_are_the_versions_ingested(client: TestClient) -> None:
    versions = [("v1", "v2", "v3")[i % 3] for i in range(20)]
    assert (
        post(client, orjson.dumps([record(i, v) for i, v in enumerate(versions)])).status_code
        == 202
    )
    evaluation = client.post("/v1/models/credit/evaluate").json()
    assert evaluation["lineage"]["model_versions"] == dict(sorted(Counter(versions).items()))


def test_seldon_events_give_their_predictor_as_the_version(
    client: TestClient, engine: Engine
) -> None:
    def seldon(ce_type: str, ce_id: str, data: Any) -> Any:
        return client.post(
            "/v1/cloudevents",
            content=orjson.dumps(data),
            headers={
                "content-type": "application/json",
                "ce-id": ce_id,
                "ce-type": f"io.seldon.serving.inference.{ce_type}",
                "ce-specversion": "1.0",
                "ce-source": "http://10.1.2.3:8000/",
                "ce-modelid": "classifier",
                "ce-inferenceservicename": "credit-model",
                "ce-endpoint": "canary-predictor",
                "ce-requestid": "puid-1",
                "ce-time": "2027-01-15T07:59:00Z",
            },
        )

    request = {"data": {"names": ["age", "country"], "ndarray": [[42.0, "DE"], [50.0, "FR"]]}}
    response = {"data": {"names": ["class"], "ndarray": ["approved", "rejected"]}}
    assert seldon("request", "a1", request).status_code == 200
    answer = seldon("response", "b1", response)
    assert answer.status_code == 200 and answer.json()["accepted"] == 2, answer.text
    assert stored_versions(engine) == {
        "puid-1-0": "canary-predictor",
        "puid-1-1": "canary-predictor",
    }


def test_the_openapi_document_declares_model_version(client: TestClient) -> None:
    """The prediction record's schema forbids unknown keys, so a generated client (or
    schemathesis) took ``model_version`` for one unless the document declares it."""
    import jsonschema

    schema = client.get("/openapi.json").json()["components"]["schemas"]["PredictionIn"]
    version = schema["properties"]["model_version"]
    assert version["anyOf"] == [
        {"type": "string", "minLength": 1, "maxLength": 128},
        {"type": "null"},
    ]
    jsonschema.validate(record(0, "v1"), schema)
    jsonschema.validate(record(0, None) | {"model_version": None}, schema)
    for refused in ("", "x" * 129, 5):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(record(0, None) | {"model_version": refused}, schema)


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize(
    "declared",
    ["", "    versions: {stable: v1, canary: v5}\n", "    versions: {stable: v1, canary: v9}\n"],
)
def test_the_lineage_names_at_most_max_categories_versions(
    engine: Engine, large: bool, declared: str
) -> None:
    """A client that writes a build id or a pod name into ``model_version`` names a version
    per record: the lineage (stored with every evaluation, sent with every alert event) keeps
    the ``drift.max_categories`` most frequent by name (ties in name order) and the compared
    ones, and sums the rest as ``__other__``, on the exact and the histogram path alike."""
    drift = "    drift: {max_categories: 3, exact_max_samples: 1000}\n"
    service = Service(
        parse_config(CONFIG + drift + declared),
        engine=engine,
        registry=CollectorRegistry(),
        clock=Clock(),
    )
    counts = {"v1": 5, "v2": 4, "v3": 4, "v4": 2, "v5": 1} | {f"w{i:02d}": 1 for i in range(10)}
    versions = [v for v, n in counts.items() for _ in range(n)]
    versions += [None] * (1200 if large else 0)
    with serving(service) as client:
        reference = [{"features": r["features"]} for r in (record(i, None) for i in range(50))]
        service.store_reference("credit", reference, source="test")  # the histograms' grids
        # older than the histograms' summary lag
        body = orjson.dumps(
            [record(i, v) | {"timestamp": NOW - 300 - i} for i, v in enumerate(versions)]
        )
        assert post(client, body).status_code == 202
        evaluation = client.post("/v1/models/credit/evaluate").json()
        [stored] = client.get("/v1/models/credit/drift/history").json()["evaluations"]
    assert (evaluation["lineage"]["window"]["digest"] is None) is large
    # v1, then v2 and v3 (4 each); the rest, 2 + 1 + 10: 13
    expected = {"v1": 5, "v2": 4, "v3": 4, "__other__": 13}
    if "v5" in declared:  # the canary is named too (v9, without records, is not)
        expected = {"v1": 5, "v2": 4, "v3": 4, "v5": 1, "__other__": 12}
    assert evaluation["lineage"]["model_versions"] == expected
    assert stored["lineage"]["model_versions"] == expected
    if declared:
        assert evaluation["versions"]["canary"]["n"] == (1 if "v5" in declared else 0)
        assert service.reproduce("credit", stored["id"]).identical


@pytest.mark.parametrize("first", ["request", "response"])
@pytest.mark.parametrize("version", ["x" * 129, "v\u00001"])
def test_a_response_naming_a_version_that_cannot_be_stored_is_refused_itself(
    client: TestClient, engine: Engine, first: str, version: str
) -> None:
    """The response is answered 422 naming its ``model_version``; it never waits, so the
    request half is not refused for it (nor its prediction lost after the response was
    acknowledged), and the response sent again with a usable version completes the pair."""
    bad = V2_RESPONSE | {"model_version": version}
    if first == "request":
        assert kserve(client, "request", V2_REQUEST).json()["status"] == "pending"
    answer = kserve(client, "response", bad)
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"] == "urn:drift-monitor:problem:invalid-cloudevent"
    assert "'model_version'" in answer.json()["detail"]
    if first == "response":
        assert kserve(client, "request", V2_REQUEST).json()["status"] == "pending"
    assert stored_versions(engine) == {}
    again = kserve(client, "response", V2_RESPONSE | {"model_version": "v1"})
    assert again.status_code == 200 and again.json()["status"] == "stored", again.text
    assert stored_versions(engine) == {"ev-1": "v1"}


def test_the_client_rejects_a_version_the_service_would_refuse_alone() -> None:
    """As it does for an id: a record whose ``model_version`` the service refuses (empty,
    over 128 characters, a NUL) is counted in ``rejected`` when logged and never sent, so it
    cannot make the service refuse the whole batch of good records it would travel with
    (``MODEL_VERSION=""`` in the environment would otherwise lose every prediction)."""
    sent: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.extend(orjson.loads(request.content))
        return httpx.Response(202, json={"accepted": 1, "duplicates": 0})

    monitor = Monitor(
        "http://monitor", "credit", batch_size=10, transport=httpx.MockTransport(handle)
    )
    for record_id, version in [("a", "v1"), ("b", ""), ("c", "v" * 129), ("d", "v\x002"), ("e", 3)]:
        monitor.log_prediction(record_id, {"age": 1}, "approved", model_version=version)  # type: ignore[arg-type]
    assert monitor.close(timeout=None) is True
    assert [(r["id"], r["model_version"]) for r in sent] == [("a", "v1"), ("e", "3")]
    assert monitor.rejected == 3
