"""The alert timeline of a replay as a table for people, or as JSON."""

from __future__ import annotations

from typing import Any

from monitor.replay.run import Progress, Transition
from monitor.replay.timeline import iso

COLUMNS = ("data time", "model", "rule", "feature", "transition", "severity", "value", "threshold")


def table(timeline: list[Transition]) -> str:
    """A plain-text table, one transition a row, oldest first.

    >>> print(table([Transition(1795435200.0, "credit", "psi", "age", "firing", "critical",
    ...                         0.5375, 0.25)]))
    data time             model   rule  feature  transition  severity  value   threshold
    2026-11-23T12:00:00Z  credit  psi   age      firing      critical  0.5375  0.25
    """
    if not timeline:
        return "no alert changed state"
    rows = [COLUMNS] + [
        (
            iso(t.at),
            t.model,
            t.rule,
            t.feature or "-",
            t.transition,
            t.severity,
            f"{t.value:.4g}",
            f"{t.threshold:g}",
        )
        for t in timeline
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def document(timeline: list[Transition], progress: Progress, model: str) -> dict[str, Any]:
    """The timeline and the counts, as ``monitor replay --json`` prints them."""
    return {
        "model": model,
        "records": progress.records,
        "labels": progress.labels,
        "evaluations": progress.evaluations,
        "first_time": None if progress.first_time is None else iso(progress.first_time),
        "last_time": None if progress.data_time is None else iso(progress.data_time),
        "timeline": [
            {
                "at": iso(t.at),
                "at_unix": t.at,
                "model": t.model,
                "rule": t.rule,
                "feature": t.feature,
                "transition": t.transition,
                "severity": t.severity,
                "value": t.value,
                "threshold": t.threshold,
            }
            for t in timeline
        ],
    }


def summary(progress: Progress, timeline: list[Transition], seconds: float) -> str:
    """One line: what was replayed, over which data times, how fast."""
    span = (
        ""
        if progress.first_time is None or progress.data_time is None
        else f" (data {iso(progress.first_time)} to {iso(progress.data_time)})"
    )
    events = sum(1 for t in timeline if t.transition != "pending")
    return (
        f"replayed {progress.records:,} records and {progress.labels:,} labels{span} in "
        f"{seconds:.1f} s: {progress.evaluations:,} evaluations, {events:,} alert events, "
        f"{progress.firing} alert(s) firing at the end"
    )
