"""Canary against stable: a window's records split by ``model_version``.

A model that declares ``versions: {stable: v1, canary: v2}`` (or ``versions: compare``: the
window's two most frequent versions, the more frequent one taken as stable) gets, in each
window (held in memory here; a larger one is folded by ``evaluation.folded_canary``):

* per version, its records against the reference: drift status, drifted share, each column's
  PSI, its accuracy on its labelled records (classification), and the performance of those
  records: every metric the whole window gets (``evaluate_performance`` on the version's
  labelled pairs, through ``groups.group_pairs`` and ``groups.group_performance`` as for a
  segment value), with the model's numeric levels for its status (``auto`` levels, resolved
  around the reference for the whole window, are left out) and no label-free estimate;
* the canary against the stable version: the same drift statistics as against the reference
  (``evaluate_drift``), the stable version's records profiled as the reference is; and the
  difference in accuracy, canary minus stable, with Newcombe's hybrid score interval
  (``stats.performance.interval.newcombe_difference_interval``).

Pure: rows in, a ``CanaryComparison`` out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.config import ModelConfig
from monitor.domain import CanaryComparison, Evaluation, VersionSummary, Window
from monitor.evaluation.columns import columns_from_rows
from monitor.evaluation.evaluate import evaluate_drift
from monitor.evaluation.groups import group_pairs, group_performance
from monitor.evaluation.profiles import ReferenceProfiles, build_profiles
from monitor.stats import OTHER
from monitor.stats.performance.interval import newcombe_difference_interval


def pick_versions(config: ModelConfig, versions: Sequence[str | None]) -> tuple[str, str] | None:
    """(stable, canary) for the model's ``versions``, or None when there is nothing to compare
    (no ``versions`` declared, or ``compare`` and fewer than two versions in the window).

    >>> from monitor.config import parse_config
    >>> yaml = "models: [{name: m, task: regression, features: [{name: a, type: numeric}],"
    >>> config = parse_config(yaml + " versions: compare}]").models[0]
    >>> pick_versions(config, ["b", "a", "b", None, "c", "a", "b"])
    ('b', 'a')
    """
    return pick_from_counts(config, Counter(v for v in versions if v is not None))


def pick_from_counts(config: ModelConfig, counts: Mapping[str, int]) -> tuple[str, str] | None:
    """``pick_versions`` from the window's records per version."""
    declared = config.versions
    if declared is None:
        return None
    if declared != "compare":
        return declared.stable, declared.canary
    ranked = sorted(counts, key=lambda version: (-counts[version], version))
    if len(ranked) < 2:
        return None
    return ranked[0], ranked[1]


def lineage_versions(config: ModelConfig, counts: Mapping[str, int]) -> dict[str, int]:
    """The window's records per version as its lineage records them: the
    ``drift.max_categories`` most frequent versions by name (ties in name order) and the
    compared ones, the rest summed as ``__other__``, so that neither a stored evaluation nor
    an alert event grows with the number of versions the traffic names.

    >>> from monitor.config import parse_config
    >>> yaml = "models: [{name: m, task: regression, features: [{name: a, type: numeric}],"
    >>> config = parse_config(yaml + " drift: {max_categories: 2}}]").models[0]
    >>> lineage_versions(config, {"c": 1, "a": 3, "b": 3, "d": 1})
    {'__other__': 2, 'a': 3, 'b': 3}
    """
    if len(counts) <= config.drift.max_categories:
        return dict(sorted(counts.items()))
    ranked = sorted(counts, key=lambda version: (-counts[version], version))
    compared = set(pick_from_counts(config, counts) or ()) & counts.keys()  # those with records
    kept = set(ranked[: config.drift.max_categories]) | compared
    named = {version: counts[version] for version in kept}
    rest = sum(n for version, n in counts.items() if version not in kept)
    named[OTHER] = named.get(OTHER, 0) + rest  # a version named __other__ is counted in it
    return dict(sorted(named.items()))


def compare_versions(
    config: ModelConfig,
    profiles: ReferenceProfiles | None,
    *,
    features: Sequence[bytes],
    predictions: Sequence[Any],
    labels: Sequence[Any],
    scores: Sequence[bytes | None],
    versions: Sequence[str | None],
    window: Window,
    evaluated_at: float,
) -> CanaryComparison | None:
    """The canary against the stable version in this window (see the module docstring)."""
    picked = pick_versions(config, versions)
    if picked is None:
        return None
    stable_name, canary_name = picked

    def subset(name: str) -> list[int]:
        return [i for i, version in enumerate(versions) if version == name]

    parts = {name: subset(name) for name in picked}
    columns = {
        name: columns_from_rows(
            config,
            [features[i] for i in rows],
            predictions=[predictions[i] for i in rows],
            labels=[labels[i] for i in rows],
        )
        for name, rows in parts.items()
    }

    scored = version_model(config)

    def part_window(name: str) -> Window:
        return Window(window.start, window.end, len(parts[name]))

    def summary(name: str) -> tuple[VersionSummary, int]:
        rows = parts[name]
        against = evaluate_drift(
            config, profiles, columns[name], window=part_window(name), evaluated_at=evaluated_at
        )
        labelled, correct = _labelled(
            config, [predictions[i] for i in rows], [labels[i] for i in rows]
        )
        return (
            VersionSummary(
                version=name,
                n=len(rows),
                status=against.status,
                drifted_share=against.drifted_share,
                psi={
                    f.name: f.statistics.get("psi") for f in (*against.features, *against.outputs)
                },
                labelled=labelled,
                accuracy=None
                if config.task != "classification" or not labelled
                else correct / labelled,
                performance=group_performance(
                    scored, group_pairs(scored, columns[name], [scores[i] for i in rows])
                ),
            ),
            correct,
        )

    stable, stable_correct = summary(stable_name)
    canary, canary_correct = summary(canary_name)
    baseline = (
        build_profiles(
            config,
            columns[stable_name],
            version=0,
            scores=[scores[i] for i in parts[stable_name]],
        )
        if parts[stable_name]
        else None
    )
    drift: Evaluation = evaluate_drift(
        config,
        baseline,
        columns[canary_name],
        window=part_window(canary_name),
        evaluated_at=evaluated_at,
    )
    return comparison(config, stable, canary, stable_correct, canary_correct, drift)


def comparison(
    config: ModelConfig,
    stable: VersionSummary,
    canary: VersionSummary,
    stable_correct: int,
    canary_correct: int,
    drift: Evaluation,
) -> CanaryComparison:
    """The comparison from the two versions' summaries and correct predictions, and the
    canary's drift against the stable version: the accuracy difference and its interval."""
    delta = lower = upper = None
    if (
        config.task == "classification"
        and min(stable.labelled, canary.labelled) >= config.min_samples
    ):
        delta = canary_correct / canary.labelled - stable_correct / stable.labelled
        lower, upper = newcombe_difference_interval(
            successes_1=canary_correct,
            n_1=canary.labelled,
            successes_2=stable_correct,
            n_2=stable.labelled,
        )
    return CanaryComparison(
        stable=stable,
        canary=canary,
        drift=(*drift.features, *drift.outputs),
        status=drift.status,
        accuracy_delta=delta,
        accuracy_delta_lower=lower,
        accuracy_delta_upper=upper,
    )


def version_model(config: ModelConfig) -> ModelConfig:
    """The model as a version's performance is scored: without its ``auto`` levels."""
    thresholds = {s: t for s, t in config.thresholds.items() if not t.auto}
    if len(thresholds) == len(config.thresholds):
        return config
    return config.model_copy(update={"thresholds": thresholds})


def _labelled(config: ModelConfig, predictions: list[Any], labels: list[Any]) -> tuple[int, int]:
    """(labelled records, correct ones)."""
    pairs = [(p, label) for p, label in zip(predictions, labels, strict=True) if label is not None]
    if config.task != "classification":
        return len(pairs), 0
    return len(pairs), sum(p == label for p, label in pairs)
