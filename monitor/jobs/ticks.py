"""The scheduled evaluation: one evaluation per model per tick, whatever the number of replicas.

A model's ticks are the multiples of its ``schedule`` on the Unix epoch (``monitor replay``'s
ticks). Each replica's job fires just after each tick (``Scheduler.every(..., align=True)``)
and, for each tick due, claims it in the database (``storage.ticks``); the one replica whose
claim wins evaluates the model *as of the tick*, and marks the tick done in the transaction
that stores the evaluation. So ``alerts.for: N`` means N ticks with one replica or five.

The ticks due at a run are the current one, the previous one when this replica was already
running at its time (a run that fired late or not at all is caught up), and any tick of the
last ``LOOKBACK_TICKS`` whose claimant's lease ran out without finishing (its replica died or
hung): it is taken over, oldest first, by the next replica to run, within one schedule period.
A lease lasts half a period, so it has run out by the next tick's run. A tick another replica
holds or has done is not claimed at all (one read finds it), so a replica that lost a tick
pays one read-write transaction for it, not a claim attempt.

Work is shared by the claims: every replica runs every model's job, in a pool of
``EVALUATION_THREADS`` threads (the others wait their turn), and a run claims its ticks only
when it starts. A replica thus holds no more claims than it is evaluating; a busy (or slow)
replica's later runs find their ticks claimed by replicas that had a thread free.

Each run first adopts the model's reference version, latest stored evaluation and alert
states (``adopt``; the service does so at start too), so the gauges of a replica that did not
win the last tick describe what the winner stored, one period late at most: every replica
exports the same values, and ``max by (model, ...)`` over the replicas is one series.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Connection

from monitor.config import ModelConfig
from monitor.domain import Evaluation
from monitor.errors import StorageUnavailableError
from monitor.storage import ticks as claims
from monitor.storage.database import Database

log = logging.getLogger(__name__)

#: Lapsed claims of the last this many ticks are taken over; older ones are given up.
LOOKBACK_TICKS = 10
#: Claims of ticks older than this many periods are deleted (they are never looked at again).
KEEP_TICKS = 100
#: Scheduled evaluations a replica runs at once (its scheduler's pool "evaluations"; one can
#: compute while another reads the database). A run claims a tick only when it starts, so a
#: replica holds no more claims than this, and the ticks it has no thread for go to others.
EVALUATION_THREADS = 2


class Evaluate(Protocol):
    def __call__(
        self,
        config: ModelConfig,
        *,
        at: float | None = None,
        webhooks: bool = True,
        guard: Callable[[Connection], None] | None = None,
    ) -> Evaluation: ...


class TickTakenOver(Exception):
    """The claim lapsed and another replica took the tick over: this evaluation is rolled
    back, the other one is stored."""


def replica_id() -> str:
    """This process's name in claims: host, process id and a random part (a restarted process
    with a recycled pid is another replica)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def tick_at(now: float, every: float) -> float:
    """The latest tick at or before ``now``.

    >>> tick_at(1201.5, 600.0), tick_at(1200.0, 600.0)
    (1200.0, 1200.0)
    """
    return math.floor(now / every) * every


class EvaluationTicks:
    """Runs a model's scheduled evaluations (see the module docstring)."""

    def __init__(
        self,
        *,
        database: Database,
        clock: Callable[[], float],
        evaluate: Evaluate,
        adopt: Callable[[ModelConfig], object] | None = None,
        replica: str | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self._evaluate = evaluate
        self._adopt = adopt
        self.replica = replica or replica_id()
        self._started = clock()

    def run(self, config: ModelConfig) -> list[float]:
        """Evaluate every tick of ``config`` that is due and this replica wins; the ticks
        evaluated, oldest first."""
        model = config.name
        every = config.schedule.total_seconds()
        if self._adopt is not None:  # what another replica stored at the last tick
            try:
                self._adopt(config)
            except StorageUnavailableError as exc:  # an outage: one line, as the scheduler's
                log.warning(
                    "model %s: reading the latest stored evaluation: the database is "
                    "unavailable (%s)",
                    model,
                    exc,
                )
            except Exception:
                log.exception("model %s: reading the latest stored evaluation failed", model)
        now = self.clock()
        current = tick_at(now, every)
        candidates = [current]
        previous = current - every
        if previous >= self._started:  # caught up when no replica ran it
            candidates.append(previous)
        with self.database.write() as connection:
            due = claims.claimable(
                connection,
                model=model,
                now=now,
                since=current - LOOKBACK_TICKS * every,
                candidates=candidates,
            )
            claims.forget_before(connection, model=model, before=current - KEEP_TICKS * every)
        evaluated = []
        for tick in due:
            try:
                if self.evaluate_tick(config, tick, lease=every / 2):
                    evaluated.append(tick)
            except StorageUnavailableError as exc:  # an outage, a cut connection
                log.warning(
                    "model %s: evaluation of tick %s: the database is unavailable (%s); its "
                    "claim lapses and it is taken again at a later run",
                    model,
                    tick,
                    exc,
                )
            except Exception:  # the claim lapses and is taken over (retried) at a later run
                log.exception("model %s: evaluation of tick %s failed", model, tick)
        return evaluated

    def evaluate_tick(self, config: ModelConfig, tick: float, *, lease: float) -> bool:
        """Claim ``tick`` and, if won, evaluate as of it; False when another replica has it
        (or took it over before this evaluation was stored)."""
        model = config.name
        with self.database.write() as connection:
            won = claims.claim(
                connection,
                model=model,
                tick=tick,
                replica=self.replica,
                now=self.clock(),
                lease=lease,
            )
        if not won:
            return False

        def finish(connection: Connection) -> None:
            if not claims.finish(
                connection, model=model, tick=tick, replica=self.replica, now=self.clock()
            ):
                raise TickTakenOver(f"{model} at {tick}")

        try:
            self._evaluate(config, at=tick, guard=finish)
        except TickTakenOver:
            log.info("model %s: tick %s was taken over by another replica", model, tick)
            return False
        return True
