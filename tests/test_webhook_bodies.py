"""Route body formats: the event, an Alertmanager webhook payload, or a template; the shipped
templates in ``examples/webhooks/`` give what each target API takes; template and header
mistakes are config errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import standardwebhooks
from prometheus_client import CollectorRegistry
from receiver import SECRET, Receiver
from sqlalchemy import Engine

from monitor.config import load_config, parse_config
from monitor.domain import Window
from monitor.errors import ConfigError
from monitor.service import Service
from monitor.webhooks.bodies import alertmanager, fill
from monitor.webhooks.events import alert_event, webhook_test_event

EXAMPLES = Path(__file__).parent.parent / "examples" / "webhooks"


def firing(**overrides: Any) -> dict[str, Any]:
    document = alert_event(
        "alert.firing",
        1_767_225_600.0,
        episode=None,
        model="credit",
        rule="psi",
        feature='age "years"',  # a quote, to show escaping
        severity="critical",
        value=0.31,
        threshold=0.25,
        window=Window(1_767_222_000.0, 1_767_225_600.0, 1234),
        reference_version=3,
        top_features=[{"feature": "age", "psi": 0.31, "status": "critical"}],
    )
    document.update(overrides)
    return document


def rendered(name: str, event: dict[str, Any]) -> Any:
    return orjson.loads(fill((EXAMPLES / name).read_text(), event, route="r"))


def test_the_example_config_and_its_templates_load() -> None:
    config = load_config(EXAMPLES / "monitor.yaml")
    formats = {w.name: w.format for w in config.webhooks}
    assert formats["alertmanager"] == "alertmanager" and formats["slack"] == "template"


def test_github_repository_dispatch() -> None:
    event = firing()
    body = rendered("github-repository-dispatch.json", event)
    assert body["event_type"] == "drift-monitor-alert.firing"
    payload = body["client_payload"]
    assert len(payload) <= 10  # GitHub's limit on client_payload's top-level properties
    assert payload["feature"] == 'age "years"' and payload["window_end"] == "2026-01-01T00:00:00Z"
    assert payload["export"] == event["links"]["export"] and payload["event_id"] == event["id"]


def test_airflow_dag_run() -> None:
    event = firing()
    body = rendered("airflow-dag-run.json", event)
    assert body["dag_run_id"] == f"drift-monitor-{event['id']}"
    assert body["logical_date"] is None
    assert body["conf"]["event"] == event and body["conf"]["window_n"] == 1234
    assert body["conf"]["reason"] == (
        'credit: psi of age "years" is 0.31 (critical at 0.25): firing'
    )


def test_argo_events_and_kubeflow() -> None:
    event = firing()
    argo = rendered("argo-events.json", event)
    assert argo["window"] == {
        "start": "2025-12-31T23:00:00Z",  # 1_767_222_000
        "end": "2026-01-01T00:00:00Z",
        "n": 1234,
    }
    run = rendered("kubeflow-pipelines-run.json", event)
    assert set(run) == {"display_name", "pipeline_version_reference", "runtime_config"}
    assert run["runtime_config"]["parameters"]["model"] == "credit"


def test_slack() -> None:
    body = rendered("slack.json", firing())
    assert body["text"].startswith("credit: psi of age")
    assert body["blocks"][0]["text"]["type"] == "mrkdwn"


def test_alertmanager_payload() -> None:
    event = firing(feature="age")
    body = alertmanager(event, route="pager")
    assert (body["version"], body["status"], body["receiver"]) == ("4", "firing", "pager")
    (alert,) = body["alerts"]
    assert alert["labels"] == {
        "alertname": "DriftMonitorFeatureDrift",
        "model": "credit",
        "rule": "psi",
        "feature": "age",
        "severity": "critical",
    }
    assert alert["annotations"] == {
        "summary": "credit: psi of age is 0.31 (critical at 0.25): firing",
        "event_id": event["id"],
        "export": event["links"]["export"],
        "runbook_url": (
            "https://drift-monitor.readthedocs.io/en/latest/runbooks/DriftMonitorFeatureDrift/"
        ),
    }
    assert alert["startsAt"] == event["created_at"] and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert body["commonLabels"] == alert["labels"] and len(alert["fingerprint"]) == 16
    resolved = alertmanager(firing(feature="age", type="alert.resolved"), route="pager")
    assert resolved["status"] == resolved["alerts"][0]["status"] == "resolved"
    assert resolved["alerts"][0]["fingerprint"] == alert["fingerprint"]  # the same alert


def test_alertmanager_labels_of_a_model_rule_and_of_a_test_event() -> None:
    """A model-level rule has no feature label; an event that is no alert is named after its
    type and has no runbook."""
    (alert,) = alertmanager(firing(rule="accuracy", feature=None), route="pager")["alerts"]
    assert alert["labels"] == {
        "alertname": "DriftMonitorPerformanceDegraded",
        "model": "credit",
        "rule": "accuracy",
        "severity": "critical",
    }
    assert alert["annotations"]["runbook_url"].endswith(
        "/runbooks/DriftMonitorPerformanceDegraded/"
    )
    test_event = webhook_test_event("pager", 1_767_225_600.0)
    (alert,) = alertmanager(test_event, route="pager")["alerts"]
    assert alert["labels"] == {"alertname": "DriftMonitorWebhookTest"}
    assert set(alert["annotations"]) == {"summary", "event_id"}


def write_config(tmp_path: Path, route: str, template: str | None = None) -> Path:
    if template is not None:
        (tmp_path / "t.json").write_text(template)
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "models: [{name: m, task: regression, features: [{name: x, type: numeric}]}]\n"
        "webhooks:\n"
        f"  - {route}\n"
    )
    return path


@pytest.mark.parametrize(
    ("route", "template", "message"),
    [
        (
            '{name: t, url: "https://x.example.com", format: template, template: t.json}',
            '{"m": "${modle}"}',
            "webhooks[0].template: template: unknown placeholder(s) modle; known: ",
        ),
        (
            '{name: t, url: "https://x.example.com", format: template, template: t.json}',
            '{"m": ${model}}',
            "webhooks[0].template: template: not JSON once filled in: ",
        ),
        (
            '{name: t, url: "https://x.example.com", format: template}',
            None,
            "webhooks[0]: format: template and a template file go together",
        ),
        (
            '{name: t, url: "https://x.example.com", headers: {webhook-id: x}}',
            None,
            "webhooks[0].headers: webhook-id: set by drift-monitor itself",
        ),
        (
            '{name: t, url: "https://x.example.com", headers: {Host: y.example.com}}',
            None,
            "webhooks[0].headers: host: set by drift-monitor itself, from the url",
        ),
    ],
)
def test_route_mistakes_are_config_errors(
    tmp_path: Path, route: str, template: str | None, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, route, template))
    (issue,) = error.value.issues
    assert str(issue).startswith(f"{tmp_path / 'monitor.yaml'}:3: ")
    assert message in str(issue)


def test_each_route_gets_its_own_body_and_headers(engine: Engine) -> None:
    receiver = Receiver()
    config = parse_config(f"""
models: [{{name: m, task: regression, features: [{{name: x, type: numeric}}]}}]
webhooks:
  - {{name: am, url: "{receiver.url}", secret: "{SECRET}", allow_private: true,
      format: alertmanager, headers: {{Authorization: "Bearer t0ken"}}}}
""")
    service = Service(config, engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=False)
    try:
        event_id = service.send_test_event("am")
        service.webhooks.run_once()
        ((headers, body),) = receiver.requests
        assert headers["authorization"] == "Bearer t0ken"
        payload = standardwebhooks.Webhook(SECRET).verify(body, headers)
        assert payload["version"] == "4"
        assert payload["alerts"][0]["annotations"]["event_id"] == event_id
    finally:
        service.stop()
        receiver.stop()
