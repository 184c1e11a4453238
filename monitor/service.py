"""Composition root: build storage, validators, metrics and jobs from a Config."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text

from monitor.config import Config, ModelConfig
from monitor.domain import IngestResult, ModelCounts, ReferenceBatch, ReferenceInfo
from monitor.errors import (
    ConfigError,
    ConfigIssue,
    InvalidRecordsError,
    ModelNotFoundError,
    PayloadError,
)
from monitor.ingest import RecordValidator, decode_records, parse_reference_csv, validate_reference
from monitor.jobs import Scheduler
from monitor.metrics import Metrics
from monitor.storage import create_database_engine, migrate
from monitor.storage import repository as repo

log = logging.getLogger(__name__)
DEFAULT_DATABASE_URL = "sqlite:///./monitor.db"


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
        # SQLite has one writer at a time; queueing writers on a lock here hands the database
        # over at once, where SQLite's own busy handler would make them sleep and poll.
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, *, run_jobs: bool = True) -> None:
        migrate(self.engine)
        for model in self.config.models:
            if model.reference is not None and model.reference.path is not None:
                self._load_reference_file(model, model.reference.path)
            with self.engine.connect() as connection:
                info = repo.latest_reference(connection, model=model.name)
            if info is not None:
                self.metrics.reference_version.labels(model.name).set(info.version)
        if run_jobs:
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
        received_at = self.clock()
        batch = self._validate(
            model, records, lambda v: v.predictions(records, received_at=received_at)
        )
        with self._write_lock, self.engine.begin() as connection:
            result = repo.insert_predictions(
                connection, model=model, batch=batch, received_at=received_at
            )
        self.metrics.records_ingested.labels(model).inc(result.accepted)
        self.metrics.records_duplicate.labels(model).inc(result.duplicates)
        return result

    def store_labels(self, model: str, records: list[Any]) -> IngestResult:
        received_at = self.clock()
        batch = self._validate(model, records, lambda v: v.labels(records, received_at=received_at))
        with self._write_lock, self.engine.begin() as connection:
            result = repo.upsert_labels(
                connection, model=model, batch=batch, received_at=received_at
            )
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
