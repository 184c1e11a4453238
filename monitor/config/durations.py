"""Durations as written in monitor.yaml: ``30s``, ``5m``, ``1h``, ``7d``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(value: object) -> timedelta:
    """Parse ``<number><unit>`` with unit one of s, m, h, d, w into a positive timedelta.

    >>> parse_duration("90s")
    datetime.timedelta(seconds=90)
    >>> parse_duration("7d").total_seconds()
    604800.0
    """
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a duration such as 30s, 5m, 1h or 7d")
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 1h or 7d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of ``value`` in the units ``parse_duration`` reads.

    >>> format_duration(timedelta(hours=2))
    '2h'
    """
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
