"""Process-wide tuning of ``monitor serve`` (``monitor.runtime``), each in a fresh interpreter:
it changes the whole process, so never in the test process itself."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

GLIBC = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_a_first_evaluation_reuses_the_memory_start_up_freed() -> None:
    """Start-up (loading reference profiles) allocates and frees window-sized arrays; the first
    evaluation then allocates as many again. Untuned, glibc unmapped the start-up's arrays (they
    were above its initial 128 KiB mmap threshold) and the evaluation faults fresh pages in;
    tuned, they stayed in the heap and are reused."""
    code = """
import resource, numpy as np
from monitor import runtime
if {tuned}:
    assert runtime.tune_memory_allocator()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
start_up = [np.ones(100_000) for _ in range(20)]   # 20 arrays of 800 KB
del start_up
before = faults()
evaluation = [np.ones(100_000) for _ in range(20)]
print(faults() - before)
"""
    tuned = int(run(code.format(tuned=True)))
    default = int(run(code.format(tuned=False)))
    # 20 fresh 800 KB arrays fault in about 20 * 196 pages; reused, almost none.
    assert tuned < 500 < default


def test_tuning_the_process_sets_the_collector_and_the_switch_interval() -> None:
    out = run(
        "import gc, sys\n"
        "from monitor import runtime\n"
        "runtime.tune_process()\n"
        "print(gc.get_threshold()[0], sys.getswitchinterval())"
    )
    assert out == "50000 0.0005"


# What a long-running service's heap keeps (bench/soak.py). Memory figures are the process's
# resident set (VmRSS), read in the fresh interpreter around each step.
_RSS = """
import threading, numpy as np
from monitor import runtime
def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
def in_a_thread(work):
    out = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    thread.join()
    return out[0]
"""


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_threads_that_allocate_at_once_share_one_arena() -> None:
    """glibc gives each thread that allocates while others do an arena of its own (up to 8 per
    core), and an arena keeps its free memory for itself: the scheduler's pool of 10 threads
    left an evaluation's working set behind in each (and a second arena still kept about
    25 MB more resident than one, bench/soak.py)."""
    code = """
import ctypes, ctypes.util, os, re, tempfile, threading
from monitor import runtime
if {tuned}:
    assert runtime.tune_memory_allocator()
barrier = threading.Barrier(8)
def work():
    block = bytearray(1 << 20)  # malloc'd by this thread, while the 7 others are alive
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
path = os.path.join(tempfile.mkdtemp(), "info.xml")
handle = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, handle)
libc.fclose(handle)
print(len(re.findall(r'<heap nr="', open(path).read())))
"""
    assert int(run(code.format(tuned=True))) == 1
    assert int(run(code.format(tuned=False))) > 2


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_releasing_free_memory_returns_the_pages_held_below_live_blocks() -> None:
    """Blocks freed below a block still in use stay resident whatever the trim threshold;
    ``release_free_memory`` hands their pages back."""
    code = (
        _RSS
        + """
assert runtime.tune_memory_allocator()
before = rss_mb()
def evaluation():
    arrays = [np.ones(100_000) for _ in range(50)]  # 40 MB
    pinned = np.ones(1000)  # allocated last, still in use: it pins the top of the heap
    del arrays
    return pinned
pinned = in_a_thread(evaluation)
held = rss_mb()
released = runtime.release_free_memory()
print(round(held - before), round(rss_mb() - before), released)
"""
    )
    held, after, released = run(code).split()
    assert int(held) > 35 and int(after) < 5 and released == "True", (held, after, released)


def test_releasing_runs_every_interval_until_stopped() -> None:
    class Stop:
        """Not set for the first two waits, then set."""

        def __init__(self) -> None:
            self.timeouts: list[float | None] = []

        def wait(self, timeout: float | None = None) -> bool:
            self.timeouts.append(timeout)
            return len(self.timeouts) > 2

    from monitor import runtime

    stop, calls = Stop(), []
    runtime.release_until_stopped(stop, interval=7.5, release=lambda: calls.append(1))
    assert calls == [1, 1]
    assert stop.timeouts == [7.5, 7.5, 7.5]
