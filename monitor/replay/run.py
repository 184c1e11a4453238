"""Drive a replay: execute ``timeline.plan``'s steps against a target and collect what the
alerts did at each tick.

A target is the store (``targets.StoreTarget``, a ``Service`` whose clock is the replay's
data time) or a running service (``targets.HttpTarget``); both validate each batch as the
ingest API does, so an invalid row stops the replay with its line, and stores nothing of its
batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.errors import InvalidRecordsError, ReplayInputError, RowIssue
from monitor.replay.sources import Source
from monitor.replay.timeline import Evaluate, Labels, Predictions, in_order, plan

#: Records held to put a slightly unsorted file back in order (see ``timeline.in_order``).
REORDER_BUFFER = 10_000
#: A label's fields as the file names them.
_LABEL_FIELDS = {"timestamp": "label_timestamp"}


@dataclass(frozen=True, slots=True)
class Transition:
    """What an alert did at a tick: ``pending``, ``firing``, ``escalated`` or ``resolved``."""

    at: float
    model: str
    rule: str
    feature: str | None
    transition: str
    severity: str
    value: float
    threshold: float


@dataclass(slots=True)
class Progress:
    """Counts so far, for a progress bar and the summary. ``position`` is how far into the
    source (of ``size``, in ``unit``) the records replayed so far reach: the source reads
    ahead (up to the sort buffer), and what it has read is not yet replayed."""

    records: int = 0
    labels: int = 0
    evaluations: int = 0
    data_time: float | None = None
    firing: int = 0
    position: int = 0
    size: int | None = None
    unit: str = "bytes"
    first_time: float | None = None


class Target(Protocol):
    """Where a replay's batches go. A batch with invalid records raises
    ``InvalidRecordsError`` (indexed by position in the batch) and stores nothing."""

    def store_predictions(self, at: float, records: list[dict[str, Any]]) -> None: ...

    def store_labels(self, at: float, records: list[dict[str, Any]]) -> None: ...

    def evaluate(self, at: float) -> tuple[list[Transition], int]:
        """Evaluate as of ``at``; the alerts' transitions at ``at`` and how many fire now."""
        ...


def replay(
    source: Source,
    target: Target,
    *,
    every: float,
    batch: int,
    reorder: int = REORDER_BUFFER,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[list[Transition], Progress]:
    """Replay ``source`` into ``target``; the alert timeline, oldest first, and the counts."""
    progress = Progress(size=source.size, unit=source.unit)
    timeline: list[Transition] = []
    for step in plan(in_order(source, buffer=reorder), every=every, batch=batch):
        if isinstance(step, Predictions):
            lines = [r.line for r in step.records]
            _send(target.store_predictions, step.at, [r.prediction for r in step.records], lines)
            progress.records += len(lines)
            progress.position = max(progress.position, *(r.position for r in step.records))
            if progress.first_time is None:
                progress.first_time = step.records[0].timestamp
        elif isinstance(step, Labels):
            lines = [r.line for r in step.records]
            bodies = [r.body for r in step.records]
            _send(target.store_labels, step.at, bodies, lines, rename=_LABEL_FIELDS)
            progress.labels += len(lines)
        elif isinstance(step, Evaluate):
            found, progress.firing = target.evaluate(step.at)
            timeline.extend(found)
            progress.evaluations += 1
        progress.data_time = step.at
        if on_progress is not None:
            on_progress(progress)
    progress.position = source.position  # all read: blank lines at the end included
    return timeline, progress


def _send(
    store: Callable[[float, list[dict[str, Any]]], None],
    at: float,
    bodies: list[dict[str, Any]],
    lines: list[int],
    *,
    rename: dict[str, str] | None = None,
) -> None:
    """Store a batch; its invalid records reported by their lines in the file."""
    try:
        store(at, bodies)
    except InvalidRecordsError as exc:
        names = rename or {}
        raise ReplayInputError(
            [
                RowIssue(lines[issue.index], names.get(issue.field, issue.field), issue.reason)
                for issue in exc.issues
            ]
        ) from None
