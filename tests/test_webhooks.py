"""Webhook delivery against a real HTTP receiver started by each test: signed deliveries that
verify with the ``standardwebhooks`` package, retries on errors, timeouts, 429 (honouring
Retry-After) and 5xx, a receiver down then up, pending deliveries surviving a restart, failures
kept and re-sent, and private destinations refused; the host resolved once per attempt and
the request sent to exactly the checked address, with the host name in ``Host``, in the TLS
server name and in the certificate check. On SQLite and PostgreSQL.

No test sends a packet beyond loopback: ``socket.create_connection`` is replaced for the
tests that use host names, so that a name never reaches the system resolver and a
non-loopback address is refused as if nobody listened there.

The sender is driven one step at a time (``run_once``) on a clock the test moves, so each
retry's schedule is checked exactly; one test runs it from the scheduler instead.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from email.utils import formatdate
from pathlib import Path
from typing import Any

import orjson
import pytest
import standardwebhooks
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from receiver import SECRET, Answer, Receiver
from sqlalchemy import Connection, Engine

from monitor.api import create_app
from monitor.config import parse_config
from monitor.errors import ConfigError, StorageUnavailableError
from monitor.service import Service
from monitor.storage import deliveries as outbox
from monitor.storage.database import Database


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
    receiver.script = [Answer(500), Answer(408), Answer(502)]  # monitor.retries.retried
    event_id = service.send_test_event("hook")
    delays = []
    for attempt in range(1, 4):
        before = clock.now
        service.webhooks.run_once()
        pending = delivery(service, event_id)
        assert (pending.status, pending.attempts) == ("pending", attempt)
        assert pending.last_error == f"HTTP {[500, 408, 502][attempt - 1]}"
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


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http_date"])
def test_429_waits_as_long_as_retry_after_says(
    engine: Engine, receiver: Receiver, as_date: bool
) -> None:
    clock = Clock()
    clock.now = float(int(clock.now))  # an HTTP date has whole seconds
    service = make_service(engine, receiver.url, clock)
    started = clock.now
    wait = formatdate(started + 120, usegmt=True) if as_date else "120"
    receiver.script = [Answer(429, {"Retry-After": wait})]
    event_id = service.send_test_event("hook")
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


class CutDatabase:
    """The service's database, whose writes fail as an outage would while ``down``."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.down = False

    def read(self) -> AbstractContextManager[Connection]:
        return self.database.read()

    def write(self) -> AbstractContextManager[Connection]:
        if self.down:
            raise StorageUnavailableError("OperationalError: connection refused")
        return self.database.write()


def test_an_outcome_the_outage_kept_from_the_outbox_is_recorded_after_it(
    engine: Engine, receiver: Receiver
) -> None:
    """The database becomes unavailable while a delivery is in flight: the run ends with the
    outage, and the next run, once the database answers, records the outcome (the lease is
    still the sender's) instead of leaving the row to be sent again when the lease ends."""
    clock = Clock()
    service = make_service(engine, receiver.url, clock)
    cut = CutDatabase(service.database)
    service.webhooks.database = cut  # type: ignore[assignment]
    event_id = service.send_test_event("hook")
    receiver.on_request = lambda headers, body: setattr(cut, "down", True)
    with pytest.raises(StorageUnavailableError):
        service.webhooks.run_once()
    assert len(receiver.requests) == 1
    with pytest.raises(StorageUnavailableError):  # still down: kept for the next run
        service.webhooks.run_once()
    cut.down = False
    assert service.webhooks.run_once() == 0  # nothing else to send
    found = delivery(service, event_id)
    assert (found.status, found.attempts, found.last_error) == ("delivered", 1, None)
    assert (counted(service, "delivered"), counted(service, "lease_lost")) == (1, 0)
    clock.now += 3600  # long after the lease: nothing is sent again
    assert service.webhooks.run_once() == 0
    assert len(receiver.requests) == 1
    service.stop()


def test_an_outcome_kept_past_its_lease_passed_to_another_is_not_recorded(
    engine: Engine, receiver: Receiver
) -> None:
    """Kept through an outage longer than its lease, while another sender took the delivery
    over and sent it again: the kept outcome is not recorded over the other's."""
    clock = Clock()
    service = make_service(engine, receiver.url, clock)
    other = make_service(engine, receiver.url, clock)
    cut = CutDatabase(service.database)
    service.webhooks.database = cut  # type: ignore[assignment]
    event_id = service.send_test_event("hook")
    receiver.script = [Answer(500)]  # the first attempt fails; the other's succeeds
    receiver.on_request = lambda headers, body: setattr(cut, "down", True)
    with pytest.raises(StorageUnavailableError):
        service.webhooks.run_once()
    receiver.on_request = None
    clock.now += 3600
    assert other.webhooks.run_once() == 1
    cut.down = False
    assert service.webhooks.run_once() == 0
    found = delivery(service, event_id)
    assert (found.status, found.attempts) == ("delivered", 1)
    assert (counted(service, "retry"), counted(service, "lease_lost")) == (0, 1)
    assert [headers["webhook-id"] for headers, _ in receiver.requests] == [event_id] * 2
    other.stop()
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


class Connections:
    """Stands in for ``socket.create_connection``: records every (host, port) connected to;
    looks a name up in ``dns`` (the answer at connect time, never the system resolver);
    connects to a loopback address and refuses any other, with no packet sent."""

    def __init__(self) -> None:
        self.real = socket.create_connection
        self.dns: dict[str, str] = {}
        self.made: list[tuple[str, int]] = []

    def __call__(self, address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address
        self.made.append((host, port))
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host not in self.dns:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            ip = ipaddress.ip_address(self.dns[host])
        if not ip.is_loopback:
            raise ConnectionRefusedError(111, "Connection refused (test: not loopback)")
        return self.real((str(ip), port), *args, **kwargs)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Connections:
    fake = Connections()
    monkeypatch.setattr(socket, "create_connection", fake)
    return fake


class Resolver:
    """An injected resolver whose answer changes from call to call (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answer


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (["10.1.2.3"], "10.1.2.3 is in 10.0.0.0/8 (private use, RFC 1918)"),
        (
            ["100.100.100.200"],
            "100.100.100.200 is in 100.64.0.0/10 (shared address space, carrier-grade NAT, "
            "RFC 6598)",
        ),
        (["192.0.0.1"], "192.0.0.1 is in 192.0.0.0/29 (IPv4 service continuity prefix, RFC 7335)"),
        (["2002:a9fe:a9fe::1"], "2002:a9fe:a9fe::1 is in 2002::/16 (6to4, RFC 3056)"),
        (
            ["64:ff9b::a9fe:a9fe"],
            "64:ff9b::a9fe:a9fe embeds 169.254.169.254, in 169.254.0.0/16 (link local, RFC 3927)",
        ),
        (["1.2.3.4", "fd00::1"], "fd00::1 is in fc00::/7 (unique local, RFC 4193)"),  # any one
    ],
)
def test_a_name_resolving_to_a_special_purpose_address_is_refused(
    engine: Engine, connections: Connections, answer: list[str], reason: str
) -> None:
    clock = Clock()
    service = make_service(engine, "https://hooks.example.com/x", clock, allow_private=False)
    service.webhooks._resolve = resolver = Resolver(answer)
    event_id = service.send_test_event("hook")
    service.webhooks.run_once()
    refused = delivery(service, event_id)
    assert (refused.status, refused.last_error) == (
        "failed",
        f"refused: hooks.example.com: {reason} (allow_private is not set)",
    )
    assert resolver.calls == [("hooks.example.com", 443)] and connections.made == []
    service.stop()


def test_the_address_checked_is_the_address_connected_to(
    engine: Engine, receiver: Receiver, connections: Connections
) -> None:
    # DNS rebinding: a public answer when the sender checks, loopback when it would connect
    clock = Clock()
    url = f"http://hooks.example.com:{receiver.port}/hook"
    service = make_service(engine, url, clock, allow_private=False)
    service.webhooks._resolve = resolver = Resolver(["1.2.3.4"], ["127.0.0.1"])
    connections.dns["hooks.example.com"] = "127.0.0.1"
    event_id = service.send_test_event("hook")
    service.webhooks.run_once()
    first = delivery(service, event_id)
    assert first.status == "pending"
    assert first.last_error == "ConnectError: [Errno 111] Connection refused (test: not loopback)"
    assert connections.made == [("1.2.3.4", receiver.port)] and len(resolver.calls) == 1
    clock.now = first.next_attempt_at
    service.webhooks.run_once()  # resolved again: now refused, and nothing connected
    second = delivery(service, event_id)
    assert (second.status, second.last_error) == (
        "failed",
        "refused: hooks.example.com: 127.0.0.1 is in 127.0.0.0/8 (loopback, RFC 1122) "
        "(allow_private is not set)",
    )
    assert connections.made == [("1.2.3.4", receiver.port)] and len(resolver.calls) == 2
    assert receiver.requests == []
    service.stop()


def test_the_request_goes_to_the_resolved_address_for_the_host_name(
    engine: Engine, receiver: Receiver, connections: Connections
) -> None:
    pinned = Receiver(receiver.port, host="127.0.0.2")
    try:
        clock = Clock()
        service = make_service(engine, f"http://hooks.example.test:{receiver.port}/hook", clock)
        service.webhooks._resolve = Resolver(["127.0.0.2"])
        connections.dns["hooks.example.test"] = "127.0.0.1"  # a later answer: never asked
        event_id = service.send_test_event("hook")
        service.webhooks.run_once()
        assert delivery(service, event_id).status == "delivered"
        ((headers, body),) = pinned.requests
        assert headers["host"] == f"hooks.example.test:{receiver.port}"
        assert verify(headers, body)["id"] == event_id
        assert receiver.requests == [] and connections.made == [("127.0.0.2", receiver.port)]
        service.stop()
    finally:
        pinned.stop()


def test_each_checked_address_is_tried_until_one_connects(
    engine: Engine, receiver: Receiver, connections: Connections
) -> None:
    clock = Clock()
    service = make_service(engine, f"http://hooks.example.test:{receiver.port}/hook", clock)
    service.webhooks._resolve = Resolver(["192.0.2.1", "127.0.0.1", "127.0.0.1"])
    event_id = service.send_test_event("hook")
    service.webhooks.run_once()
    assert delivery(service, event_id).status == "delivered"
    assert connections.made == [("192.0.2.1", receiver.port), ("127.0.0.1", receiver.port)]
    assert len(receiver.requests) == 1
    service.stop()


def test_a_name_that_does_not_resolve_is_tried_again(
    engine: Engine, receiver: Receiver, connections: Connections
) -> None:
    clock = Clock()
    service = make_service(engine, f"http://hooks.example.test:{receiver.port}/hook", clock)
    service.webhooks._resolve = Resolver([], ["127.0.0.1"])
    event_id = service.send_test_event("hook")
    service.webhooks.run_once()
    unresolved = delivery(service, event_id)
    assert (unresolved.status, unresolved.last_error) == (
        "pending",
        "cannot resolve hooks.example.test: [Errno -2] Name or service not known",
    )
    assert connections.made == []
    clock.now = unresolved.next_attempt_at
    service.webhooks.run_once()
    assert delivery(service, event_id).status == "delivered"
    service.stop()


def test_localhost_through_the_system_resolver_with_allow_private(
    engine: Engine, receiver: Receiver
) -> None:
    # from /etc/hosts; where it answers ::1 first and nobody listens there, the next is tried
    clock = Clock()
    service = make_service(engine, f"http://localhost:{receiver.port}/hook", clock)
    event_id = service.send_test_event("hook")
    service.webhooks.run_once()
    assert delivery(service, event_id).status == "delivered"
    ((headers, _),) = receiver.requests
    assert headers["host"] == f"localhost:{receiver.port}"
    service.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for the name hooks.example.test only."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=hooks.example.test", "-addext", "subjectAltName=DNS:hooks.example.test"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_receiver(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Receiver]:
    """An HTTPS receiver on 127.0.0.1 with that certificate, which the sender trusts."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when the sender is built
    running = Receiver(tls=context)
    yield running
    running.stop()


def test_tls_names_and_verifies_the_host_name_not_the_address(
    engine: Engine, tls_receiver: Receiver, connections: Connections
) -> None:
    clock = Clock()
    url = f"https://hooks.example.test:{tls_receiver.port}/hook"
    service = make_service(engine, url, clock)
    service.webhooks._resolve = Resolver(["127.0.0.1"])
    event_id = service.send_test_event("hook")
    service.webhooks.run_once()
    assert delivery(service, event_id).status == "delivered"
    assert tls_receiver.server_names == ["hooks.example.test"]  # SNI
    ((headers, _),) = tls_receiver.requests
    assert headers["host"] == f"hooks.example.test:{tls_receiver.port}"
    assert connections.made == [("127.0.0.1", tls_receiver.port)]
    service.stop()


def test_tls_to_a_name_the_certificate_is_not_for_fails(
    engine: Engine, tls_receiver: Receiver, connections: Connections
) -> None:
    clock = Clock()
    url = f"https://other.example.test:{tls_receiver.port}/hook"
    service = make_service(engine, url, clock)
    service.webhooks._resolve = Resolver(["127.0.0.1"])
    event_id = service.send_test_event("hook")
    service.webhooks.run_once()
    failed = delivery(service, event_id)
    assert failed.status == "pending" and failed.last_error is not None
    assert failed.last_error.startswith("ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert "Hostname mismatch, certificate is not valid for 'other.example.test'" in (
        failed.last_error
    )
    assert tls_receiver.server_names == ["other.example.test"] and tls_receiver.requests == []
    service.stop()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/x", "127.0.0.1 is in 127.0.0.0/8 (loopback, RFC 1122)"),
        ("http://localhost/x", "localhost is this host (RFC 6761)"),
        (
            "http://169.254.169.254/latest",
            "169.254.169.254 is in 169.254.0.0/16 (link local, RFC 3927)",
        ),
        ("http://[fd00::1]/x", "fd00::1 is in fc00::/7 (unique local, RFC 4193)"),
        (
            "http://100.100.100.200/latest",
            "100.100.100.200 is in 100.64.0.0/10 (shared address space, carrier-grade NAT, "
            "RFC 6598)",
        ),
        (
            "https://192.0.0.192/x",
            "192.0.0.192 is in 192.0.0.0/24 (IETF protocol assignments, RFC 6890)",
        ),
        ("https://[2002:7f00:1::]/x", "2002:7f00:1:: is in 2002::/16 (6to4, RFC 3056)"),
        ("https://[2002:808:808::]/x", "2002:808:808:: is in 2002::/16 (6to4, RFC 3056)"),
        ("http://2130706433/x", "127.0.0.1 is in 127.0.0.0/8 (loopback, RFC 1122)"),
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


def test_the_documented_receiver_code_verifies_a_delivery(
    engine: Engine, receiver: Receiver
) -> None:
    import re
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "alerts.md").read_text()
    (snippet,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", page, re.S)
        if "def verify(secret" in block
    ]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    documented_verify = namespace["verify"]
    clock = Clock()
    service = make_service(engine, receiver.url, clock)
    service.send_test_event("hook")
    service.webhooks.run_once()
    ((headers, body),) = receiver.requests
    assert documented_verify(SECRET, headers, body) is True
    assert documented_verify(SECRET, headers, body + b" ") is False
    assert documented_verify("whsec_" + "QUJD", headers, body) is False
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
