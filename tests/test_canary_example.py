"""The canary replay example (examples/canary, docs/canary-example.md): generated, replayed
into SQLite in data time, the segment, fairness and canary alerts fire after the canary
starts and nothing fires before it.

The firing values are checked against numpy over the generated file itself (the window
``(tick - 1h, tick]`` by prediction time, with the labels known at the tick), not against
numbers copied from a run.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.cli import main
from monitor.replay.sources import parse_instant

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "canary"
WINDOW = 3600.0


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("canary_make_data", EXAMPLE / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_data = load_generator()


def replayed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert make_data.main([str(tmp_path)]) == 0
    shutil.copy(EXAMPLE / "monitor.yaml", tmp_path / "monitor.yaml")
    code = main(
        [
            "replay",
            str(tmp_path / "predictions.jsonl"),
            "--model",
            "credit",
            "--config",
            str(tmp_path / "monitor.yaml"),
            "--database",
            f"sqlite:///{tmp_path / 'canary.db'}",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document: dict[str, Any] = json.loads(captured.out)
    return document


def records(path: Path) -> dict[str, np.ndarray]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {
        "time": np.array([parse_instant(r["timestamp"]) for r in rows]),
        "label_time": np.array([parse_instant(r["label_timestamp"]) for r in rows]),
        "version": np.array([r["model_version"] for r in rows]),
        "country": np.array([r["features"]["country"] for r in rows]),
        "gender": np.array([r["features"]["gender"] for r in rows]),
        "right": np.array([r["prediction"] == r["label"] for r in rows]),
        "positive": np.array([r["label"] == "approved" for r in rows]),
        "selected": np.array([r["prediction"] == "approved" for r in rows]),
    }


def labelled_at(data: dict[str, np.ndarray], tick: float) -> np.ndarray:
    """The window's predictions whose label is known at ``tick``."""
    return (data["time"] > tick - WINDOW) & (data["time"] <= tick) & (data["label_time"] <= tick)


def test_the_generator_is_deterministic_and_wrote_the_committed_reference(
    tmp_path: Path,
) -> None:
    make_data.main([str(tmp_path / "a")])
    make_data.main([str(tmp_path / "b")])
    for name in ("reference.csv", "predictions.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # the config's reference (committed, as loading a config needs it) is the generator's
    assert (tmp_path / "a" / "reference.csv").read_bytes() == (
        EXAMPLE / "reference.csv"
    ).read_bytes()


def test_segment_fairness_and_canary_alerts_fire_after_the_canary_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = replayed(tmp_path, capsys)
    data = records(tmp_path / "predictions.jsonl")
    assert document["records"] == document["labels"] == len(data["time"])
    # the story: no v2 before the canary starts, then about 30 % of the traffic
    assert not np.any((data["version"] == "v2") & (data["time"] <= make_data.CANARY_START))
    after = data["time"] > make_data.CANARY_START
    assert 0.27 < np.mean(data["version"][after] == "v2") < 0.33

    timeline = document["timeline"]
    assert timeline, "nothing fired"
    assert all(t["at_unix"] > make_data.CANARY_START for t in timeline)
    firing = {(t["rule"], t["feature"]): t for t in timeline if t["transition"] == "firing"}
    assert set(firing) == {
        ("accuracy", "country=DE"),  # the segment alert
        ("equal_opportunity_difference", "gender"),  # the fairness alert
        ("canary_accuracy_delta", None),  # the canary alert
    }
    # each fires after it went pending one evaluation earlier (alerts.for: 2), and stays firing
    for (rule, feature), event in firing.items():
        pending = [
            t["at_unix"]
            for t in timeline
            if (t["rule"], t["feature"], t["transition"]) == (rule, feature, "pending")
        ]
        assert pending == [event["at_unix"] - 600.0]
    assert {t["transition"] for t in timeline} == {"pending", "firing"}

    # the values at the firing ticks, from the file
    tick = firing[("accuracy", "country=DE")]["at_unix"]
    de = labelled_at(data, tick) & (data["country"] == "DE")
    value = firing[("accuracy", "country=DE")]["value"]
    assert value == pytest.approx(np.mean(data["right"][de]), abs=1e-12)
    assert value < 0.9

    tick = firing[("equal_opportunity_difference", "gender")]["at_unix"]
    positives = labelled_at(data, tick) & data["positive"]
    rates = [np.mean(data["selected"][positives & (data["gender"] == g)]) for g in ("F", "M")]
    value = firing[("equal_opportunity_difference", "gender")]["value"]
    assert value == pytest.approx(max(rates) - min(rates), abs=1e-12)
    assert rates[0] < rates[1]  # women are the group the canary treats worse
    assert value > 0.1

    tick = firing[("canary_accuracy_delta", None)]["at_unix"]
    window = labelled_at(data, tick)
    accuracy = {v: np.mean(data["right"][window & (data["version"] == v)]) for v in ("v1", "v2")}
    value = firing[("canary_accuracy_delta", None)]["value"]
    assert value == pytest.approx(accuracy["v2"] - accuracy["v1"], abs=1e-12)
    assert value < -0.1
