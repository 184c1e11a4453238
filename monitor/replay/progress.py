"""A one-line progress bar for a terminal, redrawn in place at most a few times a second."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from monitor.replay.run import Progress
from monitor.replay.timeline import iso

WIDTH = 24


def render(progress: Progress, elapsed_seconds: float) -> str:
    """The bar's text.

    >>> print(render(Progress(records=1500, labels=20, evaluations=3, data_time=1795435200.0,
    ...     firing=1, position=512, size=1024, unit="bytes"), 2.0))
    [############............]  50% 1,500 records 750/s 20 labels | data 2026-11-23T12:00:00Z | 3 evaluations, 1 firing
    """  # noqa: E501
    rate = progress.records / elapsed_seconds if elapsed_seconds > 0 else 0.0
    if progress.size:
        share = min(progress.position / progress.size, 1.0)
        filled = round(share * WIDTH)
        bar = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {share:4.0%} "
    else:
        bar = f"{progress.position:,} {progress.unit} "
    when = "-" if progress.data_time is None else iso(progress.data_time)
    return (
        f"{bar}{progress.records:,} records {rate:,.0f}/s {progress.labels:,} labels"
        f" | data {when} | {progress.evaluations:,} evaluations, {progress.firing} firing"
    )


class ProgressBar:
    """Draws ``render`` on ``stream`` (a terminal) at most every ``interval`` seconds."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._drawn = -float("inf")
        self._width = 0
        self._last: Progress | None = None

    def __call__(self, progress: Progress, *, force: bool = False) -> None:
        self._last = progress
        now = self._clock()
        if not force and now - self._drawn < self._interval:
            return
        self._drawn = now
        text = render(progress, now - self._started)
        padding = " " * max(0, self._width - len(text))
        self._width = len(text)
        self._stream.write(f"\r{text}{padding}")
        self._stream.flush()

    def close(self) -> None:
        """Draw the last state and end the line (nothing when nothing was drawn)."""
        if self._last is not None:
            self(self._last, force=True)
            self._stream.write("\n")
            self._stream.flush()
