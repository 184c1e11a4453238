"""Process-wide settings for a long-running service process (``monitor serve``).

Each function documents what it buys; ``tune_process`` applies all of them. They change the
interpreter and the C allocator of the whole process, so only the command that owns the
process calls them (never the library code, nor the tests).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024


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


def tune_memory_allocator() -> bool:
    """Keep NumPy's window-sized arrays (a 100k-record column is 800 KB) in the heap.

    glibc serves an allocation above its mmap threshold (128 KiB at start) with fresh pages
    from the kernel and unmaps them on free, raising the threshold only as such blocks are
    freed. A process's first evaluation so paid a page fault per 4 KiB of every temporary
    array: 0.2-0.5 s of a 100k evaluation's ~0.8 s (bench/drift.py). A fixed 32 MiB threshold
    reuses freed memory from the first evaluation on; a 64 MiB trim threshold returns the top
    of the heap to the system once that much is free, so the peak RSS stays as it was. Returns
    whether the allocator is glibc's and took the settings.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): leave it alone
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
