"""Composition root: build storage, validators, metrics and jobs from a Config."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, Engine, text

from monitor.config import Config, ModelConfig
from monitor.domain import (
    Evaluation,
    IngestResult,
    ModelCounts,
    ReferenceBatch,
    ReferenceInfo,
    Window,
)
from monitor.errors import (
    ConfigError,
    ConfigIssue,
    InvalidRecordsError,
    ModelNotFoundError,
    PayloadError,
)
from monitor.evaluation import ReferenceProfiles, build_profiles, columns_from_rows, evaluate_drift
from monitor.evaluation.document import from_document, to_document
from monitor.evaluation.evaluate import evaluate_drift_counts
from monitor.evaluation.histograms import summarize
from monitor.ingest import RecordValidator, decode_records, parse_reference_csv, validate_reference
from monitor.jobs import Scheduler
from monitor.metrics import DriftCollector, Metrics
from monitor.storage import create_database_engine, migrate, windows
from monitor.storage import histograms as hist
from monitor.storage import repository as repo
from monitor.storage.evaluations import (
    evaluation_history,
    latest_evaluation,
    load_profiles,
    store_evaluation,
    store_profiles,
)
from monitor.storage.group_commit import GroupCommitWriter
from monitor.storage.windows import Rows

log = logging.getLogger(__name__)
DEFAULT_DATABASE_URL = "sqlite:///./monitor.db"
#: Records younger than this are left for the next summarisation (see Service.summarize).
SUMMARY_LAG_SECONDS = 30.0
SUMMARY_CHUNK = 50_000


def database_url(config: Config, environ: dict[str, str] | None = None) -> str:
    """``MONITOR_DATABASE_URL`` when set, else ``storage.url``, else the SQLite default."""
    env = os.environ if environ is None else environ
    return env.get("MONITOR_DATABASE_URL") or config.storage.url or DEFAULT_DATABASE_URL


class Service:
    """Everything the API and the jobs act on. ``start()`` migrates and loads references."""

    def __init__(
        self,
        config: Config,
        *,
        engine: Engine | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.engine = engine or create_database_engine(database_url(config))
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, [m.name for m in config.models])
        self.clock = clock
        self.validators = {m.name: RecordValidator(m) for m in config.models}
        self.scheduler = Scheduler()
        self.started = False
        self.latest: dict[str, Evaluation] = {}
        self.registry.register(DriftCollector(lambda: self.latest))
        self._profiles: dict[str, ReferenceProfiles] = {}
        # SQLite has one writer at a time; queueing writers on a lock here hands the database
        # over at once, where SQLite's own busy handler would make them sleep and poll.
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()
        )
        self.writer = GroupCommitWriter(self.engine, self._write_lock)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, *, run_jobs: bool = True) -> None:
        migrate(self.engine)
        for model in self.config.models:
            if model.reference is not None and model.reference.path is not None:
                self._load_reference_file(model, model.reference.path)
            with self.engine.connect() as connection:
                info = repo.latest_reference(connection, model=model.name)
                document = latest_evaluation(connection, model=model.name)
            if info is not None:
                self.metrics.reference_version.labels(model.name).set(info.version)
            if document is not None:
                self.latest[model.name] = from_document(document)
        if run_jobs:
            for model in self.config.models:
                self.scheduler.every(
                    model.schedule,
                    functools.partial(self.evaluate, model.name),
                    name=f"evaluate:{model.name}",
                )
            self.scheduler.every(
                self.config.storage.retention_check,
                self.apply_retention,
                name="retention",
                run_now=True,
            )
            self.scheduler.start()
        self.started = True

    def stop(self) -> None:
        self.scheduler.stop()
        self.engine.dispose()
        self.started = False

    # -- lookups ---------------------------------------------------------------------------

    def model(self, name: str) -> ModelConfig:
        model = self.config.model(name)
        if model is None:
            raise ModelNotFoundError(name)
        return model

    def database_ready(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            log.warning("database is not reachable", exc_info=True)
            return False

    def counts(self, model: str) -> ModelCounts:
        self.model(model)
        with self.engine.connect() as connection:
            return repo.model_counts(connection, model=model)

    def reference(self, model: str) -> ReferenceInfo | None:
        self.model(model)
        with self.engine.connect() as connection:
            return repo.latest_reference(connection, model=model)

    # -- ingest ----------------------------------------------------------------------------

    def store_predictions(self, model: str, records: list[Any]) -> IngestResult:
        """Validate and store a batch of prediction records, all or nothing."""
        write = self.prepare_predictions(model, records)
        with self._write_lock, self.engine.begin() as connection:
            result = write(connection)
        return self._counted_predictions(model, result)

    async def store_predictions_async(self, model: str, records: list[Any]) -> IngestResult:
        """As ``store_predictions``, committing together with concurrent requests."""
        result = await self.writer.submit(self.prepare_predictions(model, records))
        return self._counted_predictions(model, result)

    def store_labels(self, model: str, records: list[Any]) -> IngestResult:
        write = self.prepare_labels(model, records)
        with self._write_lock, self.engine.begin() as connection:
            result = write(connection)
        return self._counted_labels(model, result)

    async def store_labels_async(self, model: str, records: list[Any]) -> IngestResult:
        result = await self.writer.submit(self.prepare_labels(model, records))
        return self._counted_labels(model, result)

    def prepare_predictions(
        self, model: str, records: list[Any]
    ) -> Callable[[Connection], IngestResult]:
        """Validate a batch now (raising ``InvalidRecordsError``) and return its write: a
        function that stores it on a connection, inside the caller's transaction."""
        received_at = self.clock()
        batch = self._validate(
            model, records, lambda v: v.predictions(records, received_at=received_at)
        )
        return functools.partial(
            repo.insert_predictions, model=model, batch=batch, received_at=received_at
        )

    def prepare_labels(
        self, model: str, records: list[Any]
    ) -> Callable[[Connection], IngestResult]:
        received_at = self.clock()
        batch = self._validate(model, records, lambda v: v.labels(records, received_at=received_at))
        return functools.partial(
            repo.upsert_labels, model=model, batch=batch, received_at=received_at
        )

    def _counted_predictions(self, model: str, result: IngestResult) -> IngestResult:
        self.metrics.records_ingested.labels(model).inc(result.accepted)
        self.metrics.records_duplicate.labels(model).inc(result.duplicates)
        return result

    def _counted_labels(self, model: str, result: IngestResult) -> IngestResult:
        self.metrics.labels_ingested.labels(model).inc(result.accepted)
        self.metrics.label_corrections.labels(model).inc(result.corrections)
        return result

    def store_reference(self, model: str, records: list[Any], *, source: str) -> ReferenceInfo:
        batch = self._validate(model, records, lambda v: validate_reference(records, v))
        return self._save_reference(model, batch, source=source, digest=_digest_batch(batch))

    def parse_reference_csv(self, model: str, text: str) -> list[Any]:
        self.model(model)
        return parse_reference_csv(text, self.validators[model])

    def reject(self, model: str, reason: str, count: int = 1) -> None:
        """Count refused records; only configured models get a label (bounded cardinality)."""
        if model in self.validators:
            self.metrics.records_rejected.labels(model, reason).inc(count)

    def _validate(
        self, model: str, records: list[Any], validate: Callable[[RecordValidator], Any]
    ) -> Any:
        self.model(model)
        try:
            return validate(self.validators[model])
        except InvalidRecordsError as exc:
            self.reject(model, "invalid_record", len({i.index for i in exc.issues}))
            raise

    def _save_reference(
        self, model: str, batch: ReferenceBatch, *, source: str, digest: str
    ) -> ReferenceInfo:
        with self._write_lock, self.engine.begin() as connection:
            info = repo.store_reference(
                connection, model=model, batch=batch, source=source, digest=digest
            )
        self.metrics.reference_version.labels(model).set(info.version)
        return info

    def _load_reference_file(self, model: ModelConfig, path: Path) -> None:
        """Store the configured reference file as a new version when its content changed."""
        data = path.read_bytes()
        validator = self.validators[model.name]
        try:
            if path.suffix.lower() == ".csv":
                records = parse_reference_csv(data.decode("utf-8-sig"), validator)
            elif path.suffix.lower() == ".json":
                records = decode_records(data, "application/json")
            else:
                records = decode_records(data, "application/x-ndjson")
            batch = validate_reference(records, validator)
        except InvalidRecordsError as exc:
            raise ConfigError(
                [
                    ConfigIssue(
                        str(path),
                        None,
                        f"record {issue.index}.{issue.field}".rstrip("."),
                        issue.reason,
                    )
                    for issue in exc.issues
                ]
            ) from None
        except (PayloadError, UnicodeDecodeError) as exc:
            raise ConfigError([ConfigIssue(str(path), None, "", str(exc))]) from None
        digest = _digest_batch(batch)
        with self.engine.connect() as connection:
            latest = repo.latest_reference(connection, model=model.name)
        if latest is not None and latest.digest == digest:
            return
        info = self._save_reference(model.name, batch, source=f"file:{path}", digest=digest)
        log.info(
            "model %s: reference version %d loaded from %s (%d records)",
            model.name,
            info.version,
            path,
            info.n,
        )

    # -- drift ------------------------------------------------------------------------------

    def evaluate(self, model: str) -> Evaluation:
        """Evaluate the model's current window against its reference; store and export it.

        Windows of up to ``drift.exact_max_samples`` records are compared exactly; larger ones
        from per-bucket histograms (see ``_evaluate_from_histograms``).
        """
        config = self.model(model)
        started = time.perf_counter()
        now = self.clock()
        with self.engine.connect() as connection:
            profiles = self._reference_profiles(connection, config, now)
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
        else:
            columns = columns_from_rows(
                config, rows.features, predictions=rows.predictions, labels=rows.labels
            )
            evaluation = evaluate_drift(config, profiles, columns, window=window, evaluated_at=now)
        evaluation = dataclasses.replace(evaluation, duration_seconds=time.perf_counter() - started)
        with self._write_lock, self.engine.begin() as connection:
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
        self.latest[model] = evaluation
        self.metrics.observe_evaluation(evaluation)
        return evaluation

    def _window_count(self, connection: Connection, config: ModelConfig, now: float) -> int:
        if config.window.duration is not None:
            start = now - config.window.duration.total_seconds()
            return windows.count_between(connection, model=config.name, start=start, end=now)
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
        with self.engine.connect() as connection:
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
            tail = hist.rows_after(
                connection,
                model=config.name,
                after_seq=mark,
                limit=10**9,
                regression=config.task == "regression",
            )
        tail = [row for row in tail if start <= row[1] <= now]
        if tail:
            extra = summarize(
                config,
                profiles,
                [r[1] for r in tail],
                [r[3] for r in tail],
                [r[4] for r in tail],
                bucket_seconds=bucket,
            )
            for (name, _), found in extra.items():
                if name in counts:
                    counts[name].add(found)
                else:
                    counts[name] = found
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
            with self.engine.connect() as connection:
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
            additions = summarize(
                config,
                profiles,
                [r[1] for r in rows],
                [r[3] for r in rows],
                [r[4] for r in rows],
                bucket_seconds=bucket,
            )
            with self._write_lock, self.engine.begin() as connection:
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

    def latest_evaluation(self, model: str) -> dict[str, Any] | None:
        self.model(model)
        with self.engine.connect() as connection:
            return latest_evaluation(connection, model=model)

    def evaluation_history(
        self, model: str, *, since: float | None, until: float | None, limit: int
    ) -> list[dict[str, Any]]:
        self.model(model)
        with self.engine.connect() as connection:
            return evaluation_history(
                connection, model=model, since=since, until=until, limit=limit
            )

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

    def _reference_profiles(
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
            columns = columns_from_rows(
                config, rows.features, predictions=rows.predictions, labels=rows.labels
            )
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
            columns = columns_from_rows(
                config, rows.features, predictions=rows.predictions, labels=rows.labels
            )
            profiles = build_profiles(config, columns, version=info.version)
            with self._write_lock, self.engine.begin() as writer:
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
        )
        return self._save_reference(
            config.name, batch, source=f"first_records:{count}", digest=_digest_batch(batch)
        )

    # -- jobs ------------------------------------------------------------------------------

    def apply_retention(self) -> tuple[int, int]:
        cutoff = self.clock() - self.config.storage.retention.total_seconds()
        deleted_predictions = deleted_labels = 0
        while True:
            with self._write_lock, self.engine.begin() as connection:
                chunk = repo.delete_older_than(connection, cutoff=cutoff)
            deleted_predictions += chunk[0]
            deleted_labels += chunk[1]
            if chunk == (0, 0):
                break
        with self._write_lock, self.engine.begin() as connection:
            hist.delete_buckets_before(connection, cutoff=cutoff)
        self.metrics.retention_deleted.labels("predictions").inc(deleted_predictions)
        self.metrics.retention_deleted.labels("labels").inc(deleted_labels)
        if deleted_predictions or deleted_labels:
            log.info(
                "retention: deleted %d predictions and %d labels older than %s",
                deleted_predictions,
                deleted_labels,
                self.config.storage.retention,
            )
        return deleted_predictions, deleted_labels


def _digest_batch(batch: ReferenceBatch) -> str:
    """A content digest of a reference, so an unchanged file is not stored again."""
    digest = hashlib.sha256()
    for row in zip(
        batch.features,
        batch.prediction_classes,
        batch.prediction_values,
        batch.label_classes,
        batch.label_values,
        strict=False,
    ):
        digest.update(orjson.dumps([row[0].decode(), *row[1:]]))
    return digest.hexdigest()
