"""The times drift-monitor accepts, and their RFC 3339 spelling.

A time is Unix seconds. One sent to the service (a record's ``timestamp``, a label's, a
replayed row's, ``evaluate?at=``) must lie in ``[EARLIEST, latest]``: from the Unix epoch
(``1970-01-01T00:00:00Z``, included) to the earlier of ``9999-12-31T23:59:59Z`` (the last
second RFC 3339 can write) and ``now + max_future_seconds`` (``server.max_timestamp_skew``,
``DEFAULT_MAX_FUTURE_SECONDS``) on the service's clock. Anything else, NaN and infinities
included, raises ``TimestampRangeError``; each caller names its own field.

Every time drift-monitor writes (API answers, evaluations, webhook events, exports, messages)
is written by ``rfc3339``, and only there: RFC 3339 in UTC with a ``Z``, to the second when
the time is a whole second, else to the microsecond (``2026-11-23T12:00:00Z``,
``2026-11-23T12:00:00.500000Z``). A time RFC 3339 cannot write (one stored before these bounds
were enforced) comes back as ``None`` instead of raising; ``parse`` reads what it wrote.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

from monitor.errors import MonitorError

#: 1970-01-01T00:00:00Z
EARLIEST: Final = 0.0
#: 9999-12-31T23:59:59Z
LATEST: Final = 253_402_300_799.0
#: The default of ``server.max_timestamp_skew``: one day.
DEFAULT_MAX_FUTURE_SECONDS: Final = 86_400.0


class TimestampRangeError(MonitorError, ValueError):
    """A time outside the accepted range; the message says which bound it crosses."""


def check(seconds: float, *, now: float | None, max_future_seconds: float) -> float:
    """``seconds`` (as a float) when it is an accepted time, else ``TimestampRangeError``.
    An ``int`` of any size is compared exactly.

    ``now`` is the service's clock; ``None`` checks the fixed bounds only (a replayed file is
    read before any clock applies to it).

    >>> check(1_800_000_000, now=1_800_000_000.0, max_future_seconds=60)
    1800000000.0
    >>> try:
    ...     check(1_800_000_061, now=1_800_000_000.0, max_future_seconds=60)
    ... except TimestampRangeError as exc:
    ...     print(exc)
    is more than 60 seconds ahead of the server's clock (2027-01-15T08:00:00Z)
    """
    if not EARLIEST <= seconds <= LATEST:  # NaN fails every comparison
        if isinstance(seconds, float) and math.isnan(seconds):
            raise TimestampRangeError("must be a number of Unix seconds, not NaN")
        if seconds < EARLIEST:
            raise TimestampRangeError("must not be before 1970-01-01T00:00:00Z")
        raise TimestampRangeError("must not be after 9999-12-31T23:59:59Z")
    if now is not None and seconds > now + max_future_seconds:
        raise TimestampRangeError(
            f"is more than {max_future_seconds:g} seconds ahead of the server's clock"
            f" ({rfc3339(now) or now})"
        )
    return float(seconds)


def latest(*, now: float, max_future_seconds: float) -> float:
    """The latest time ``check`` accepts at ``now``."""
    return min(LATEST, now + max_future_seconds)


def rfc3339(seconds: float) -> str | None:
    """``seconds`` as RFC 3339 in UTC; ``None`` when it cannot be written so (NaN, infinite,
    or outside the years 1 to 9999). Microseconds are written when there are any.

    >>> rfc3339(1795435200.0), rfc3339(1795435200.5), rfc3339(-0.25), rfc3339(1e300)
    ('2026-11-23T12:00:00Z', '2026-11-23T12:00:00.500000Z', '1969-12-31T23:59:59.750000Z', None)
    """
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return None


def written(seconds: float) -> str:
    """``rfc3339`` of a time that RFC 3339 can write: the service's clock, a checked time or
    one computed from them. ``TimestampRangeError`` otherwise.

    >>> written(0)
    '1970-01-01T00:00:00Z'
    """
    text = rfc3339(seconds)
    if text is None:
        raise TimestampRangeError(f"{seconds!r} cannot be written as an RFC 3339 date-time")
    return text


def parse(text: str) -> float:
    """Unix seconds of an RFC 3339 date-time with offset (what ``rfc3339`` writes).

    >>> parse("2026-11-23T12:00:00.500000Z"), parse("2026-11-23T13:00:00+01:00")
    (1795435200.5, 1795435200.0)
    """
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return parsed.timestamp()
