"""Resident memory of ``monitor serve`` under a steady load, over minutes.

What is measured: the resident set (``VmRSS`` of ``/proc/PID/status``, with its anonymous and
file-backed parts) of a real ``monitor serve``, sampled every ``--sample-every`` seconds while
client processes send it about ``--rate`` prediction records/s and the labels of
``--label-share`` of them ``--label-delay`` seconds later, for ``--minutes``. The one model
(``soak``: classification ``[a, b]`` with scores, 20 numeric and 5 categorical features, as in
``bench/ingest.py``; a 1h window, so it crosses ``drift.exact_max_samples`` and runs the
histogram path after the first ~50 s at 2k/s; ``reference: {first_records: 5000}``; drift and
performance thresholds, so alerts move) is evaluated every ``--schedule`` (10s), so evaluations,
summarisation, the labelled-window path, the WAL checkpoint and ingest all run concurrently
as in production.

The table gives RSS at start (server ready, before load), at the end of the warm-up
(``--warmup`` seconds of load), min/median/max over the last half of the run ("steady") and the
growth slope over that half (least squares, MB per minute); then records sent and stored,
evaluations run, and errors. The run stops by itself after ``--minutes`` (clients stop at the
deadline; the whole run is bounded by it plus a minute) and the server is stopped.

Target: steady max RSS under 300 MB on SQLite (exit status 1 when missed or on any error).

    .venv/bin/python bench/soak.py                        # 10 minutes, SQLite
    .venv/bin/python bench/soak.py --minutes 2            # a short run while developing
    .venv/bin/python bench/soak.py --database postgresql+psycopg://postgres@127.0.0.1:5432/soak

``--database`` is used as given except that a PostgreSQL database is created fresh (dropped
first) and dropped afterwards, as ``bench/ingest.py`` does. ``--probe DIR`` starts the server
through ``bench/soak_probe.py`` instead, which writes tracemalloc differences and glibc
``mallinfo2`` figures to DIR every ``--sample-every`` seconds (slower; for finding where memory
goes, not for the figures).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docs_region
from ingest import (
    Processes,
    _raise_on_sigterm,
    free_port,
    http_get,
    monitor_command,
    stored_predictions,
    wait_ready,
)
from postgres import fresh_postgres, postgres_unreachable

HERE = Path(__file__).resolve().parent
PROBE = HERE / "soak_probe.py"
HOST = "127.0.0.1"
MODEL = "soak"
TARGET_STEADY_MB = 300  # SQLite
EVALUATIONS = re.compile(
    r'^drift_monitor_evaluation_duration_seconds_count\{model="soak"\} (\S+)$', re.M
)
EVALUATION_SECONDS = re.compile(
    r'^drift_monitor_evaluation_duration_seconds_sum\{model="soak"\} (\S+)$', re.M
)
NUMERIC = 20
CATEGORICAL = 5


# -- config --------------------------------------------------------------------------------


def write_config(directory: Path, database_url: str, schedule: str) -> Path:
    features = [f"      - {{name: n{i}, type: numeric}}" for i in range(NUMERIC)]
    features += [f"      - {{name: c{i}, type: categorical}}" for i in range(CATEGORICAL)]
    text = "\n".join(
        [
            f"server: {{host: {HOST}, port: 8000}}",
            f'storage: {{url: "{database_url}", retention: 7d}}',
            "models:",
            f"  - name: {MODEL}",
            "    task: classification",
            "    classes: [a, b]",
            "    window: {duration: 1h}",
            f"    schedule: {schedule}",
            "    min_samples: 100",
            "    reference: {first_records: 5000}",
            "    thresholds:",
            "      psi: {warning: 0.1, critical: 0.25}",
            "      ks_pvalue: {critical: 0.01}",
            "      accuracy: {warning: 0.9, critical: 0.8}",
            "      label_coverage: {warning: 0.2}",
            "    alerts: {for: 2}",
            "    features:",
            *features,
            "",
        ]
    )
    path = directory / "monitor.yaml"
    path.write_text(text)
    return path


# -- clients -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientPlan:
    index: int
    port: int
    rate: float  # records/s of this client
    batch: int
    label_share: float
    label_delay: float
    deadline: float  # time.time() at which to stop


def _records(rng: random.Random, prefix: str, start: int, count: int, now: float) -> list[Any]:
    records = []
    for i in range(start, start + count):
        features: dict[str, Any] = {
            f"n{n}": round(rng.gauss(50 + n, 10), 3) for n in range(NUMERIC)
        }
        for c in range(CATEGORICAL):
            features[f"c{c}"] = f"v{min(9, int(rng.expovariate(0.5)))}"
        a = round(rng.random(), 3)
        records.append(
            {
                "id": f"{prefix}{i}",
                "timestamp": now,
                "features": features,
                "prediction": "a" if a >= 0.5 else "b",
                "scores": {"a": a, "b": round(1 - a, 3)},
            }
        )
    return records


def _post(connection: http.client.HTTPConnection, path: str, body: bytes) -> int:
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status


def run_client(plan: ClientPlan, results: Any) -> None:
    """Send ``plan.rate`` records/s in batches, on a fixed schedule (no catching up beyond one
    second behind), and the labels of a share of them once they are ``label_delay`` old."""
    rng = random.Random(plan.index)
    prefix = f"s{plan.index}-{os.getpid()}-"
    connection = http.client.HTTPConnection(HOST, plan.port, timeout=30)
    pending: deque[tuple[float, list[dict[str, Any]]]] = deque()
    sent = labels = errors = counter = 0
    interval = plan.batch / plan.rate
    next_send = time.monotonic()
    predictions_path = f"/v1/models/{MODEL}/predictions"
    labels_path = f"/v1/models/{MODEL}/labels"

    def send(path: str, payload: list[Any]) -> bool:
        nonlocal connection, errors
        try:
            status = _post(connection, path, json.dumps(payload).encode())
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection(HOST, plan.port, timeout=30)
            errors += 1
            return False
        if status >= 300:
            errors += 1
            return False
        return True

    while time.time() < plan.deadline:
        now = time.time()
        records = _records(rng, prefix, counter, plan.batch, now)
        counter += plan.batch
        if send(predictions_path, records):
            sent += len(records)
            chosen = [
                {
                    "id": r["id"],
                    "label": r["prediction"] if rng.random() < 0.9 else "ab"[rng.random() < 0.5],
                }
                for r in records
                if rng.random() < plan.label_share
            ]
            if chosen:
                pending.append((now + plan.label_delay, chosen))
        while pending and pending[0][0] <= time.time():
            _, chosen = pending.popleft()
            if send(labels_path, chosen):
                labels += len(chosen)
        next_send = max(next_send + interval, time.monotonic() - 1.0)
        delay = next_send - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    connection.close()
    results.put({"index": plan.index, "sent": sent, "labels": labels, "errors": errors})


# -- sampling ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    elapsed: float  # seconds since the load started (negative: before)
    rss_mb: float
    anon_mb: float
    file_mb: float
    threads: int
    evaluations: int


def read_status(pid: int) -> dict[str, str]:
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _mb(value: str) -> float:
    return int(value.split()[0]) / 1024  # "123456 kB"


def evaluations_run(base: str) -> tuple[int, float]:
    """Evaluations run so far and the seconds they took in all."""
    with contextlib.suppress(OSError):
        _, body = http_get(f"{base}/metrics", timeout=10)
        text = body.decode()
        count, seconds = EVALUATIONS.search(text), EVALUATION_SECONDS.search(text)
        if count and seconds:
            return int(float(count.group(1))), float(seconds.group(1))
    return 0, 0.0


def sample(pid: int, base: str, elapsed: float) -> Sample:
    status = read_status(pid)
    return Sample(
        elapsed=elapsed,
        rss_mb=_mb(status["VmRSS"]),
        anon_mb=_mb(status.get("RssAnon", "0 kB")),
        file_mb=_mb(status.get("RssFile", "0 kB")),
        threads=int(status["Threads"]),
        evaluations=evaluations_run(base)[0],
    )


def slope_mb_per_minute(samples: Sequence[Sample]) -> float:
    if len(samples) < 2:
        return 0.0
    xs = [s.elapsed / 60 for s in samples]
    ys = [s.rss_mb for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0


# -- run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    backend: str
    start: Sample
    warm: Sample
    steady: list[Sample]
    sent: int
    labels: int
    stored: int
    evaluations: int
    evaluation_seconds: float
    errors: int
    seconds: float

    @property
    def steady_max(self) -> float:
        return max(s.rss_mb for s in self.steady)


def soak(backend: str, database_url: str, args: argparse.Namespace, directory: Path) -> Outcome:
    processes: Processes = args.processes
    config = write_config(directory, database_url, args.schedule)
    port = free_port()
    log = directory / f"monitor-{backend}.log"
    if args.probe:
        command = [sys.executable, str(PROBE), "--out", str(args.probe)]
        command += ["--every", str(args.sample_every)]
        command += ["--tracemalloc"] if args.tracemalloc else []
        command += ["--"]
    else:
        command = monitor_command()
    argv = [*command, "serve", "--config", str(config), "--port", str(port)]
    server = processes.start([*argv, "--log-level", "warning"], log, directory)
    base = f"http://{HOST}:{port}"
    wait_ready(f"{base}/readyz", server, log)
    start = sample(server.pid, base, 0.0)
    print(f"  ready: RSS {start.rss_mb:.0f} MB", flush=True)

    seconds = args.minutes * 60
    began = time.time()
    deadline = began + seconds
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    clients = [
        context.Process(
            target=run_client,
            args=(
                ClientPlan(
                    index=i,
                    port=port,
                    rate=args.rate / args.clients,
                    batch=args.batch,
                    label_share=args.label_share,
                    label_delay=args.label_delay,
                    deadline=deadline,
                ),
                results,
            ),
            daemon=True,
        )
        for i in range(args.clients)
    ]
    for client in clients:
        client.start()
    samples: list[Sample] = []
    try:
        while time.time() < deadline:
            time.sleep(min(args.sample_every, max(0.0, deadline - time.time())))
            if server.poll() is not None:
                raise RuntimeError(f"server exited with {server.returncode}")
            now = sample(server.pid, base, time.time() - began)
            samples.append(now)
            print(
                f"  {now.elapsed:6.0f}s RSS {now.rss_mb:6.1f} MB (anon {now.anon_mb:6.1f}, "
                f"file {now.file_mb:5.1f}) threads {now.threads:3d} "
                f"evaluations {now.evaluations}",
                flush=True,
            )
        reports = [results.get(timeout=60) for _ in clients]
    finally:
        for client in clients:
            client.join(timeout=60)
            if client.is_alive():
                client.terminate()
    stored = stored_predictions(base, MODEL)
    evaluations, evaluation_seconds = evaluations_run(base)
    processes.stop(server)
    warm = next((s for s in samples if s.elapsed >= args.warmup), samples[-1])
    steady = [s for s in samples if s.elapsed >= seconds / 2] or samples[-1:]
    return Outcome(
        backend=backend,
        start=start,
        warm=warm,
        steady=steady,
        sent=sum(r["sent"] for r in reports),
        labels=sum(r["labels"] for r in reports),
        stored=stored,
        evaluations=evaluations,
        evaluation_seconds=evaluation_seconds,
        errors=sum(r["errors"] for r in reports),
        seconds=seconds,
    )


def table(outcomes: Sequence[Outcome]) -> str:
    header = (
        "| backend | RSS start | after warm-up | steady min | steady median | steady max "
        "| slope (steady) | records/s | labels/s | evaluations (mean s) | errors |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for o in outcomes:
        rss = [s.rss_mb for s in o.steady]
        lines.append(
            f"| {o.backend} | {o.start.rss_mb:.0f} MB | {o.warm.rss_mb:.0f} MB "
            f"({o.warm.elapsed:.0f} s) | {min(rss):.0f} MB | {statistics.median(rss):.0f} MB "
            f"| {max(rss):.0f} MB | {slope_mb_per_minute(o.steady):+.1f} MB/min "
            f"| {o.stored / o.seconds:,.0f} | {o.labels / o.seconds:,.0f} "
            f"| {o.evaluations} ({o.evaluation_seconds / max(1, o.evaluations):.2f} s) "
            f"| {o.errors} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--rate", type=float, default=2000.0, help="prediction records/s")
    parser.add_argument("--batch", type=int, default=100, help="records per request")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--label-share", type=float, default=0.5, help="share of labelled ids")
    parser.add_argument("--label-delay", type=float, default=5.0, help="seconds until a label")
    parser.add_argument("--schedule", default="10s", help="the model's evaluation schedule")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds of load reported as 'after warm-up'"
    )
    parser.add_argument(
        "--database", help="database URL (default: SQLite in a temporary directory)"
    )
    parser.add_argument("--probe", type=Path, help="write glibc malloc figures here")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="with --probe: trace Python allocations too"
    )
    docs_region.add_option(parser)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.batch < 1 or args.clients < 1:
        parser.error("--minutes, --rate, --batch and --clients must be positive")
    if not 0 <= args.label_share <= 1:
        parser.error("--label-share must be within [0, 1]")
    return args


def run(args: argparse.Namespace, directory: Path) -> Outcome:
    url: str = args.database or f"sqlite:///{directory / 'soak.db'}"
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(
        f"{backend}: {args.rate:,.0f} records/s in batches of {args.batch} from {args.clients} "
        f"clients, labels for {args.label_share:.0%}, evaluations every {args.schedule}, "
        f"{args.minutes:g} min",
        flush=True,
    )
    if backend == "sqlite":
        return soak(backend, url, args, directory)
    reason = postgres_unreachable(url)
    if reason is not None:
        raise RuntimeError(f"PostgreSQL is not reachable ({reason})")
    with fresh_postgres(url) as fresh:
        return soak(backend, fresh, args, directory)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    args.processes = processes = Processes()
    if args.probe:
        args.probe.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="drift-soak-") as tmp:
            try:
                outcome = run(args, Path(tmp))
            finally:
                processes.stop_all()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"soak failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(table([outcome]))
    docs_region.write(args.write_docs, "soak", table([outcome]))
    print()
    print(
        f"sent {outcome.sent:,} predictions and {outcome.labels:,} labels in "
        f"{outcome.seconds:.0f} s; stored {outcome.stored:,}"
    )
    missed = outcome.backend == "sqlite" and outcome.steady_max >= TARGET_STEADY_MB
    print(
        f"Target (SQLite): steady max RSS < {TARGET_STEADY_MB} MB: "
        f"{outcome.steady_max:.0f} MB {'MISS' if missed else 'PASS'}"
        if outcome.backend == "sqlite"
        else f"steady max RSS {outcome.steady_max:.0f} MB"
    )
    lost = outcome.stored < outcome.sent
    if lost:
        print(f"stored {outcome.stored:,} < sent {outcome.sent:,}", file=sys.stderr)
    return 1 if outcome.errors or missed or lost else 0


if __name__ == "__main__":
    sys.exit(main())
