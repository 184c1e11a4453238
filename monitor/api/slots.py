"""Bound how many large request bodies are decompressed, decoded and stored at once.

Each large body in work costs memory (``ingest.chunked``: its compressed bytes and a chunk of
records, or a whole JSON array); ``server.max_concurrent_large_bodies`` of them at once is what
the memory arithmetic of docs/deployment.md counts. A body that finds every slot taken waits
for one, first come first served, for up to ``wait_seconds``, if fewer than ``2 * slots`` wait
already; otherwise, or when the wait runs out, it is answered 503 with ``Retry-After`` and
nothing of it is stored. (A waiting body holds its compressed bytes, so waiters are counted.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from monitor.api.problems import ProblemError

#: How long a large body waits for a slot before it is answered 503.
WAIT_SECONDS = 30.0
RETRY_AFTER_SECONDS = 1


class DecodeSlots:
    def __init__(self, *, slots: int, wait_seconds: float = WAIT_SECONDS) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._semaphore = asyncio.Semaphore(slots)
        self._waiting = 0

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold a slot for the block; ``ProblemError`` 503 when none frees in time."""
        if self._semaphore.locked() and self._waiting >= 2 * self.slots:
            raise self._busy()
        self._waiting += 1
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self._semaphore.acquire()
        except TimeoutError:
            raise self._busy() from None
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._semaphore.release()

    def _busy(self) -> ProblemError:
        return ProblemError(
            503,
            "Busy",
            f"{self.slots} large request bodies are being stored already; "
            "nothing of this one was stored: send it again",
            kind="busy",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
