"""Every time the API answers is an RFC 3339 date-time in UTC, written ``...Z``: in each
response body (alerts, alert history, deliveries and the events they carry, references,
model counts, evaluations, exports), and in the OpenAPI document's response schemas. The
webhook events say their times so too; only the Standard Webhooks ``webhook-timestamp``
header stays integer Unix seconds, as that specification requires.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.api import create_app
from monitor.config import parse_config
from monitor.service import Service

NOW = 1_800_000_000.5
#: written independently of the code under test
NOW_TEXT = "2027-01-15T08:00:00.500000Z"
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")
#: the names a time has in an answer
TIME_KEYS = frozenset(
    {
        "at",
        "since",
        "created_at",
        "next_attempt_at",
        "evaluated_at",
        "start",
        "end",
        "timestamp",
        "label_timestamp",
        "first_timestamp",
        "last_timestamp",
    }
)
CONFIG = """
models:
  - name: m
    task: classification
    classes: [a, b]
    features: [{name: x, type: numeric}]
    window: {duration: 1h}
    min_samples: 10
    thresholds:
      psi: {critical: 0.1, features: [x]}
    alerts: {for: 1, routes: [hook]}
webhooks:
  - {name: hook, url: "http://127.0.0.1:9/hook", allow_private: true}
"""


def iso(seconds: float) -> str:
    """The expected spelling, from the standard library alone."""
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text.removesuffix(".000000") + "Z"


def times(document: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every value under a time's name, at any depth."""
    if isinstance(document, dict):
        for key, value in document.items():
            where = f"{path}.{key}"
            if key in TIME_KEYS and not isinstance(value, dict | list):
                yield where, value
            else:
                yield from times(value, where)
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from times(value, f"{path}[{index}]")


def send(client: TestClient, method: str, path: str, body: Any) -> Any:
    return client.request(
        method, path, content=orjson.dumps(body), headers={"content-type": "application/json"}
    )


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    service = Service(
        parse_config(CONFIG), engine=engine, registry=CollectorRegistry(), clock=lambda: NOW
    )
    service.start(run_jobs=False)
    with TestClient(create_app(service, manage_service=False)) as client:
        yield client
    service.stop()


def test_every_time_in_every_answer_is_rfc3339_utc(client: TestClient) -> None:
    reference = [{"features": {"x": i / 10}, "prediction": "a"} for i in range(20)]
    uploaded = send(client, "PUT", "/v1/models/m/reference", reference)
    assert uploaded.status_code == 201
    records = [
        {
            "id": f"r{i}",
            "timestamp": NOW - 100 + i,
            "features": {"x": 5.0 + i},
            "prediction": "b",
            "scores": {"a": 0.25, "b": 0.75},
        }
        for i in range(20)
    ]
    send(client, "POST", "/v1/models/m/predictions", records)
    send(client, "POST", "/v1/models/m/labels", [{"id": "r3", "label": "a"}])
    evaluated = client.post("/v1/models/m/evaluate").json()

    answers = {
        "PUT reference": uploaded.json(),
        "POST evaluate": evaluated,
        **{
            path: client.get(path).json()
            for path in (
                "/v1/models",
                "/v1/models/m",
                "/v1/models/m/reference",
                "/v1/models/m/drift",
                "/v1/models/m/drift/history",
                "/v1/models/m/performance/history",
                "/v1/alerts",
                "/v1/alerts/history",
                "/v1/deliveries",
            )
        },
    }
    window = {"start": f"{NOW - 3600}", "end": f"{NOW}"}
    export = client.get("/v1/models/m/export", params=window).text
    answers["export"] = [orjson.loads(line) for line in export.splitlines()]

    found = {where: value for name, body in answers.items() for where, value in times(body, name)}
    # the test sees each kind of time it is about
    names = {where.rsplit(".", 1)[-1] for where, value in found.items() if value is not None}
    assert names == TIME_KEYS
    assert {
        where: value
        for where, value in found.items()
        if value is not None and not (isinstance(value, str) and RFC3339_UTC.match(value))
    } == {}
    # and the exact instants
    (alert,) = answers["/v1/alerts"]
    (event,) = answers["/v1/alerts/history"]
    (delivery,) = answers["/v1/deliveries"]
    assert alert["since"] == event["at"] == delivery["created_at"] == NOW_TEXT
    assert delivery["next_attempt_at"] == NOW_TEXT  # due at once
    assert delivery["event"]["created_at"] == NOW_TEXT
    assert delivery["event"]["window"] == {"start": iso(NOW - 3600), "end": NOW_TEXT, "n": 20}
    assert uploaded.json()["created_at"] == NOW_TEXT
    counts = answers["/v1/models/m"]["counts"]
    assert (counts["first_timestamp"], counts["last_timestamp"]) == (iso(NOW - 100), iso(NOW - 81))
    assert evaluated["evaluated_at"] == NOW_TEXT
    assert answers["export"][3]["label_timestamp"] == NOW_TEXT


def test_the_export_link_of_an_event_fetches_its_window(client: TestClient) -> None:
    reference = [{"features": {"x": i / 10}} for i in range(20)]
    send(client, "PUT", "/v1/models/m/reference", reference)
    records = [
        {"id": f"r{i}", "timestamp": NOW - 10 * i, "features": {"x": 9.0}, "prediction": "a"}
        for i in range(20)
    ]
    send(client, "POST", "/v1/models/m/predictions", records)
    client.post("/v1/models/m/evaluate")
    (delivery,) = client.get("/v1/deliveries").json()
    link = delivery["event"]["links"]["export"]
    assert link.startswith("/v1/models/m/export?start=")
    exported = client.get(link)
    assert exported.status_code == 200
    assert len(exported.text.splitlines()) == 20


def test_the_openapi_document_declares_every_time_a_date_time(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]

    def properties(schema: dict[str, Any], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if "$ref" in schema:
            yield from properties(schemas[schema["$ref"].rsplit("/", 1)[-1]], name)
        for option in schema.get("anyOf", []) + schema.get("oneOf", []):
            yield from properties(option, name)
        if "items" in schema:
            yield from properties(schema["items"], f"{name}[]")
        for key, value in schema.get("properties", {}).items():
            yield f"{name}.{key}", value
            yield from properties(value, f"{name}.{key}")

    declared = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    if "json" not in media or "problem" in media:
                        continue
                    where = f"{method.upper()} {path} {status}"
                    for name, schema in properties(content.get("schema", {}), where):
                        if name.rsplit(".", 1)[-1] in TIME_KEYS:
                            declared[name] = schema
    assert len(declared) >= 20  # alerts, deliveries, references, counts, evaluations

    def is_date_time(schema: dict[str, Any]) -> bool:
        if "$ref" in schema:
            return is_date_time(schemas[schema["$ref"].rsplit("/", 1)[-1]])
        options = schema.get("anyOf")
        if options:
            kinds = [o for o in options if o.get("type") != "null"]
            return len(kinds) == 1 and is_date_time(kinds[0])
        return schema.get("type") == "string" and schema.get("format") == "date-time"

    assert sorted(name for name, schema in declared.items() if not is_date_time(schema)) == []
