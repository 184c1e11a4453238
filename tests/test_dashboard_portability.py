"""The dashboards import cleanly into any Grafana and still load provisioned:

* Grafana's export format: ``__inputs`` asks for one Prometheus data source
  (``DS_PROMETHEUS``), ``__requires`` names Grafana, the data source plugin and the panel
  plugins used;
* every query names its data source through the ``datasource`` variable, never a uid: loaded
  provisioned, the variable picks the provisioned data source; imported, the one chosen for
  ``DS_PROMETHEUS`` (``grafana_render`` does what Grafana does with the files);
* ``job``, ``namespace`` and ``instance`` variables (All by default, ``.*``, so a series
  without the label, as in docker compose where nothing sets ``namespace``, still matches)
  narrow every drift-monitor selector of every query;
* every panel shows each query's values in the unit the query measures (``dashboard_units``).

``test_prometheus_replicas.py`` runs the queries as Grafana would on a real Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dashboard_units import applied_unit, expected_unit
from grafana_render import (
    DASHBOARDS,
    TARGET_VARIABLES,
    chosen_datasource,
    imported,
    interpolate,
    load,
    panels,
    template_variables,
)

ROOT = Path(__file__).resolve().parent.parent
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
NAMES = sorted(path.stem for path in DASHBOARDS.glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
METRIC_SELECTOR = re.compile(r"(?<![A-Za-z0-9_:])drift_monitor_[A-Za-z0-9_:]*(\{[^}]*\})?")
#: Grafana's built-in unit ids the dashboards use (``valueFormats/categories.ts``).
GRAFANA_UNITS = {"none", "short", "percentunit", "s", "recps", "reqps"}
OTHER_SOURCES = [
    {"name": "Team Prometheus", "uid": "team-prometheus", "type": "prometheus"},
    {"name": "Logs", "uid": "logs", "type": "loki"},
]


def dashboard(name: str) -> dict[str, Any]:
    return load(DASHBOARDS / f"{name}.json")


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(JSON path, value) of every string in a document."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from strings(item, f"{path}[{index}]")


def references(node: Any) -> Iterator[Any]:
    """Every ``datasource`` value in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def provisioned() -> list[dict[str, Any]]:
    return list(yaml.safe_load(DATASOURCES.read_text())["datasources"])


def variables(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in template_variables(document)}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    assert variable.get("definition", text) == text, variable["name"]
    assert isinstance(text, str)
    return text


def queries(document: dict[str, Any]) -> list[str]:
    """Every PromQL expression: targets, annotations and query variables."""
    found = [target["expr"] for panel in panels(document) for target in panel.get("targets", [])]
    found += [a["expr"] for a in document["annotations"]["list"] if "expr" in a]
    found += [variable_query(v) for v in template_variables(document) if v["type"] == "query"]
    return found


def grafana_version() -> str:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    image = str(services["grafana"]["image"])
    return image.rsplit(":", 1)[1]


# -- import format -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_the_export_format_asks_for_one_prometheus(name: str) -> None:
    document = dashboard(name)
    assert document["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "The Prometheus that scrapes drift-monitor's /metrics",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    # the input fills only the data source variable's saved value: every query goes through it
    assert [path for path, text in strings(document) if "${DS_PROMETHEUS}" in text] == [
        ".templating.list[0].current.text",
        ".templating.list[0].current.value",
    ]
    used = {panel["type"] for panel in panels(document) if panel["type"] != "row"}
    required = {(r["type"], r["id"]): r for r in document["__requires"]}
    assert set(required) == {("grafana", "grafana"), ("datasource", "prometheus")} | {
        ("panel", plugin) for plugin in used
    }
    assert required["grafana", "grafana"]["version"] == grafana_version()


@pytest.mark.parametrize("name", NAMES)
def test_every_query_names_the_datasource_variable(name: str) -> None:
    document = dashboard(name)
    first, *_ = template_variables(document)
    assert first["name"] == "datasource" and first["type"] == "datasource"
    assert first["query"] == "prometheus"
    assert not first.get("multi") and not first.get("includeAll")
    seen = list(references(document))
    assert seen and all(value == DATASOURCE for value in seen), seen
    for panel in panels(document):
        if panel["type"] != "row":
            assert panel["datasource"] == DATASOURCE, panel["title"]
            assert all(t["datasource"] == DATASOURCE for t in panel["targets"]), panel["title"]
    for variable in template_variables(document)[1:]:
        assert variable["datasource"] == DATASOURCE, variable["name"]


@pytest.mark.parametrize("name", NAMES)
def test_provisioned_the_dashboard_uses_the_provisioned_datasource(name: str) -> None:
    (source,) = provisioned()
    variable = variables(dashboard(name))["datasource"]
    assert chosen_datasource(variable, provisioned()) == source["uid"]


@pytest.mark.parametrize("name", NAMES)
def test_imported_the_dashboard_uses_the_datasource_chosen_for_its_input(name: str) -> None:
    sources = provisioned() + OTHER_SOURCES
    with pytest.raises(KeyError, match="DS_PROMETHEUS"):
        imported(dashboard(name), {})
    for source in ("team-prometheus", provisioned()[0]["uid"]):
        document = imported(dashboard(name), {"DS_PROMETHEUS": source})
        assert "__inputs" not in document
        assert not [path for path, text in strings(document) if "${DS_" in text]
        uid = chosen_datasource(variables(document)["datasource"], sources)
        assert uid == source
        resolved = {
            interpolate(ref["uid"], {}, {"datasource": uid}) for ref in references(document)
        }
        assert resolved == {source}


# -- job, namespace, instance ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_job_namespace_and_instance_variables(name: str) -> None:
    listed = [v["name"] for v in template_variables(dashboard(name))]
    assert listed[:4] == ["datasource", *TARGET_VARIABLES]
    found = variables(dashboard(name))
    narrowing: list[str] = []
    for target in TARGET_VARIABLES:
        variable = found[target]
        selector = "{" + ",".join(narrowing) + "}" if narrowing else ""
        assert variable["type"] == "query"
        assert (
            variable_query(variable)
            == f"label_values(drift_monitor_build_info{selector}, {target})"
        )
        # All is `.*`, not a list of the values: `.*` matches a series without the label
        # (its value is the empty string), the empty list of a missing label would not
        assert variable["includeAll"] is True and variable["allValue"] == ".*"
        assert variable["multi"] is True
        assert variable["current"]["value"] == ["$__all"]
        assert variable["refresh"] == 2  # on time range change: replicas come and go
        narrowing.append(f'{target}=~"${target}"')


@pytest.mark.parametrize("name", NAMES)
def test_every_selector_is_narrowed_to_the_chosen_targets(name: str) -> None:
    document = dashboard(name)
    wanted = [f'{target}=~"${target}"' for target in TARGET_VARIABLES]
    problems = []
    for expr in queries(document):
        if re.fullmatch(rf"label_values\(.*, ({'|'.join(TARGET_VARIABLES)})\)", expr):
            continue  # the target variables themselves
        for match in METRIC_SELECTOR.finditer(expr):
            matchers = (match.group(1) or "{}")[1:-1].split(",")
            problems += [
                f"{match.group(0)} lacks {w} (in {expr!r})" for w in wanted if w not in matchers
            ]
    assert not problems, "\n".join(problems)


def test_links_keep_the_variables() -> None:
    for name in NAMES:
        for link in dashboard(name)["links"]:
            assert link["includeVars"] is True, (name, link)
        for _, text in strings(dashboard(name)):
            for url in re.findall(r"/d/[^\s\"]+", text):
                for variable in ("datasource", *TARGET_VARIABLES):
                    assert f"${{{variable}:queryparam}}" in url, (name, url)


# -- units -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_panel_shows_its_queries_in_their_unit(name: str) -> None:
    problems = []
    for panel in panels(dashboard(name)):
        for target in panel.get("targets", []):
            unit = applied_unit(panel, target)
            assert unit in GRAFANA_UNITS or str(unit).startswith("count:"), (panel["title"], unit)
            expected = expected_unit(target["expr"])
            if unit != expected:
                problems.append(f"{panel['title']!r} {target['refId']}: {unit}, want {expected}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("expr", "unit"),
    [
        ("sum(rate(drift_monitor_records_ingested_total[1m]))", "recps"),
        ("sum(rate(drift_monitor_http_request_duration_seconds_count[1m]))", "reqps"),
        (
            "sum(rate(drift_monitor_evaluation_duration_seconds_count[10m])) * 60",
            "count:evaluations/min",
        ),
        ("sum(increase(drift_monitor_retention_deleted_records_total[1h]))", "count:rec/h"),
        ("sum(increase(drift_monitor_webhook_deliveries_total[24h]))", "short"),
        (
            "histogram_quantile(0.9, sum by (le) "
            "(rate(drift_monitor_label_delay_seconds_bucket[1h])))",
            "s",
        ),
        ("time() - max(drift_monitor_last_evaluation_timestamp_seconds)", "s"),
        ("min by (model) (drift_monitor_model_mape)", "percentunit"),
        ("max by (model) (drift_monitor_model_rmse)", "none"),
        ('max(drift_monitor_threshold{statistic=~"precision|f1"})', "percentunit"),
        ('max(drift_monitor_threshold{statistic="psi"})', "none"),
        ("count by (version) (drift_monitor_build_info)", "short"),
        ("max by (model, window) (drift_monitor_window_samples)", "short"),
    ],
)
def test_the_unit_of_a_query_is_what_it_measures(expr: str, unit: str) -> None:
    assert expected_unit(expr) == unit
