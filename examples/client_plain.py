"""Log a few predictions and their labels to drift-monitor from a plain script.

    monitor serve --config examples/monitor.yaml        # in another terminal
    python examples/client_plain.py [--url http://127.0.0.1:8000] [--model credit]

The URL, model and token may also come from MONITOR_URL, MONITOR_MODEL and MONITOR_TOKEN.
Exits 1 when a record was not stored (the client's counters are printed either way).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import uuid
from datetime import UTC, datetime

from monitor.client import Monitor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("MONITOR_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--model", default=os.environ.get("MONITOR_MODEL", "credit"))
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args(argv)

    rng = random.Random(7)
    run = uuid.uuid4().hex[:8]  # ids are unique per model: a second run logs new records
    with Monitor(args.url, args.model, token=os.environ.get("MONITOR_TOKEN")) as monitor:
        for i in range(args.count):
            features = {
                "age": rng.randint(18, 90),
                "income": None if i % 10 == 9 else round(rng.uniform(10_000, 150_000), 2),
                "country": rng.choice(["DE", "FR", "NL"]),
            }
            approved = rng.random()
            prediction = "approved" if approved >= 0.5 else "rejected"
            monitor.log_prediction(
                f"{run}-{i}",
                features,
                prediction,
                scores={"approved": approved, "rejected": 1 - approved},
                timestamp=datetime.now(UTC),
            )
        # labels usually arrive much later (and from elsewhere); here: half of them, right away
        for i in range(0, args.count, 2):
            monitor.log_label(f"{run}-{i}", rng.choice(["approved", "rejected"]))
    # leaving the block closed the client: everything was sent (or given up)
    stats = monitor.stats()
    print(" ".join(f"{name}={value}" for name, value in stats.items()))
    return 0 if stats["sent"] == args.count + (args.count + 1) // 2 else 1


if __name__ == "__main__":
    sys.exit(main())
