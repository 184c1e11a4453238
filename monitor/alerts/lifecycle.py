"""One alert's lifecycle: inactive -> pending -> firing -> resolved, one observation at a time.

An alert is one (model, rule, feature). With ``alerts.for: N``:

* a breaching observation makes it ``pending``; the N-th breaching one in a row makes it
  ``firing`` (``alert.firing``). With ``for: 1`` it fires at once;
* a breach of a higher severity while firing escalates the same episode
  (``alert.escalated``): a warning that turns critical is one alert, not two. A lower severity
  leaves it as it is;
* resolving is the hysteresis: the value must be back inside the threshold for N evaluations
  in a row (``alert.resolved``); one breach in between starts the count again. A pending alert
  whose value comes back inside is dropped without an event;
* an observation without a value (too few samples, no labels yet) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from monitor.alerts.observe import Observation
from monitor.thresholds import Severity

State = Literal["pending", "firing"]
EventType = Literal["alert.firing", "alert.escalated", "alert.resolved"]
_RANK = {"warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Alert:
    """An active (pending or firing) alert."""

    rule: str
    feature: str
    state: State
    severity: Severity
    breaches: int  # breaching observations in a row
    clears: int  # observations back inside the threshold in a row, while firing
    value: float
    threshold: float
    since: float  # when the current state began


def step(
    alert: Alert | None, seen: Observation, *, for_: int, now: float
) -> tuple[Alert | None, EventType | None]:
    """The alert after ``seen``, and the event it emits, if any.

    >>> from monitor.alerts.observe import Observation
    >>> high = Observation("psi", "age", 0.3, "critical", 0.25)
    >>> firing, event = step(None, high, for_=1, now=10.0)
    >>> firing.state, event
    ('firing', 'alert.firing')
    >>> step(firing, Observation("psi", "age", 0.01, None, None), for_=1, now=20.0)
    (None, 'alert.resolved')
    """
    if seen.value is None:
        return alert, None
    if seen.severity is not None:
        assert seen.threshold is not None
        if alert is None:
            alert = Alert(seen.rule, seen.feature, "pending", seen.severity, 0, 0, 0.0, 0.0, now)
        alert = replace(alert, breaches=alert.breaches + 1, clears=0)
        if alert.state == "pending":
            alert = replace(
                alert, severity=seen.severity, value=seen.value, threshold=seen.threshold
            )
            if alert.breaches >= for_:
                return replace(alert, state="firing", since=now), "alert.firing"
            return alert, None
        if _RANK[seen.severity] > _RANK[alert.severity]:
            escalated = replace(
                alert, severity=seen.severity, value=seen.value, threshold=seen.threshold
            )
            return escalated, "alert.escalated"
        return replace(alert, value=seen.value), None
    if alert is None or alert.state == "pending":
        return None, None
    alert = replace(alert, clears=alert.clears + 1, breaches=0, value=seen.value)
    if alert.clears >= for_:
        return None, "alert.resolved"
    return alert, None
