"""The OpenAPI document tells the truth: every status, media type and body the API answers is
declared, and ``schemathesis run --checks all`` against a real server finds no failure."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from monitor.api import create_app
from monitor.api.problems import PROBLEM_JSON, PROBLEM_SCHEMA
from monitor.config import load_config
from monitor.service import Service
from monitor.storage import create_database_engine
from tests.server_process import free_port, start_server

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin-token-0123456789a"
READ = "read-token-0123456789ab"
INGEST = "ingest-token-0123456789"
# Small enough for CI (about 25 s on 2 cores); docs/development.md runs it with more.
MAX_EXAMPLES = os.environ.get("MONITOR_SCHEMATHESIS_EXAMPLES", "30")

AUTH = f"""
server:
  auth:
    ingest_tokens: ["{INGEST}"]
    read_tokens: ["{READ}"]
    admin_tokens: ["{ADMIN}"]
    protect_metrics: true
"""
CONFIG = """
storage: {url: "sqlite:///%s"}
models:
  - name: credit
    task: classification
    classes: [approved, rejected]
    features:
      - {name: age, type: numeric}
      - {name: country, type: categorical}
    window: {duration: 1h}
    min_samples: 10
    reference: {path: ref.csv}
  - name: price
    task: regression
    features: [{name: rooms, type: numeric}]
webhooks:
  # nothing listens there: deliveries fail and stay in the outbox, which is what they may do
  - {name: hook, url: "http://127.0.0.1:9/hook", allow_private: true}
"""


def write_config(folder: Path, *, auth: bool = True) -> Path:
    (folder / "ref.csv").write_text("age,country,prediction\n30,DE,approved\n40,FR,rejected\n")
    text = (AUTH if auth else "") + CONFIG % (folder / "monitor.db")
    (folder / "monitor.yaml").write_text(text)
    return folder / "monitor.yaml"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    config = load_config(write_config(tmp_path))
    engine = create_database_engine(f"sqlite:///{tmp_path / 'api.db'}")
    with TestClient(create_app(Service(config, engine=engine, registry=CollectorRegistry()))) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


@pytest.mark.parametrize("auth", [True, False])
def test_every_error_is_declared_as_a_problem(tmp_path: Path, auth: bool) -> None:
    config = load_config(write_config(tmp_path, auth=auth))
    assert config.server.auth.enabled is auth
    engine = create_database_engine(f"sqlite:///{tmp_path / 'doc.db'}")
    document = create_app(Service(config, engine=engine, registry=CollectorRegistry())).openapi()
    assert document["components"]["schemas"]["Problem"] == PROBLEM_SCHEMA
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    seen: dict[str, set[str]] = {}
    for path, method, operation in operations(document):
        statuses = set(operation["responses"])
        seen[f"{method.upper()} {path}"] = statuses
        for status, response in operation["responses"].items():
            if int(status) >= 400 and path != "/readyz":
                assert response["content"] == problem, (path, method, status)
        needs_token = path not in ("/healthz", "/readyz", "/metrics") or (
            path == "/metrics" and auth
        )
        assert ("security" in operation) is (auth and needs_token), (path, method)
        if auth and needs_token:
            assert {"401", "403"} <= statuses
        else:
            assert not {"401", "403"} & statuses
    body_taking = [
        "POST /v1/models/{model}/predictions",
        "POST /v1/models/{model}/labels",
        "PUT /v1/models/{model}/reference",
    ]
    for operation in body_taking:
        assert {"400", "404", "408", "413", "415", "422", "503"} <= seen[operation], operation
    assert {"400", "404", "408", "413", "422", "503"} <= seen["POST /v1/cloudevents"]
    # (FastAPI declares 422 wherever there are parameters)
    assert seen["GET /v1/models/{model}"] - {"401", "403"} == {"200", "404", "422", "503"}
    assert seen["GET /healthz"] == {"200"}
    assert seen["GET /readyz"] == {"200", "503"}
    if auth:
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_problem_bodies_fit_the_declared_schema(client: TestClient) -> None:
    answers = [
        client.get("/v1/models"),  # 401
        client.get("/v1/models", headers=bearer(INGEST)),  # 403
        client.get("/v1/models/nope", headers=bearer(READ)),  # 404 with model
        client.get("/v1/alerts/history?limit=0", headers=bearer(READ)),  # FastAPI's 422
        client.post(
            "/v1/models/credit/predictions",
            content=orjson.dumps([{"id": "a", "features": {"age": "x"}, "prediction": "no"}]),
            headers={**bearer(INGEST), "content-type": "application/json"},
        ),  # 422 with indexed errors
        client.post(
            "/v1/models/credit/predictions",
            content=b"[",
            headers={**bearer(INGEST), "content-type": "application/json"},
        ),  # 400
    ]
    assert [a.status_code for a in answers] == [401, 403, 404, 422, 422, 400]
    for answer in answers:
        assert answer.headers["content-type"] == PROBLEM_JSON
        jsonschema.validate(answer.json(), PROBLEM_SCHEMA)
    assert answers[3].json()["errors"] == [
        {"field": "query.limit", "reason": "Input should be greater than or equal to 1"}
    ]
    assert answers[4].json()["errors"][0]["index"] == 0


def test_405_allows_every_method_of_the_path(client: TestClient) -> None:
    """Starlette named only the first route's methods: GET, not the PUT of the same path."""
    response = client.delete("/v1/models/credit/reference", headers=bearer(ADMIN))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"
    assert response.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("at=1.956581294682355e%2B16", "must not be after 9999-12-31T23:59:59Z"),  # was a 500
        ("at=nan", "must be a number of Unix seconds, not NaN"),
        ("at=-1", "must not be before 1970-01-01T00:00:00Z"),
        ("at=inf", "must not be after 9999-12-31T23:59:59Z"),
    ],
)
def test_instant_out_of_range_is_422_naming_it(client: TestClient, query: str, reason: str) -> None:
    response = client.post(f"/v1/models/credit/evaluate?{query}", headers=bearer(ADMIN))
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "query.at", "reason": reason}]


@pytest.mark.parametrize("parameter", ["since", "until"])
def test_history_bounds_out_of_range_are_422(client: TestClient, parameter: str) -> None:
    response = client.get(
        f"/v1/models/credit/drift/history?{parameter}=253402300800", headers=bearer(READ)
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": f"query.{parameter}", "reason": "must not be after 9999-12-31T23:59:59Z"}
    ]
    last = client.get(
        f"/v1/models/credit/drift/history?{parameter}=253402300799", headers=bearer(READ)
    )
    assert last.status_code == 200


def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    """Every check of schemathesis, on every operation, against a real server on loopback;
    deterministic (the same cases every run). ``schemathesis.toml`` says the one exception."""
    config = write_config(tmp_path)
    port = free_port()
    server = start_server(config, port, tmp_path / "server.log")
    try:
        run = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(ROOT / "schemathesis.toml"),
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {ADMIN}",
                "--max-examples",
                MAX_EXAMPLES,
                "--generation-deterministic",  # the same cases every run, no database
                "--workers",
                "1",
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    assert "Failures:" not in report
    assert "Selected: 20/20" in report and "Tested: 20" in report
    assert "Traceback" not in (tmp_path / "server.log").read_text()
