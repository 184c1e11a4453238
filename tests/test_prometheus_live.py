"""End to end against a real Prometheus server: the real service (``monitor serve`` on SQLite)
gets a reference, predictions with one clearly drifted feature (``age``) and labels; a real
``prometheus`` scrapes it every second with ``deploy/prometheus/prometheus.yml`` (target
rewritten to the test's port) and ``rules.yml``. Then:

* every recording rule of ``rules.yml`` has an output series;
* the PSI alert of the drifted feature is pending or firing, and no other feature's is;
* every panel query of ``grafana/dashboards/*.json`` (template variables substituted) returns
  data; that test skips, saying so, while there are no dashboards.

Skips without the ``prometheus`` binary (Debian's ``prometheus`` package; ``.ci/run`` installs
it).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from server_process import free_port, start_server

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "prometheus"
DASHBOARDS = ROOT / "grafana" / "dashboards"
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus is not installed (Debian/Ubuntu: apt-get install prometheus; .ci/run does)",
)

MODEL = "credit"
DRIFTED = "age"
REGRESSION = "demand"  # so regression panels have a model with data too
CLASSES = ("approved", "rejected")
COUNTRIES = ("DE", "FR", "IT")
DEVICES = ("ios", "android", "web")
CONFIG = """
storage: {{url: "sqlite:///{db}"}}
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
webhooks:
  - {{name: ops, url: "http://127.0.0.1:9/hook", allow_private: true}}
"""


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


@dataclass
class Stack:
    monitor: str
    prometheus: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise ValueError(body.get("error") or answer.text)
        result = body["data"]["result"]
        return list(result) if isinstance(result, list) else [result]


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


def feed(base: str) -> None:
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
    answer = httpx.put(f"{base}/v1/models/{MODEL}/reference", json=reference, timeout=30)
    assert answer.status_code == 201, answer.text
    current = [record(rng, index, drifted=True) for index in range(200)]
    answer = httpx.post(f"{base}/v1/models/{MODEL}/predictions", json=current, timeout=30)
    assert answer.status_code == 202, answer.text
    # about half the labels disagree with the prediction: accuracy ~0.5, below its thresholds
    labels = [{"id": r["id"], "label": CLASSES[i % 2]} for i, r in enumerate(current)]
    answer = httpx.post(f"{base}/v1/models/{MODEL}/labels", json=labels, timeout=30)
    assert answer.status_code == 202, answer.text
    xs = [rng.gauss(0, 1) for _ in range(200)]
    reference = [{"features": {"x": x}, "prediction": 3 * x, "label": 3 * x + 0.1} for x in xs]
    answer = httpx.put(f"{base}/v1/models/{REGRESSION}/reference", json=reference, timeout=30)
    assert answer.status_code == 201, answer.text
    current = [
        {"id": f"r-{i}", "features": {"x": x}, "prediction": 3 * x} for i, x in enumerate(xs)
    ]
    answer = httpx.post(f"{base}/v1/models/{REGRESSION}/predictions", json=current, timeout=30)
    assert answer.status_code == 202, answer.text
    labels = [{"id": f"r-{i}", "label": 3 * x + rng.gauss(5, 1)} for i, x in enumerate(xs)]
    answer = httpx.post(f"{base}/v1/models/{REGRESSION}/labels", json=labels, timeout=30)
    assert answer.status_code == 202, answer.text


def prometheus_config(directory: Path, monitor_port: int) -> Path:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    for job in config["scrape_configs"]:
        job["scrape_interval"] = "1s"
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{monitor_port}"]
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert PROMETHEUS is not None
    tmp = tmp_path_factory.mktemp("prometheus_live")
    config = tmp / "monitor.yaml"
    config.write_text(CONFIG.format(db=tmp / "monitor.db", model=MODEL, regression=REGRESSION))
    monitor_port, prometheus_port = free_port(), free_port()
    monitor_log, prometheus_log = tmp / "monitor.log", tmp / "prometheus.log"
    server: subprocess.Popen[bytes] | None = None
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        server = start_server(config, monitor_port, monitor_log)
        base = f"http://127.0.0.1:{monitor_port}"
        feed(base)
        wait_for(
            "drift_monitor_feature_psi and drift_monitor_model_accuracy in /metrics",
            lambda: all(
                name in httpx.get(f"{base}/metrics", timeout=5).text
                for name in (
                    "drift_monitor_feature_psi{",
                    "drift_monitor_model_accuracy{",
                    "drift_monitor_model_rmse{",
                )
            ),
            20,
            monitor_log,
        )
        prometheus_yml = prometheus_config(tmp, monitor_port)
        with prometheus_log.open("ab") as out:
            prometheus = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={prometheus_yml}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        result = Stack(base, f"http://127.0.0.1:{prometheus_port}")

        def scraped() -> bool:
            if prometheus is not None and prometheus.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{prometheus_log.read_text()[-3000:]}")
            up = result.query('up{job="drift-monitor"}')
            return bool(up) and up[0]["value"][1] == "1"

        wait_for('up{job="drift-monitor"} == 1', scraped, 20, prometheus_log)
        # one refused record once Prometheus scrapes, so the rejected counter's rate() moves
        bad = [{"id": "bad", "features": {"age": "old"}, "prediction": CLASSES[0]}]
        answer = httpx.post(f"{base}/v1/models/{MODEL}/predictions", json=bad, timeout=30)
        assert answer.status_code == 422, answer.text
        wait_for(
            "a rejected record in Prometheus",
            lambda: result.query("increase(drift_monitor_records_rejected_total[1m]) > 0"),
            10,
        )
        yield result
    finally:
        stop(prometheus)
        stop(server)


def recording_rules() -> list[str]:
    document = yaml.safe_load((DEPLOY / "rules.yml").read_text())
    return [r["record"] for g in document["groups"] for r in g["rules"] if "record" in r]


def test_every_recording_rule_has_output(stack: Stack) -> None:
    names = recording_rules()
    assert names, "no recording rules in rules.yml"

    def missing() -> list[str]:
        return [name for name in names if not stack.query(name)]

    deadline = time.monotonic() + 15
    absent = missing()
    while absent and time.monotonic() < deadline:
        time.sleep(0.5)
        absent = missing()
    assert absent == [], f"recording rules without output after 15 s: {absent}"
    worst = stack.query(f'model:drift_monitor_feature_psi:max{{model="{MODEL}"}}')
    assert float(worst[0]["value"][1]) >= 0.25, worst
    critical = stack.query(f'model:drift_monitor_features_critical:count{{model="{MODEL}"}}')
    assert float(critical[0]["value"][1]) >= 1, critical


def test_drift_alert_of_the_drifted_feature_is_active(stack: Stack) -> None:
    def psi_alerts() -> list[dict[str, Any]]:
        answer = httpx.get(f"{stack.prometheus}/api/v1/alerts", timeout=10).json()
        return [
            alert
            for alert in answer["data"]["alerts"]
            if alert["labels"]["alertname"] == "drift_monitor_psi"
            and alert["state"] in ("pending", "firing")
        ]

    alerts = wait_for("drift_monitor_psi alerts", psi_alerts, 15)
    active = {(a["labels"]["feature"], a["labels"]["severity"]) for a in alerts}
    assert (DRIFTED, "critical") in active, active
    assert (DRIFTED, "warning") in active, active
    assert {feature for feature, _ in active} <= {DRIFTED, "__prediction__", "__label__"}, active
    (alert,) = [
        a
        for a in alerts
        if a["labels"]["feature"] == DRIFTED and a["labels"]["severity"] == "critical"
    ]
    assert alert["labels"]["model"] == MODEL


SUBSTITUTIONS = {
    "model": MODEL,
    "feature": DRIFTED,
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}
#: When the query is empty for $model=credit, $feature=age, a panel for another kind of model
#: or feature (regression errors; chi-square of categorical features) is tried with these, one
#: at a time: it passes when one of them returns data.
ALTERNATIVES = [
    {"feature": "country"},
    {"feature": "__prediction__"},
    {"model": REGRESSION, "feature": "x"},
]
VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def substitute(expr: str, values: dict[str, str] = SUBSTITUTIONS) -> tuple[str, set[str]]:
    unknown: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            unknown.add(name)
            return match.group(0)
        return values[name]

    return VARIABLE.sub(replace, expr), unknown


def panel_targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    yield panel.get("title") or "(untitled)", target["expr"]
            yield from walk(panel.get("panels") or [])

    yield from walk(dashboard.get("panels") or [])
    for row in dashboard.get("rows") or []:  # the old row layout
        yield from walk(row.get("panels") or [])


def test_dashboard_queries_return_data(request: pytest.FixtureRequest) -> None:
    files = sorted(DASHBOARDS.glob("*.json"))
    if not files:
        pytest.skip(f"no Grafana dashboards in {DASHBOARDS.relative_to(ROOT)}/*.json yet")
    stack: Stack = request.getfixturevalue("stack")
    # let the rate() windows and recording rules fill a little first
    wait_for(
        "model:drift_monitor_records_ingested:rate5m",
        lambda: stack.query("model:drift_monitor_records_ingested:rate5m"),
        15,
    )
    failures: list[str] = []
    checked = 0
    for path in files:
        dashboard = json.loads(path.read_text())
        dashboard = dashboard.get("dashboard", dashboard)
        for title, expr in panel_targets(dashboard):
            checked += 1
            query, unknown = substitute(expr)
            where = f"{path.name} / {title!r}: {expr}"
            if unknown:
                failures.append(f"{where}\n    unknown template variables {sorted(unknown)}")
                continue
            try:
                result = stack.query(query)
            except ValueError as exc:
                failures.append(f"{where}\n    error: {exc}")
                continue
            if not result and not any(
                stack.query(substitute(expr, {**SUBSTITUTIONS, **other})[0])
                for other in ALTERNATIVES
                if VARIABLE.search(expr)
            ):
                failures.append(f"{where}\n    empty result for {query} (and alternatives)")
    assert checked, f"no panel target with an expr in {[p.name for p in files]}"
    assert not failures, f"{len(failures)} of {checked} dashboard queries failed:\n" + "\n".join(
        failures
    )
