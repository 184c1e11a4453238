"""Start the service in the background, retrying while its database is unavailable.

``monitor serve`` answers HTTP at once, database or not: ``StorageConnector`` runs the
service's ``start`` (migrations, reference loading, scheduled jobs) on a thread of its own
and, while the database is unavailable (as the injected ``unavailable`` function decides),
logs one line per failed attempt and tries again after a capped exponential backoff with
jitter. Until ``start`` succeeds the service is not ready (``/readyz`` 503, the database's
routes 503 with ``Retry-After``); afterwards it serves, with no restart. Any other error ends
the attempts and is reported through ``on_failure`` (the command then exits 1).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from monitor.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Seconds between attempts: ``initial_seconds`` doubling (``factor``) up to
    ``max_seconds``, each scaled by a random factor within ±``jitter`` (and still at most
    ``max_seconds``), so that replicas restarted together do not retry in step."""

    initial_seconds: float = 0.5
    factor: float = 2.0
    max_seconds: float = 30.0
    jitter: float = 0.2

    def delay(self, attempt: int, *, draw: float) -> float:
        """The wait after failed attempt ``attempt`` (counted from 1); ``draw``, in [0, 1),
        picks the jitter (0.5: none)."""
        # the exponent is capped so that a long outage never overflows the float
        base = min(self.max_seconds, self.initial_seconds * self.factor ** min(attempt - 1, 64))
        return min(self.max_seconds, base * (1.0 + self.jitter * (2.0 * draw - 1.0)))


class StorageConnector:
    """Runs ``start`` until it succeeds, retrying the failures ``unavailable`` explains.

    ``unavailable(error)`` returns a one-line reason when ``error`` means the database is
    unavailable, else None. ``database`` names the database in the log (a URL with its
    password hidden). ``wait(seconds)`` sleeps and returns True when the wait was cut short
    by ``stop()``; tests inject it (and ``draw``, the jitter's random source) to drive the
    backoff without sleeping.
    """

    def __init__(
        self,
        start: Callable[[], None],
        *,
        database: str,
        unavailable: Callable[[BaseException], str | None],
        backoff: Backoff | None = None,
        wait: Callable[[float], bool] | None = None,
        draw: Callable[[], float] = random.random,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._start = start
        self._database = database
        self._unavailable = unavailable
        self._backoff = backoff or Backoff()
        self._stopping = threading.Event()
        self._wait = wait or self._stopping.wait
        self._draw = draw
        self._on_failure = on_failure
        self._thread: threading.Thread | None = None
        #: attempts made so far (the one in flight included)
        self.attempts = 0
        #: the error that ended the attempts, when one did
        self.failure: BaseException | None = None

    def run(self) -> bool:
        """Attempt ``start`` until it succeeds (True) or fails for good or ``stop()`` is
        called (False), in the calling thread."""
        while not self._stopping.is_set():
            self.attempts += 1
            try:
                self._start()
            except Exception as exc:
                reason = self._unavailable(exc)
                if reason is None:
                    self._fail(exc)
                    return False
                delay = self._backoff.delay(self.attempts, draw=self._draw())
                log.warning(
                    "database %s not reachable (attempt %d, retrying in %.1fs): %s",
                    self._database,
                    self.attempts,
                    delay,
                    reason,
                )
                if self._wait(delay):
                    return False
                continue
            if self.attempts > 1:
                log.info(
                    "database %s reachable after %d attempts; the service is ready",
                    self._database,
                    self.attempts,
                )
            return True
        return False

    @property
    def running(self) -> bool:
        """Whether the thread of ``start()`` is still attempting."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Run the attempts on a daemon thread (a process exiting never waits for one
        stuck in a connect)."""
        self._thread = threading.Thread(target=self.run, name="storage-connector", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        """End the attempts: a wait between two ends at once; an attempt in flight is given
        up to ``timeout`` seconds to finish."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("start-up attempt still in flight after %.0fs; not waiting", timeout)

    def _fail(self, error: BaseException) -> None:
        self.failure = error
        if isinstance(error, ConfigError):
            for issue in error.issues:
                log.error("%s", issue)
        else:  # not an outage: a defect or a misconfiguration, whose traceback is wanted
            log.error("start-up failed", exc_info=error)
        if self._on_failure is not None:
            self._on_failure(error)
