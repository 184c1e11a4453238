"""Pair the halves of logged inferences (CloudEvents from KServe and Seldon Core v1) through
the database, so that a half acknowledged before a restart, or received by another replica,
still meets its other half.

Each event is handled in one transaction (``storage.cloudevents``): the event is remembered
(a re-sent one is a duplicate), then its half either waits or takes the waiting other half, and
the pair's records are stored in that same transaction, so a crash can neither lose an
acknowledged half nor store a pair twice. Halves whose other half does not come within
``pair_timeout`` are deleted by ``expire`` (a scheduled job, and at most once a second before
an event is handled) and counted in ``drift_monitor_cloudevents_unpaired_total``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Connection

from monitor.domain import IngestResult
from monitor.ingest import cloudevents as ce
from monitor.metrics import Metrics
from monitor.storage import cloudevents as store
from monitor.storage.database import Database

log = logging.getLogger(__name__)

#: How often the scheduled job deletes expired halves.
EXPIRY_INTERVAL = timedelta(seconds=5)
#: Before handling an event, expire at most this often (seconds of the clock).
EXPIRY_AT_EVENTS_SECONDS = 1.0

#: Validate records now; return their write on a connection (``Service.prepare_predictions``).
Prepare = Callable[[str, list[Any]], Callable[[Connection], IngestResult]]
#: Count what a committed write stored (``Service._counted_predictions``).
Count = Callable[[str, IngestResult], IngestResult]


@dataclass(frozen=True, slots=True)
class Received:
    """What became of an event: ``pending`` (a half waits for the other), ``stored`` (a pair's
    records, or feedback's labels, in ``result``) or ``duplicate`` (nothing stored)."""

    status: Literal["pending", "stored", "duplicate"]
    result: IngestResult | None = None


class CloudEventPairing:
    """Halves wait ``pair_timeout``; handled events, and pairs stored, are remembered ten
    times as long (at least ten minutes) so that a re-sent one is known as a duplicate."""

    def __init__(
        self,
        *,
        database: Database,
        clock: Callable[[], float],
        pair_timeout: timedelta,
        metrics: Metrics,
        prepare_predictions: Prepare,
        prepare_labels: Prepare,
        counted_predictions: Count,
        counted_labels: Count,
    ) -> None:
        self.database = database
        self.clock = clock
        self.ttl = pair_timeout.total_seconds()
        self.remember = max(10 * self.ttl, 600.0)
        self.metrics = metrics
        self._prepare_predictions = prepare_predictions
        self._prepare_labels = prepare_labels
        self._counted_predictions = counted_predictions
        self._counted_labels = counted_labels
        self._next_expiry = float("-inf")

    def half(self, model: str, event: ce.Event, payload: bytes) -> Received:
        """Handle a request or response event of ``model``, its parsed payload ``pack``-ed.
        Raises ``InvalidRecordsError`` or ``CloudEventError`` (422) when the pair's records
        cannot be stored; then nothing changes: the waiting half still waits."""
        assert event.kind != "feedback"
        now = self._expire_at_event()
        half = store.Half(
            flavor=event.flavor,
            pair_key=event.pair_key,
            kind=event.kind,
            model=model,
            event_id=event.id,
            event_type=event.type,
            event_time=event.time,
            payload=payload,
        )
        result = None
        with self.database.write() as connection:
            if not self._remember(connection, event, now):
                return Received("duplicate")
            offer = store.offer(
                connection, half, now=now, until=now + self.ttl, paired_until=now + self.remember
            )
            if offer.partner is not None:
                request, response = (
                    (half, offer.partner) if half.kind == "request" else (offer.partner, half)
                )
                records = ce.paired_records(
                    event.pair_key,
                    request=request.payload,
                    response=response.payload,
                    timestamp=request.event_time or response.event_time,
                )
                result = self._prepare_predictions(model, records)(connection)
        if offer.expired is not None:
            self._count_unpaired([(offer.expired.model, offer.expired.kind)])
        if offer.status == "paired":
            return Received("duplicate")
        if result is None:
            return Received("pending")
        return Received("stored", self._counted_predictions(model, result))

    def feedback(self, model: str, event: ce.Event, labels: list[Any]) -> Received:
        """Handle a Seldon feedback event: store its labels, unless it was handled before."""
        now = self._expire_at_event()
        write = self._prepare_labels(model, labels)
        with self.database.write() as connection:
            if not self._remember(connection, event, now):
                return Received("duplicate")
            result = write(connection)
        return Received("stored", self._counted_labels(model, result))

    def expire(self) -> int:
        """Delete the halves (and remembered events) past their time; count the unpaired
        halves by model and kind. Returns how many halves went unpaired."""
        with self.database.write() as connection:
            unpaired = store.expire(connection, now=self.clock())
        self._count_unpaired(unpaired)
        if unpaired:
            log.debug("cloudevents: %d halves expired unpaired", len(unpaired))
        return len(unpaired)

    def _remember(self, connection: Connection, event: ce.Event, now: float) -> bool:
        return store.remember(
            connection,
            event_id=event.id,
            event_type=event.type,
            now=now,
            until=now + self.remember,
        )

    def _expire_at_event(self) -> float:
        now = self.clock()
        if now >= self._next_expiry:
            self._next_expiry = now + EXPIRY_AT_EVENTS_SECONDS
            self.expire()
        return now

    def _count_unpaired(self, halves: list[tuple[str, str]]) -> None:
        for model, kind in halves:
            self.metrics.cloudevents_unpaired.labels(model, kind).inc()
