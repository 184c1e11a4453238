"""Send the outbox: POST each due delivery with its Standard Webhooks headers, record the outcome.

Outcomes of an attempt:

* a 2xx answer: delivered;
* a connection error, a timeout, 408, 429 or 5xx: tried again after an exponential backoff
  with jitter (1 s, 2 s, 4 s ... capped at 1 h, each times a random factor in [0.5, 1]), or
  after the answer's ``Retry-After`` (seconds or an HTTP date) when it gives one, until the
  route's ``max_retry`` since the event was queued has passed: then failed;
* any other answer (a 3xx is not followed; 4xx other than 408 and 429): failed at once, since
  sending the same request again would get the same answer. Which answers are retried and how
  ``Retry-After`` is read is ``monitor.retries``, the rule the Python client follows too;
* a destination in a special-purpose range (``addresses``: private, loopback, link-local,
  carrier-grade NAT ...), or a name any of whose addresses is, when the route does not say
  ``allow_private: true``: failed at once, not sent; a name that does not resolve: tried
  again. The host is resolved once per attempt and the request sent to exactly the checked
  address (``destinations``).

Replicas share the outbox: each delivery is claimed on its own, just before it is attempted,
under a lease that covers its whole send (``lease_seconds``), and its outcome is recorded only
while the lease is still the sender's (``storage.deliveries``). A sender that dies mid-send
leaves the row to another once the lease ends: it is sent again, with the same event id
(``webhook-id``): delivery is at least once, and exactly once while no sender dies or stalls
past its lease. An outcome the database was unavailable to record (an outage, a cut
connection) is kept and recorded at the sender's next run, if the lease is still its own then,
so an outage shorter than the lease sends nothing twice.

Failed deliveries stay in the outbox (``GET /v1/deliveries?status=failed``) and can be sent
again (``POST /v1/deliveries/{event_id}/resend``). Errors are recorded without the URL, which
may itself be a secret (a Slack or GitHub hook), and secrets are never logged.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import httpx

from monitor import __version__
from monitor.config import WebhookConfig
from monitor.errors import StorageUnavailableError
from monitor.metrics import Metrics
from monitor.retries import retried, retry_after_seconds
from monitor.storage import deliveries as outbox
from monitor.storage.database import Database
from monitor.webhooks import signing
from monitor.webhooks.destinations import (
    Destination,
    Refusal,
    Resolve,
    destination,
    system_resolve,
)

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO, and a webhook URL may itself be a secret (a
# Slack or GitHub hook, a token in the query): keep its loggers to warnings and errors.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

BASE_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 3600.0
BATCH = 50  # deliveries attempted per run (each claimed on its own, just before its attempt)
#: Added to every lease beyond the time its send may take: the database round trips around the
#: send, host resolution, and clock skew between replicas (each compares leases with its own
#: clock). A sender that dies mid-send delays that delivery by up to its lease.
LEASE_MARGIN_SECONDS = 30.0


def lease_seconds(timeout_seconds: float, addresses: int) -> float:
    """How long a delivery is leased for a send with this timeout to this many addresses:
    connecting, writing and reading may each take up to the timeout, at each address in turn.

    >>> lease_seconds(10.0, 2)
    90.0
    """
    return 3 * timeout_seconds * max(1, addresses) + LEASE_MARGIN_SECONDS


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    error: str | None = None
    retry: bool = False  # worth trying again
    retry_after: float | None = None  # seconds the receiver asked us to wait


def backoff(attempts: int, rng: random.Random) -> float:
    """Seconds before attempt ``attempts + 1``: exponential, capped, with jitter.

    >>> delays = [backoff(n, random.Random(n)) for n in range(1, 12)]
    >>> all(2 ** (n - 2) <= delay <= 2 ** (n - 1) for n, delay in enumerate(delays, start=1))
    True
    >>> 1800 <= backoff(30, random.Random(0)) <= 3600
    True
    """
    ceiling: float = min(BASE_DELAY_SECONDS * 2.0 ** (attempts - 1), MAX_DELAY_SECONDS)
    return ceiling * rng.uniform(0.5, 1.0)


class WebhookSender:
    def __init__(
        self,
        *,
        database: Database,
        routes: Mapping[str, WebhookConfig],
        metrics: Metrics,
        clock: Callable[[], float],
        transport: httpx.BaseTransport | None = None,
        resolve: Resolve = system_resolve,
        rng: random.Random | None = None,
    ) -> None:
        self.database = database
        self.routes = dict(routes)
        self.metrics = metrics
        self.clock = clock
        self._resolve = resolve
        self._rng = rng or random.Random()
        self._client = httpx.Client(follow_redirects=False, transport=transport or _direct())
        #: attempts made whose outcome the database was unavailable to record, oldest first
        self._unrecorded: list[tuple[outbox.Delivery, WebhookConfig | None, Outcome, str]] = []

    def close(self) -> None:
        self._client.close()

    def run_once(self) -> int:
        """Record the outcome an outage kept from the outbox, if any; then attempt due
        deliveries one at a time (up to ``BATCH``), each claimed just before it is attempted;
        return how many were attempted."""
        while self._unrecorded:
            self._record_or_lose(*self._unrecorded[0])
            self._unrecorded.pop(0)
        attempted = 0
        while attempted < BATCH:
            claimed = self._claim()
            if claimed is None:
                break
            delivery, token = claimed
            attempted += 1
            route = self.routes.get(delivery.route)
            outcome: Outcome | None
            if route is None:
                outcome = Outcome(False, f"route {delivery.route!r} is no longer configured")
            else:
                outcome = self._attempt(delivery, route, token)
            if outcome is None:
                self._lost(delivery)
                continue
            try:
                self._record_or_lose(delivery, route, outcome, token)
            except StorageUnavailableError:
                # Sent, but the database is unavailable to say so: keep the outcome and
                # record it at the next run while the lease is still ours, rather than have
                # the delivery sent again when the lease ends.
                self._unrecorded.append((delivery, route, outcome, token))
                raise
        with self.database.read() as connection:
            pending = outbox.backlog(connection)
        for name in self.routes:
            self.metrics.webhook_backlog.labels(name).set(pending.get(name, 0))
        return attempted

    def _claim(self) -> tuple[outbox.Delivery, str] | None:
        """The next due delivery and the token of our lease on it, long enough to resolve the
        host and renew it (``_attempt`` renews it for the send itself)."""
        now = self.clock()
        longest = max((r.timeout.total_seconds() for r in self.routes.values()), default=10.0)
        token = uuid.uuid4().hex
        with self.database.write() as connection:
            delivery = outbox.claim_next(
                connection, now=now, lease_until=now + lease_seconds(longest, 1), token=token
            )
        return None if delivery is None else (delivery, token)

    def _record_or_lose(
        self,
        delivery: outbox.Delivery,
        route: WebhookConfig | None,
        outcome: Outcome,
        token: str,
    ) -> None:
        if not self._record(delivery, route, outcome, token):
            self._lost(delivery)

    def _lost(self, delivery: outbox.Delivery) -> None:
        self.metrics.webhook_deliveries.labels(delivery.route, "lease_lost").inc()
        log.warning(
            "webhook %s: event %s: the lease passed to another sender before the attempt "
            "ended; its outcome is not recorded (the receiver may get the event twice, with "
            "the same webhook-id)",
            delivery.route,
            delivery.event_id,
        )

    def _record(
        self,
        delivery: outbox.Delivery,
        route: WebhookConfig | None,
        outcome: Outcome,
        token: str,
    ) -> bool:
        """Record the outcome if the lease is still ours; False if it is not (nothing
        recorded)."""
        now = self.clock()
        attempts = delivery.attempts + 1
        if outcome.delivered:
            status, next_at, label = outbox.DELIVERED, now, "delivered"
        elif outcome.retry and route is not None:
            delay = outcome.retry_after
            if delay is None:
                delay = backoff(attempts, self._rng)
            next_at = now + delay
            deadline = delivery.created_at + route.max_retry.total_seconds()
            if next_at <= deadline:
                status, label = outbox.PENDING, "retry"
            else:
                status, label = outbox.FAILED, "failed"
        else:
            status, next_at, label = outbox.FAILED, now, "failed"
        with self.database.write() as connection:
            held = outbox.record_attempt(
                connection,
                event_id=delivery.event_id,
                route=delivery.route,
                token=token,
                status=status,
                attempts=attempts,
                next_attempt_at=next_at,
                error=outcome.error,
            )
        if not held:
            return False
        self.metrics.webhook_deliveries.labels(delivery.route, label).inc()
        if status == outbox.FAILED:
            log.warning(
                "webhook %s: event %s failed after %d attempt(s): %s",
                delivery.route,
                delivery.event_id,
                attempts,
                outcome.error,
            )
        return True

    def _attempt(
        self, delivery: outbox.Delivery, route: WebhookConfig, token: str
    ) -> Outcome | None:
        """Send the delivery; None if the lease was lost before it was sent (not sent)."""
        target = destination(route.url, allow_private=route.allow_private, resolve=self._resolve)
        if isinstance(target, Refusal):
            return Outcome(False, target.reason, retry=target.retry)
        # The lease, renewed now the addresses are known, covers the whole send: connecting,
        # writing and reading may each take up to the timeout, at each address in turn.
        now = self.clock()
        with self.database.write() as connection:
            held = outbox.renew(
                connection,
                event_id=delivery.event_id,
                route=delivery.route,
                token=token,
                lease_until=now + lease_seconds(route.timeout.total_seconds(), len(target.urls)),
            )
        if not held:
            return None
        timestamp = int(self.clock())
        secret = None if route.secret is None else route.secret.get_secret_value()
        headers = {name: value.get_secret_value() for name, value in route.headers.items()}
        headers.update(signing.headers(delivery.event_id, timestamp, delivery.body, secret))
        headers["content-type"] = "application/json"
        headers["user-agent"] = f"drift-monitor/{__version__}"
        headers["host"] = target.host
        response = self._post(
            target, body=delivery.body, headers=headers, timeout=route.timeout, url=route.url
        )
        if isinstance(response, Outcome):
            return response
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(True)
        error = f"HTTP {status}"
        if retried(status):
            wait = retry_after_seconds(response.headers.get("retry-after"), self.clock())
            return Outcome(False, error, retry=True, retry_after=wait)
        if 300 <= status < 400:
            error += " (redirects are not followed)"
        return Outcome(False, error)

    def _post(
        self,
        target: Destination,
        *,
        body: bytes,
        headers: dict[str, str],
        timeout: timedelta,
        url: str,
    ) -> httpx.Response | Outcome:
        """POST to the first of the checked addresses that accepts a connection."""
        failed = Outcome(False, "no address to send to", retry=True)
        for sent_to in target.urls:
            try:
                return self._client.post(
                    sent_to,
                    content=body,
                    headers=headers,
                    timeout=timeout.total_seconds(),
                    extensions=target.extensions,
                )
            except httpx.TimeoutException:
                return Outcome(False, "timed out", retry=True)
            except httpx.ConnectError as exc:  # nothing was sent: try the next address
                failed = Outcome(False, _transport_error(exc, url, sent_to), retry=True)
            except httpx.TransportError as exc:
                return Outcome(False, _transport_error(exc, url, sent_to), retry=True)
        return failed


def _direct() -> httpx.HTTPTransport:
    """Connections made for one request only: each attempt connects to the address checked
    for it, and a connection verified for one host name never carries another's request
    (two routes' names may resolve to the same address). Not through an environment proxy,
    which would resolve the name itself."""
    return httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))


def _transport_error(exc: httpx.TransportError, url: str, sent_to: httpx.URL) -> str:
    """The error without the URL (it may carry a token)."""
    text = str(exc).replace(url, "<url>").replace(str(sent_to), "<url>") or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
