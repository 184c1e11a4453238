"""Replicas sharing the work: evaluations per second and CPU per replica with 1, 2 and 3
``monitor serve`` processes on one PostgreSQL database, and ingest through 1 and 2 of them.

Evaluations. 30 regression models of 32 numeric features, each with a 5,000-record reference
and a window of its last 5,000 records, all on ``schedule: 2s``: 15 evaluations a second are
due, more than one replica can do on one core (about 80-100 ms of CPU each), so one replica
falls behind and more replicas share the ticks (each (model, tick) is claimed by one replica in
``evaluation_ticks``). For each replica count, on a fresh set of processes after two ticks of
warm-up, over whole schedule periods: evaluations stored per second (claims marked done in the
interval), the share each replica won, its CPU (utime + stime from ``/proc/<pid>/stat`` over the
interval, in cores) and PostgreSQL's (its processes' CPU, same way). The floor is the same
evaluation done the plainest fast way: ``DriftEvaluator.evaluate`` called in a loop over the
models in this process (no scheduler, claims, adoption or HTTP server), on the same database;
ratios are ours/floor for evaluations per second and for CPU per evaluation.

Ingest. ``bench/ingest.py``'s model and ``wrk`` script (``bench/ingest.lua``) at batch 1000:
8 connections to one replica, then 4 to each of two (two ``wrk`` processes at once), and the
bare floor of ``bench/ingest.py`` (``bench/floor.py``: parse the body with orjson, answer 202)
with 8 connections. Every record must be stored once (the count grows by at least the records
of the completed requests; no duplicates).

Everything runs in a schema of its own in the URL's database, dropped afterwards:

    .venv/bin/python bench/replicas.py            # about 4 minutes
    .venv/bin/python bench/replicas.py --quick    # about 2 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docs_region
from ingest import (
    HOST,
    Processes,
    WrkRun,
    _raise_on_sigterm,
    duplicates_counted,
    free_port,
    monitor_command,
    run_wrk,
    settled_count,
    start_floor,
    wait_ready,
)
from ingest import write_config as ingest_config
from postgres import fresh_schema, postgres_unreachable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MODELS = 30
FEATURES = 32
RECORDS = 5_000  # reference size and window (records)
SCHEDULE = 2.0  # seconds
TICKS = os.sysconf("SC_CLK_TCK")


# -- CPU -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of proc(5)


class PostgresCpu:
    """CPU of the PostgreSQL backends serving this run's connections (those whose
    ``application_name`` is the run's), sampled every 0.2 s between ``start()`` and
    ``stop()``: a backend opened meanwhile counts from zero, one closed meanwhile up to its
    last sample (a pool's overflow connections come and go)."""

    def __init__(self, engine: Any, application_name: str) -> None:
        self.engine = engine
        self.application_name = application_name
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> dict[int, float]:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            pids = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": self.application_name},
            ).scalars()
            found = {}
            for pid in pids:
                with contextlib.suppress(OSError):  # gone meanwhile
                    found[pid] = cpu_seconds(pid)
        return found

    def _record(self) -> None:
        for pid, cpu in self._sample().items():
            self._first.setdefault(pid, 0.0)
            self._last[pid] = cpu

    def start(self) -> None:
        self._first = self._sample()
        self._last = dict(self._first)
        self._stopping.clear()

        def sample() -> None:
            while not self._stopping.wait(0.2):
                self._record()

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        """CPU seconds since ``start()``."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self._record()
        return sum(self._last[pid] - first for pid, first in self._first.items())


# -- set-up --------------------------------------------------------------------------------


def model_names() -> list[str]:
    return [f"m{i:02d}" for i in range(MODELS)]


def write_config(path: Path, database_url: str) -> Path:
    features = ", ".join(f"{{name: x{i}, type: numeric}}" for i in range(FEATURES))
    lines = [
        f"server: {{host: {HOST}, port: 8000}}",
        f'storage: {{url: "{database_url}", retention: 7d}}',
        "models:",
    ]
    for name in model_names():
        lines += [
            f"  - name: {name}",
            "    task: regression",
            f"    features: [{features}]",
            f"    window: {{records: {RECORDS}}}",
            f"    schedule: {SCHEDULE:g}s",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def open_service(config: Path) -> Any:
    """A ``Service`` in this process on the benchmark's database, jobs not running."""
    sys.path.insert(1, str(ROOT))
    from prometheus_client import CollectorRegistry

    from monitor.config import load_config
    from monitor.service import Service

    service = Service(load_config(config), registry=CollectorRegistry())
    service.start(run_jobs=False)
    return service


def load_data(service: Any) -> None:
    """Each model's reference and window, the window shifted a little from the reference."""
    rnd = random.Random(13)
    stamp = time.time() - 60
    for n, name in enumerate(model_names()):
        reference = [
            {"features": {f"x{i}": rnd.gauss(0, 1) for i in range(FEATURES)}}
            for _ in range(RECORDS)
        ]
        service.store_reference(name, reference, source="bench")
        shift = 0.02 * n
        records = [
            {
                "id": str(k),
                "timestamp": stamp,
                "features": {f"x{i}": rnd.gauss(shift, 1) for i in range(FEATURES)},
                "prediction": 1.0,
            }
            for k in range(RECORDS)
        ]
        service.store_predictions(name, records)


# -- evaluations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalResult:
    label: str  # "1 replica", ..., "floor"
    seconds: float
    evaluations: int
    cpu: list[float]  # seconds, per process
    postgres_cpu: float  # seconds
    shares: list[int]  # evaluations per process

    @property
    def per_second(self) -> float:
        return self.evaluations / self.seconds

    @property
    def cpu_per_evaluation_ms(self) -> float:
        return 1000 * sum(self.cpu) / self.evaluations if self.evaluations else float("nan")


def floor_evaluations(service: Any, rounds: int, postgres: PostgresCpu) -> EvalResult:
    """The models evaluated one after the other in this process, ``rounds`` times."""
    configs = [service.model(name) for name in model_names()]
    at = service.clock()
    service.evaluator.evaluate(configs[0], at=at, webhooks=False)  # warm
    postgres.start()
    cpu_before, start = time.process_time(), time.monotonic()
    for _ in range(rounds):
        for config in configs:
            service.evaluator.evaluate(config, at=at, webhooks=False)
    seconds = time.monotonic() - start
    cpu = time.process_time() - cpu_before
    n = rounds * len(configs)
    return EvalResult("floor", seconds, n, [cpu], postgres.stop(), [n])


def start_replica(
    processes: Processes, config: Path, directory: Path, name: str
) -> tuple[Any, str]:
    port = free_port()
    log = directory / f"{name}.log"
    argv = [*monitor_command(), "serve", "--config", str(config), "--port", str(port)]
    process = processes.start([*argv, "--log-level", "warning"], log, directory)
    base = f"http://{HOST}:{port}"
    wait_ready(f"{base}/readyz", process, log, timeout=120)
    return process, base


def done_between(engine: Any, start: float, end: float) -> Counter[int]:
    """Ticks marked done in [start, end), by the claimant's process id."""
    from sqlalchemy import text

    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT claimed_by, count(*) FROM evaluation_ticks"
                " WHERE done_at >= :start AND done_at < :end GROUP BY claimed_by"
            ),
            {"start": start, "end": end},
        ).all()
    found: Counter[int] = Counter()
    for claimed_by, count in rows:
        found[int(claimed_by.split(":")[1])] += count
    return found


def sleep_until(instant: float) -> None:
    while (left := instant - time.time()) > 0:
        time.sleep(min(left, 0.5))


def replica_evaluations(
    count: int, config: Path, postgres: PostgresCpu, args: argparse.Namespace, directory: Path
) -> EvalResult:
    processes: Processes = args.processes
    started = [
        start_replica(processes, config, directory, f"replicas{count}-{n}") for n in range(count)
    ]
    pids = [process.pid for process, _ in started]
    try:
        # two whole ticks of warm-up, then whole periods starting just after a tick
        now = time.time()
        start = (now // SCHEDULE + 3) * SCHEDULE
        end = start + args.periods * SCHEDULE
        sleep_until(start)
        cpu_before = [cpu_seconds(p) for p in pids]
        postgres.start()
        sleep_until(end)
        cpu = [cpu_seconds(p) - b for p, b in zip(pids, cpu_before, strict=True)]
        pg = postgres.stop()
        time.sleep(0.2)  # a commit stamped just before the end may land a moment later
        done = done_between(postgres.engine, start, end)
    finally:
        for process, _ in started:
            processes.stop(process)
    label = f"{count} replica{'s' if count > 1 else ''}"
    shares = [done.get(p, 0) for p in pids]
    return EvalResult(label, end - start, sum(done.values()), cpu, pg, shares)


# -- ingest --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestResult:
    label: str
    runs: list[WrkRun]
    cpu: list[float]  # cores, per server process
    postgres: float | None  # cores
    stored: int | None

    @property
    def records_per_s(self) -> float:
        return sum(r.requests / r.duration_s for r in self.runs) * 1000

    @property
    def errors(self) -> int:
        return sum(r.non_2xx + r.socket_errors for r in self.runs)


def load_at_once(bases: list[str], duration: float, args: argparse.Namespace) -> list[WrkRun]:
    """One wrk process per base, all at once, splitting ``args.connections`` between them."""
    share = argparse.Namespace(
        wrk=args.wrk, threads=1, connections=max(1, args.connections // len(bases))
    )
    runs: list[WrkRun | None] = [None] * len(bases)
    failures: list[BaseException] = []

    def one(n: int, base: str) -> None:
        try:
            runs[n] = run_wrk(base, 1000, duration, share)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=one, args=(n, b)) for n, b in enumerate(bases)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"wrk failed: {failures[0]}")
    return [r for r in runs if r is not None]


def ingest_through(
    count: int, database_url: str, postgres: PostgresCpu, args: argparse.Namespace, directory: Path
) -> IngestResult:
    processes: Processes = args.processes
    here = directory / f"ingest{count}"
    here.mkdir()
    config = ingest_config(here, database_url)
    started = [start_replica(processes, config, here, f"ingest{count}-{n}") for n in range(count)]
    bases = [base for _, base in started]
    pids = [process.pid for process, _ in started]
    try:
        load_at_once(bases, args.warmup, args)
        before = settled_count(bases[0])
        duplicates_before = sum(duplicates_counted(b) for b in bases)
        cpu_before, start = [cpu_seconds(p) for p in pids], time.monotonic()
        postgres.start()
        runs = load_at_once(bases, args.duration, args)
        seconds = time.monotonic() - start
        cpu = [(cpu_seconds(p) - b) / seconds for p, b in zip(pids, cpu_before, strict=True)]
        pg = postgres.stop() / seconds
        stored = settled_count(bases[0]) - before
        duplicates = sum(duplicates_counted(b) for b in bases) - duplicates_before
    finally:
        for process, _ in started:
            processes.stop(process)
    completed = sum(r.requests for r in runs) * 1000
    if stored < completed or duplicates:
        raise RuntimeError(
            f"ingest through {count}: {completed} records acknowledged, {stored} stored, "
            f"{duplicates:.0f} duplicates"
        )
    label = f"{count} replica{'s' if count > 1 else ''}"
    return IngestResult(label, runs, cpu, pg, stored)


def ingest_floor(args: argparse.Namespace, directory: Path) -> IngestResult:
    process, base = start_floor(args.processes, directory)
    try:
        load_at_once([base], args.warmup, args)
        before, start = cpu_seconds(process.pid), time.monotonic()
        runs = load_at_once([base], args.duration, args)
        cpu = (cpu_seconds(process.pid) - before) / (time.monotonic() - start)
    finally:
        args.processes.stop(process)
    return IngestResult("floor", runs, [cpu], None, None)


# -- report --------------------------------------------------------------------------------


def cores(values: Sequence[float]) -> str:
    return " + ".join(f"{v:.2f}" for v in values)


def evaluation_table(results: list[EvalResult]) -> str:
    floor = next(r for r in results if r.label == "floor")
    header = (
        f"| run | evaluations/s (due: {MODELS / SCHEDULE:g}/s) | share per replica "
        "| CPU per replica, cores | PostgreSQL, cores | CPU ms per evaluation "
        "| evaluations/s ours/floor | CPU per evaluation ours/floor |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        ours = r is not floor
        per_core = [c / r.seconds for c in r.cpu]
        speed = cost = shares = "-"
        if ours:
            speed = f"{r.per_second / floor.per_second:.2f}x"
            cost = f"{r.cpu_per_evaluation_ms / floor.cpu_per_evaluation_ms:.2f}x"
            shares = " / ".join(str(s) for s in r.shares)
        lines.append(
            f"| {r.label} | {r.per_second:.1f} | {shares} | {cores(per_core)} "
            f"| {r.postgres_cpu / r.seconds:.2f} | {r.cpu_per_evaluation_ms:.0f} "
            f"| {speed} | {cost} |"
        )
    return "\n".join(lines)


def ingest_table(results: list[IngestResult]) -> str:
    floor = next(r for r in results if r.label == "floor")
    header = (
        "| server | records/s (batch 1000) | CPU per server process, cores "
        "| PostgreSQL, cores | errors | records/s ours/floor |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        ratio = f"{r.records_per_s / floor.records_per_s:.2f}x" if r is not floor else "-"
        pg = "-" if r.postgres is None else f"{r.postgres:.2f}"
        lines.append(
            f"| {r.label} | {r.records_per_s:,.0f} | {cores(r.cpu)} | {pg} | {r.errors} | {ratio} |"
        )
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter intervals")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("MONITOR_TEST_DATABASE_URL", DEFAULT_POSTGRES_URL),
        help="database holding the run's schema (created, then dropped)",
    )
    parser.add_argument("--replicas", default="1,2,3", help="replica counts for evaluations")
    parser.add_argument("--skip-ingest", action="store_true", help="evaluations only")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections in all")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="wrk executable")
    docs_region.add_option(parser)
    args = parser.parse_args(argv)
    args.replicas = [int(n) for n in args.replicas.split(",") if n.strip()]
    args.periods = 5 if args.quick else 10  # schedule periods measured per replica count
    args.rounds = 2 if args.quick else 4  # floor: evaluations of every model
    args.duration = 4.0 if args.quick else 8.0  # ingest seconds per case
    args.warmup = 1.0
    return args


def run(args: argparse.Namespace, directory: Path) -> tuple[list[EvalResult], list[IngestResult]]:
    from sqlalchemy import create_engine

    schema = f"bench_replicas_{uuid.uuid4().hex[:8]}"
    with fresh_schema(args.postgres_url, schema) as url:
        served = f"{url}&application_name={schema}"  # the service's connections, for their CPU
        config = write_config(directory / "monitor.yaml", served)
        postgres = PostgresCpu(create_engine(url), schema)  # the bench's own: not counted
        try:
            print(f"schema {schema}: loading {MODELS} models x {RECORDS:,} records...", flush=True)
            service = open_service(config)
            try:
                load_data(service)
                print("floor: evaluate() in a loop in one process", flush=True)
                evaluations = [floor_evaluations(service, args.rounds, postgres)]
            finally:
                service.stop()
            for count in args.replicas:
                print(f"{count} replica(s): {args.periods} periods of {SCHEDULE:g}s", flush=True)
                evaluations.append(replica_evaluations(count, config, postgres, args, directory))
            ingest: list[IngestResult] = []
            if not args.skip_ingest:
                print("ingest at batch 1000: floor, 1 replica, 2 replicas", flush=True)
                ingest.append(ingest_floor(args, directory))
            for count in (1, 2) if ingest else ():
                ingest.append(ingest_through(count, served, postgres, args, directory))
        finally:
            postgres.engine.dispose()
    evaluations.append(evaluations.pop(0))  # the floor last, as in bench/ingest.py's table
    return evaluations, ingest


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which(args.wrk) is None:
        print(f"wrk not found ({args.wrk}); install it or pass --wrk", file=sys.stderr)
        return 2
    reason = postgres_unreachable(args.postgres_url)
    if reason is not None:
        print(f"PostgreSQL is not reachable ({reason})", file=sys.stderr)
        return 2
    # the replicas run this checkout's code, whatever the virtualenv has installed
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
    )
    os.environ.pop("MONITOR_DATABASE_URL", None)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    args.processes = processes = Processes()
    args.load = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="drift-bench-replicas-") as tmp:
            try:
                evaluations, ingest = run(args, Path(tmp))
            finally:
                processes.stop_all()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(
        f"Evaluations: {MODELS} models, schedule {SCHEDULE:g}s, {os.cpu_count()} cores; "
        "load average {:.1f} at the start, {:.1f} at the end".format(args.load, os.getloadavg()[0])
    )
    print()
    print(evaluation_table(evaluations))
    if ingest:
        print()
        print("Ingest")
        print()
        print(ingest_table(ingest))
    tables = [evaluation_table(evaluations)] + ([ingest_table(ingest)] if ingest else [])
    docs_region.write(args.write_docs, "replicas", *tables)
    return 1 if any(r.errors for r in ingest) else 0


if __name__ == "__main__":
    sys.exit(main())
