"""A route's request body for an event, by the route's ``format``:

* ``event`` (default): the event document itself (docs/alerts.md);
* ``alertmanager``: an Alertmanager webhook payload (``"version": "4"``), one alert per event,
  for receivers built for Prometheus alerts, with the alert names and labels of the shipped
  Prometheus rules (``monitor.alerts.names``);
* ``template``: a JSON file with ``${name}`` placeholders (``string.Template``), for an API
  that wants its own shape: GitHub ``repository_dispatch``, Airflow's ``dagRuns``, Argo
  Events, Kubeflow Pipelines, Slack (see ``examples/webhooks/``).

In a template, ``${event}`` is the whole event as JSON; ``${value}``, ``${threshold}`` and
``${window_n}`` are JSON numbers, ``${window_start}`` and ``${window_end}`` JSON strings (RFC
3339, with their quotes), each ``null`` when absent; every other placeholder is a string's
content, escaped to sit between JSON quotes: ``"event_type": "drift-${model}"``. A template
is checked when the config is loaded: unknown placeholders, and a body that is not JSON once
filled in, are config errors.
"""

from __future__ import annotations

import hashlib
import re
import string
from typing import Any

import orjson

from monitor.alerts.names import alert_name, runbook_url

TEXT_FIELDS = (
    "id",
    "type",
    "created_at",
    "episode",
    "model",
    "rule",
    "statistic",
    "feature",
    "severity",
    "route",
    "export",
    "summary",
)
#: placeholders that stand for a JSON value (a number, or a time as a quoted string)
VALUE_FIELDS = ("value", "threshold", "window_start", "window_end", "window_n")
PLACEHOLDERS = frozenset((*TEXT_FIELDS, *VALUE_FIELDS, "event"))

#: What a template is checked against at load: an alert event with every field set.
SAMPLE_EVENT: dict[str, Any] = {
    "id": "evt_sample",
    "type": "alert.firing",
    "version": "1",
    "created_at": "2026-01-01T00:00:00Z",
    "episode": "evt_sample",
    "model": "credit",
    "rule": "psi",
    "statistic": "psi",
    "feature": "age",
    "severity": "critical",
    "value": 0.31,
    "threshold": 0.25,
    "window": {"start": "2025-12-31T23:00:00Z", "end": "2026-01-01T00:00:00Z", "n": 1000},
    "reference": {"version": 1},
    "top_features": [{"feature": "age", "psi": 0.31, "status": "critical"}],
    "links": {
        "export": "/v1/models/credit/export?start=2025-12-31T23:00:00Z&end=2026-01-01T00:00:00Z"
    },
}


def render(event: dict[str, Any], *, route: str, body_format: str, template: str | None) -> bytes:
    """The body that ``route`` is sent for ``event``."""
    if body_format == "alertmanager":
        return orjson.dumps(alertmanager(event, route=route))
    if body_format == "template":
        assert template is not None
        return fill(template, event, route=route)
    return orjson.dumps(event)


def summary(event: dict[str, Any]) -> str:
    """One line for humans.

    >>> summary({"type": "alert.firing", "model": "credit", "rule": "psi", "feature": "age",
    ...          "severity": "critical", "value": 0.31, "threshold": 0.25})
    'credit: psi of age is 0.31 (critical at 0.25): firing'
    """
    if not str(event.get("type", "")).startswith("alert."):
        return f"drift-monitor {event.get('type')} event {event.get('id')}"
    where = f" of {event['feature']}" if event.get("feature") else ""
    state = str(event["type"]).removeprefix("alert.")
    return (
        f"{event['model']}: {event['rule']}{where} is {event['value']:.4g} "
        f"({event['severity']} at {event['threshold']:.4g}): {state}"
    )


def fill(template: str, event: dict[str, Any], *, route: str) -> bytes:
    window = event.get("window") or {}
    values: dict[str, Any] = {
        "event": orjson.dumps(event).decode(),
        "route": _text(route),
        "export": _text((event.get("links") or {}).get("export")),
        "summary": _text(summary(event)),
        "window_start": _value(window.get("start")),
        "window_end": _value(window.get("end")),
        "window_n": _value(window.get("n")),
        "value": _value(event.get("value")),
        "threshold": _value(event.get("threshold")),
    }
    for name in TEXT_FIELDS:
        values.setdefault(name, _text(event.get(name)))
    body = string.Template(template).substitute(values).encode()
    orjson.loads(body)  # a template must give JSON; checked at load against SAMPLE_EVENT
    return body


def check(template: str) -> None:
    """Raise ValueError naming what is wrong with a template."""
    try:
        names = {
            match.group("named") or match.group("braced")
            for match in string.Template.pattern.finditer(template)
            if match.group("named") or match.group("braced")
        }
    except ValueError as exc:
        raise ValueError(f"template: {exc}") from None
    unknown = sorted(names - PLACEHOLDERS)
    if unknown:
        raise ValueError(
            f"template: unknown placeholder(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(PLACEHOLDERS))}"
        )
    try:
        fill(template, SAMPLE_EVENT, route="sample")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"template: not JSON once filled in: {exc}") from None


def alertmanager(event: dict[str, Any], *, route: str) -> dict[str, Any]:
    """An Alertmanager webhook payload (version 4) holding the event as its one alert."""
    resolved = event.get("type") == "alert.resolved"
    rule = event.get("rule")
    alertname = alert_name(rule) if rule else _camel_case(f"drift_monitor.{event.get('type')}")
    labels = {
        "alertname": alertname,
        "model": event.get("model") or "",
        "rule": event.get("rule") or "",
        "feature": event.get("feature") or "",
        "severity": event.get("severity") or "",
    }
    labels = {k: v for k, v in labels.items() if v}
    fingerprint = hashlib.sha256(orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)).hexdigest()
    annotations = {"summary": summary(event), "event_id": event["id"]}
    if rule:
        annotations["runbook_url"] = runbook_url(alertname)
    if event.get("links", {}).get("export"):
        annotations["export"] = event["links"]["export"]
    alert = {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": event["created_at"],
        "endsAt": event["created_at"] if resolved else "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint[:16],
    }
    return {
        "version": "4",
        "groupKey": "{}:" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())),
        "truncatedAlerts": 0,
        "status": alert["status"],
        "receiver": route,
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [alert],
    }


def _camel_case(name: str) -> str:
    """
    >>> _camel_case("drift_monitor.webhook.test")
    'DriftMonitorWebhookTest'
    """
    return "".join(part.capitalize() for part in re.split(r"[._]", name))


def _text(value: Any) -> str:
    return "" if value is None else orjson.dumps(str(value)).decode()[1:-1]


def _value(value: Any) -> str:
    return orjson.dumps(value).decode()


class Renderer:
    """Each route's body for an event, with the routes' templates read once."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self._formats = {name: route.format for name, route in routes.items()}
        self._templates = {
            name: route.template.read_text()
            for name, route in routes.items()
            if route.template is not None
        }

    def body(self, route: str, event: dict[str, Any]) -> bytes:
        return render(
            event,
            route=route,
            body_format=self._formats.get(route, "event"),
            template=self._templates.get(route),
        )
