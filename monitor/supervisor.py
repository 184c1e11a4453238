"""``monitor supervise serve ...``: keep ``monitor serve`` running inside its own container.

Kubernetes counts a native sidecar that is not running as not ready, and so its whole pod: a
monitor that crashed, was killed for memory or hung (and was restarted by a liveness probe)
would take the model it watches out of its Services until it ran again. Under ``supervise``
the container's process is this small loop, which never exits on its own: it runs
``monitor serve`` as a child process and

* starts it again when it exits (a crash, an out-of-memory kill), after a back-off that doubles
  from ``backoff`` up to ``max_backoff`` and resets once a child has run ``settled`` seconds;
* asks the child's ``/healthz`` every ``check_every`` seconds and replaces a child that has not
  answered for ``hung_after`` seconds (SIGTERM, then SIGKILL after ``grace``): the liveness
  probe's job, done without restarting the container;
* on SIGTERM or SIGINT (the pod stopping) passes the signal on, waits up to ``grace`` for the
  child and exits with its status.

So the sidecar needs no probe at all and its container stays running, ready as Kubernetes
counts it, whatever the monitor does; what the monitor does shows in Prometheus (its scrape
fails, ``DriftMonitorDown``) and in the log, one line per restart.

The loop takes its clock, its sleep, the child's start and the health check as arguments, so
tests drive it in virtual time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("monitor.supervisor")


class Child(Protocol):
    """What ``subprocess.Popen`` offers and the loop uses."""

    pid: int

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Policy:
    """Seconds: how often to look, how long an unanswered ``/healthz`` is tolerated, how long
    a stopping child gets, and the restart back-off."""

    check_every: float = 10.0
    hung_after: float = 60.0
    grace: float = 10.0
    backoff: float = 1.0
    max_backoff: float = 30.0
    settled: float = 60.0
    #: how often the loop looks whether the child exited or a stop was asked
    tick: float = 0.5


def supervise(
    start: Callable[[], Child],
    healthy: Callable[[], bool],
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    stopping: Callable[[], bool],
    policy: Policy = Policy(),
) -> int:
    """Run children from ``start()`` until ``stopping()``; the last child's exit status (0
    when none ran)."""
    backoff = policy.backoff
    status = 0
    while not stopping():
        child = start()
        started = last_answer = last_check = clock()
        log.info("monitor serve started (pid %d)", child.pid)
        while True:
            code = child.poll()
            if code is not None:
                status = code
                log.warning("monitor serve (pid %d) exited with status %d", child.pid, code)
                break
            if stopping():
                return _stop(child, clock=clock, sleep=sleep, grace=policy.grace)
            now = clock()
            if now - last_check >= policy.check_every:
                last_check = now
                if healthy():
                    last_answer = now
                elif now - last_answer >= policy.hung_after:
                    log.warning(
                        "monitor serve (pid %d) has not answered /healthz for %.0f s: replacing it",
                        child.pid,
                        now - last_answer,
                    )
                    status = _stop(child, clock=clock, sleep=sleep, grace=policy.grace)
                    break
            sleep(policy.tick)
        ran = clock() - started
        backoff = policy.backoff if ran >= policy.settled else backoff
        wake = clock() + backoff
        log.info("starting monitor serve again in %.0f s", backoff)
        while clock() < wake and not stopping():
            sleep(min(policy.tick, wake - clock()))
        backoff = min(policy.max_backoff, backoff * 2)
    return status


def _stop(
    child: Child, *, clock: Callable[[], float], sleep: Callable[[float], None], grace: float
) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; the child's exit status."""
    child.terminate()
    deadline = clock() + grace
    while (code := child.poll()) is None:
        if clock() >= deadline:
            child.kill()
            deadline = float("inf")
        sleep(0.1)
    return code
