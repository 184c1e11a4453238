"""Windows of labelled predictions served from per-bucket summaries equal the plain join.

The reference is computed here from what the test sent (a dict of predictions and a dict of
labels, joined in Python), not from the code under test; the metrics are checked against
scikit-learn. The clock is moved past the summary lag so that the buckets, not the unsummarised
tail, serve the windows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select

from monitor.config import ModelConfig, parse_config
from monitor.evaluation.labelled import Labelled
from monitor.jobs.labelled_windows import LabelledWindows
from monitor.jobs.summaries import SUMMARY_LAG_SECONDS
from monitor.service import Service
from monitor.storage.tables import performance_buckets, performance_stale, performance_watermarks

START = 1_800_000_000.0
CONFIG = """
models:
  - name: clf
    task: classification
    classes: [a, b, c]
    features: [{{name: x, type: numeric}}]
    window: {{duration: 1h}}
    min_samples: 5
    drift: {{bucket: 5m}}
    performance: {{window_by: {window_by}}}
  - name: reg
    task: regression
    features: [{{name: x, type: numeric}}]
    window: {{duration: 1h}}
    min_samples: 5
    drift: {{bucket: 5m}}
    performance: {{window_by: {window_by}}}
"""
CLASSES = ["a", "b", "c"]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class World:
    """A service plus what was sent to it, joined independently."""

    def __init__(self, engine: Engine, window_by: str = "prediction_time") -> None:
        self.clock = Clock(START)
        self.service = Service(
            parse_config(CONFIG.format(window_by=window_by)),
            engine=engine,
            registry=CollectorRegistry(),
            clock=self.clock,
        )
        self.service.start(run_jobs=False)
        self.rng = np.random.default_rng(7)
        self.predictions: dict[str, dict[str, Any]] = {}
        self.labels: dict[str, dict[str, Any]] = {}
        self.window_by = window_by

    def config(self, model: str = "clf") -> ModelConfig:
        return self.service.model(model)

    def predict(self, model: str, ids: list[str], times: list[float]) -> None:
        records = []
        for record_id, ts in zip(ids, times, strict=True):
            record: dict[str, Any] = {
                "id": record_id,
                "timestamp": float(ts),
                "features": {"x": 1.0},
            }
            if model == "clf":
                scores = self.rng.dirichlet(np.ones(3))
                record["prediction"] = CLASSES[int(np.argmax(scores))]
                record["scores"] = dict(zip(CLASSES, (float(s) for s in scores), strict=True))
            else:
                record["prediction"] = float(self.rng.normal(10, 3))
            records.append(record)
            self.predictions[f"{model}/{record_id}"] = record
        result = self.service.store_predictions(model, records)
        assert result.accepted == len(records)

    def label(self, model: str, ids: list[str], times: list[float]) -> None:
        records = []
        for record_id, ts in zip(ids, times, strict=True):
            label: Any = (
                CLASSES[int(self.rng.integers(3))]
                if model == "clf"
                else float(self.rng.normal(10, 3))
            )
            records.append({"id": record_id, "label": label, "timestamp": float(ts)})
            key = f"{model}/{record_id}"
            if key not in self.labels or self.labels[key]["label"] != label:
                # the same label again is a duplicate: the stored one (and its time) stays
                self.labels[key] = {"label": label, "timestamp": float(ts)}
        self.service.store_labels(model, records)

    def expected(self, model: str, start: float, end: float) -> list[tuple[Any, ...]]:
        rows = []
        for key, label in self.labels.items():
            if not key.startswith(f"{model}/") or key not in self.predictions:
                continue
            record = self.predictions[key]
            t = label["timestamp"] if self.window_by == "label_time" else record["timestamp"]
            if start < t <= end:
                scores = record.get("scores")
                rows.append(
                    (
                        record["timestamp"],
                        label["timestamp"],
                        record["prediction"],
                        label["label"],
                        None if scores is None else tuple(scores[c] for c in CLASSES),
                    )
                )
        return sorted(rows, key=repr)

    def window(self, model: str, start: float, end: float) -> list[tuple[Any, ...]]:
        pairs = self.service.evaluator.labelled.window(self.config(model), start=start, end=end)
        return as_rows(pairs, model)


def as_rows(pairs: Labelled, model: str) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(len(pairs)):
        if model == "clf":
            assert pairs.scores is not None
            predicted: Any = CLASSES[int(pairs.predicted[i])]
            actual: Any = CLASSES[int(pairs.actual[i])]
            scores: Any = tuple(float(s) for s in pairs.scores[i])
        else:
            predicted, actual, scores = float(pairs.predicted[i]), float(pairs.actual[i]), None
        rows.append(
            (float(pairs.prediction_ts[i]), float(pairs.label_ts[i]), predicted, actual, scores)
        )
    return sorted(rows, key=repr)


def bucket_count(engine: Engine, model: str) -> int:
    with engine.connect() as connection:
        query = select(performance_buckets.c.n).where(performance_buckets.c.model == model)
        return sum(connection.execute(query).scalars())


@pytest.mark.parametrize("model", ["clf", "reg"])
def test_windows_from_buckets_equal_the_join_as_records_and_labels_arrive(
    engine: Engine, model: str
) -> None:
    world = World(engine)
    n = 0
    for step in range(12):
        # 40 predictions over the last 10 minutes; labels for some older ones, some before
        # their prediction (ids predicted next step), and some for ids never predicted.
        now = world.clock.now
        ids = [f"p{n + i}" for i in range(40)]
        world.predict(model, ids, list(np.linspace(now - 600, now, 40)))
        n += 40
        older = [f"p{i}" for i in world.rng.choice(n, size=25, replace=False)]
        early = [f"p{n + i}" for i in range(5)]
        world.label(model, older + early + [f"ghost{step}"], [now] * 31)
        world.clock.now += 600
        end = world.clock.now
        assert world.window(model, end - 3600, end) == world.expected(model, end - 3600, end)
    # The buckets served most of it: everything older than the lag is summarised.
    assert bucket_count(engine, model) > 0.8 * len(world.expected(model, START - 7200, end))


def test_a_window_cut_inside_buckets_is_exact(engine: Engine) -> None:
    world = World(engine)
    times = list(np.arange(START - 3000, START, 7.0))
    ids = [f"r{i}" for i in range(len(times))]
    world.predict("clf", ids, times)
    world.label("clf", ids, [START] * len(ids))
    world.clock.now = START + 10 * SUMMARY_LAG_SECONDS
    for start, end in [
        (START - 3000, START),
        (START - 2999.5, START - 7.0),
        (START - 1234.5, START - 77.7),
    ]:
        assert world.window("clf", start, end) == world.expected("clf", start, end)


@pytest.mark.parametrize("window_by", ["prediction_time", "label_time"])
def test_corrected_labels_rebuild_their_buckets(engine: Engine, window_by: str) -> None:
    world = World(engine, window_by)
    ids = [f"r{i}" for i in range(200)]
    world.predict("clf", ids, list(np.linspace(START - 3000, START - 100, 200)))
    world.label("clf", ids, list(np.linspace(START - 2500, START - 50, 200)))
    world.clock.now = START + 100
    end = world.clock.now
    assert world.window("clf", end - 3600, end) == world.expected("clf", end - 3600, end)
    # Correct a third of them, with label times that move them to other buckets.
    world.label("clf", ids[::3], list(np.linspace(START - 1800, START + 50, len(ids[::3]))))
    with engine.connect() as connection:
        assert connection.execute(select(performance_stale.c.seq)).all()
    world.clock.now = START + 200
    end = world.clock.now
    assert world.window("clf", end - 3600, end) == world.expected("clf", end - 3600, end)
    with engine.connect() as connection:
        assert not connection.execute(select(performance_stale.c.seq)).all()


def test_metrics_from_buckets_equal_scikit_learn(engine: Engine) -> None:
    world = World(engine)
    ids = [f"r{i}" for i in range(3000)]
    world.predict("clf", ids, list(np.linspace(START - 3400, START - 60, 3000)))
    world.label("clf", ids[:2500], [START - 30] * 2500)
    world.clock.now = START + 120
    evaluation = world.service.evaluate("clf")
    performance = evaluation.performance
    assert performance is not None and performance.n == 2500
    assert bucket_count(engine, "clf") == 2500
    y_true = [world.labels[f"clf/{i}"]["label"] for i in ids[:2500]]
    y_pred = [world.predictions[f"clf/{i}"]["prediction"] for i in ids[:2500]]
    scores = np.array(
        [[world.predictions[f"clf/{i}"]["scores"][c] for c in CLASSES] for i in ids[:2500]]
    )
    metrics = performance.metrics
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert metrics["f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", labels=CLASSES), abs=1e-9
    )
    assert metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y_true, scores, multi_class="ovr", labels=CLASSES), abs=1e-9
    )
    assert metrics["log_loss"] == pytest.approx(
        skm.log_loss(y_true, scores, labels=CLASSES), abs=1e-9
    )
    assert performance.confusion_matrix == tuple(
        tuple(row) for row in skm.confusion_matrix(y_true, y_pred, labels=CLASSES).tolist()
    )
    labels = evaluation.labels
    assert labels is not None and labels.labelled == 2500 and labels.unmatched == 0
    delays = [START - 30 - world.predictions[f"clf/{i}"]["timestamp"] for i in ids[:2500]]
    assert labels.delay_seconds_p50 == pytest.approx(float(np.quantile(delays, 0.5)), abs=1e-6)


def test_a_window_reaching_before_the_buckets_rebuilds_them(engine: Engine) -> None:
    world = World(engine)
    ids = [f"r{i}" for i in range(300)]
    world.predict("clf", ids, list(np.linspace(START - 20_000, START - 100, 300)))
    world.label("clf", ids, [START - 60] * 300)
    world.clock.now = START + 100
    end = world.clock.now
    assert world.window("clf", end - 3600, end) == world.expected("clf", end - 3600, end)
    with engine.connect() as connection:
        horizon = connection.execute(select(performance_watermarks.c.horizon)).scalar_one()
    assert horizon <= end - 3600 - 3600  # kept from a window's length before its start
    # The window grows (a config change): older pairs come back.
    assert world.window("clf", end - 20_000, end) == world.expected("clf", end - 20_000, end)
    # And moves forward again: old buckets are dropped.
    assert world.window("clf", end - 3600, end) == world.expected("clf", end - 3600, end)
    with engine.connect() as connection:
        oldest = (
            connection.execute(
                select(performance_buckets.c.bucket_start).order_by(
                    performance_buckets.c.bucket_start
                )
            )
            .scalars()
            .first()
        )
    assert oldest is not None and oldest >= end - 3 * 3600


def test_two_summarisers_never_count_a_pair_twice(engine: Engine) -> None:
    world = World(engine)
    other = LabelledWindows(database=world.service.database, clock=world.clock)
    n = 0
    for step in range(6):
        now = world.clock.now
        ids = [f"p{n + i}" for i in range(50)]
        world.predict("clf", ids, list(np.linspace(now - 500, now, 50)))
        n += 50
        world.label("clf", [f"p{i}" for i in world.rng.choice(n, 30, replace=False)], [now] * 30)
        world.clock.now += 300
        end = world.clock.now
        first = world.service.evaluator.labelled if step % 2 else other
        second = other if step % 2 else world.service.evaluator.labelled
        config = world.config()
        first.summarize(config, window_start=end - 3600, window_end=end)
        for windows in (second, first):
            pairs = windows.window(config, start=end - 3600, end=end)
            assert as_rows(pairs, "clf") == world.expected("clf", end - 3600, end)


def test_a_build_in_progress_elsewhere_reads_the_join_and_an_abandoned_one_is_redone(
    engine: Engine,
) -> None:
    world = World(engine)
    ids = [f"r{i}" for i in range(100)]
    world.predict("clf", ids, list(np.linspace(START - 3000, START - 100, 100)))
    world.label("clf", ids, [START - 50] * 100)
    world.clock.now = START + 100
    with engine.begin() as connection:
        connection.execute(
            performance_watermarks.insert().values(
                model="clf",
                clock="prediction_time",
                prediction_seq=-5,
                label_seq=0,
                horizon=START - 20_000,
                building_since=START + 90,
            )
        )
    end = world.clock.now
    assert world.window("clf", end - 3600, end) == world.expected("clf", end - 3600, end)
    assert bucket_count(engine, "clf") == 0  # left to the other builder
    world.clock.now = START + 100 + 3600  # that builder never finished
    end = world.clock.now
    assert world.window("clf", end - 7200, end) == world.expected("clf", end - 7200, end)
    assert bucket_count(engine, "clf") == 100


def test_retention_drops_old_buckets(engine: Engine) -> None:
    world = World(engine)
    ids = [f"r{i}" for i in range(100)]
    world.predict("clf", ids, list(np.linspace(START - 3000, START - 100, 100)))
    world.label("clf", ids, [START - 50] * 100)
    world.clock.now = START + 100
    world.window("clf", START + 100 - 3600, START + 100)
    assert bucket_count(engine, "clf") == 100
    world.clock.now = START + 8 * 86400  # retention 7d by default
    world.service.apply_retention()
    assert bucket_count(engine, "clf") == 0


def test_a_summariser_overtaken_between_its_read_and_its_write_adds_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica B summarises while replica A holds rows it read: A must notice the moved mark."""
    from monitor.jobs import labelled_windows

    world = World(engine)
    other = LabelledWindows(database=world.service.database, clock=world.clock)
    config = world.config()
    ids = [f"r{i}" for i in range(100)]
    world.predict("clf", ids, list(np.linspace(START - 3000, START - 100, 100)))
    world.clock.now = START + 100
    ours = world.service.evaluator.labelled
    ours.summarize(config, window_start=START - 3500, window_end=START + 100)  # first build
    world.label("clf", ids, [START + 100] * 100)
    world.clock.now = START + 200
    read_pairs = labelled_windows.store.pairs_after
    overtaken = []

    def overtake(*args: Any, **kwargs: Any) -> Any:
        rows = read_pairs(*args, **kwargs)
        if not overtaken and kwargs["driver"] == "labels":
            overtaken.append(True)
            other.summarize(config, window_start=START - 3400, window_end=START + 200)
        return rows

    monkeypatch.setattr(labelled_windows.store, "pairs_after", overtake)
    ours.summarize(config, window_start=START - 3400, window_end=START + 200)
    monkeypatch.undo()
    assert overtaken and bucket_count(engine, "clf") == 100
    end = world.clock.now
    assert world.window("clf", end - 3600, end) == world.expected("clf", end - 3600, end)


@pytest.mark.parametrize("max_tracked", [100_000, 3])
def test_unmatched_labels_are_counted_as_predictions_arrive(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, max_tracked: int
) -> None:
    from monitor.jobs import unmatched

    monkeypatch.setattr(unmatched, "MAX_TRACKED", max_tracked)
    world = World(engine)
    counter = world.service.evaluator.unmatched

    def expected() -> int:
        return sum(
            1 for key in world.labels if key.startswith("clf/") and key not in world.predictions
        )

    n = 0
    for step in range(8):
        now = world.clock.now
        ids = [f"p{n + i}" for i in range(30)]
        world.predict("clf", ids, list(np.linspace(now - 300, now, 30)))
        n += 30
        early = [f"p{n + i}" for i in range(int(world.rng.integers(0, 6)))]  # predicted later
        world.label("clf", ids[::2] + early + [f"ghost{step}"], [now] * (15 + len(early) + 1))
        world.label("reg", [f"other{step}"], [now])  # another model's: never counted here
        assert counter.count("clf") == expected()
        world.clock.now += 40 if step % 2 else 10  # sometimes past the lag, sometimes not
    assert expected() >= 8
    world.clock.now += 60  # every label checked while its prediction is there
    assert counter.count("clf") == expected()
    # Retention deletes the oldest predictions and labels: some kept labels lose their
    # prediction and are unmatched again.
    world.clock.now = START + 7 * 86400 + 150
    cutoff = START + 150
    before = expected()
    deleted, _ = world.service.apply_retention()
    assert deleted
    world.predictions = {k: r for k, r in world.predictions.items() if r["timestamp"] >= cutoff}
    world.labels = {k: r for k, r in world.labels.items() if r["timestamp"] >= cutoff}
    assert expected() != before
    assert counter.count("clf") == expected()
