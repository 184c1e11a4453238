"""After each evaluation: move the model's alerts along their lifecycle and queue their events.

Runs inside the transaction that stores the evaluation, so an alert's state, its history
entry and its webhook deliveries (the outbox) are committed together or not at all.

Concurrent evaluations of one model (a scheduled one and a ``POST .../evaluate``, on one
replica or several) are serialised: the model's alert lock is taken first
(``storage.alerts.lock_model``) and the current states are read after it, so each applies
the lifecycle to what the other committed and one transition gives one event. An event's id
is derived from the alert's previous event (``event_id``): were the same transition ever
decided twice, both would carry one id, and the history's unique index keeps one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from sqlalchemy import Connection

from monitor.alerts.lifecycle import Alert, step
from monitor.alerts.observe import observe
from monitor.config import ModelConfig, WebhookConfig
from monitor.domain import Evaluation
from monitor.evaluation.document import lineage_document
from monitor.metrics import Metrics
from monitor.storage import alerts as store
from monitor.storage import deliveries as outbox
from monitor.webhooks.bodies import Renderer
from monitor.webhooks.events import alert_event

SEVERITIES = ("warning", "critical")


class Alerting:
    def __init__(
        self,
        *,
        models: list[ModelConfig],
        routes: Mapping[str, WebhookConfig],
        metrics: Metrics,
        renderer: Renderer,
    ) -> None:
        self.routes = dict(routes)
        self.metrics = metrics
        self.renderer = renderer
        for config in models:  # zeros from the start, so "no alert" is a value, not a gap
            for rule, threshold in config.thresholds.items():
                for severity in SEVERITIES:
                    metrics.alerts_firing.labels(config.name, rule, severity).set(0)
                    level = threshold.warning if severity == "warning" else threshold.critical
                    if isinstance(level, int | float):  # auto: per window, see observe
                        metrics.threshold.labels(config.name, rule, severity).set(level)

    def apply(
        self,
        connection: Connection,
        config: ModelConfig,
        evaluation: Evaluation,
        now: float,
        webhooks: bool = True,
    ) -> None:
        """``webhooks=False`` (a replay): events are recorded with no routes, nothing queued."""
        model = config.name
        store.lock_model(connection, model=model)  # before reading: see the module docstring
        current = {
            (s.alert.rule, s.alert.feature): s for s in store.active(connection, model=model)
        }
        active: dict[tuple[str, str], Alert] = {}  # the model's alerts after this evaluation
        seen = set()
        model_firing = any(s.alert.state == "firing" for s in current.values())
        top_features = _top_features(evaluation)
        for observation in observe(config, evaluation):
            key = (observation.rule, observation.feature)
            seen.add(key)
            before = current.get(key)
            after, event_type = step(
                None if before is None else before.alert,
                observation,
                for_=config.alerts.for_,
                now=now,
            )
            episode = None if before is None else before.episode
            routes = () if before is None else before.routes
            if event_type is not None:
                emitted = after if after is not None else before.alert if before else None
                assert emitted is not None
                if not webhooks:
                    routes = ()
                elif event_type == "alert.firing":
                    routes = self._routes_for(
                        connection,
                        config,
                        observation.rule,
                        observation.feature,
                        now,
                        starts_episode=not model_firing,
                    )
                    model_firing = True
                else:  # a retraining route only ever gets the trigger
                    routes = tuple(r for r in routes if not self._retrain(r))
                document = alert_event(
                    event_type,
                    now,
                    episode=episode,
                    model=model,
                    rule=observation.rule,
                    feature=observation.feature,
                    severity=emitted.severity,
                    value=observation.value if observation.value is not None else emitted.value,
                    threshold=emitted.threshold,
                    threshold_n=observation.n,
                    window=evaluation.window,
                    reference_version=evaluation.reference_version,
                    top_features=top_features,
                    lineage=None if evaluation.lineage is None else lineage_document(evaluation),
                )
                previous = store.last_event_id(
                    connection, model=model, rule=observation.rule, feature=observation.feature
                )
                event_id = document["id"] = alert_event_id(
                    model, observation.rule, observation.feature, event_type, previous
                ) or str(document["id"])
                if event_type == "alert.firing":
                    episode = document["episode"] = event_id
                assert episode is not None
                recorded = store.record(
                    connection,
                    store.HistoryEntry(
                        event_id,
                        episode,
                        model,
                        observation.rule,
                        observation.feature,
                        event_type,
                        emitted.severity,
                        observation.value if observation.value is not None else emitted.value,
                        emitted.threshold,
                        now,
                        routes,
                    ),
                )
                if recorded:  # else this transition's event is recorded (and queued) already
                    outbox.enqueue(
                        connection,
                        event_id=event_id,
                        bodies={route: self.renderer.body(route, document) for route in routes},
                        model=model,
                        now=now,
                    )
            if after is None:
                if before is not None:
                    store.remove(connection, model=model, rule=key[0], feature=key[1])
            else:
                store.save(connection, store.Stored(model, after, episode, routes))
                active[key] = after
        for key in current:  # a rule or feature no longer in the config
            if key not in seen:
                store.remove(connection, model=model, rule=key[0], feature=key[1])
        self._export(config, active.values())

    def _retrain(self, route: str) -> bool:
        found = self.routes.get(route)
        return found is not None and found.retrain

    def _routes_for(
        self,
        connection: Connection,
        config: ModelConfig,
        rule: str,
        feature: str,
        now: float,
        *,
        starts_episode: bool,
    ) -> tuple[str, ...]:
        """The model's routes for a firing, less those in their cooldown for this alert (for
        a retraining route: for this model), and less retraining routes unless the firing
        starts an episode of the model being in alert."""
        chosen = []
        for name in config.alerts.routes:
            route = self.routes[name]
            if route.retrain and not starts_episode:
                continue
            if route.cooldown is not None:
                last = store.last_sent(
                    connection,
                    model=config.name,
                    rule=None if route.retrain else rule,
                    feature=None if route.retrain else feature,
                    route=name,
                )
                if last is not None and now - last < route.cooldown.total_seconds():
                    continue
            chosen.append(name)
        return tuple(chosen)

    def export_stored(self, connection: Connection, config: ModelConfig) -> None:
        """Export the model's stored alert states (whichever replica decided them), so that
        every replica's ``drift_monitor_alerts_firing`` describes the same states."""
        self._export(config, [s.alert for s in store.active(connection, model=config.name)])

    def _export(self, config: ModelConfig, alerts: Iterable[Alert]) -> None:
        counts: dict[tuple[str, str], int] = {
            (rule, severity): 0 for rule in config.thresholds for severity in SEVERITIES
        }
        for alert in alerts:
            if alert.state == "firing":
                key = (alert.rule, alert.severity)
                counts[key] = counts.get(key, 0) + 1
        for (rule, severity), count in counts.items():
            self.metrics.alerts_firing.labels(config.name, rule, severity).set(count)


def alert_event_id(
    model: str, rule: str, feature: str, event_type: str, previous: str | None
) -> str | None:
    """The id of an alert's event that follows its event ``previous``: a hash of the alert,
    the transition and ``previous``, so the same transition decided twice gets one id. None
    for an alert's first event (no previous one): it keeps the random id it was made with,
    which roots the alert's chain of ids (two installations never share one).

    >>> resolved = alert_event_id("credit", "psi", "age", "alert.resolved", "evt_1")
    >>> resolved == alert_event_id("credit", "psi", "age", "alert.resolved", "evt_1")
    True
    >>> len(resolved), alert_event_id("credit", "psi", "age", "alert.firing", None)
    (36, None)
    """
    if previous is None:
        return None
    key = "\x1f".join((model, rule, feature, event_type, previous)).encode()
    return f"evt_{hashlib.blake2b(key, digest_size=16).hexdigest()}"


def _top_features(evaluation: Evaluation, count: int = 5) -> list[dict[str, object]]:
    ranked = sorted(
        (
            (feature.statistics["psi"], feature)
            for feature in evaluation.features
            if feature.statistics.get("psi") is not None
        ),
        key=lambda item: -float(item[0] or 0.0),
    )
    return [
        {"feature": feature.name, "psi": psi, "status": feature.status}
        for psi, feature in ranked[:count]
    ]
