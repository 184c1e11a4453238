"""``monitor demo``: the bundled config is valid and shipped as package data; the demo, run as a
real process, serves its traffic, shows the injected drift of ``income`` and the accuracy drop
through the API, alerts and metrics, and stops cleanly on SIGTERM and after ``--duration``."""

from __future__ import annotations

import importlib.resources
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_process import free_port

from monitor.cli import main
from monitor.config import load_config
from monitor.demo import config_file
from monitor.demo.traffic import CLASSES, DRIFTED_FEATURE, MODEL, make_record, reference_records

#: Below the synthetic model's accuracy on its own reference (about 0.9): the drop shows.
ACCURACY_WARNING = 0.85
UNDRIFTED = ["age", "tenure_months", "country", "channel"]


def test_bundled_config_passes_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    resource = importlib.resources.files("monitor.demo") / "config.yaml"
    assert resource.is_file()
    with config_file() as path:
        assert path.read_text(encoding="utf-8") == resource.read_text(encoding="utf-8")
        assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: OK (1 model(s): demo; 0 webhook(s))\n"


def test_bundled_config_matches_the_synthetic_model() -> None:
    with config_file() as path:
        config = load_config(path, environ={})
    (model,) = config.models
    assert model.name == MODEL
    assert model.classes == list(CLASSES)
    assert model.reference is None  # the demo uploads a generated one
    assert not config.server.auth.enabled  # the demo and its test use the API without tokens
    assert config.webhooks == []
    record, label = make_record(random.Random(0), drifted=False)
    assert sorted(record["features"]) == sorted(f.name for f in model.features)
    assert DRIFTED_FEATURE in record["features"]
    assert label in CLASSES
    for statistic in ("psi", "ks_pvalue", "accuracy"):
        assert statistic in model.thresholds
    assert model.calibration is not None  # levels from a false-alarm budget
    assert {model.thresholds[s].critical for s in ("psi", "ks_pvalue", "accuracy")} == {"auto"}


def test_reference_is_reproducible_and_the_drift_is_real() -> None:
    assert reference_records(200, seed=3) == reference_records(200, seed=3)
    rng = random.Random(1)
    before = [make_record(rng, drifted=False) for _ in range(4000)]
    after = [make_record(rng, drifted=True) for _ in range(4000)]

    def accuracy(pairs: list[tuple[dict[str, Any], str]]) -> float:
        return sum(record["prediction"] == label for record, label in pairs) / len(pairs)

    def mean_income(pairs: list[tuple[dict[str, Any], str]]) -> float:
        return sum(record["features"]["income"] for record, _ in pairs) / len(pairs)

    assert accuracy(before) > 0.88
    assert accuracy(after) < 0.7
    assert mean_income(after) - mean_income(before) > 20_000


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path, str]:
    port = free_port()
    log = tmp_path / "demo.log"
    env = {**os.environ}
    # the demo must not use this (it would fail to connect): its database is its own
    env["MONITOR_DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "demo", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return process, log, f"http://127.0.0.1:{port}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def _get(client: httpx.Client, path: str) -> Any:
    try:
        response = client.get(path)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def _database_directory(log: str) -> Path:
    match = re.search(r"\(database sqlite:///(\S+)/demo\.db\)", log)
    assert match, log
    return Path(match.group(1))


def test_demo_shows_the_drift_and_the_accuracy_drop(tmp_path: Path) -> None:
    started = time.monotonic()
    process, log, base = _start(tmp_path, "--duration", "40", "--drift-after", "10")
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            deadline = started + 20
            while True:
                assert process.poll() is None, log.read_text()
                model = _get(client, f"/v1/models/{MODEL}")
                counts = model and model["counts"]
                if counts and counts["predictions"] > 0 and counts["labelled_predictions"] > 0:
                    break
                assert time.monotonic() < deadline, f"no traffic: {model}\n{log.read_text()}"
                time.sleep(0.2)
            assert model["reference"]["n"] == 5000

            # the drift starts 10 s after the traffic, labels follow 3 s later, evaluations run
            # every 5 s: both show well before the 40 s run ends
            deadline = started + 38
            seen: tuple[Any, Any] = (None, None)
            while True:
                assert process.poll() is None, log.read_text()
                drift = _get(client, f"/v1/models/{MODEL}/drift")
                alerts = _get(client, f"/v1/alerts?model={MODEL}") or []
                seen = (drift, alerts)
                if drift is not None:
                    accuracy = drift["performance"].get("accuracy")
                    if (
                        drift["features"][DRIFTED_FEATURE]["status"] in ("warning", "critical")
                        and accuracy is not None
                        and accuracy < ACCURACY_WARNING
                        and any(a["feature"] == DRIFTED_FEATURE for a in alerts)
                        and any(a["rule"] == "accuracy" for a in alerts)
                    ):
                        break
                assert time.monotonic() < deadline, f"no drift shown: {seen}\n{log.read_text()}"
                time.sleep(0.5)
            # only the drifted feature drifted
            for feature in UNDRIFTED:
                assert drift["features"][feature]["status"] == "ok", (feature, drift)
            assert drift["performance"]["status"] in ("warning", "critical")

            metrics = client.get("/metrics").text
            # the demo's watch prints the alerts' transitions within a poll (1 s) of them
            printed = rf"alert: (psi|ks_pvalue) of {DRIFTED_FEATURE} (pending|FIRING): "
            deadline = time.monotonic() + 10
            while not re.search(printed, log.read_text()):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        psi = {
            sample.labels["feature"]: sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if sample.name == "drift_monitor_feature_psi" and sample.labels["model"] == MODEL
        }
        assert psi[DRIFTED_FEATURE] >= 0.1
        assert all(psi[feature] < 0.1 for feature in UNDRIFTED), psi

        process.terminate()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 60
    finally:
        _stop(process)
    output = log.read_text()
    for where in (
        f"{base}/metrics",
        f"{base}/v1/models/{MODEL}/drift",
        f"{base}/v1/alerts",
        f"{base}/docs",
        "docker compose -f deploy/docker-compose.yml up",
    ):
        assert where in output, where
    assert "drift injected" in output
    # each alert transition is printed as it happens, with its value and level (the accuracy
    # alert may come too close to the end for the once-a-second watch to print it)
    pattern = rf"alert: (psi|ks_pvalue) of {DRIFTED_FEATURE} (pending|FIRING): [0-9.e+-]+ [<>]= "
    assert re.search(pattern, output), output
    assert "demo: interrupted, stopped" in output
    assert "Traceback" not in output, output
    assert not _database_directory(output).exists()  # the temporary database is removed


def test_demo_stops_after_its_duration(tmp_path: Path) -> None:
    process, log, _ = _start(tmp_path, "--duration", "2", "--drift-after", "1")
    try:
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        _stop(process)
    output = log.read_text()
    assert "demo: 2 s are over, stopping" in output, output
    assert re.search(r"demo: stopped; [1-9]\d* predictions", output), output
    assert "Traceback" not in output, output
    assert not _database_directory(output).exists()
