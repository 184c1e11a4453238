"""Ingest throughput of ``monitor serve``, against a bare orjson endpoint as the floor.

What is measured: ``POST /v1/models/bench/predictions`` with JSON batches of 1, 100 and 1000
prediction records (20 numeric and 5 categorical features, a class and its scores), sent by
``wrk`` from a separate process, for each storage backend (SQLite, then PostgreSQL when
reachable). Every record id is unique (see ``bench/ingest.lua``), so every record is a real
insert; after each run the stored count (``GET /v1/models/bench``) must have grown by at least
the records of the completed requests and the duplicate counter (``/metrics``) must not move.

The floor is ``bench/floor.py``: uvicorn with the same settings serving an app that only parses
the body with orjson and answers 202, loaded with the same script and bodies. The table gives
requests/s, records/s, p50/p99 latency (wrk's latency distribution) and errors (non-2xx answers
plus socket errors; any makes the exit status 1) for both, and ours/floor ratios.

The service runs with a fresh database per backend, drift evaluation every 1h (so the
1-minute default job does not land inside a measurement) and records stamped with the current
time (so the 7d retention keeps them). Run with the project's virtualenv:

    .venv/bin/python bench/ingest.py                      # ~10 s per case
    .venv/bin/python bench/ingest.py --duration 5 --backends sqlite --batches 1,1000

Targets (SQLite): >= 100,000 records/s at batch 1000 and >= 3,000 requests/s at batch 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import docs_region
from postgres import fresh_postgres, postgres_unreachable

HERE = Path(__file__).resolve().parent
LUA_SCRIPT = HERE / "ingest.lua"
FLOOR_APP = HERE / "floor.py"
HOST = "127.0.0.1"
MODEL = "bench"
INGEST_PATH = f"/v1/models/{MODEL}/predictions"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/drift_monitor_bench"
TARGET_RECORDS_PER_S = 100_000  # SQLite, batch 1000
TARGET_REQUESTS_PER_S = 3_000  # SQLite, batch 1
DUPLICATES = re.compile(r'^drift_monitor_records_duplicate_total\{model="bench"\} (\S+)$', re.M)


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkRun:
    """What ``done()`` in bench/ingest.lua reports for one wrk run."""

    duration_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


@dataclass(frozen=True)
class Result:
    backend: str
    batch: int
    server: str  # "ours" or "floor"
    run: WrkRun
    stored: int | None = None  # records the service stored during the run (ours only)

    @property
    def requests_per_s(self) -> float:
        return self.run.requests / self.run.duration_s

    @property
    def records_per_s(self) -> float:
        return self.requests_per_s * self.batch

    @property
    def errors(self) -> int:
        return self.run.non_2xx + self.run.socket_errors


# -- processes -----------------------------------------------------------------------------


class Processes:
    """The servers this run started; all are stopped on exit, Ctrl-C included."""

    def __init__(self) -> None:
        self._running: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen(
                list(argv), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self._running:
            self._running.remove(process)

    def stop_all(self) -> None:
        for process in list(reversed(self._running)):
            self.stop(process)


def _raise_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError):
            if http_get(url, timeout=2)[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- servers -------------------------------------------------------------------------------


def write_config(directory: Path, database_url: str) -> Path:
    features = [f"        - {{name: n{i}, type: numeric}}" for i in range(20)]
    features += [f"        - {{name: c{i}, type: categorical}}" for i in range(5)]
    text = "\n".join(
        [
            f"server: {{host: {HOST}, port: 8000, max_body_bytes: 104857600}}",
            f'storage: {{url: "{database_url}", retention: 7d}}',
            "models:",
            f"  - name: {MODEL}",
            "    task: classification",
            "    classes: [a, b]",
            "    schedule: 1h",
            "    features:",
            *features,
            "",
        ]
    )
    path = directory / "monitor.yaml"
    path.write_text(text)
    return path


def monitor_command() -> list[str]:
    executable = Path(sys.executable).parent / "monitor"
    if executable.exists():
        return [str(executable)]
    found = shutil.which("monitor")
    return [found] if found else [sys.executable, "-m", "monitor"]


def start_ours(
    processes: Processes, directory: Path, database_url: str
) -> tuple[subprocess.Popen[bytes], str]:
    config = write_config(directory, database_url)
    port = free_port()
    log = directory / "monitor.log"
    argv = [*monitor_command(), "serve", "--config", str(config), "--port", str(port)]
    process = processes.start([*argv, "--log-level", "warning"], log, directory)
    base = f"http://{HOST}:{port}"
    wait_ready(f"{base}/readyz", process, log)
    return process, base


def start_floor(processes: Processes, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = directory / "floor.log"
    argv = [sys.executable, str(FLOOR_APP), "--host", HOST, "--port", str(port)]
    process = processes.start(argv, log, directory)
    base = f"http://{HOST}:{port}"
    wait_ready(f"{base}/readyz", process, log)
    return process, base


# -- PostgreSQL ----------------------------------------------------------------------------


# -- load ----------------------------------------------------------------------------------


def run_wrk(base: str, batch: int, duration: float, args: argparse.Namespace) -> WrkRun:
    """One wrk run against ``base``'s ingest path; ids carry a fresh tag, so none repeat."""
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tag = uuid.uuid4().hex[:10]
    argv = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA_SCRIPT),
        base + INGEST_PATH,
        "--",
        str(batch),
        tag,
        timestamp,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120, check=False)
    match = re.search(r"^BENCH_RESULT (\{.*\})$", done.stdout, re.M)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data: dict[str, Any] = json.loads(match.group(1))
    return WrkRun(
        duration_s=data["duration_us"] / 1e6,
        requests=data["requests"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        non_2xx=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
    )


def stored_predictions(base: str, model: str = MODEL) -> int:
    status, body = http_get(f"{base}/v1/models/{model}", timeout=60)
    if status != 200:
        raise RuntimeError(f"GET /v1/models/{model} answered {status}: {body[:300]!r}")
    count: int = json.loads(body)["counts"]["predictions"]
    return count


def settled_count(base: str, timeout: float = 30) -> int:
    """The stored count once requests still in flight when wrk stopped have landed."""
    previous = stored_predictions(base)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        current = stored_predictions(base)
        if current == previous:
            return current
        previous = current
    return previous


def duplicates_counted(base: str) -> float:
    _, body = http_get(f"{base}/metrics")
    match = DUPLICATES.search(body.decode())
    return float(match.group(1)) if match else 0.0


def measure_ours(backend: str, base: str, batch: int, args: argparse.Namespace) -> Result:
    if args.warmup > 0:
        run_wrk(base, batch, args.warmup, args)
    before, duplicates_before = settled_count(base), duplicates_counted(base)
    run = run_wrk(base, batch, args.duration, args)
    stored = settled_count(base) - before
    duplicates = duplicates_counted(base) - duplicates_before
    if stored <= 0 or stored < run.requests * batch or duplicates:
        raise RuntimeError(
            f"{backend} batch {batch}: {run.requests} requests completed, {stored} records "
            f"stored (expected >= {run.requests * batch}), {duplicates:.0f} duplicates"
        )
    return Result(backend, batch, "ours", run, stored)


def measure_floor(backend: str, base: str, batch: int, args: argparse.Namespace) -> Result:
    if args.warmup > 0:
        run_wrk(base, batch, args.warmup, args)
    return Result(backend, batch, "floor", run_wrk(base, batch, args.duration, args))


def bench_backend(
    backend: str, database_url: str, floor: str, args: argparse.Namespace, directory: Path
) -> list[Result]:
    processes: Processes = args.processes
    process, base = start_ours(processes, directory, database_url)
    results: list[Result] = []
    try:
        for batch in args.batches:
            for result in (
                measure_ours(backend, base, batch, args),
                measure_floor(backend, floor, batch, args),
            ):
                results.append(result)
                print(f"  {describe(result)}", flush=True)
    finally:
        processes.stop(process)
    return results


# -- report --------------------------------------------------------------------------------


def describe(result: Result) -> str:
    return (
        f"{result.backend:<10} batch {result.batch:>5} {result.server:<5} "
        f"{result.requests_per_s:>9,.0f} req/s {result.records_per_s:>11,.0f} records/s "
        f"p50 {result.run.p50_ms:.2f} ms p99 {result.run.p99_ms:.2f} ms errors {result.errors}"
    )


def ratio(ours: float, floor: float) -> str:
    return f"{ours / floor:.2f}x" if floor else "-"


def table(results: list[Result]) -> str:
    header = (
        "| backend | batch | server | req/s | records/s | p50 ms | p99 ms | errors "
        "| records/s ours/floor | p50 ours/floor |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    floors = {(r.backend, r.batch): r for r in results if r.server == "floor"}
    for r in results:
        floor = floors.get((r.backend, r.batch))
        if r.server == "ours" and floor is not None:
            speed = ratio(r.records_per_s, floor.records_per_s)
            latency = ratio(r.run.p50_ms, floor.run.p50_ms)
        else:
            speed = latency = "-"
        lines.append(
            f"| {r.backend} | {r.batch} | {r.server} | {r.requests_per_s:,.0f} "
            f"| {r.records_per_s:,.0f} | {r.run.p50_ms:.2f} | {r.run.p99_ms:.2f} "
            f"| {r.errors} | {speed} | {latency} |"
        )
    return "\n".join(lines)


def targets(results: list[Result]) -> list[str]:
    ours = {r.batch: r for r in results if r.backend == "sqlite" and r.server == "ours"}
    checks: list[tuple[int, str, int, Callable[[Result], float]]] = [
        (1000, "records/s", TARGET_RECORDS_PER_S, lambda r: r.records_per_s),
        (1, "requests/s", TARGET_REQUESTS_PER_S, lambda r: r.requests_per_s),
    ]
    lines = []
    for batch, unit, goal, value in checks:
        wanted = f"SQLite batch {batch}: >= {goal:,} {unit}"
        if batch not in ours:
            lines.append(f"- {wanted}: not measured")
            continue
        got = value(ours[batch])
        lines.append(f"- {wanted}: {got:,.0f} {'PASS' if got >= goal else 'MISS'}")
    return lines


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case (whole)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before a case; 0: none")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, choices=[1, 2], help="wrk threads")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--batches", default="1,100,1000", help="records per request")
    parser.add_argument(
        "--postgres-url", default=DEFAULT_POSTGRES_URL, help="database; recreated, then dropped"
    )
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="wrk executable")
    docs_region.add_option(parser)
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if args.duration < 1 or args.warmup < 0:
        parser.error("--duration must be at least 1 and --warmup at least 0")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return args


def run(args: argparse.Namespace, directory: Path) -> list[Result]:
    _, floor = start_floor(args.processes, directory)
    results: list[Result] = []
    for backend in args.backends:
        print(f"{backend}:", flush=True)
        if backend == "sqlite":
            url = f"sqlite:///{directory / 'bench.db'}"
            results += bench_backend(backend, url, floor, args, directory)
            continue
        reason = postgres_unreachable(args.postgres_url)
        if reason is not None:
            print(f"  skipped: PostgreSQL is not reachable ({reason})", flush=True)
            continue
        with fresh_postgres(args.postgres_url) as url:
            results += bench_backend(backend, url, floor, args, directory)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which(args.wrk) is None:
        print(f"wrk not found ({args.wrk}); install it or pass --wrk", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    args.processes = processes = Processes()
    print(
        f"wrk -t{args.threads} -c{args.connections}, {args.duration:g}s per case "
        f"(+{args.warmup:g}s warm-up), batches {args.batches}",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
            try:
                results = run(args, Path(tmp))
            finally:
                processes.stop_all()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(table(results))
    print()
    print("Targets:")
    print("\n".join(targets(results)))
    docs_region.write(args.write_docs, "ingest", table(results))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
