"""The real ``monitor serve`` process's ``/metrics`` exposition, after ingest and an evaluation:

* the Prometheus text format passes ``promtool check metrics`` (Debian/Ubuntu: apt-get install
  prometheus; ``.ci/run`` installs it, so CI never skips that test);
* the OpenMetrics format (``Accept: application/openmetrics-text``) ends with ``# EOF`` and
  parses strictly (and passes promtool too once promtool can read OpenMetrics);
* every metric family is ``drift_monitor_*`` (or a standard ``python_``/``process_`` one);
* counters and histograms have no ``_created`` series (``WithoutCreated``);
* ``model`` and ``feature`` label values come only from the config: nothing a client sends
  (unknown model or feature names, category values, ids) ever shows up in a scrape.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Sample
from server_process import free_port, start_server

from monitor.evaluation import OUTPUT_NAMES
from monitor.metrics import WithoutCreated

MODEL = "m"
NUMERIC = ("x", "y")
CATEGORICAL = ("c", "d")
FEATURES = (*NUMERIC, *CATEGORICAL)
CLASSES = ("a", "b")
#: Everything a client sends that must never become part of a scrape.
CANARY = "leakcanary"
ALLOWED_PREFIXES = ("drift_monitor_", "python_", "process_")
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PROMTOOL_MISSING = "promtool not installed: apt-get install prometheus"

CONFIG = """
server: {host: 127.0.0.1, port: 1}
storage: {url: "sqlite:///%(db)s"}
models:
  - name: %(model)s
    task: classification
    classes: [a, b]
    features:
      - {name: x, type: numeric}
      - {name: y, type: numeric}
      - {name: c, type: categorical}
      - {name: d, type: categorical}
    window: {duration: 1h}
    min_samples: 10
    thresholds:
      psi: {warning: 0.1, critical: 0.25}
      ks_pvalue: {critical: 0.01}
"""


@dataclass(frozen=True)
class Scrape:
    text: str  # Prometheus text format 0.0.4
    text_content_type: str
    openmetrics: str
    openmetrics_content_type: str
    log: Path


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def reference_records(rng: random.Random) -> list[dict[str, Any]]:
    records = []
    for _ in range(300):
        prediction = rng.choice(CLASSES)
        records.append(
            {
                "features": {
                    "x": rng.gauss(0.0, 1.0),
                    "y": rng.uniform(0.0, 100.0),
                    "c": rng.choice(["red", "green", "blue"]),
                    "d": rng.choice(["s", "t"]),
                },
                "prediction": prediction,
                "label": prediction if rng.random() < 0.8 else rng.choice(CLASSES),
            }
        )
    return records


def prediction_batch(rng: random.Random, batch: int, now: float) -> list[dict[str, Any]]:
    """A drifted batch carrying client-chosen strings (ids, a new category) with the canary."""
    records = []
    for i in range(50):
        timestamp: str | float = now - 60 + i
        if i % 2:  # half RFC 3339, half Unix seconds
            timestamp = datetime.fromtimestamp(float(timestamp), UTC).isoformat()
        records.append(
            {
                "id": f"{CANARY}-id-{batch}-{i}",
                "timestamp": timestamp,
                "features": {
                    "x": rng.gauss(1.5, 1.0),
                    "y": None if i % 10 == 0 else rng.uniform(20.0, 120.0),
                    "c": rng.choice(["red", "red", "blue", f"{CANARY}_category"]),
                    "d": rng.choice(["s", "t"]),
                },
                "prediction": rng.choice(CLASSES),
            }
        )
    return records


def exercise(client: httpx.Client) -> None:
    """Reference, ingest (accepted, duplicate, refused), labels, then one evaluation."""
    rng = random.Random(20240601)
    model = f"/v1/models/{MODEL}"
    response = client.put(f"{model}/reference", json=reference_records(rng))
    assert response.status_code == 201, response.text

    now = time.time()
    batches = [prediction_batch(rng, batch, now) for batch in range(3)]
    for records in batches:
        response = client.post(f"{model}/predictions", json=records)
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": len(records), "duplicates": 0}
    response = client.post(f"{model}/predictions", json=batches[0][:5])
    assert response.json() == {"accepted": 0, "duplicates": 5}
    labels = [{"id": r["id"], "label": rng.choice(CLASSES)} for r in batches[0]]
    assert client.post(f"{model}/labels", json=labels).status_code == 202

    # Client-chosen names the service must refuse and must not turn into label values.
    good = batches[0][0]
    refused = {
        "unknown model": (
            f"/v1/models/{CANARY}_model/predictions",
            [{**good, "id": f"{CANARY}-x"}],
            404,
        ),
        "unknown feature": (
            f"{model}/predictions",
            [{**good, "id": f"{CANARY}-y", "features": {**good["features"], f"{CANARY}_f": 1}}],
            422,
        ),
        "unknown class": (
            f"{model}/predictions",
            [{**good, "id": f"{CANARY}-z", "prediction": f"{CANARY}_class"}],
            422,
        ),
    }
    for what, (path, body, status) in refused.items():
        response = client.post(path, json=body)
        assert response.status_code == status, (what, response.text)
    response = client.put(f"/v1/models/{CANARY}_model/reference", json=reference_records(rng))
    assert response.status_code == 404, response.text
    response = client.post(
        f"{model}/predictions", content=b"[]", headers={"content-type": f"text/{CANARY}"}
    )
    assert response.status_code == 415, response.text

    response = client.post(f"{model}/evaluate")
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrape]:
    tmp = tmp_path_factory.mktemp("exposition")
    config = tmp / "monitor.yaml"
    config.write_text(CONFIG % {"db": tmp / "m.db", "model": MODEL})
    log = tmp / "server.log"
    port = free_port()
    process = start_server(config, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            exercise(client)
            text = client.get("/metrics")
            openmetrics = client.get(
                "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
            )
        assert text.status_code == 200, text.text
        assert openmetrics.status_code == 200, openmetrics.text
        yield Scrape(
            text=text.text,
            text_content_type=text.headers["content-type"],
            openmetrics=openmetrics.text,
            openmetrics_content_type=openmetrics.headers["content-type"],
            log=log,
        )
    finally:
        stop_server(process)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(PROMTOOL_MISSING)
    return path


def promtool_check(executable: str, body: str, *flags: str) -> None:
    result = subprocess.run(
        [executable, "check", "metrics", *flags],
        input=body,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = (result.stdout + result.stderr).strip()
    command = " ".join(["promtool check metrics", *flags])
    assert result.returncode == 0 and not problems, (
        f"{command} exited {result.returncode}:\n{problems}"
    )


def promtool_reads_openmetrics(executable: str) -> bool:
    """promtool <= 3.x reads only the text format (prometheus/prometheus#8932); a later one may
    grow ``check metrics --format=openmetrics``."""
    result = subprocess.run(
        [executable, "check", "metrics", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    help_text = result.stdout + result.stderr
    return "--format" in help_text and "openmetrics" in help_text.lower()


def family_names(body: str) -> set[str]:
    """Names on # HELP/# TYPE lines and of every sample line."""
    names = set()
    for line in body.splitlines():
        if line.startswith(("# HELP ", "# TYPE ", "# UNIT ")):
            names.add(line.split(" ", 3)[2])
        elif line and not line.startswith("#"):
            match = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            assert match is not None, f"unparsable sample line: {line!r}"
            names.add(match.group(0))
    return names


def label_values(samples: list[Sample], label: str) -> set[str]:
    return {s.labels[label] for s in samples if label in s.labels}


def text_samples(body: str) -> list[Sample]:
    return [s for family in parse_text(body) for s in family.samples]


def openmetrics_samples(body: str) -> list[Sample]:
    return [s for family in parse_openmetrics(body) for s in family.samples]


def values(samples: list[Sample], name: str, by: str) -> dict[str, float]:
    """``name``'s sample values for model ``MODEL``, keyed by the value of label ``by``."""
    return {
        s.labels[by]: s.value
        for s in samples
        if s.name == name and s.labels.get("model") == MODEL and by in s.labels
    }


def test_text_format_passes_promtool(scrape: Scrape) -> None:
    executable = promtool()
    assert scrape.text_content_type.startswith("text/plain; version=0.0.4")
    promtool_check(executable, scrape.text)


def test_openmetrics_format_is_valid(scrape: Scrape) -> None:
    assert scrape.openmetrics_content_type.startswith("application/openmetrics-text")
    assert scrape.openmetrics.endswith("# EOF\n")
    assert scrape.openmetrics.count("# EOF") == 1
    assert openmetrics_samples(scrape.openmetrics)  # the strict parser raises on any error
    executable = shutil.which("promtool")
    if executable is not None and promtool_reads_openmetrics(executable):
        promtool_check(executable, scrape.openmetrics, "--format=openmetrics")


def test_the_scrape_covers_the_model_after_an_evaluation(scrape: Scrape) -> None:
    """The other checks are only meaningful on a scrape that holds the drift metrics."""
    samples = text_samples(scrape.text)
    evaluated = values(samples, "drift_monitor_feature_samples", by="feature")
    assert set(FEATURES) <= set(evaluated), scrape.text
    assert values(samples, "drift_monitor_records_ingested_total", by="model") == {MODEL: 150}
    assert values(samples, "drift_monitor_records_duplicate_total", by="model") == {MODEL: 5}
    rejected = values(samples, "drift_monitor_records_rejected_total", by="reason")
    assert rejected["invalid_record"] >= 2, rejected
    assert rejected["unsupported_media_type"] >= 1, rejected


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_every_family_is_drift_monitor(scrape: Scrape, fmt: str) -> None:
    body = scrape.text if fmt == "text" else scrape.openmetrics
    foreign = sorted(n for n in family_names(body) if not n.startswith(ALLOWED_PREFIXES))
    assert not foreign, f"metric names without a drift_monitor_ prefix: {foreign}"


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_label_values_come_only_from_the_config(scrape: Scrape, fmt: str) -> None:
    body = scrape.text if fmt == "text" else scrape.openmetrics
    samples = text_samples(body) if fmt == "text" else openmetrics_samples(body)
    assert label_values(samples, "model") == {MODEL}
    # Per-feature series are the configured features plus the model's outputs
    # (prediction, label), whose names are fixed by the code.
    assert label_values(samples, "feature") <= {*FEATURES, *OUTPUT_NAMES}
    assert CANARY not in body.lower(), [
        line for line in body.splitlines() if CANARY in line.lower()
    ]


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_counters_and_histograms_have_no_created_series(scrape: Scrape, fmt: str) -> None:
    body = scrape.text if fmt == "text" else scrape.openmetrics
    names = family_names(body)
    assert {
        "drift_monitor_records_ingested_total",
        "drift_monitor_evaluation_duration_seconds_bucket",
    } <= names
    assert sorted(name for name in names if name.endswith("_created")) == []


def line_name(line: str) -> str:
    """The metric name of a sample line or of a # HELP / # TYPE line."""
    if line.startswith("#"):
        return line.split(" ")[2]
    return re.split(r"[{ ]", line, maxsplit=1)[0]


def test_without_created_drops_only_the_created_samples() -> None:
    """Against the registry's own exposition: the same lines, less the ``_created`` ones (a
    gauge merely named ``..._created`` stays)."""
    registry = CollectorRegistry()
    Counter("c", "a counter", ["model"], registry=registry).labels("m").inc(3)
    Histogram("h", "a histogram", buckets=(1.0,), registry=registry).observe(0.5)
    Gauge("g_created", "a gauge", registry=registry).set(2)
    for encode in (generate_latest, generate_openmetrics):
        own = encode(registry).decode().splitlines()
        assert {line_name(line) for line in own if line != "# EOF"} >= {"c_created", "h_created"}
        trimmed = encode(WithoutCreated(registry)).decode().splitlines()
        assert trimmed == [
            line
            for line in own
            if line == "# EOF" or line_name(line) not in {"c_created", "h_created"}
        ]
        assert "g_created 2.0" in trimmed
