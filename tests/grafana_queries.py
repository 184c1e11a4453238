"""Run the queries of a dashboard of ``grafana/dashboards`` on a real Prometheus the way Grafana
runs them (see ``grafana_render`` for the rules followed): the ``datasource`` variable resolved
among the provisioned data sources, every query variable filled from Prometheus in order
(``label_values(selector, label)`` through the label values API over the time range, the
variables before it interpolated) and set to its saved default or to an override, then every
panel target and annotation interpolated and run: an instant query at ``at``, or a range
query over the time range ``RANGE_SECONDS`` to ``at`` with step ``$__interval``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from grafana_render import (
    Selection,
    builtins,
    chosen_datasource,
    interpolate,
    panels,
    template_variables,
)
from prometheus_stack import Stack

ROOT = Path(__file__).resolve().parent.parent
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
#: The tests' dashboard time range (the stacks are younger), the panel interval Grafana would
#: choose for it on a panel some 60 points wide (no less than the data source's timeInterval)
#: and the test Prometheus's scrape interval (``running_stack``: 1 s), its timeInterval.
RANGE_SECONDS = 300
INTERVAL_SECONDS = 5
SCRAPE_SECONDS = 1
GRAFANA = builtins(
    range_seconds=RANGE_SECONDS, interval_seconds=INTERVAL_SECONDS, scrape_seconds=SCRAPE_SECONDS
)
LABEL_VALUES = re.compile(r"label_values\((.+),\s*(\w+)\)")


@dataclass(frozen=True)
class Query:
    """A panel target or an annotation: ``where`` names it for messages."""

    where: str
    expr: str
    instant: bool
    datasource: str


def provisioned_datasources() -> list[dict[str, Any]]:
    document = yaml.safe_load(DATASOURCES.read_text())
    return list(document["datasources"])


def queries(dashboard: dict[str, Any]) -> list[Query]:
    found = []
    title = dashboard["title"]
    for panel in panels(dashboard):
        for target in panel.get("targets") or []:
            found.append(
                Query(
                    f"{title} / {panel['title']!r} / {target['refId']}",
                    target["expr"],
                    bool(target.get("instant")) and not target.get("range"),
                    target["datasource"]["uid"],
                )
            )
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            source = annotation["datasource"]["uid"]
            found.append(
                Query(
                    f"{title} / annotation {annotation['name']!r}",
                    annotation["expr"],
                    False,
                    source,
                )
            )
    return found


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    assert isinstance(text, str), variable
    return text


def default_selection(variable: dict[str, Any], options: list[str]) -> tuple[str, ...] | None:
    """What Grafana selects on load: the saved value if still an option (All stays All), else
    All when the variable has it, else the first option."""
    value = (variable.get("current") or {}).get("value")
    values = value if isinstance(value, list) else [value] if value else []
    if values == ["$__all"] and variable.get("includeAll"):
        return None
    valid = [v for v in values if v in options]
    if valid:
        return tuple(valid) if variable.get("multi") else (valid[0],)
    if variable.get("includeAll"):
        return None
    if options:
        return (options[0],)
    raise LookupError(f"${variable['name']}: no option to select")


class DashboardRun:
    """One dashboard loaded in a Grafana whose only data sources are the provisioned ones,
    all answering at ``stack``'s Prometheus, at time ``at``."""

    def __init__(self, stack: Stack, dashboard: dict[str, Any], *, at: float) -> None:
        self.stack = stack
        self.dashboard = dashboard
        self.at = at
        self.start = at - RANGE_SECONDS
        sources = provisioned_datasources()
        (variable,) = [v for v in template_variables(dashboard) if v["type"] == "datasource"]
        self.datasource_uids = {str(source["uid"]) for source in sources}
        self.grafana = {**GRAFANA, variable["name"]: chosen_datasource(variable, sources)}
        self.label_values: dict[tuple[str, str], list[str]] = {}

    def options(self, variable: dict[str, Any], before: Mapping[str, Selection]) -> list[str]:
        query = interpolate(variable_query(variable), before, self.grafana)
        match = LABEL_VALUES.fullmatch(query)
        if match is None:
            raise ValueError(f"${variable['name']}: not a label_values query: {query!r}")
        selector, label = match.groups()
        if (label, selector) not in self.label_values:
            self.label_values[label, selector] = self.stack.label_values(
                label, selector, start=self.start, end=self.at
            )
        return self.label_values[label, selector]

    def selections(
        self, overrides: Mapping[str, tuple[str, ...] | None] = {}
    ) -> dict[str, Selection]:
        """Every query variable as Grafana sets it on load, or as ``overrides`` say (None:
        All); the variables after an overridden one see its value."""
        chosen: dict[str, Selection] = {}
        for variable in template_variables(self.dashboard):
            if variable["type"] == "datasource":
                continue
            assert variable["type"] == "query", variable
            options = self.options(variable, chosen)
            name = variable["name"]
            selected = (
                overrides[name] if name in overrides else default_selection(variable, options)
            )
            chosen[name] = Selection(variable, selected, tuple(options))
        return chosen

    def run(self, query: Query, selections: Mapping[str, Selection]) -> list[dict[str, Any]]:
        """The series ``query`` gives; ValueError for an unknown data source, an unknown
        variable or Prometheus's error."""
        uid = interpolate(query.datasource, {}, self.grafana)
        if uid not in self.datasource_uids:
            raise ValueError(f"data source {query.datasource!r} resolves to unknown {uid!r}")
        expr = interpolate(query.expr, selections, self.grafana)
        if query.instant:
            return self.stack.query(expr, at=self.at)
        return self.stack.query_range(expr, start=self.start, end=self.at, step=INTERVAL_SECONDS)


def label_sets(result: list[dict[str, Any]]) -> set[frozenset[tuple[str, str]]]:
    return {frozenset(series["metric"].items()) for series in result}


def values(series: dict[str, Any]) -> list[float]:
    points = series["values"] if "values" in series else [series["value"]]
    return [float(value) for _, value in points]


def model_scenarios(run: DashboardRun) -> list[dict[str, tuple[str, ...] | None]]:
    """The overrides to try: each model on a dashboard whose model variable takes one value
    (its panels for one kind of model are empty for the other), else the loaded values."""
    model = run.selections().get("model")
    if model is None or model.selected is None:
        return [{}]
    return [{"model": (name,)} for name in model.options]


def run_scenarios(run: DashboardRun) -> tuple[dict[Query, list[list[dict[str, Any]]]], list[str]]:
    """Every query of the dashboard in every ``model_scenarios``: the results of each, and the
    errors met."""
    results: dict[Query, list[list[dict[str, Any]]]] = {q: [] for q in queries(run.dashboard)}
    errors = []
    for overrides in model_scenarios(run):
        selections = run.selections(overrides)
        for query, answers in results.items():
            try:
                answers.append(run.run(query, selections))
            except ValueError as exc:
                errors.append(f"{query.where}: {query.expr}\n    error: {exc}")
    return results, errors


def without_data(results: Mapping[Query, list[list[dict[str, Any]]]]) -> list[str]:
    return [f"{q.where}: {q.expr}\n    no data" for q, r in results.items() if not any(r)]
