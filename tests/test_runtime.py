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
