"""Process-wide settings for a long-running service process (``monitor serve``).

Each function documents what it buys; ``tune_process`` applies all of them. They change the
interpreter and the C allocator of the whole process, so only the command that owns the
process calls them (never the library code, nor the tests).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
ARENA_MAX = 1
#: How often ``release_memory_periodically`` hands free heap pages back to the system. Every
#: 10 s, the period of a frequent evaluation schedule, the release kept landing at the same
#: point of each evaluation's cycle and up to 30 MB freed by it stayed resident for most of
#: the cycle (bench/soak.py); a call that finds little to return costs well under 1 ms.
RELEASE_INTERVAL_SECONDS = 2.0


def tune_process() -> None:
    tune_memory_allocator()
    tune_garbage_collector()
    tune_thread_switching()


def tune_garbage_collector() -> None:
    """Ingest allocates tens of thousands of short-lived, acyclic objects per request (parsed
    JSON), which refcounting frees. The default thresholds would run a collection every 700
    allocations, each traversing the long-lived objects of the whole process; freezing those
    and collecting less often keeps parsing at the speed of the parser."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def tune_thread_switching() -> None:
    """The writer thread inserts without the GIL (SQLite runs a statement's rows in one call)
    while the decode thread parses the next body; each time the writer needs the GIL back it
    waits until the decoder yields it, after up to the switch interval (5 ms by default), a
    few times per batch. 0.5 ms keeps that wait short of the insert it would otherwise
    serialise."""
    sys.setswitchinterval(0.0005)


@functools.cache
def _glibc() -> Any | None:
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc (musl, macOS): leave it alone
        return None
    return libc


def tune_memory_allocator() -> bool:
    """Keep NumPy's window-sized arrays (a 100k-record column is 800 KB) in the heap, in one
    arena.

    glibc serves an allocation above its mmap threshold (128 KiB at start) with fresh pages
    from the kernel and unmaps them on free, raising the threshold only as such blocks are
    freed. A process's first evaluation so paid a page fault per 4 KiB of every temporary
    array: 0.2-0.5 s of a 100k evaluation's ~0.8 s (bench/drift.py). A fixed 32 MiB threshold
    reuses freed memory from the first evaluation on; a 64 MiB trim threshold returns the top
    of the heap to the system once that much is free, so the peak RSS stays as it was.

    One arena (``ARENA_MAX``) instead of glibc's 8 per core: each thread that allocates gets
    an arena of its own while there are fewer than that, and an arena keeps its free memory
    for itself. The scheduler runs jobs on a pool of up to 10 threads, so evaluations left
    their working sets behind in several arenas (bench/soak.py: at 2k records/s with
    evaluations every 10 s, RSS rose from 158 to 338 MB in two minutes while the memory in use
    stayed near 50 MB; up to 60 MB lay free in each of 3 arenas). Two arenas were not enough:
    the second one held 40-50 MB free, and the steady RSS of the same soak was about 25 MB
    higher with two than with one. Python allocates under the GIL and each thread has glibc's
    lock-free cache of small blocks, so one arena costs little concurrency (bench/ingest.py at
    batch 1000: no difference from glibc's defaults beyond the noise of a shared machine).

    A thread that allocated before this call keeps the arena it got, so ``monitor serve``
    calls it first, before importing anything that starts threads (NumPy's BLAS pool).

    Returns whether the allocator is glibc's and took the settings.
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        and libc.mallopt(_M_ARENA_MAX, ARENA_MAX)
    )


def release_free_memory() -> bool:
    """Hand the pages of every free block of every arena back to the system (glibc's
    ``malloc_trim(0)``), and the free top of the main heap.

    An evaluation frees its columns and temporaries (tens of MB) at its end, but blocks still
    in use above them (a connection's page cache, the next request's objects) pin the heap,
    so without this the freed pages stay resident. A call takes about 5 ms per 100 MB it
    returns; the next evaluation faults the pages in again, about 25 ms per 100 MB, which is
    the price of not holding them. Returns whether memory was returned; False where the
    allocator is not glibc's.
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


class _Waiter(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...


def release_until_stopped(
    stop: _Waiter,
    *,
    interval: float = RELEASE_INTERVAL_SECONDS,
    release: Callable[[], object] = release_free_memory,
) -> None:
    """Call ``release`` every ``interval`` seconds until ``stop`` is set."""
    while not stop.wait(interval):
        release()


def release_memory_periodically(interval: float = RELEASE_INTERVAL_SECONDS) -> threading.Event:
    """Run ``release_free_memory`` every ``interval`` seconds in a daemon thread, whatever
    freed the memory (evaluations, summaries, exports, large request bodies); set the returned
    event to stop it. Between calls an arena keeps what its work freed, which the next work
    reuses first."""
    stop = threading.Event()
    threading.Thread(
        target=release_until_stopped,
        args=(stop,),
        kwargs={"interval": interval},
        name="release-free-memory",
        daemon=True,
    ).start()
    return stop
