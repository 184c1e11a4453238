"""Virtual time for the Python client's tests: retries, timeouts and slow answers without real
waiting.

``VirtualClock`` is a ``monitor.client.Clock`` for ``Monitor``: time stands still while the
test's thread or any of the monitor's sender threads is busy, and jumps to the earliest
deadline once every one of them waits. So a test that calls ``close()`` sees time pass exactly
as far as the client's own waits take it, and never past a deadline a thread still waits for.

``VirtualTimeLoop`` is the same for ``AsyncMonitor``: an event loop whose ``time()`` jumps to
the next timer whenever nothing is ready to run (``asyncio.Runner(loop_factory=...)``).
"""

from __future__ import annotations

import asyncio
import math
import selectors
import threading
from typing import Any

#: A real-time fallback for a waiter that no jump will wake (a sender thread ended between
#: two checks): it looks again. Jumps never depend on it.
_RECHECK_SECONDS = 0.05


class VirtualClock:
    """Virtual monotonic seconds for one ``Monitor`` of model ``model``: its participants are
    the thread that created the clock and the monitor's sender threads (found by name)."""

    def __init__(self, model: str, start: float = 1000.0) -> None:
        self.time = start
        self._owner = threading.current_thread()
        self._threads = f"drift-monitor-client-{model}-"
        self._waiting: dict[threading.Thread, float] = {}
        self._condition = _VirtualCondition(self)

    def now(self) -> float:
        return self.time

    def condition(self) -> threading.Condition:
        return self._condition

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass (a slow answer, in a sender thread)."""
        with self._condition:
            end = self.time + seconds
            while self.time < end:
                self._condition.wait(end - self.time)

    def advance(self, seconds: float) -> None:
        """Move time on from the test (e.g. to let a request left running after close end)."""
        with self._condition:
            self.time += seconds
            self._condition.notify_all()

    def _jump(self) -> None:
        """Under the condition: if every participant waits, move to the earliest deadline."""
        participants = [self._owner] + [
            thread
            for thread in threading.enumerate()
            if thread.name.startswith(self._threads) and thread.is_alive()
        ]
        if all(thread in self._waiting for thread in participants):
            earliest = min(self._waiting.values())
            if math.isfinite(earliest) and earliest > self.time:
                self.time = earliest
                self._condition.notify_all()


class _VirtualCondition(threading.Condition):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        clock = self._clock
        deadline = math.inf if timeout is None else clock.time + timeout
        if deadline <= clock.time:
            return False
        me = threading.current_thread()
        clock._waiting[me] = deadline
        try:
            clock._jump()
            if clock.time >= deadline:
                return False
            # a notify, a jump, or the fallback: callers look again either way
            return super().wait(_RECHECK_SECONDS)
        finally:
            clock._waiting.pop(me, None)

    def notify(self, n: int = 1) -> None:
        # (notify_all calls notify) a woken thread is busy until it waits again: no jump may
        # pass it by, so none counts as waiting any more
        self._clock._waiting.clear()
        super().notify(n)


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, start: float) -> None:
        super().__init__()
        self.time = start

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer: only I/O or another thread can wake the loop
            blocked: list[Any] = super().select(None)
            return blocked
        self.time += timeout  # nothing to do until the next timer: go there
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 1000.0) -> None:
        self._selector_with_time = _JumpingSelector(start)
        super().__init__(self._selector_with_time)

    def time(self) -> float:
        return self._selector_with_time.time
