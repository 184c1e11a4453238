"""Lineage: every stored evaluation records what it compared (the model's config digest, the
reference version and its data's digest, the window's bounds, counts and records' digest, the
model versions seen, drift-monitor's version); history and alert events carry it; ``monitor
reproduce`` evaluates a stored evaluation again and says which part differs. On SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, delete, select, update

import monitor
from monitor import codec
from monitor.api import create_app
from monitor.cli import main
from monitor.config import parse_config
from monitor.config.digest import config_digest
from monitor.service import Service
from monitor.storage.tables import predictions, reference_records

NOW = 1_800_000_000.0
CONFIG = """
models:
  - name: credit  # the model under test
    task: classification
    classes: [approved, rejected]
    features:
      - {name: age, type: numeric}
      - {name: country, type: categorical}
    window: {duration: 1h}
    min_samples: 50
    thresholds:
      psi: {warning: 0.1, critical: 0.25}
    alerts: {for: 1, routes: [hook]}
webhooks:
  - name: hook
    url: "http://127.0.0.1:9/x"
    secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    allow_private: true
"""
# the same config written differently: other comments, order, flow style and a default spelt out
REFORMATTED = """
webhooks:
  - name: hook
    url: "http://127.0.0.1:9/x"
    secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    allow_private: true
models:
  - task: classification
    name: credit
    classes: [approved, rejected]
    features:
      - name: age
        type: numeric
      - {type: categorical, name: country}
    window: {duration: 60m}
    min_samples: 50
    schedule: 1m   # the default
    thresholds:
      psi: {critical: 0.25, warning: 0.1}
    alerts: {routes: [hook], for: 1}
"""


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_the_digest_is_of_the_normalised_config_and_any_threshold_changes_it() -> None:
    model = parse_config(CONFIG).models[0]
    same = parse_config(REFORMATTED).models[0]
    assert config_digest(model) == config_digest(same)
    canonical = orjson.dumps(model.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    assert config_digest(model) == "sha256:" + hashlib.sha256(canonical).hexdigest()
    for old, new in [("warning: 0.1", "warning: 0.11"), ("min_samples: 50", "min_samples: 51")]:
        changed = parse_config(CONFIG.replace(old, new)).models[0]
        assert config_digest(changed) != config_digest(model), new


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(engine: Engine, clock: Clock) -> Service:
    return Service(parse_config(CONFIG), engine=engine, registry=CollectorRegistry(), clock=clock)


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


def send(client: TestClient, path: str, records: list[dict[str, Any]], status: int) -> None:
    response = client.request(
        "PUT" if path.endswith("reference") else "POST",
        f"/v1/models/credit/{path}",
        content=orjson.dumps(records),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text


def load(client: TestClient, *, shift: float) -> None:
    rng = np.random.default_rng(7)
    reference = [
        {
            "features": {"age": float(a), "country": str(c)},
            "prediction": "approved",
            "label": "approved",
        }
        for a, c in zip(rng.normal(40, 10, 300), rng.choice(["DE", "FR"], 300), strict=True)
    ]
    send(client, "reference", reference, 201)
    window = [
        {
            "id": f"p{i}",
            "timestamp": NOW - 10 - i,
            "features": {"age": float(a), "country": str(c)},
            "prediction": "rejected" if i % 3 else "approved",
        }
        for i, (a, c) in enumerate(
            zip(rng.normal(40 + shift, 10, 200), rng.choice(["DE", "FR"], 200), strict=True)
        )
    ]
    send(client, "predictions", window, 202)
    labels = [{"id": f"p{i}", "timestamp": NOW - 5, "label": "approved"} for i in range(0, 200, 2)]
    send(client, "labels", labels, 202)


def history(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/models/credit/drift/history")
    assert response.status_code == 200, response.text
    return response.json()["evaluations"]  # type: ignore[no-any-return]


def test_history_and_alert_events_carry_the_lineage(
    client: TestClient, service: Service, engine: Engine
) -> None:
    load(client, shift=15.0)
    assert client.post("/v1/models/credit/evaluate").status_code == 200
    [stored] = history(client)
    lineage = stored["lineage"]
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                reference_records.c.features,
                reference_records.c.prediction_class,
                reference_records.c.prediction_value,
                reference_records.c.label_class,
                reference_records.c.label_value,
                reference_records.c.scores,
            ).order_by(reference_records.c.row)
        ).all()
    reference_digest = hashlib.sha256(b"".join(codec.encode(tuple(r)) for r in rows)).hexdigest()
    assert lineage == {
        "config_digest": config_digest(service.model("credit")),
        "reference": {"version": 1, "digest": reference_digest},
        "window": {
            "start": "2027-01-15T07:00:00Z",
            "end": "2027-01-15T08:00:00Z",
            "n": 200,
            "labelled": 100,
            "digest": lineage["window"]["digest"],
        },
        "model_versions": {},
        "monitor_version": monitor.__version__,
    }
    assert lineage["window"]["digest"].startswith("sha256:")
    assert isinstance(stored["id"], int)
    events = [orjson.loads(d.body) for d in service.deliveries(status=None, limit=100)]
    firing = [e for e in events if e["type"] == "alert.firing"]
    assert firing and all(e["lineage"] == lineage for e in firing)


def reproduce(service: Service, evaluation_id: int) -> dict[str, Any]:
    return service.reproduce("credit", evaluation_id).to_document()


def test_an_evaluation_is_reproduced_identically_after_the_fact(
    client: TestClient, service: Service, clock: Clock
) -> None:
    load(client, shift=3.0)
    assert client.post("/v1/models/credit/evaluate").status_code == 200
    [stored] = history(client)
    clock.now = NOW + 7200  # later records, outside the window, and later evaluations
    later = [
        {
            "id": f"q{i}",
            "timestamp": NOW + 600 + i,
            "features": {"age": 1.0, "country": "DE"},
            "prediction": "approved",
        }
        for i in range(60)
    ]
    send(client, "predictions", later, 202)
    assert client.post("/v1/models/credit/evaluate").status_code == 200
    result = reproduce(service, stored["id"])
    assert result["identical"] is True and result["differs"] == []
    assert result["monitor_version"] == {
        "recorded": monitor.__version__,
        "reproduced": monitor.__version__,
    }


def test_a_record_changed_or_deleted_under_the_window_is_told(
    client: TestClient, service: Service, engine: Engine
) -> None:
    load(client, shift=3.0)
    assert client.post("/v1/models/credit/evaluate").status_code == 200
    [stored] = history(client)
    with engine.begin() as connection:
        connection.execute(
            update(predictions)
            .where(predictions.c.id == "p1")
            .values(features=codec.encode({"age": 1000.0, "country": "DE"}))
        )
    changed = reproduce(service, stored["id"])
    assert changed["identical"] is False
    assert "window" in changed["differs"] and "features" in changed["differs"]
    assert "config" not in changed["differs"] and "reference" not in changed["differs"]
    window = changed["differences"]["window"]
    assert window["stored"]["n"] == window["reproduced"]["n"] == 200
    assert window["stored"]["digest"] != window["reproduced"]["digest"]
    with engine.begin() as connection:
        connection.execute(delete(predictions).where(predictions.c.id == "p3"))
    deleted = reproduce(service, stored["id"])
    assert deleted["differences"]["window"]["reproduced"]["n"] == 199


def test_a_changed_reference_record_is_told(
    client: TestClient, service: Service, engine: Engine
) -> None:
    load(client, shift=3.0)
    assert client.post("/v1/models/credit/evaluate").status_code == 200
    [stored] = history(client)
    with engine.begin() as connection:
        connection.execute(
            update(reference_records)
            .where(reference_records.c.row == 0)
            .values(label_class="rejected")
        )
    result = reproduce(service, stored["id"])
    assert result["differs"] == ["reference"]


def test_a_changed_threshold_is_told_with_the_results_it_changes(
    client: TestClient, engine: Engine, clock: Clock
) -> None:
    load(client, shift=3.0)
    assert client.post("/v1/models/credit/evaluate").status_code == 200
    [stored] = history(client)
    strict = CONFIG.replace("warning: 0.1, critical: 0.25", "warning: 0.0001, critical: 0.0002")
    other = Service(parse_config(strict), engine=engine, registry=CollectorRegistry(), clock=clock)
    result = other.reproduce("credit", stored["id"]).to_document()
    assert result["differs"][0] == "config"
    assert result["differences"]["config"]["reproduced"] == config_digest(other.model("credit"))
    assert "status" in result["differs"] and "window" not in result["differs"]


def test_the_command_reports_and_exits_by_the_outcome(
    client: TestClient, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load(client, shift=3.0)
    assert client.post("/v1/models/credit/evaluate").status_code == 200
    [stored] = history(client)
    path = tmp_path / "monitor.yaml"
    path.write_text(CONFIG)
    argv = ["reproduce", "--config", str(path), "--model", "credit", "--database", database_url]
    assert main([*argv, "--evaluation", str(stored["id"])]) == 0
    assert orjson.loads(capsys.readouterr().out)["identical"] is True
    assert main([*argv, "--evaluation", str(stored["id"] + 1000)]) == 1
    assert "has no stored evaluation" in capsys.readouterr().err
    path.write_text(CONFIG.replace("min_samples: 50", "min_samples: 40"))
    assert main([*argv, "--evaluation", str(stored["id"])]) == 1
    assert orjson.loads(capsys.readouterr().out)["differs"] == ["config"]


def test_a_records_window_is_reproduced_over_its_bounds_after_more_records(
    engine: Engine, clock: Clock
) -> None:
    config = parse_config(CONFIG.replace("window: {duration: 1h}", "window: {records: 150}"))
    service = Service(config, engine=engine, registry=CollectorRegistry(), clock=clock)
    with serving(service) as client:
        load(client, shift=3.0)
        # p199, the earliest record of the last 150 ingested, at the window's start bound
        send(client, "labels", [{"id": "p199", "timestamp": NOW, "label": "rejected"}], 202)
        assert client.post("/v1/models/credit/evaluate").status_code == 200
        [stored] = history(client)
        assert stored["lineage"]["window"]["n"] == 150
        assert stored["lineage"]["window"]["labelled"] == 76  # p50 to p198 even, and p199
        later = [
            {
                "id": f"q{i}",
                "timestamp": NOW + 600 + i,
                "features": {"age": 1.0, "country": "DE"},
                "prediction": "approved",
            }
            for i in range(60)
        ]
        send(client, "predictions", later, 202)
        result = service.reproduce("credit", stored["id"]).to_document()
    assert result["identical"] is True, result["differs"]


def test_a_window_from_histograms_records_no_digest_and_is_reproduced(
    engine: Engine, clock: Clock
) -> None:
    config = parse_config(
        CONFIG.replace("min_samples: 50", "min_samples: 50\n    drift: {exact_max_samples: 1000}")
    )
    service = Service(config, engine=engine, registry=CollectorRegistry(), clock=clock)
    with serving(service) as client:
        load(client, shift=3.0)
        more = [
            {
                "id": f"h{i}",
                "timestamp": NOW - 300 - i % 3000,
                "features": {"age": 30.0 + i % 20, "country": "DE" if i % 3 else "FR"},
                "prediction": "approved",
                "model_version": "v2" if i % 4 else "v1",
            }
            for i in range(1000)
        ]
        send(client, "predictions", more, 202)
        assert client.post("/v1/models/credit/evaluate").status_code == 200
        [stored] = history(client)
        window = stored["lineage"]["window"]
        assert window["n"] == 1200 and window["digest"] is None
        assert stored["lineage"]["model_versions"] == {"v1": 250, "v2": 750}
        result = service.reproduce("credit", stored["id"]).to_document()
    assert result["identical"] is True, result["differs"]


@pytest.mark.parametrize("n", [200, 1200])  # exact, and from histograms (folded groups)
def test_a_label_correction_that_moves_only_groups_is_told(
    engine: Engine, clock: Clock, n: int
) -> None:
    """Two label corrections that cancel out over the whole window (one right prediction made
    wrong in FR, one wrong made right in DE: the same confusion matrix) change only the
    segments' performance and the fairness by country: the reproduction says so."""
    grouped = CONFIG.replace(
        "    thresholds:\n",
        "    segments: [{name: market, feature: country, values: [DE, FR]}]\n"
        "    fairness: {sensitive: [country], positive: approved}\n"
        "    drift: {exact_max_samples: 1000}\n"
        "    thresholds:\n",
    )
    service = Service(
        parse_config(grouped), engine=engine, registry=CollectorRegistry(), clock=clock
    )
    with serving(service) as client:
        reference = [
            {"features": {"age": 40.0 + i % 9, "country": "DE" if i % 2 else "FR"}}
            for i in range(100)
        ]
        send(client, "reference", reference, 201)
        window = [
            {
                "id": f"p{i}",
                "timestamp": NOW - 300 - i,  # past the histograms' summary lag
                "features": {"age": 40.0 + i % 9, "country": "DE" if i % 2 else "FR"},
                "prediction": "approved",
            }
            for i in range(n)
        ]
        send(client, "predictions", window, 202)
        labels = [{"id": f"p{i}", "label": "approved" if i % 5 else "rejected"} for i in range(n)]
        send(client, "labels", labels, 202)
        assert client.post("/v1/models/credit/evaluate").status_code == 200
        [stored] = history(client)
        assert (stored["lineage"]["window"]["digest"] is None) is (n > 1000)
        # p2 (FR) was right and p5 (DE) wrong; now the other way round
        corrections = [{"id": "p2", "label": "rejected"}, {"id": "p5", "label": "approved"}]
        send(client, "labels", corrections, 202)
        result = service.reproduce("credit", stored["id"]).to_document()
    assert result["differs"] == ["segments", "fairness"]
    segments = result["differences"]["segments"]
    accuracy = [
        {value: doc["market"]["values"][value]["performance"]["accuracy"] for value in ("DE", "FR")}
        for doc in (segments["stored"], segments["reproduced"])
    ]
    # n / 2 records each; every fifth wrong: n / 10 in FR and DE, then one more and one less
    half, wrong = n // 2, n // 10
    assert accuracy == [
        {"DE": (half - wrong) / half, "FR": (half - wrong) / half},
        {"DE": (half - wrong + 1) / half, "FR": (half - wrong - 1) / half},
    ]
    fairness = result["differences"]["fairness"]
    assert [doc["country"]["groups"]["FR"]["accuracy"] for doc in fairness.values()] == [
        (half - wrong) / half,
        (half - wrong - 1) / half,
    ]


def test_an_evaluation_made_without_a_reference_is_reproduced_without_one(
    client: TestClient, service: Service
) -> None:
    """Its lineage names no reference version: the reproduction compares with none, not with
    a reference uploaded since (which changed none of its inputs)."""
    window = [
        {
            "id": f"p{i}",
            "timestamp": NOW - 10 - i,
            "features": {"age": 60.0 + i % 7, "country": "DE"},
            "prediction": "approved",
        }
        for i in range(100)
    ]
    send(client, "predictions", window, 202)
    assert client.post("/v1/models/credit/evaluate").json()["status"] == "no_reference"
    [stored] = history(client)
    assert stored["lineage"]["reference"] == {"version": None, "digest": None}
    reference = [{"features": {"age": 30.0 + i % 5, "country": "FR"}} for i in range(100)]
    send(client, "reference", reference, 201)
    result = reproduce(service, stored["id"])
    assert result["identical"] is True, result["differs"]
