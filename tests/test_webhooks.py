"""Webhook delivery against a real HTTP receiver started by each test: signed deliveries that
verify with the ``standardwebhooks`` package, retries on errors, timeouts, 429 (honouring
Retry-After) and 5xx, a receiver down then up, pending deliveries surviving a restart, failures
kept and re-sent, and private destinations refused. On SQLite and PostgreSQL.

The sender is driven one step at a time (``run_once``) on a clock the test moves, so each
retry's schedule is checked exactly; one test runs it from the scheduler instead.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import standardwebhooks
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from receiver import SECRET, Answer, Receiver
from sqlalchemy import Engine

from monitor.api import create_app
from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.service import Service
from monitor.storage import deliveries as outbox


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def config_for(url: str, **route: Any) -> Any:
    options = {"timeout": "1s", "max_retry": "1h", "allow_private": True, **route}
    extra = "".join(
        f", {k}: {v if not isinstance(v, bool) else str(v).lower()}" for k, v in options.items()
    )
    return parse_config(
        f"""
models: [{{name: m, task: regression, features: [{{name: x, type: numeric}}]}}]
webhooks:
  - {{name: hook, url: "{url}", secret: "{SECRET}"{extra}}}
"""
    )


def make_service(engine: Engine, url: str, clock: Clock, **route: Any) -> Service:
    service = Service(
        config_for(url, **route), engine=engine, registry=CollectorRegistry(), clock=clock
    )
    service.start(run_jobs=False)
    return service


def delivery(service: Service, event_id: str) -> outbox.Delivery:
    (found,) = [d for d in service.deliveries(status=None, limit=100) if d.event_id == event_id]
    return found


def counted(service: Service, outcome: str) -> float:
    value = service.registry.get_sample_value(
        "drift_monitor_webhook_deliveries_total", {"route": "hook", "outcome": outcome}
    )
    return value or 0.0


def verify(headers: dict[str, str], body: bytes) -> Any:
    return standardwebhooks.Webhook(SECRET).verify(body, headers)


def test_a_delivery_is_signed_and_verifies_independently(
    engine: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    service = make_service(engine, receiver.url, clock)
    event_id = service.send_test_event("hook")
    assert service.webhooks.run_once() == 1
    ((headers, body),) = receiver.requests
    payload = verify(headers, body)
    assert payload["id"] == event_id == headers["webhook-id"]
    assert (payload["type"], payload["version"], payload["route"]) == ("webhook.test", "1", "hook")
    assert headers["webhook-timestamp"] == str(int(clock.now))
    assert headers["content-type"] == "application/json"
    found = delivery(service, event_id)
    assert (found.status, found.attempts, found.last_error) == ("delivered", 1, None)
    assert counted(service, "delivered") == 1
    assert service.webhooks.run_once() == 0  # nothing is sent twice
    service.stop()


def test_failures_are_retried_with_backoff_until_delivered(
    engine: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    service = make_service(engine, receiver.url, clock)
    receiver.script = [Answer(500), Answer(503), Answer(502)]
    event_id = service.send_test_event("hook")
    delays = []
    for attempt in range(1, 4):
        before = clock.now
        service.webhooks.run_once()
        pending = delivery(service, event_id)
        assert (pending.status, pending.attempts) == ("pending", attempt)
        assert pending.last_error == f"HTTP {[500, 503, 502][attempt - 1]}"
        delays.append(pending.next_attempt_at - before)
        assert service.webhooks.run_once() == 0  # not due yet
        clock.now = pending.next_attempt_at
    # exponential, with jitter: attempt n waits between 2**(n-2) and 2**(n-1) seconds
    assert [2 ** (n - 2) <= d <= 2 ** (n - 1) for n, d in enumerate(delays, start=1)] == [True] * 3
    service.webhooks.run_once()
    assert delivery(service, event_id).status == "delivered"
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    assert ids == {event_id} and len(receiver.requests) == 4
    for headers, body in receiver.requests:  # every attempt signed for its own timestamp
        verify(headers, body)
    assert (counted(service, "retry"), counted(service, "delivered")) == (3, 1)
    service.stop()


def test_429_waits_as_long_as_retry_after_says(engine: Engine, receiver: Receiver) -> None:
    clock = Clock()
    service = make_service(engine, receiver.url, clock)
    receiver.script = [Answer(429, {"Retry-After": "120"})]
    event_id = service.send_test_event("hook")
    started = clock.now
    service.webhooks.run_once()
    assert delivery(service, event_id).next_attempt_at == started + 120
    clock.now = started + 119
    assert service.webhooks.run_once() == 0
    clock.now = started + 120
    assert service.webhooks.run_once() == 1
    assert delivery(service, event_id).status == "delivered"
    service.stop()


def test_a_slow_receiver_times_out_and_is_tried_again(engine: Engine, receiver: Receiver) -> None:
    clock = Clock()
    service = make_service(engine, receiver.url, clock, timeout="0.3s")
    receiver.script = [Answer(200, delay=1.0)]
    event_id = service.send_test_event("hook")
    service.webhooks.run_once()
    slow = delivery(service, event_id)
    assert (slow.status, slow.last_error) == ("pending", "timed out")
    clock.now = slow.next_attempt_at
    service.webhooks.run_once()
    assert delivery(service, event_id).status == "delivered"
    assert len(receiver.requests) == 2
    service.stop()


def test_a_receiver_down_for_a_while_gets_the_event_once_up(engine: Engine) -> None:
    with socket.socket() as probe:  # a port nobody listens on, yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = Clock()
    service = make_service(engine, f"http://127.0.0.1:{port}/hook", clock)
    event_id = service.send_test_event("hook")
    for _ in range(3):
        service.webhooks.run_once()
        down = delivery(service, event_id)
        assert down.status == "pending" and down.last_error is not None
        assert "ConnectError" in down.last_error and str(port) not in down.last_error
        clock.now = down.next_attempt_at
    receiver = Receiver(port)
    try:
        service.webhooks.run_once()
        assert delivery(service, event_id).status == "delivered"
        ((headers, body),) = receiver.requests
        assert verify(headers, body)["id"] == event_id
    finally:
        receiver.stop()
    service.stop()


def test_pending_deliveries_go_out_after_a_restart(engine: Engine, receiver: Receiver) -> None:
    clock = Clock()
    first = make_service(engine, receiver.url, clock)
    event_ids = {first.send_test_event("hook") for _ in range(3)}
    first.stop()  # stopped before sending anything
    assert receiver.requests == []
    second = make_service(engine, receiver.url, clock)
    assert second.webhooks.run_once() == 3
    assert {headers["webhook-id"] for headers, _ in receiver.requests} == event_ids
    second.stop()


def test_a_refused_event_fails_at_once_and_can_be_resent(
    engine: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    service = make_service(engine, receiver.url, clock)
    receiver.script = [Answer(404)]
    with TestClient(create_app(service, manage_service=False)) as client:
        event_id = client.post("/v1/webhooks/hook/test").json()["event_id"]
        service.webhooks.run_once()
        failed = client.get("/v1/deliveries", params={"status": "failed"}).json()
        assert [(d["event_id"], d["attempts"], d["last_error"]) for d in failed] == [
            (event_id, 1, "HTTP 404")
        ]
        assert failed[0]["event"]["id"] == event_id and failed[0]["next_attempt_at"] is None
        assert client.post(f"/v1/deliveries/{event_id}/resend").json() == {"queued": 1}
        assert client.post("/v1/deliveries/evt_nothing/resend").status_code == 404
        unknown = client.post("/v1/webhooks/nope/test")
        assert (unknown.status_code, unknown.json()["route"]) == (404, "nope")
        service.webhooks.run_once()
        assert client.get("/v1/deliveries", params={"status": "failed"}).json() == []
    assert delivery(service, event_id).status == "delivered"
    assert [verify(h, b)["id"] for h, b in receiver.requests] == [event_id, event_id]
    service.stop()


def test_retries_stop_after_max_retry(engine: Engine, receiver: Receiver) -> None:
    clock = Clock()
    service = make_service(engine, receiver.url, clock, max_retry="10s")
    receiver.script = [Answer(500)] * 20
    event_id = service.send_test_event("hook")
    while delivery(service, event_id).status == "pending":
        service.webhooks.run_once()
        clock.now = max(clock.now, delivery(service, event_id).next_attempt_at)
    gave_up = delivery(service, event_id)
    assert gave_up.status == "failed" and gave_up.last_error == "HTTP 500"
    assert 3 <= gave_up.attempts <= 5  # about 1 + 2 + 4 (+ 8) seconds of backoff fit in 10 s
    assert counted(service, "failed") == 1
    service.stop()


def test_a_name_resolving_to_a_private_address_is_refused(engine: Engine) -> None:
    clock = Clock()
    service = make_service(engine, "https://hooks.example.com/x", clock, allow_private=False)
    service.webhooks._resolve = lambda host, port: ["10.1.2.3"]
    event_id = service.send_test_event("hook")
    service.webhooks.run_once()
    refused = delivery(service, event_id)
    assert refused.status == "failed"
    assert refused.last_error == (
        "refused: hooks.example.com resolves to a private address (10.1.2.3) "
        "(allow_private is not set)"
    )
    service.stop()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/x", "127.0.0.1 is a loopback address"),
        ("http://localhost/x", "localhost is this host"),
        ("http://169.254.169.254/latest", "169.254.169.254 is a link-local address"),
        ("http://[fd00::1]/x", "fd00::1 is a private address"),
    ],
)
def test_private_urls_are_config_errors_unless_allowed(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_for(url, allow_private=False)
    assert f"{reason}: refused unless the webhook says allow_private: true" in str(error.value)
    assert config_for(url).webhooks[0].allow_private is True


def test_the_scheduler_sends_the_outbox(engine: Engine, receiver: Receiver) -> None:
    service = Service(
        config_for(receiver.url), engine=engine, registry=CollectorRegistry(), clock=time.time
    )
    service.start(run_jobs=True)
    try:
        event_id = service.send_test_event("hook")
        deadline = time.monotonic() + 15
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        ((headers, body),) = receiver.requests
        assert verify(headers, body)["id"] == event_id
    finally:
        service.stop()
    assert orjson.loads(body)["type"] == "webhook.test"


def test_the_readme_receiver_code_verifies_a_delivery(engine: Engine, receiver: Receiver) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    (snippet,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", readme, re.S)
        if "def verify(secret" in block
    ]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    readme_verify = namespace["verify"]
    clock = Clock()
    service = make_service(engine, receiver.url, clock)
    service.send_test_event("hook")
    service.webhooks.run_once()
    ((headers, body),) = receiver.requests
    assert readme_verify(SECRET, headers, body) is True
    assert readme_verify(SECRET, headers, body + b" ") is False
    assert readme_verify("whsec_" + "QUJD", headers, body) is False
    service.stop()


def test_redirects_are_not_followed_and_secrets_never_logged(
    engine: Engine, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    other = Receiver()
    clock = Clock()
    token = "Bearer header-value-not-for-logs"
    secret_url = receiver.url + "?token=url-secret-not-for-logs"
    service = Service(
        parse_config(f"""
models: [{{name: m, task: regression, features: [{{name: x, type: numeric}}]}}]
webhooks:
  - {{name: hook, url: "{secret_url}", secret: "{SECRET}", allow_private: true,
      headers: {{Authorization: "{token}"}}}}
"""),
        engine=engine,
        registry=CollectorRegistry(),
        clock=clock,
    )
    service.start(run_jobs=False)
    receiver.script = [Answer(302, {"Location": other.url})]
    caplog.set_level("DEBUG")
    try:
        event_id = service.send_test_event("hook")
        service.webhooks.run_once()
        refused = delivery(service, event_id)
        assert (refused.status, refused.last_error) == (
            "failed",
            "HTTP 302 (redirects are not followed)",
        )
        assert other.requests == []
        assert receiver.requests[0][0]["authorization"] == token
    finally:
        service.stop()
        other.stop()
    logged = caplog.text + "".join(
        str(d.last_error) for d in service.deliveries(status=None, limit=9)
    )
    assert "failed after 1 attempt" in caplog.text
    for secret in ("header-value-not-for-logs", "url-secret-not-for-logs", SECRET):
        assert secret not in logged
