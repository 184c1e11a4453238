"""The demo's synthetic credit model and the traffic it sends to drift-monitor.

The model approves or rejects a loan application from ``age``, ``income``, ``tenure_months``,
``country`` and ``channel``; its score is calibrated, so before the drift the true outcome
follows the score and the model is right about 9 times in 10. From ``drift_after`` seconds
on, incomes rise by ``INCOME_SHIFT`` (a drift of the ``income`` feature) and the world moves
with them: approval then needs that much more income, so the model, which still looks at the
raw income, approves nearly everyone and its accuracy falls to about one half.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from monitor.demo.watch import AlertWatch

MODEL = "demo"
CLASSES = ("approved", "rejected")
COUNTRIES = ("US", "DE", "FR", "GB", "ES")
COUNTRY_WEIGHTS = (0.32, 0.30, 0.19, 0.10, 0.09)
CHANNELS = ("web", "app", "branch")
CHANNEL_WEIGHTS = (0.5, 0.35, 0.15)
#: The drifted feature and by how much it moves (about 1.7 standard deviations).
DRIFTED_FEATURE = "income"
INCOME_SHIFT = 25_000.0

Record = dict[str, Any]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-500.0, min(500.0, z))))


def _score(age: int, income: float, tenure: int, channel: str) -> float:
    """The model's log-odds of ``approved``."""
    z = (income - 48_000.0) / 3_000.0 + (age - 45) / 6.0 + (tenure - 36) / 15.0
    return z + {"web": 0.0, "app": 0.3, "branch": -0.3}[channel]


def make_record(rng: random.Random, *, drifted: bool) -> tuple[Record, str]:
    """One prediction (``features``, ``prediction``, ``scores``) and its true label."""
    age = rng.randint(18, 79)
    shift = INCOME_SHIFT if drifted else 0.0
    income = max(5_000.0, rng.gauss(48_000.0, 15_000.0)) + shift
    tenure = min(240, int(rng.expovariate(1 / 36)))
    country = rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
    channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
    p_approved = _sigmoid(_score(age, income, tenure, channel))
    prediction = CLASSES[0] if p_approved >= 0.5 else CLASSES[1]
    # the world: after the drift, approval needs ``shift`` more income than the model thinks
    p_true = _sigmoid(_score(age, income - shift, tenure, channel))
    label = CLASSES[0] if rng.random() < p_true else CLASSES[1]
    approved = round(p_approved, 4)
    record: Record = {
        "features": {
            "age": age,
            "income": round(income, 2),
            "tenure_months": tenure,
            "country": country,
            "channel": channel,
        },
        "prediction": prediction,
        "scores": {"approved": approved, "rejected": round(1.0 - approved, 4)},
    }
    return record, label


def reference_records(n: int = 5_000, seed: int = 7) -> list[Record]:
    """A labelled reference of ``n`` pre-drift records, the same for the same seed."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        record, label = make_record(rng, drifted=False)
        records.append({**record, "label": label})
    return records


class Traffic:
    """Sends predictions (``rate`` a second) and, ``label_delay`` seconds later, the labels of
    ``label_ratio`` of them, to the service at ``base_url`` until ``stop`` is set.

    It first waits for ``/readyz``, then calls ``on_ready``; it injects the drift
    ``drift_after`` seconds after that and calls ``on_done`` once ``duration`` seconds (> 0)
    have passed."""

    def __init__(
        self,
        base_url: str,
        *,
        drift_after: float = 60.0,
        duration: float = 0.0,
        rate: float = 40.0,
        interval: float = 0.25,
        label_delay: float = 3.0,
        label_ratio: float = 0.9,
        seed: int | None = None,
        on_ready: Callable[[], None] = lambda: None,
        on_done: Callable[[], None] = lambda: None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.drift_after = drift_after
        self.duration = duration
        self.batch_size = max(1, round(rate * interval))
        self.interval = interval
        self.label_delay = label_delay
        self.label_ratio = label_ratio
        self.rng = random.Random(seed)
        self.on_ready = on_ready
        self.on_done = on_done
        self.stop = threading.Event()
        self.sent_predictions = 0
        self.sent_labels = 0
        self.drifted = False
        self._thread = threading.Thread(target=self.run, name="demo-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10.0) as client:
            if not self._wait_ready(client):
                return
            self.on_ready()
            with httpx.Client(base_url=self.base_url, timeout=10.0) as watcher:
                watch = threading.Thread(
                    target=AlertWatch(watcher, MODEL, stop=self.stop).run,
                    name="demo-alerts",
                    daemon=True,
                )
                watch.start()
                try:
                    self._send(client)
                finally:
                    self.stop.set()
                    watch.join(5.0)

    def _wait_ready(self, client: httpx.Client) -> bool:
        while not self.stop.is_set():
            try:
                if client.get("/readyz").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            self.stop.wait(0.1)
        return False

    def _send(self, client: httpx.Client) -> None:
        run_id = uuid.uuid4().hex[:8]
        counter = 0
        predictions: list[Record] = []
        labels: deque[tuple[float, Record]] = deque()
        start = time.monotonic()
        done = start + self.duration if self.duration > 0 else math.inf
        path = f"/v1/models/{MODEL}"
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= done:
                self.on_done()
                return
            if not self.drifted and now - start >= self.drift_after:
                self.drifted = True
                print(
                    f"demo: drift injected after {now - start:.0f} s: {DRIFTED_FEATURE} "
                    f"+{INCOME_SHIFT:,.0f} and the labels no longer follow the model",
                    flush=True,
                )
            timestamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            for _ in range(self.batch_size):
                counter += 1
                record, label = make_record(self.rng, drifted=self.drifted)
                record_id = f"{run_id}-{counter}"
                predictions.append({"id": record_id, "timestamp": timestamp, **record})
                if self.rng.random() < self.label_ratio:
                    labels.append((now + self.label_delay, {"id": record_id, "label": label}))
            if self._post(client, f"{path}/predictions", predictions):
                self.sent_predictions += len(predictions)
                predictions = []
            due = [label for at, label in labels if at <= now]
            if due and self._post(client, f"{path}/labels", due):
                self.sent_labels += len(due)
                for _ in due:
                    labels.popleft()
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - now)))

    def _post(self, client: httpx.Client, path: str, body: list[Record]) -> bool:
        """Send a batch; False when it should be sent again (server busy or unreachable)."""
        try:
            response = client.post(path, json=body)
        except httpx.TransportError as exc:
            if not self.stop.is_set():
                print(f"demo: {path}: {exc!r}; retrying", file=sys.stderr, flush=True)
            return False
        if response.status_code >= 500:
            return False
        if response.status_code >= 400:  # a bug in the demo: report it, do not resend
            print(f"demo: {path}: HTTP {response.status_code} {response.text}", file=sys.stderr)
        return True
