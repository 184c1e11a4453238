"""Replicas on one database: one evaluation per model per tick (claims in ``evaluation_ticks``,
lapsed claims taken over), ``alerts.for`` counting ticks whatever the number of replicas, and
alert state changes serialised (no error, one event per transition) under concurrent
evaluations. On SQLite and PostgreSQL; each "replica" is a ``Service`` with an engine of its
own (on SQLite, several processes on one file are no supported replica set-up, so the alert
race runs two threads in one ``Service`` there)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, select

from monitor.config import ModelConfig, parse_config
from monitor.errors import StorageUnavailableError
from monitor.jobs.ticks import EvaluationTicks
from monitor.service import Service
from monitor.storage import alerts as alert_store
from monitor.storage import create_database_engine, migrate
from monitor.storage import ticks as claims
from monitor.storage.database import Database
from monitor.storage.tables import alert_history, evaluation_ticks

CONFIG = """
models:
  - name: m
    task: regression
    features: [{name: x, type: numeric}]
    window: {records: 50}
    min_samples: 10
    schedule: 10s
    thresholds:
      psi: {critical: 0.25, features: [x]}
    alerts: {for: %d}
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def replicas(database_url: str) -> Iterator[Callable[..., Service]]:
    """Makes services on ``database_url``, each with an engine (a pool) of its own."""
    made: list[Service] = []

    def make(clock: Clock, *, for_: int = 2, config: str = CONFIG) -> Service:
        service = Service(
            parse_config(config % for_),
            engine=create_database_engine(database_url),
            registry=CollectorRegistry(),
            clock=clock,
        )
        service.start(run_jobs=False)
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop()


def databases(url: str, count: int) -> list[Database]:
    found = [Database(create_database_engine(url)) for _ in range(count)]
    migrate(found[0].engine)
    return found


def predictions(start: int, *, shift: float) -> list[dict[str, Any]]:
    return [
        {"id": str(start + i), "features": {"x": i / 50 + shift}, "prediction": 1.0}
        for i in range(50)
    ]


def with_reference(service: Service) -> ModelConfig:
    service.store_reference("m", [{"features": {"x": i / 200}} for i in range(200)], source="t")
    return service.model("m")


def evaluated_at(service: Service) -> list[float]:
    history = service.evaluation_history("m", since=None, until=None, limit=1000)
    return [parse_instant(e["evaluated_at"]) for e in history]


def parse_instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_two_claimers_racing_for_a_tick_one_wins(database_url: str) -> None:
    racers = databases(database_url, 2)
    wins: list[tuple[float, str]] = []
    barrier = threading.Barrier(2)

    def race(database: Database, name: str) -> None:
        for tick in range(30):
            barrier.wait()
            with database.write() as connection:
                won = claims.claim(
                    connection, model="m", tick=float(tick), replica=name, now=0.0, lease=5.0
                )
            if won:
                wins.append((float(tick), name))

    threads = [threading.Thread(target=race, args=(db, f"r{n}")) for n, db in enumerate(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(t for t, _ in wins) == [float(t) for t in range(30)]  # each once
    with racers[0].read() as connection:
        rows = connection.execute(
            select(evaluation_ticks.c.tick, evaluation_ticks.c.claimed_by)
        ).all()
    assert sorted((float(t), by) for t, by in rows) == sorted(wins)
    for database in racers:
        database.dispose()


def test_a_lapsed_claim_is_taken_over_once_and_its_claimant_cannot_finish(
    database_url: str,
) -> None:
    (database,) = databases(database_url, 1)

    def claim(replica: str, now: float) -> bool:
        with database.write() as connection:
            return claims.claim(
                connection, model="m", tick=100.0, replica=replica, now=now, lease=5.0
            )

    def finish(replica: str) -> bool:
        with database.write() as connection:
            return claims.finish(connection, model="m", tick=100.0, replica=replica, now=120.0)

    assert claim("a", 100.0)
    assert not claim("b", 104.0)  # a's lease runs until 105
    with database.read() as connection:

        def claimable(now: float, since: float, candidates: list[float]) -> list[float]:
            return claims.claimable(
                connection, model="m", now=now, since=since, candidates=candidates
            )

        assert claimable(104.0, 0.0, [100.0]) == []  # a holds it
        assert claimable(104.0, 0.0, [110.0, 90.0]) == [90.0, 110.0]  # nobody's yet
        assert claimable(106.0, 0.0, []) == [100.0]  # lapsed
        assert claimable(106.0, 101.0, [100.0]) == []  # before since
    assert claim("b", 106.0)  # lapsed: taken over
    assert not claim("c", 106.5)  # by one replica only
    assert not finish("a")  # a came back too late: its evaluation must roll back
    assert finish("b")
    assert not claim("c", 500.0)  # done, however long ago
    with database.write() as connection:
        assert claims.forget_before(connection, model="m", before=100.0) == 0
        assert claims.forget_before(connection, model="m", before=100.5) == 1
    database.dispose()


def test_each_tick_is_evaluated_once_as_of_the_tick_and_for_counts_ticks(
    replicas: Callable[..., Service],
) -> None:
    clock = Clock(1000.0)
    a, b = replicas(clock), replicas(clock)
    config = with_reference(a)
    a.store_predictions("m", predictions(0, shift=10.0))  # drifted: psi breaches
    clock.now = 1003.0  # both replicas' jobs fire after tick 1000
    assert a.ticks.run(config) == [1000.0]
    assert b.ticks.run(config) == []
    assert [s.alert.state for s in a.active_alerts("m")] == ["pending"]  # for: 2, one tick
    clock.now = 1010.5
    assert b.ticks.run(config) == [1010.0]
    assert a.ticks.run(config) == []
    assert [s.alert.state for s in b.active_alerts("m")] == ["firing"]  # the second tick
    assert evaluated_at(a) == [1000.0, 1010.0]
    events = a.alert_history(model="m", since=None, limit=10)
    assert [(e.type, e.at) for e in events] == [("alert.firing", 1010.0)]


def test_a_replica_that_lost_its_ticks_makes_no_claim_attempt(
    replicas: Callable[..., Service],
) -> None:
    clock = Clock(995.0)
    a, b = replicas(clock), replicas(clock)
    config = with_reference(a)
    clock.now = 1003.0
    assert a.ticks.run(config) == [1000.0]
    clock.now = 1013.0  # b was running at tick 1000 (a ran it) and a has tick 1010 already
    assert a.ticks.run(config) == [1010.0]
    writes: list[str] = []

    def seen(_c: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            writes.append(statement)

    event.listen(b.engine, "before_cursor_execute", seen)
    try:
        assert b.ticks.run(config) == []
    finally:
        event.remove(b.engine, "before_cursor_execute", seen)
    assert writes == []


def test_a_tick_whose_claimant_died_is_taken_over_within_one_period(
    replicas: Callable[..., Service],
) -> None:
    clock = Clock(1000.0)
    survivor = replicas(clock)
    config = with_reference(survivor)
    survivor.store_predictions("m", predictions(0, shift=0.0))
    with survivor.database.write() as connection:  # a replica claims tick 1000, then dies
        assert claims.claim(
            connection, model="m", tick=1000.0, replica="dead", now=1000.1, lease=5.0
        )
    clock.now = 1000.2
    assert survivor.ticks.run(config) == []  # its lease still runs
    clock.now = 1010.1  # the next tick's run: the lapsed tick first, then the current one
    assert survivor.ticks.run(config) == [1000.0, 1010.0]
    assert evaluated_at(survivor) == [1000.0, 1010.0]
    clock.now = 1020.1
    assert survivor.ticks.run(config) == [1020.0]


def test_a_missed_tick_is_caught_up_but_not_one_before_the_replica_started(
    replicas: Callable[..., Service],
) -> None:
    clock = Clock(995.0)
    service = replicas(clock)
    config = with_reference(service)
    clock.now = 1001.0  # tick 990 was before this replica started: not its to catch up
    assert service.ticks.run(config) == [1000.0]
    clock.now = 1025.0  # the run after tick 1010 never happened (a pause, a late job)
    assert service.ticks.run(config) == [1010.0, 1020.0]
    assert evaluated_at(service) == [1000.0, 1010.0, 1020.0]


def test_an_outage_during_a_run_is_one_warning_line_and_the_tick_is_taken_later(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The database unavailable while a run adopts the latest evaluation or evaluates a tick
    (a cut connection, an outage) is a warning line each, no traceback, as the scheduler logs
    outages; the run goes on, and the tick whose evaluation failed is claimed again once its
    lease has lapsed."""
    (database,) = databases(database_url, 1)
    config = parse_config(CONFIG % 1).models[0]
    outage = StorageUnavailableError("OperationalError: connection refused")
    failing = [outage]
    evaluated: list[float] = []

    def adopt(config: ModelConfig) -> None:
        raise outage

    def evaluate(config: ModelConfig, *, at: float | None = None, **_: object) -> Any:
        if failing:
            raise failing.pop()
        assert at is not None
        evaluated.append(at)

    clock = Clock(1001.0)
    ticks = EvaluationTicks(
        database=database, clock=clock, evaluate=evaluate, adopt=adopt, replica="r"
    )
    with caplog.at_level("WARNING", logger="monitor.jobs.ticks"):
        assert ticks.run(config) == []
        clock.now = 1011.0  # the next tick's run: tick 1000's claim has lapsed
        assert ticks.run(config) == [1000.0, 1010.0]
    assert evaluated == [1000.0, 1010.0]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (
            "WARNING",
            "model m: reading the latest stored evaluation: the database is unavailable "
            "(OperationalError: connection refused)",
            None,
        ),
        (
            "WARNING",
            "model m: evaluation of tick 1000.0: the database is unavailable "
            "(OperationalError: connection refused); its claim lapses and it is taken "
            "again at a later run",
            None,
        ),
        (
            "WARNING",
            "model m: reading the latest stored evaluation: the database is unavailable "
            "(OperationalError: connection refused)",
            None,
        ),
    ]
    database.dispose()


def test_an_evaluation_whose_tick_was_taken_over_is_rolled_back(
    replicas: Callable[..., Service],
) -> None:
    clock = Clock(1000.0)
    slow, other = replicas(clock), replicas(clock)
    config = with_reference(slow)
    taken_over: list[bool] = []

    def evaluate_after_a_long_pause(config: ModelConfig, **kwargs: Any) -> Any:
        clock.now = 1010.2  # the lease (half a period) ran out meanwhile
        taken_over.append(other.ticks.evaluate_tick(config, 1000.0, lease=5.0))
        return slow.evaluator.evaluate(config, **kwargs)

    late = EvaluationTicks(
        database=slow.database,
        clock=clock,
        evaluate=evaluate_after_a_long_pause,
        replica="slow",
    )
    assert not late.evaluate_tick(config, 1000.0, lease=5.0)
    assert taken_over == [True]
    assert evaluated_at(slow) == [1000.0]  # once: the other replica's
    with slow.database.read() as connection:
        (row,) = connection.execute(select(evaluation_ticks)).mappings().all()
    assert (row["claimed_by"], row["done_at"]) == (other.ticks.replica, 1010.2)


def test_concurrent_evaluations_make_one_event_per_transition(
    replicas: Callable[..., Service], database_url: str
) -> None:
    clock = Clock(1000.0)
    first = replicas(clock, for_=1)
    # two replicas on PostgreSQL; on SQLite two threads of one process (its write lock)
    second = first if database_url.startswith("sqlite") else replicas(clock, for_=1)
    with_reference(first)
    failures: list[BaseException] = []
    rounds = 10
    for n in range(rounds):  # drifted, back to normal, drifted ...: one transition a round
        first.store_predictions("m", predictions(n * 50, shift=10.0 if n % 2 == 0 else 0.0))
        barrier = threading.Barrier(2)

        def evaluate(service: Service, barrier: threading.Barrier) -> None:
            barrier.wait()
            try:
                service.evaluate("m")
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=evaluate, args=(s, barrier)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    assert len(evaluated_at(first)) == 2 * rounds
    events = list(reversed(first.alert_history(model="m", since=None, limit=100)))
    assert [e.type for e in events] == ["alert.firing", "alert.resolved"] * (rounds // 2)
    assert len({e.event_id for e in events}) == rounds
    firings = [e for e in events if e.type == "alert.firing"]
    resolutions = [e for e in events if e.type == "alert.resolved"]
    assert [r.episode for r in resolutions] == [f.event_id for f in firings]
    assert Counter(e.feature for e in events) == {"x": rounds}


def test_an_event_id_is_recorded_once(database_url: str) -> None:
    (database,) = databases(database_url, 1)
    entry = alert_store.HistoryEntry(
        "evt_1", "evt_1", "m", "psi", "x", "alert.firing", "critical", 0.3, 0.25, 1.0, ()
    )
    with database.write() as connection:
        assert alert_store.record(connection, entry)
        assert not alert_store.record(connection, entry)
        assert alert_store.last_event_id(connection, model="m", rule="psi", feature="x") == (
            "evt_1"
        )
        assert connection.execute(select(alert_history.c.event_id)).scalars().all() == ["evt_1"]
    database.dispose()


def test_every_replica_exports_the_gauges_of_the_latest_stored_evaluation(
    replicas: Callable[..., Service],
) -> None:
    """The replica that lost a tick adopts what the winner stored at its next run: the same
    PSI, last-evaluation time and alert states on both, so ``max by (model, feature)`` over
    replicas is one series (issue 13, item 6, for the gauges this change makes per-tick)."""
    clock = Clock(1000.0)
    a, b = replicas(clock, for_=1), replicas(clock, for_=1)
    config = with_reference(a)
    a.store_predictions("m", predictions(0, shift=10.0))
    clock.now = 1003.0
    assert a.ticks.run(config) == [1000.0]

    def gauges(service: Service) -> tuple[Any, ...]:
        value = service.registry.get_sample_value
        return (
            value("drift_monitor_feature_psi", {"model": "m", "feature": "x"}),
            value("drift_monitor_last_evaluation_timestamp_seconds", {"model": "m"}),
            value(
                "drift_monitor_alerts_firing",
                {"model": "m", "rule": "psi", "severity": "critical"},
            ),
        )

    psi, last, firing = gauges(a)
    assert psi is not None and psi > 0.25 and last == 1000.0 and firing == 1.0
    assert gauges(b)[:2] == (None, None)  # b has neither evaluated nor read anything yet
    assert b.ticks.run(config) == []  # it lost tick 1000, and adopts what a stored for it
    assert gauges(b) == (psi, 1000.0, 1.0)
    clock.now = 1010.5
    assert a.ticks.run(config) == [1010.0]
    assert b.ticks.run(config) == []
    clock.now = 1020.5
    assert b.ticks.run(config) == [1020.0]  # it adopted 1010's, then evaluated 1020 itself
    assert a.ticks.run(config) == []
    assert gauges(a) == gauges(b)
    assert gauges(a)[1] == 1020.0


LABELLED = """
models:
  - name: m
    task: regression
    features: [{name: x, type: numeric}]
    window: {records: 50}
    min_samples: 10
    schedule: 10s
    thresholds:
      psi: {critical: 0.25}
      mae: {warning: 0.5}
    alerts: {for: %d}
"""


def model_gauges(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every gauge sample with a ``model`` label that ``service`` exports: what describes a
    model, as opposed to this replica's own counters and histograms."""
    found = {}
    for family in text_string_to_metric_families(generate_latest(service.registry).decode()):
        if family.type != "gauge" or family.name.endswith("_created"):  # counters' creation
            continue
        for sample in family.samples:
            if "model" in sample.labels:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_every_model_gauge_is_the_same_on_every_replica(
    replicas: Callable[..., Service],
) -> None:
    """A replica that did not evaluate, nor store the reference, exports every model gauge the
    one that did exports, with the same values: reference version, drift and performance
    gauges, last-evaluation time, thresholds and alert states; after a tick's run, and from
    its start (a replica started after the evaluation, before any tick of its own)."""
    clock = Clock(1000.0)
    a, b = (replicas(clock, for_=1, config=LABELLED) for _ in range(2))
    a.store_reference("m", [{"features": {"x": i / 200}} for i in range(200)], source="t")
    config = a.model("m")
    records = predictions(0, shift=10.0)
    a.store_predictions("m", [{**r, "timestamp": 950.0 + i} for i, r in enumerate(records)])
    a.store_labels("m", [{"id": str(i), "label": 2.0} for i in range(50)])
    clock.now = 1063.0  # past the labelled windows' summary lag
    assert a.ticks.run(config) == [1050.0, 1060.0]  # the one it missed, and this one
    winner = model_gauges(a)
    value = a.registry.get_sample_value
    assert value("drift_monitor_reference_version", {"model": "m"}) == 1.0
    assert value("drift_monitor_feature_psi", {"model": "m", "feature": "x"}) > 0.25
    assert value("drift_monitor_model_mae", {"model": "m"}) == 1.0
    assert value("drift_monitor_last_evaluation_timestamp_seconds", {"model": "m"}) == 1060.0
    for rule, severity in (("psi", "critical"), ("mae", "warning")):
        labels = {"model": "m", "rule": rule, "severity": severity}
        assert value("drift_monitor_alerts_firing", labels) == 1.0
    assert model_gauges(b) != winner  # b has neither evaluated nor read anything yet
    assert b.ticks.run(config) == []  # it lost both ticks, and adopts what a stored
    assert model_gauges(b) == winner
    c = replicas(clock, for_=1, config=LABELLED)  # started now: adopts at its start
    assert model_gauges(c) == winner
