"""Per-time-bucket drift histograms, kept up to date from the ingest log.

A window too large to compare exactly is evaluated from the counts of its buckets on the
reference profiles' grids: the buckets wholly inside it, merged, plus the records not summarised
yet. ``summarize`` adds the records ingested since the mark to their buckets, by the rules of
``jobs.summaries`` (ready rows only, chunks, compare and set), so that every record is counted
once with one replica or several.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from monitor.config import ModelConfig
from monitor.evaluation import ReferenceProfiles
from monitor.evaluation.counts import Counts
from monitor.evaluation.histograms import summarize as bucket_counts
from monitor.jobs.summaries import Summary
from monitor.storage import histograms as store
from monitor.storage.database import Database
from monitor.storage.histograms import HistogramMarks, LogRow

#: Records read and decoded at a time: bounds memory, not speed. A read record is about
#: 0.5 KB of small Python objects (bench/soak.py: chunks of 20,000 left Python's object
#: allocator 40 MB larger, fragmented, after the first evaluations).
SUMMARY_CHUNK = 5_000
#: How far past a bucket boundary a window's edge read reaches (see ``window_counts``).
EDGE_MARGIN = 0.001


def _counts(
    config: ModelConfig, profiles: ReferenceProfiles, rows: list[LogRow]
) -> dict[tuple[str, float], Counts]:
    """Per (feature, bucket start) counts of ``rows`` on the profiles' grids."""
    return bucket_counts(
        config,
        profiles,
        [row.ts for row in rows],
        [row.features for row in rows],
        [row.prediction for row in rows],
        bucket_seconds=config.drift.bucket.total_seconds(),
    )


def _add(into: dict[str, Counts], additions: dict[tuple[str, float], Counts]) -> None:
    for (name, _), found in additions.items():
        if name in into:
            into[name].add(found)
        else:
            into[name] = found


class DriftHistograms:
    """Keeps and reads each model's per-bucket histograms."""

    def __init__(self, *, database: Database, clock: Callable[[], float]) -> None:
        self.database = database
        self.clock = clock

    def _summary(self, config: ModelConfig, profiles: ReferenceProfiles) -> Summary[int]:
        marks = HistogramMarks(config.name, profiles.version)
        return Summary(database=self.database, clock=self.clock, marks=marks)

    def summarize(self, config: ModelConfig, profiles: ReferenceProfiles) -> int:
        """Bring the model's histograms up to date with its ingest log; the records added."""
        summary = self._summary(config, profiles)
        regression = config.task == "regression"
        total = 0
        while True:
            mark = summary.mark() or 0
            upto = summary.ready("predictions", after=mark)
            if upto == mark:
                return total
            with self.database.read() as connection:
                rows = store.rows_after(
                    connection,
                    model=config.name,
                    after_seq=mark,
                    upto=upto,
                    limit=SUMMARY_CHUNK,
                    regression=regression,
                )
            full = len(rows) == SUMMARY_CHUNK
            write = functools.partial(
                store.add_to_buckets,
                model=config.name,
                version=profiles.version,
                additions=_counts(config, profiles, rows),
            )
            if not summary.advance(mark, rows[-1].seq if full else upto, write):
                continue  # another summariser moved on first: count again from its mark
            total += len(rows)
            if not full:
                return total

    def window_counts(
        self, config: ModelConfig, profiles: ReferenceProfiles, *, start: float, end: float
    ) -> dict[str, Counts]:
        """Every feature's counts over the records with time in ``(start, end]``, the window
        exactly: the merged buckets wholly inside it; the summarised records of the buckets
        the window's edges cut, read from the rows (two buckets' worth at most); and the
        records not summarised yet. Rows are read a chunk at a time so that memory stays
        bounded however fast they arrive."""
        bucket = config.drift.bucket.total_seconds()
        kinds = {name: "numeric" for name in profiles.numeric}
        kinds.update({name: "categorical" for name in profiles.categorical})
        kinds.pop("__label__", None)
        regression = config.task == "regression"
        marks = HistogramMarks(config.name, profiles.version)
        # Whole buckets [b, b + bucket) inside (start, end]: b > start and b + bucket <= end.
        first = (math.floor(start / bucket) + 1) * bucket
        last = math.floor(end / bucket) * bucket
        merged = first < last
        with self.database.read() as connection:
            mark = marks.read(connection)
            counts: dict[str, Counts] = {}
            edges = [(start, end)]
            if merged:
                counts = store.merged_counts(
                    connection,
                    model=config.name,
                    version=profiles.version,
                    start=first,
                    end=last,
                    kinds=kinds,
                )
                # A millisecond past each boundary: a time within rounding of it may have
                # been put in either bucket; only what no merged bucket holds is kept.
                edges = [(start, first + EDGE_MARGIN), (last - EDGE_MARGIN, end)]
            for low, high in edges:
                for rows in store.rows_in_time(
                    connection,
                    model=config.name,
                    start=max(low, start),
                    end=min(high, end),
                    upto_seq=mark,
                    regression=regression,
                    chunk=SUMMARY_CHUNK,
                ):
                    found = _counts(config, profiles, rows)
                    _add(counts, {k: v for k, v in found.items() if not first <= k[1] < last})
            after = mark
            while True:
                tail = store.rows_after(
                    connection,
                    model=config.name,
                    after_seq=after,
                    limit=SUMMARY_CHUNK,
                    regression=regression,
                )
                if not tail:
                    break
                after = tail[-1].seq
                inside = [row for row in tail if start < row.ts <= end]
                if inside:
                    _add(counts, _counts(config, profiles, inside))
                if len(tail) < SUMMARY_CHUNK:
                    break
                del tail, inside  # one chunk alive at a time, not two while the next is read
        return counts
