"""Records for the segment and fairness tests (tests/test_groups.py, test_folded_groups.py): a
classifier of ``x`` (numeric), ``country`` and ``gender`` whose ``x`` moves in DE only and
which approves women less often, and a service running a config over them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.config import parse_config
from monitor.service import Service

NOW = 1_800_000_000.0
COUNTRIES = np.array(["FR", "DE", "IT", "ES"])
GENDERS = np.array(["f", "m"])


@contextmanager
def running(engine: Engine, config: str) -> Iterator[Service]:
    """A service over ``config`` at the clock ``NOW``, its jobs not scheduled."""
    service = Service(
        parse_config(config), engine=engine, registry=CollectorRegistry(), clock=lambda: NOW
    )
    service.start(run_jobs=False)
    try:
        yield service
    finally:
        service.stop()


def records(rng: np.random.Generator, n: int, *, de_shift: float, bias: float) -> dict[str, Any]:
    """``n`` records: ``x`` moved by ``de_shift`` in DE; right 80% of the time, and approving
    women less often by ``bias``; ``score`` the approval probability the model gives."""
    country = rng.choice(COUNTRIES, size=n, p=[0.4, 0.3, 0.2, 0.1])
    gender = rng.choice(GENDERS, size=n)
    x = rng.normal(size=n) + np.where(country == "DE", de_shift, 0.0)
    truth = np.where(rng.random(n) < 0.5, "approved", "denied")
    right = rng.random(n) < 0.8
    predicted = np.where(right, truth, np.where(truth == "approved", "denied", "approved"))
    flip = (gender == "f") & (predicted == "approved") & (rng.random(n) < bias)
    predicted = np.where(flip, "denied", predicted)
    score = np.clip(np.where(predicted == "approved", 0.7, 0.3) + rng.normal(0, 0.15, n), 0, 1)
    return {
        "country": country,
        "gender": gender,
        "x": x,
        "truth": truth,
        "predicted": predicted,
        "score": score,
    }


def store(
    service: Service,
    rng: np.random.Generator,
    *,
    n: int,
    labelled: int,
    scores: bool = False,
    versions: bool = False,
) -> dict[str, Any]:
    """A reference of 3,000 records, then ``n`` records in the last hour (DE moved by 1.5,
    women approved half as often), the first ``labelled`` of them labelled; with ``scores``
    and ``versions`` (``a``, and ``b`` for every third record) when asked. The window's
    records, with ``labelled`` marking those labelled."""
    reference = records(rng, 3000, de_shift=0.0, bias=0.0)
    service.store_reference(
        "m",
        [
            {
                "features": {"x": float(x), "country": str(c), "gender": str(g)},
                "prediction": str(p),
                "label": str(t),
            }
            for x, c, g, p, t in zip(
                reference["x"],
                reference["country"],
                reference["gender"],
                reference["predicted"],
                reference["truth"],
                strict=True,
            )
        ],
        source="test",
    )
    current = records(rng, n, de_shift=1.5, bias=0.5)
    predictions = []
    for i in range(n):
        record: dict[str, Any] = {
            "id": f"r{i}",
            "timestamp": NOW - 100 - i,
            "features": {
                "x": float(current["x"][i]),
                "country": str(current["country"][i]),
                "gender": str(current["gender"][i]),
            },
            "prediction": str(current["predicted"][i]),
        }
        if scores:
            approved = float(current["score"][i])
            record["scores"] = {"approved": approved, "denied": 1.0 - approved}
        if versions:
            record["model_version"] = "ab"[i % 3 == 0]
        predictions.append(record)
    service.store_predictions("m", predictions)
    service.store_labels(
        "m", [{"id": f"r{i}", "label": str(current["truth"][i])} for i in range(labelled)]
    )
    current["labelled"] = np.arange(n) < labelled
    return current
