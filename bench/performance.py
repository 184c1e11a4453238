"""Time to compute a window's performance metrics, database join included, against a floor.

What is measured: for windows of 100k and 1M labelled predictions (every prediction of the
window has a label), the work a performance evaluation does in ``DriftEvaluator.evaluate``:

* ours: what ``DriftEvaluator.evaluate`` does for the window's performance:
  ``LabelledWindows.window`` (bring the per-bucket summaries of labelled predictions up to date,
  merge the window's buckets and the pairs not summarised yet; "read") and then
  ``evaluate_performance`` on those columns, with no calibration, so no label-free estimate
  ("metrics": accuracy with its Wilson interval, per-class and macro precision, recall and F1,
  the confusion matrix and ROC AUC, average precision and log loss; regression: MAE, RMSE,
  MAPE, R2). Its clock is past the summary lag, as for a service whose scheduler kept the
  buckets current; "first build" is the evaluation that builds them from the rows (a model's
  first), and "tick" the next one a minute of new labelled predictions (n / 60) later;
* the floor: the same join and filter written plainly, ``predictions p JOIN labels l`` on
  model and id ``WHERE p.model = ? AND p.ts > ? AND p.ts <= ?`` (the database orders the join),
  run on a raw DB-API cursor of the service's pool (``sqlite3`` or ``psycopg``, so with the
  same connection settings): ``execute(...).fetchall()`` of ``p.ts, l.ts``, the prediction,
  the label and ``p.scores``, transposed with ``zip`` ("read"),
  then NumPy on the fetched rows ("metrics"): classes to integer codes by a dict lookup,
  accuracy and the confusion matrix from one ``bincount``, the positive-class score from the
  score objects (one ``codec.decode`` of all rows) and ROC AUC from average ranks
  (Mann-Whitney, ``searchsorted`` on the sorted scores); regression: MAE, RMSE, R2.

Both run in this process on the same database, one after the other, each the best of
``--repeat`` runs (the read/metrics split is that run's); the ratio is ours/floor on the total.
Before the table, ours and the floor must agree on the confusion matrix, accuracy and ROC AUC
(or MAE and RMSE).

The database is built through the real code: a ``monitor.service.Service`` with a fresh
database per backend (a temporary SQLite file, then PostgreSQL when reachable, in a database
of its own that is created and dropped), ``start(run_jobs=False)`` (migrations only). It holds
one classification model (classes ``[no, yes]``, scores for both) and one regression model per
size, each with one numeric feature, a 1h window and exactly ``n`` predictions: prediction
times spread over the hour before ``NOW`` (the service's clock), each labelled 1 s to 10 min
later; prediction times rise with the id (arrival order). Records are synthetic and seeded,
built as ``PredictionBatch`` and ``LabelBatch`` and written in chunks of 50k (no API, no
validation) with ``repository.insert_predictions`` and ``repository.upsert_labels`` (on
PostgreSQL the labels go in with one ``unnest`` insert instead: see
``insert_labels_postgresql``). PostgreSQL gets a ``VACUUM ANALYZE`` after the fill, as
autovacuum would give it; SQLite gets nothing (the service never runs ``ANALYZE``).

Run with the project's virtualenv:

    .venv/bin/python bench/performance.py           # about 5 minutes on 2 cores, half of it
                                                    # filling the databases
    .venv/bin/python bench/performance.py --sizes 100000 --backends sqlite --repeat 1
    .venv/bin/python bench/performance.py --profile # also cProfile ours at the largest size

Target: ours under 1 s at 1M labelled predictions on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import gc
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docs_region
import numpy as np
import numpy.typing as npt
from postgres import fresh_postgres, postgres_unreachable
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection

from monitor import codec
from monitor.config import ModelConfig, parse_config
from monitor.domain import LabelBatch, Performance, PredictionBatch
from monitor.evaluation.performance import evaluate_performance
from monitor.jobs.labelled_windows import LabelledWindows
from monitor.jobs.summaries import SUMMARY_LAG_SECONDS
from monitor.service import Service
from monitor.storage import create_database_engine
from monitor.storage import repository as repo

NOW = 1_750_000_000.0  # the service's clock; every prediction is within the hour before
WINDOW_S = 3600.0
FIRST_TS, LAST_TS = NOW - WINDOW_S + 1.0, NOW - 600.0  # prediction times; labels up to NOW
CHUNK = 50_000
CLASSES = ("no", "yes")
TASKS = ("classification", "regression")
TARGET_S = 1.0
TARGET_N = 1_000_000
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/drift_monitor_bench_perf"
FloatArray = npt.NDArray[np.float64]


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    read_s: float
    metrics_s: float

    @property
    def total_s(self) -> float:
        return self.read_s + self.metrics_s


@dataclass(frozen=True)
class Result:
    backend: str
    task: str
    n: int
    ours: Timing
    floor: Timing
    build_s: float  # ours: the first evaluation, which builds the buckets from the raw rows
    tick_s: float  # ours: the next schedule tick, a minute of new records later


@dataclass(frozen=True)
class Summary:
    """What both sides must agree on: the confusion matrix and accuracy and ROC AUC, or MAE
    and RMSE."""

    n: int
    confusion: tuple[tuple[int, ...], ...] | None
    values: dict[str, float]


def best(timings: list[Timing]) -> Timing:
    return min(timings, key=lambda t: t.total_s)


# -- data ----------------------------------------------------------------------------------


def model_name(task: str, n: int) -> str:
    return f"{task[:3]}_{n}"


def config_text(sizes: Sequence[int]) -> str:
    lines = ["models:"]
    for n in sizes:
        for task in TASKS:
            lines += [
                f"  - name: {model_name(task, n)}",
                f"    task: {task}",
                *(["    classes: [no, yes]"] if task == "classification" else []),
                "    features: [{name: x, type: numeric}]",
                "    window: {duration: 1h}",
                "    min_samples: 100",
                "    drift: {exact_max_samples: 10000000}",
            ]
    return "\n".join(lines) + "\n"


def batches(task: str, n: int, seed: int) -> Iterator[tuple[PredictionBatch, LabelBatch]]:
    """``n`` labelled predictions in chunks of ``CHUNK``, seeded; times in the hour before NOW."""
    rng = np.random.default_rng(seed)
    for first in range(0, n, CHUNK):
        size = min(CHUNK, n - first)
        ids = [f"r{i:08d}" for i in range(first, first + size)]
        # Arrival order: prediction times rise with the id (as records are sent), jittered
        # within their slot; labels follow 1 s to 10 min later.
        slots = np.arange(first, first + size) + rng.random(size)
        ts = FIRST_TS + slots * ((LAST_TS - FIRST_TS) / n)
        label_ts = ts + rng.uniform(1.0, 600.0, size)
        x = rng.normal(size=size)
        features = [codec.encode({"x": v}) for v in x.tolist()]
        if task == "classification":
            p_yes = rng.random(size)
            truth = rng.random(size) < p_yes
            classes: list[str | None] = np.where(p_yes > 0.5, "yes", "no").tolist()
            label_classes: list[str | None] = np.where(truth, "yes", "no").tolist()
            scores: list[bytes | None] = [
                codec.encode({"no": 1.0 - p, "yes": p}) for p in np.round(p_yes, 6).tolist()
            ]
            values: list[float | None] = [None] * size
            label_values: list[float | None] = [None] * size
        else:
            target = 3.0 * x + rng.normal(size=size) + 10.0
            values = (target + rng.normal(scale=0.5, size=size)).tolist()
            label_values = target.tolist()
            classes = label_classes = [None] * size
            scores = [None] * size
        yield (
            PredictionBatch(ids, ts.tolist(), features, classes, values, scores),
            LabelBatch(ids, label_ts.tolist(), label_classes, label_values),
        )


def insert_labels_postgresql(
    connection: Connection, *, model: str, batch: LabelBatch, received_at: float = NOW
) -> int:
    """The rows ``repository.upsert_labels`` writes for new ids, in one ``unnest`` insert.

    ``upsert_labels`` first looks up stored labels and prediction times in IN lists of 500 ids:
    on PostgreSQL that is about 70 us per label (2.5 minutes for the default run), and without
    fresh planner statistics it scans the model's rows per list (minutes per 50k chunk).
    """
    result = connection.exec_driver_sql(
        "INSERT INTO labels (model, id, ts, received_at, label_class, label_value)"
        " SELECT %(model)s, * FROM unnest(%(ids)s::text[], %(ts)s::float8[],"
        " %(received)s::float8[], %(classes)s::text[], %(values)s::float8[])",
        {
            "model": model,
            "ids": batch.ids,
            "ts": batch.timestamps,
            "received": [received_at] * len(batch),
            "classes": batch.label_classes,
            "values": batch.label_values,
        },
    )
    return int(result.rowcount)


def store_chunk(
    connection: Connection,
    name: str,
    predictions: PredictionBatch,
    labels: LabelBatch,
    received_at: float = NOW,
) -> None:
    stored = repo.insert_predictions(
        connection, model=name, batch=predictions, received_at=received_at
    )
    if connection.dialect.name == "postgresql":
        labelled = insert_labels_postgresql(
            connection, model=name, batch=labels, received_at=received_at
        )
    else:
        labelled = repo.upsert_labels(
            connection, model=name, batch=labels, received_at=received_at
        ).accepted
    if stored.accepted != len(predictions) or labelled != len(labels):
        raise RuntimeError(f"{name}: a chunk was not stored in full")


def fill(service: Service, sizes: Sequence[int]) -> None:
    for n in sizes:
        for seed, task in enumerate(TASKS):
            started = time.perf_counter()
            name = model_name(task, n)
            for prediction_batch, label_batch in batches(task, n, seed):
                with service.engine.begin() as connection:
                    store_chunk(connection, name, prediction_batch, label_batch)
            elapsed = time.perf_counter() - started
            print(f"  filled {name}: {n:,} labelled predictions in {elapsed:.1f} s", flush=True)


# -- ours ----------------------------------------------------------------------------------


def labelled_windows(service: Service, now: float) -> LabelledWindows:
    """The service's window reader on a clock past the summary lag: the scheduler kept the
    buckets current up to the records received at ``now``."""
    return LabelledWindows(
        database=service.database,
        clock=lambda: now + SUMMARY_LAG_SECONDS + 1.0,
    )


def build_ours(service: Service, model: ModelConfig) -> float:
    """The first evaluation's extra work: building the buckets of the window from the rows."""
    started = time.perf_counter()
    labelled_windows(service, NOW).summarize(model, window_start=NOW - WINDOW_S, window_end=NOW)
    return time.perf_counter() - started


def run_ours(service: Service, model: ModelConfig, now: float = NOW) -> tuple[Timing, Performance]:
    """The window's labelled predictions (``LabelledWindows.window``: bring the buckets up to
    date, merge them) then ``evaluate_performance``, as ``DriftEvaluator.evaluate``."""
    windows = labelled_windows(service, now)
    started = time.perf_counter()
    pairs = windows.window(model, start=now - WINDOW_S, end=now)
    read = time.perf_counter()
    performance = evaluate_performance(
        model, pairs=pairs, calibration=None, window_predictions=None, window_scores=None
    )
    done = time.perf_counter()
    return Timing(read - started, done - read), performance


def tick_ours(service: Service, model: ModelConfig, task: str, n: int, seed: int) -> float:
    """A minute of new labelled predictions (a sixtieth of the window) arrives; the next
    evaluation's read and metrics, adding them to the buckets included."""
    tick = 60.0
    count = max(1, n // 60)
    rng = np.random.default_rng(seed + 100)
    for prediction_batch, label_batch in batches(task, count, seed + 100):
        ts = np.sort(NOW + tick * rng.random(len(prediction_batch))).tolist()
        predictions = dataclasses.replace(
            prediction_batch, ids=[f"t{i}" for i in prediction_batch.ids], timestamps=ts
        )
        labels = LabelBatch(
            predictions.ids,
            [t + 1.0 for t in ts],
            label_batch.label_classes,
            label_batch.label_values,
        )
        with service.engine.begin() as connection:
            store_chunk(connection, model.name, predictions, labels, received_at=NOW + tick)
    timing, _ = run_ours(service, model, NOW + tick)
    return timing.total_s


def summarise_ours(performance: Performance) -> Summary:
    classification = performance.confusion_matrix is not None
    keys = ("accuracy", "roc_auc") if classification else ("mae", "rmse")
    values = {k: float(performance.metrics[k] or 0.0) for k in keys}
    return Summary(performance.n, performance.confusion_matrix, values)


# -- the floor -----------------------------------------------------------------------------


def floor_sql(regression: bool, placeholder: str) -> str:
    prediction, label = (
        ("prediction_value", "label_value") if regression else ("prediction_class", "label_class")
    )
    return (
        f"SELECT p.ts, l.ts, p.{prediction}, l.{label}, p.scores"
        " FROM predictions p JOIN labels l ON l.model = p.model AND l.id = p.id"
        f" WHERE p.model = {placeholder} AND p.ts > {placeholder} AND p.ts <= {placeholder}"
    )


def roc_auc_by_ranks(scores: FloatArray, positive: npt.NDArray[np.bool_]) -> float:
    """Mann-Whitney U from average ranks (ties share the mean of their ranks)."""
    ordered = np.sort(scores)
    low = np.searchsorted(ordered, scores, side="left")
    high = np.searchsorted(ordered, scores, side="right")
    ranks = (low + high + 1) / 2.0
    n_positive = int(positive.sum())
    n_negative = positive.size - n_positive
    u = float(ranks[positive].sum()) - n_positive * (n_positive + 1) / 2.0
    return u / (n_positive * n_negative)


def floor_metrics(columns: list[tuple[Any, ...]], regression: bool) -> Summary:
    _, _, predicted, actual, scores = columns
    n = len(predicted)
    if regression:
        y_pred = np.fromiter(predicted, dtype=np.float64, count=n)
        y_true = np.fromiter(actual, dtype=np.float64, count=n)
        errors = y_pred - y_true
        mae = float(np.abs(errors).mean())
        mse = float(np.dot(errors, errors) / n)
        r2 = 1.0 - mse / float(y_true.var())
        return Summary(n, None, {"mae": mae, "rmse": mse**0.5, "r2": r2})
    code = {label: i for i, label in enumerate(CLASSES)}
    pred_codes = np.fromiter(map(code.__getitem__, predicted), dtype=np.intp, count=n)
    true_codes = np.fromiter(map(code.__getitem__, actual), dtype=np.intp, count=n)
    k = len(CLASSES)
    confusion = np.bincount(true_codes * k + pred_codes, minlength=k * k).reshape(k, k)
    accuracy = float(np.trace(confusion)) / n
    decoded = codec.decode(codec.concat(scores))
    positive_scores = np.fromiter((row["yes"] for row in decoded), dtype=np.float64, count=n)
    roc_auc = roc_auc_by_ranks(positive_scores, true_codes == 1)
    matrix = tuple(tuple(row) for row in confusion.tolist())
    return Summary(n, matrix, {"accuracy": accuracy, "roc_auc": roc_auc})


def run_floor(
    fetch: Callable[[str, bool], list[Any]], model: ModelConfig
) -> tuple[Timing, Summary]:
    regression = model.task == "regression"
    started = time.perf_counter()
    rows = fetch(model.name, regression)
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
    read = time.perf_counter()
    summary = floor_metrics(columns, regression)
    done = time.perf_counter()
    return Timing(read - started, done - read), summary


@contextlib.contextmanager
def floor_fetcher(service: Service) -> Iterator[Callable[[str, bool], list[Any]]]:
    """The join on a raw DB-API cursor (``sqlite3`` or ``psycopg``): a driver connection of
    the service's own pool, so it has the same settings (SQLite's page cache, for one)."""
    raw = service.engine.raw_connection()
    connection: Any = raw.driver_connection
    placeholder = "?" if service.engine.dialect.name == "sqlite" else "%s"

    def fetch(model: str, regression: bool) -> list[Any]:
        cursor = connection.cursor()
        try:
            cursor.execute(floor_sql(regression, placeholder), (model, NOW - WINDOW_S, NOW))
            rows: list[Any] = cursor.fetchall()
        finally:
            cursor.close()
        connection.rollback()  # end the read transaction, as ours does
        return rows

    try:
        yield fetch
    finally:
        raw.close()


# -- checks --------------------------------------------------------------------------------


def check_agreement(name: str, ours: Summary, floor: Summary, n: int) -> None:
    problems = []
    if ours.n != n or floor.n != n:
        problems.append(f"rows: ours {ours.n:,}, floor {floor.n:,}, expected {n:,}")
    if ours.confusion != floor.confusion:
        problems.append(f"confusion matrix: ours {ours.confusion}, floor {floor.confusion}")
    for key, value in ours.values.items():
        if not np.isclose(value, floor.values[key], rtol=1e-9, atol=1e-12):
            problems.append(f"{key}: ours {value!r}, floor {floor.values[key]!r}")
    if problems:
        raise RuntimeError(f"{name}: ours and the floor disagree: " + "; ".join(problems))


# -- measurement ---------------------------------------------------------------------------


def measure(service: Service, backend: str, args: argparse.Namespace) -> list[Result]:
    results = []
    with floor_fetcher(service) as fetch:
        for n in args.sizes:
            for task in TASKS:
                model = service.config.model(model_name(task, n))
                assert model is not None
                gc.collect()
                build_s = build_ours(service, model)
                ours_runs, floor_runs = [], []
                for _ in range(args.repeat):  # alternating, so both see the same conditions
                    gc.collect()  # one window's rows alive at a time: none left from the last
                    timing, performance = run_ours(service, model)
                    ours_runs.append(timing)
                    gc.collect()
                    timing, floor_summary = run_floor(fetch, model)
                    floor_runs.append(timing)
                    check_agreement(model.name, summarise_ours(performance), floor_summary, n)
                gc.collect()
                tick_s = tick_ours(service, model, task, n, seed=TASKS.index(task))
                result = Result(
                    backend, task, n, best(ours_runs), best(floor_runs), build_s, tick_s
                )
                results.append(result)
                print(f"  {describe(result)}", flush=True)
    return results


def profile_ours(service: Service, backend: str, args: argparse.Namespace) -> None:
    """cProfile one ``ours`` run per task at the largest size; the top functions by own time."""
    n = max(args.sizes)
    for task in TASKS:
        model = service.config.model(model_name(task, n))
        assert model is not None
        gc.collect()
        profiler = cProfile.Profile()
        profiler.enable()
        run_ours(service, model)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(args.profile_lines)
        print(f"\ncProfile, ours, {backend} {task} {n:,} (sorted by own time):")
        print(_trim_profile(out.getvalue()))


def _trim_profile(text: str) -> str:
    lines = text.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line.replace(str(Path.cwd()) + "/", "") for line in lines[start:])


def bench_backend(url: str, backend: str, args: argparse.Namespace) -> list[Result]:
    service = Service(
        parse_config(config_text(args.sizes)),
        engine=create_database_engine(url),
        registry=CollectorRegistry(),
        clock=lambda: NOW,
    )
    service.start(run_jobs=False)
    try:
        fill(service, args.sizes)
        if backend == "postgresql":
            with service.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE"
                )
        results = measure(service, backend, args)
        if args.profile:
            profile_ours(service, backend, args)
    finally:
        service.stop()
    return results


# -- report --------------------------------------------------------------------------------


def describe(result: Result) -> str:
    return (
        f"{result.backend:<10} {result.task:<14} {result.n:>9,}  "
        f"ours {result.ours.total_s:.3f} s (read {result.ours.read_s:.3f}, "
        f"metrics {result.ours.metrics_s:.3f}; first build {result.build_s:.3f}, "
        f"tick {result.tick_s:.3f})  floor {result.floor.total_s:.3f} s "
        f"(read {result.floor.read_s:.3f}, metrics {result.floor.metrics_s:.3f})"
    )


def ratio(ours: float, floor: float) -> str:
    return f"{ours / floor:.2f}x" if floor else "-"


def table(results: list[Result]) -> str:
    header = (
        "| backend | task | n | ours read s | ours metrics s | ours total s "
        "| floor read s | floor metrics s | floor total s | total ours/floor "
        "| ours first build s | ours tick s (+1 min) |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        lines.append(
            f"| {r.backend} | {r.task} | {r.n:,} | {r.ours.read_s:.3f} | {r.ours.metrics_s:.3f} "
            f"| {r.ours.total_s:.3f} | {r.floor.read_s:.3f} | {r.floor.metrics_s:.3f} "
            f"| {r.floor.total_s:.3f} | {ratio(r.ours.total_s, r.floor.total_s)} "
            f"| {r.build_s:.3f} | {r.tick_s:.3f} |"
        )
    return "\n".join(lines)


def targets(results: list[Result]) -> list[str]:
    at_target = [r for r in results if r.n == TARGET_N]
    if not at_target:
        return [f"- {TARGET_N:,} labelled predictions: not measured (add it to --sizes)"]
    return [
        f"- {r.backend} {r.task} {r.n:,}: ours {r.ours.total_s:.3f} s (a tick later "
        f"{r.tick_s:.3f} s) < {TARGET_S:g} s "
        f"{'PASS' if max(r.ours.total_s, r.tick_s) < TARGET_S else 'MISS'}"
        for r in at_target
    ]


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,1000000", help="labelled predictions")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best counts")
    parser.add_argument(
        "--postgres-url", default=DEFAULT_POSTGRES_URL, help="database; recreated, then dropped"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile ours at the largest size, per backend"
    )
    parser.add_argument("--profile-lines", type=int, default=25, help="functions to list")
    docs_region.add_option(parser)
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not args.sizes or min(args.sizes) < 100:
        parser.error("--sizes needs at least one size of 100 (min_samples) or more")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def run(args: argparse.Namespace, directory: Path) -> list[Result]:
    results: list[Result] = []
    for backend in args.backends:
        print(f"{backend}:", flush=True)
        if backend == "sqlite":
            results += bench_backend(f"sqlite:///{directory / 'bench.db'}", backend, args)
            continue
        reason = postgres_unreachable(args.postgres_url)
        if reason is not None:
            print(f"  skipped: PostgreSQL is not reachable ({reason})", flush=True)
            continue
        with fresh_postgres(args.postgres_url) as url:
            results += bench_backend(url, backend, args)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"sizes {args.sizes}, best of {args.repeat}, backends {args.backends}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="drift-bench-perf-") as tmp:
            results = run(args, Path(tmp))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(table(results))
    print()
    print("Target:")
    print("\n".join(targets(results)))
    docs_region.write(args.write_docs, "performance", table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
