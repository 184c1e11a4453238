"""A window's labelled predictions, from per-bucket summaries kept up to date incrementally.

Each evaluation first brings the buckets of the model up to date (``summarize``): the pairs of
labels and predictions ingested since the last time, taken in ingest order and only once
``SUMMARY_LAG_SECONDS`` old (a transaction still in flight on another replica may hold a lower
seq), are added to their buckets; buckets holding a corrected label are rebuilt; buckets older
than the window are dropped. The window is then the merge of its buckets plus the pairs not
summarised yet, cut exactly at its edges: the same pairs the full join would give, so the
metrics are the same, at the cost of reading packed columns instead of joining every row.

A first build (no buckets yet, or a window reaching before what they hold) streams the join of
the window once, in chunks. Until the buckets are usable (another replica building them),
the window is read by the plain join.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import secrets
from collections.abc import Callable, Iterator

import numpy as np
from sqlalchemy import Connection

from monitor.config import ModelConfig
from monitor.evaluation import labelled as cols
from monitor.evaluation.labelled import Labelled, PairRow
from monitor.storage import labelled as store
from monitor.storage import windows
from monitor.storage.database import Database
from monitor.storage.labelled import Mark

SUMMARY_LAG_SECONDS = 30.0
CHUNK = 50_000  # pairs read at a time: bounds memory, not speed
BUILD_TIMEOUT_SECONDS = 600.0  # a first build older than this is taken as abandoned


class LabelledWindows:
    """Reads windows of labelled predictions for the performance metrics."""

    def __init__(
        self,
        *,
        database: Database,
        clock: Callable[[], float],
    ) -> None:
        self.database = database
        self.clock = clock

    def window(self, config: ModelConfig, *, start: float, end: float) -> Labelled:
        """The labelled predictions whose prediction (or label) time is in ``(start, end]``."""
        spec = _Spec.of(config)
        with self.database.read() as connection:
            if not windows.has_labels(connection, model=spec.model):
                return cols.empty(spec.n_classes)  # nothing to summarise (yet)
        if self.summarize(config, window_start=start, window_end=end):
            with self.database.write() as connection:
                mark = store.watermark(connection, model=spec.model, clock=spec.clock, lock=True)
                if mark is not None and mark.building_since is None and start >= mark.horizon:
                    blobs = store.bucket_blobs(
                        connection,
                        model=spec.model,
                        clock=spec.clock,
                        start=spec.bucket_of(start),
                        end=end,
                    )
                    # Not summarised yet: the labels after the mark (with any prediction),
                    # and the predictions after it whose label is summarised already.
                    unsummarised = functools.partial(
                        store.pairs_after,
                        connection,
                        model=spec.model,
                        regression=spec.regression,
                        clock=spec.clock,
                        since=start,
                        until=end,
                    )
                    tail, _ = unsummarised(driver="labels", after=mark.label_seq)
                    newer, _ = unsummarised(
                        driver="predictions",
                        after=mark.prediction_seq,
                        other_upto=mark.label_seq,
                    )
                    # Each part cut to the window before they are joined: cutting the joined
                    # window copied all of it once more (bench/soak.py: the peak of an
                    # evaluation grows with the labelled pairs in the window, 36 bytes each).
                    within = functools.partial(
                        Labelled.within, start=start, end=end, by_label_time=spec.by_label_time
                    )
                    parts = [within(cols.decode(blob)) for blob in blobs]
                    parts.append(within(spec.columns(tail + newer)))
                    return cols.concat(parts, spec.n_classes)
        with self.database.read() as connection:
            rows = store.pairs_between(
                connection,
                model=spec.model,
                regression=spec.regression,
                clock=spec.clock,
                start=start,
                end=end,
                inclusive_end=True,
            )
        return spec.columns(rows).within(start, end, by_label_time=spec.by_label_time)

    # -- keeping the buckets up to date ---------------------------------------------------------

    def summarize(self, config: ModelConfig, *, window_start: float, window_end: float) -> bool:
        """Bring the model's buckets up to date; whether they can serve the window.

        Buckets are kept from one window length before the window's start, so that a window
        whose start moves back a little (a window of the last N records, when late records
        arrive) does not start a new build.
        """
        spec = _Spec.of(config)
        margin = max(window_end - window_start, spec.bucket)
        wanted = spec.bucket_of(window_start - margin)
        now = self.clock()
        with self.database.read() as connection:
            mark = store.watermark(connection, model=spec.model, clock=spec.clock)
        if mark is not None and mark.building_since is not None:
            building = now - mark.building_since < BUILD_TIMEOUT_SECONDS
            if building and spec.bucket_of(window_start) >= mark.horizon:
                return False  # another summariser is building them
            mark = None
        if mark is None or spec.bucket_of(window_start) < mark.horizon:
            return self._build(spec, horizon=wanted, now=now)
        cutoff = now - SUMMARY_LAG_SECONDS
        for table in ("labels", "predictions"):
            advanced = self._advance(spec, mark, cutoff, table)
            if advanced is None:
                return True  # another summariser moved first; what is stored is consistent
            mark = advanced
        mark = self._rebuild_stale(spec, mark)
        if mark is not None and wanted > mark.horizon:
            self._move_horizon(spec, mark, wanted)
        return True

    def _advance(self, spec: _Spec, mark: Mark, cutoff: float, table: str) -> Mark | None:
        """Add the pairs of the rows of ``table`` ("labels" or "predictions") received up to
        ``cutoff`` since the mark: that table's watermark moves, the other one holds."""
        own, other = (
            ("label_seq", "prediction_seq")
            if table == "labels"
            else ("prediction_seq", "label_seq")
        )
        while True:
            after = getattr(mark, own)
            with self.database.read() as connection:
                target = store.ready_seq(connection, table=table, after=after, cutoff=cutoff)
                if target == after:
                    return mark
                rows, last = store.pairs_after(
                    connection,
                    model=spec.model,
                    regression=spec.regression,
                    clock=spec.clock,
                    driver=table,
                    after=after,
                    upto=target,
                    other_upto=getattr(mark, other),
                    since=mark.horizon,
                    limit=CHUNK,
                )
            advanced = dataclasses.replace(mark, **{own: target if last is None else last})
            if not self._add(spec, mark, advanced, rows):
                return None
            mark = advanced
            if last is None:
                return mark

    def _add(self, spec: _Spec, expected: Mark, advanced: Mark, rows: list[PairRow]) -> bool:
        """Add pairs to their buckets and move the mark, unless it moved meanwhile."""
        return self._merge(spec, expected, spec.buckets(spec.columns(rows)), advanced)

    @contextlib.contextmanager
    def _unmoved(self, spec: _Spec, expected: Mark | None) -> Iterator[Connection | None]:
        """A write transaction holding the mark's lock; None instead of the connection if the
        mark is no longer ``expected`` (another summariser moved first: leave it to that one)."""
        with self.database.write() as connection:
            current = store.watermark(connection, model=spec.model, clock=spec.clock, lock=True)
            yield connection if current == expected else None

    def _merge(
        self,
        spec: _Spec,
        expected: Mark,
        groups: dict[float, Labelled],
        advanced: Mark | None = None,
    ) -> bool:
        """Add ``groups`` to their buckets (and move the mark to ``advanced``), unless the mark
        moved meanwhile."""
        with self._unmoved(spec, expected) as connection:
            if connection is None:
                return False
            self._merge_into(connection, spec, groups)
            if advanced is not None:
                store.set_watermark(connection, model=spec.model, clock=spec.clock, mark=advanced)
        return True

    def _merge_into(
        self, connection: Connection, spec: _Spec, groups: dict[float, Labelled]
    ) -> None:
        existing = store.stored_buckets(
            connection,
            model=spec.model,
            clock=spec.clock,
            starts=list(groups),
        )
        contents: dict[float, tuple[int, bytes | None]] = {}
        for start, part in groups.items():
            if start in existing:
                part = cols.concat([cols.decode(existing[start]), part], spec.n_classes)
            contents[start] = (len(part), cols.encode(part))
        store.write_buckets(
            connection,
            model=spec.model,
            clock=spec.clock,
            contents=contents,
            existing=list(existing),
        )

    def _rebuild_stale(self, spec: _Spec, mark: Mark) -> Mark | None:
        """Rebuild the buckets that held a label corrected since."""
        with self.database.read() as connection:
            stale = store.stale_rows(connection, model=spec.model)
        if not stale:
            return mark
        starts: set[float] = set()
        for _, prediction_ts, old_label_ts, new_label_ts in stale:
            times = (old_label_ts, new_label_ts) if spec.by_label_time else (prediction_ts,)
            starts.update(spec.bucket_of(t) for t in times)
        starts = {start for start in starts if start >= mark.horizon}
        with self._unmoved(spec, mark) as connection:
            if connection is None:
                return None
            existing = store.stored_buckets(
                connection, model=spec.model, clock=spec.clock, starts=sorted(starts)
            )
            contents: dict[float, tuple[int, bytes | None]] = {}
            for start in sorted(starts):
                # Read a bucket either side and keep what bucket_of puts in this one, so that
                # a time on a bucket's edge lands where the incremental path put it.
                rows = store.pairs_between(
                    connection,
                    model=spec.model,
                    regression=spec.regression,
                    clock=spec.clock,
                    start=start - spec.bucket,
                    end=start + 2 * spec.bucket,
                    prediction_upto=mark.prediction_seq,
                    label_upto=mark.label_seq,
                )
                part = spec.buckets(spec.columns(rows)).get(start)
                contents[start] = (0, None) if part is None else (len(part), cols.encode(part))
            store.write_buckets(
                connection,
                model=spec.model,
                clock=spec.clock,
                contents=contents,
                existing=list(existing),
            )
            store.delete_stale(connection, seqs=[row[0] for row in stale])
        return mark

    def _move_horizon(self, spec: _Spec, mark: Mark, horizon: float) -> None:
        """Drop the buckets before ``horizon``: windows only move forward."""
        with self._unmoved(spec, mark) as connection:
            if connection is None:
                return
            store.delete_buckets_before(
                connection, model=spec.model, clock=spec.clock, before=horizon
            )
            store.set_watermark(
                connection,
                model=spec.model,
                clock=spec.clock,
                mark=dataclasses.replace(mark, horizon=horizon),
            )

    def _build(self, spec: _Spec, *, horizon: float, now: float) -> bool:
        """Build the buckets from ``horizon`` on, from scratch, in several transactions."""
        token = secrets.randbits(48) + 1
        building = Mark(-token, 0, horizon, building_since=now)
        cutoff = now - SUMMARY_LAG_SECONDS
        with self.database.write() as connection:
            store.watermark(connection, model=spec.model, clock=spec.clock, lock=True)
            store.reset(connection, model=spec.model)
            store.set_watermark(connection, model=spec.model, clock=spec.clock, mark=building)
            prediction_upto = store.ready_seq(
                connection, table="predictions", after=0, cutoff=cutoff
            )
            label_upto = store.ready_seq(connection, table="labels", after=0, cutoff=cutoff)
        held: Labelled | None = None  # the last bucket read: the next chunk may add to it
        held_start = -math.inf
        with self.database.read() as reader:
            for rows in store.stream_pairs_since(
                reader,
                model=spec.model,
                regression=spec.regression,
                clock=spec.clock,
                since=horizon,
                prediction_upto=prediction_upto,
                label_upto=label_upto,
                chunk=CHUNK,
            ):
                groups = spec.buckets(spec.columns(rows))
                if held is not None:
                    groups[held_start] = cols.concat(
                        [held, groups.get(held_start, cols.empty(spec.n_classes))],
                        spec.n_classes,
                    )
                held_start = max(groups)
                held = groups.pop(held_start)
                if groups and not self._merge(spec, building, groups):
                    return False
        done = Mark(prediction_upto, label_upto, horizon)
        return self._merge(spec, building, {} if held is None else {held_start: held}, done)


@dataclasses.dataclass(frozen=True, slots=True)
class _Spec:
    """What a model's configuration says about its labelled pairs."""

    model: str
    regression: bool
    classes: tuple[str, ...] | None
    clock: str
    bucket: float

    @classmethod
    def of(cls, config: ModelConfig) -> _Spec:
        regression = config.task == "regression"
        return cls(
            model=config.name,
            regression=regression,
            classes=None if regression else tuple(config.classes or ()),
            clock=config.performance.window_by,
            bucket=config.drift.bucket.total_seconds(),
        )

    @property
    def by_label_time(self) -> bool:
        return self.clock == "label_time"

    @property
    def n_classes(self) -> int:
        return len(self.classes or ())

    def bucket_of(self, t: float) -> float:
        return float(np.floor(t / self.bucket) * self.bucket)

    def columns(self, rows: list[PairRow]) -> Labelled:
        return cols.from_rows(rows, self.classes)

    def buckets(self, pairs: Labelled) -> dict[float, Labelled]:
        return cols.by_bucket(pairs, bucket=self.bucket, by_label_time=self.by_label_time)
