"""A client for model servers: log predictions and labels to drift-monitor without waiting on it.

Usage::

    monitor = Monitor("http://127.0.0.1:8000", "credit", token=os.environ.get("MONITOR_TOKEN"))
    monitor.log_prediction("req-1", {"age": 42, "income": 51000.0, "country": "DE"}, "approved")
    monitor.log_label("req-1", "rejected")  # later; records are flushed at exit or by close()

``log_prediction`` and ``log_label`` never block on the network and never raise: a record is
serialized, put on a bounded in-memory queue and returns. A background sender (a daemon thread
for :class:`Monitor`, an asyncio task for :class:`AsyncMonitor`) POSTs the queue in batches of
``batch_size`` records, or whatever is queued once its oldest record is ``flush_interval``
seconds old. Delivery:

- **2xx**: the records are counted in ``sent``.
- **Connection error, timeout, 408, 429, 5xx**: the same batch is sent again after an
  exponential backoff (0.1 s doubling to 30 s, times a random 0.5-1 jitter; a ``Retry-After``
  in seconds is honoured up to 30 s; see the class attributes ``initial_backoff`` and
  ``max_backoff``), until ``max_retry_seconds`` have passed since its first attempt; then it
  is given up and counted in ``failed``. Sending a batch twice is safe: the service stores an
  id once. Each resend is counted in ``retries``.
- **Any other 4xx** (an invalid batch, an unknown model, a bad token): the batch is dropped,
  counted in ``rejected`` and logged once (logger ``monitor.client``, with the problem's detail
  and its first errors); it is not retried. The service stores all or nothing of a batch, so
  one invalid record loses its whole batch.
- A record that cannot be serialized (a naive ``datetime``, an id that is not a string of 1-256
  characters or an integer, a value JSON cannot represent) is counted in ``rejected`` when it
  is logged and never queued.
- A record logged while ``max_queue`` records wait (the batch being sent is not counted), or
  after ``close()``, is counted in ``dropped``.

Every count is in records except ``retries`` (HTTP requests sent again); ``stats()`` returns
them all. Timestamps may be timezone-aware :class:`~datetime.datetime` objects (sent as RFC 3339
in UTC), Unix seconds (``int``/``float``), RFC 3339 strings (sent as they are) or ``None`` (the
service uses the time it receives the batch). A ``NaN`` feature value is sent as ``null``
(missing). numpy scalars are converted with ``.item()``.

:class:`Monitor` registers ``close()`` with :mod:`atexit`, so what is queued is sent when the
interpreter exits (waiting at most ``exit_timeout`` seconds). :class:`AsyncMonitor` cannot be
flushed by ``atexit``: ``await aclose()`` it (or use ``async with``), e.g. in a FastAPI
lifespan.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx

__all__ = ["AsyncMonitor", "Monitor"]

logger = logging.getLogger("monitor.client")

Kind = Literal["predictions", "labels"]
Timestamp = datetime | float | int | str | None


@dataclass(slots=True)
class _Item:
    seq: int  # order of logging, for flush()
    at: float  # time.monotonic() when it was logged
    body: bytes  # the record as JSON


class _Queue:
    """Records waiting to be sent, one FIFO per endpoint, and the batch being sent. Not
    thread-safe: the owner locks."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.fifos: dict[Kind, deque[_Item]] = {"predictions": deque(), "labels": deque()}
        self.size = 0
        self.next_seq = 0
        self.in_flight: list[_Item] = []

    def push(self, kind: Kind, body: bytes, now: float) -> bool:
        if self.size >= self.max_size:
            return False
        self.fifos[kind].append(_Item(self.next_seq, now, body))
        self.next_seq += 1
        self.size += 1
        return True

    def ready(self, now: float, batch_size: int, interval: float, force: bool) -> Kind | None:
        """The endpoint whose batch is due (the one holding the oldest record first)."""
        due: list[tuple[int, Kind]] = []
        for kind, fifo in self.fifos.items():
            if fifo and (force or len(fifo) >= batch_size or now - fifo[0].at >= interval):
                due.append((fifo[0].seq, kind))
        return min(due)[1] if due else None

    def wait_time(self, now: float, interval: float) -> float | None:
        """Seconds until the oldest queued record is due; ``None`` when nothing is queued."""
        heads = [fifo[0].at for fifo in self.fifos.values() if fifo]
        return max(0.0, min(heads) + interval - now) if heads else None

    def take(self, kind: Kind, batch_size: int) -> list[_Item]:
        fifo = self.fifos[kind]
        items = [fifo.popleft() for _ in range(min(batch_size, len(fifo)))]
        self.size -= len(items)
        self.in_flight = items
        return items

    def oldest_unfinished(self) -> int:
        """The smallest sequence number not yet sent or given up (``next_seq`` when none)."""
        heads = [fifo[0].seq for fifo in self.fifos.values() if fifo]
        if self.in_flight:
            heads.append(self.in_flight[0].seq)
        return min(heads, default=self.next_seq)

    def clear(self) -> int:
        """Forget every queued and in-flight record; returns how many there were."""
        count = self.size + len(self.in_flight)
        for fifo in self.fifos.values():
            fifo.clear()
        self.size = 0
        self.in_flight = []
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


def _dumps(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, default=_json_default, allow_nan=False, separators=(",", ":"))
    return text.encode()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: the exponential backoff is good enough
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


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
    ) -> None:
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be at least 1")
        if flush_interval < 0 or timeout <= 0 or max_retry_seconds < 0:
            raise ValueError("flush_interval, timeout and max_retry_seconds must be positive")
        self.url = url.rstrip("/")
        self.model = model
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.max_retry_seconds = max_retry_seconds
        self._headers = {"Content-Type": "application/json", "User-Agent": "drift-monitor-client"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._endpoints: dict[Kind, str] = {
            kind: f"{self.url}/v1/models/{quote(model, safe='')}/{kind}"
            for kind in ("predictions", "labels")
        }
        self._queue = _Queue(max_queue)
        self._counts = {"sent": 0, "dropped": 0, "rejected": 0, "failed": 0, "retries": 0}
        self._closed = False
        self._warned: set[str] = set()

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
        """Records given up after ``max_retry_seconds`` of retries (or abandoned by close)."""
        return self._counts["failed"]

    @property
    def retries(self) -> int:
        """HTTP requests sent again after a connection error, a timeout, 408, 429 or 5xx."""
        return self._counts["retries"]

    def stats(self) -> dict[str, int]:
        """Every counter, plus ``queued``: records waiting or being sent."""
        return {**self._counts, "queued": self._queue.size + len(self._queue.in_flight)}

    # -- the caller's path -----------------------------------------------------------------

    def _prediction(
        self,
        id: str | int,
        features: Mapping[str, Any],
        prediction: Any,
        scores: Mapping[str, float] | None,
        timestamp: Timestamp,
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

    # -- the caller's path -----------------------------------------------------------------

    def log_prediction(
        self,
        id: str | int,
        features: Mapping[str, Any],
        prediction: Any,
        scores: Mapping[str, float] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Queue a prediction record; returns at once and never raises."""
        try:
            body = self._prediction(id, features, prediction, scores, timestamp)
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
        if self._closed or not self._queue.push(kind, body, time.monotonic()):
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

    def _outcome(
        self, kind: Kind, count: int, response: httpx.Response
    ) -> tuple[Literal["sent", "rejected", "retry"], float | None, str]:
        status = response.status_code
        if 200 <= status < 300:
            return "sent", None, ""
        reason = f"HTTP {status}: {_problem(response)}"
        if status in (408, 429) or status >= 500:
            return "retry", _retry_after(response.headers.get("retry-after")), reason
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
        delay *= random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff))
        if time.monotonic() + delay - started > self.max_retry_seconds:
            return None
        return delay

    def _give_up(self, kind: Kind, count: int, reason: str) -> None:
        self._counts["failed"] += count
        logger.warning(
            "drift-monitor client: gave up %d %s of model %r after %g s of retries: %s",
            count,
            kind,
            self.model,
            self.max_retry_seconds,
            reason,
        )

    @staticmethod
    def _body(items: list[_Item]) -> bytes:
        return b"[" + b",".join(item.body for item in items) + b"]"


class Monitor(_Base):
    """Logs predictions and labels from any thread; a daemon thread sends them.

    ``flush(timeout)`` waits until everything logged before it was sent or given up;
    ``close(timeout)`` flushes, then stops the thread (what is still unsent when the timeout
    expires is counted in ``failed``). ``close`` runs at interpreter exit (``exit_timeout``).
    Also a context manager.
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
        exit_timeout: float = 10.0,
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
        )
        self.exit_timeout = exit_timeout
        self._cond = threading.Condition()
        self._guard = self._cond
        self._abort = threading.Event()
        self._flushing = 0
        self._closing = False
        self._thread = threading.Thread(
            target=self._run, name=f"drift-monitor-client-{model}", daemon=True
        )
        self._thread.start()
        atexit.register(self._at_exit)

    # -- the caller's path -----------------------------------------------------------------

    def _push(self, kind: Kind, body: bytes) -> None:
        with self._cond:
            if self._enqueue(kind, body):
                self._cond.notify_all()

    def stats(self) -> dict[str, int]:
        with self._cond:
            return super().stats()

    # -- flush and close -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything logged so far now; wait until it was sent or given up (or
        ``timeout`` seconds). Returns ``True`` when nothing logged before the call is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queue.next_seq
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queue.oldest_unfinished() < target:
                    if not self._thread.is_alive():
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flushing -= 1

    def close(self, timeout: float | None = None) -> bool:
        """Flush (waiting at most ``timeout`` seconds), then stop the sender. Records still
        unsent are counted in ``failed``. Further log calls count as ``dropped``. Returns
        ``True`` when everything was sent or given up in time."""
        with self._cond:
            if self._closed:
                return True
            self._closed = True
            self._closing = True
            self._cond.notify_all()
        atexit.unregister(self._at_exit)
        done = self.flush(timeout)
        self._abort.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(self.timeout + 1.0)
        return done

    def _at_exit(self) -> None:
        self.close(self.exit_timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the sender thread -----------------------------------------------------------------

    def _run(self) -> None:
        client = httpx.Client(timeout=self.timeout, headers=self._headers)
        try:
            while True:
                with self._cond:
                    kind = self._next_batch()
                    if kind is None:
                        return
                    items = self._queue.take(kind, self.batch_size)
                try:
                    self._deliver(client, kind, items)
                except Exception:
                    logger.exception("drift-monitor client: unexpected error sending a batch")
                    with self._cond:
                        self._counts["failed"] += len(items)
                finally:
                    with self._cond:
                        self._queue.in_flight = []
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._counts["failed"] += self._queue.clear()
                self._cond.notify_all()
            client.close()

    def _next_batch(self) -> Kind | None:
        """Wait (holding the condition) until a batch is due; ``None`` to stop."""
        while not self._abort.is_set():
            now = time.monotonic()
            force = self._flushing > 0 or self._closing
            kind = self._queue.ready(now, self.batch_size, self.flush_interval, force)
            if kind is not None:
                return kind
            if self._closing and self._queue.size == 0:
                return None
            self._cond.wait(self._queue.wait_time(now, self.flush_interval))
        return None

    def _deliver(self, client: httpx.Client, kind: Kind, items: list[_Item]) -> None:
        body = self._body(items)
        started = time.monotonic()
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = client.post(self._endpoints[kind], content=body)
            except httpx.TransportError as error:
                outcome, reason = "retry", f"{type(error).__name__}: {error}"
            else:
                outcome, retry_after, reason = self._outcome(kind, len(items), response)
            if outcome != "retry":
                with self._cond:
                    self._counts[outcome] += len(items)
                return
            delay = self._backoff(attempt, retry_after, started)
            logger.debug("drift-monitor client: %s batch not sent (%s)", kind, reason)
            if delay is None or self._abort.wait(delay):
                with self._cond:
                    self._give_up(kind, len(items), reason)
                return
            with self._cond:
                self._counts["retries"] += 1
            attempt += 1


class AsyncMonitor(_Base):
    """The asyncio flavour: ``log_prediction``/``log_label`` are plain methods that queue and
    return; an asyncio task sends with :class:`httpx.AsyncClient`.

    **Starting:** the constructor needs no event loop. The sender task starts lazily, on the
    first ``log_*`` or ``flush`` call made inside a running loop, and belongs to that loop;
    records logged before that wait in the queue. Call the methods from the loop's thread
    only (use :class:`Monitor` from other threads). ``await flush(timeout)``,
    ``await aclose(timeout)`` and ``async with`` work as for :class:`Monitor`; nothing runs at
    interpreter exit, so close it (e.g. in the ASGI lifespan).
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
        )
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()  # set (and replaced) whenever a batch is done
        self._flushing = 0
        self._closing = False

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
        self._task = loop.create_task(self._run(), name=f"drift-monitor-client-{self.model}")
        return True

    # -- flush and close -------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything logged so far now; wait until it was sent or given up (or
        ``timeout`` seconds). Returns ``True`` when nothing logged before the call is left."""
        target = self._queue.next_seq
        if self._queue.oldest_unfinished() >= target:
            return True
        self._start()
        task = self._task
        assert task is not None
        self._flushing += 1
        self._wakeup.set()
        try:
            async with asyncio.timeout(timeout):
                while not task.done() and self._queue.oldest_unfinished() < target:
                    await self._progress.wait()
        except TimeoutError:
            return False
        finally:
            self._flushing -= 1
        return self._queue.oldest_unfinished() >= target

    async def aclose(self, timeout: float | None = None) -> bool:
        """Flush (waiting at most ``timeout`` seconds), then stop the sender task. Records still
        unsent are counted in ``failed``; further log calls count as ``dropped``."""
        if self._closed:
            return True
        self._closed = True
        self._closing = True
        self._wakeup.set()
        done = await self.flush(timeout)
        task = self._task
        if task is not None:
            if not task.done():
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # aclose itself was cancelled
        self._counts["failed"] += self._queue.clear()
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

    # -- the sender task -------------------------------------------------------------------

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as client:
            try:
                while True:
                    now = time.monotonic()
                    force = self._flushing > 0 or self._closing
                    kind = self._queue.ready(now, self.batch_size, self.flush_interval, force)
                    if kind is None:
                        if self._closing and self._queue.size == 0:
                            return
                        self._wakeup.clear()
                        try:
                            async with asyncio.timeout(
                                self._queue.wait_time(now, self.flush_interval)
                            ):
                                await self._wakeup.wait()
                        except TimeoutError:
                            pass
                        continue
                    items = self._queue.take(kind, self.batch_size)
                    try:
                        await self._deliver(client, kind, items)
                    except Exception:
                        logger.exception("drift-monitor client: unexpected error sending a batch")
                        self._counts["failed"] += len(items)
                    self._queue.in_flight = []
                    self._notify()
            finally:
                self._counts["failed"] += self._queue.clear()
                self._notify()

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def _deliver(self, client: httpx.AsyncClient, kind: Kind, items: list[_Item]) -> None:
        body = self._body(items)
        started = time.monotonic()
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await client.post(self._endpoints[kind], content=body)
            except httpx.TransportError as error:
                outcome, reason = "retry", f"{type(error).__name__}: {error}"
            else:
                outcome, retry_after, reason = self._outcome(kind, len(items), response)
            if outcome != "retry":
                self._counts[outcome] += len(items)
                return
            delay = self._backoff(attempt, retry_after, started)
            logger.debug("drift-monitor client: %s batch not sent (%s)", kind, reason)
            if delay is None:
                self._give_up(kind, len(items), reason)
                return
            await asyncio.sleep(delay)
            self._counts["retries"] += 1
            attempt += 1
