"""Bound how many large request bodies are decompressed, decoded and stored at once.

Each large body in work costs memory (``ingest.chunked``: its compressed bytes and a chunk of
records, or a whole JSON array); ``server.max_concurrent_large_bodies`` of them at once is
what the memory arithmetic in the README counts. A body that finds every slot taken waits for
one, first come first served, for up to ``wait_seconds``; then it is answered 503 with
``Retry-After`` and nothing of it is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from monitor.api.problems import ProblemError

#: How long a large body waits for a slot before it is answered 503.
WAIT_SECONDS = 10.0
RETRY_AFTER_SECONDS = 1


class DecodeSlots:
    def __init__(self, *, slots: int, wait_seconds: float = WAIT_SECONDS) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._semaphore = asyncio.Semaphore(slots)

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold a slot for the block; ``ProblemError`` 503 when none frees in time."""
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self._semaphore.acquire()
        except TimeoutError:
            raise ProblemError(
                503,
                "Busy",
                f"{self.slots} large request bodies are being stored already; "
                "nothing of this one was stored: send it again",
                kind="busy",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        try:
            yield
        finally:
            self._semaphore.release()
