"""Bearer tokens: scopes, 401 versus 403, open health endpoints, protected metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from monitor.api import create_app
from monitor.config import load_config, parse_config
from monitor.service import Service
from monitor.storage import create_database_engine

INGEST = "ingest-token-0123456789"
READ = "read-token-0123456789ab"
ADMIN = "admin-token-0123456789a"


def make_client(tmp_path: Path, *, protect_metrics: bool) -> TestClient:
    config = parse_config(
        f"""
server:
  auth:
    ingest_tokens: ["${{INGEST}}"]
    read_tokens: ["{READ}"]
    admin_tokens: ["{ADMIN}"]
    protect_metrics: {str(protect_metrics).lower()}
models:
  - name: m
    task: regression
    features: [{{name: x, type: numeric}}]
""",
        environ={"INGEST": INGEST},
    )
    engine = create_database_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    service = Service(config, engine=engine, registry=CollectorRegistry())
    return TestClient(create_app(service))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, protect_metrics=False) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


BATCH = orjson.dumps([{"id": "1", "features": {"x": 1}, "prediction": 2.0}])
REFERENCE = orjson.dumps([{"features": {"x": 1}}])


def test_missing_and_unknown_tokens_are_401(client: TestClient) -> None:
    missing = client.post(
        "/v1/models/m/predictions", content=BATCH, headers={"content-type": "application/json"}
    )
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = client.post(
        "/v1/models/m/predictions", content=BATCH, headers=bearer("not-a-token-at-all-xx")
    )
    assert wrong.status_code == 401
    assert client.get("/v1/models", headers={"authorization": "Basic abc"}).status_code == 401


@pytest.mark.parametrize(
    "token,ingest,read,admin",
    [
        (INGEST, 202, 403, 403),
        (READ, 403, 200, 403),
        (ADMIN, 202, 200, 201),
    ],
)
def test_scopes(client: TestClient, token: str, ingest: int, read: int, admin: int) -> None:
    assert (
        client.post("/v1/models/m/predictions", content=BATCH, headers=bearer(token)).status_code
        == ingest
    )
    assert (
        client.post(
            "/v1/models/m/labels", content=b'[{"id": "1", "label": 1}]', headers=bearer(token)
        ).status_code
        == ingest
    )
    assert client.get("/v1/models", headers=bearer(token)).status_code == read
    assert client.get("/v1/models/m", headers=bearer(token)).status_code == read
    assert (
        client.put("/v1/models/m/reference", content=REFERENCE, headers=bearer(token)).status_code
        == admin
    )


def test_forbidden_names_the_scope_needed(client: TestClient) -> None:
    response = client.get("/v1/models", headers=bearer(INGEST))
    assert response.json()["detail"] == "this endpoint needs a read token"


def test_health_and_metrics_stay_open(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_metrics_can_be_protected(tmp_path: Path) -> None:
    with make_client(tmp_path, protect_metrics=True) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer(INGEST)).status_code == 403
        assert client.get("/metrics", headers=bearer(READ)).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_tokens_never_appear_in_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG"), make_client(tmp_path, protect_metrics=False) as client:
        client.post("/v1/models/m/predictions", content=BATCH, headers=bearer(INGEST))
        client.get("/v1/models", headers=bearer("wrong-token-1234567890"))
    for secret in (INGEST, READ, ADMIN, "wrong-token-1234567890"):
        assert secret not in caplog.text


def test_reference_path_is_shown_as_written_not_resolved(tmp_path: Path) -> None:
    """A read token sees the reference file's path as the config writes it: the resolved
    absolute path would tell every reader the layout of the host's file system."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ref.csv").write_text("x\n1\n2\n")
    (tmp_path / "monitor.yaml").write_text(
        f"server: {{auth: {{read_tokens: ['{READ}'], admin_tokens: ['{ADMIN}']}}}}\n"
        "models:\n  - {name: m, task: regression, features: [{name: x, type: numeric}],"
        " reference: {path: ./data/ref.csv}}\n"
    )
    config = load_config(tmp_path / "monitor.yaml")
    engine = create_database_engine(f"sqlite:///{tmp_path / 'ref.db'}")
    service = Service(config, engine=engine, registry=CollectorRegistry())
    with TestClient(create_app(service)) as client:
        model = client.get("/v1/models/m", headers=bearer(READ))
        listed = client.get("/v1/models", headers=bearer(READ))
        reference = client.get("/v1/models/m/reference", headers=bearer(READ))
    assert model.status_code == listed.status_code == reference.status_code == 200
    assert model.json()["reference_source"] == {"path": "./data/ref.csv"}
    assert model.json()["reference"]["source"] == "file:./data/ref.csv"
    assert listed.json()[0]["reference_source"] == {"path": "./data/ref.csv"}
    assert reference.json()["source"] == "file:./data/ref.csv"
    for response in (model, listed, reference):
        assert str(tmp_path) not in response.text
    # the service itself still reads the file where the config's folder puts it
    assert config.models[0].reference is not None
    assert config.models[0].reference.path == tmp_path / "data" / "ref.csv"
