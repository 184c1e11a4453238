"""Segments and fairness that cannot be evaluated, refused with file, line and key.

Checked after the schema: a segment or a sensitive feature must be one of the model's
categorical features (a numeric one has no groups); segment names are distinct; fairness is for
a classifier and its ``positive`` class must be one of ``classes``; a fairness threshold needs
``fairness:``; a segment's own levels are numbers (``auto`` levels are resolved for the whole
model only). Model versions alike: a canary threshold needs ``versions:`` (else the rule could
never fire), ``canary_accuracy_delta`` a classifier, and neither is a segment's (the versions
are compared over the whole window). Nor is a segment's level for a statistic only the whole
model has (label coverage, the label-free estimate) accepted: it would never be compared.
"""

from __future__ import annotations

from monitor.config.paths import PathKey, format_path, line_for
from monitor.config.schema import CANARY_STATISTICS, FAIRNESS_STATISTICS, Config, ModelConfig
from monitor.errors import ConfigIssue

#: Statistics a segment does not compute (``alerts.observe`` leaves them out of its groups).
WHOLE_MODEL_ONLY = {
    "label_coverage": "label coverage is the whole model's (its labels arrive for every segment"
    " alike)",
    "estimated_accuracy": "the label-free estimate is the whole model's (it needs the model's"
    " calibration)",
}


def group_issues(config: Config, lines: dict[PathKey, int], file: str) -> list[ConfigIssue]:
    found: list[tuple[PathKey, str]] = []
    for m, model in enumerate(config.models):
        found += _segments(m, model)
        found += _fairness(m, model)
        found += _versions(m, model)
    return [ConfigIssue(file, line_for(loc, lines), format_path(loc), text) for loc, text in found]


def _categorical(model: ModelConfig, name: str) -> str | None:
    """Why ``name`` cannot define groups, or None."""
    kinds = {feature.name: feature.type for feature in model.features}
    if name not in kinds:
        return f"{name!r} is not a feature of model {model.name!r}"
    if kinds[name] != "categorical":
        return f"{name!r} is a numeric feature: groups need a categorical one"
    return None


def _segments(m: int, model: ModelConfig) -> list[tuple[PathKey, str]]:
    found: list[tuple[PathKey, str]] = []
    seen: set[str] = set()
    for s, segment in enumerate(model.segments):
        at: PathKey = ("models", m, "segments", s)
        if segment.name in seen:
            found.append(((*at, "name"), f"segment {segment.name!r} is listed twice"))
        seen.add(segment.name)
        why = _categorical(model, segment.feature)
        if why is not None:
            found.append(((*at, "feature"), why))
        for statistic, threshold in segment.thresholds.items():
            if threshold.auto:
                found.append(
                    (
                        (*at, "thresholds", statistic),
                        "a segment's levels are numbers (auto levels are for the whole model)",
                    )
                )
            if statistic in FAIRNESS_STATISTICS:
                found.append(
                    ((*at, "thresholds", statistic), "fairness is evaluated for the whole model")
                )
            if statistic in WHOLE_MODEL_ONLY:
                found.append(((*at, "thresholds", statistic), WHOLE_MODEL_ONLY[statistic]))
            if statistic in CANARY_STATISTICS:
                found.append(
                    (
                        (*at, "thresholds", statistic),
                        "the versions are compared for the whole model",
                    )
                )
    return found


def _fairness(m: int, model: ModelConfig) -> list[tuple[PathKey, str]]:
    found: list[tuple[PathKey, str]] = []
    fairness = model.fairness
    if fairness is None:
        found += [
            (
                ("models", m, "thresholds", statistic),
                f"{statistic} needs fairness: {{sensitive: [...], positive: <class>}}",
            )
            for statistic in model.thresholds
            if statistic in FAIRNESS_STATISTICS
        ]
        return found
    at: PathKey = ("models", m, "fairness")
    if model.task != "classification":
        found.append((at, "fairness is for task: classification"))
    elif fairness.positive not in (model.classes or []):
        known = ", ".join(model.classes or [])
        found.append(
            ((*at, "positive"), f"{fairness.positive!r} is not one of the classes ({known})")
        )
    seen: set[str] = set()
    for f, name in enumerate(fairness.sensitive):
        why = _categorical(model, name)
        if name in seen:
            why = f"{name!r} is listed twice"
        seen.add(name)
        if why is not None:
            found.append(((*at, "sensitive", f), why))
    return found


def _versions(m: int, model: ModelConfig) -> list[tuple[PathKey, str]]:
    found: list[tuple[PathKey, str]] = []
    for statistic in model.thresholds:
        if statistic not in CANARY_STATISTICS:
            continue
        at: PathKey = ("models", m, "thresholds", statistic)
        if model.versions is None:
            found.append(
                (
                    at,
                    f"{statistic} needs versions: {{stable: <version>, canary: <version>}}"
                    " or versions: compare",
                )
            )
        elif statistic == "canary_accuracy_delta" and model.task != "classification":
            found.append(
                (
                    at,
                    f"{statistic} is for task: classification (a regression has no accuracy to"
                    " compare)",
                )
            )
    return found
