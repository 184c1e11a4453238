"""After each evaluation: move the model's alerts along their lifecycle and queue their events.

Runs inside the transaction that stores the evaluation, so an alert's state, its history
entry and its webhook deliveries (the outbox) are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection

from monitor.alerts.lifecycle import Alert, step
from monitor.alerts.observe import observe
from monitor.config import ModelConfig, WebhookConfig
from monitor.domain import Evaluation
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
                    metrics.alert_firing.labels(config.name, rule, severity).set(0)
                    level = threshold.warning if severity == "warning" else threshold.critical
                    if level is not None:
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
                    window={
                        "start": evaluation.window.start,
                        "end": evaluation.window.end,
                        "n": evaluation.window.n,
                    },
                    reference_version=evaluation.reference_version,
                    top_features=top_features,
                )
                event_id = str(document["id"])
                if event_type == "alert.firing":
                    episode = document["episode"] = event_id
                assert episode is not None
                outbox.enqueue(
                    connection,
                    event_id=event_id,
                    bodies={route: self.renderer.body(route, document) for route in routes},
                    model=model,
                    now=now,
                )
                store.record(
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

    def _export(self, config: ModelConfig, alerts: Iterable[Alert]) -> None:
        counts: dict[tuple[str, str], int] = {
            (rule, severity): 0 for rule in config.thresholds for severity in SEVERITIES
        }
        for alert in alerts:
            if alert.state == "firing":
                key = (alert.rule, alert.severity)
                counts[key] = counts.get(key, 0) + 1
        for (rule, severity), count in counts.items():
            self.metrics.alert_firing.labels(config.name, rule, severity).set(count)


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
