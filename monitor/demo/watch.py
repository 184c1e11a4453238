"""The demo's alert transitions, printed as they happen: an alert turning pending, firing,
escalating or resolving, with its value and level. Polls ``GET /v1/alerts`` (pending and
firing) and ``GET /v1/alerts/history`` (resolutions) of the demo's model."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from monitor.thresholds import LOWER_IS_WORSE

Key = tuple[str, str]  # (rule, feature)


def _name(alert: Mapping[str, Any]) -> str:
    feature = alert.get("feature")
    return f"{alert['rule']} of {feature}" if feature else str(alert["rule"])


def _compare(alert: Mapping[str, Any]) -> str:
    side = "<=" if alert["rule"] in LOWER_IS_WORSE else ">="
    return f"{alert['value']:.4g} {side} {alert['threshold']:.4g} ({alert['severity']} level)"


def transitions(
    before: Mapping[Key, Mapping[str, Any]],
    after: Mapping[Key, Mapping[str, Any]],
    resolved: Sequence[Mapping[str, Any]],
) -> list[str]:
    """Lines for what changed between two polls of the active alerts; ``resolved``: the
    ``alert.resolved`` events recorded since the first poll.

    >>> high = {"rule": "psi", "feature": "income", "state": "pending", "severity": "critical",
    ...         "value": 0.31, "threshold": 0.25}
    >>> transitions({}, {("psi", "income"): high}, [])
    ['alert: psi of income pending: 0.31 >= 0.25 (critical level)']
    >>> firing = dict(high, state="firing")
    >>> transitions({("psi", "income"): high}, {("psi", "income"): firing}, [])
    ['alert: psi of income FIRING: 0.31 >= 0.25 (critical level)']
    >>> done = dict(firing, value=0.02)
    >>> transitions({("psi", "income"): firing}, {}, [done])
    ['alert: psi of income resolved: 0.02 (critical level 0.25)']
    """
    lines = []
    for key, alert in after.items():
        old = before.get(key)
        if old is None:
            state = "FIRING" if alert["state"] == "firing" else "pending"
            lines.append(f"alert: {_name(alert)} {state}: {_compare(alert)}")
        elif old["state"] == "pending" and alert["state"] == "firing":
            lines.append(f"alert: {_name(alert)} FIRING: {_compare(alert)}")
        elif old["severity"] != alert["severity"] and alert["state"] == "firing":
            lines.append(f"alert: {_name(alert)} escalated: {_compare(alert)}")
    by_key = {(e["rule"], e.get("feature") or ""): e for e in resolved}
    for key, alert in before.items():
        if key in after:
            continue
        event = by_key.get(key)
        if event is not None:
            lines.append(
                f"alert: {_name(alert)} resolved: {event['value']:.4g}"
                f" ({event['severity']} level {event['threshold']:.4g})"
            )
        elif alert["state"] == "pending":
            lines.append(f"alert: {_name(alert)} no longer pending")
    return lines


class AlertWatch:
    """Prints the model's alert transitions every ``interval`` seconds until stopped."""

    def __init__(
        self,
        client: httpx.Client,
        model: str,
        *,
        stop: threading.Event,
        interval: float = 1.0,
        out: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.client = client
        self.model = model
        self.stop = stop
        self.interval = interval
        self.out = out
        self._active: dict[Key, Mapping[str, Any]] = {}
        self._seen: set[str] = set()

    def poll(self) -> None:
        alerts = self._get("/v1/alerts")
        if alerts is None:
            return
        history = self._get("/v1/alerts/history") or []
        resolved = [
            event
            for event in history
            if event["type"] == "alert.resolved" and event["event_id"] not in self._seen
        ]
        self._seen.update(event["event_id"] for event in history)
        active: dict[Key, Mapping[str, Any]] = {
            (a["rule"], a.get("feature") or ""): a for a in alerts
        }
        for line in transitions(self._active, active, resolved):
            self.out(line)
        self._active = active

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.poll()

    def _get(self, path: str) -> list[dict[str, Any]] | None:
        try:
            response = self.client.get(path, params={"model": self.model})
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None
