"""Drift evaluation of one model: read the window, compare with the reference, store, export.

Windows of up to ``drift.exact_max_samples`` records are compared exactly. Larger ones are
evaluated from per-time-bucket histograms on the reference profiles' grids, which
``DriftEvaluator.summarize`` keeps up to date from the ingest log, so the cost of an
evaluation stays bounded however large the window grows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy import Connection

from monitor import __version__, codec
from monitor.config import ModelConfig
from monitor.config.digest import config_digest
from monitor.domain import Evaluation, Lineage, ReferenceBatch, ReferenceInfo, Window
from monitor.evaluation import (
    ReferenceProfiles,
    build_profiles,
    columns_from_rows,
    evaluate_drift,
    levels,
)
from monitor.evaluation.canary import compare_versions, lineage_versions, pick_from_counts
from monitor.evaluation.columns import Columns
from monitor.evaluation.document import from_document, to_document
from monitor.evaluation.evaluate import evaluate_drift_counts
from monitor.evaluation.folded_canary import CanaryFolder
from monitor.evaluation.folded_groups import GroupFolder
from monitor.evaluation.groups import (
    SegmentReference,
    evaluate_fairness,
    evaluate_segments,
    segment_references,
)
from monitor.evaluation.performance import calibrate, evaluate_performance, label_health
from monitor.evaluation.profiles import LABELLED
from monitor.group_metrics import GroupsCollector
from monitor.ingest.reference import digest_batch
from monitor.jobs.drift_histograms import DriftHistograms
from monitor.jobs.labelled_windows import LabelledWindows
from monitor.jobs.unmatched import UnmatchedLabels
from monitor.metrics import DriftCollector, Metrics
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

SaveReference = Callable[..., ReferenceInfo]
#: Records read and decoded at a time when a large window's segments, fairness and canary
#: comparison are folded (``evaluation.folded_groups``, ``folded_canary``): bounds memory, not
#: speed (see ``SUMMARY_CHUNK``).
FOLD_CHUNK = 5_000
#: (connection, config, evaluation, now, webhooks): ``webhooks=False`` queues no deliveries
OnEvaluation = Callable[[Connection, ModelConfig, Evaluation, float, bool], None]


def digest_rows(rows: Rows) -> str:
    """``sha256:`` and the hex SHA-256 of a window's stored records (their encoded features,
    predictions and scores), whatever order they were read in: an evaluation's lineage, so
    that a record changed or deleted under the window is told by ``monitor reproduce``."""
    each = sorted(
        hashlib.blake2b(codec.encode([features, prediction, scores]), digest_size=16).digest()
        for features, prediction, scores in zip(
            rows.features, rows.predictions, rows.scores, strict=True
        )
    )
    return "sha256:" + hashlib.sha256(b"".join(each)).hexdigest()


def _columns(config: ModelConfig, rows: Rows) -> Columns:
    """The rows' columns; the encoded feature objects are released once decoded, so they are
    not held through the statistics (a 100k window's are tens of MB)."""
    columns = columns_from_rows(
        config, rows.features, predictions=rows.predictions, labels=rows.labels
    )
    rows.features.clear()
    return columns


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
        # each model's segments' reference profiles, for the reference version they are of
        self._segments: dict[str, tuple[int, dict[str, SegmentReference]]] = {}
        self.histograms = DriftHistograms(database=database, clock=lambda: self.clock())
        self.labelled = LabelledWindows(database=database, clock=lambda: self.clock())
        self.unmatched = UnmatchedLabels(database=database, clock=lambda: self.clock())
        metrics.registry.register(DriftCollector(lambda: self.latest))
        metrics.registry.register(GroupsCollector(lambda: self.latest))

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
        now = self.clock() if at is None else at
        evaluation = self.compute(config, now=now)
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

    def compute(
        self,
        config: ModelConfig,
        *,
        now: float,
        reference_version: int | None = None,
        without_reference: bool = False,
        exact: bool | None = None,
        records_bounds: tuple[float, float] | None = None,
    ) -> Evaluation:
        """The evaluation as of ``now``, with its lineage; nothing is stored.

        ``reference_version`` compares with that stored reference instead of the newest;
        ``without_reference`` with none (an evaluation made before the model had one);
        ``exact`` forces the exact path (True) or the histograms' (False) instead of choosing
        by the window's size; ``records_bounds`` reads a ``window.records`` window as the
        records with prediction times in those bounds (both included) rather than the last N
        ingested (``jobs.reproduce`` replays an evaluation with them pinned).
        """
        model = config.name
        by_label_time = config.performance.window_by == "label_time"
        started = time.perf_counter()
        window_digest: str | None = None
        versions: dict[str, int] = {}
        with self.database.read() as connection:
            profiles = (
                None
                if without_reference
                else self.reference_profiles(connection, config, now, version=reference_version)
            )
            reference = (
                None
                if profiles is None or profiles.version == 0
                else repo.latest_reference(connection, model=model, version=profiles.version)
            )
            if exact is None:
                large = (
                    profiles is not None
                    and profiles.version > 0
                    and self._window_count(connection, config, now) > config.drift.exact_max_samples
                )
            else:
                large = not exact and profiles is not None and profiles.version > 0
            if not large:
                rows, window = self._current_rows(connection, config, now, records_bounds)
                window_digest = digest_rows(rows)
                versions = dict(Counter(v for v in rows.versions if v is not None))
        if large:
            assert profiles is not None
            evaluation = self._evaluate_from_histograms(config, profiles, now)
            window_predictions = window_scores = None
            with self.database.read() as connection:
                versions = windows.version_counts(
                    connection, model=model, start=evaluation.window.start, end=now
                )
        else:
            canary = (
                None
                if config.versions is None
                else compare_versions(
                    config,
                    profiles,
                    features=rows.features,
                    predictions=rows.predictions,
                    labels=rows.labels,
                    scores=rows.scores,
                    versions=rows.versions,
                    window=window,
                    evaluated_at=now,
                )
            )
            columns = _columns(config, rows)
            evaluation = evaluate_drift(config, profiles, columns, window=window, evaluated_at=now)
            evaluation = dataclasses.replace(evaluation, canary=canary)
            window_predictions, window_scores = rows.predictions, rows.scores
        if (
            not large
            and config.window.records is not None
            and not by_label_time
            and records_bounds is None
        ):
            # the pairs of the very records the drift counted (the last N ingested)
            pairs = self.labelled.last_records(config, count=config.window.records)
        elif records_bounds is not None:  # a records window read by its bounds, both included
            pairs = self.labelled.window(
                config, start=math.nextafter(records_bounds[0], -math.inf), end=records_bounds[1]
            )
        else:
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
                reference_accuracy=None if profiles is None else profiles.accuracy,
                reference_labelled=None if profiles is None else profiles.labelled,
                cache=None if profiles is None else profiles.null_cache,
                window_predictions=window_predictions,
                window_scores=window_scores,
            ),
            labels=label_health(predictions=evaluation.window.n, pairs=pairs, unmatched=unmatched),
            lineage=Lineage(
                config_digest=config_digest(config),
                reference_version=evaluation.reference_version,
                reference_digest=None if reference is None else reference.digest,
                window_n=evaluation.window.n,
                window_digest=window_digest,
                labelled=len(pairs),
                model_versions=lineage_versions(config, versions),
                monitor_version=__version__,
            ),
        )
        if large:
            assert profiles is not None
            evaluation = self._folded(config, profiles, versions, evaluation)
        elif config.segments or config.fairness is not None:
            evaluation = self._with_groups(config, profiles, columns, window_scores, evaluation)
        return dataclasses.replace(evaluation, duration_seconds=time.perf_counter() - started)

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

    def _with_groups(
        self,
        config: ModelConfig,
        profiles: ReferenceProfiles | None,
        columns: Columns,
        scores: list[bytes | None] | None,
        evaluation: Evaluation,
    ) -> Evaluation:
        """The evaluation with its segments and fairness (``evaluation.groups``)."""
        return dataclasses.replace(
            evaluation,
            segments=evaluate_segments(
                config,
                self._segment_references(config, profiles),
                columns,
                scores=scores,
                window=evaluation.window,
                evaluated_at=evaluation.evaluated_at,
            ),
            fairness=evaluate_fairness(config, profiles, columns),
        )

    def _folded(
        self,
        config: ModelConfig,
        profiles: ReferenceProfiles,
        versions: dict[str, int],
        evaluation: Evaluation,
    ) -> Evaluation:
        """A large window's segments, fairness and canary comparison: its records read once
        more, a chunk at a time, and folded (``evaluation.folded_groups``, ``folded_canary``).
        Nothing is read when the model declares none of them."""
        groups = (
            GroupFolder(config, profiles, self._segment_references(config, profiles))
            if config.segments or config.fairness is not None
            else None
        )
        picked = pick_from_counts(config, versions)
        canary = (
            None
            if picked is None
            else CanaryFolder(
                config,
                profiles,
                stable=picked[0],
                canary=picked[1],
                sample_size=config.drift.exact_max_samples,
            )
        )
        if groups is None and canary is None:
            return evaluation
        with self.database.read() as connection:
            for rows in windows.stream_rows_between(
                connection,
                model=config.name,
                start=evaluation.window.start,
                end=evaluation.window.end,
                regression=config.task == "regression",
                chunk=FOLD_CHUNK,
            ):
                # the encoded records, for the canary's sample: decoding releases the rows'
                features = [] if canary is None else list(rows.features)
                columns = _columns(config, rows)
                if groups is not None:
                    groups.add(columns, rows.scores)
                if canary is not None:
                    canary.add(
                        columns,
                        features=features,
                        predictions=rows.predictions,
                        labels=rows.labels,
                        scores=rows.scores,
                        versions=rows.versions,
                    )
                del rows, features, columns
        at = evaluation.evaluated_at
        return dataclasses.replace(
            evaluation,
            segments=() if groups is None else groups.segments(evaluation.window, at),
            fairness=() if groups is None else groups.fairness(),
            canary=None if canary is None else canary.result(evaluation.window, at),
        )

    def _segment_references(
        self, config: ModelConfig, profiles: ReferenceProfiles | None
    ) -> dict[str, SegmentReference]:
        """The segments' groups and reference profiles, built once per reference version from
        the stored reference's records (a previous-window reference has none: no drift)."""
        if not config.segments:
            return {}
        version = -1 if profiles is None else profiles.version
        cached = self._segments.get(config.name)
        if cached is not None and cached[0] == version and version > 0:
            return cached[1]
        reference = None
        if profiles is not None and profiles.version > 0:
            with self.database.read() as connection:
                rows = windows.reference_rows(
                    connection,
                    model=config.name,
                    version=profiles.version,
                    regression=config.task == "regression",
                )
            reference = _columns(config, rows)
        found = segment_references(config, profiles, reference)
        self._segments[config.name] = (version, found)
        return found

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
        nth = windows.nth_last_ts(connection, model=config.name, n=config.window.records)
        if nth is None:  # fewer records than the window holds: all of them
            nth = windows.earliest_ts(connection, model=config.name) or now
        # windows hold (start, end]: the start just before the N-th last record's time
        return math.nextafter(nth, -math.inf)

    def _evaluate_from_histograms(
        self, config: ModelConfig, profiles: ReferenceProfiles, now: float
    ) -> Evaluation:
        """The window's counts from the per-bucket histograms (``DriftHistograms``), the window
        cut exactly at its start and end."""
        self.histograms.summarize(config, profiles)
        with self.database.read() as connection:
            start = self._window_start(connection, config, now)
        counts = self.histograms.window_counts(config, profiles, start=start, end=now)
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
        """Bring the model's drift histograms up to date; the records added."""
        return self.histograms.summarize(config, profiles)

    def _current_rows(
        self,
        connection: Connection,
        config: ModelConfig,
        now: float,
        records_bounds: tuple[float, float] | None = None,
    ) -> tuple[Rows, Window]:
        regression = config.task == "regression"
        if config.window.records is not None and records_bounds is not None:
            first, last = records_bounds
            rows = windows.rows_between(
                connection,
                model=config.name,
                start=math.nextafter(first, -math.inf),
                end=last,
                regression=regression,
            )
            return rows, Window(rows.first_ts or now, rows.last_ts or now, len(rows))
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
        self, connection: Connection, config: ModelConfig, now: float, version: int | None = None
    ) -> ReferenceProfiles | None:
        """The profiles of the reference in force (or of stored reference ``version``),
        computed once per version and stored."""
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
            return build_profiles(config, columns, version=0, scores=rows.scores)
        info = repo.latest_reference(connection, model=config.name, version=version)
        if version is not None:
            if info is None:
                raise LookupError(f"model {config.name!r} has no reference version {version}")
        elif info is None and reference is not None and reference.first_records is not None:
            info = self._reference_from_first_records(connection, config, reference.first_records)
        if info is None:
            return None
        cached = self._profiles.get(config.name)
        if cached is not None and cached.version == info.version:
            return cached
        blobs = load_profiles(connection, model=config.name, version=info.version)
        if blobs is not None and LABELLED not in blobs and levels.resamples(config):
            blobs = None  # stored before labelled predictions were kept: build them again
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
                scores=rows.scores,
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
