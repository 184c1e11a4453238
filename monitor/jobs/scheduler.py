"""A thin wrapper over APScheduler 3.x's background scheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.errors import StorageUnavailableError

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run_guarded(job: Callable[[], object], *, name: str) -> None:
    """Run ``job`` once; a failure is logged and the next run still happens. The database
    being unavailable (an outage: ``StorageUnavailableError``) is one line, not a traceback
    every run."""
    try:
        job()
    except StorageUnavailableError as exc:
        log.warning(
            "scheduled job %s: the database is unavailable (%s); next run as scheduled", name, exc
        )
    except Exception:
        log.exception("scheduled job %s failed", name)


#: Threads of the default pool (APScheduler's default).
DEFAULT_THREADS = 10


class Scheduler:
    """Runs each job on its interval in a background thread; a job never overlaps itself.
    A job runs in the default pool of threads or in a named one of ``pools`` (name: threads),
    where jobs due when all its threads are busy wait their turn, however long: a job reads
    the clock when it runs (APScheduler's default dropped a run that waited over a second)."""

    def __init__(self, pools: dict[str, int] | None = None) -> None:
        executors = {"default": ThreadPoolExecutor(DEFAULT_THREADS)}
        executors.update({name: ThreadPoolExecutor(n) for name, n in (pools or {}).items()})
        self._scheduler = BackgroundScheduler(timezone="UTC", executors=executors)

    def every(
        self,
        interval: timedelta,
        job: Callable[[], object],
        *,
        name: str,
        run_now: bool = False,
        align: bool = False,
        pool: str = "default",
    ) -> None:
        """Run ``job`` every ``interval`` in ``pool``'s threads; ``align``: at the multiples
        of ``interval`` on the Unix epoch (every replica at the same instants, the model's
        ticks), rather than from now."""

        def guarded() -> None:
            run_guarded(job, name=name)

        # run_now: the same job, first due at once (a separate one-off job raced with its own
        # removal inside APScheduler when the scheduler shut down soon after starting)
        first: dict[str, datetime] = {"next_run_time": datetime.now(UTC)} if run_now else {}
        if align:
            first["start_date"] = _EPOCH
        self._scheduler.add_job(
            guarded,
            "interval",
            seconds=interval.total_seconds(),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            replace_existing=True,
            executor=pool,
            misfire_grace_time=None,
            **first,
        )

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
