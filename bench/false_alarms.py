"""False alarms and detection delay: fixed levels, NannyML-style levels and ``auto`` levels,
side by side on the same seeded streams (issue 14).

The model: a classifier (``no``/``yes``) with 4 numeric features (normal, log-normal, gamma,
Student-t(5)) and 2 categorical ones (4 and 12 Zipf-distributed categories), a reference of
10,000 records, ``window: 1h`` holding 360 records (one every 10 s), ``schedule: 10m``,
``alerts.for: 1``. The prediction is ``yes`` when a score of the features is positive; the
label is the prediction flipped with chance 0.08 (accuracy 0.92 whatever the drift). Each seed
draws its own reference and its own stream (``numpy.random.default_rng((seed, part))``).

Every evaluation is the service's own, in this process without a database:
``evaluate_drift`` (the exact path, as a 360-record window takes) and ``evaluate_performance``
on the window's columns, with the reference profiles from ``build_profiles``; so the
statistics, the ``auto`` levels (``monitor.evaluation.levels``, resolved for the window's n at
every evaluation) and the statuses are the service's. Each scheme's thresholds then meet that
same evaluation through ``alerts.observe`` and ``alerts.lifecycle.step`` (the alerting job's
two functions). A cross-check first drives one seed's first day through a real ``Service``
(SQLite, injected clock, the records ingested as they arrive) and requires its alert events to
be the simulation's, one for one.

The three schemes, every rule on every column the service applies it to (the 6 features, the
prediction and the label: ``__prediction__``, ``__label__``):

* fixed: the levels the example config used to ship, ``psi: {warning: 0.1, critical:
  0.25}``, ``ks_pvalue: {critical: 0.01}``, ``accuracy: {warning: 0.9, critical: 0.8}``;
* NannyML-style: the reference cut into chunks of the window's size (27 of 360); each chunk's
  statistic against the whole reference (the chunk is part of it, as NannyML does it); the
  critical level is mean + 3 standard deviations for PSI and the KS statistic (the KS rule is
  on the statistic, as NannyML's), mean - 3 standard deviations for accuracy, per column;
* ``auto``: ``calibration: {false_alarms_per_week: 1}``, ``psi: {warning: auto, critical:
  auto}``, ``ks_pvalue: {critical: auto}``, ``accuracy: {critical: auto}``.

False alarms: a quiet week per seed (1,008 evaluations, each window full), counting alert
episodes that reach critical (an ``alert.firing`` at critical, or an ``alert.escalated``).
The rate is per week with a 95 % interval: the exact Poisson (Garwood) interval of the total,
widened by the dispersion of the per-week counts when they vary more than Poisson's (a
quasi-Poisson interval: the seeds' references differ, so do their rates).

Detection: a drift begins right after an evaluation whose window (360 records) is quiet; from
then on every record is shifted: one numeric feature (in turn) by 0.1, 0.25 or 0.5 of its
reference standard deviation, or one categorical feature's mass moved by 10 % (``(1 - 0.1) p
+ 0.1 reversed(p)``, as ``bench/drift.py`` does). Alerts start inactive at the onset. The delay
is the number of evaluations from the onset to the first critical firing of a rule on the
drifted feature (1: the first evaluation, its window 1/6 drifted; 6: the first fully drifted
window); a drift not caught within 36 evaluations (6 h) is missed. Medians count a missed
drift as later than any caught one.

    .venv/bin/python bench/false_alarms.py            # 30 weeks, 80 drifts per shift
    .venv/bin/python bench/false_alarms.py --quick    # 10 weeks, 24 drifts per shift

(--weeks, --drift-seeds and --workers override; two worker processes by default. The full run
took 10 minutes on 2 cores shared with a load of about 7, --quick 2.5 minutes.) Two things only
save time and change no result: ``levels.level`` and ``levels.alphas`` are memoised per
reference (every window here holds 360 records, so the service would resolve the same levels
at every evaluation), and BLAS runs one thread per process.

Targets: ``auto``'s interval upper end at most 2x the budget; ``auto`` no more false alarms
than the NannyML-style levels; ``auto``'s median delay at a 0.25 sd shift no worse than the
fixed levels'.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# one BLAS thread: the workers are the parallelism, and a 10k-long np.dot with a thread pool
# on a busy 2-core machine costs milliseconds of contention instead of microseconds
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import scipy.stats  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docs_region  # noqa: E402

from monitor.alerts.lifecycle import Alert, step  # noqa: E402
from monitor.alerts.observe import observe  # noqa: E402
from monitor.config import ModelConfig, parse_config  # noqa: E402
from monitor.domain import Evaluation, Window  # noqa: E402
from monitor.evaluation import (  # noqa: E402
    ReferenceProfiles,
    build_profiles,
    evaluate_drift,
    levels,
)
from monitor.evaluation.columns import Columns  # noqa: E402
from monitor.evaluation.labelled import Labelled  # noqa: E402
from monitor.evaluation.performance import evaluate_performance  # noqa: E402

FloatArray = npt.NDArray[np.float64]

SCHEDULE = 600.0
WINDOW = 3600.0
PER_SCHEDULE = 60  # records per 10 minutes: 360 in a window
WINDOW_N = 360
REFERENCE_N = 10_000
WEEK = 1008  # evaluations
HORIZON = 36  # evaluations a drift has to be caught in
BUDGET = 1.0
#: about the fixed levels' own rate of critical false alarms: ``auto`` at this budget, resolved
#: for the window's 360 records and written as numbers (what ``monitor calibrate`` prints),
#: compares the two at equal false alarms
MATCHED_BUDGET = 25.0
FOR = 1
LABEL_NOISE = 0.08
NUMERIC = ("x0", "x1", "x2", "x3")
CATEGORICAL = ("c0", "c1")
CATEGORY_COUNTS = (4, 12)
CLASSES = ("no", "yes")
SHIFTS = (("0.1 sd", 0.1), ("0.25 sd", 0.25), ("0.5 sd", 0.5), ("10 % mass", 0.1))
SCHEMES = ("fixed", "nannyml", "auto", "matched")
START = 1_800_000_000.0

MODEL = """
models:
  - name: m
    task: classification
    classes: [no, yes]
    features:
      - {{name: x0, type: numeric}}
      - {{name: x1, type: numeric}}
      - {{name: x2, type: numeric}}
      - {{name: x3, type: numeric}}
      - {{name: c0, type: categorical}}
      - {{name: c1, type: categorical}}
    window: {{duration: 1h}}
    schedule: 10m
    min_samples: 100
{extra}    thresholds:
{thresholds}
    alerts: {{for: {for_}}}
"""
FIXED = """      psi: {warning: 0.1, critical: 0.25}
      ks_pvalue: {critical: 0.01}
      accuracy: {warning: 0.9, critical: 0.8}"""
AUTO = """      psi: {warning: auto, critical: auto}
      ks_pvalue: {critical: auto}
      accuracy: {critical: auto}"""


def model(thresholds: str, *, calibration: bool = False, budget: float = BUDGET) -> ModelConfig:
    extra = f"    calibration: {{false_alarms_per_week: {budget}}}\n" if calibration else ""
    text = MODEL.format(extra=extra, thresholds=thresholds, for_=FOR)
    return parse_config(text).models[0]


# -- synthetic data ------------------------------------------------------------------------


NUMERIC_SD = (
    1.0,
    math.sqrt((math.exp(0.25) - 1.0) * math.exp(0.25)),
    math.sqrt(2.0),
    math.sqrt(5 / 3),
)


def category_probabilities(j: int, shift: float) -> FloatArray:
    base = 1.0 / np.arange(1, CATEGORY_COUNTS[j] + 1) ** 1.1
    base /= base.sum()
    result: FloatArray = (1.0 - shift) * base + shift * base[::-1]
    return result


@dataclasses.dataclass
class Stream:
    """Records column by column, categorical ones as lists of shared str objects."""

    numeric: dict[str, FloatArray]
    categorical: dict[str, list[str]]
    predicted: npt.NDArray[np.int16]
    actual: npt.NDArray[np.int16]

    @property
    def n(self) -> int:
        return int(self.predicted.size)

    def columns(self, lo: int, hi: int) -> Columns:
        categorical = {name: values[lo:hi] for name, values in self.categorical.items()}
        categorical["__prediction__"] = [CLASSES[c] for c in self.predicted[lo:hi]]
        categorical["__label__"] = [CLASSES[c] for c in self.actual[lo:hi]]
        numeric = {name: values[lo:hi] for name, values in self.numeric.items()}
        return Columns(hi - lo, numeric, categorical)

    def record(self, i: int) -> dict[str, Any]:
        features: dict[str, Any] = {name: float(v[i]) for name, v in self.numeric.items()}
        features.update({name: v[i] for name, v in self.categorical.items()})
        return {"features": features, "prediction": CLASSES[self.predicted[i]]}


def draw(
    rng: np.random.Generator, n: int, *, drifted: str | None = None, shift: float = 0.0
) -> Stream:
    """``n`` records; ``drifted`` (a feature) moved by ``shift`` (sd, or a share of mass)."""
    numeric = {
        "x0": rng.normal(0.0, 1.0, n),
        "x1": rng.lognormal(0.0, 0.5, n),
        "x2": rng.gamma(2.0, 1.0, n),
        "x3": rng.standard_t(5.0, n),
    }
    if drifted in numeric:
        numeric[drifted] = numeric[drifted] + shift * NUMERIC_SD[NUMERIC.index(drifted)]
    codes = {}
    categorical = {}
    for j, name in enumerate(CATEGORICAL):
        cumulative = np.cumsum(category_probabilities(j, shift if drifted == name else 0.0))
        found = np.searchsorted(cumulative, rng.random(n), side="right")
        codes[name] = np.minimum(found, CATEGORY_COUNTS[j] - 1)
        names = [f"{name}_v{r}" for r in range(CATEGORY_COUNTS[j])]
        categorical[name] = [names[c] for c in codes[name]]
    score = (
        numeric["x0"]
        + (numeric["x1"] - 1.13) / NUMERIC_SD[1]
        - (numeric["x2"] - 2.0) / NUMERIC_SD[2]
        + 0.5 * (codes["c0"] == 0)
        - 0.3 * (codes["c1"] >= 3)
    )
    predicted = (score > 0).astype(np.int16)
    flip = rng.random(n) < LABEL_NOISE
    actual = np.where(flip, 1 - predicted, predicted).astype(np.int16)
    return Stream(numeric, categorical, predicted, actual)


def concat(parts: list[Stream]) -> Stream:
    return Stream(
        {k: np.concatenate([p.numeric[k] for p in parts]) for k in NUMERIC},
        {k: [v for p in parts for v in p.categorical[k]] for k in CATEGORICAL},
        np.concatenate([p.predicted for p in parts]),
        np.concatenate([p.actual for p in parts]),
    )


# -- evaluation, as the service does it ----------------------------------------------------


def evaluate(
    config: ModelConfig, profiles: ReferenceProfiles, stream: Stream, hi: int, now: float
) -> Evaluation:
    """The service's evaluation of the window of the records ``hi - 360 .. hi - 1``."""
    lo = max(0, hi - WINDOW_N)
    columns = stream.columns(lo, hi)
    window = Window(now - WINDOW, now, hi - lo)
    evaluation = evaluate_drift(config, profiles, columns, window=window, evaluated_at=now)
    times = np.linspace(now - WINDOW, now, hi - lo, endpoint=False) + 10.0
    pairs = Labelled(times, times, stream.predicted[lo:hi], stream.actual[lo:hi], None)
    performance = evaluate_performance(
        config,
        pairs=pairs,
        calibration=None,
        window_predictions=None,
        window_scores=None,
        reference_accuracy=profiles.accuracy,
    )
    return dataclasses.replace(evaluation, performance=performance)


def reference_profiles(config: ModelConfig, reference: Stream) -> ReferenceProfiles:
    return build_profiles(config, reference.columns(0, reference.n), version=1)


def nannyml_thresholds(config: ModelConfig, profiles: ReferenceProfiles, reference: Stream) -> str:
    """Mean + 3 sd (accuracy: - 3 sd) of each statistic over the reference's chunks of the
    window's size, each against the whole reference (NannyML's ``StandardDeviationThreshold``
    with its default multiplier, ``np.std``)."""
    values: dict[tuple[str, str], list[float]] = {}
    for first in range(0, reference.n - WINDOW_N + 1, WINDOW_N):
        chunk = evaluate(config, profiles, reference, first + WINDOW_N, START)
        for feature in (*chunk.features, *chunk.outputs):
            for statistic in ("psi", "ks_statistic"):
                value = feature.statistics.get(statistic)
                if value is not None:
                    values.setdefault((statistic, feature.name), []).append(value)
        assert chunk.performance is not None
        values.setdefault(("accuracy", ""), []).append(chunk.performance.metrics["accuracy"])
    lines = []
    for statistic in ("psi", "ks_statistic"):
        overrides = ", ".join(
            f"{name}: {{critical: {float(np.mean(v) + 3 * np.std(v))!r}}}"
            for (s, name), v in values.items()
            if s == statistic
        )
        lines.append(f"      {statistic}: {{critical: 1.0, overrides: {{{overrides}}}}}")
    accuracy = values[("accuracy", "")]
    lines.append(
        f"      accuracy: {{critical: {float(np.mean(accuracy) - 3 * np.std(accuracy))!r}}}"
    )
    return "\n".join(lines)


class Alerts:
    """One scheme's alerts, moved by ``lifecycle.step`` as the alerting job moves them."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.active: dict[tuple[str, str], Alert] = {}
        #: every event: (time, type, rule, feature, severity)
        self.events: list[tuple[float, str, str, str, str]] = []
        self.breaches = 0  # critical observations

    def apply(self, evaluation: Evaluation, now: float) -> list[tuple[str, str]]:
        """The (rule, feature) of the alerts this evaluation brought to critical."""
        found = []
        for seen in observe(self.config, evaluation):
            key = (seen.rule, seen.feature)
            before = self.active.get(key)
            after, event = step(before, seen, for_=self.config.alerts.for_, now=now)
            if after is None:
                self.active.pop(key, None)
            else:
                self.active[key] = after
            self.breaches += seen.severity == "critical"
            if event is None:
                continue
            emitted = after if after is not None else before
            assert emitted is not None
            self.events.append((now, event, seen.rule, seen.feature, emitted.severity))
            if emitted.severity == "critical" and event in ("alert.firing", "alert.escalated"):
                found.append(key)
        return found


# -- the auto levels, memoised ---------------------------------------------------------------

_LEVEL = levels.level
_ALPHAS = levels.alphas
_level_cache: dict[Any, float | None] = {}
_alpha_cache: dict[int, dict[str, float]] = {}


def _cached_level(statistic: str, alpha: float, **kw: Any) -> float | None:
    """``levels.level`` memoised per reference: a window of n always gets the same level, so
    resolving it again at every evaluation (as the service does) only costs time here."""
    key = (statistic, alpha, kw.get("n"), id(kw.get("profile")), kw.get("accuracy"))
    if key not in _level_cache:
        _level_cache[key] = _LEVEL(statistic, alpha, **kw)
    return _level_cache[key]


def _cached_alphas(config: ModelConfig) -> dict[str, float]:
    if id(config) not in _alpha_cache:
        _alpha_cache[id(config)] = _ALPHAS(config)
    return _alpha_cache[id(config)]


def memoise_levels() -> None:
    levels.level = _cached_level  # type: ignore[assignment]
    levels.alphas = _cached_alphas


# -- one seed ------------------------------------------------------------------------------


@dataclasses.dataclass
class Seed:
    configs: dict[str, ModelConfig]
    profiles: ReferenceProfiles
    reference: Stream


def setup(seed: int) -> Seed:
    """The seed's reference, its profiles and the three schemes' configs."""
    _level_cache.clear()
    _alpha_cache.clear()
    auto = model(AUTO, calibration=True)
    reference = draw(np.random.default_rng((seed, 0)), REFERENCE_N)
    profiles = reference_profiles(auto, reference)
    nannyml = model(nannyml_thresholds(auto, profiles, reference))
    matched = model(matched_thresholds(profiles))
    configs = {"fixed": model(FIXED), "nannyml": nannyml, "auto": auto, "matched": matched}
    return Seed(configs, profiles, reference)


def week_stream(seed: int) -> Stream:
    """A quiet week: the first window (360 records) and 1,008 schedules' worth after it."""
    return draw(np.random.default_rng((seed, 1)), WINDOW_N + WEEK * PER_SCHEDULE)


def quiet_week(seed: int, evaluations: int = WEEK) -> dict[str, Any]:
    """Critical firings, all firings and critical breaches of each scheme over a quiet week."""
    state = setup(seed)
    stream = week_stream(seed)
    alerts = {name: Alerts(config) for name, config in state.configs.items()}
    critical = dict.fromkeys(SCHEMES, 0)
    for k in range(1, evaluations + 1):
        now = START + k * SCHEDULE
        evaluation = evaluate(
            state.configs["auto"], state.profiles, stream, WINDOW_N + k * PER_SCHEDULE, now
        )
        for name in SCHEMES:
            critical[name] += len(alerts[name].apply(evaluation, now))
    return {
        "kind": "week",
        "seed": seed,
        "critical": critical,
        "firing": {n: sum(e[1] == "alert.firing" for e in a.events) for n, a in alerts.items()},
        "breaches": {n: a.breaches for n, a in alerts.items()},
        "events": {n: a.events for n, a in alerts.items()},
        "levels": state.configs["nannyml"].thresholds if seed == 0 else None,
    }


def drifts(seed: int, trials: int) -> dict[str, Any]:
    """Delays (None: missed) of each scheme for ``trials`` drifts of each shift of this seed."""
    state = setup(seed)
    found: list[tuple[int, dict[str, int | None]]] = []
    for shift_index, (label, shift) in enumerate(SHIFTS):
        for trial in range(trials):
            drifted = CATEGORICAL[trial % 2] if label.endswith("mass") else NUMERIC[trial % 4]
            rng = np.random.default_rng((seed, 2, shift_index, trial))
            before = draw(rng, WINDOW_N)
            after = draw(rng, HORIZON * PER_SCHEDULE, drifted=drifted, shift=shift)
            stream = concat([before, after])
            alerts = {name: Alerts(config) for name, config in state.configs.items()}
            delays: dict[str, int | None] = dict.fromkeys(SCHEMES)
            for k in range(1, HORIZON + 1):
                now = START + k * SCHEDULE
                evaluation = evaluate(
                    state.configs["auto"], state.profiles, stream, WINDOW_N + k * PER_SCHEDULE, now
                )
                for name in SCHEMES:
                    caught = alerts[name].apply(evaluation, now)
                    if delays[name] is None and any(f == drifted for _, f in caught):
                        delays[name] = k
                if all(d is not None for d in delays.values()):
                    break
            found.append((shift_index, delays))
    return {"kind": "drifts", "seed": seed, "delays": found}


def job(item: tuple[str, int, int]) -> dict[str, Any]:
    kind, seed, trials = item
    memoise_levels()
    return quiet_week(seed) if kind == "week" else drifts(seed, trials)


# -- the cross-check against a real Service ------------------------------------------------


def through_service(
    seed: int, scheme: str, evaluations: int
) -> list[tuple[float, str, str, str, str]]:
    """The alert events of ``scheme`` over the first ``evaluations`` of the seed's quiet week,
    from a real ``Service`` (SQLite file, injected clock): the reference stored with its
    labels, each schedule's records ingested and labelled as their time comes, then
    ``Service.evaluate`` at the schedule's time."""
    from prometheus_client import CollectorRegistry

    from monitor.service import Service
    from monitor.storage.engine import create_database_engine

    state = setup(seed)
    stream = week_stream(seed)
    reference = [
        {**state.reference.record(i), "label": CLASSES[state.reference.actual[i]]}
        for i in range(state.reference.n)
    ]
    config = state.configs[scheme]
    # the scheme's model, as YAML the service parses (the thresholds as the bench made them)
    text = MODEL.format(
        extra=f"    calibration: {{false_alarms_per_week: {BUDGET}}}\n" if scheme == "auto" else "",
        thresholds=thresholds_yaml(config),
        for_=FOR,
    )
    now = [START - WINDOW]
    with tempfile.TemporaryDirectory() as directory:
        engine = create_database_engine(f"sqlite:///{directory}/bench.db")
        service = Service(
            parse_config(text), engine=engine, registry=CollectorRegistry(), clock=lambda: now[0]
        )
        service.start(run_jobs=False)
        service.store_reference("m", reference, source="bench")

        def ingest(lo: int, hi: int) -> None:
            records = [
                {**stream.record(i), "id": f"r{i}", "timestamp": START - WINDOW + 10.0 * (i + 1)}
                for i in range(lo, hi)
            ]
            service.store_predictions("m", records)
            service.store_labels(
                "m", [{"id": f"r{i}", "label": CLASSES[stream.actual[i]]} for i in range(lo, hi)]
            )

        now[0] = START
        ingest(0, WINDOW_N)
        for k in range(1, evaluations + 1):
            now[0] = START + k * SCHEDULE
            ingest(WINDOW_N + (k - 1) * PER_SCHEDULE, WINDOW_N + k * PER_SCHEDULE)
            service.evaluate("m")
        history = service.alert_history(model="m", since=None, limit=100_000)
        service.stop()
        engine.dispose()
    return sorted((h.at, h.type, h.rule, h.feature, h.severity) for h in history)


def thresholds_yaml(config: ModelConfig) -> str:
    lines = []
    for statistic, threshold in config.thresholds.items():
        parts = [
            f"{level}: {getattr(threshold, level)}"
            for level in ("warning", "critical")
            if getattr(threshold, level) is not None
        ]
        if threshold.overrides:
            inner = ", ".join(
                f"{name}: {{critical: {levels_.critical!r}}}"
                for name, levels_ in threshold.overrides.items()
            )
            parts.append(f"overrides: {{{inner}}}")
        lines.append(f"      {statistic}: {{{', '.join(parts)}}}")
    return "\n".join(lines)


def service_job(item: tuple[str, int, int]) -> dict[str, Any]:
    scheme, seed, evaluations = item
    memoise_levels()
    return {
        "kind": "service",
        "scheme": scheme,
        "events": through_service(seed, scheme, evaluations),
    }


def run(item: tuple[str, Any, int]) -> dict[str, Any]:
    kind, what, number = item
    if kind == "service":
        return service_job((what, 0, number))
    return job((kind, what, number))


def in_parallel(work: Any, items: list[Any], workers: int) -> Iterator[Any]:
    """``work`` over ``items`` in ``workers`` forked processes, results as they finish."""
    if workers <= 1:
        yield from map(work, items)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap_unordered(work, items)


# -- the report ------------------------------------------------------------------------------


def rate_interval(counts: list[int]) -> tuple[float, float, float, float]:
    """Rate per week, its 95 % interval (exact Poisson, widened by the dispersion of the
    per-week counts when it exceeds Poisson's), and that dispersion."""
    weeks = len(counts)
    total = float(sum(counts))
    mean = total / weeks
    dispersion = 1.0
    if weeks > 1 and mean > 0:
        dispersion = max(1.0, float(np.var(counts, ddof=1)) / mean)
    effective, exposure = total / dispersion, weeks / dispersion
    low = 0.0 if effective == 0 else float(scipy.stats.gamma.ppf(0.025, effective)) / exposure
    high = float(scipy.stats.gamma.ppf(0.975, effective + 1.0)) / exposure
    return mean, low, high, dispersion


def median_delay(delays: list[int | None]) -> float:
    """The median, a missed drift counting as later than any caught one (inf: most missed)."""
    ordered = sorted(math.inf if d is None else d for d in delays)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def show_delay(value: float) -> str:
    if math.isinf(value):
        return f">{HORIZON}"
    return f"{value:g}"


def matched_thresholds(profiles: ReferenceProfiles) -> str:
    """``auto``'s critical levels at ``MATCHED_BUDGET``, resolved for windows of 360 records
    (every window here holds 360, so these are the levels the service would resolve), written
    as numbers per column."""
    config = model(AUTO, calibration=True, budget=MATCHED_BUDGET)
    lines = []
    for statistic, threshold in config.thresholds.items():
        found = {}
        for name, covered in levels.covered(config, statistic, threshold):
            numbers, _ = levels.resolve(
                config,
                statistic,
                covered,
                n=WINDOW_N,
                profile=profiles.numeric.get(name) or profiles.categorical.get(name),
                cache=profiles.null_cache,
                name=name,
                accuracy=profiles.accuracy,
            )
            found[name] = numbers.critical
        if statistic in levels.MODEL_LEVEL:
            lines.append(f"      {statistic}: {{critical: {found['']!r}}}")
            continue
        never = 0.0 if statistic.endswith("_pvalue") else 1e9  # columns left out: never
        overrides = ", ".join(f"{name}: {{critical: {value!r}}}" for name, value in found.items())
        lines.append(f"      {statistic}: {{critical: {never!r}, overrides: {{{overrides}}}}}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 weeks, 24 drifts per shift")
    parser.add_argument("--weeks", type=int, help="quiet weeks (seeds); default 30, quick 10")
    parser.add_argument("--drift-seeds", type=int, help="references for the drifts; 10, quick 3")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    docs_region.add_option(parser)
    args = parser.parse_args()
    weeks = args.weeks or (10 if args.quick else 30)
    drift_seeds = args.drift_seeds or (3 if args.quick else 10)
    trials = 8  # per shift and reference: each numeric feature twice, each categorical 4 times
    check_days = 1
    check_schemes = ("auto",) if args.quick else SCHEMES
    started = time.perf_counter()

    auto = model(AUTO, calibration=True)
    family = levels.family(auto)
    chance = levels.alphas(auto)
    print(
        f"model: 4 numeric + 2 categorical features, reference {REFERENCE_N:,}, window 1h of"
        f" {WINDOW_N} records, schedule 10m ({WEEK} evaluations a week), alerts.for {FOR}"
    )
    print(
        f"auto: budget {BUDGET:g} critical firing a week; family {family['critical']} critical"
        f" tests (warning {family['warning']}); chance per test {chance['critical']:.3g}"
        f" (warning {chance['warning']:.3g})"
    )
    items: list[tuple[str, Any, int]] = [("service", s, 144 * check_days) for s in check_schemes]
    items += [("week", seed, 0) for seed in range(weeks)]
    items += [("drifts", 1000 + seed, trials) for seed in range(drift_seeds)]
    results: list[dict[str, Any]] = []
    for done, result in enumerate(in_parallel(run, items, args.workers), 1):
        results.append(result)
        elapsed = time.perf_counter() - started
        print(f"\r{done}/{len(items)} jobs, {elapsed:.0f} s", end="", file=sys.stderr)
    print(file=sys.stderr)

    # the cross-check: the real service's alert events are the simulation's
    week0 = next(r for r in results if r["kind"] == "week" and r["seed"] == 0)
    end = START + 144 * check_days * SCHEDULE
    for found in (r for r in results if r["kind"] == "service"):
        simulated = sorted(e for e in week0["events"][found["scheme"]] if e[0] <= end)
        same = found["events"] == simulated
        print(
            f"cross-check {found['scheme']}: a real Service over seed 0's first day gave"
            f" {len(found['events'])} alert events, the simulation {len(simulated)}:"
            f" {'identical' if same else 'DIFFERENT'}"
        )
        if not same:
            print("  service:   ", found["events"][:10])
            print("  simulation:", simulated[:10])
            return 1

    weekly = [r for r in results if r["kind"] == "week"]
    delays: dict[tuple[str, int], list[int | None]] = {}
    for r in results:
        if r["kind"] == "drifts":
            for shift_index, found in r["delays"]:
                for name in SCHEMES:
                    delays.setdefault((name, shift_index), []).append(found[name])
    tests = WEEK * (family["critical"] + 1)  # __label__'s PSI is tested too (see the report)
    print()
    print(
        f"{len(weekly)} quiet weeks (one reference each); {drift_seeds * trials} drifts per"
        f" shift over {drift_seeds} references; delays in evaluations (10 min each)"
    )
    header = (
        "| levels | critical false alarms / week (95 %) | all firings / week |"
        " critical breaches / week |"
        + "".join(f" {label}: caught, median delay |" for label, _ in SHIFTS)
    )
    lines = [header, "|" + " --- |" * (4 + len(SHIFTS))]
    summary: dict[str, dict[str, float]] = {}
    names = {
        "fixed": "fixed (old example)",
        "nannyml": "NannyML-style (3 sd)",
        "auto": "auto (budget 1)",
        "matched": f"auto at budget {MATCHED_BUDGET:g}, as numbers (critical only)",
    }
    for name in SCHEMES:
        mean, low, high, _ = rate_interval([r["critical"][name] for r in weekly])
        firing = float(np.mean([r["firing"][name] for r in weekly]))
        breaches = float(np.mean([r["breaches"][name] for r in weekly]))
        cells = []
        for shift_index in range(len(SHIFTS)):
            found = delays.get((name, shift_index), [])
            caught = sum(d is not None for d in found) / max(len(found), 1)
            median = median_delay(found) if found else math.nan
            cells.append(f" {caught:.0%}, {show_delay(median)} |")
            summary.setdefault(name, {})[f"delay{shift_index}"] = median
        summary[name].update(mean=mean, high=high)
        lines.append(
            f"| {names[name]} | {mean:.2f} ({low:.2f} to {high:.2f}) | {firing:.2f} |"
            f" {breaches:.2f} |" + "".join(cells)
        )
    print("\n".join(lines))
    auto_breach = float(np.mean([r["breaches"]["auto"] for r in weekly]))
    print()
    notes = [
        f"auto: {auto_breach:.2f} critical breaches a week against {chance['critical'] * tests:.2f}"
        f" expected from its chance per test over the {family['critical'] + 1} tests each"
        f" evaluation runs ({WEEK} x {family['critical'] + 1} x {chance['critical']:.3g})"
    ]
    for name in ("auto", "fixed"):
        by_rule: dict[str, int] = {}
        for r in weekly:
            for _, event, rule, feature, severity in r["events"][name]:
                if severity == "critical" and event in ("alert.firing", "alert.escalated"):
                    key = f"{rule} {feature or '-'}"
                    by_rule[key] = by_rule.get(key, 0) + 1
        ranked = sorted(by_rule.items(), key=lambda kv: -kv[1])
        notes.append(
            f"{name}'s critical false alarms by rule and column, over the {len(weekly)} weeks: "
            + (", ".join(f"{key} {count}" for key, count in ranked) or "none")
        )
    print()
    targets = [
        (
            f"auto within budget: interval's upper end {summary['auto']['high']:.2f}"
            f" <= {2 * BUDGET:g}",
            summary["auto"]["high"] <= 2 * BUDGET,
        ),
        (
            f"auto no more false alarms than NannyML-style: {summary['auto']['mean']:.2f} <="
            f" {summary['nannyml']['mean']:.2f}",
            summary["auto"]["mean"] <= summary["nannyml"]["mean"],
        ),
        (
            "auto's median delay at 0.25 sd no worse than fixed:"
            f" {show_delay(summary['auto']['delay1'])}"
            f" <= {show_delay(summary['fixed']['delay1'])}",
            summary["auto"]["delay1"] <= summary["fixed"]["delay1"],
        ),
        (
            f"at equal or fewer false alarms ({summary['matched']['mean']:.2f} a week against"
            f" fixed's {summary['fixed']['mean']:.2f}), auto's levels (budget"
            f" {MATCHED_BUDGET:g}) catch a 0.25 sd shift no later than fixed:"
            f" {show_delay(summary['matched']['delay1'])}"
            f" <= {show_delay(summary['fixed']['delay1'])}",
            summary["matched"]["mean"] <= summary["fixed"]["mean"]
            and summary["matched"]["delay1"] <= summary["fixed"]["delay1"],
        ),
    ]
    checks = [f"{'met   ' if met else 'MISSED'}  {text}" for text, met in targets]
    print("\n".join(notes))
    print()
    print("\n".join(checks))
    region = [*lines, "", *(f"- {note}" for note in notes), "", "Targets:", ""]
    region += [f"- {'met' if met else '**missed**'}: {text}" for text, met in targets]
    docs_region.write(args.write_docs, "false-alarms", "\n".join(region))
    print(f"\n{time.perf_counter() - started:.0f} s, {args.workers} workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
