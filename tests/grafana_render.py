"""What Grafana makes of a dashboard of ``grafana/dashboards``, for the tests that check them
without a Grafana:

* ``imported``: the dashboard as ``POST /api/dashboards/import`` stores it (Grafana's
  ``DashTemplateEvaluator``: every ``${NAME}`` of an ``__inputs`` entry replaced, in every
  string, by the value given for it; ``__inputs`` dropped; a missing input refused);
* ``chosen_datasource``: the data source a ``datasource`` variable selects on load (its
  options are the data sources of its plugin type; the saved current value is matched by uid,
  then by name; else the first option);
* ``Selection.format`` and ``interpolate``: a template variable in a PromQL expression as the
  Prometheus data source interpolates it (``interpolateQueryExpr``: a variable that is
  neither multi-value nor has All gets the classic escape, the others each value regex-escaped
  and several joined as ``(a|b)``; All is the ``allValue`` when set, else every option);
* ``builtins``: ``$__interval``, ``$__rate_interval`` (``max($__interval + scrape interval,
  4 x scrape interval)``) and ``$__range``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "grafana" / "dashboards"
INPUT = re.compile(r"\$\{(.+?)\}")  # Grafana's import template pattern
VARIABLE = re.compile(r"\$\{(\w+)(?::([^}]*))?\}|\[\[(\w+)(?::([^\]]*))?\]\]|\$(\w+)")
#: The variables of a dashboard that say where the series come from (Prometheus target labels).
TARGET_VARIABLES = ("job", "namespace", "instance")


def load(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    assert isinstance(document, dict), path
    return document


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def imported(dashboard: dict[str, Any], inputs: Mapping[str, str]) -> dict[str, Any]:
    """``dashboard`` as Grafana's import stores it, given a value for each of its inputs."""
    values = {}
    for declared in dashboard.get("__inputs", []):
        if declared["name"] not in inputs:
            raise KeyError(f"dashboard import failed: input {declared['name']!r} missing")
        values["${" + declared["name"] + "}"] = inputs[declared["name"]]

    def evaluate(node: Any) -> Any:
        if isinstance(node, str):
            return INPUT.sub(lambda m: values.get(m.group(0), m.group(0)), node)
        if isinstance(node, list):
            return [evaluate(item) for item in node]
        if isinstance(node, dict):
            return {key: evaluate(value) for key, value in node.items() if key != "__inputs"}
        return node

    result = evaluate(dashboard)
    assert isinstance(result, dict)
    return result


def template_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    variables = dashboard.get("templating", {}).get("list", [])
    assert isinstance(variables, list)
    return variables


def chosen_datasource(variable: dict[str, Any], datasources: Sequence[Mapping[str, Any]]) -> str:
    """The uid a ``datasource`` variable selects among ``datasources`` (name, uid, type)."""
    assert variable["type"] == "datasource", variable
    options = [source for source in datasources if source["type"] == variable["query"]]
    if not options:
        raise LookupError(f"no {variable['query']} data source for ${variable['name']}")
    current = variable.get("current") or {}
    for source in options:
        if source["uid"] == current.get("value"):
            return str(source["uid"])
    for source in options:
        if source["name"] == current.get("text"):
            return str(source["uid"])
    return str(options[0]["uid"])


def classic_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def regex_escape(value: str) -> str:
    return re.sub(
        r"[$^*{}\[\]+?.()|]", lambda m: "\\\\" + m.group(0), value.replace("\\", "\\" * 4)
    )


@dataclass(frozen=True)
class Selection:
    """A template variable's value: ``selected`` values, or All (``None``) of ``options``."""

    variable: dict[str, Any]
    selected: tuple[str, ...] | None
    options: tuple[str, ...] = ()

    def format(self) -> str:
        """The text Grafana's Prometheus data source puts in place of the variable."""
        variable = self.variable
        if self.selected is None:
            if not variable.get("includeAll"):
                raise ValueError(f"${variable['name']} has no All")
            if variable.get("allValue"):
                return str(variable["allValue"])
            values = self.options
        else:
            values = self.selected
        if not variable.get("multi") and not variable.get("includeAll"):
            if len(values) != 1:
                raise ValueError(f"${variable['name']} takes one value, not {values}")
            return classic_escape(values[0])
        escaped = [regex_escape(value) for value in values]  # none: "()", the empty string
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def builtins(*, range_seconds: int, interval_seconds: int, scrape_seconds: int) -> dict[str, str]:
    """Grafana's own variables for a time range, a panel interval and the data source's scrape
    interval (``jsonData.timeInterval``)."""
    rate = max(interval_seconds + scrape_seconds, 4 * scrape_seconds)
    return {
        "__interval": f"{interval_seconds}s",
        "__interval_ms": str(interval_seconds * 1000),
        "__rate_interval": f"{rate}s",
        "__range": f"{range_seconds}s",
        "__range_s": str(range_seconds),
    }


def interpolate(text: str, selections: Mapping[str, Selection], grafana: Mapping[str, str]) -> str:
    """``text`` with every variable replaced; ValueError names an unknown one or a format
    (``${var:format}``) the dashboards' queries do not use."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(5)
        if match.group(2) or match.group(4):
            raise ValueError(f"variable format in {match.group(0)!r}: not used in queries")
        if name in grafana:
            return grafana[name]
        if name in selections:
            return selections[name].format()
        raise ValueError(f"unknown variable ${name} in {text!r}")

    return VARIABLE.sub(replace, text)


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""

    def walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from walk(panel.get("panels") or [])

    yield from walk(dashboard.get("panels") or [])
