"""APScheduler runs each model's evaluation on its ``schedule`` and the retention sweep."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.config import parse_config
from monitor.jobs import Scheduler
from monitor.jobs.ticks import EVALUATION_THREADS
from monitor.service import Service
from monitor.storage import create_database_engine


def test_models_are_evaluated_on_their_schedule(tmp_path: Path) -> None:
    config = parse_config("""
models:
  - name: fast
    task: regression
    features: [{name: x, type: numeric}]
    schedule: 1s
    min_samples: 5
  - name: slow
    task: regression
    features: [{name: x, type: numeric}]
    schedule: 1h
""")
    engine = create_database_engine(f"sqlite:///{tmp_path / 'm.db'}")
    service = Service(config, engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=True)
    try:
        service.store_reference(
            "fast", [{"features": {"x": float(i)}} for i in range(20)], source="test"
        )
        service.store_predictions(
            "fast",
            [{"id": str(i), "features": {"x": float(i)}, "prediction": 1.0} for i in range(10)],
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            history = service.evaluation_history("fast", since=None, until=None, limit=100)
            if len(history) >= 2:
                break
            time.sleep(0.2)
        assert len(history) >= 2
        assert history[-1]["features"]["x"]["n"] == 10
        assert history[-1]["features"]["x"]["psi"] is not None
        assert service.evaluation_history("slow", since=None, until=None, limit=100) == []
        assert (
            service.registry.get_sample_value(
                "drift_monitor_last_evaluation_timestamp_seconds", {"model": "fast"}
            )
            is not None
        )
    finally:
        service.stop()


def test_run_now_runs_at_start_and_then_on_the_interval_only() -> None:
    from datetime import timedelta
    from threading import Event

    from monitor.jobs.scheduler import Scheduler

    runs: list[float] = []
    ran = Event()

    def job() -> None:
        runs.append(time.monotonic())
        ran.set()

    scheduler = Scheduler()
    scheduler.every(timedelta(hours=1), job, name="sweep", run_now=True)
    scheduler.every(timedelta(hours=1), lambda: runs.append(-1.0), name="later")
    scheduler.start()
    try:
        assert ran.wait(10), "a run_now job runs when the scheduler starts"
        time.sleep(0.5)
    finally:
        scheduler.stop()
    assert len(runs) == 1 and runs[0] > 0  # once; the other job waits for its hour


def test_a_job_failing_on_an_unavailable_database_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """During a PostgreSQL outage the CloudEvents expiry logged a 40-line traceback every 5 s;
    an outage is expected and said in one line, other failures keep their traceback."""
    from monitor.errors import StorageUnavailableError
    from monitor.jobs.scheduler import run_guarded

    def unavailable() -> None:
        raise StorageUnavailableError("connection refused")

    def broken() -> None:
        raise ValueError("a bug")

    with caplog.at_level(logging.WARNING, logger="monitor.jobs.scheduler"):
        run_guarded(unavailable, name="expiry")
        run_guarded(broken, name="sweep")
    outage, bug = caplog.records
    assert outage.levelno == logging.WARNING
    assert outage.getMessage() == (
        "scheduled job expiry: the database is unavailable (connection refused); "
        "next run as scheduled"
    )
    assert outage.exc_info is None
    assert bug.levelno == logging.ERROR
    assert bug.getMessage() == "scheduled job sweep failed"
    assert bug.exc_info is not None


def test_jobs_of_a_pool_wait_for_its_threads_and_leave_the_default_pool_free() -> None:
    """A replica's scheduled evaluations run in a pool of ``EVALUATION_THREADS``: a tick's run
    (and so its claim) waits until a thread is free, so the replica holds no more claims than
    it can evaluate at once, and the other jobs (webhooks, retention) are not held up."""
    scheduler = Scheduler(pools={"evaluations": 2})
    release, other = threading.Event(), threading.Event()
    started: list[str] = []

    def blocking(name: str) -> Callable[[], None]:
        def job() -> None:
            started.append(name)
            release.wait(60)

        return job

    for n in range(3):
        scheduler.every(
            timedelta(hours=1), blocking(f"e{n}"), name=f"e{n}", run_now=True, pool="evaluations"
        )
    scheduler.every(timedelta(hours=1), other.set, name="other", run_now=True)
    scheduler.start()
    try:
        assert other.wait(60)  # while both evaluation threads are busy
        deadline = time.monotonic() + 60
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(started) == 2  # the third waits for a thread
        release.set()
        while len(started) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(started) == ["e0", "e1", "e2"]
    finally:
        release.set()
        scheduler.stop()


def test_each_models_scheduled_evaluation_runs_in_the_evaluations_pool(tmp_path: Path) -> None:
    config = parse_config("""
models:
  - name: m
    task: regression
    features: [{name: x, type: numeric}]
""")
    engine = create_database_engine(f"sqlite:///{tmp_path / 'm.db'}")
    service = Service(config, engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=True)
    try:
        jobs = {job.id: job.executor for job in service.scheduler._scheduler.get_jobs()}
        assert jobs["evaluate:m"] == "evaluations"
        assert jobs["retention"] == "default"
        executors = service.scheduler._scheduler._executors
        assert executors["evaluations"]._pool._max_workers == EVALUATION_THREADS
    finally:
        service.stop()


def test_a_job_waiting_for_a_thread_runs_however_late() -> None:
    """30 models' evaluations due at one tick wait for the pool's threads; none is dropped
    because it waited (APScheduler's default grace is one second)."""
    scheduler = Scheduler(pools={"evaluations": 1})
    release, ran = threading.Event(), threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(60)

    scheduler.every(timedelta(hours=1), hold, name="first", run_now=True, pool="evaluations")
    scheduler.every(timedelta(hours=1), ran.set, name="second", run_now=True, pool="evaluations")
    scheduler.start()
    try:
        assert started.wait(60)
        time.sleep(1.5)  # the condition itself: the second job waits past APScheduler's grace
        release.set()
        assert ran.wait(60)
    finally:
        release.set()
        scheduler.stop()
