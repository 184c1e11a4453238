"""Request latency by route template, database errors by kind, and a database failure on
ingest answered 503 problem+json with nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from monitor.api import create_app
from monitor.config import Config
from monitor.service import Service


@pytest.fixture
def service(config: Config, engine: Engine) -> Service:
    return Service(config, engine=engine, registry=CollectorRegistry())


def count(service: Service, route: str, method: str, code: str) -> float:
    value = service.registry.get_sample_value(
        "drift_monitor_http_request_duration_seconds_count",
        {"route": route, "method": method, "code": code},
    )
    return value or 0.0


def test_requests_are_counted_by_route_template(service: Service) -> None:
    record = {"id": "r1", "features": {"age": 1, "income": 2.0, "country": "DE"}}
    with TestClient(create_app(service)) as client:
        client.get("/healthz")
        client.get("/healthz")
        client.post("/v1/models/credit/predictions", json=[{**record, "prediction": "approved"}])
        client.post("/v1/models/credit/predictions", json=[{**record, "prediction": "nope"}])
        client.get("/v1/models/nothing")
        client.get("/no/such/path")
    assert count(service, "/healthz", "GET", "2xx") == 2
    assert count(service, "/v1/models/{model}/predictions", "POST", "2xx") == 1
    assert count(service, "/v1/models/{model}/predictions", "POST", "4xx") == 1
    assert count(service, "/v1/models/{model}", "GET", "4xx") == 1
    assert count(service, "unmatched", "GET", "4xx") == 1


def test_database_errors_are_counted_by_kind(service: Service) -> None:
    def errors(kind: str) -> Any:
        return service.registry.get_sample_value(
            "drift_monitor_database_errors_total", {"kind": kind}
        )

    assert errors("OperationalError") == 0 and errors("other") == 0
    with pytest.raises(DBAPIError), service.engine.connect() as connection:
        connection.execute(text("SELECT * FROM no_such_table"))
    kinds = {k: errors(k) for k in ("OperationalError", "ProgrammingError")}
    assert sum(kinds.values()) == 1  # SQLite says OperationalError, PostgreSQL ProgrammingError


def test_a_database_failure_on_ingest_is_a_503_problem(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT ...", {}, Exception("database is locked"))

    monkeypatch.setattr("monitor.storage.repository.insert_predictions", unavailable)
    record = {"id": "r1", "features": {"age": 1, "income": 2.0, "country": "DE"}}
    with TestClient(create_app(service)) as client:
        response = client.post(
            "/v1/models/credit/predictions", json=[{**record, "prediction": "approved"}]
        )
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "5"
        assert "INSERT" not in response.text and "locked" not in response.text
        assert client.get("/v1/models/credit").json()["counts"]["predictions"] == 0
