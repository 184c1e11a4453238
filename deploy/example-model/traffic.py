"""Example model server traffic for drift-monitor: a stand-in for a real credit model.

It POSTs batches of prediction records for the model ``credit`` (the features and classes of
``examples/monitor.yaml``) to drift-monitor continuously, and the ground-truth labels of most
of them a little later. The ``income`` feature drifts: over ``--drift-period`` seconds its
level rises by up to ``--drift-amount`` (0.8: +80 %), then the cycle starts again, and the
true outcome follows the drifted incomes, so the model's accuracy falls as the drift grows.

Only the standard library and httpx. Every option is a CLI argument with an environment
variable as its default:

    MONITOR_URL=http://127.0.0.1:8000 python traffic.py --duration 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import sys
import time
import uuid
from collections import deque

import httpx

COUNTRIES = ["US", "DE", "FR", "GB", "ES"]
COUNTRY_WEIGHTS = [0.32, 0.30, 0.19, 0.10, 0.09]  # like examples/data/reference.csv
CLASSES = ("approved", "rejected")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=env("MONITOR_URL", "http://127.0.0.1:8000"),
        help="drift-monitor base URL (MONITOR_URL)",
    )
    parser.add_argument("--model", default=env("MODEL_NAME", "credit"), help="(MODEL_NAME)")
    parser.add_argument(
        "--token",
        default=env("MONITOR_INGEST_TOKEN", ""),
        help="bearer token with the ingest scope, when the monitor has auth (MONITOR_INGEST_TOKEN)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=float(env("TRAFFIC_DURATION", "0")),
        help="seconds to run; 0 runs forever (TRAFFIC_DURATION)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=float(env("TRAFFIC_INTERVAL", "1")),
        help="seconds between prediction batches (TRAFFIC_INTERVAL)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(env("TRAFFIC_BATCH_SIZE", "20")),
        help="records per batch (TRAFFIC_BATCH_SIZE)",
    )
    parser.add_argument(
        "--label-ratio",
        type=float,
        default=float(env("LABEL_RATIO", "0.8")),
        help="share of predictions that get a label (LABEL_RATIO)",
    )
    parser.add_argument(
        "--label-delay",
        type=float,
        default=float(env("LABEL_DELAY", "30")),
        help="seconds between a prediction and its label (LABEL_DELAY)",
    )
    parser.add_argument(
        "--drift-period",
        type=float,
        default=float(env("DRIFT_PERIOD", "1800")),
        help="seconds for income to drift from none to full, then restart (DRIFT_PERIOD)",
    )
    parser.add_argument(
        "--drift-amount",
        type=float,
        default=float(env("DRIFT_AMOUNT", "0.8")),
        help="relative income increase at full drift (DRIFT_AMOUNT)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (TRAFFIC_SEED)")
    args = parser.parse_args(argv)
    if args.seed is None and env("TRAFFIC_SEED"):
        args.seed = int(env("TRAFFIC_SEED", "0"))
    if args.interval <= 0 or args.batch_size <= 0 or args.drift_period <= 0:
        parser.error("--interval, --batch-size and --drift-period must be positive")
    return args


def drift_level(elapsed: float, period: float) -> float:
    """0 at the start of each period, rising linearly to 1 at its end."""
    return (elapsed % period) / period


def make_record(
    rng: random.Random, drift: float, amount: float, record_id: str
) -> tuple[dict[str, object], str]:
    """One prediction record and its true label."""
    age = rng.randint(18, 79)
    income = max(5000.0, rng.gauss(40000.0, 20000.0)) * (1.0 + amount * drift)
    country = rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
    # the "model": a logistic score fitted on pre-drift incomes
    z = (income - 40000.0) / 12000.0 + (age - 48) / 40.0
    p_approved = 1.0 / (1.0 + math.exp(-z))
    prediction = CLASSES[0] if p_approved >= 0.5 else CLASSES[1]
    # the world: approval now needs more income as incomes rise (so accuracy degrades)
    true_z = (income - 40000.0 * (1.0 + amount * drift)) / 12000.0 + (age - 48) / 40.0
    label = CLASSES[0] if rng.random() < 1.0 / (1.0 + math.exp(-3 * true_z)) else CLASSES[1]
    missing_income = rng.random() < 0.01
    record = {
        "id": record_id,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "features": {
            "age": age,
            "income": None if missing_income else round(income, 2),
            "country": country,
        },
        "prediction": prediction,
        "scores": {"approved": round(p_approved, 4), "rejected": round(1 - p_approved, 4)},
    }
    return record, label


def post(client: httpx.Client, path: str, body: list[dict[str, object]]) -> bool:
    try:
        response = client.post(path, json=body)
    except httpx.TransportError as exc:
        print(f"traffic: {path}: {exc!r}; retrying next round", file=sys.stderr, flush=True)
        return False
    if response.status_code >= 500:
        print(f"traffic: {path}: HTTP {response.status_code}; retrying", file=sys.stderr)
        return False
    if response.status_code >= 400:  # a bug in this script or the config: do not retry
        print(f"traffic: {path}: HTTP {response.status_code} {response.text}", file=sys.stderr)
        return True
    return True


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    run_id = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    base = args.url.rstrip("/") + f"/v1/models/{args.model}"
    pending_predictions: list[dict[str, object]] = []
    pending_labels: deque[tuple[float, dict[str, object]]] = deque()
    counter = sent_predictions = sent_labels = 0
    final_rounds = 3  # attempts to send what is left once the duration is over
    start = time.monotonic()
    deadline = start + args.duration if args.duration > 0 else math.inf
    print(f"traffic: run {run_id} -> {base}", flush=True)
    with httpx.Client(base_url=base, headers=headers, timeout=10.0) as client:
        while True:
            now = time.monotonic()
            finished = now >= deadline
            if not finished:
                drift = drift_level(now - start, args.drift_period)
                for _ in range(args.batch_size):
                    counter += 1
                    record_id = f"{run_id}-{counter}"
                    record, label = make_record(rng, drift, args.drift_amount, record_id)
                    pending_predictions.append(record)
                    if rng.random() < args.label_ratio:
                        pending_labels.append(
                            (now + args.label_delay, {"id": record_id, "label": label})
                        )
            if pending_predictions and post(client, "/predictions", pending_predictions):
                sent_predictions += len(pending_predictions)
                pending_predictions = []
            # the labels that are due (all of them at the end); a label may even arrive
            # before its prediction, drift-monitor joins them whichever comes first
            due = [label for at, label in pending_labels if finished or at <= now]
            if due and post(client, "/labels", due):
                sent_labels += len(due)
                for _ in due:
                    pending_labels.popleft()
            if finished:
                final_rounds -= 1
                if final_rounds == 0 or not (pending_predictions or pending_labels):
                    break
                time.sleep(1.0)
                continue
            time.sleep(max(0.0, min(args.interval, deadline - time.monotonic())))
    print(
        f"traffic: done, {sent_predictions} predictions and {sent_labels} labels sent",
        flush=True,
    )
    return 0 if sent_predictions else 1


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
