"""Drift evaluation of one model: read the window, compare with the reference, store, export.

Windows of up to ``drift.exact_max_samples`` records are compared exactly. Larger ones are
evaluated from per-time-bucket histograms on the reference profiles' grids, which
``DriftEvaluator.summarize`` keeps up to date from the ingest log, so the cost of an
evaluation stays bounded however large the window grows.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

from sqlalchemy import Connection

from monitor.config import ModelConfig
from monitor.domain import Evaluation, ReferenceBatch, ReferenceInfo, Window
from monitor.evaluation import ReferenceProfiles, build_profiles, columns_from_rows, evaluate_drift
from monitor.evaluation.columns import Columns
from monitor.evaluation.counts import Counts
from monitor.evaluation.document import from_document, to_document
from monitor.evaluation.evaluate import evaluate_drift_counts
from monitor.evaluation.histograms import summarize
from monitor.evaluation.performance import calibrate, evaluate_performance, label_health
from monitor.ingest.reference import digest_batch
from monitor.jobs.labelled_windows import LabelledWindows
from monitor.jobs.unmatched import UnmatchedLabels
from monitor.metrics import DriftCollector, Metrics
from monitor.storage import histograms as hist
from monitor.storage import repository as repo
from monitor.storage import windows
from monitor.storage.database import Database
from monitor.storage.evaluations import (
    latest_evaluation,
    load_profiles,
    store_evaluation,
    store_profiles,
)
from monitor.storage.windows import Rows

#: Records younger than this are left for the next summarisation (see DriftEvaluator.summarize).
SUMMARY_LAG_SECONDS = 30.0
#: Records read and decoded at a time: bounds memory, not speed. A read record is about
#: 0.5 KB of small Python objects (bench/soak.py: chunks of 20,000 left Python's object
#: allocator 40 MB larger, fragmented, after the first evaluations).
SUMMARY_CHUNK = 5_000

SaveReference = Callable[..., ReferenceInfo]
#: (connection, config, evaluation, now, webhooks): ``webhooks=False`` queues no deliveries
OnEvaluation = Callable[[Connection, ModelConfig, Evaluation, float, bool], None]


def _columns(config: ModelConfig, rows: Rows) -> Columns:
    """The rows' columns; the encoded feature objects are released once decoded, so they are
    not held through the statistics (a 100k window's are tens of MB)."""
    columns = columns_from_rows(
        config, rows.features, predictions=rows.predictions, labels=rows.labels
    )
    rows.features.clear()
    return columns


def _bucket_counts(
    config: ModelConfig, profiles: ReferenceProfiles, rows: list[hist.AfterRow], bucket: float
) -> dict[tuple[str, float], Counts]:
    """Per (feature, bucket start) counts of ``rows_after`` rows on the profiles' grids."""
    return summarize(
        config,
        profiles,
        [r[1] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
        bucket_seconds=bucket,
    )


class DriftEvaluator:
    """Evaluates models and keeps the latest evaluation of each in memory for the metrics."""

    def __init__(
        self,
        *,
        database: Database,
        clock: Callable[[], float],
        metrics: Metrics,
        save_reference: SaveReference,
        on_evaluation: OnEvaluation | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.metrics = metrics
        self._save_reference = save_reference
        self._on_evaluation = on_evaluation
        self.latest: dict[str, Evaluation] = {}
        self._profiles: dict[str, ReferenceProfiles] = {}
        self.labelled = LabelledWindows(database=database, clock=lambda: self.clock())
        self.unmatched = UnmatchedLabels(database=database, clock=lambda: self.clock())
        metrics.registry.register(DriftCollector(lambda: self.latest))

    def evaluate(
        self,
        config: ModelConfig,
        *,
        at: float | None = None,
        webhooks: bool = True,
        guard: Callable[[Connection], None] | None = None,
    ) -> Evaluation:
        """Evaluate the model's current window against its reference; store and export it.

        Windows of up to ``drift.exact_max_samples`` records are compared exactly; larger ones
        from per-bucket histograms (see ``_evaluate_from_histograms``). ``at`` evaluates as of
        that time instead of the clock's (a replay's data time); ``webhooks=False`` records
        the alert events without queueing their deliveries. ``guard`` runs first in the
        transaction that stores the evaluation; what it raises rolls the whole store back (a
        scheduled evaluation marks its tick done there, see ``jobs.ticks``).
        """
        model = config.name
        started = time.perf_counter()
        now = self.clock() if at is None else at
        with self.database.read() as connection:
            profiles = self.reference_profiles(connection, config, now)
            large = (
                profiles is not None
                and profiles.version > 0
                and self._window_count(connection, config, now) > config.drift.exact_max_samples
            )
            if not large:
                rows, window = self._current_rows(connection, config, now)
        if large:
            assert profiles is not None
            evaluation = self._evaluate_from_histograms(config, profiles, now)
            window_predictions = window_scores = None
        else:
            columns = _columns(config, rows)
            evaluation = evaluate_drift(config, profiles, columns, window=window, evaluated_at=now)
            window_predictions, window_scores = rows.predictions, rows.scores
        pairs = self.labelled.window(
            config, start=evaluation.window.start, end=evaluation.window.end
        )
        unmatched = self.unmatched.count(model)
        evaluation = dataclasses.replace(
            evaluation,
            performance=evaluate_performance(
                config,
                pairs=pairs,
                calibration=None if profiles is None else profiles.calibration,
                window_predictions=window_predictions,
                window_scores=window_scores,
            ),
            labels=label_health(predictions=evaluation.window.n, pairs=pairs, unmatched=unmatched),
        )
        evaluation = dataclasses.replace(evaluation, duration_seconds=time.perf_counter() - started)
        with self.database.write() as connection:
            if guard is not None:
                guard(connection)
            store_evaluation(
                connection,
                model=model,
                created_at=now,
                window_start=evaluation.window.start,
                window_end=evaluation.window.end,
                n=evaluation.window.n,
                reference_version=evaluation.reference_version,
                document=to_document(evaluation),
            )
            if self._on_evaluation is not None:  # alerts: in the same transaction
                self._on_evaluation(connection, config, evaluation, now, webhooks)
        self.latest[model] = evaluation
        self.metrics.observe_evaluation(evaluation)
        return evaluation

    def adopt_stored(self, connection: Connection, config: ModelConfig) -> Evaluation | None:
        """Take the model's latest stored evaluation as this replica's latest when it is
        newer than the one held (another replica evaluated the last tick): every replica's
        gauges then describe the same evaluation, a period late at most. The evaluation
        adopted, or None."""
        document = latest_evaluation(connection, model=config.name)
        if document is None:
            return None
        stored = from_document(document)
        held = self.latest.get(config.name)
        if held is not None and held.evaluated_at >= stored.evaluated_at:
            return None
        self.latest[config.name] = stored
        self.metrics.last_evaluation.labels(config.name).set(stored.evaluated_at)
        return stored

    def _window_count(self, connection: Connection, config: ModelConfig, now: float) -> int:
        if config.window.duration is not None:
            start = now - config.window.duration.total_seconds()
            return windows.count_between(
                connection,
                model=config.name,
                start=start,
                end=now,
                limit=config.drift.exact_max_samples,
            )
        assert config.window.records is not None
        return config.window.records

    def _window_start(self, connection: Connection, config: ModelConfig, now: float) -> float:
        if config.window.duration is not None:
            return now - config.window.duration.total_seconds()
        assert config.window.records is not None
        return windows.nth_last_ts(connection, model=config.name, n=config.window.records) or now

    def _evaluate_from_histograms(
        self, config: ModelConfig, profiles: ReferenceProfiles, now: float
    ) -> Evaluation:
        """Merge the per-bucket histograms of the window's whole buckets, plus the records not
        yet summarised. The window then starts at the first bucket boundary at or after its
        nominal start (buckets are ``drift.bucket`` long)."""
        self.summarize(config, profiles)
        bucket = config.drift.bucket.total_seconds()
        kinds = {name: "numeric" for name in profiles.numeric}
        kinds.update({name: "categorical" for name in profiles.categorical})
        kinds.pop("__label__", None)
        with self.database.read() as connection:
            start = math.ceil(self._window_start(connection, config, now) / bucket) * bucket
            mark = hist.watermark(connection, model=config.name, version=profiles.version)
            counts = hist.merged_counts(
                connection,
                model=config.name,
                version=profiles.version,
                start=start,
                end=now,
                kinds=kinds,
            )
            # The records not summarised yet (the last SUMMARY_LAG_SECONDS or so), counted
            # a chunk at a time so that memory stays bounded however fast they arrive.
            after = mark
            while True:
                tail = hist.rows_after(
                    connection,
                    model=config.name,
                    after_seq=after,
                    limit=SUMMARY_CHUNK,
                    regression=config.task == "regression",
                )
                if not tail:
                    break
                after = tail[-1][0]
                inside = [row for row in tail if start <= row[1] <= now]
                if inside:
                    extra = _bucket_counts(config, profiles, inside, bucket)
                    for (name, _), found in extra.items():
                        if name in counts:
                            counts[name].add(found)
                        else:
                            counts[name] = found
                if len(tail) < SUMMARY_CHUNK:
                    break
                del tail, inside  # one chunk alive at a time, not two while the next is read
        n = 0
        for found in counts.values():
            if found.numeric is not None:
                n = int(found.numeric.sum()) + found.missing
                break
            if found.categories is not None:
                n = sum(found.categories.values()) + found.missing
        return evaluate_drift_counts(
            config, profiles, counts, window=Window(start, now, n), evaluated_at=now
        )

    def summarize(self, config: ModelConfig, profiles: ReferenceProfiles) -> int:
        """Bring the model's histograms up to date with its ingest log; return records added.

        Records are taken in ingest order, and only those received ``SUMMARY_LAG_SECONDS``
        ago or earlier, so a transaction still in flight on another replica (whose sequence
        number may be lower) is never skipped. Counting happens outside the write lock; the
        write re-checks the watermark, so concurrent summarisers never count a record twice.
        """
        total = 0
        regression = config.task == "regression"
        bucket = config.drift.bucket.total_seconds()
        while True:
            cutoff = self.clock() - SUMMARY_LAG_SECONDS
            with self.database.read() as connection:
                mark = hist.watermark(connection, model=config.name, version=profiles.version)
                rows = hist.rows_after(
                    connection,
                    model=config.name,
                    after_seq=mark,
                    limit=SUMMARY_CHUNK,
                    regression=regression,
                )
                connection.commit()
            ready = 0
            while ready < len(rows) and rows[ready][2] <= cutoff:
                ready += 1
            rows = rows[:ready]
            if not rows:
                return total
            additions = _bucket_counts(config, profiles, rows, bucket)
            with self.database.write() as connection:
                current = hist.watermark(
                    connection, model=config.name, version=profiles.version, lock=True
                )
                if current != mark:
                    continue  # another summariser moved on first: count again from its mark
                hist.add_to_buckets(
                    connection, model=config.name, version=profiles.version, additions=additions
                )
                hist.set_watermark(
                    connection, model=config.name, version=profiles.version, seq=rows[-1][0]
                )
            total += len(rows)
            if ready < SUMMARY_CHUNK:
                return total

    def _current_rows(
        self, connection: Connection, config: ModelConfig, now: float
    ) -> tuple[Rows, Window]:
        regression = config.task == "regression"
        if config.window.duration is not None:
            start = now - config.window.duration.total_seconds()
            rows = windows.rows_between(
                connection, model=config.name, start=start, end=now, regression=regression
            )
            return rows, Window(start, now, len(rows))
        assert config.window.records is not None
        rows = windows.last_rows(
            connection, model=config.name, count=config.window.records, regression=regression
        )
        return rows, Window(rows.first_ts or now, rows.last_ts or now, len(rows))

    def reference_profiles(
        self, connection: Connection, config: ModelConfig, now: float
    ) -> ReferenceProfiles | None:
        """The profiles of the reference in force, computed once per version and stored."""
        regression = config.task == "regression"
        reference = config.reference
        if reference is not None and reference.previous_window:
            if config.window.duration is not None:
                length = config.window.duration.total_seconds()
                rows = windows.rows_between(
                    connection,
                    model=config.name,
                    start=now - 2 * length,
                    end=now - length,
                    regression=regression,
                )
            else:
                assert config.window.records is not None
                rows = windows.last_rows(
                    connection,
                    model=config.name,
                    count=config.window.records,
                    skip=config.window.records,
                    regression=regression,
                )
            if not len(rows):
                return None
            columns = _columns(config, rows)
            return build_profiles(config, columns, version=0)
        info = repo.latest_reference(connection, model=config.name)
        if info is None and reference is not None and reference.first_records is not None:
            info = self._reference_from_first_records(connection, config, reference.first_records)
        if info is None:
            return None
        cached = self._profiles.get(config.name)
        if cached is not None and cached.version == info.version:
            return cached
        blobs = load_profiles(connection, model=config.name, version=info.version)
        if blobs is not None:
            profiles = ReferenceProfiles.from_blobs(version=info.version, n=info.n, blobs=blobs)
        else:
            rows = windows.reference_rows(
                connection, model=config.name, version=info.version, regression=regression
            )
            columns = _columns(config, rows)
            profiles = build_profiles(
                config,
                columns,
                version=info.version,
                calibration=calibrate(config, rows.labels, rows.scores),
            )
            with self.database.write() as writer:
                store_profiles(
                    writer, model=config.name, version=info.version, blobs=profiles.to_blobs()
                )
        self._profiles[config.name] = profiles
        return profiles

    def _reference_from_first_records(
        self, connection: Connection, config: ModelConfig, count: int
    ) -> ReferenceInfo | None:
        regression = config.task == "regression"
        rows = windows.first_rows(connection, model=config.name, count=count, regression=regression)
        if len(rows) < count:
            return None
        batch = ReferenceBatch(
            features=rows.features,
            prediction_classes=[None if regression else p for p in rows.predictions],
            prediction_values=[p if regression else None for p in rows.predictions],
            label_classes=[None if regression else label for label in rows.labels],
            label_values=[label if regression else None for label in rows.labels],
            scores=rows.scores,
        )
        return self._save_reference(
            config.name, batch, source=f"first_records:{count}", digest=digest_batch(batch)
        )
