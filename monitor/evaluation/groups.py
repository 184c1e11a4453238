"""Segments and fairness of a window: drift and performance per group, and bias across groups.

Pure: the window's columns in (``Columns``, with ``__prediction__`` and ``__label__``), domain
values out. This is the exact path (a window of at most ``drift.exact_max_samples`` records);
a larger window's records are folded a chunk at a time by ``evaluation.folded_groups``, with
the same groups, rules and results (drift from counts, as the histogram path's).

Segments
--------
A segment ``{name, feature, values}`` splits the window by a categorical feature: one group per
listed value and ``__other__`` for every other value (missing included). Without ``values``
the groups are the reference's categories of the feature, and a feature whose reference has
more than ``drift.max_categories`` categories is refused (``refused`` says so): the number of
groups, and so of metric series, is bounded by the config, never by traffic. Each group is
compared with the same group of the reference, with the model's statistics and thresholds (the
segment's own ``thresholds`` replacing them statistic by statistic; ``auto`` levels, resolved
for the whole model, are left out) and ``min_samples`` (the segment's, else the model's).
Performance per group is over the group's predictions that have a label.

Fairness
--------
Per sensitive feature, ``monitor.stats.fairness.group_fairness`` over the window's predictions
(selected: predicted ``positive``) and their labels. Groups are the reference's categories of
the feature (the rest ``__other__``; missing values ``__missing__``), or without a reference
the ``drift.max_categories`` most frequent in the window (ties taken in value order). A
disparity is held (None) while any group has fewer than ``min_samples`` predictions
(demographic parity) or labelled predictions (the label-based ones).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from monitor.config import ModelConfig, ThresholdConfig
from monitor.config.schema import (
    CANARY_STATISTICS,
    FAIRNESS_STATISTICS,
    SegmentConfig,
    StatisticName,
)
from monitor.domain import (
    Evaluation,
    FeatureFairness,
    Performance,
    SegmentResult,
    Status,
    Window,
)
from monitor.evaluation.columns import Columns
from monitor.evaluation.evaluate import evaluate_drift
from monitor.evaluation.labelled import Labelled, score_rows
from monitor.evaluation.performance import evaluate_performance
from monitor.evaluation.profiles import ReferenceProfiles, build_profiles
from monitor.stats import OTHER
from monitor.stats.fairness import GroupFairness, group_fairness
from monitor.thresholds import worst_status

MISSING = "__missing__"
#: A group's KS p-value is exact up to this many values per side and asymptotic above (SciPy's
#: ``method="asymp"``): the exact one costs in proportion to the product of the two sizes, and
#: 33 groups of a few thousand values each cost four times the whole window's evaluation
#: (bench/groups.py); above 1,000 values the two differed by under 0.01 on normal samples.
SEGMENT_KS_EXACT_MAX_N = 1_000
#: Disparities that need labels; demographic parity needs only predictions.
LABEL_BASED = frozenset(FAIRNESS_STATISTICS) - {
    "demographic_parity_difference",
    "demographic_parity_ratio",
}


@dataclass(frozen=True, slots=True)
class SegmentReference:
    """A segment's groups and each group's reference profiles (None: no reference)."""

    values: tuple[str, ...]
    profiles: dict[str, ReferenceProfiles] | None
    refused: str | None = None


def segment_references(
    model: ModelConfig, profiles: ReferenceProfiles | None, reference: Columns | None
) -> dict[str, SegmentReference]:
    """Each segment's groups, and their reference profiles built from the reference's records
    of the same group (``reference``: the reference's columns; None when not at hand)."""
    found: dict[str, SegmentReference] = {}
    for segment in model.segments:
        values, refused = _segment_values(model, segment, profiles)
        if refused is not None:
            found[segment.name] = SegmentReference((), None, refused)
            continue
        by_group = None
        if profiles is not None and reference is not None and reference.n:
            buckets = group_codes(reference.categorical.get(segment.feature), reference.n, values)
            local = segment_model(model, segment)
            by_group = {
                value: build_profiles(
                    local, take(reference, np.flatnonzero(buckets == i)), version=profiles.version
                )
                for i, value in enumerate((*values, OTHER))
            }
        found[segment.name] = SegmentReference(values, by_group)
    return found


def _segment_values(
    model: ModelConfig, segment: SegmentConfig, profiles: ReferenceProfiles | None
) -> tuple[tuple[str, ...], str | None]:
    if segment.values is not None:
        return tuple(segment.values), None
    profile = None if profiles is None else profiles.categorical.get(segment.feature)
    if profile is None:
        return (), f"no reference of {segment.feature!r} to take the groups from: list values"
    if OTHER in profile.counts:
        return (), (
            f"the reference of {segment.feature!r} has more than drift.max_categories"
            f" ({model.drift.max_categories}) categories (or one named {OTHER}): list the"
            " segment's values"
        )
    return tuple(profile.counts), None


def segment_model(model: ModelConfig, segment: SegmentConfig) -> ModelConfig:
    """The model as one segment is evaluated: its numeric thresholds with the segment's
    replacing them, the segment's ``min_samples``, no segments or fairness of its own, and no
    canary rules (the versions are compared over the whole window: a segment would only repeat
    the model's value)."""
    thresholds = {
        statistic: threshold
        for statistic, threshold in {**model.thresholds, **segment.thresholds}.items()
        if statistic not in CANARY_STATISTICS
        and statistic not in FAIRNESS_STATISTICS
        and (statistic in segment.thresholds or not threshold.auto)
    }
    return model.model_copy(
        update={
            "thresholds": thresholds,
            "min_samples": segment.min_samples or model.min_samples,
            "segments": [],
            "fairness": None,
            "calibration": None,
        }
    )


def take(
    columns: Columns,
    index: npt.NDArray[np.intp],
    objects: dict[str, npt.NDArray[np.object_]] | None = None,
) -> Columns:
    """The columns' records at ``index``; ``objects``, the categorical columns as object
    arrays, takes many groups from one window without a Python loop per value."""
    if objects is None:
        positions = index.tolist()
        categorical = {
            name: [values[i] for i in positions] for name, values in columns.categorical.items()
        }
    else:
        categorical = {name: objects[name][index].tolist() for name in columns.categorical}
    return Columns(
        int(index.size),
        {name: values[index] for name, values in columns.numeric.items()},
        categorical,
    )


def group_codes(
    values: Sequence[str | None] | None, n: int, groups: tuple[str, ...]
) -> npt.NDArray[np.intp]:
    """Each record's group: its index in ``groups``, or ``len(groups)`` for ``__other__``."""
    if values is None:
        return np.full(n, len(groups), dtype=np.intp)
    return codes_of(values, groups, len(groups)).astype(np.intp)


def codes_of(
    values: Sequence[str | None], names: Sequence[str], other: int
) -> npt.NDArray[np.int16]:
    """Each value's index in ``names``, ``other`` for any other value (None included)."""
    code: dict[str | None, int] = {name: i for i, name in enumerate(names)}
    n = len(values)
    return np.fromiter(map(code.get, values, repeat(other, n)), np.int16, n)


def evaluate_segments(
    model: ModelConfig,
    references: dict[str, SegmentReference],
    current: Columns,
    *,
    scores: Sequence[bytes | None] | None,
    window: Window,
    evaluated_at: float,
) -> tuple[SegmentResult, ...]:
    """Every segment's groups, each compared with its reference and scored on its labels."""
    results: list[SegmentResult] = []
    splitter = GroupSplitter(model, current, scores)
    for segment in model.segments:
        reference = references.get(segment.name)
        if reference is None or reference.refused is not None:
            results.append(refused_segment(segment, reference))
            continue
        local = segment_model(model, segment)
        codes = group_codes(current.categorical.get(segment.feature), current.n, reference.values)
        values = (*reference.values, OTHER)
        for value, (part, pairs) in zip(values, splitter.split(codes, len(values)), strict=True):
            profiles = None if reference.profiles is None else reference.profiles.get(value)
            drift = evaluate_drift(
                local,
                profiles,
                part,
                window=Window(window.start, window.end, part.n),
                evaluated_at=evaluated_at,
                ks_exact_max_n=SEGMENT_KS_EXACT_MAX_N,
            )
            performance = group_performance(local, pairs)
            results.append(segment_result(segment, value, part.n, drift, performance))
    return tuple(results)


class GroupSplitter:
    """Splits records into groups, their columns and their labelled pairs (``group_pairs``),
    each decoded once for all the groupings of the records and then taken group by group."""

    def __init__(
        self, model: ModelConfig, columns: Columns, scores: Sequence[bytes | None] | None
    ) -> None:
        self.columns = columns
        self._positions, self._pairs = labelled_pairs(model, columns, scores)
        # object arrays, which ``take`` indexes without a Python loop per value
        self._objects = {name: _objects(values) for name, values in columns.categorical.items()}

    def split(
        self, codes: npt.NDArray[np.intp], n_groups: int
    ) -> Iterator[tuple[Columns, Labelled]]:
        """Each group's records and labelled pairs, for groups ``0 .. n_groups - 1`` of
        ``codes`` (each record's group)."""
        paired = codes[self._positions]
        for i in range(n_groups):
            part = take(self.columns, np.flatnonzero(codes == i), self._objects)
            yield part, self._pairs.take(np.flatnonzero(paired == i))


def _objects(values: list[str | None]) -> npt.NDArray[np.object_]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def refused_segment(segment: SegmentConfig, reference: SegmentReference | None) -> SegmentResult:
    """The result of a segment not evaluated (no groups to take, or no reference)."""
    why = "not evaluated" if reference is None else reference.refused
    return SegmentResult(
        segment.name, segment.feature, OTHER, "insufficient", 0, (), (), None, None, why
    )


def segment_result(
    segment: SegmentConfig, value: str, n: int, drift: Evaluation, performance: Performance
) -> SegmentResult:
    """One group's result from its drift and its performance."""
    return SegmentResult(
        segment=segment.name,
        feature=segment.feature,
        value=value,
        status=_combined(drift.status, performance.status),
        n=n,
        features=drift.features,
        outputs=drift.outputs,
        drifted_share=drift.drifted_share,
        performance=performance,
    )


def group_pairs(
    model: ModelConfig, part: Columns, scores: Sequence[bytes | None] | None
) -> Labelled:
    """The group's labelled predictions (its ``__prediction__``/``__label__`` columns both
    present), with their scores for a classifier (NaN rows where a record has none)."""
    return labelled_pairs(model, part, scores)[1]


def labelled_pairs(
    model: ModelConfig, part: Columns, scores: Sequence[bytes | None] | None
) -> tuple[npt.NDArray[np.intp], Labelled]:
    """The positions of the records that have a prediction and a label, and their pairs
    (``group_pairs``): decoded once for a window, then taken group by group."""
    if model.task == "classification":
        classes = list(model.classes or ())
        predicted = part.categorical.get("__prediction__") or [None] * part.n
        actual = part.categorical.get("__label__") or [None] * part.n
        p, a = codes_of(predicted, classes, -1), codes_of(actual, classes, -1)
        keep = np.flatnonzero((p >= 0) & (a >= 0))
        if scores is not None and any(blob is not None for blob in scores):
            matrix = score_rows([scores[i] for i in keep.tolist()], classes)
        else:
            matrix = np.full((keep.size, len(classes)), np.nan)
        times = np.zeros(keep.size)
        return keep, Labelled(times, times, p[keep], a[keep], matrix)
    empty = np.full(part.n, np.nan)
    values = part.numeric.get("__prediction__", empty)
    truth = part.numeric.get("__label__", empty)
    keep = np.flatnonzero(np.isfinite(values) & np.isfinite(truth))
    times = np.zeros(keep.size)
    return keep, Labelled(times, times, values[keep], truth[keep], None)


def group_performance(model: ModelConfig, pairs: Labelled) -> Performance:
    """Metrics over a group's labelled predictions (``evaluation.performance``)."""
    return evaluate_performance(
        model, pairs=pairs, calibration=None, window_predictions=None, window_scores=None
    )


_ORDER: dict[str, int] = {"critical": 4, "warning": 3, "ok": 2, "insufficient": 1}


def _combined(*statuses: Status) -> Status:
    """The worst of drift's and performance's status (``no_reference`` counts as nothing)."""
    known = [s for s in statuses if s in _ORDER]
    return max(known, key=_ORDER.__getitem__) if known else statuses[0]


def evaluate_fairness(
    model: ModelConfig, profiles: ReferenceProfiles | None, current: Columns
) -> tuple[FeatureFairness, ...]:
    """Group fairness across each sensitive feature, with the model's fairness thresholds."""
    fairness = model.fairness
    if fairness is None:
        return ()
    selected, positive, labelled = decisions(model, current)
    return tuple(
        fairness_result(
            model,
            feature,
            group_fairness(
                fairness_groups(
                    model, current.categorical.get(feature) or [None] * current.n, profiles, feature
                ),
                selected,
                positive,
                labelled,
            ),
        )
        for feature in fairness.sensitive
    )


def decisions(
    model: ModelConfig, current: Columns
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Each record's ``(selected, positive, labelled)``: predicted the positive class; labelled
    the positive class; has a prediction and a label of the model's classes."""
    assert model.fairness is not None
    positive_class = model.fairness.positive
    n = current.n
    predicted = current.categorical.get("__prediction__") or [None] * n
    actual = current.categorical.get("__label__") or [None] * n
    classes = list(model.classes or ())
    p, a = codes_of(predicted, classes, -1), codes_of(actual, classes, -1)
    code = classes.index(positive_class)
    selected, positive, labelled = p == code, a == code, (p >= 0) & (a >= 0)
    return selected, positive, labelled


def fairness_result(model: ModelConfig, feature: str, result: GroupFairness) -> FeatureFairness:
    """One sensitive feature's fairness, held below ``min_samples`` and judged by the model's
    fairness thresholds."""
    thresholds: dict[StatisticName, ThresholdConfig] = {
        statistic: threshold
        for statistic, threshold in model.thresholds.items()
        if statistic in FAIRNESS_STATISTICS
    }
    few_predictions = any(g.predictions < model.min_samples for g in result.groups)
    few_labels = any(g.labelled < model.min_samples for g in result.groups)
    metrics: dict[str, float | None] = {}
    for statistic in FAIRNESS_STATISTICS:
        held = few_labels if statistic in LABEL_BASED else few_predictions
        metrics[statistic] = None if held else getattr(result, statistic)
    held_rules = [s for s in thresholds if (few_labels if s in LABEL_BASED else few_predictions)]
    status: Status = "insufficient" if held_rules or not result.groups else "ok"
    if status == "ok":
        status = worst_status(metrics, thresholds)
    return FeatureFairness(
        feature=feature,
        status=status,
        groups={
            g.group: {
                "predictions": g.predictions,
                "labelled": g.labelled,
                "selection_rate": g.selection_rate,
                "accuracy": g.accuracy,
                "true_positive_rate": g.true_positive_rate,
                "false_positive_rate": g.false_positive_rate,
            }
            for g in result.groups
        },
        metrics=metrics,
    )


def fairness_groups(
    model: ModelConfig,
    values: Sequence[str | None],
    profiles: ReferenceProfiles | None,
    feature: str,
) -> npt.NDArray[np.str_]:
    """Each prediction's group, folded to a bounded set (see the module docstring)."""
    profile = None if profiles is None else profiles.categorical.get(feature)
    if profile is not None:
        known = {value for value in profile.counts if value != OTHER}
    else:
        counts = Counter(v for v in values if v is not None)
        ranked = sorted(counts, key=lambda value: (-counts[value], value))  # ties: by value
        known = set(ranked[: model.drift.max_categories])
    return np.array(
        [MISSING if v is None else v if v in known else OTHER for v in values], dtype=np.str_
    )
