"""A window's labelled predictions, from per-bucket summaries kept up to date incrementally.

Each evaluation first brings the buckets of the model up to date (``summarize``, by the rules of
``jobs.summaries``: ready rows only, chunks, compare and set, a lease on the first build): the
pairs of labels and predictions ingested since the last time are added to their buckets;
buckets holding a corrected label are rebuilt; buckets older than the window are dropped.
The window is then the merge of its buckets plus the pairs not summarised yet, cut exactly at
its edges: the same pairs the full join would give, so the metrics are the same, at the cost
of reading packed columns instead of joining every row.

A first build (no buckets yet, or a window reaching before what they hold) streams the join of
the window once, in chunks. Until the buckets are usable (another replica building them),
the window is read by the plain join.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import secrets
from collections.abc import Callable

import numpy as np
from sqlalchemy import Connection

from monitor.config import ModelConfig
from monitor.evaluation import labelled as cols
from monitor.evaluation.labelled import Labelled, PairRow
from monitor.jobs.summaries import Summary
from monitor.storage import labelled as store
from monitor.storage import windows
from monitor.storage.database import Database
from monitor.storage.labelled import LabelledMarks, Mark

CHUNK = 50_000  # pairs read at a time: bounds memory, not speed


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
                mark = spec.marks.read(connection, lock=True)
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

    def last_records(self, config: ModelConfig, *, count: int) -> Labelled:
        """The labelled predictions among the ``count`` most recently ingested: a records
        window's, the very records its drift counts (read by the join: such windows are at
        most ``drift.exact_max_samples`` records on this path)."""
        spec = _Spec.of(config)
        with self.database.read() as connection:
            rows = store.pairs_of_last(
                connection, model=spec.model, regression=spec.regression, count=count
            )
        return spec.columns(rows)

    # -- keeping the buckets up to date ---------------------------------------------------------

    def summarize(self, config: ModelConfig, *, window_start: float, window_end: float) -> bool:
        """Bring the model's buckets up to date; whether they can serve the window.

        Buckets are kept from one window length before the window's start, so that a window
        whose start moves back a little (a window of the last N records, when late records
        arrive) does not start a new build.
        """
        spec = _Spec.of(config)
        summary = self._summary(spec)
        margin = max(window_end - window_start, spec.bucket)
        wanted = spec.bucket_of(window_start - margin)
        now = self.clock()
        mark = summary.mark()
        if mark is not None and mark.building_since is not None:
            if summary.building(mark.building_since, now) and (
                spec.bucket_of(window_start) >= mark.horizon
            ):
                return False  # another summariser is building them
            mark = None
        if mark is None or spec.bucket_of(window_start) < mark.horizon:
            return self._build(spec, summary, horizon=wanted, now=now)
        for table in ("labels", "predictions"):
            advanced = self._advance(spec, summary, mark, now, table)
            if advanced is None:
                return True  # another summariser moved first; what is stored is consistent
            mark = advanced
        mark = self._rebuild_stale(spec, summary, mark)
        if mark is not None and wanted > mark.horizon:
            summary.advance(
                mark,
                dataclasses.replace(mark, horizon=wanted),
                functools.partial(
                    store.delete_buckets_before, model=spec.model, clock=spec.clock, before=wanted
                ),
            )  # windows only move forward: the buckets before them go
        return True

    def _summary(self, spec: _Spec) -> Summary[Mark]:
        return Summary(database=self.database, clock=self.clock, marks=spec.marks)

    def _advance(
        self, spec: _Spec, summary: Summary[Mark], mark: Mark, now: float, table: str
    ) -> Mark | None:
        """Add the pairs of the rows of ``table`` ("labels" or "predictions") ready at ``now``
        since the mark: that table's watermark moves, the other one holds."""
        own, other = (
            ("label_seq", "prediction_seq")
            if table == "labels"
            else ("prediction_seq", "label_seq")
        )
        while True:
            after = getattr(mark, own)
            target = summary.ready(table, after=after, now=now)
            if target == after:
                return mark
            with self.database.read() as connection:
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
            groups = spec.buckets(spec.columns(rows))
            if not self._merge(spec, summary, mark, groups, advanced):
                return None
            mark = advanced
            if last is None:
                return mark

    def _merge(
        self,
        spec: _Spec,
        summary: Summary[Mark],
        expected: Mark,
        groups: dict[float, Labelled],
        advanced: Mark | None = None,
    ) -> bool:
        """Add ``groups`` to their buckets (and move the mark to ``advanced``), unless the mark
        moved meanwhile."""
        write = functools.partial(self._merge_into, spec=spec, groups=groups)
        return summary.advance(expected, expected if advanced is None else advanced, write)

    @staticmethod
    def _merge_into(connection: Connection, *, spec: _Spec, groups: dict[float, Labelled]) -> None:
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

    def _rebuild_stale(self, spec: _Spec, summary: Summary[Mark], mark: Mark) -> Mark | None:
        """Rebuild the buckets that held a label corrected since."""
        with self.database.read() as connection:
            stale = store.stale_rows(connection, model=spec.model)
        if not stale:
            return mark
        starts: set[float] = set()
        for row in stale:
            if spec.by_label_time:
                times: tuple[float, ...] = (row.old_label_ts, row.new_label_ts)
            else:
                times = (row.prediction_ts,)
            starts.update(spec.bucket_of(t) for t in times)
        starts = {start for start in starts if start >= mark.horizon}
        with summary.unmoved(mark) as connection:
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
            store.delete_stale(connection, seqs=[row.seq for row in stale])
        return mark

    def _build(self, spec: _Spec, summary: Summary[Mark], *, horizon: float, now: float) -> bool:
        """Build the buckets from ``horizon`` on, from scratch, in several transactions, under
        a build lease: the mark says who builds since when until the build is done."""
        token = secrets.randbits(48) + 1
        building = Mark(-token, 0, horizon, building_since=now)
        prediction_upto = summary.ready("predictions", after=0, now=now)
        label_upto = summary.ready("labels", after=0, now=now)
        with self.database.write() as connection:
            spec.marks.read(connection, lock=True)
            store.reset(connection, model=spec.model)
            spec.marks.write(connection, building)
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
                if groups and not self._merge(spec, summary, building, groups):
                    return False
        done = Mark(prediction_upto, label_upto, horizon)
        last = {} if held is None else {held_start: held}
        return self._merge(spec, summary, building, last, done)


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
    def marks(self) -> LabelledMarks:
        return LabelledMarks(self.model, self.clock)

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
