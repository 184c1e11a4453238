"""Labels whose prediction has not arrived, counted without re-joining every label.

Counting them with one anti-join costs a prediction lookup per stored label: about a second per
million labels on every evaluation. Instead each process keeps, per model, the ids of the
unmatched labels among those it has checked (labels up to a seq, taken once ready by the
rules of ``jobs.summaries``, as the performance buckets' are). Each count checks the labels
stored since, drops the ids whose prediction arrived (or whose label retention deleted), and
counts the newest labels directly. A model with more than ``MAX_TRACKED`` unmatched labels is
counted by the plain anti-join. ``invalidate`` (after retention deleted predictions, which can
leave labels unmatched again) starts over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.jobs.summaries import ready_seq
from monitor.storage import labelled as store
from monitor.storage import windows
from monitor.storage.database import Database

MAX_TRACKED = 100_000


@dataclass
class _Tracked:
    seq: int = 0  # labels up to this seq are checked
    ids: set[str] = field(default_factory=set)  # the unmatched ones among them


class UnmatchedLabels:
    """Counts each model's labels that have no prediction."""

    def __init__(self, *, database: Database, clock: Callable[[], float]) -> None:
        self.database = database
        self.clock = clock
        self._tracked: dict[str, _Tracked] = {}
        self._untracked: set[str] = set()

    def invalidate(self) -> None:
        self._tracked.clear()
        self._untracked.clear()

    def count(self, model: str) -> int:
        if model in self._untracked:
            with self.database.read() as connection:
                return windows.unmatched_label_count(connection, model=model)
        tracked = self._tracked.setdefault(model, _Tracked())
        upto = ready_seq(self.database, table="labels", after=tracked.seq, now=self.clock())
        with self.database.read() as connection:
            if tracked.ids:
                ids = sorted(tracked.ids)
                tracked.ids -= store.ids_present(
                    connection, table="predictions", model=model, ids=ids
                )
                tracked.ids &= store.ids_present(
                    connection, table="labels", model=model, ids=sorted(tracked.ids)
                )
            if upto > tracked.seq:
                tracked.ids.update(
                    store.unmatched_between(connection, model=model, after=tracked.seq, upto=upto)
                )
                tracked.seq = upto
            newest = store.unmatched_between(connection, model=model, after=tracked.seq)
        if len(tracked.ids) > MAX_TRACKED:
            del self._tracked[model]
            self._untracked.add(model)
        return len(tracked.ids) + len(newest)
