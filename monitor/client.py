"""A client for model servers: log predictions and labels to drift-monitor without waiting on it.

Usage::

    monitor = Monitor("http://127.0.0.1:8000", "credit", token=os.environ.get("MONITOR_TOKEN"))
    monitor.log_prediction("req-1", {"age": 42, "income": 51000.0, "country": "DE"}, "approved")
    monitor.log_label("req-1", "rejected")  # later; records are flushed at exit or by close()

``log_prediction`` and ``log_label`` never block on the network and never raise: a record is
serialized, put on a bounded in-memory queue and returns. Background senders (daemon threads
for :class:`Monitor`, asyncio tasks for :class:`AsyncMonitor`) POST the queue in batches of
``batch_size`` records, or whatever is queued once its oldest record is ``flush_interval``
seconds old, up to ``max_in_flight`` batches at a time: a batch being retried holds back the
ones behind it only once that many are being retried. Delivery:

- **2xx**: the records are counted in ``sent``.
- **Connection error, timeout, 408, 429, 5xx** (``monitor.retries``, the webhook sender's rule
  too): the same batch is sent again after an exponential backoff (0.1 s doubling to 30 s,
  times a random 0.5-1 jitter; a ``Retry-After`` in seconds or as an HTTP date is honoured up
  to 30 s; see the class attributes ``initial_backoff`` and ``max_backoff``), until
  ``max_retry_seconds`` have passed since that batch's first attempt (a budget per batch);
  then it is given up and counted in ``failed``. Sending a batch twice is safe: the service
  stores an id once. Each resend is counted in ``retries``.
- **Any other 4xx** (an invalid batch, an unknown model, a bad token): the batch is dropped,
  counted in ``rejected`` and logged once (logger ``monitor.client``, with the problem's detail
  and its first errors); it is not retried. The service stores all or nothing of a batch, so
  one invalid record loses its whole batch.
- A record that cannot be serialized (a naive ``datetime``, an id that is not a string of 1-256
  characters or an integer, a ``model_version`` that is not 1-128 characters without NUL, a
  value JSON cannot represent) is counted in ``rejected`` when it is logged and never queued.
- A record logged while ``max_queue`` records are held (waiting or being sent: the client's
  memory is bounded by it), or after ``close()``, is counted in ``dropped``.

**Shutdown is bounded.** ``close()``, ``flush()`` and ``aclose()`` without a ``timeout`` wait
at most ``close_timeout`` seconds (default :data:`CLOSE_TIMEOUT`, 5 s), as does the exit hook;
``timeout=`` overrides it, and ``timeout=None`` waits until everything is sent or given up
(which, with the monitor down, is ``max_retry_seconds``). ``flush`` only stops waiting: what is
unsent stays queued and is still retried. ``close`` gives up what is unsent when its time is up,
counts it in ``failed`` and logs one warning with the count (a batch whose request was under way
may still have been stored by the service).

Every count is in records except ``retries`` (HTTP requests sent again); ``stats()`` returns
them all. Timestamps may be timezone-aware :class:`~datetime.datetime` objects (sent as RFC 3339
in UTC), Unix seconds (``int``/``float``), RFC 3339 strings (sent as they are) or ``None`` (the
service uses the time it receives the batch). A ``NaN`` feature value is sent as ``null``
(missing). numpy scalars are converted with ``.item()``.

:class:`Monitor` registers ``close()`` with :mod:`atexit`, so what is queued is sent when the
interpreter exits (waiting at most ``close_timeout``). :class:`AsyncMonitor` cannot be flushed
by ``atexit``: ``await aclose()`` it (or use ``async with``), e.g. in a FastAPI lifespan.

Test seams: both take an httpx ``transport=`` (e.g. :class:`httpx.MockTransport`); a
:class:`Monitor` keeps time and waits through its ``clock=`` (:class:`Clock`), an
:class:`AsyncMonitor` through its event loop's clock (``loop.time()``), so a test drives
outages, slow answers and retries in virtual time.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import enum
import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self
from urllib.parse import quote

import httpx

from monitor.retries import retried, retry_after_seconds

__all__ = ["CLOSE_TIMEOUT", "DEFAULT", "AsyncMonitor", "Clock", "Monitor", "SystemClock"]

logger = logging.getLogger("monitor.client")

Kind = Literal["predictions", "labels"]
Timestamp = datetime | float | int | str | None
Outcome = Literal["sent", "rejected", "failed"]

#: Seconds ``close()``, ``flush()`` and ``aclose()`` wait by default, and the exit hook: a
#: model server's shutdown is never held up longer by an unreachable monitor.
CLOSE_TIMEOUT: Final = 5.0


class _Default(enum.Enum):
    TIMEOUT = "the client's close_timeout"


#: The ``timeout`` of ``flush``, ``close`` and ``aclose`` when none is given: ``close_timeout``.
DEFAULT: Final = _Default.TIMEOUT


class Clock(Protocol):
    """Where a :class:`Monitor` reads the time and waits: monotonic seconds, and the condition
    its caller's path and its sender threads share, whose ``wait(timeout)`` counts this clock's
    seconds. A test passes a fake one to run retries and timeouts in virtual time."""

    def now(self) -> float: ...

    def condition(self) -> threading.Condition: ...


class SystemClock:
    """Real time: :func:`time.monotonic` and a plain :class:`threading.Condition`."""

    def now(self) -> float:
        return time.monotonic()

    def condition(self) -> threading.Condition:
        return threading.Condition()


@dataclass(slots=True)
class _Item:
    seq: int  # order of logging, for flush()
    at: float  # the clock's time when it was logged
    body: bytes  # the record as JSON


@dataclass(eq=False, slots=True)
class _Batch:
    kind: Kind
    items: list[_Item]
    abandoned: bool = False  # given up by close(): its outcome is no longer counted


@dataclass(slots=True)
class _Queue:
    """Records waiting to be sent, one FIFO per endpoint, and the batches being sent. ``held``
    counts both, and is what ``max_size`` bounds. Not thread-safe: the owner locks."""

    max_size: int
    fifos: dict[Kind, deque[_Item]] = field(
        default_factory=lambda: {"predictions": deque(), "labels": deque()}
    )
    waiting: int = 0
    held: int = 0
    next_seq: int = 0
    in_flight: list[_Batch] = field(default_factory=list)

    def push(self, kind: Kind, body: bytes, now: float) -> bool:
        if self.held >= self.max_size:
            return False
        self.fifos[kind].append(_Item(self.next_seq, now, body))
        self.next_seq += 1
        self.waiting += 1
        self.held += 1
        return True

    def ready(self, now: float, batch_size: int, interval: float, force: bool) -> Kind | None:
        """The endpoint whose batch is due (the one holding the oldest record first)."""
        due: list[tuple[int, Kind]] = []
        for kind, fifo in self.fifos.items():
            if fifo and (force or len(fifo) >= batch_size or now - fifo[0].at >= interval):
                due.append((fifo[0].seq, kind))
        return min(due)[1] if due else None

    def wait_time(self, now: float, interval: float) -> float | None:
        """Seconds until the oldest waiting record is due; ``None`` when none waits."""
        heads = [fifo[0].at for fifo in self.fifos.values() if fifo]
        return max(0.0, min(heads) + interval - now) if heads else None

    def take(self, kind: Kind, batch_size: int) -> _Batch:
        fifo = self.fifos[kind]
        batch = _Batch(kind, [fifo.popleft() for _ in range(min(batch_size, len(fifo)))])
        self.waiting -= len(batch.items)
        self.in_flight.append(batch)
        return batch

    def finish(self, batch: _Batch) -> bool:
        """The batch is done; ``False`` when close() had already given it up."""
        if batch.abandoned:
            return False
        self.in_flight.remove(batch)
        self.held -= len(batch.items)
        return True

    def oldest_unfinished(self) -> int:
        """The smallest sequence number not yet sent or given up (``next_seq`` when none)."""
        heads = [fifo[0].seq for fifo in self.fifos.values() if fifo]
        heads += [batch.items[0].seq for batch in self.in_flight]
        return min(heads, default=self.next_seq)

    def abandon(self) -> int:
        """Give up every waiting and in-flight record; returns how many there were."""
        count = self.held
        for fifo in self.fifos.values():
            fifo.clear()
        for batch in self.in_flight:
            batch.abandoned = True
        self.in_flight = []
        self.waiting = self.held = 0
        return count


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _rfc3339(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a naive datetime has no offset: pass a timezone-aware datetime")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _timestamp(value: Timestamp) -> str | float | int | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"timestamp must be a datetime, Unix seconds or a string, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"timestamp must be finite, not {value!r}")
    return value


def _record_id(value: str | int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise ValueError(f"id must be a string of 1-256 characters or an integer, not {value!r}")
    return value


def _model_version(value: object) -> str:
    """The service's rule (1 to 128 characters, no NUL), checked here as the id's is: a record
    it would refuse is rejected alone, not with the whole batch it would travel with."""
    version = str(value)
    if not 1 <= len(version) <= 128 or "\x00" in version:
        raise ValueError(
            f"model_version must be 1-128 characters without NUL, not {version[:40]!r}"
        )
    return version


def _dumps(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, default=_json_default, allow_nan=False, separators=(",", ":"))
    return text.encode()


def _problem(response: httpx.Response) -> str:
    """A one-line summary of a problem+json answer (or of whatever body came)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    parts = [str(body[key]) for key in ("title", "detail") if body.get(key)]
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        shown = "; ".join(
            " ".join(str(error.get(key, "")) for key in ("index", "field", "reason"))
            if isinstance(error, dict)
            else str(error)
            for error in errors[:3]
        )
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        parts.append(f"errors: {shown}{more}")
    return ": ".join(parts) or str(body)[:300]


class _Base:
    """What both flavours share: configuration, record building, counters, retry policy."""

    #: seconds before the first resend of a batch; doubled on each further one
    initial_backoff: float = 0.1
    #: the longest wait between two attempts, a ``Retry-After`` answer included
    max_backoff: float = 30.0
    #: held while the caller's path touches the queue and the counters: the thread flavour's
    #: condition; nothing for the asyncio flavour, whose caller and sender share one thread
    _guard: AbstractContextManager[Any] = contextlib.nullcontext()

    def __init__(
        self,
        url: str,
        model: str,
        token: str | None,
        *,
        batch_size: int,
        flush_interval: float,
        max_queue: int,
        timeout: float,
        max_retry_seconds: float,
        max_in_flight: int,
        close_timeout: float,
    ) -> None:
        if batch_size < 1 or max_queue < 1 or max_in_flight < 1:
            raise ValueError("batch_size, max_queue and max_in_flight must be at least 1")
        if flush_interval < 0 or timeout <= 0 or max_retry_seconds < 0 or close_timeout < 0:
            raise ValueError(
                "flush_interval, timeout, max_retry_seconds and close_timeout must be positive"
            )
        self.url = url.rstrip("/")
        self.model = model
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.max_retry_seconds = max_retry_seconds
        self.max_in_flight = max_in_flight
        self.close_timeout = close_timeout
        self._headers = {"Content-Type": "application/json", "User-Agent": "drift-monitor-client"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._limits = httpx.Limits(
            max_connections=max_in_flight, max_keepalive_connections=max_in_flight
        )
        self._endpoints: dict[Kind, str] = {
            kind: f"{self.url}/v1/models/{quote(model, safe='')}/{kind}"
            for kind in ("predictions", "labels")
        }
        self._queue = _Queue(max_queue)
        self._counts = {"sent": 0, "dropped": 0, "rejected": 0, "failed": 0, "retries": 0}
        self._closed = False
        self._flushing = 0
        self._warned: set[str] = set()
        self._random = random.Random()

    def _now(self) -> float:
        raise NotImplementedError

    def _seconds(self, timeout: float | _Default | None) -> float | None:
        return self.close_timeout if timeout is DEFAULT else timeout

    # -- counters --------------------------------------------------------------------------

    @property
    def sent(self) -> int:
        """Records the service acknowledged (2xx)."""
        return self._counts["sent"]

    @property
    def dropped(self) -> int:
        """Records not queued: the queue was full, or the client was closed."""
        return self._counts["dropped"]

    @property
    def rejected(self) -> int:
        """Records refused: by the service (4xx other than 408/429) or unserializable."""
        return self._counts["rejected"]

    @property
    def failed(self) -> int:
        """Records given up after ``max_retry_seconds`` of retries, or still unsent when
        ``close`` stopped waiting."""
        return self._counts["failed"]

    @property
    def retries(self) -> int:
        """HTTP requests sent again after a connection error, a timeout, 408, 429 or 5xx."""
        return self._counts["retries"]

    def stats(self) -> dict[str, int]:
        """Every counter, plus ``queued``: records waiting or being sent."""
        return {**self._counts, "queued": self._queue.held}

    # -- the caller's path -----------------------------------------------------------------

    def _prediction(
        self,
        id: str | int,
        features: Mapping[str, Any],
        prediction: Any,
        scores: Mapping[str, float] | None,
        timestamp: Timestamp,
        model_version: str | None = None,
    ) -> bytes:
        record: dict[str, Any] = {
            "id": _record_id(id),
            "features": {
                name: None if isinstance(value, float) and math.isnan(value) else value
                for name, value in features.items()
            },
            "prediction": prediction,
        }
        if scores is not None:
            record["scores"] = dict(scores)
        if model_version is not None:
            record["model_version"] = _model_version(model_version)
        stamp = _timestamp(timestamp)
        if stamp is not None:
            record["timestamp"] = stamp
        return _dumps(record)

    def _label(self, id: str | int, label: Any, timestamp: Timestamp) -> bytes:
        record: dict[str, Any] = {"id": _record_id(id), "label": label}
        stamp = _timestamp(timestamp)
        if stamp is not None:
            record["timestamp"] = stamp
        return _dumps(record)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        """A warning the first time for ``key``, debug afterwards: the caller's path never
        floods the log."""
        if key in self._warned:
            logger.debug(message, *args)
        else:
            self._warned.add(key)
            logger.warning(message, *args)

    def _local_reject(self, kind: Kind, error: Exception) -> None:
        self._counts["rejected"] += 1
        self._warn_once(
            f"invalid:{kind}:{type(error).__name__}",
            "drift-monitor client: a %s record was not logged: %s (repeats are logged at debug)",
            kind[:-1],
            error,
        )

    def log_prediction(
        self,
        id: str | int,
        features: Mapping[str, Any],
        prediction: Any,
        scores: Mapping[str, float] | None = None,
        timestamp: Timestamp = None,
        model_version: str | None = None,
    ) -> None:
        """Queue a prediction record; returns at once and never raises. ``model_version``:
        the version of the model that predicted (its evaluation reports versions seen, and
        compares a canary with the stable version)."""
        try:
            body = self._prediction(id, features, prediction, scores, timestamp, model_version)
        except Exception as error:
            with self._guard:
                self._local_reject("predictions", error)
            return
        self._push("predictions", body)

    def log_label(self, id: str | int, label: Any, timestamp: Timestamp = None) -> None:
        """Queue a ground-truth label for the prediction ``id``; returns at once, never raises."""
        try:
            body = self._label(id, label, timestamp)
        except Exception as error:
            with self._guard:
                self._local_reject("labels", error)
            return
        self._push("labels", body)

    def _push(self, kind: Kind, body: bytes) -> None:
        """Queue a record's body and wake the sender when it should look (each flavour)."""
        raise NotImplementedError

    def _enqueue(self, kind: Kind, body: bytes) -> bool | None:
        """Queue a record's body; None if it was dropped (the client is closed or the queue
        full: counted, and warned of once), else whether the sender should wake: the kind's
        first queued record, or a full batch. Call under ``_guard``."""
        if self._closed or not self._queue.push(kind, body, self._now()):
            self._counts["dropped"] += 1
            reason = "closed" if self._closed else "full"
            self._warn_once(
                f"dropped:{reason}",
                "drift-monitor client: %s dropped, the client is %s (repeats at debug)",
                kind[:-1],
                "closed" if self._closed else "at max_queue",
            )
            return None
        length = len(self._queue.fifos[kind])
        return length == 1 or length == self.batch_size

    # -- the sender's path -----------------------------------------------------------------

    def _due(self) -> Kind | None:
        """The endpoint whose batch should be sent now, if a sender may take one."""
        if len(self._queue.in_flight) >= self.max_in_flight:
            return None
        force = self._flushing > 0 or self._closed
        return self._queue.ready(self._now(), self.batch_size, self.flush_interval, force)

    def _wait_time(self) -> float | None:
        """Seconds a sender may sleep before a batch falls due; ``None``: until woken."""
        if len(self._queue.in_flight) >= self.max_in_flight:
            return None
        return self._queue.wait_time(self._now(), self.flush_interval)

    def _outcome(
        self, kind: Kind, count: int, response: httpx.Response
    ) -> tuple[Literal["sent", "rejected", "retry"], float | None, str]:
        status = response.status_code
        if 200 <= status < 300:
            return "sent", None, ""
        reason = f"HTTP {status}: {_problem(response)}"
        if retried(status):
            wait = retry_after_seconds(response.headers.get("retry-after"), time.time())
            return "retry", wait, reason
        logger.warning(
            "drift-monitor client: %d %s of model %r rejected by %s, not retried: %s",
            count,
            kind,
            self.model,
            self._endpoints[kind],
            reason,
        )
        return "rejected", None, reason

    def _backoff(self, attempt: int, retry_after: float | None, started: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``; ``None`` to give the batch up."""
        delay = min(self.max_backoff, self.initial_backoff * 2.0 ** min(attempt, 60))
        delay *= self._random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff))
        if self._now() + delay - started > self.max_retry_seconds:
            return None
        return delay

    def _finish(self, batch: _Batch, outcome: Outcome, reason: str) -> None:
        """Count a batch's outcome, unless close() gave it up first. Call under ``_guard``."""
        if not self._queue.finish(batch):
            return
        self._counts[outcome] += len(batch.items)
        if outcome == "failed":
            logger.warning(
                "drift-monitor client: gave up %d %s of model %r after %g s of retries: %s",
                len(batch.items),
                batch.kind,
                self.model,
                self.max_retry_seconds,
                reason,
            )

    def _abandon(self, waited: float) -> int:
        """Give up everything unsent (close's time is up): counted in ``failed``, logged in
        one line. Call under ``_guard``."""
        unsent = self._queue.abandon()
        if unsent:
            self._counts["failed"] += unsent
            logger.warning(
                "drift-monitor client: closed after %.3g s with %d record(s) of model %r unsent "
                "(%s not reachable in time); counted in failed",
                waited,
                unsent,
                self.model,
                self.url,
            )
        return unsent

    @staticmethod
    def _body(items: list[_Item]) -> bytes:
        return b"[" + b",".join(item.body for item in items) + b"]"


class Monitor(_Base):
    """Logs predictions and labels from any thread; ``max_in_flight`` daemon threads send them.

    ``flush(timeout)`` waits until everything logged before it was sent or given up;
    ``close(timeout)`` flushes, then stops the threads (what is still unsent when the timeout
    expires is counted in ``failed``). Both wait ``close_timeout`` seconds unless told
    otherwise; ``timeout=None`` waits as long as it takes. ``close`` runs at interpreter exit.
    Also a context manager.

    ``transport`` (an :class:`httpx.BaseTransport`) and ``clock`` (a :class:`Clock`) are
    seams for tests: the default is a plain connection pool and real time.
    """

    def __init__(
        self,
        url: str,
        model: str,
        token: str | None = None,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        timeout: float = 5.0,
        max_retry_seconds: float = 300.0,
        max_in_flight: int = 4,
        close_timeout: float = CLOSE_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            url,
            model,
            token,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            timeout=timeout,
            max_retry_seconds=max_retry_seconds,
            max_in_flight=max_in_flight,
            close_timeout=close_timeout,
        )
        self._clock = clock or SystemClock()
        self._cond = self._clock.condition()
        self._guard = self._cond
        self._stopping = False  # set by close once it stops waiting: the senders end
        self._client = httpx.Client(
            timeout=timeout, headers=self._headers, transport=transport, limits=self._limits
        )
        self._senders = [
            threading.Thread(
                target=self._send_loop, name=f"drift-monitor-client-{model}-{n}", daemon=True
            )
            for n in range(max_in_flight)
        ]
        self._running = len(self._senders)
        for sender in self._senders:
            sender.start()
        atexit.register(self._at_exit)

    def _now(self) -> float:
        return self._clock.now()

    # -- the caller's path -----------------------------------------------------------------

    def _push(self, kind: Kind, body: bytes) -> None:
        with self._cond:
            if self._enqueue(kind, body):
                self._cond.notify_all()

    def stats(self) -> dict[str, int]:
        with self._cond:
            return super().stats()

    # -- flush and close -------------------------------------------------------------------

    def flush(self, timeout: float | _Default | None = DEFAULT) -> bool:
        """Send everything logged so far now; wait until it was sent or given up, or
        ``timeout`` seconds (``close_timeout`` unless given; ``None``: no limit). Returns
        ``True`` when nothing logged before the call is left; what is left stays queued."""
        seconds = self._seconds(timeout)
        with self._cond:
            deadline = None if seconds is None else self._now() + seconds
            target = self._queue.next_seq
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queue.oldest_unfinished() < target:
                    if self._running == 0:
                        return False
                    remaining = None if deadline is None else deadline - self._now()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flushing -= 1

    def close(self, timeout: float | _Default | None = DEFAULT) -> bool:
        """Flush, waiting at most ``timeout`` seconds (``close_timeout`` unless given;
        ``None``: until everything is sent or given up), then stop the senders. Records still
        unsent are given up, counted in ``failed`` and logged in one warning; further log calls
        count as ``dropped``. Returns ``True`` when nothing was left unsent."""
        with self._cond:
            if self._closed:
                return True
            self._closed = True
            started = self._now()
            self._cond.notify_all()
        atexit.unregister(self._at_exit)
        done = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._abandon(self._now() - started)
            self._cond.notify_all()
        if done:  # the senders are idle and end at once; otherwise one may be in a request
            for sender in self._senders:
                sender.join(self.timeout)
        return done

    def _at_exit(self) -> None:
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the sender threads ----------------------------------------------------------------

    def _send_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    batch = self._next_batch()
                    if batch is None:
                        return
                try:
                    outcome, reason = self._deliver(batch)
                except Exception as error:
                    logger.exception("drift-monitor client: unexpected error sending a batch")
                    outcome, reason = "failed", f"{type(error).__name__}: {error}"
                with self._cond:
                    self._finish(batch, outcome, reason)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._running -= 1
                last = self._running == 0
                self._cond.notify_all()
            if last:
                self._client.close()

    def _next_batch(self) -> _Batch | None:
        """Wait (holding the condition) until a batch is due and take it; ``None`` to stop."""
        while not self._stopping:
            kind = self._due()
            if kind is not None:
                return self._queue.take(kind, self.batch_size)
            if self._closed and self._queue.waiting == 0:
                return None
            self._cond.wait(self._wait_time())
        return None

    def _deliver(self, batch: _Batch) -> tuple[Outcome, str]:
        body = self._body(batch.items)
        url = self._endpoints[batch.kind]
        started = self._now()
        attempt = 0
        while True:
            retry_after: float | None = None
            outcome: Literal["sent", "rejected", "retry"]
            try:
                response = self._client.post(url, content=body)
            except httpx.TransportError as error:
                outcome, reason = "retry", f"{type(error).__name__}: {error}"
            else:
                outcome, retry_after, reason = self._outcome(batch.kind, len(batch.items), response)
            if outcome != "retry":
                return outcome, reason
            logger.debug("drift-monitor client: %s batch not sent (%s)", batch.kind, reason)
            with self._cond:
                delay = self._backoff(attempt, retry_after, started)
                if delay is None:
                    return "failed", reason
                until = self._now() + delay
                while not (self._stopping or batch.abandoned) and self._now() < until:
                    self._cond.wait(until - self._now())
                if self._stopping or batch.abandoned:
                    return "failed", reason  # close gave it up: not counted again
                self._counts["retries"] += 1
            attempt += 1


class AsyncMonitor(_Base):
    """The asyncio flavour: ``log_prediction``/``log_label`` are plain methods that queue and
    return; asyncio tasks send with :class:`httpx.AsyncClient`, up to ``max_in_flight``
    batches at a time.

    **Starting:** the constructor needs no event loop. The sender starts lazily, on the first
    ``log_*`` or ``flush`` call made inside a running loop, and belongs to that loop; records
    logged before that wait in the queue. Call the methods from the loop's thread only (use
    :class:`Monitor` from other threads). ``await flush(timeout)``, ``await aclose(timeout)``
    and ``async with`` work as for :class:`Monitor`, bounded by ``close_timeout`` unless told
    otherwise; nothing runs at interpreter exit, so close it (e.g. in the ASGI lifespan).

    Time is the event loop's (``loop.time()``): a loop with a virtual clock runs its retries
    and timeouts in virtual time. ``transport`` is an :class:`httpx.AsyncBaseTransport`.
    """

    def __init__(
        self,
        url: str,
        model: str,
        token: str | None = None,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        timeout: float = 5.0,
        max_retry_seconds: float = 300.0,
        max_in_flight: int = 4,
        close_timeout: float = CLOSE_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            model,
            token,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            timeout=timeout,
            max_retry_seconds=max_retry_seconds,
            max_in_flight=max_in_flight,
            close_timeout=close_timeout,
        )
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None  # takes due batches
        self._deliveries: set[asyncio.Task[None]] = set()  # one per batch being sent
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()  # set (and replaced) whenever a batch is done

    def _now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()  # the default loops' clock

    # -- the caller's path -----------------------------------------------------------------

    def _push(self, kind: Kind, body: bytes) -> None:
        wake = self._enqueue(kind, body)
        if wake is None:
            return
        if wake:
            self._wakeup.set()
        self._start()

    def _start(self) -> bool:
        if self._task is not None:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False  # not in a loop yet: the records wait
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            headers=self._headers,
            transport=self._transport,
            limits=self._limits,
        )
        self._task = loop.create_task(self._run(), name=f"drift-monitor-client-{self.model}")
        return True

    # -- flush and close -------------------------------------------------------------------

    async def flush(self, timeout: float | _Default | None = DEFAULT) -> bool:
        """Send everything logged so far now; wait until it was sent or given up, or
        ``timeout`` seconds (``close_timeout`` unless given; ``None``: no limit). Returns
        ``True`` when nothing logged before the call is left; what is left stays queued."""
        seconds = self._seconds(timeout)
        target = self._queue.next_seq
        if self._queue.oldest_unfinished() >= target:
            return True
        self._start()
        self._flushing += 1
        self._wakeup.set()
        try:
            async with asyncio.timeout(seconds):
                while self._queue.oldest_unfinished() < target:
                    if self._stalled():
                        return False
                    await self._progress.wait()
        except TimeoutError:
            return False
        finally:
            self._flushing -= 1
        return True

    def _stalled(self) -> bool:
        """Nothing is sending, nor will: the dispatcher ended (or failed) and no batch is out."""
        return self._task is not None and self._task.done() and not self._deliveries

    async def aclose(self, timeout: float | _Default | None = DEFAULT) -> bool:
        """Flush, waiting at most ``timeout`` seconds (``close_timeout`` unless given;
        ``None``: until everything is sent or given up), then stop the sender tasks. Records
        still unsent are given up, counted in ``failed`` and logged in one warning; further log
        calls count as ``dropped``. Returns ``True`` when nothing was left unsent."""
        if self._closed:
            return True
        self._closed = True
        started = self._now()
        self._wakeup.set()
        done = await self.flush(timeout)
        tasks = [task for task in (self._task, *self._deliveries) if task and not task.done()]
        for task in tasks:
            task.cancel()
        try:
            if tasks:
                await asyncio.wait(tasks)  # raises only if aclose itself is cancelled
        finally:
            self._abandon(self._now() - started)
        if self._client is not None:
            await self._client.aclose()
        return done

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the sender tasks ------------------------------------------------------------------

    async def _run(self) -> None:
        """Start a delivery task for each due batch, up to ``max_in_flight`` at a time."""
        try:
            while True:
                kind = self._due()
                if kind is not None:
                    batch = self._queue.take(kind, self.batch_size)
                    task = asyncio.create_task(self._send(batch))
                    self._deliveries.add(task)
                    task.add_done_callback(self._deliveries.discard)
                    continue
                if self._closed and self._queue.waiting == 0:
                    return
                self._wakeup.clear()
                try:
                    async with asyncio.timeout(self._wait_time()):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
        finally:
            self._notify()

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def _send(self, batch: _Batch) -> None:
        try:
            outcome, reason = await self._deliver(batch)
        except Exception as error:
            logger.exception("drift-monitor client: unexpected error sending a batch")
            outcome, reason = "failed", f"{type(error).__name__}: {error}"
        self._finish(batch, outcome, reason)
        self._notify()
        self._wakeup.set()  # a slot is free

    async def _deliver(self, batch: _Batch) -> tuple[Outcome, str]:
        assert self._client is not None
        body = self._body(batch.items)
        url = self._endpoints[batch.kind]
        started = self._now()
        attempt = 0
        while True:
            retry_after: float | None = None
            outcome: Literal["sent", "rejected", "retry"]
            try:
                response = await self._client.post(url, content=body)
            except httpx.TransportError as error:
                outcome, reason = "retry", f"{type(error).__name__}: {error}"
            else:
                outcome, retry_after, reason = self._outcome(batch.kind, len(batch.items), response)
            if outcome != "retry":
                return outcome, reason
            logger.debug("drift-monitor client: %s batch not sent (%s)", batch.kind, reason)
            delay = self._backoff(attempt, retry_after, started)
            if delay is None:
                return "failed", reason
            await asyncio.sleep(delay)
            self._counts["retries"] += 1
            attempt += 1
