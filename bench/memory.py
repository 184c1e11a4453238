"""Peak memory (RSS) of ``monitor serve`` taking large gzip bodies, one and several at once.

What is measured: a real ``monitor serve`` (default limits: ``max_body_bytes`` 10 MiB,
``max_decompressed_bytes`` 100 MiB, ``max_concurrent_large_bodies`` 1; SQLite in a temporary
directory, or ``--database``) is sent gzip NDJSON bodies of ``--size-mib`` MiB decompressed
(100 by default: about 800,000 prediction records, every id unique), first one alone, then
``--concurrent`` at once. Before each case the process's peak RSS (``VmHWM``) is reset through
``/proc/PID/clear_refs``, so each row is that case's own peak; "extra" is the peak minus the RSS
of the idle, warmed-up service (the baseline). Every body must be answered 202 with all its
records accepted. Run with the project's virtualenv, from the repository:

    .venv/bin/python bench/memory.py                     # ~1 minute
    .venv/bin/python bench/memory.py --size-mib 50 --concurrent 1,3,6

Linux only (``/proc``). Before the chunked decode (issue 12) one 100 MiB body took the peak
from 159 MB to 889 MB, and three at once to 1.68 GB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import docs_region
from ingest import free_port, wait_ready

HOST = "127.0.0.1"
CONFIG = """
server: {{host: {host}, port: 8000}}
storage: {{url: "{url}"}}
models:
  - name: credit
    task: classification
    classes: [approved, rejected]
    schedule: 1h
    features:
      - {{name: age, type: numeric}}
      - {{name: income, type: numeric}}
      - {{name: country, type: categorical}}
"""


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


def body(tag: str, size_bytes: int, seed: int) -> tuple[bytes, int]:
    """A gzip NDJSON body of at most ``size_bytes`` decompressed, and its record count."""
    rng = random.Random(seed)
    countries = ["DE", "FR", "US", "JP", "BR", "IN"]
    lines: list[bytes] = []
    size = 0
    while True:
        line = (
            f'{{"id":"{tag}-{len(lines)}","timestamp":{1_767_225_600 + len(lines) % 86400},'
            f'"features":{{"age":{rng.randint(18, 90)},"income":{rng.randint(0, 400) * 500},'
            f'"country":"{rng.choice(countries)}"}},"prediction":"approved"}}\n'
        ).encode()
        if size + len(line) > size_bytes:
            break
        lines.append(line)
        size += len(line)
    return gzip.compress(b"".join(lines), compresslevel=6), len(lines)


def post(base: str, data: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{base}/v1/models/credit/predictions",
        data=data,
        headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=float, default=100.0)
    parser.add_argument("--concurrent", default="3", help="bodies at once, e.g. 3 or 2,3,6")
    parser.add_argument("--database", help="database URL (default: SQLite in a temp dir)")
    docs_region.add_option(parser)
    args = parser.parse_args()
    cases = [1, *(int(n) for n in args.concurrent.split(",") if int(n) != 1)]
    size = int(args.size_mib * 1024 * 1024)
    print(f"building {max(cases)} bodies of {args.size_mib:g} MiB ...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        url = args.database or f"sqlite:///{directory / 'monitor.db'}"
        config = directory / "monitor.yaml"
        config.write_text(CONFIG.format(host=HOST, url=url))
        log = directory / "server.log"
        port = free_port()
        base = f"http://{HOST}:{port}"
        argv = [sys.executable, "-m", "monitor", "serve", "--config", str(config)]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*argv, "--port", str(port), "--log-level", "warning"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MONITOR_DATABASE_URL": url},
            )
        try:
            wait_ready(f"{base}/readyz", process, log)
            warm, _ = body("warm", 64 * 1024, 0)
            assert post(base, warm)[0] == 202
            time.sleep(1)
            baseline = rss_kib(process.pid, "VmRSS")
            rows = [("idle (baseline)", baseline, 0, "")]
            for case, count in enumerate(cases):
                bodies = [body(f"c{case}-{i}", size, i) for i in range(count)]
                results: list[tuple[int, dict[str, object]]] = [(0, {})] * count
                reset_peak(process.pid)
                started = time.monotonic()

                def send(
                    index: int, data: bytes, results: list[tuple[int, dict[str, object]]]
                ) -> None:
                    results[index] = post(base, data)

                threads = [
                    threading.Thread(target=send, args=(i, data, results))
                    for i, (data, _) in enumerate(bodies)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                seconds = time.monotonic() - started
                peak = rss_kib(process.pid, "VmHWM")
                for (status, answer), (_, records) in zip(results, bodies, strict=True):
                    if status != 202 or answer.get("accepted") != records:
                        raise RuntimeError(f"expected 202 with {records} accepted: {answer}")
                compressed = sum(len(d) for d, _ in bodies) / count / 1e6
                label = f"{count} x {args.size_mib:g} MiB ({compressed:.1f} MB gzip)"
                rows.append((label, peak, peak - baseline, f"{seconds:.1f} s"))
        finally:
            process.terminate()
            process.wait(timeout=30)
    lines = ["| case | peak RSS | extra over idle | time |", "| --- | ---: | ---: | ---: |"]
    for label, peak, extra, seconds in rows:
        extra_text = f"{extra / 1024:.0f} MB" if extra else ""
        lines.append(f"| {label} | {peak / 1024:.0f} MB | {extra_text} | {seconds} |")
    print("\n".join(lines))
    docs_region.write(args.write_docs, "memory", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
