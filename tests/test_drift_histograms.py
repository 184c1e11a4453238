"""Windows larger than ``exact_max_samples`` are evaluated from per-bucket histograms.

PSI must equal the exact computation (checked against an independent numpy computation), the
KS statistic must be within the reported bound of scipy's, and two replicas summarising the
same database must merge to the result a single replica gets.
"""

from __future__ import annotations

import threading

import numpy as np
import orjson
import pytest
import scipy.stats
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.config import parse_config
from monitor.evaluation.document import to_document
from monitor.service import Service

START = 1_800_000_000.0
CONFIG = """
models:
  - name: m
    task: regression
    features:
      - {name: x, type: numeric}
      - {name: c, type: categorical}
    window: {duration: 1h}
    min_samples: 10
    drift: {exact_max_samples: 1000, bucket: 1m}
"""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def make_service(engine: Engine, clock: Clock) -> Service:
    service = Service(
        parse_config(CONFIG), engine=engine, registry=CollectorRegistry(), clock=clock
    )
    service.start(run_jobs=False)
    return service


def independent_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI as docs/drift.md defines it: inverted-CDF decile edges of the reference (ties merged,
    an edge at the maximum dropped), right-closed bins, empty proportions set to 1e-4."""
    edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins, method="inverted_cdf"))
    edges = edges[edges < reference.max()]
    r = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    r = np.where(r == 0, 1e-4, r / r.sum())
    c = np.where(c == 0, 1e-4, c / c.sum())
    return float(np.sum((c - r) * np.log(c / r)))


def ingest(service: Service, values: np.ndarray, *, start: float, prefix: str) -> None:
    records = [
        {
            "id": f"{prefix}{i}",
            "timestamp": start + i * 0.5,
            "features": {"x": float(v), "c": "ab"[i % 2] if i % 7 else "z"},
            "prediction": float(v) * 2,
        }
        for i, v in enumerate(values)
    ]
    for chunk in range(0, len(records), 1000):
        service.store_predictions("m", orjson.loads(orjson.dumps(records[chunk : chunk + 1000])))


def test_large_window_uses_histograms(engine: Engine) -> None:
    rng = np.random.default_rng(3)
    clock = Clock()
    service = make_service(engine, clock)
    reference = rng.normal(0, 1, 2000)
    service.store_reference(
        "m",
        [{"features": {"x": float(v), "c": "a"}, "prediction": 0.0} for v in reference],
        source="test",
    )
    current = rng.normal(0.3, 1.2, 5000)
    ingest(service, current, start=START, prefix="r")  # 2500 s of data
    clock.now = START + 3000
    evaluation = service.evaluate("m")
    x = evaluation.feature("x")
    assert x is not None and x.exact is False
    assert x.ks_bound is not None and 0 < x.ks_bound < 0.05
    # The window starts at the first whole bucket after now - 1h: all records are inside.
    assert evaluation.window.n == 5000 and x.n == 5000
    assert x.statistics["psi"] == pytest.approx(independent_psi(reference, current), abs=1e-12)
    exact = scipy.stats.ks_2samp(reference, current).statistic
    assert abs(x.statistics["ks_statistic"] - exact) <= x.ks_bound + 1e-12
    assert to_document(evaluation)["features"]["x"]["exact"] is False
    # Nothing is summarised twice: a second evaluation sees the same counts.
    again = service.evaluate("m")
    assert again.feature("x") is not None and again.feature("x").n == 5000  # type: ignore[union-attr]
    service.stop()


def test_chunked_summaries_and_unsummarised_tail_count_every_record_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Summaries and the tail of records too recent to summarise are read in chunks (here of
    333 records); each record counts once, whichever way it is reached."""
    monkeypatch.setattr("monitor.jobs.drift_histograms.SUMMARY_CHUNK", 333)
    rng = np.random.default_rng(11)
    clock = Clock()
    service = make_service(engine, clock)
    reference = rng.normal(0, 1, 2000)
    service.store_reference(
        "m", [{"features": {"x": float(v), "c": "a"}} for v in reference], source="test"
    )
    current = rng.normal(0.2, 1.1, 5000)
    ingest(service, current[:3000], start=START, prefix="early")
    clock.now = START + 2990  # the rest arrives 10 s before the evaluation: not summarised
    ingest(service, current[3000:], start=START + 1500, prefix="late")
    clock.now = START + 3000
    first = service.evaluate("m")
    clock.now = START + 3060  # now everything is summarised
    second = service.evaluate("m")
    for evaluation in (first, second):
        x = evaluation.feature("x")
        assert x is not None and x.exact is False and evaluation.window.n == 5000
        assert x.statistics["psi"] == pytest.approx(independent_psi(reference, current), abs=1e-12)
    service.stop()


def test_replicas_merge_to_the_single_replica_result(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    clock = Clock()
    first = make_service(engine, clock)
    second = make_service(engine, clock)
    reference = [{"features": {"x": float(v), "c": "a"}} for v in rng.normal(0, 1, 1500)]
    first.store_reference("m", reference, source="test")
    data = rng.normal(0, 1, 6000)
    # Two replicas ingest alternate chunks and summarise concurrently.
    ingest(first, data[:3000], start=START, prefix="a")
    ingest(second, data[3000:], start=START + 1500, prefix="b")
    clock.now = START + 3100
    threads = []
    for service in (first, second):
        with service.engine.connect() as connection:
            profiles = service.evaluator.reference_profiles(
                connection, service.model("m"), clock.now
            )
        summarize = service.evaluator.summarize
        threads.append(threading.Thread(target=summarize, args=(service.model("m"), profiles)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = first.evaluate("m")
    from_second = second.evaluate("m")
    assert to_document(merged)["features"] == to_document(from_second)["features"]

    # A single replica over a fresh copy of the same data gets the same statistics.
    from monitor.storage import create_database_engine

    single_engine = create_database_engine(f"sqlite:///{tmp_path / 'single.db'}")
    single = make_service(single_engine, clock)
    single.store_reference("m", reference, source="test")
    clock.now = START
    ingest(single, data[:3000], start=START, prefix="a")
    ingest(single, data[3000:], start=START + 1500, prefix="b")
    clock.now = START + 3100
    alone = single.evaluate("m")
    assert to_document(alone)["features"] == to_document(merged)["features"]
    assert merged.window.n == 6000
    for service in (first, second, single):
        service.stop()


def test_a_summariser_overtaken_between_its_read_and_its_write_counts_each_record_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica B summarises while replica A holds the records it read: A's write must see the
    moved mark and count from there, so every record counts once."""
    from monitor.jobs import drift_histograms

    rng = np.random.default_rng(17)
    clock = Clock()
    ours, theirs = make_service(engine, clock), make_service(engine, clock)
    reference = rng.normal(0, 1, 2000)
    ours.store_reference(
        "m", [{"features": {"x": float(v), "c": "a"}} for v in reference], source="test"
    )
    current = rng.normal(0.3, 1, 4000)
    ingest(ours, current, start=START, prefix="r")
    clock.now = START + 3000
    config = ours.model("m")
    with ours.engine.connect() as connection:
        profiles = ours.evaluator.reference_profiles(connection, config, clock.now)
    assert profiles is not None
    read_rows = drift_histograms.store.rows_after
    overtaken: list[int] = []

    def overtake(*args, **kwargs):  # type: ignore[no-untyped-def]
        rows = read_rows(*args, **kwargs)
        if not overtaken:
            overtaken.append(-1)  # theirs reads through here too
            overtaken[0] = theirs.evaluator.summarize(config, profiles)
        return rows

    monkeypatch.setattr(drift_histograms.store, "rows_after", overtake)
    added = ours.evaluator.summarize(config, profiles)
    monkeypatch.undo()
    assert overtaken == [4000] and added == 0
    evaluation = ours.evaluate("m")
    x = evaluation.feature("x")
    assert x is not None and x.exact is False and evaluation.window.n == 4000
    assert x.statistics["psi"] == pytest.approx(independent_psi(reference, current), abs=1e-12)
    ours.stop()
    theirs.stop()
