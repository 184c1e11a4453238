"""Where a replay goes: straight into the store, or into a running service over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from monitor import __version__, timestamps
from monitor.config import ModelConfig
from monitor.errors import InvalidRecordsError, RecordIssue, ReplayTargetError
from monitor.replay.run import Transition
from monitor.service import Service
from monitor.webhooks.sender import BATCH as WEBHOOK_BATCH

HISTORY_LIMIT = 1000  # alert events fetched per tick: far more than one evaluation makes
RETRIES = 5


class DataClock:
    """A clock that says what the replay sets: the data time of the step being replayed."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def transitions(
    at: float,
    *,
    events: Iterable[Mapping[str, Any]],
    active: Iterable[Mapping[str, Any]],
    earlier: frozenset[str] = frozenset(),
) -> tuple[list[Transition], int]:
    """The alert transitions at tick ``at`` from the alert history (``alert.*`` events, newest
    first, as ``GET /v1/alerts/history`` answers; those whose ``event_id`` is in ``earlier``,
    seen before this evaluation, were made by an earlier replay) and the active alerts (a
    pending alert whose state began at ``at`` went pending then); and how many alerts fire.
    Times (``at``, ``since``) are RFC 3339, as the API answers them.

    >>> event = {"event_id": "e1", "type": "alert.firing", "at": "1970-01-01T00:01:00Z",
    ...          "model": "m", "rule": "psi", "feature": "x", "severity": "critical",
    ...          "value": 0.5, "threshold": 0.25}
    >>> found, firing = transitions(60.0, events=[event], active=[{**event, "state": "firing",
    ...                             "since": "1970-01-01T00:01:00Z"}])
    >>> [(t.transition, t.feature) for t in found], firing
    ([('firing', 'x')], 1)
    """
    found = []
    active = list(active)
    tick = timestamps.written(at)  # both written by ``timestamps``: equal as text
    for alert in active:
        if alert["state"] == "pending" and alert["since"] == tick:
            found.append(_transition(at, "pending", alert))
    for event in reversed(list(events)):
        if event["at"] == tick and event["event_id"] not in earlier:
            found.append(_transition(at, str(event["type"]).removeprefix("alert."), event))
    firing = sum(1 for alert in active if alert["state"] == "firing")
    return found, firing


def _transition(at: float, kind: str, alert: Mapping[str, Any]) -> Transition:
    return Transition(
        at,
        alert["model"],
        alert["rule"],
        alert["feature"] or None,
        kind,
        alert["severity"],
        float(alert["value"]),
        float(alert["threshold"]),
    )


class StoreTarget:
    """A ``Service`` built on ``clock`` (a ``DataClock``): batches are validated and stored as
    the ingest API does, with data time as their receipt time, and each tick is evaluated as
    of its time, so alerts change state at data times.

    ``webhooks=False`` records alert events without queueing deliveries; with ``True`` they
    are queued and each is attempted at once (the sender runs on the wall clock, as signature
    timestamps must; see docs/client.md on retries)."""

    def __init__(
        self, service: Service, model: str, *, clock: DataClock, webhooks: bool = False
    ) -> None:
        self.service = service
        self.model = model
        self.clock = clock
        self.webhooks = webhooks

    def store_predictions(self, at: float, records: list[dict[str, Any]]) -> None:
        self.clock.now = at
        self.service.store_predictions(self.model, records)

    def store_labels(self, at: float, records: list[dict[str, Any]]) -> None:
        self.clock.now = at
        self.service.store_labels(self.model, records)

    def evaluate(self, at: float) -> tuple[list[Transition], int]:
        self.clock.now = at
        earlier = self._event_ids(at)
        self.service.evaluate(self.model, at=at, webhooks=self.webhooks)
        if self.webhooks:
            while self.service.webhooks.run_once() >= WEBHOOK_BATCH:
                pass
        events = self.service.alert_history(model=self.model, since=at, limit=HISTORY_LIMIT)
        active = self.service.active_alerts(self.model)
        return transitions(
            at,
            earlier=earlier,
            events=(
                {
                    "event_id": e.event_id,
                    "type": e.type,
                    "at": timestamps.written(e.at),
                    "model": e.model,
                    "rule": e.rule,
                    "feature": e.feature,
                    "severity": e.severity,
                    "value": e.value,
                    "threshold": e.threshold,
                }
                for e in events
            ),
            active=(
                {
                    "state": s.alert.state,
                    "since": timestamps.written(s.alert.since),
                    "model": s.model,
                    "rule": s.alert.rule,
                    "feature": s.alert.feature,
                    "severity": s.alert.severity,
                    "value": s.alert.value,
                    "threshold": s.alert.threshold,
                }
                for s in active
            ),
        )

    def _event_ids(self, at: float) -> frozenset[str]:
        events = self.service.alert_history(model=self.model, since=at, limit=HISTORY_LIMIT)
        return frozenset(e.event_id for e in events)

    def pending_deliveries(self) -> int:
        return len(self.service.deliveries(status="pending", limit=1000))


class HttpTarget:
    """A running ``monitor serve``: batches are POSTed to the ingest routes and each tick is
    ``POST .../evaluate?at=<tick>``. The token needs the admin scope (evaluate), which covers
    ingest and read. Connection errors, 429 and 503 are retried a few times."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        token: str | None = None,
        webhooks: bool = False,
        transport: httpx.BaseTransport | None = None,
        timeout_seconds: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"user-agent": f"drift-monitor-replay/{__version__}"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout_seconds, transport=transport
        )
        self.model = model
        self._path = f"/v1/models/{quote(model, safe='')}"
        self.webhooks = webhooks
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def model_config(self) -> ModelConfig:
        """The model as the service describes it (``GET /v1/models/{model}``): enough to read
        a file's columns and to know the schedule."""
        found = self._request("GET", self._path).json()
        return ModelConfig.model_validate(
            {
                "name": found["name"],
                "task": found["task"],
                "classes": found.get("classes"),
                "features": [{"name": f["name"], "type": f["type"]} for f in found["features"]],
                "schedule": found["schedule"],
            }
        )

    def store_predictions(self, at: float, records: list[dict[str, Any]]) -> None:
        self._post_records(f"{self._path}/predictions", records)

    def store_labels(self, at: float, records: list[dict[str, Any]]) -> None:
        self._post_records(f"{self._path}/labels", records)

    def evaluate(self, at: float) -> tuple[list[Transition], int]:
        earlier = frozenset(e["event_id"] for e in self._history(at))
        flag = "true" if self.webhooks else "false"
        self._request("POST", f"{self._path}/evaluate", params={"at": repr(at), "webhooks": flag})
        active = self._request("GET", "/v1/alerts", params={"model": self.model}).json()
        return transitions(at, events=self._history(at), active=active, earlier=earlier)

    def _history(self, since: float) -> list[dict[str, Any]]:
        params = {"model": self.model, "since": repr(since), "limit": str(HISTORY_LIMIT)}
        found: list[dict[str, Any]] = self._request(
            "GET", "/v1/alerts/history", params=params
        ).json()
        return found

    def _post_records(self, path: str, records: list[dict[str, Any]]) -> None:
        response = self._request(
            "POST",
            path,
            content=orjson.dumps(records),
            headers={"content-type": "application/json"},
            refuse=False,
        )
        if response.status_code == 422:
            errors = _problem(response).get("errors") or []
            if errors and all("index" in e for e in errors):
                raise InvalidRecordsError(
                    [
                        RecordIssue(int(e["index"]), str(e["field"]), str(e["reason"]))
                        for e in errors
                    ]
                )
        if response.is_error:
            raise _refused(response)

    def _request(
        self, method: str, path: str, *, refuse: bool = True, **options: Any
    ) -> httpx.Response:
        """Send, retrying connection errors, 429 and 503 (after ``Retry-After`` when given);
        with ``refuse``, any other error answer raises ``ReplayTargetError``."""
        for attempt in range(RETRIES):
            last = attempt == RETRIES - 1
            try:
                response = self._client.request(method, path, **options)
            except httpx.TransportError as exc:
                if last:
                    raise ReplayTargetError(
                        f"{method} {self._client.base_url}{path}: {exc}"
                    ) from None
                self._sleep(min(0.5 * 2**attempt, 10.0))
                continue
            if response.status_code in (429, 503) and not last:
                wait = response.headers.get("retry-after", "")
                self._sleep(float(wait) if wait.isdigit() else min(0.5 * 2**attempt, 10.0))
                continue
            if refuse and response.is_error:
                raise _refused(response)
            return response
        raise AssertionError("unreachable")


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refused(response: httpx.Response) -> ReplayTargetError:
    problem = _problem(response)
    detail = problem.get("detail") or problem.get("title") or response.text[:200]
    request = response.request
    return ReplayTargetError(
        f"{request.method} {request.url.path}: {response.status_code} {detail}"
    )
