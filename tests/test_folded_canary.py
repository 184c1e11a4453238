"""Canary against stable in a window larger than ``drift.exact_max_samples``: folded from the
window's records a chunk at a time (``evaluation.folded_canary``), on SQLite and PostgreSQL.

Differential: against the exact path on the same window while both versions fit in the sample
(identical), and beyond it against scipy on the bottom-k sample the module defines; the sample
does not depend on the chunks the window is read in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import scipy.stats
from group_records import NOW, running
from sqlalchemy import Engine

from monitor import codec
from monitor.evaluation.document import to_document
from monitor.evaluation.folded_canary import record_hash
from monitor.jobs import evaluate as evaluate_job
from monitor.service import Service
from monitor.stats.performance.interval import newcombe_difference_interval
from monitor.storage import windows

CONFIG = """
models:
  - name: m
    task: classification
    classes: [approved, denied]
    features:
      - {name: x, type: numeric}
      - {name: country, type: categorical}
    window: {duration: 1h}
    min_samples: 30
    drift: {exact_max_samples: 1000}
    versions: {stable: v1, canary: v2}
    thresholds:
      canary_psi: {warning: 0.1, critical: 0.25}
      canary_accuracy_delta: {warning: -0.02, critical: -0.05}
"""


@pytest.fixture
def service(engine: Engine) -> Iterator[Service]:
    with running(engine, CONFIG) as service:
        yield service


def store(service: Service, seed: int, *, stable: int, canary: int, other: int = 0) -> None:
    rng = np.random.default_rng(seed)
    service.store_reference(
        "m",
        [
            {
                "features": {"x": float(x), "country": str(c)},
                "prediction": "approved" if x > 0 else "denied",
                "label": "approved" if x > 0 else "denied",
            }
            for x, c in zip(rng.normal(size=2000), rng.choice(["FR", "DE"], size=2000), strict=True)
        ],
        source="test",
    )
    versions = ["v1"] * stable + ["v2"] * canary + ["v0"] * other
    order = rng.permutation(len(versions))
    records: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for k, i in enumerate(order.tolist()):
        version = versions[i]
        x = float(rng.normal() + (0.6 if version == "v2" else 0.0))
        truth = "approved" if rng.random() < 0.5 else "denied"
        right = rng.random() < (0.7 if version == "v2" else 0.9)
        predicted = truth if right else ("denied" if truth == "approved" else "approved")
        records.append(
            {
                "id": f"r{k}",
                "timestamp": NOW - 10 - k,
                "features": {"x": x, "country": str(rng.choice(["FR", "DE"]))},
                "prediction": predicted,
                "model_version": version,
            }
        )
        if k % 5:  # four in five labelled
            labels.append({"id": f"r{k}", "label": truth})
    service.store_predictions("m", records)
    service.store_labels("m", labels)


def canary_of(service: Service, *, exact: bool) -> dict[str, Any]:
    evaluation = service.evaluator.compute(service.model("m"), now=NOW, exact=exact)
    assert evaluation.features[0].exact is exact
    return to_document(evaluation)["versions"]


def test_folded_canary_equals_the_exact_path_while_both_versions_fit(service: Service) -> None:
    store(service, 1, stable=900, canary=600, other=100)  # 1,600 records: the histogram path
    folded, exact = canary_of(service, exact=False), canary_of(service, exact=True)
    for side in ("stable", "canary"):
        mine, theirs = folded[side], exact[side]
        for key in ("version", "n", "labelled", "accuracy", "performance"):
            assert mine[key] == theirs[key], (side, key)
        assert mine["psi"] == pytest.approx(theirs["psi"], abs=1e-12)  # PSI: identical
    assert folded["stable"]["n"] == 900 and folded["canary"]["n"] == 600
    mine_vs, theirs_vs = folded["canary_vs_stable"], exact["canary_vs_stable"]
    for key in ("accuracy_delta", "accuracy_delta_lower", "accuracy_delta_upper"):
        assert mine_vs[key] == pytest.approx(theirs_vs[key], abs=1e-15)
    assert mine_vs["status"] == theirs_vs["status"]
    for column, body in theirs_vs["features"].items():
        for statistic, value in body.items():
            if isinstance(value, float):
                assert mine_vs["features"][column][statistic] == pytest.approx(value, abs=1e-12)
            else:
                assert mine_vs["features"][column][statistic] == value


def test_beyond_the_sample_the_canary_is_compared_with_the_lowest_hashed_stable_records(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    store(service, 2, stable=2500, canary=700)
    monkeypatch.setattr(evaluate_job, "FOLD_CHUNK", 97)
    folded = canary_of(service, exact=False)
    monkeypatch.setattr(evaluate_job, "FOLD_CHUNK", 100_000)
    assert canary_of(service, exact=False) == folded  # the same sample, whatever the chunks
    # the sample, as the module defines it, and the statistics by scipy
    with service.database.read() as connection:
        rows = windows.rows_between(
            connection, model="m", start=NOW - 3600, end=NOW, regression=False
        )
    stored = list(
        zip(rows.features, rows.predictions, rows.labels, rows.scores, rows.versions, strict=True)
    )
    stable = sorted((record_hash(f, p, label, s), f) for f, p, label, s, v in stored if v == "v1")[
        :1000
    ]
    x_stable = [codec.decode(f)["x"] for _, f in stable]
    x_canary = [codec.decode(f)["x"] for f, *_, v in stored if v == "v2"]
    drift = folded["canary_vs_stable"]["features"]["x"]
    expected = scipy.stats.ks_2samp(x_stable, x_canary)
    assert drift["ks_statistic"] == pytest.approx(expected.statistic, abs=1e-12)
    assert drift["n"] == 700
    # the version summaries and the accuracy difference count every record, not the sample
    assert folded["stable"]["n"] == 2500
    labelled = {
        v: [(p, label) for _, p, label, _, version in stored if version == v and label]
        for v in ("v1", "v2")
    }
    correct = {v: sum(p == label for p, label in pairs) for v, pairs in labelled.items()}
    assert folded["stable"]["labelled"] == len(labelled["v1"])
    compared = folded["canary_vs_stable"]
    assert compared["accuracy_delta"] == pytest.approx(
        correct["v2"] / len(labelled["v2"]) - correct["v1"] / len(labelled["v1"]), abs=1e-15
    )
    lower, upper = newcombe_difference_interval(
        successes_1=correct["v2"],
        n_1=len(labelled["v2"]),
        successes_2=correct["v1"],
        n_2=len(labelled["v1"]),
    )
    assert (compared["accuracy_delta_lower"], compared["accuracy_delta_upper"]) == (lower, upper)


def test_a_large_window_fires_the_canary_alerts(service: Service) -> None:
    store(service, 3, stable=1200, canary=600)
    evaluation = service.evaluate("m")
    assert evaluation.window.n == 1800 and evaluation.canary is not None
    firing = {
        (stored.alert.rule, stored.alert.severity)
        for stored in service.active_alerts("m")
        if stored.alert.state == "firing"
    }
    assert ("canary_accuracy_delta", "critical") in firing  # 0.7 against 0.9
    assert ("canary_psi", "critical") in firing  # x moved by 0.6 sd in the canary
