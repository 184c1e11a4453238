"""Replay and backfill: stream a file of past predictions (and labels) into the store or a
running service in data time, evaluating at the ticks the schedule would have, so alerts
change state at the data times they would have live (``monitor replay``).

``sources`` reads CSV, JSON Lines and Parquet; ``timeline`` plans the steps (pure);
``run`` executes them against a ``targets`` target; ``progress`` and ``report`` show it.
"""

from monitor.replay.run import Progress, Transition, replay
from monitor.replay.sources import FORMATS, ReplayRecord, format_of, open_source

__all__ = [
    "FORMATS",
    "Progress",
    "ReplayRecord",
    "Transition",
    "format_of",
    "open_source",
    "replay",
]
