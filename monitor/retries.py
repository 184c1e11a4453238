"""When a failed HTTP request is sent again, and how long the receiver asked us to wait: the one
rule the Python client (``monitor.client``) and the webhook sender (``webhooks.sender``) share.

A request is sent again after no answer (a connection error, a timeout: each caller catches its
own transport errors) and after ``408 Request Timeout``, ``429 Too Many Requests`` or any
``5xx``. Any other answer is final: a 4xx other than 408 and 429 would get the same answer
again. ``Retry-After`` is read as delay-seconds or as an HTTP date.

Standard library only: the client imports this module and must stay importable with nothing
but ``httpx`` installed.
"""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["retried", "retry_after_seconds"]


def retried(status: int) -> bool:
    """Whether an answer with this status is worth sending the same request again.

    >>> [status for status in (200, 301, 400, 404, 408, 409, 429, 500, 503, 599) if retried(status)]
    [408, 429, 500, 503, 599]
    """
    return status in (408, 429) or 500 <= status <= 599


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header as seconds from ``now`` (Unix seconds, for an HTTP date);
    ``None`` when there is none or it is neither delay-seconds nor an HTTP date. A date in the
    past is ``0.0``.

    >>> retry_after_seconds("7", 0.0), retry_after_seconds("Thu, 01 Jan 1970 00:01:40 GMT", 60)
    (7.0, 40.0)
    >>> retry_after_seconds("Thu, 01 Jan 1970 00:01:40 GMT", 1000.0), retry_after_seconds(" 0 ", 0)
    (0.0, 0.0)
    >>> [retry_after_seconds(v, 0.0) for v in (None, "", "-1", "1.5", "soon", "\u0663")]
    [None, None, None, None, None, None]
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, by RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
