"""A real Prometheus scraping real ``monitor serve`` processes, for the tests that need one
(``test_prometheus_live.py``: one replica on SQLite; ``test_prometheus_replicas.py``: two on
PostgreSQL). ``running_stack`` starts the replicas of a config, feeds them a reference,
predictions with one clearly drifted feature (``age``), made by two model versions (canary
against stable), and labels (spread over the replicas), and starts ``prometheus`` with
``deploy/prometheus/prometheus.yml`` (scraping every second, its targets rewritten to the
replicas' ports) and ``rules.yml``."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from server_process import free_port, start_server

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "prometheus"
PROMETHEUS = shutil.which("prometheus")
NOT_INSTALLED = (
    "prometheus is not installed (Debian/Ubuntu: apt-get install prometheus; .ci/run does)"
)

MODEL = "credit"
DRIFTED = "age"
REGRESSION = "demand"  # so regression panels have a model with data too
CLASSES = ("approved", "rejected")
COUNTRIES = ("DE", "FR", "IT")
DEVICES = ("ios", "android", "web")
#: Model versions of the current records, by pairs: each version has both labels (``feed``), so
#: the canary panels and rules (per-version ROC AUC included) have data.
VERSIONS = ("v1", "v2")
CONFIG = """
storage: {{url: "{url}"}}
models:
  - name: {model}
    task: classification
    classes: [approved, rejected]
    features:
      - {{name: age, type: numeric}}
      - {{name: income, type: numeric}}
      - {{name: country, type: categorical}}
      - {{name: device, type: categorical}}
    window: {{duration: 1h}}
    schedule: 1s
    min_samples: 20
    thresholds:
      psi: {{warning: 0.1, critical: 0.25}}
      ks_statistic: {{warning: 0.2, critical: 0.4}}
      ks_pvalue: {{critical: 0.01}}
      wasserstein: {{warning: 10, critical: 20}}
      wasserstein_normalized: {{warning: 0.5, critical: 1}}
      jensen_shannon: {{warning: 0.2, critical: 0.4}}
      chi2_pvalue: {{critical: 0.001}}
      missing_ratio: {{warning: 0.1, critical: 0.3}}
      drifted_share: {{warning: 0.2, critical: 0.5}}
      accuracy: {{warning: 0.9, critical: 0.8}}
      precision: {{warning: 0.9, critical: 0.8}}
      recall: {{warning: 0.9, critical: 0.8}}
      f1: {{warning: 0.9, critical: 0.8}}
      roc_auc: {{warning: 0.8, critical: 0.7}}
      log_loss: {{warning: 0.7, critical: 1.0}}
      estimated_accuracy: {{warning: 0.8}}
      label_coverage: {{warning: 0.5}}
      demographic_parity_ratio: {{critical: 0.1}}
      equal_opportunity_difference: {{critical: 0.9}}
      canary_psi: {{warning: 0.1, critical: 0.25}}
      canary_accuracy_delta: {{warning: -0.02, critical: -0.05}}
    segments: [{{name: market, feature: country}}]
    fairness: {{sensitive: [device], positive: approved}}
    versions: {{stable: v1, canary: v2}}
    alerts: {{for: 1, routes: [ops]}}
  - name: {regression}
    task: regression
    features:
      - {{name: x, type: numeric}}
    schedule: 1s
    min_samples: 20
    thresholds:
      rmse: {{warning: 1, critical: 2}}
      mae: {{warning: 1, critical: 2}}
      mape: {{warning: 0.2}}
      r2: {{warning: 0.5}}
    versions: compare
webhooks:
  - {{name: ops, url: "http://127.0.0.1:9/hook", allow_private: true}}
"""


def monitor_config(url: str) -> str:
    return CONFIG.format(url=url, model=MODEL, regression=REGRESSION)


def record(rng: random.Random, index: int, *, drifted: bool) -> dict[str, Any]:
    approved = rng.random()
    return {
        "id": f"p-{index}",
        "features": {
            "age": rng.gauss(75 if drifted else 40, 8),
            "income": rng.gauss(50_000, 10_000),
            "country": rng.choice(COUNTRIES),
            "device": rng.choice(DEVICES),
        },
        "prediction": CLASSES[0] if approved >= 0.5 else CLASSES[1],
        "scores": {CLASSES[0]: approved, CLASSES[1]: 1 - approved},
    }


def feed(bases: Sequence[str]) -> None:
    """The references, then predictions and labels in as many parts as there are replicas,
    each part sent to one of them."""
    rng = random.Random(7)
    reference = []
    for index in range(300):
        row = record(rng, index, drifted=False)
        label = row["prediction"] if rng.random() < 0.95 else CLASSES[rng.random() < 0.5]
        reference.append(
            {
                "features": row["features"],
                "prediction": row["prediction"],
                "label": label,
                "scores": row["scores"],
            }
        )
    put(bases[0], MODEL, reference)
    current = [
        {**record(rng, index, drifted=True), "model_version": VERSIONS[index // 2 % 2]}
        for index in range(200)
    ]
    post(bases, MODEL, "predictions", current)
    # about half the labels disagree with the prediction: accuracy ~0.5, below its thresholds
    post(
        bases,
        MODEL,
        "labels",
        [{"id": r["id"], "label": CLASSES[i % 2]} for i, r in enumerate(current)],
    )
    xs = [rng.gauss(0, 1) for _ in range(200)]
    put(
        bases[0],
        REGRESSION,
        [{"features": {"x": x}, "prediction": 3 * x, "label": 3 * x + 0.1} for x in xs],
    )
    current = [
        {
            "id": f"r-{i}",
            "features": {"x": x},
            "prediction": 3 * x,
            "model_version": VERSIONS[i % 2],
        }
        for i, x in enumerate(xs)
    ]
    post(bases, REGRESSION, "predictions", current)
    labels = [{"id": f"r-{i}", "label": 3 * x + rng.gauss(5, 1)} for i, x in enumerate(xs)]
    post(bases, REGRESSION, "labels", labels)


def put(base: str, model: str, reference: list[dict[str, Any]]) -> None:
    answer = httpx.put(f"{base}/v1/models/{model}/reference", json=reference, timeout=30)
    assert answer.status_code == 201, answer.text


def post(bases: Sequence[str], model: str, kind: str, records: list[dict[str, Any]]) -> None:
    """``records`` in ``len(bases)`` consecutive parts, the n-th posted to the n-th replica."""
    size = -(-len(records) // len(bases))
    for n, base in enumerate(bases):
        part = records[n * size : (n + 1) * size]
        answer = httpx.post(f"{base}/v1/models/{model}/{kind}", json=part, timeout=30)
        assert answer.status_code == 202, answer.text


@dataclass
class Stack:
    monitors: list[str]
    prometheus: str
    #: One connection for the many queries the dashboard tests make.
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    @property
    def monitor(self) -> str:
        return self.monitors[0]

    def api(self, path: str, params: dict[str, Any]) -> Any:
        """The ``data`` of a Prometheus HTTP API answer; ValueError with Prometheus's error."""
        answer = self.client.get(f"{self.prometheus}/api/v1/{path}", params=params)
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise ValueError(body.get("error") or answer.text)
        return body["data"]

    def query(self, expr: str, *, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} if at is None else {"query": expr, "time": at}
        result = self.api("query", params)["result"]
        return list(result) if isinstance(result, list) else [result]

    def query_range(
        self, expr: str, *, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        params = {"query": expr, "start": start, "end": end, "step": step}
        return list(self.api("query_range", params)["result"])

    def label_values(self, label: str, match: str, *, start: float, end: float) -> list[str]:
        params = {"match[]": match, "start": start, "end": end}
        return sorted(self.api(f"label/{label}/values", params))

    def alerts(self, name: str, rule: str | None = None) -> list[dict[str, Any]]:
        """The pending or firing alerts called ``name`` (of threshold rule ``rule``)."""
        answer = httpx.get(f"{self.prometheus}/api/v1/alerts", timeout=10).json()
        return [
            alert
            for alert in answer["data"]["alerts"]
            if alert["labels"]["alertname"] == name
            and alert["labels"].get("rule") == rule
            and alert["state"] in ("pending", "firing")
        ]


def wait_for(what: str, check: Any, timeout: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.TransportError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    tail = "" if log is None or not log.exists() else log.read_text()[-3000:]
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{tail}")


def prometheus_config(directory: Path, monitor_ports: Sequence[int]) -> Path:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    for job in config["scrape_configs"]:
        job["scrape_interval"] = "1s"
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{port}" for port in monitor_ports]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    shutil.copy(DEPLOY / "rules.yml", directory / "rules.yml")
    return path


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running_stack(directory: Path, config: Path, *, replicas: int = 1) -> Iterator[Stack]:
    """``replicas`` servers of ``config`` fed (see ``feed``), exporting the drift and
    performance gauges, and a Prometheus scraping all of them (one refused record counted
    once it scrapes); everything stopped on exit."""
    assert PROMETHEUS is not None, NOT_INSTALLED
    ports = [free_port() for _ in range(replicas)]
    prometheus_port = free_port()
    prometheus_log = directory / "prometheus.log"
    servers: list[subprocess.Popen[bytes]] = []
    prometheus: subprocess.Popen[bytes] | None = None
    stack: Stack | None = None
    try:
        for n, port in enumerate(ports):
            servers.append(start_server(config, port, directory / f"monitor{n}.log"))
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        feed(bases)
        for n, base in enumerate(bases):  # a replica that evaluated nothing adopts, too
            wait_for(
                f"drift and performance gauges in {base}/metrics",
                lambda base=base: all(
                    name in httpx.get(f"{base}/metrics", timeout=5).text
                    for name in (
                        "drift_monitor_feature_psi{",
                        "drift_monitor_model_accuracy{",
                        "drift_monitor_model_rmse{",
                    )
                ),
                30,
                directory / f"monitor{n}.log",
            )
        prometheus_yml = prometheus_config(directory, ports)
        with prometheus_log.open("ab") as out:
            prometheus = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={prometheus_yml}",
                    f"--storage.tsdb.path={directory / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        stack = Stack(bases, f"http://127.0.0.1:{prometheus_port}")

        def scraped() -> bool:
            if prometheus is not None and prometheus.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{prometheus_log.read_text()[-3000:]}")
            up = stack.query('up{job="drift-monitor"} == 1')
            return len(up) == replicas

        wait_for(f'{replicas} x up{{job="drift-monitor"}} == 1', scraped, 20, prometheus_log)
        # one refused record once Prometheus scrapes, so the rejected counter's rate() moves
        bad = [{"id": "bad", "features": {"age": "old"}, "prediction": CLASSES[0]}]
        answer = httpx.post(f"{bases[0]}/v1/models/{MODEL}/predictions", json=bad, timeout=30)
        assert answer.status_code == 422, answer.text
        wait_for(
            "a rejected record in Prometheus",
            lambda: stack.query("increase(drift_monitor_records_rejected_total[1m]) > 0"),
            10,
        )
        yield stack
    finally:
        if stack is not None:
            stack.client.close()
        stop(prometheus)
        for server in servers:
            stop(server)


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def recording_rules() -> list[str]:
    return [rule["record"] for rule in rules() if "record" in rule]
