"""Composition root: build storage, validators, metrics and jobs from a Config."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, Engine

from monitor.config import Config, ModelConfig
from monitor.domain import (
    Evaluation,
    IngestResult,
    ModelCounts,
    PredictionBatch,
    ReferenceBatch,
    ReferenceInfo,
)
from monitor.errors import (
    ConfigError,
    ConfigIssue,
    InvalidRecordsError,
    ModelNotFoundError,
    PayloadError,
    PayloadTooLargeError,
    RouteNotFoundError,
    StorageError,
)
from monitor.evaluation import export
from monitor.ingest import (
    RecordValidator,
    chunked,
    decode_records,
    reference_batch,
    validate_reference,
)
from monitor.ingest.fast import FastPredictionDecoder
from monitor.ingest.payload import Payload
from monitor.ingest.reference import digest_batch
from monitor.jobs import Scheduler
from monitor.jobs.alerting import Alerting
from monitor.jobs.cloudevents import EXPIRY_INTERVAL, CloudEventPairing
from monitor.jobs.evaluate import DriftEvaluator
from monitor.jobs.reproduce import Reproduction, reproduce
from monitor.jobs.ticks import EVALUATION_THREADS, EvaluationTicks
from monitor.metrics import Metrics
from monitor.storage import alerts as alert_store
from monitor.storage import create_database_engine, labelled, migrate, windows
from monitor.storage import deliveries as outbox
from monitor.storage import histograms as hist
from monitor.storage import repository as repo
from monitor.storage.database import Database
from monitor.storage.evaluations import (
    evaluation_history,
    latest_evaluation,
)
from monitor.storage.group_commit import GroupCommitWriter
from monitor.storage.unavailable import unavailable_reason
from monitor.webhooks.bodies import Renderer
from monitor.webhooks.events import webhook_test_event
from monitor.webhooks.sender import WebhookSender

log = logging.getLogger(__name__)
DEFAULT_DATABASE_URL = "sqlite:///./monitor.db"
#: Request bodies at least this large are decoded off the event loop (store_predictions_body).
THREAD_DECODE_BYTES = 64 * 1024


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
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(
            self.registry, [m.name for m in config.models], [w.name for w in config.webhooks]
        )
        self.database = Database(
            engine or create_database_engine(database_url(config)),
            on_error=lambda kind: self.metrics.database_errors.labels(kind).inc(),
        )
        self.clock = clock
        skew = config.server.max_timestamp_skew.total_seconds()
        self.validators = {
            m.name: RecordValidator(m, max_future_seconds=skew) for m in config.models
        }
        self._fast_decoders = {
            m.name: FastPredictionDecoder(m, max_future_seconds=skew) for m in config.models
        }
        self.scheduler = Scheduler(pools={"evaluations": EVALUATION_THREADS})
        self.started = False
        #: reference files read ahead of start() (read_reference_files), by model
        self._reference_files: dict[str, tuple[ReferenceBatch, str]] = {}
        self.writer = GroupCommitWriter(self.database)
        self._decode_thread = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self.webhooks = WebhookSender(
            database=self.database,
            routes={w.name: w for w in config.webhooks},
            metrics=self.metrics,
            clock=clock,
        )
        self.renderer = Renderer({w.name: w for w in config.webhooks})
        self.alerting = Alerting(
            models=config.models,
            routes={w.name: w for w in config.webhooks},
            metrics=self.metrics,
            renderer=self.renderer,
        )
        self.evaluator = DriftEvaluator(
            database=self.database,
            clock=clock,
            metrics=self.metrics,
            save_reference=self._save_reference,
            on_evaluation=self.alerting.apply,
        )
        #: the scheduled evaluations: one replica evaluates each (model, tick)
        self.ticks = EvaluationTicks(
            database=self.database,
            clock=clock,
            evaluate=self.evaluator.evaluate,
            adopt=self._adopt_stored,
        )
        self.cloudevents = CloudEventPairing(
            database=self.database,
            clock=clock,
            pair_timeout=config.server.cloudevents.pair_timeout,
            metrics=self.metrics,
            prepare_predictions=self.prepare_predictions,
            prepare_labels=self.prepare_labels,
            counted_predictions=self._counted_predictions,
            counted_labels=self._counted_labels,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, *, run_jobs: bool = True) -> None:
        migrate(self.engine)
        for model in self.config.models:
            if model.reference is not None and model.reference.path is not None:
                self._load_reference_file(
                    model, model.reference.path, written=model.reference.written_path
                )
            # the gauges from what is stored (reference version, latest evaluation, alert
            # states) from the start, as each tick's run does afterwards
            has_reference = self._adopt_stored(model)
            if has_reference and (model.reference is None or not model.reference.previous_window):
                # the reference's profiles, loaded (or built) once now rather than by the first
                # evaluation
                with self.database.read() as connection:
                    self.evaluator.reference_profiles(connection, model, self.clock())
        if run_jobs:
            if self.database.is_sqlite:
                self.scheduler.every(
                    timedelta(seconds=1),
                    self.database.checkpoint,
                    name="sqlite-checkpoint",
                )
            log.info("replica %s: scheduled evaluations claim their ticks", self.ticks.replica)
            for model in self.config.models:
                self.scheduler.every(
                    model.schedule,
                    functools.partial(self.ticks.run, model),
                    name=f"evaluate:{model.name}",
                    align=True,
                    pool="evaluations",
                )
            if self.config.webhooks:  # the outbox: deliveries left pending by a stop go now
                self.scheduler.every(
                    timedelta(seconds=1), self.webhooks.run_once, name="webhooks", run_now=True
                )
            self.scheduler.every(
                self.config.storage.retention_check,
                self.apply_retention,
                name="retention",
                run_now=True,
            )
            self.scheduler.every(
                EXPIRY_INTERVAL, self.cloudevents.expire, name="cloudevents-expiry", run_now=True
            )
            self.scheduler.start()
        self.started = True

    def stop(self) -> None:
        self.scheduler.stop()  # waits for a running job, e.g. a webhook attempt in flight
        self._decode_thread.shutdown(wait=True)  # a fresh one starts its thread when used
        self._decode_thread = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self.database.dispose()
        self.started = False

    @property
    def engine(self) -> Engine:
        return self.database.engine

    # -- export ----------------------------------------------------------------------------

    def export(self, model: str, *, start: float, end: float, media_type: str) -> Iterator[bytes]:
        """The window's records (with labels) as JSON Lines or CSV, produced a page at a
        time while the body is sent. Each page is read in a short block of its own, so no
        connection, snapshot or lock is held while a slow client reads, and a client that
        hangs up (or a row that fails to format) leaves nothing open behind it."""
        config = self.model(model)
        chunks = self._export_pages(
            model, start=start, end=end, regression=config.task == "regression"
        )
        if media_type == "text/csv":
            yield from export.csv_rows(config, chunks)
        else:
            yield from export.jsonl(chunks)

    def _export_pages(
        self, model: str, *, start: float, end: float, regression: bool
    ) -> Iterator[list[tuple[Any, ...]]]:
        after: windows.ExportKey | None = None
        while True:
            with self.database.read() as connection:
                page = windows.export_page(
                    connection,
                    model=model,
                    start=start,
                    end=end,
                    regression=regression,
                    after=after,
                )
            if not page.rows:
                return
            yield page.rows
            after = page.last

    # -- alerts ----------------------------------------------------------------------------

    def active_alerts(self, model: str | None = None) -> list[alert_store.Stored]:
        if model is not None:
            self.model(model)
        with self.database.read() as connection:
            return alert_store.active(connection, model=model)

    def alert_history(
        self, *, model: str | None, since: float | None, limit: int
    ) -> list[alert_store.HistoryEntry]:
        if model is not None:
            self.model(model)
        with self.database.read() as connection:
            return alert_store.history(connection, model=model, since=since, limit=limit)

    # -- webhooks --------------------------------------------------------------------------

    def send_test_event(self, route: str) -> str:
        """Queue a ``webhook.test`` event for ``route``; return its id."""
        if route not in self.webhooks.routes:
            raise RouteNotFoundError(route)
        document = webhook_test_event(route, self.clock())
        with self.database.write() as connection:
            outbox.enqueue(
                connection,
                event_id=document["id"],
                bodies={route: self.renderer.body(route, document)},
                model="",
                now=self.clock(),
            )
        return str(document["id"])

    def deliveries(self, *, status: str | None, limit: int) -> list[outbox.Delivery]:
        with self.database.read() as connection:
            return outbox.list_deliveries(connection, status=status, limit=limit)

    def resend(self, event_id: str, route: str | None) -> int:
        """Queue a delivered or failed event again; the number of deliveries queued."""
        with self.database.write() as connection:
            return outbox.resend(connection, event_id=event_id, route=route, now=self.clock())

    # -- lookups ---------------------------------------------------------------------------

    def model(self, name: str) -> ModelConfig:
        model = self.config.model(name)
        if model is None:
            raise ModelNotFoundError(name)
        return model

    def database_ready(self) -> bool:
        try:
            self.database.ping()
            return True
        except StorageError as exc:  # one line per probe, not a traceback
            reason = unavailable_reason(exc, url=self.engine.url) or str(exc)
            log.warning("database is not reachable: %s", reason)
            return False

    def counts(self, model: str) -> ModelCounts:
        self.model(model)
        with self.database.read() as connection:
            return repo.model_counts(connection, model=model)

    def reference(self, model: str) -> ReferenceInfo | None:
        self.model(model)
        with self.database.read() as connection:
            return repo.latest_reference(connection, model=model)

    # -- ingest ----------------------------------------------------------------------------

    def store_predictions(self, model: str, records: list[Any]) -> IngestResult:
        """Validate and store a batch of prediction records, all or nothing."""
        write = self.prepare_predictions(model, records)
        with self.database.write() as connection:
            result = write(connection)
        return self._counted_predictions(model, result)

    async def store_predictions_body(
        self, model: str, body: bytes, media_type: str
    ) -> IngestResult:
        """Decode, validate and store a request body of prediction records, all or nothing,
        committing together with concurrent requests (group commit).

        A body of ``THREAD_DECODE_BYTES`` or more is decoded on a thread of its own, so that
        decoding the next batch overlaps the insert of the current one (SQLite inserts a
        statement's rows without holding the GIL); a smaller one costs less to decode here
        than the hop to a thread."""
        self.model(model)
        received_at = self.clock()
        if len(body) < THREAD_DECODE_BYTES:
            batch = self._decode_predictions(model, body, media_type, received_at)
        else:
            batch = await asyncio.get_running_loop().run_in_executor(
                self._decode_thread,
                self._decode_predictions,
                model,
                body,
                media_type,
                received_at,
            )
        write = repo.PredictionWrite(model, batch, received_at)
        return self._counted_predictions(model, await self.writer.submit(write))

    async def store_large_predictions_body(self, model: str, payload: Payload) -> IngestResult:
        """Decode, validate and store a large body of prediction records a chunk at a time
        (``ingest.chunked``), all or nothing in one transaction of its own, on a thread: its
        memory is bounded by a chunk, not by the body."""
        self.model(model)
        result = await asyncio.to_thread(self._store_chunked, model, payload, "predictions")
        return self._counted_predictions(model, result)

    async def store_large_labels_body(self, model: str, payload: Payload) -> IngestResult:
        """``store_large_predictions_body`` for labels. A label for an id that an earlier
        chunk of the same body labelled differently counts as a correction (in a small body,
        as a duplicate); the label stored is the same: the later one."""
        self.model(model)
        result = await asyncio.to_thread(self._store_chunked, model, payload, "labels")
        return self._counted_labels(model, result)

    def _store_chunked(self, model: str, payload: Payload, kind: str) -> IngestResult:
        received_at = self.clock()
        validator = self.validators[model]
        chunks = chunked.record_chunks(payload.pieces(), payload.media_type)
        batches: Iterator[Any]
        if kind == "predictions":
            fast = self._fast_decoders[model]
            batches = chunked.validated_batches(
                chunks,
                fast=lambda text, kind: fast.predictions(text, kind, received_at=received_at),
                validate=lambda records: validator.predictions(records, received_at=received_at),
            )
            write: Callable[..., IngestResult] = repo.insert_predictions
        else:
            batches = chunked.validated_batches(
                chunks,
                validate=lambda records: validator.labels(records, received_at=received_at),
            )
            write = repo.upsert_labels
        try:
            with self.database.write() as connection:
                results = [
                    write(connection, model=model, batch=batch, received_at=received_at)
                    for batch in batches
                ]
        except InvalidRecordsError as exc:
            self.reject(model, "invalid_record", exc.records)
            raise
        except PayloadError as exc:
            too_large = isinstance(exc, PayloadTooLargeError)
            self.reject(model, "too_large" if too_large else "malformed_body")
            raise
        return IngestResult(
            accepted=sum(r.accepted for r in results),
            duplicates=sum(r.duplicates for r in results),
            corrections=sum(r.corrections for r in results),
            label_delays=tuple(d for r in results for d in r.label_delays),
        )

    def _decode_predictions(
        self, model: str, body: bytes, media_type: str, received_at: float
    ) -> PredictionBatch:
        batch = self._fast_decoders[model].predictions(body, media_type, received_at=received_at)
        if batch is not None:
            return batch
        try:  # the complete validator decides, and names every problem
            records = decode_records(body, media_type)
        except PayloadError:
            self.reject(model, "malformed_body")
            raise
        return self._validate(  # type: ignore[no-any-return]
            model, records, lambda v: v.predictions(records, received_at=received_at)
        )

    def store_labels(self, model: str, records: list[Any]) -> IngestResult:
        write = self.prepare_labels(model, records)
        with self.database.write() as connection:
            result = write(connection)
        return self._counted_labels(model, result)

    async def store_labels_body(self, model: str, body: bytes, media_type: str) -> IngestResult:
        """Decode, validate and store a request body of labels, all or nothing, committing
        together with concurrent requests."""
        try:
            records = decode_records(body, media_type)
        except PayloadError:
            self.reject(model, "malformed_body")
            raise
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
        delay = self.metrics.label_delay.labels(model)
        for seconds in result.label_delays:
            delay.observe(seconds)
        self.metrics.label_corrections.labels(model).inc(result.corrections)
        return result

    def store_reference(self, model: str, records: list[Any], *, source: str) -> ReferenceInfo:
        batch = self._validate(model, records, lambda v: validate_reference(enumerate(records), v))
        return self._save_reference(model, batch, source=source, digest=digest_batch(batch))

    def store_reference_body(
        self, model: str, body: bytes, media_type: str, *, source: str
    ) -> ReferenceInfo:
        """Store a reference body (JSON, NDJSON or CSV), parsed and validated record by record
        so that a large one never has all its parsed records in memory at once."""
        try:
            batch = self._validate(model, [], lambda v: reference_batch(body, media_type, v))
        except PayloadError:
            self.reject(model, "malformed_body")
            raise
        return self._save_reference(model, batch, source=source, digest=digest_batch(batch))

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
            self.reject(model, "invalid_record", exc.records)
            raise

    def _save_reference(
        self, model: str, batch: ReferenceBatch, *, source: str, digest: str
    ) -> ReferenceInfo:
        with self.database.write() as connection:
            info = repo.store_reference(
                connection,
                model=model,
                batch=batch,
                source=source,
                digest=digest,
                created_at=self.clock(),
            )
        self.metrics.reference_version.labels(model).set(info.version)
        return info

    def read_reference_files(self) -> None:
        """Read and validate the configured reference files now, without the database, so
        that a file failing validation raises ``ConfigError`` before anything waits for the
        database; ``start()`` then stores what was read here (reading any file not read)."""
        for model in self.config.models:
            if model.reference is not None and model.reference.path is not None:
                self._reference_files[model.name] = self._read_reference_file(
                    model, model.reference.path
                )

    def _load_reference_file(self, model: ModelConfig, path: Path, *, written: str | None) -> None:
        """Store the configured reference file as a new version when its content changed.
        Its source reads ``file:`` and the path as ``written`` in the config, which the API
        shows to readers, rather than ``path`` resolved on this host."""
        read = self._reference_files.pop(model.name, None)
        batch, digest = read or self._read_reference_file(model, path)
        with self.database.read() as connection:
            latest = repo.latest_reference(connection, model=model.name)
        if latest is not None and latest.digest == digest:
            return
        info = self._save_reference(
            model.name, batch, source=f"file:{written or path}", digest=digest
        )
        log.info(
            "model %s: reference version %d loaded from %s (%d records)",
            model.name,
            info.version,
            path,
            info.n,
        )

    def _read_reference_file(self, model: ModelConfig, path: Path) -> tuple[ReferenceBatch, str]:
        """The file's validated batch and digest; ``ConfigError`` naming the file if invalid."""
        data = path.read_bytes()
        media_type = {".csv": "text/csv", ".json": "application/json"}.get(
            path.suffix.lower(), "application/x-ndjson"
        )
        try:
            batch = reference_batch(data, media_type, self.validators[model.name])
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
        except PayloadError as exc:
            raise ConfigError([ConfigIssue(str(path), None, "", str(exc))]) from None
        return batch, digest_batch(batch)

    # -- drift ------------------------------------------------------------------------------

    def evaluate(self, model: str, *, at: float | None = None, webhooks: bool = True) -> Evaluation:
        """Evaluate the model's current window now, or as of ``at`` (see
        ``DriftEvaluator.evaluate``)."""
        return self.evaluator.evaluate(self.model(model), at=at, webhooks=webhooks)

    def latest_evaluation(self, model: str) -> dict[str, Any] | None:
        self.model(model)
        with self.database.read() as connection:
            return latest_evaluation(connection, model=model)

    def evaluation_history(
        self, model: str, *, since: float | None, until: float | None, limit: int
    ) -> list[dict[str, Any]]:
        self.model(model)
        with self.database.read() as connection:
            return evaluation_history(
                connection, model=model, since=since, until=until, limit=limit
            )

    def reproduce(self, model: str, evaluation_id: int) -> Reproduction:
        """Evaluate stored evaluation ``evaluation_id`` again from the stored data with this
        service's config of the model, and say what differs (``jobs.reproduce``)."""
        return reproduce(self.evaluator, self.model(model), evaluation_id)

    # -- jobs ------------------------------------------------------------------------------

    def _adopt_stored(self, config: ModelConfig) -> bool:
        """This replica's model gauges from what is stored, whichever replica wrote it: the
        reference version in force, the latest evaluation and the alert states (see
        ``jobs.ticks``). Whether the model has a reference."""
        with self.database.read() as connection:
            info = repo.latest_reference(connection, model=config.name)
            self.evaluator.adopt_stored(connection, config)
            self.alerting.export_stored(connection, config)
        if info is not None:
            self.metrics.reference_version.labels(config.name).set(info.version)
        return info is not None

    def apply_retention(self) -> tuple[int, int]:
        cutoff = self.clock() - self.config.storage.retention.total_seconds()
        deleted_predictions = deleted_labels = 0
        while True:
            with self.database.write() as connection:
                chunk = repo.delete_older_than(connection, cutoff=cutoff)
            deleted_predictions += chunk[0]
            deleted_labels += chunk[1]
            if chunk == (0, 0):
                break
        with self.database.write() as connection:
            hist.delete_buckets_before(connection, cutoff=cutoff)
            labelled.delete_buckets_before(connection, model=None, before=cutoff)
            labelled.delete_stale_before(connection, cutoff=cutoff)
        if deleted_predictions:  # their labels may be unmatched again
            self.evaluator.unmatched.invalidate()
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
