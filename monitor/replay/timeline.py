"""Data time: turn a file's records into what a live service would have seen, in order.

``plan`` is the whole schedule of a replay as a stream of steps, computed from the records
alone (no clock, no I/O): store these predictions, store these labels, evaluate at this tick.
A runner executes the steps against a service; the same file always gives the same steps.

* **Ticks** are the multiples of the evaluation interval (``schedule``, on the Unix epoch),
  from the first at or after the first record's timestamp to the last at or before the last
  record's. Every record with a timestamp at or before a tick is stored before that tick is
  evaluated, and none after it: the window ``(tick - duration, tick]`` holds what it would
  have held live.
* **Labels** become known at their label time (the prediction's time when the file gives
  none) and are stored when data time reaches it, so a label delay is honoured: an
  evaluation sees only the labels known by its tick. Labels still unknown at the last tick are
  stored at the end, in label-time order, with no evaluation after them.
* **Order.** Records must come in timestamp order; ``in_order`` puts back in order those that
  are at most ``buffer`` records out of place, and refuses a file that goes further back.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from monitor import timestamps
from monitor.errors import ReplayInputError, RowIssue
from monitor.replay.sources import ReplayRecord


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """A label as the ingest API takes it (``body``), and the line it came from."""

    line: int
    timestamp: float
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Predictions:
    """Store these records; data time is ``at`` (the last one's timestamp)."""

    at: float
    records: list[ReplayRecord]


@dataclass(frozen=True, slots=True)
class Labels:
    """Store these labels; data time is ``at``."""

    at: float
    records: list[LabelRecord]


@dataclass(frozen=True, slots=True)
class Evaluate:
    """Evaluate the model as of ``at``, a tick."""

    at: float


Step = Predictions | Labels | Evaluate


def iso(seconds: float) -> str:
    """Unix seconds as RFC 3339 in UTC, to the second (for people: the replay's table, its
    progress and its messages).

    >>> iso(1795435200.0), iso(1795435200.75)
    ('2026-11-23T12:00:00Z', '2026-11-23T12:00:00Z')
    """
    return timestamps.written(math.floor(seconds))


def first_tick(timestamp: float, every: float) -> int:
    """The number of the first tick at or after ``timestamp`` (tick ``k`` is at ``k * every``).

    >>> first_tick(1200.0, 600.0), first_tick(1201.0, 600.0)
    (2, 3)
    """
    return math.ceil(timestamp / every)


def in_order(records: Iterable[ReplayRecord], *, buffer: int) -> Iterator[ReplayRecord]:
    """The records by timestamp (file order among equal ones), holding at most ``buffer`` of
    them; a record older than one already given out raises ``ReplayInputError``.

    >>> rows = [ReplayRecord(n, ts, {}) for n, ts in enumerate([1.0, 3.0, 2.0, 4.0], 1)]
    >>> [r.timestamp for r in in_order(rows, buffer=2)]
    [1.0, 2.0, 3.0, 4.0]
    """
    held: list[tuple[float, int, ReplayRecord]] = []
    latest = -math.inf
    for seq, record in enumerate(records):
        if record.timestamp < latest:
            raise ReplayInputError(
                [
                    RowIssue(
                        record.line,
                        "timestamp",
                        f"{iso(record.timestamp)} is earlier than {iso(latest)}, already "
                        f"replayed: sort the file by timestamp (records at most {buffer} "
                        "places out of order are put back in order)",
                    )
                ]
            )
        heapq.heappush(held, (record.timestamp, seq, record))
        if len(held) > buffer:
            latest, _, first = heapq.heappop(held)
            yield first
    while held:
        yield heapq.heappop(held)[2]


class PendingLabels:
    """Labels waiting for data time to reach their label time (a heap by label time)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, LabelRecord]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, record: ReplayRecord) -> None:
        when = record.timestamp if record.label_timestamp is None else record.label_timestamp
        body = {"id": record.prediction.get("id"), "label": record.label, "timestamp": when}
        heapq.heappush(self._heap, (when, self._seq, LabelRecord(record.line, when, body)))
        self._seq += 1

    def due(self, now: float) -> list[LabelRecord]:
        """Take the labels known at ``now``, oldest first."""
        found = []
        while self._heap and self._heap[0][0] <= now:
            found.append(heapq.heappop(self._heap)[2])
        return found


def _labels(records: list[LabelRecord], at: float | None, batch: int) -> Iterator[Labels]:
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        yield Labels(chunk[-1].timestamp if at is None else at, chunk)


def plan(records: Iterable[ReplayRecord], *, every: float, batch: int) -> Iterator[Step]:
    """The steps of a replay of ``records`` (in timestamp order, see ``in_order``), evaluating
    every ``every`` seconds of data time and storing at most ``batch`` records a step.

    >>> rows = [ReplayRecord(n, ts, {"id": str(n)}, "a", ts + 5) for n, ts in
    ...         enumerate([1.0, 9.0, 10.0, 12.0, 25.0], 1)]
    >>> for step in plan(rows, every=10.0, batch=100):
    ...     print(type(step).__name__, step.at, [r.line for r in getattr(step, "records", [])])
    Predictions 10.0 [1, 2, 3]
    Labels 10.0 [1]
    Evaluate 10.0 []
    Predictions 12.0 [4]
    Labels 20.0 [2, 3, 4]
    Evaluate 20.0 []
    Predictions 25.0 [5]
    Labels 30.0 [5]
    """
    buffered: list[ReplayRecord] = []
    labels = PendingLabels()
    tick: int | None = None
    now = -math.inf
    for record in records:
        if tick is None:
            tick = first_tick(record.timestamp, every)
        while record.timestamp > tick * every:
            yield from _tick(buffered, labels, tick * every, batch)
            buffered = []
            tick += 1
        buffered.append(record)
        if record.label is not None:
            labels.push(record)
        now = record.timestamp
        if len(buffered) >= batch:
            yield Predictions(now, buffered)
            buffered = []
            yield from _labels(labels.due(now), now, batch)
    if tick is None:
        return
    while tick * every <= now:
        yield from _tick(buffered, labels, tick * every, batch)
        buffered = []
        tick += 1
    if buffered:
        yield Predictions(now, buffered)
    yield from _labels(labels.due(math.inf), None, batch)


def _tick(
    buffered: list[ReplayRecord], labels: PendingLabels, at: float, batch: int
) -> Iterator[Step]:
    if buffered:
        yield Predictions(buffered[-1].timestamp, buffered)
    yield from _labels(labels.due(at), at, batch)
    yield Evaluate(at)
