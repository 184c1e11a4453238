"""The Grafana dashboards in ``grafana/dashboards`` and their provisioning: well-formed
dashboards (schema version, uids, panel ids, layout), and every metric and label a query names
really exported by the service (read from a live registry after an evaluation, not from a list
kept by hand), or attached by Prometheus to what it scrapes. ``test_dashboard_portability.py``
checks the data source, the variables, the import format and the units."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from replica_aggregation import unaggregated

from monitor.api import create_app
from monitor.config import parse_config
from monitor.service import Service
from monitor.storage import create_database_engine
from monitor.thresholds import HIGHER_IS_WORSE, LOWER_IS_WORSE

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "drift-monitor.yaml"
NAMES = ["drift-monitor-overview", "drift-monitor-model", "drift-monitor-service"]
#: Where the compose file mounts grafana/dashboards in the stock Grafana container.
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"
PROVISIONING_MOUNT = "/etc/grafana/provisioning"
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
#: Labels Prometheus attaches to every series of a target (the dashboards' target variables).
TARGET_LABELS = {"job", "namespace", "instance"}
#: Grafana's own variables a query may use besides the dashboard's template variables.
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}

METRIC = re.compile(r"(?<![A-Za-z0-9_:])drift_monitor_[A-Za-z0-9_:]*")
SELECTOR = re.compile(r"(?<![A-Za-z0-9_:])(drift_monitor_[A-Za-z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*,?')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)(?::[^}]*)?\}|([A-Za-z0-9_]+))")

CONFIG = """
models:
  - name: clf
    task: classification
    classes: [no, yes]
    features: [{name: x, type: numeric}, {name: c, type: categorical}]
    min_samples: 5
    thresholds:
      psi: {warning: 0.1, critical: 0.25}
      ks_statistic: {warning: 0.1, critical: 0.2}
      ks_pvalue: {critical: 0.01}
      accuracy: {warning: 0.9, critical: 0.6}
      demographic_parity_ratio: {critical: 0.8}
    segments: [{name: seg, feature: c}]
    fairness: {sensitive: [c], positive: "yes"}
    versions: {stable: v1, canary: v2}
    alerts: {for: 1, routes: [hook]}
  - name: reg
    task: regression
    features: [{name: x, type: numeric}]
    min_samples: 5
    thresholds: {mae: {warning: 1.0}}
    versions: compare
webhooks:
  - {name: hook, url: "http://127.0.0.1:9/x", secret: "0123456789abcdef", allow_private: true}
"""


# -- what the service exports ------------------------------------------------------------------


def exposition(tmp_path: Path) -> str:
    """A scrape of a service that has ingested, labelled and evaluated both kinds of model."""
    engine = create_database_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    service = Service(parse_config(CONFIG), engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=False)
    try:
        now = time.time()
        service.store_reference(
            "clf",
            [
                {
                    "features": {"x": float(i % 10), "c": "a"},
                    "prediction": "yes",
                    "label": "yes",
                    "scores": {"no": 0.2, "yes": 0.8},
                }
                for i in range(50)
            ],
            source="test",
        )
        service.store_predictions(
            "clf",
            [
                {
                    "id": str(i),
                    "timestamp": now - 10,
                    "features": {"x": float(i % 10) + 5, "c": "ab"[(i // 2) % 2]},
                    "prediction": "yes",
                    "scores": {"no": 0.3, "yes": 0.7},
                    "model_version": ("v1", "v2")[i // 3 % 2],  # both labels in each version
                }
                for i in range(50)
            ],
        )
        service.store_labels(
            "clf", [{"id": str(i), "label": ("no", "yes")[i % 2]} for i in range(50)]
        )
        service.store_reference(
            "reg", [{"features": {"x": float(i)}, "prediction": 1.0} for i in range(20)], source="t"
        )
        service.store_predictions(
            "reg",
            [
                {
                    "id": str(i),
                    "timestamp": now - 10,
                    "features": {"x": 2.0 * i},
                    "prediction": 1.0,
                    "model_version": "ab"[i % 2],
                }
                for i in range(20)
            ],
        )
        service.store_labels("reg", [{"id": str(i), "label": float(i)} for i in range(20)])
        service.evaluate("clf")
        service.evaluate("reg")
        with TestClient(create_app(service, manage_service=False)) as client:
            assert client.get("/v1/models").status_code == 200  # request metrics get samples
        return generate_latest(service.registry).decode()
    finally:
        service.stop()


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> str:
    return exposition(tmp_path_factory.mktemp("dashboards"))


@pytest.fixture(scope="module")
def exported(scrape: str) -> set[str]:
    """Names of the series the service exports, as Prometheus stores them."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", scrape, re.M):
        if kind == "counter":
            names.add(name if name.endswith("_total") else f"{name}_total")
        elif kind in ("histogram", "summary"):
            names.update({f"{name}_count", f"{name}_sum"})
            if kind == "histogram":
                names.add(f"{name}_bucket")
        elif not name.endswith("_created"):  # counters' creation times: not for dashboards
            names.add(name)
    return names


@pytest.fixture(scope="module")
def labels(scrape: str) -> dict[str, set[str]]:
    """Label names of each exported series name, from the scrape's samples."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def test_the_registry_exports_what_the_dashboards_need(
    exported: set[str], labels: dict[str, set[str]]
) -> None:
    # the fixture's service must really have evaluated both models, or the drift and
    # performance families would be missing and the checks below would prove nothing
    for name in (
        "drift_monitor_feature_psi",
        "drift_monitor_feature_chi2_pvalue",
        "drift_monitor_model_accuracy_lower",
        "drift_monitor_model_mae",
        "drift_monitor_label_delay_seconds_bucket",
        "drift_monitor_records_ingested_total",
        "drift_monitor_segment_feature_psi",
        "drift_monitor_segment_model_accuracy",
        "drift_monitor_fairness_demographic_parity_ratio",
        "drift_monitor_fairness_group_true_positive_rate",
        "drift_monitor_version_records",
        "drift_monitor_canary_psi",
        "drift_monitor_canary_accuracy_delta",
        "drift_monitor_version_model_accuracy",
        "drift_monitor_version_model_roc_auc",
        "drift_monitor_version_model_mae",
    ):
        assert name in exported
        assert name in labels, f"{name} has no sample: the fixture did not exercise it"
    assert labels["drift_monitor_threshold"] == {"model", "statistic", "severity"}
    assert "drift_monitor_records_ingested" not in exported  # stored with its _total


# -- the dashboards ----------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    document = json.loads((DASHBOARDS / f"{name}.json").read_text())
    assert isinstance(document, dict)
    return document


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    flat = []
    for panel in dashboard["panels"]:
        flat.append(panel)
        flat.extend(panel.get("panels", []))
    return flat


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a JSON document, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    text = query.get("query") if isinstance(query, dict) else query
    assert isinstance(text, str) and text, variable["name"]
    # Grafana shows `definition` and runs `query`: they must not disagree
    assert variable.get("definition", text) == text, variable["name"]
    return text


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(PromQL expression, legend format) of every target, annotation and query variable."""
    found = [
        (target["expr"], target.get("legendFormat", ""))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for annotation in dashboard.get("annotations", {}).get("list", []):
        for source in (annotation, annotation.get("target") or {}):
            if "expr" in source:
                found.append((source["expr"], annotation.get("titleFormat", "")))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            found.append((variable_query(variable), ""))
    return found


def test_the_dashboards_are_the_three_expected() -> None:
    assert sorted(p.stem for p in DASHBOARDS.glob("*.json")) == sorted(NAMES)


def test_uids_are_set_and_unique() -> None:
    uids = [load(name).get("uid") for name in NAMES]
    for uid in uids:
        assert isinstance(uid, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid), uid
    assert len(set(uids)) == len(uids)


def test_links_to_dashboards_name_existing_uids() -> None:
    uids = {load(name)["uid"] for name in NAMES}
    linked = {
        match
        for name in NAMES
        for match in re.findall(r"/d/([A-Za-z0-9_-]+)", json.dumps(load(name)))
    }
    assert linked, "the overview links each model to its dashboard"
    assert linked <= uids


@pytest.mark.parametrize("name", NAMES)
def test_dashboard_structure(name: str) -> None:
    dashboard = load(name)
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["title"]
    assert dashboard.get("id") is None  # provisioning assigns it
    every = panels(dashboard)
    assert len(every) >= 5
    ids = [panel["id"] for panel in every]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids), ids
    for panel in every:
        assert panel.get("title"), panel["id"]
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target.get("expr"), f"panel {panel['title']!r}: target without expr"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]


@pytest.mark.parametrize("name", NAMES)
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    boxes = []
    for panel in panels(load(name)):
        grid = panel.get("gridPos")
        assert grid is not None, panel["title"]
        x, y, w, h = (grid[k] for k in ("x", "y", "w", "h"))
        assert all(isinstance(v, int) for v in (x, y, w, h)), panel["title"]
        assert x >= 0 and y >= 0 and 1 <= w <= 24 and h >= 1 and x + w <= 24, panel["title"]
        boxes.append((panel["title"], x, y, w, h))
    for a, b in itertools.combinations(boxes, 2):
        (ta, xa, ya, wa, ha), (tb, xb, yb, wb, hb) = a, b
        overlap = xa < xb + wb and xb < xa + wa and ya < yb + hb and yb < ya + ha
        assert not overlap, f"{ta!r} and {tb!r} overlap"


@pytest.mark.parametrize("name", NAMES)
def test_every_metric_and_label_in_a_query_is_exported(
    name: str, exported: set[str], labels: dict[str, set[str]]
) -> None:
    statistics = HIGHER_IS_WORSE | LOWER_IS_WORSE
    problems = []
    for expr, legend in queries(load(name)):
        metrics = set(METRIC.findall(expr))
        assert metrics, f"no drift_monitor metric in {expr!r}"
        problems += [f"{m} (in {expr!r})" for m in sorted(metrics - exported)]
        known = set().union(TARGET_LABELS, *(labels.get(m, set()) for m in metrics))
        for metric, matchers in SELECTOR.findall(expr):
            for label, _, value in MATCHER.findall(matchers):
                if label not in labels.get(metric, set()) | TARGET_LABELS:
                    problems.append(f"{metric} has no label {label!r} (in {expr!r})")
                if metric == "drift_monitor_threshold" and label == "statistic":
                    unknown = set(value.split("|")) - statistics
                    problems += [f"no statistic {s!r} (in {expr!r})" for s in unknown]
        used = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",")} - {
            ""
        }
        used |= set(LEGEND_LABEL.findall(legend))
        variable = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", expr)
        if variable:
            used.add(variable.group(2))
        problems += [f"label {u!r} is on none of {sorted(metrics)}" for u in used - known]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", NAMES)
def test_every_query_aggregates_over_replicas(name: str) -> None:
    """Several replicas give one series per model (and feature ...) in every panel: counters
    summed, model gauges by max (min when lower is worse), see ``replica_aggregation``."""
    problems = [
        problem
        for expr, _ in queries(load(name))
        if not expr.startswith("label_values(")  # a variable's values: deduplicated
        for problem in unaggregated(expr)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", NAMES)
def test_queries_use_only_defined_variables(name: str) -> None:
    dashboard = load(name)
    defined = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    for expr, _ in queries(dashboard):
        for braced, plain in VARIABLE.findall(expr):
            assert (braced or plain) in defined | GRAFANA_VARIABLES, expr


def test_the_model_dashboard_selects_model_and_feature_from_prometheus() -> None:
    dashboard = load("drift-monitor-model")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    model, feature = variables["model"], variables["feature"]
    assert model["type"] == feature["type"] == "query"
    targets = 'job=~"$job",namespace=~"$namespace",instance=~"$instance"'
    assert variable_query(model) == f"label_values(drift_monitor_feature_psi{{{targets}}}, model)"
    assert variable_query(feature) == (
        f'label_values(drift_monitor_feature_psi{{model="$model",{targets}}}, feature)'
    )
    for expr, _ in queries(dashboard):
        if not re.fullmatch(r"label_values\(.*, (job|namespace|instance|model)\)", expr):
            assert 'model="$model"' in expr, f"{expr!r} is not narrowed to the model"
    exprs = " ".join(expr for expr, _ in queries(dashboard))
    for needed in (
        'drift_monitor_threshold{model="$model",statistic="psi",',
        'drift_monitor_threshold{model="$model",statistic="ks_statistic",',
        "drift_monitor_feature_ks_pvalue",
        "drift_monitor_window_samples",
        "drift_monitor_feature_samples",
        "drift_monitor_model_accuracy_lower",
        "drift_monitor_model_accuracy_upper",
        "drift_monitor_model_f1",
        "drift_monitor_model_estimated_accuracy",
        "drift_monitor_label_delay_seconds_bucket",
        "drift_monitor_alerts_firing",
        "drift_monitor_version_records",
        "drift_monitor_canary_psi",
        'drift_monitor_canary_accuracy_delta{model="$model",bound="lower",',
        'drift_monitor_canary_accuracy_delta{model="$model",bound="upper",',
        "drift_monitor_version_model_accuracy",
        "drift_monitor_version_model_f1",
        "drift_monitor_version_model_mae",
    ):
        assert needed in exprs, needed


# -- provisioning ------------------------------------------------------------------------------


def test_the_datasource_is_the_default_prometheus() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["uid"] == "drift-monitor-prometheus"
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True


def test_the_dashboard_provider_reads_the_mounted_files() -> None:
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "drift-monitor"
    assert provider["options"]["path"] == DASHBOARDS_MOUNT


def compose_files() -> list[Path]:
    """Compose files at the top of the repository or one directory down."""
    return sorted(
        path
        for name in COMPOSE_FILES
        for path in (ROOT / name, *ROOT.glob(f"*/{name}"))
        if path.exists() and ".venv" not in path.parts
    )


def test_the_compose_file_mounts_what_the_provisioning_expects() -> None:
    files = compose_files()
    if not files:
        pytest.skip("no compose file in the repository yet")
    for compose in files:
        services = yaml.safe_load(compose.read_text())["services"]
        grafana = [s for s in services.values() if str(s.get("image", "")).startswith("grafana/")]
        if not grafana:
            continue
        (service,) = grafana
        mounts = {}
        for volume in service.get("volumes", []):
            source, target = (
                (volume["source"], volume["target"])
                if isinstance(volume, dict)
                else volume.split(":")[:2]
            )
            mounts[target] = (compose.parent / source).resolve()
        assert mounts.get(DASHBOARDS_MOUNT) == DASHBOARDS.resolve(), (compose, mounts)
        assert mounts.get(PROVISIONING_MOUNT) == (GRAFANA / "provisioning").resolve(), mounts
