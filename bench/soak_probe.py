"""Run ``monitor serve`` with a probe that writes where its memory is (``soak.py --probe``).

    python bench/soak_probe.py --out DIR [--every S] [--tracemalloc] -- serve --config ...

Every ``--every`` seconds a daemon thread appends one JSON line to ``DIR/probe.jsonl``: the
process's RSS, glibc's ``mallinfo2`` (bytes in arenas, in mmapped blocks, in use and free), the
number of arenas and their free bytes (``malloc_info``), and with ``--tracemalloc`` the bytes
Python and NumPy have allocated (traced) and the 15 allocation sites that grew most since the
first sample after ``--baseline`` seconds (written to ``DIR/top-N.txt``). RSS minus traced
bytes is what the allocator holds without Python holding it (free lists, fragmentation) plus
what C libraries allocate themselves (SQLite's page cache, psycopg's buffers).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import re
import sys
import threading
import time
import tracemalloc
from pathlib import Path


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
LIBC.mallinfo2.restype = MallInfo2
LIBC.fopen.restype = ctypes.c_void_p
LIBC.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
LIBC.fclose.argtypes = [ctypes.c_void_p]
LIBC.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]


def sqlite_mb() -> float:
    """Memory SQLite has allocated (page caches, statements, schema), all connections."""
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        return -1.0
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return round(lib.sqlite3_memory_used() / 2**20, 1)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def resident_by_kind() -> dict[str, object]:
    """Resident MB of the [heap] (glibc's main arena), of other anonymous mappings (thread
    arenas, Python's object arenas, NumPy blocks above the mmap threshold, thread stacks)
    and of file mappings (code, shared libraries), from ``/proc/self/smaps``."""
    totals: dict[str, float] = {"heap": 0.0, "anon": 0.0, "file": 0.0}
    kind = "anon"
    size = 0
    largest: list[tuple[float, float]] = []  # (rss, size) of anonymous mappings, MB
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=6)
            if len(first) >= 5 and "-" in first[0] and ":" not in first[0]:
                path = first[5].strip() if len(first) > 5 else ""
                kind = "heap" if path == "[heap]" else "file" if path.startswith("/") else "anon"
                low, high = (int(v, 16) for v in first[0].split("-"))
                size = high - low
            elif line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
                totals[kind] += rss
                if kind == "anon" and rss >= 1:
                    largest.append((round(rss, 1), round(size / 2**20, 1)))
    rounded: dict[str, object] = {k: round(v, 1) for k, v in totals.items()}
    rounded["anon_largest"] = sorted(largest, reverse=True)[:6]
    rounded["anon_small_mb"] = round(sum(r for r, s in largest if s <= 1.1), 1)
    return rounded


def pymalloc(out: Path) -> dict[str, float]:
    """Python's small-object allocator: its arenas (1 MiB each) and the bytes of blocks in
    use in them, from ``sys._debugmallocstats`` (which writes to file descriptor 2, so that is
    pointed at a file meanwhile)."""
    import os

    path = out / "mallocstats.txt"
    saved = os.dup(2)
    with path.open("w") as target:
        os.dup2(target.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    text = path.read_text()
    current = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text)
    used = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    return {
        "arenas_mb": int(current.group(1).replace(",", "")) if current else -1,
        "blocks_mb": round(int(used.group(1).replace(",", "")) / 2**20, 1) if used else -1,
    }


def arenas(out: Path) -> tuple[int, list[int]]:
    """Number of arenas and each one's free bytes, from ``malloc_info``'s XML."""
    path = out / "malloc_info.xml"
    handle = LIBC.fopen(str(path).encode(), b"w")
    LIBC.malloc_info(0, handle)
    LIBC.fclose(handle)
    text = path.read_text()
    heaps = re.findall(r'<heap nr="\d+">(.*?)</heap>', text, re.S)
    free = []
    for heap in heaps:
        match = re.search(r'<total type="rest" count="\d+" size="(\d+)"/>', heap)
        fast = re.search(r'<total type="fast" count="\d+" size="(\d+)"/>', heap)
        free.append(int(match.group(1) if match else 0) + int(fast.group(1) if fast else 0))
    return len(heaps), free


def probe(out: Path, every: float, baseline_after: float, trace: bool) -> None:
    started = time.monotonic()
    baseline: tracemalloc.Snapshot | None = None
    n = 0
    with (out / "probe.jsonl").open("a") as log:
        while True:
            time.sleep(every)
            n += 1
            info = LIBC.mallinfo2()
            count, free = arenas(out)
            line: dict[str, object] = {
                "t": round(time.monotonic() - started, 1),
                "rss_mb": round(rss_mb(), 1),
                "arena_mb": round(info.arena / 2**20, 1),
                "mmap_mb": round(info.hblkhd / 2**20, 1),
                "in_use_mb": round((info.uordblks + info.hblkhd) / 2**20, 1),
                "free_mb": round(info.fordblks / 2**20, 1),
                "arenas": count,
                "arena_free_mb": [round(f / 2**20, 1) for f in free],
                "threads": threading.active_count(),
                "resident_mb": resident_by_kind(),
                "pymalloc": pymalloc(out),
                "sqlite_mb": sqlite_mb(),
            }
            if trace:
                current, peak = tracemalloc.get_traced_memory()
                line["traced_mb"] = round(current / 2**20, 1)
                line["traced_peak_mb"] = round(peak / 2**20, 1)
                if time.monotonic() - started >= baseline_after:
                    snapshot = tracemalloc.take_snapshot()
                    if baseline is None:
                        baseline = snapshot
                    else:
                        top = snapshot.compare_to(baseline, "lineno")[:15]
                        (out / f"top-{n}.txt").write_text("\n".join(str(s) for s in top) + "\n")
                    top_now = snapshot.statistics("lineno")[:15]
                    (out / f"now-{n}.txt").write_text("\n".join(str(s) for s in top_now) + "\n")
            log.write(json.dumps(line) + "\n")
            log.flush()


def experiment() -> None:
    """Allocator experiments from the environment: ``SOAK_MALLOPT="-8=2,-1=16777216"`` applies
    those mallopt settings after ``monitor.runtime``'s own; ``SOAK_TRIM=1`` calls
    ``malloc_trim(0)`` after every evaluation."""
    import os

    from monitor import runtime
    from monitor.jobs import evaluate

    settings = [
        tuple(int(v) for v in item.split("="))
        for item in os.environ.get("SOAK_MALLOPT", "").split(",")
        if item
    ]
    tune = runtime.tune_memory_allocator

    def tuned() -> bool:
        done = tune()
        for parameter, value in settings:
            LIBC.mallopt(parameter, value)
        return done

    runtime.tune_memory_allocator = tuned
    if os.environ.get("SOAK_TRIM"):
        original = evaluate.DriftEvaluator.evaluate

        def trimmed(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return original(self, *args, **kwargs)
            finally:
                LIBC.malloc_trim(0)

        evaluate.DriftEvaluator.evaluate = trimmed  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--baseline", type=float, default=90.0)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    args.out.mkdir(parents=True, exist_ok=True)
    experiment()
    from monitor import runtime

    runtime.tune_memory_allocator()  # before the probe's thread, as ``monitor serve`` does
    if args.tracemalloc:
        tracemalloc.start(1)
    threading.Thread(
        target=probe,
        args=(args.out, args.every, args.baseline, args.tracemalloc),
        daemon=True,
        name="soak-probe",
    ).start()
    from monitor.cli import main as monitor_main

    return monitor_main(rest)


if __name__ == "__main__":
    sys.exit(main())
