"""Drift and performance evaluate the same, configured window (issue 14, items 6 and 7), on
SQLite and PostgreSQL: a window of the last N records gives N labelled pairs when all are
labelled, whatever the order of their timestamps; a window above ``exact_max_samples`` (the
histogram path) is cut at its exact start and end, and its labelled pairs are those of the plain
join, whether they come from the buckets or the unsummarised tail."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text

from monitor.config import parse_config
from monitor.jobs.summaries import SUMMARY_LAG_SECONDS
from monitor.service import Service

START = 1_800_000_000.0
CLASSES = ("no", "yes")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_service(engine: Engine, clock: Clock, window: str, extra: str = "") -> Service:
    config = f"""
models:
  - name: m
    task: classification
    classes: [no, yes]
    features: [{{name: x, type: numeric}}, {{name: c, type: categorical}}]
    window: {window}
    min_samples: 5
    {extra}
"""
    service = Service(
        parse_config(config), engine=engine, registry=CollectorRegistry(), clock=clock
    )
    service.start(run_jobs=False)
    return service


def predict(service: Service, ids: list[str], times: list[float], rng: np.random.Generator) -> None:
    records = [
        {
            "id": record_id,
            "timestamp": t,
            "features": {"x": float(rng.normal()), "c": "ab"[int(rng.integers(2))]},
            "prediction": CLASSES[int(rng.integers(2))],
        }
        for record_id, t in zip(ids, times, strict=True)
    ]
    for first in range(0, len(records), 1000):
        service.store_predictions("m", records[first : first + 1000])


def label(service: Service, ids: list[str], rng: np.random.Generator) -> None:
    records = [{"id": record_id, "label": CLASSES[int(rng.integers(2))]} for record_id in ids]
    for first in range(0, len(records), 1000):
        service.store_labels("m", records[first : first + 1000])


def stored_pairs(engine: Engine, ids: set[str]) -> tuple[list[str], list[str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT p.id, p.prediction_class, l.label_class FROM predictions p"
                " JOIN labels l ON l.model = p.model AND l.id = p.id WHERE p.model = 'm'"
            )
        ).all()
    kept = [(row[1], row[2]) for row in rows if row[0] in ids]
    return [k[1] for k in kept], [k[0] for k in kept]


def test_a_records_window_evaluates_all_its_labelled_records(engine: Engine) -> None:
    """records: 1000, 1000 predictions with distinct timestamps, all labelled: the drift
    features and the performance both count 1000 (it was 999: the oldest record was left
    out), and the accuracy is scikit-learn's over all 1000."""
    rng = np.random.default_rng(1)
    clock = Clock(START + 5000)
    service = make_service(engine, clock, "{records: 1000}")
    ids = [f"r{i}" for i in range(1000)]
    predict(service, ids, [START + i for i in range(1000)], rng)
    label(service, ids, rng)
    evaluation = service.evaluate("m")
    assert evaluation.feature("x").n == 1000  # type: ignore[union-attr]
    assert evaluation.performance is not None and evaluation.performance.n == 1000
    actual, predicted = stored_pairs(engine, set(ids))
    expected = skm.accuracy_score(actual, predicted)
    assert evaluation.performance.metrics["accuracy"] == pytest.approx(expected, abs=1e-12)
    service.stop()


def test_a_records_window_is_the_last_records_received_whatever_their_timestamps(
    engine: Engine,
) -> None:
    """The window is the last N records ingested; late records with old timestamps belong to
    it and older records with newer timestamps do not, for drift and performance alike."""
    rng = np.random.default_rng(2)
    clock = Clock(START + 5000)
    service = make_service(engine, clock, "{records: 300}")
    early = [f"e{i}" for i in range(300)]
    predict(service, early, [START + 1000 + i for i in range(300)], rng)  # newer timestamps
    late = [f"l{i}" for i in range(300)]
    predict(service, late, [START + 2 * i + 0.5 for i in range(300)], rng)  # older, sent later
    label(service, early + late, rng)
    evaluation = service.evaluate("m")
    assert evaluation.feature("x").n == 300  # type: ignore[union-attr]
    assert evaluation.performance is not None and evaluation.performance.n == 300
    actual, predicted = stored_pairs(engine, set(late))
    expected = skm.accuracy_score(actual, predicted)
    assert evaluation.performance.metrics["accuracy"] == pytest.approx(expected, abs=1e-12)
    service.stop()


def independent_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI as the README defines it (see test_drift_histograms.py)."""
    edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins, method="inverted_cdf"))
    edges = edges[edges < reference.max()]
    r = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    r = np.where(r == 0, 1e-4, r / r.sum())
    c = np.where(c == 0, 1e-4, c / c.sum())
    return float(np.sum((c - r) * np.log(c / r)))


@pytest.mark.parametrize("offset", [0.0, 17.25, 59.999])
def test_a_large_window_is_cut_at_its_exact_start_and_end(engine: Engine, offset: float) -> None:
    """window 1m, bucket 1m, above exact_max_samples: the histogram path counts exactly the
    records with time in (now - 60 s, now] (it used to snap the start to a bucket boundary:
    n swung between a third and all of the window), summarised or not, and records after
    ``now`` in the last bucket are not counted."""
    rng = np.random.default_rng(int(offset * 1000))
    now = START + 600 + offset
    clock = Clock(now - 200)
    service = make_service(
        engine, clock, "{duration: 1m}", "drift: {exact_max_samples: 1000, bucket: 1m}"
    )
    reference = rng.normal(0, 1, 1000)
    service.store_reference(
        "m",
        [{"features": {"x": float(v), "c": "a"}, "prediction": "no"} for v in reference],
        source="test",
    )
    times = np.concatenate(
        [
            rng.uniform(now - 150, now + 40, 6000),
            [now - 60, now, now + 0.001, np.nextafter(now - 60, np.inf)],  # on the edges
        ]
    )
    values = rng.normal(0.3, 1.2, len(times))
    records = [
        {
            "id": f"r{i}",
            "timestamp": float(t),
            "features": {"x": float(v), "c": "a"},
            "prediction": "no",
        }
        for i, (t, v) in enumerate(zip(times, values, strict=True))
    ]
    for first in range(0, 4000, 1000):  # summarised by the evaluation
        service.store_predictions("m", records[first : first + 1000])
    clock.now = now - 10
    for first in range(4000, len(records), 1000):  # too recent: read from the tail
        service.store_predictions("m", records[first : first + 1000])
    clock.now = now + 5
    evaluation = service.evaluator.evaluate(service.model("m"), at=now)
    inside = (times > now - 60) & (times <= now)
    x = evaluation.feature("x")
    assert x is not None and x.exact is False
    assert evaluation.window.start == now - 60 and evaluation.window.end == now
    assert evaluation.window.n == x.n == int(inside.sum())
    assert x.statistics["psi"] == pytest.approx(
        independent_psi(reference, values[inside]), abs=1e-12
    )
    service.stop()


def _pairs_key(pairs: object) -> list[tuple[float, float, int, int]]:
    return sorted(
        zip(
            pairs.prediction_ts.tolist(),  # type: ignore[attr-defined]
            pairs.label_ts.tolist(),  # type: ignore[attr-defined]
            pairs.predicted.tolist(),  # type: ignore[attr-defined]
            pairs.actual.tolist(),  # type: ignore[attr-defined]
            strict=True,
        )
    )


def _plain_join(engine: Engine, *, start: float, end: float, last: int | None = None) -> list:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT p.seq, p.ts, l.ts, p.prediction_class, l.label_class FROM predictions p"
                " JOIN labels l ON l.model = p.model AND l.id = p.id WHERE p.model = 'm'"
            )
        ).all()
        seqs = sorted(
            connection.execute(text("SELECT seq FROM predictions WHERE model = 'm'")).scalars()
        )
    code = {name: i for i, name in enumerate(CLASSES)}
    if last is not None:
        kept = set(seqs[-last:])
        rows = [row for row in rows if row[0] in kept]
    else:
        rows = [row for row in rows if start < row[1] <= end]
    return sorted((row[1], row[2], code[row[3]], code[row[4]]) for row in rows)


def _reset(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in (
            "predictions",
            "labels",
            "performance_buckets",
            "performance_watermarks",
            "performance_stale",
        ):
            connection.execute(text(f"DELETE FROM {table}"))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_labelled_pairs_equal_the_plain_join(engine: Engine, data: st.DataObject) -> None:
    """Random timestamps (ties included), labels arriving before and after the summary lag,
    windows evaluated as they arrive: the window's labelled pairs (from the buckets and the
    unsummarised tail) are those of the plain join, for a time window and a records window."""
    clock = Clock(START)
    service = make_service(engine, clock, "{duration: 5m}", "drift: {bucket: 1m}")
    _reset(engine)  # each example starts from an empty store
    config = service.model("m")
    labelled = service.evaluator.labelled
    stamp = st.integers(0, 40).map(lambda k: START - 600 + 15.0 * k)  # 15 s apart: ties
    n = data.draw(st.integers(1, 40))
    times = data.draw(st.lists(stamp, min_size=n, max_size=n))
    rng = np.random.default_rng(n)
    ids = [f"p{i}" for i in range(n)]
    split = data.draw(st.integers(0, n))
    predict(service, ids[:split], times[:split], rng)
    for step in range(4):
        if step == 1:
            label(service, data.draw(st.lists(st.sampled_from(ids), unique=True)), rng)
        if step == 2:
            predict(service, ids[split:], times[split:], rng)
        clock.now += data.draw(st.sampled_from([5.0, SUMMARY_LAG_SECONDS, 100.0]))
        end = data.draw(st.sampled_from([clock.now, START - 300, START - 37.5]))
        window = labelled.window(config, start=end - 300, end=end)
        assert _pairs_key(window) == _plain_join(engine, start=end - 300, end=end)
        count = data.draw(st.integers(1, 50))
        assert _pairs_key(labelled.last_records(config, count=count)) == _plain_join(
            engine, start=0, end=0, last=count
        )
    service.stop()
