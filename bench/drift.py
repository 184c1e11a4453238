"""Drift evaluation time and memory: the statistics alone, then ``Service.evaluate`` end to end.

The model has 20 numeric and 5 categorical features and a 100,000-row reference. All data is
synthetic and seeded (``numpy.random.default_rng``): numeric features are normal, log-normal,
gamma, Student-t(5) and a normal rounded to 0.1 (ties), in turn; categorical ones have 4, 12,
40, 120 and 400 Zipf-distributed categories (the last two fold into ``__other__`` beyond the
50 a profile keeps). There are no missing values. A current window of ``n`` records is the
first ``n`` values of one stream per feature, so both parts see the same values, and a drift
regime only moves them: numeric values by ``shift`` reference standard deviations, categorical
ones by moving that share of the mass from frequent to rare categories.

Part 1, compute only: pure functions in this process, on the same arrays. For current windows
of 10k, 100k and 1M records (and 10M with ``--large``), one feature at a time (generated,
measured, discarded: memory stays at one column), each method's time is the best of a few runs
(5 at 10k, 3 at 100k, 1 above), summed over the features:

* ours, exact: ``compare_numeric`` x 20 and ``compare_categorical`` x 5 on profiles built once
  (PSI, KS statistic and p-value, Wasserstein, Jensen-Shannon; PSI, chi-square, Jensen-Shannon);
* the floor: the reference sorted once (with its own ECDF); each tick sorts the current window
  and uses ``searchsorted`` for the KS statistic (over both samples' values, as ``ks_2samp``
  does) and the PSI bin counts, and takes the p-value from ``scipy.stats.kstwo.sf`` as
  ``ks_2samp`` does; categorical features: ``collections.Counter`` and PSI;
* ``scipy.stats.ks_2samp`` in a plain loop over the 20 numeric features (KS only);
* ours, histogram path: ``grid_counts`` (paid once per record, when a bucket is summarised) and
  ``compare_numeric_histogram`` on the counts (paid by every evaluation), ``category_counts``
  and ``compare_categorical_counts`` for the categorical features;
* when importable (an optional extra; skipped with a note otherwise), up to 1M, on pandas
  frames: Evidently's ``DataDriftPreset`` with KS and chi-square, and NannyML's
  ``UnivariateDriftCalculator`` with KS and chi-square over the window as one chunk, fitted
  once on the reference (with a reference of 10k or more NannyML estimates the KS statistic on
  a 10,000-bin histogram and computes no KS p-value).

The results are checked against each other first: ours, the floor and ``ks_2samp`` must give
the same KS statistic and p-value, ours and the floor the same PSI, the histogram path the same
PSI and a KS statistic within its bound. P-values decide much of the time: ``kstwo.sf`` sums an
O(n) series when the p-value is roughly in [1e-10, 0.02] (about 55 ms per feature at 100k, 110
ms at 1M), and the exact path skips it only below 1e-10, where that provably changes nothing.
So every size runs with no drift, with a 0.05 sd shift and, above 10k, with the smaller shift
that keeps the 10k window's p-values (the expensive regime); the table counts the KS p-values in
that band. "Peak MB" is the tracemalloc peak of one numeric feature's comparison beyond its
input (ours, the floor, ``grid_counts``).

Part 2, end to end, each step in a fresh interpreter so that RSS is the service's own. A
temporary SQLite file gets the reference in one ``Service.store_reference_body`` call with the
JSON body a ``PUT .../reference`` carries, and the start of a new service process (with a first
evaluation) builds and stores the profiles. A copy of that file per window gets the window's
records through ``Service.store_predictions`` in batches of 10k (above 1M:
``repository.insert_predictions`` batches of 10k, skipping validation), received at ``T``,
prediction times spread over the hour before. A new ``Service`` on the file, its clock at ``T +
60 s`` (so every record was received >= 30 s earlier), then calls ``evaluate``: once (on the
histogram path this first call summarises the whole window into 1-minute buckets), three times
more a minute apart with nothing new (the steady state; the best counts), and on the histogram
path once more after a minute of new records (the tick: half received 45 s before, summarised
then, half 15 s before, read as the unsummarised tail). Windows of up to 100k records take the
exact path, larger ones the histogram path. Peak RSS is ``VmHWM`` (``/proc/self/status``), reset
before each step via ``/proc/self/clear_refs``. Where the time goes is measured by wrapping,
during the calls, the functions an evaluation calls with timers (about a microsecond per call),
wherever a ``monitor`` module imported them.

    .venv/bin/python bench/drift.py            # 10k, 100k, 1M: about 3.5 minutes on 2 cores
    .venv/bin/python bench/drift.py --large    # adds 10M to both parts (about half an hour)

Targets: the 100k evaluation's compute within 1.5x of the floor, and under 1 s with the
database read; the 10M window under 0.5 s and within 2x of the 1M one (steady state); the
service's RSS under 300 MB throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docs_region
import numpy as np
import numpy.typing as npt
import orjson
import scipy  # type: ignore[import-untyped]
import scipy.stats  # type: ignore[import-untyped]

from monitor.stats import (
    CategoricalProfile,
    NumericDrift,
    NumericProfile,
    category_counts,
    compare_categorical,
    compare_categorical_counts,
    compare_numeric,
    compare_numeric_histogram,
    grid_counts,
    profile_categorical,
    profile_numeric,
)
from monitor.stats.ks import ks_asymptotic_pvalue

T = TypeVar("T")
FloatArray = npt.NDArray[np.float64]

SEED = 20_240_611
REFERENCE_N = 100_000
CHUNK = 10_000  # generation unit: a window of n records is the stream's first n / CHUNK chunks
NUMERIC = tuple(f"n{i}" for i in range(20))
CATEGORICAL = tuple(f"c{j}" for j in range(5))
CATEGORY_COUNTS = (4, 12, 40, 120, 400)
PSI_BINS = 10  # the service's default drift.bins
MAX_CATEGORIES = 50  # the service's default drift.max_categories
PSI_EPSILON = 1e-4
SMALL_SHIFT = 0.05
COSTLY_BAND = (1e-10, 0.02)  # KS p-values for which kstwo.sf sums its O(n) series
SIDE_BY_SIDE_MAX = 1_000_000
MODEL = "bench"
EXACT_MAX = 100_000  # drift.exact_max_samples (its default)
START = 1_800_000_000.0  # service clock when the records arrive; a multiple of 60
SPREAD = (3240.0, 100.0)  # prediction times from START - 3240 s to START - 100 s
DIRECT_ABOVE = 1_000_000  # larger windows are written with repository.insert_predictions
STEADY_CALLS = 3  # steady-state evaluations after the first, a minute apart; the best counts
TARGET_RATIO_100K = 1.5
TARGET_E2E_100K_S = 1.0
TARGET_10M_S = 0.5
TARGET_10M_VS_1M = 2.0
TARGET_RSS_MB = 300.0
RESULT = re.compile(r"^BENCH_RESULT (\{.*\})$", re.M)


# -- synthetic data ------------------------------------------------------------------------


def _rng(role: int, feature: int, chunk: int) -> np.random.Generator:
    """Role 0 is the reference, 1 the current stream; features 20..24 are the categorical."""
    return np.random.default_rng((SEED, role, feature, chunk))


def numeric_sd(feature: int) -> float:
    """Standard deviation of a numeric feature's distribution: the unit of the shift."""
    kind = feature % 5
    if kind == 0:
        return 1.0 + feature / 10
    if kind == 1:
        return math.sqrt((math.exp(0.25) - 1.0) * math.exp(0.25))
    if kind == 2:
        return math.sqrt(2.0)
    if kind == 3:
        return math.sqrt(5.0 / 3.0)
    return 10.0


def _numeric_draw(feature: int, rng: np.random.Generator, size: int) -> FloatArray:
    kind = feature % 5
    if kind == 0:
        return rng.normal(float(feature), numeric_sd(feature), size)
    if kind == 1:
        return rng.lognormal(0.0, 0.5, size)
    if kind == 2:
        return rng.gamma(2.0, 1.0, size)
    if kind == 3:
        return rng.standard_t(5.0, size)
    return rng.normal(50.0, 10.0, size)  # rounded to 0.1 after the shift


def numeric_values(feature: int, n: int, *, role: int, shift: float, first: int = 0) -> FloatArray:
    """Values ``first .. first + n - 1`` of a numeric stream (``first`` a multiple of CHUNK)."""
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        rng = _rng(role, feature, (first + start) // CHUNK)
        out[start : start + size] = _numeric_draw(feature, rng, size)
    if shift:
        out += shift * numeric_sd(feature)
    if feature % 5 == 4:
        np.round(out, 1, out=out)
    return out


@functools.cache
def category_names(j: int) -> npt.NDArray[np.object_]:
    return np.array([f"{CATEGORICAL[j]}_v{r}" for r in range(CATEGORY_COUNTS[j])], dtype=object)


def category_probabilities(j: int, shift: float) -> FloatArray:
    base = 1.0 / np.arange(1, CATEGORY_COUNTS[j] + 1) ** 1.1
    base /= base.sum()
    moved = min(max(shift, 0.0), 1.0)
    result: FloatArray = (1.0 - moved) * base + moved * base[::-1]
    return result


def categorical_values(
    j: int, n: int, *, role: int, shift: float, first: int = 0
) -> list[str | None]:
    """Categories ``first .. first + n - 1`` of a categorical stream (shared str objects)."""
    cumulative = np.cumsum(category_probabilities(j, shift))
    codes = np.empty(n, dtype=np.int64)
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        uniform = _rng(role, len(NUMERIC) + j, (first + start) // CHUNK).random(size)
        codes[start : start + size] = np.searchsorted(cumulative, uniform, side="right")
    np.minimum(codes, CATEGORY_COUNTS[j] - 1, out=codes)
    values: list[str | None] = category_names(j)[codes].tolist()
    return values


@dataclass(frozen=True)
class Regime:
    label: str
    shift: float


def effective_n(n: int) -> float:
    return REFERENCE_N * n / (REFERENCE_N + n)


def regimes(n: int) -> list[Regime]:
    """No drift, a 0.05 sd shift and, above 10k, the shift that keeps the 10k p-values."""
    result = [Regime("none", 0.0), Regime(f"{SMALL_SHIFT:g} sd", SMALL_SHIFT)]
    if n > CHUNK:
        scaled = round(SMALL_SHIFT * math.sqrt(effective_n(CHUNK) / effective_n(n)), 4)
        result.append(Regime(f"{scaled:.4f} sd (p as at 10k)", scaled))
    return result


def count_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


# -- part 1: the floor and the references ----------------------------------------------------


@dataclass(frozen=True)
class FloorNumeric:
    """What the floor keeps of a numeric reference: sorted values, their ECDF, PSI bins."""

    sorted_values: FloatArray
    own_cdf: FloatArray
    psi_edges: FloatArray
    psi_reference: FloatArray


@dataclass(frozen=True)
class FloorCategorical:
    index: dict[str, int]
    other: int
    psi_reference: FloatArray


@dataclass(frozen=True)
class Reference:
    raw: list[FloatArray]
    numeric: list[NumericProfile]
    categorical: list[CategoricalProfile]
    floor_numeric: list[FloorNumeric]
    floor_categorical: list[FloorCategorical]


def floored(proportions: FloatArray) -> FloatArray:
    proportions[proportions == 0.0] = PSI_EPSILON
    return proportions


def psi(reference: FloatArray, counts: npt.NDArray[np.int64]) -> float:
    current = floored(counts / counts.sum())
    return float(np.sum((current - reference) * np.log(current / reference)))


def floor_numeric_reference(values: FloatArray) -> FloorNumeric:
    """Decile edges as docs/drift.md defines them (inverted CDF, ties merged, max dropped)."""
    ordered = np.sort(values)
    quantiles = np.arange(1, PSI_BINS) / PSI_BINS
    edges = np.unique(np.quantile(ordered, quantiles, method="inverted_cdf"))
    edges = edges[edges < ordered[-1]]
    below = np.searchsorted(ordered, edges, side="right")
    counts = np.diff(np.concatenate(([0], below, [ordered.size])))
    return FloorNumeric(
        sorted_values=ordered,
        own_cdf=np.searchsorted(ordered, ordered, side="right") / ordered.size,
        psi_edges=edges,
        psi_reference=floored(counts / ordered.size),
    )


def floor_categorical_reference(profile: CategoricalProfile) -> FloorCategorical:
    names = list(profile.counts)
    index = {name: i for i, name in enumerate(names)}
    other = index.get("__other__", len(names))  # without folding: one bin for new categories
    counts = np.array([*profile.counts.values(), *([0] if other == len(names) else [])])
    return FloorCategorical(index, other, floored(counts / counts.sum()))


def build_reference() -> Reference:
    raw = [numeric_values(f, REFERENCE_N, role=0, shift=0.0) for f in range(len(NUMERIC))]
    categorical = [
        profile_categorical(
            categorical_values(j, REFERENCE_N, role=0, shift=0.0), max_categories=MAX_CATEGORIES
        )
        for j in range(len(CATEGORICAL))
    ]
    return Reference(
        raw=raw,
        numeric=[profile_numeric(values, bins=PSI_BINS) for values in raw],
        categorical=categorical,
        floor_numeric=[floor_numeric_reference(values) for values in raw],
        floor_categorical=[floor_categorical_reference(p) for p in categorical],
    )


def kstwo_pvalue(statistic: float, n_reference: int, n_current: int) -> float:
    """``ks_2samp``'s large-sample p-value: ``kstwo.sf(D, round(n m / (n + m)))``."""
    en = np.round(n_reference * n_current / (n_reference + n_current))
    return float(np.clip(scipy.stats.kstwo.sf(statistic, en), 0.0, 1.0))


def floor_numeric(reference: FloorNumeric, current: FloatArray) -> tuple[float, float, float]:
    """KS statistic, its p-value and PSI, the vectorised way."""
    ordered = np.sort(current)
    n, m = reference.sorted_values.size, ordered.size
    at_reference = np.searchsorted(ordered, reference.sorted_values, side="right") / m
    at_current = np.searchsorted(reference.sorted_values, ordered, side="right") / n
    own = np.searchsorted(ordered, ordered, side="right") / m
    statistic = max(
        float(np.max(np.abs(reference.own_cdf - at_reference))),
        float(np.max(np.abs(at_current - own))),
    )
    below = np.searchsorted(ordered, reference.psi_edges, side="right")
    counts = np.diff(np.concatenate(([0], below, [m])))
    return statistic, kstwo_pvalue(statistic, n, m), psi(reference.psi_reference, counts)


def floor_categorical(reference: FloorCategorical, values: Sequence[str | None]) -> float:
    counts = np.zeros(reference.psi_reference.size, dtype=np.int64)
    for name, count in Counter(values).items():
        counts[reference.index.get(str(name), reference.other)] += count
    return psi(reference.psi_reference, counts)


# -- part 1: optional libraries ------------------------------------------------------------


@dataclass(frozen=True)
class SideTool:
    """A drift library run side by side: ``fit`` once on the reference frame, then ``run``."""

    name: str
    version: str
    fit: Callable[[Any], Any]
    run: Callable[[Any, Any], object]


def evidently_tool() -> SideTool:
    """Evidently's data drift preset with KS for numeric and chi-square for categorical columns
    (its defaults at this size are Wasserstein and Jensen-Shannon distances)."""
    evidently = importlib.import_module("evidently")
    try:  # Evidently >= 0.7
        presets = importlib.import_module("evidently.presets")
        report_class = evidently.Report

        def run(reference: Any, current: Any) -> object:
            preset = presets.DataDriftPreset(num_method="ks", cat_method="chisquare")
            return report_class([preset]).run(current, reference).dict()

    except (ImportError, AttributeError):  # the legacy API (<= 0.6)
        legacy = importlib.import_module("evidently.report")
        legacy_presets = importlib.import_module("evidently.metric_preset")

        def run(reference: Any, current: Any) -> object:
            preset = legacy_presets.DataDriftPreset(num_stattest="ks", cat_stattest="chisquare")
            report = legacy.Report(metrics=[preset])
            report.run(reference_data=reference, current_data=current)
            return report.as_dict()

    return SideTool("Evidently", str(evidently.__version__), lambda frame: frame, run)


def nannyml_tool() -> SideTool:
    """NannyML's univariate drift (KS, chi-square) over the window as one chunk; fitted once."""
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # no analytics calls home
    nannyml = importlib.import_module("nannyml")

    def fit(reference: Any) -> Any:
        calculator = nannyml.UnivariateDriftCalculator(
            column_names=[*NUMERIC, *CATEGORICAL],
            treat_as_categorical=list(CATEGORICAL),
            continuous_methods=["kolmogorov_smirnov"],
            categorical_methods=["chi2"],
            chunk_number=1,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calculator.fit(reference)

    def run(calculator: Any, current: Any) -> object:
        with warnings.catch_warnings():  # "the resulting number of chunks is too low": 1 is meant
            warnings.simplefilter("ignore")
            return calculator.calculate(current)

    return SideTool("NannyML", str(nannyml.__version__), fit, run)


def side_tools() -> tuple[list[SideTool], list[str]]:
    """The importable libraries, and a note for each one skipped."""
    tools, notes = [], []
    for name, make in (("evidently", evidently_tool), ("nannyml", nannyml_tool)):
        try:
            tools.append(make())
        except Exception as exc:  # any import-time failure means "not available"
            notes.append(f"{name} skipped: not importable ({type(exc).__name__}: {exc})")
    return tools, notes


def frame(n: int, shift: float, *, role: int) -> Any:
    pandas = importlib.import_module("pandas")
    columns: dict[str, Any] = {
        name: numeric_values(f, n, role=role, shift=shift) for f, name in enumerate(NUMERIC)
    }
    for j, name in enumerate(CATEGORICAL):
        columns[name] = pandas.Categorical(categorical_values(j, n, role=role, shift=shift))
    return pandas.DataFrame(columns)


# -- part 1: measurement -------------------------------------------------------------------


def best_of(repeats: int, call: Callable[[], T]) -> tuple[float, T]:
    """The shortest of ``repeats`` runs, in seconds, and the last result."""
    best = math.inf
    result: T | None = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    assert result is not None
    return best, result


def traced_peak_mb(call: Callable[[], object]) -> float:
    """Peak bytes the call allocated (NumPy buffers included), beyond what existed before."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@dataclass
class ComputeRow:
    n: int
    regime: Regime
    ours: float = 0.0
    ours_p: float = 0.0
    floor: float = 0.0
    floor_p: float = 0.0
    ks_2samp: float = 0.0
    hist_count: float = 0.0
    hist_compare: float = 0.0
    peak_mb: tuple[float, float, float] = (0.0, 0.0, 0.0)  # ours, floor, histogram counts
    p_values: list[float] = field(default_factory=list)
    psi: list[float] = field(default_factory=list)  # ours, per numeric feature
    ks: list[float] = field(default_factory=list)
    side: dict[str, float | str] = field(default_factory=dict)


def check_numeric(
    name: str,
    ours: NumericDrift,
    floor: tuple[float, float, float],
    reference_ks: Any,
    histogram: NumericDrift,
) -> None:
    """Fail loudly if the methods timed against each other do not compute the same thing."""
    statistic, p_value, floor_psi = floor
    problems = []
    if not ours.ks_statistic == statistic == float(reference_ks.statistic):
        problems.append(f"KS {ours.ks_statistic} (ours) {statistic} (floor) {reference_ks}")
    if abs(ours.ks_pvalue - p_value) > 1e-9 or abs(p_value - float(reference_ks.pvalue)) > 1e-12:
        problems.append(f"p {ours.ks_pvalue} (ours) {p_value} (floor) {reference_ks.pvalue}")
    if not math.isclose(ours.psi, floor_psi, rel_tol=1e-9, abs_tol=1e-12):
        problems.append(f"PSI {ours.psi} (ours) {floor_psi} (floor)")
    if not math.isclose(histogram.psi, ours.psi, rel_tol=1e-12, abs_tol=1e-15):
        problems.append(f"PSI {histogram.psi} (histogram) {ours.psi} (exact)")
    gap = ours.ks_statistic - histogram.ks_statistic
    if not -1e-12 <= gap <= histogram.ks_bound + 1e-12:
        problems.append(f"KS {histogram.ks_statistic} +- {histogram.ks_bound} (histogram)")
    if problems:
        raise RuntimeError(f"{name}: methods disagree: " + "; ".join(problems))


def measure_numeric(row: ComputeRow, reference: Reference, feature: int, repeats: int) -> None:
    current = numeric_values(feature, row.n, role=1, shift=row.regime.shift)
    profile = reference.numeric[feature]
    floor_reference = reference.floor_numeric[feature]
    ours_s, ours = best_of(repeats, functools.partial(compare_numeric, profile, current))
    floor_s, floor = best_of(repeats, functools.partial(floor_numeric, floor_reference, current))
    ks_s, ks = best_of(
        repeats, functools.partial(scipy.stats.ks_2samp, reference.raw[feature], current)
    )
    count_s, (counts, missing) = best_of(repeats, functools.partial(grid_counts, profile, current))
    cheap = max(repeats, 3)  # steps that cost the same at every window size
    compare_s, histogram = best_of(
        cheap, functools.partial(compare_numeric_histogram, profile, counts, missing=missing)
    )
    check_numeric(NUMERIC[feature], ours, floor, ks, histogram)
    ours_p_s, _ = best_of(
        cheap,
        functools.partial(
            ks_asymptotic_pvalue, ours.ks_statistic, n_reference=profile.n, n_current=row.n
        ),
    )
    floor_p_s, _ = best_of(cheap, functools.partial(kstwo_pvalue, floor[0], REFERENCE_N, row.n))
    if feature == 0:
        row.peak_mb = (
            traced_peak_mb(functools.partial(compare_numeric, profile, current)),
            traced_peak_mb(functools.partial(floor_numeric, floor_reference, current)),
            traced_peak_mb(functools.partial(grid_counts, profile, current)),
        )
    row.ours += ours_s
    row.ours_p += ours_p_s
    row.floor += floor_s
    row.floor_p += floor_p_s
    row.ks_2samp += ks_s
    row.hist_count += count_s
    row.hist_compare += compare_s
    row.p_values.append(ours.ks_pvalue)
    row.psi.append(ours.psi)
    row.ks.append(ours.ks_statistic)


def measure_categorical(row: ComputeRow, reference: Reference, j: int, repeats: int) -> None:
    current = categorical_values(j, row.n, role=1, shift=row.regime.shift)
    profile = reference.categorical[j]
    ours_s, ours = best_of(repeats, functools.partial(compare_categorical, profile, current))
    floor_s, floor_psi = best_of(
        repeats, functools.partial(floor_categorical, reference.floor_categorical[j], current)
    )
    count_s, (counts, missing) = best_of(repeats, functools.partial(category_counts, current))
    compare_s, histogram = best_of(
        max(repeats, 3),
        functools.partial(compare_categorical_counts, profile, counts, missing=missing),
    )
    if not math.isclose(ours.psi, floor_psi, rel_tol=1e-9, abs_tol=1e-12) or histogram != ours:
        raise RuntimeError(f"{CATEGORICAL[j]}: PSI {ours.psi} (ours) {floor_psi} (floor)")
    row.ours += ours_s
    row.floor += floor_s
    row.hist_count += count_s
    row.hist_compare += compare_s


def measure_side_by_side(
    row: ComputeRow, tools: list[SideTool], fitted: dict[str, Any], reference_frame: Any
) -> None:
    if not tools:
        return
    if row.n > SIDE_BY_SIDE_MAX:
        for tool in tools:
            row.side[tool.name] = "skipped"
        return
    current = frame(row.n, row.regime.shift, role=1)
    for tool in tools:
        state = fitted.get(tool.name, reference_frame)
        try:
            seconds, _ = best_of(1, functools.partial(tool.run, state, current))
            row.side[tool.name] = seconds
        except Exception as exc:
            row.side[tool.name] = f"failed: {type(exc).__name__}"
    del current


def repeats_for(n: int) -> int:
    return 5 if n <= 10_000 else 3 if n <= 100_000 else 1


def run_compute(sizes: Sequence[int], tools: list[SideTool]) -> list[ComputeRow]:
    started = time.perf_counter()
    reference = build_reference()
    print(f"reference profiles built in {time.perf_counter() - started:.1f} s", flush=True)
    reference_frame: Any = None
    fitted: dict[str, Any] = {}
    if tools:
        reference_frame = frame(REFERENCE_N, 0.0, role=0)
        for tool in tools:
            fitted[tool.name] = tool.fit(reference_frame)
    rows = []
    for n in sizes:
        for regime in regimes(n):
            row = ComputeRow(n, regime)
            repeats = repeats_for(n)
            for feature in range(len(NUMERIC)):
                measure_numeric(row, reference, feature, repeats)
            for j in range(len(CATEGORICAL)):
                measure_categorical(row, reference, j, repeats)
            measure_side_by_side(row, tools, fitted, reference_frame)
            rows.append(row)
            print(
                f"  {count_label(n):>4} {regime.label:<26} ours {row.ours * 1e3:8.1f} ms  "
                f"floor {row.floor * 1e3:8.1f} ms  ks_2samp {row.ks_2samp * 1e3:8.1f} ms  "
                f"histogram {(row.hist_count + row.hist_compare) * 1e3:8.1f} ms",
                flush=True,
            )
    return rows


# -- part 2: the service, in worker processes ----------------------------------------------


def config_text() -> str:
    features = [f"      - {{name: {name}, type: numeric}}" for name in NUMERIC]
    features += [f"      - {{name: {name}, type: categorical}}" for name in CATEGORICAL]
    return "\n".join(
        [
            "models:",
            f"  - name: {MODEL}",
            "    task: regression",
            "    features:",
            *features,
            "    window: {duration: 1h}",
            "    schedule: 1m",
            "    min_samples: 100",
            "    thresholds:",
            "      psi: {warning: 0.1, critical: 0.25}",
            "      ks_pvalue: {critical: 0.01}",
            f"    drift: {{bins: {PSI_BINS}, max_categories: {MAX_CATEGORIES},"
            f" exact_max_samples: {EXACT_MAX}, bucket: 1m}}",
            "",
        ]
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def open_service(db: Path, clock: Clock) -> Any:
    from prometheus_client import CollectorRegistry

    from monitor import runtime
    from monitor.config import parse_config
    from monitor.service import Service
    from monitor.storage import create_database_engine

    runtime.tune_memory_allocator()  # as `monitor serve` does before starting its service
    engine = create_database_engine(f"sqlite:///{db}")
    service = Service(
        parse_config(config_text()), engine=engine, registry=CollectorRegistry(), clock=clock
    )
    service.start(run_jobs=False)
    return service


def close_service(service: Any) -> None:
    """Checkpoint the WAL into the database file (so that it can be copied) and close."""
    from sqlalchemy import text

    with service.engine.connect() as connection:
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    service.stop()


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark; False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Steps:
    """Time and peak RSS of each step of a worker, and the peak over all of them."""

    def __init__(self) -> None:
        self.peak_mb = 0.0  # start-up, then each step: not what the worker does in between
        self.resettable = True
        self.results: dict[str, dict[str, float]] = {}

    def run(self, name: str, call: Callable[[], T]) -> T:
        if not self.results:
            self.peak_mb = peak_rss_mb()  # imports and set-up
        self.resettable = reset_peak_rss() and self.resettable
        started = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - started
        peak = peak_rss_mb()
        self.peak_mb = max(self.peak_mb, peak)
        self.results[name] = {"seconds": seconds, "peak_mb": peak}
        return result

    def report(self, **extra: Any) -> None:
        body = {"steps": self.results, "peak_mb": self.peak_mb, "resettable": self.resettable}
        print("BENCH_RESULT " + json.dumps({**body, **extra}), flush=True)


def reference_body(chunk: int = 5_000) -> bytes:
    """The reference as the JSON array a ``PUT .../reference`` carries, serialised ``chunk``
    records at a time: the harness never holds all the records as Python objects, which would
    leave the process's memory (and so the upload's measured peak RSS) inflated by its own
    garbage."""
    numeric = np.column_stack(
        [numeric_values(f, REFERENCE_N, role=0, shift=0.0) for f in range(len(NUMERIC))]
    )
    categorical = [
        categorical_values(j, REFERENCE_N, role=0, shift=0.0) for j in range(len(CATEGORICAL))
    ]
    names = (*NUMERIC, *CATEGORICAL)
    parts = []
    for start in range(0, REFERENCE_N, chunk):
        rows = zip(
            numeric[start : start + chunk].tolist(),
            zip(*[values[start : start + chunk] for values in categorical], strict=True),
            strict=True,
        )
        records = [
            {"features": dict(zip(names, (*numbers, *categories), strict=True))}
            for numbers, categories in rows
        ]
        parts.append(orjson.dumps(records)[1:-1])
    return b"[" + b",".join(parts) + b"]"


def worker_reference(db: Path) -> None:
    """Upload the reference in one call, as ``PUT /v1/models/{model}/reference`` does: the
    service gets the request body (JSON bytes) and parses it itself."""
    steps = Steps()
    service = open_service(db, Clock(START))
    body = reference_body()
    steps.run(
        "reference upload",
        functools.partial(
            service.store_reference_body, MODEL, body, "application/json", source="bench"
        ),
    )
    del body
    close_service(service)
    steps.report()


def worker_profiles(db: Path) -> None:
    """The service's start (which builds the reference profiles and stores them) and a first
    evaluation, of an empty window."""
    steps = Steps()

    def start_and_evaluate() -> Any:
        service = open_service(db, Clock(START))
        service.evaluate(MODEL)
        return service

    service = steps.run("profiles", start_and_evaluate)
    close_service(service)
    steps.report()


def window_records(
    first: int, shift: float, timestamps: Sequence[float]
) -> list[tuple[str, float, dict[str, Any], float]]:
    """(id, timestamp, features, prediction) of the current stream's records from ``first``."""
    size = len(timestamps)
    numeric = np.column_stack(
        [numeric_values(f, size, role=1, shift=shift, first=first) for f in range(len(NUMERIC))]
    ).tolist()
    categorical = zip(
        *[
            categorical_values(j, size, role=1, shift=shift, first=first)
            for j in range(len(CATEGORICAL))
        ],
        strict=True,
    )
    names = (*NUMERIC, *CATEGORICAL)
    return [
        (f"w{first + i}", ts, dict(zip(names, (*numbers, *categories), strict=True)), numbers[0])
        for i, (numbers, categories, ts) in enumerate(
            zip(numeric, categorical, timestamps, strict=True)
        )
    ]


def store_records(
    service: Any, rows: list[tuple[str, float, dict[str, Any], float]], *, direct: bool
) -> None:
    """Through ``Service.store_predictions``, or straight to ``insert_predictions``."""
    from monitor import codec
    from monitor.domain import PredictionBatch
    from monitor.storage import repository

    if not direct:
        records = [
            {"id": i, "timestamp": ts, "features": features, "prediction": prediction}
            for i, ts, features, prediction in rows
        ]
        result = service.store_predictions(MODEL, records)
    else:
        batch = PredictionBatch(
            ids=[row[0] for row in rows],
            timestamps=[row[1] for row in rows],
            features=[codec.encode(row[2]) for row in rows],
            prediction_classes=[None] * len(rows),
            prediction_values=[row[3] for row in rows],
            scores=[None] * len(rows),
        )
        with service.engine.begin() as connection:
            result = repository.insert_predictions(
                connection, model=MODEL, batch=batch, received_at=service.clock()
            )
    if result.accepted != len(rows):
        raise RuntimeError(f"stored {result.accepted} of {len(rows)} records")


def store_stream(
    service: Any, first: int, size: int, stamp: Any, shift: float, *, direct: bool
) -> None:
    """The current stream's records ``first`` .. ``first + size`` (``first`` a multiple of
    CHUNK), CHUNK per batch; ``stamp(positions)`` gives the prediction times of positions
    ``0 .. size`` as an array, computed a chunk at a time so that the harness itself holds no
    more than a chunk of records (its memory is counted in the step's peak RSS)."""
    for start in range(0, size, CHUNK):
        timestamps = stamp(np.arange(start, min(start + CHUNK, size))).tolist()
        store_records(service, window_records(first + start, shift, timestamps), direct=direct)


def ingest_window(service: Any, n: int, shift: float) -> None:
    """``n`` records, prediction times spread evenly over ``SPREAD`` before ``START``."""
    oldest, newest = START - SPREAD[0], START - SPREAD[1]
    store_stream(
        service,
        0,
        n,
        lambda positions: oldest + (newest - oldest) * positions / n,
        shift,
        direct=n > DIRECT_ABOVE,
    )


def worker_ingest(db: Path, n: int, shift: float) -> None:
    steps = Steps()
    service = open_service(db, Clock(START))
    steps.run("ingest", functools.partial(ingest_window, service, n, shift))
    close_service(service)
    steps.report()


def tick_records(n: int) -> int:
    """Records arriving in one minute at the rate that fills the window with ``n``."""
    return round(n * 60.0 / (SPREAD[0] - SPREAD[1]))


def ingest_minute(service: Any, clock: Clock, n: int, shift: float) -> None:
    """One more minute of records before the next evaluation: the first half received 45 s
    before it (summarised then), the second half 15 s before (read as the unsummarised tail)."""
    minute = clock.now
    count = tick_records(n)
    second = n + math.ceil(count / 2 / CHUNK) * CHUNK  # stream positions stay chunk-aligned
    halves = ((n, count // 2, 0.0), (second, count - count // 2, 30.0))
    for first, size, offset in halves:
        clock.now = minute + offset + 15.0
        store_stream(
            service,
            first,
            size,
            lambda positions, at=minute + offset, size=size: at + 15.0 * positions / size,
            shift,
            direct=n > DIRECT_ABOVE,
        )
    clock.now = minute + 60.0


#: (defining module, function or Class.method, label): what an evaluation calls. Functions are
#: wrapped wherever a ``monitor`` module imported them by name; missing ones are skipped.
TIMED = (
    ("monitor.storage.windows", "count_between", "DB: count the window"),
    ("monitor.storage.windows", "rows_between", "DB: read the window's rows"),
    ("monitor.storage.evaluations", "load_profiles", "DB: load the profiles"),
    ("monitor.jobs.drift_histograms", "DriftHistograms.summarize", "summarise new records"),
    ("monitor.storage.summaries", "ready_seq", "DB: find the rows ready to summarise"),
    ("monitor.storage.histograms", "rows_after", "DB: read records after the watermark"),
    ("monitor.evaluation.histograms", "summarize", "count per bucket"),
    ("monitor.storage.histograms", "add_to_buckets", "DB: add to the buckets"),
    ("monitor.storage.histograms", "merged_counts", "DB: read and merge the buckets"),
    ("monitor.evaluation.columns", "columns_from_rows", "JSON -> columns"),
    ("monitor.evaluation.evaluate", "evaluate_drift", "statistics, exact path"),
    ("monitor.evaluation.evaluate", "evaluate_drift_counts", "statistics, from histograms"),
    ("monitor.stats.compare", "compare_numeric", "compare_numeric"),
    ("monitor.stats.categorical", "compare_categorical", "compare_categorical"),
    ("monitor.stats.histogram", "compare_numeric_histogram", "compare_numeric_histogram"),
    ("monitor.stats.categorical", "compare_categorical_counts", "compare_categorical_counts"),
    ("monitor.stats.histogram", "grid_counts", "grid_counts"),
    ("monitor.stats.categories", "category_counts", "category_counts"),
    ("monitor.jobs.labelled_windows", "LabelledWindows.window", "DB: labelled predictions"),
    ("monitor.storage.windows", "unmatched_label_count", "DB: count unmatched labels"),
    ("monitor.evaluation.performance", "evaluate_performance", "performance metrics"),
    ("monitor.evaluation.performance", "label_health", "label health"),
    ("monitor.evaluation.document", "to_document", "evaluation -> document"),
    ("monitor.storage.evaluations", "store_evaluation", "DB: store the evaluation"),
)


class Timers:
    """Wraps the TIMED functions; time accumulates per call path (outer > inner)."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def install(self) -> None:
        modules = [m for name, m in list(sys.modules.items()) if name.startswith("monitor")]
        for module_name, name, label in TIMED:
            try:
                owner: Any = importlib.import_module(module_name)
            except ImportError:
                continue
            class_name, _, attribute = name.rpartition(".")
            if class_name:
                owner = getattr(owner, class_name, None)
            original = getattr(owner, attribute, None)
            if original is None:
                continue
            timed = self._wrap(original, label)
            if class_name:
                setattr(owner, attribute, timed)
                continue
            for module in modules:
                for key, value in list(vars(module).items()):
                    if value is original:
                        setattr(module, key, timed)

    def _wrap(self, original: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.stack.append(label)
            path = " > ".join(self.stack)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[path] = self.seconds.get(path, 0.0) + time.perf_counter() - started
                self.calls[path] = self.calls.get(path, 0) + 1
                self.stack.pop()

        return timed

    def take(self) -> dict[str, list[float]]:
        taken = {path: [s, float(self.calls[path])] for path, s in self.seconds.items()}
        self.seconds, self.calls = {}, {}
        return taken


def worker_evaluate(db: Path, n: int, shift: float) -> None:
    """The first evaluation after start, ``STEADY_CALLS`` more a minute apart with nothing new,
    and on the histogram path a tick: one after a minute of new records (``ingest_minute``)."""
    steps = Steps()
    clock = Clock(START + 60.0)
    service = open_service(db, clock)
    timers = Timers()
    timers.install()
    first = steps.run("evaluate #1", functools.partial(service.evaluate, MODEL))
    phases = {"evaluate #1": timers.take()}
    last = first
    for call in range(2, STEADY_CALLS + 2):
        clock.now += 60.0
        last = steps.run(f"evaluate #{call}", functools.partial(service.evaluate, MODEL))
        phases[f"evaluate #{call}"] = timers.take()
    tick_n = None
    if n > EXACT_MAX:
        clock.now += 60.0
        ingest_minute(service, clock, n, shift)
        timers.take()
        tick = steps.run("tick", functools.partial(service.evaluate, MODEL))
        phases["tick"] = timers.take()
        tick_n = tick.window.n
    service.stop()
    numeric = [last.feature(name) for name in NUMERIC]
    steps.report(
        window_n=[first.window.n, last.window.n],
        tick_n=tick_n,
        exact=[f.exact for f in numeric],
        psi=[f.statistics.get("psi") for f in numeric],
        ks=[f.statistics.get("ks_statistic") for f in numeric],
        ks_bound=[f.ks_bound for f in numeric],
        phases=phases,
    )


def run_worker(*args: str) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    match = RESULT.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"worker {args} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(match.group(1))
    return result


@dataclass
class ServiceRow:
    n: int
    regime: Regime
    ingest: dict[str, Any]
    evaluate: dict[str, Any]

    @property
    def exact(self) -> bool:
        return all(self.evaluate["exact"])

    def seconds(self, step: str) -> float:
        seconds: float = self.evaluate["steps"][step]["seconds"]
        return seconds

    def peak(self, step: str) -> float:
        peak: float = self.evaluate["steps"][step]["peak_mb"]
        return peak

    @property
    def steady_step(self) -> str:
        """The fastest of the steady-state calls."""
        calls = [f"evaluate #{call}" for call in range(2, STEADY_CALLS + 2)]
        return min(calls, key=self.seconds)

    @property
    def first(self) -> float:
        return self.seconds("evaluate #1")

    @property
    def steady(self) -> float:
        return self.seconds(self.steady_step)

    @property
    def steady_peak(self) -> float:
        return max(self.peak(f"evaluate #{call}") for call in range(2, STEADY_CALLS + 2))

    @property
    def tick(self) -> float | None:
        return self.seconds("tick") if "tick" in self.evaluate["steps"] else None


def service_cases(sizes: Sequence[int]) -> list[tuple[int, Regime]]:
    """The 0.05 sd shift at every size; at 100k also no drift and the expensive p regime."""
    cases = []
    for n in sizes:
        for regime in regimes(n):
            if regime.shift == SMALL_SHIFT or n == EXACT_MAX:
                cases.append((n, regime))
    return cases


def copy_database(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        origin = source.with_name(source.name + suffix)
        if origin.exists():
            shutil.copyfile(origin, target.with_name(target.name + suffix))


def run_service(sizes: Sequence[int], directory: Path) -> tuple[dict[str, Any], list[ServiceRow]]:
    base = directory / "reference.db"
    reference = run_worker("reference", "--db", str(base))
    profiles = run_worker("profiles", "--db", str(base))
    # The upload counts from the moment the service holds the request body (the step's peak),
    # not the harness building that body; the profiles worker is the service alone.
    upload_mb = reference["steps"]["reference upload"]["peak_mb"]
    reference["steps"].update(profiles["steps"])
    reference["peak_mb"] = max(upload_mb, profiles["peak_mb"])
    steps = reference["steps"]
    print(
        f"reference: upload {steps['reference upload']['seconds']:.1f} s (peak RSS "
        f"{steps['reference upload']['peak_mb']:.0f} MB), profiles "
        f"{steps['profiles']['seconds']:.1f} s (peak RSS {steps['profiles']['peak_mb']:.0f} MB)",
        flush=True,
    )
    rows = []
    for n, regime in service_cases(sizes):
        db = directory / f"window-{n}-{regime.shift}.db"
        copy_database(base, db)
        ingest = run_worker("ingest", "--db", str(db), "--n", str(n), "--shift", str(regime.shift))
        evaluate = run_worker(
            "evaluate", "--db", str(db), "--n", str(n), "--shift", str(regime.shift)
        )
        row = ServiceRow(n, regime, ingest, evaluate)
        rows.append(row)
        print(
            f"  {count_label(n):>4} {regime.label:<26} ingest "
            f"{ingest['steps']['ingest']['seconds']:6.1f} s  evaluate #1 {row.first:6.3f} s"
            f"  steady {row.steady:6.3f} s  peak RSS {evaluate['peak_mb']:.0f} MB",
            flush=True,
        )
        for suffix in ("", "-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)
    return reference, rows


# -- report --------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}x" if floor > 0 else "-"


def compute_table(rows: list[ComputeRow], tools: list[SideTool]) -> str:
    header = [
        "current n",
        "drift",
        "KS p median (in band)",
        "ours exact ms (p-values)",
        "floor ms (p-values)",
        "ours / floor",
        "ks_2samp loop ms",
        "ks_2samp / floor",
        "histogram ms: counts + compare",
        "histogram / floor",
        "peak MB ours / floor / counts",
        *[f"{tool.name} ms" for tool in tools],
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        low, high = COSTLY_BAND
        in_band = sum(low <= p <= high for p in row.p_values)
        side = []
        for tool in tools:
            value = row.side.get(tool.name, "-")
            side.append(ms(value) if isinstance(value, float) else str(value))
        histogram = row.hist_count + row.hist_compare
        cells = [
            count_label(row.n),
            row.regime.label,
            f"{float(np.median(row.p_values)):.2g} ({in_band}/{len(row.p_values)})",
            f"{ms(row.ours)} ({ms(row.ours_p)})",
            f"{ms(row.floor)} ({ms(row.floor_p)})",
            ratio(row.ours, row.floor),
            ms(row.ks_2samp),
            ratio(row.ks_2samp, row.floor),
            f"{ms(histogram)}: {ms(row.hist_count)} + {ms(row.hist_compare)}",
            ratio(histogram, row.floor),
            " / ".join(f"{mb:.0f}" for mb in row.peak_mb),
            *side,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reference_line(reference: dict[str, Any]) -> str:
    upload, profiles = reference["steps"]["reference upload"], reference["steps"]["profiles"]
    return (
        f"Reference: {REFERENCE_N:,} records in one store_reference_body call"
        f" {upload['seconds']:.1f} s,"
        f" peak RSS {upload['peak_mb']:.0f} MB; profiles built by the service's start (a fresh"
        f" process, with a first evaluation) {profiles['seconds']:.2f} s, peak RSS"
        f" {profiles['peak_mb']:.0f} MB."
    )


def service_table(rows: list[ServiceRow]) -> str:
    header = [
        "window",
        "drift",
        "path",
        "ingest s",
        "evaluate #1 s",
        f"steady s (best of {STEADY_CALLS})",
        "tick s (+1 min of records)",
        "peak RSS MB: ingest / #1 / steady / tick",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        tick = "-" if row.tick is None else f"{row.tick:.3f} (+{tick_records(row.n):,})"
        tick_peak = "-" if row.tick is None else f"{row.peak('tick'):.0f}"
        lines.append(
            f"| {count_label(row.n)} | {row.regime.label} "
            f"| {'exact' if row.exact else 'histogram'} "
            f"| {row.ingest['steps']['ingest']['seconds']:.1f} | {row.first:.3f} "
            f"| {row.steady:.3f} | {tick} | {row.ingest['peak_mb']:.0f} / "
            f"{row.peak('evaluate #1'):.0f} / {row.steady_peak:.0f} / {tick_peak} |"
        )
    return "\n".join(lines)


def breakdown_table(rows: list[ServiceRow]) -> str:
    """Where evaluate's time goes: per timed call path, ms (calls), for the informative calls."""
    columns: list[tuple[str, dict[str, list[float]], float]] = []
    for row in rows:
        name = f"{count_label(row.n)} {row.regime.label.split(' (')[0]}"
        steps = [("first", "evaluate #1"), ("steady", row.steady_step)]
        if not row.exact:
            steps.append(("tick", "tick"))
        for kind, step in steps:
            if step in row.evaluate["phases"]:
                phases = row.evaluate["phases"][step]
                columns.append((f"{name} {kind}", phases, row.seconds(step)))
    paths: list[str] = []
    for _, phases, _ in columns:
        paths += [path for path in phases if path not in paths]
    paths.sort(key=_path_order)
    header = ["step: ms (calls)", *[name for name, _, _ in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for path in paths:
        depth = path.count(" > ")
        label = "&nbsp;&nbsp;" * 2 * depth + path.split(" > ")[-1]
        cells = []
        for _, phases, _ in columns:
            seconds, calls = phases.get(path, [0.0, 0.0])
            cells.append(f"{ms(seconds)} ({calls:.0f})" if calls else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    other = []
    for _, phases, total in columns:
        timed = sum(s for path, (s, _) in phases.items() if " > " not in path)
        other.append(ms(total - timed))
    lines.append("| everything else | " + " | ".join(other) + " |")
    lines.append("| **evaluate** | " + " | ".join(f"**{ms(t)}**" for _, _, t in columns) + " |")
    return "\n".join(lines)


def _path_order(path: str) -> list[int]:
    labels = [label for _, _, label in TIMED]
    return [labels.index(part) if part in labels else len(labels) for part in path.split(" > ")]


def cross_checks(compute: list[ComputeRow], rows: list[ServiceRow]) -> list[str]:
    """The service's PSI and KS against part 1's for the same window, where both ran."""
    results = []
    by_case = {(row.n, row.regime.shift): row for row in compute}
    for row in rows:
        name = f"- {count_label(row.n)} {row.regime.label}"
        window_ok = row.evaluate["window_n"] == [row.n, row.n]
        tick_n = row.evaluate.get("tick_n")
        if tick_n is not None:
            window_ok = window_ok and tick_n == row.n + tick_records(row.n)
        expected = by_case.get((row.n, row.regime.shift))
        if expected is None:
            results.append(f"{name}: every record in the window: {window_ok}")
            continue
        psi_gap = max(abs(a - b) for a, b in zip(row.evaluate["psi"], expected.psi, strict=True))
        ks_ok = all(
            -1e-12 <= exact - got <= (bound or 0.0) + 1e-12
            for got, bound, exact in zip(
                row.evaluate["ks"], row.evaluate["ks_bound"], expected.ks, strict=True
            )
        )
        results.append(
            f"{name}: every record in the window: {window_ok}; max |PSI - part 1's| = "
            f"{psi_gap:.1e}; KS statistic within its bound of part 1's: {ks_ok}"
        )
    return results


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else "PASS" if ok else "MISS"


def targets(
    compute: list[ComputeRow], reference: dict[str, Any] | None, rows: list[ServiceRow]
) -> list[str]:
    lines = []
    at_100k = [row for row in compute if row.n == EXACT_MAX]
    worst = max((row.ours / row.floor for row in at_100k), default=None)
    detail = ", ".join(f"{r.regime.label}: {ratio(r.ours, r.floor)}" for r in at_100k)
    lines.append(
        f"- 100k compute within {TARGET_RATIO_100K}x of the floor: "
        f"{verdict(None if worst is None else worst <= TARGET_RATIO_100K)} ({detail or '-'})"
    )
    e2e = [row for row in rows if row.n == EXACT_MAX]
    detail = ", ".join(
        f"{r.regime.label}: {r.steady:.3f} s (first call {r.first:.3f} s)" for r in e2e
    )
    ok = None if not e2e else all(r.steady < TARGET_E2E_100K_S for r in e2e)
    lines.append(
        f"- 100k evaluate with the DB read < {TARGET_E2E_100K_S:g} s: {verdict(ok)} "
        f"({detail or '-'})"
    )
    small = {row.n: row for row in rows if row.regime.shift == SMALL_SHIFT}
    one, ten = small.get(1_000_000), small.get(10_000_000)
    if ten is None:
        lines.append(f"- 10M window < {TARGET_10M_S} s: not measured (run with --large)")
        lines.append(
            f"- 10M within {TARGET_10M_VS_1M:g}x of 1M: not measured (1M steady state: "
            f"{f'{one.steady:.3f} s' if one else '-'})"
        )
    else:
        lines.append(
            f"- 10M window < {TARGET_10M_S} s: {verdict(ten.steady < TARGET_10M_S)} "
            f"({ten.steady:.3f} s steady; first call {ten.first:.1f} s)"
        )
        if one is not None:
            factor = ten.steady / one.steady
            lines.append(
                f"- 10M within {TARGET_10M_VS_1M:g}x of 1M: "
                f"{verdict(factor <= TARGET_10M_VS_1M)} ({factor:.2f}x: {ten.steady:.3f} s "
                f"vs {one.steady:.3f} s)"
            )
    if reference is None:
        lines.append(f"- service RSS < {TARGET_RSS_MB:.0f} MB: not measured")
    else:
        peaks = [("reference upload and profiles", reference["peak_mb"])]
        for row in rows:
            name = f"{count_label(row.n)} {row.regime.label.split(' (')[0]}"
            peaks += [(f"{name} ingest", row.ingest["peak_mb"])]
            peaks += [(f"{name} evaluate", row.evaluate["peak_mb"])]
        worst_name, worst_mb = max(peaks, key=lambda item: item[1])
        over = [f"{name} {mb:.0f} MB" for name, mb in peaks if mb >= TARGET_RSS_MB]
        lines.append(
            f"- service RSS < {TARGET_RSS_MB:.0f} MB throughout: "
            f"{verdict(worst_mb < TARGET_RSS_MB)} (max {worst_mb:.0f} MB, {worst_name}"
            f"{'; over: ' + ', '.join(over) if over else ''})"
        )
    return lines


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--large", action="store_true", help="add 10M records to both parts")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="part 1 window sizes")
    parser.add_argument("--windows", default="10000,100000,1000000", help="part 2 window sizes")
    parser.add_argument("--skip-compute", action="store_true", help="run part 2 only")
    parser.add_argument("--skip-service", action="store_true", help="run part 1 only")
    parser.add_argument(
        "--worker", choices=["reference", "profiles", "ingest", "evaluate"], help=argparse.SUPPRESS
    )
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--shift", type=float, default=0.0, help=argparse.SUPPRESS)
    docs_region.add_option(parser)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.windows = [int(s) for s in args.windows.split(",") if s.strip()]
    if args.large:
        args.sizes = sorted({*args.sizes, 10_000_000})
        args.windows = sorted({*args.windows, 10_000_000})
    if any(n % CHUNK for n in args.sizes + args.windows):
        parser.error(f"sizes must be multiples of {CHUNK}")
    return args


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def worker(args: argparse.Namespace) -> int:
    if args.worker == "reference":
        worker_reference(args.db)
    elif args.worker == "profiles":
        worker_profiles(args.db)
    elif args.worker == "ingest":
        worker_ingest(args.db, args.n, args.shift)
    else:
        worker_evaluate(args.db, args.n, args.shift)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    started = time.perf_counter()
    print(
        f"Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}"
        f", {os.cpu_count()} CPUs; reference {REFERENCE_N:,} rows, {len(NUMERIC)} numeric + "
        f"{len(CATEGORICAL)} categorical features; load average {load_average()}",
        flush=True,
    )
    tools, notes = side_tools()
    for note in notes:
        print(note, flush=True)
    compute: list[ComputeRow] = []
    if not args.skip_compute:
        print("part 1: compute only", flush=True)
        compute = run_compute(args.sizes, tools)
    reference: dict[str, Any] | None = None
    rows: list[ServiceRow] = []
    if not args.skip_service:
        print("part 2: Service.evaluate on SQLite", flush=True)
        with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
            try:
                reference, rows = run_service(args.windows, Path(tmp))
            except RuntimeError as exc:
                print(f"benchmark failed: {exc}", file=sys.stderr)
                return 1
    print()
    if compute:
        print("Part 1: compute only, 20 numeric + 5 categorical features, 100k reference")
        print()
        print(compute_table(compute, tools))
        print()
        docs_region.write(args.write_docs, "drift-compute", compute_table(compute, tools))
    if rows and reference is not None:
        print("Part 2: Service.evaluate end to end (SQLite file, 1 h window, 1 min buckets)")
        print()
        print(reference_line(reference))
        print()
        print(service_table(rows))
        print()
        docs_region.write(
            args.write_docs, "drift-service", reference_line(reference), service_table(rows)
        )
        print("Where Service.evaluate's time goes (ms, calls; nested steps indented)")
        print()
        print(breakdown_table(rows))
        print()
        print("Checks:")
        print("\n".join(cross_checks(compute, rows)))
        print()
    print("Targets:")
    print("\n".join(targets(compute, reference, rows)))
    print()
    print(
        f"total run time {time.perf_counter() - started:.0f} s; load average {load_average()} "
        "(other processes on the machine share its CPUs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
