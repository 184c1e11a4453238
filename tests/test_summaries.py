"""The rules every incremental summary follows (``monitor.jobs.summaries``): rows are ready once
``SUMMARY_LAG_SECONDS`` old, and a step whose mark moved under it writes nothing. Run on SQLite
and PostgreSQL; the summaries' own differential tests are in test_drift_histograms.py and
test_labelled_windows.py."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, Engine, select

from monitor.config import parse_config
from monitor.jobs.summaries import BUILD_LEASE_SECONDS, SUMMARY_LAG_SECONDS, Summary, ready_seq
from monitor.service import Service
from monitor.storage.histograms import HistogramMarks
from monitor.storage.tables import predictions

START = 1_800_000_000.0
CONFIG = """
models:
  - {name: a, task: regression, features: [{name: x, type: numeric}]}
  - {name: b, task: regression, features: [{name: x, type: numeric}]}
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


def ingest(service: Service, model: str, ids: list[str]) -> None:
    records = [
        {"id": i, "timestamp": START, "features": {"x": 1.0}, "prediction": 1.0} for i in ids
    ]
    service.store_predictions(model, records)


def seqs(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {row.id: int(row.seq) for row in connection.execute(select(predictions))}


def test_rows_are_ready_once_the_lag_has_passed_whatever_their_model(engine: Engine) -> None:
    clock = Clock()
    service = make_service(engine, clock)
    ingest(service, "a", ["a1", "a2"])
    clock.now = START + 10
    ingest(service, "b", ["b1"])
    clock.now = START + 20
    ingest(service, "a", ["a3"])
    seq = seqs(engine)
    database = service.database
    ready = lambda now: ready_seq(database, table="predictions", after=0, now=now)  # noqa: E731
    assert ready(START + SUMMARY_LAG_SECONDS - 1) == 0  # nothing is old enough
    assert ready(START + SUMMARY_LAG_SECONDS) == seq["a2"]  # received exactly at the cutoff
    assert ready(START + 10 + SUMMARY_LAG_SECONDS) == seq["b1"]  # another model's row counts
    assert ready(START + 20 + SUMMARY_LAG_SECONDS) == seq["a3"]
    after_all = ready_seq(database, table="predictions", after=seq["a3"], now=START + 1e6)
    assert after_all == seq["a3"]  # none after: the starting point
    service.stop()


def test_a_step_whose_mark_moved_meanwhile_writes_nothing(engine: Engine) -> None:
    clock = Clock()
    service = make_service(engine, clock)
    marks = HistogramMarks("a", 1)
    ours = Summary(database=service.database, clock=clock, marks=marks)
    theirs = Summary(database=service.database, clock=clock, marks=marks)
    assert ours.mark() == 0
    writes: list[int] = []

    def write(connection: Connection) -> None:
        writes.append(1)

    assert theirs.advance(0, 7, write)  # the other summariser moves first
    assert not ours.advance(0, 5, write)  # ours read 0 before that: it must not write
    assert writes == [1] and ours.mark() == 7
    assert ours.advance(7, 9) and theirs.mark() == 9
    service.stop()


def test_a_build_lease_lapses_after_its_time() -> None:
    summary = Summary[int](database=None, clock=Clock(), marks=None)  # type: ignore[arg-type]
    assert summary.building(START, START + BUILD_LEASE_SECONDS - 1)
    assert not summary.building(START, START + BUILD_LEASE_SECONDS)
    assert not summary.building(None, START)
