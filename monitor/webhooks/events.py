"""Webhook event bodies: versioned JSON documents with a unique id.

Every event has ``id`` (also sent as ``webhook-id``, the same on every retry, so a receiver
can drop duplicates), ``type``, ``version`` and ``created_at``. Every time in an event is
RFC 3339 in UTC (``monitor.timestamps.rfc3339``); only the ``webhook-timestamp`` header of a
delivery is Unix seconds, as Standard Webhooks has it (``signing``).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from monitor.domain import Window
from monitor.timestamps import written as rfc3339

VERSION = "1"


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def event(event_type: str, now: float, **fields: Any) -> dict[str, Any]:
    """A new event (its ``id`` is new)."""
    return {
        "id": new_event_id(),
        "type": event_type,
        "version": VERSION,
        "created_at": rfc3339(now),
        **fields,
    }


def webhook_test_event(route: str, now: float) -> dict[str, Any]:
    """``webhook.test``: sent on request (``POST /v1/webhooks/{route}/test``) to check that a
    receiver gets, verifies and acknowledges deliveries."""
    return event("webhook.test", now, route=route)


def alert_event(
    event_type: str,
    now: float,
    *,
    episode: str | None,
    model: str,
    rule: str,
    feature: str,
    severity: str,
    value: float,
    threshold: float,
    window: Window,
    threshold_n: int | None = None,
    reference_version: int | None,
    top_features: list[dict[str, Any]],
    lineage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``alert.firing``, ``alert.escalated`` or ``alert.resolved``. ``episode`` is the id of
    the episode's ``alert.firing`` event (its own id for that event), so a receiver can tie an
    escalation or a resolution to what it resolves. ``feature`` is null for a model-level rule.
    ``top_features`` are the evaluation's features with the highest PSI. ``threshold_n`` is the
    window size an ``auto`` threshold was resolved for (null for a level set as a number).
    ``lineage`` is what the evaluation compared (``evaluation.document.lineage_document``).
    ``window`` is the evaluation's; ``links.export`` fetches its records."""
    start, end = rfc3339(window.start), rfc3339(window.end)
    export = f"start={quote(start, safe=':')}&end={quote(end, safe=':')}"
    document = event(
        event_type,
        now,
        episode=episode,
        model=model,
        rule=rule,
        statistic=rule,
        feature=feature or None,
        severity=severity,
        value=value,
        threshold=threshold,
        threshold_n=threshold_n,
        window={"start": start, "end": end, "n": window.n},
        reference={"version": reference_version},
        top_features=top_features,
        lineage=lineage,
        links={
            "export": f"/v1/models/{model}/export?{export}",
            "drift": f"/v1/models/{model}/drift",
            "alerts": f"/v1/alerts?model={model}",
            "history": f"/v1/alerts/history?model={model}",
        },
    )
    document["episode"] = episode or document["id"]
    return document
