"""Segments and fairness of a window too large to hold: its records folded a chunk at a time.

A window of more than ``drift.exact_max_samples`` records is evaluated from histograms
(``jobs.drift_histograms``); its segments and fairness are computed by ``GroupFolder``, which
reads the window's records once, in chunks, and keeps only what adds up:

* per segment group, each column's counts on the grid of the group's reference profile
  (``evaluation.histograms.column_counts``), compared as the histogram path compares the whole
  window (``evaluate_drift_counts``: PSI, Jensen-Shannon and the categorical statistics equal
  the exact ones, KS and Wasserstein are the histogram path's approximations), and the group's
  labelled predictions (a class code or value each, and the scores), scored as on the exact
  path;
* per sensitive feature and group, the seven counts every rate and disparity is computed from
  (``stats.fairness.fairness_counts``): the same values as on the exact path.

Memory is a chunk's records plus the counts and the labelled pairs; the labelled pairs of a
window are a few numbers each. Pure: columns in, domain values out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from monitor.config import ModelConfig
from monitor.domain import FeatureFairness, SegmentResult, Window
from monitor.evaluation import labelled as pairs_of
from monitor.evaluation.columns import Columns
from monitor.evaluation.counts import Counts, merge_into
from monitor.evaluation.evaluate import evaluate_drift, evaluate_drift_counts
from monitor.evaluation.groups import (
    MISSING,
    GroupSplitter,
    SegmentReference,
    decisions,
    fairness_result,
    group_codes,
    group_performance,
    refused_segment,
    segment_model,
    segment_result,
)
from monitor.evaluation.histograms import column_counts
from monitor.evaluation.labelled import Labelled
from monitor.evaluation.profiles import ReferenceProfiles
from monitor.stats import OTHER
from monitor.stats.fairness import fairness_counts, fairness_from_counts


class GroupFolder:
    """Folds a window's records, chunk by chunk (``add``), into its segments and fairness."""

    def __init__(
        self,
        model: ModelConfig,
        profiles: ReferenceProfiles | None,
        references: dict[str, SegmentReference],
    ) -> None:
        self.model = model
        self.profiles = profiles
        self.references = references
        self._counts: dict[tuple[str, str], dict[str, Counts]] = {}
        self._sizes: Counter[tuple[str, str]] = Counter()
        self._pairs: dict[tuple[str, str], list[Labelled]] = {}
        # per sensitive feature: each group's counts (stats.fairness.COUNTS); without a
        # reference profile of the feature, per raw value, folded at the end
        self._fairness: dict[str, dict[str, npt.NDArray[np.int64]]] = {}
        self._n_classes = len(model.classes or ()) if model.task == "classification" else 0

    def add(self, part: Columns, scores: Sequence[bytes | None] | None) -> None:
        """Fold one chunk of the window's records (with their ``__prediction__`` and
        ``__label__`` columns, and their stored scores) in."""
        splitter = GroupSplitter(self.model, part, scores) if self.model.segments else None
        for segment in self.model.segments:
            reference = self.references.get(segment.name)
            if splitter is None or reference is None or reference.refused is not None:
                continue
            codes = group_codes(part.categorical.get(segment.feature), part.n, reference.values)
            named = (*reference.values, OTHER)
            for value, (members, pairs) in zip(
                named, splitter.split(codes, len(named)), strict=True
            ):
                key = (segment.name, value)
                self._sizes[key] += members.n
                if not members.n:
                    continue
                profiles = None if reference.profiles is None else reference.profiles.get(value)
                if profiles is not None:
                    merge_into(self._counts.setdefault(key, {}), column_counts(profiles, members))
                self._pairs.setdefault(key, []).append(pairs)
        if self.model.fairness is not None:
            selected, positive, labelled = decisions(self.model, part)
            for feature in self.model.fairness.sensitive:
                values = part.categorical.get(feature) or [None] * part.n
                groups = self._fold(feature, values)
                tally = fairness_counts(groups, selected, positive, labelled)
                held_counts = self._fairness.setdefault(feature, {})
                for name, counts in tally.items():
                    if name in held_counts:
                        held_counts[name] = held_counts[name] + counts
                    else:
                        held_counts[name] = counts

    def _known(self, feature: str) -> set[str] | None:
        profile = None if self.profiles is None else self.profiles.categorical.get(feature)
        return None if profile is None else {v for v in profile.counts if v != OTHER}

    def _fold(self, feature: str, values: Sequence[str | None]) -> npt.NDArray[np.str_]:
        known = self._known(feature)
        if known is None:  # raw values: folded in ``fairness``
            return np.array([MISSING if v is None else v for v in values], dtype=np.str_)
        return np.array(
            [MISSING if v is None else v if v in known else OTHER for v in values], dtype=np.str_
        )

    def segments(self, window: Window, evaluated_at: float) -> tuple[SegmentResult, ...]:
        """Every segment's groups, as ``evaluation.groups.evaluate_segments`` reports them."""
        results: list[SegmentResult] = []
        for segment in self.model.segments:
            reference = self.references.get(segment.name)
            if reference is None or reference.refused is not None:
                results.append(refused_segment(segment, reference))
                continue
            local = segment_model(self.model, segment)
            for value in (*reference.values, OTHER):
                key = (segment.name, value)
                n = self._sizes[key]
                part_window = Window(window.start, window.end, n)
                profiles = None if reference.profiles is None else reference.profiles.get(value)
                if profiles is None:  # no reference records of the group: no drift
                    drift = evaluate_drift(
                        local,
                        None,
                        Columns(n, {}, {}),
                        window=part_window,
                        evaluated_at=evaluated_at,
                    )
                else:
                    drift = evaluate_drift_counts(
                        local,
                        profiles,
                        self._counts.get(key, {}),
                        window=part_window,
                        evaluated_at=evaluated_at,
                    )
                pairs = pairs_of.concat(self._pairs.get(key, []), self._n_classes)
                results.append(
                    segment_result(segment, value, n, drift, group_performance(local, pairs))
                )
        return tuple(results)

    def fairness(self) -> tuple[FeatureFairness, ...]:
        """Group fairness across each sensitive feature, as ``evaluate_fairness`` reports it."""
        if self.model.fairness is None:
            return ()
        results = []
        for feature in self.model.fairness.sensitive:
            counts = self._fairness.get(feature, {})
            if self._known(feature) is None:
                counts = self._most_frequent(counts)
            results.append(fairness_result(self.model, feature, fairness_from_counts(counts)))
        return tuple(results)

    def _most_frequent(
        self, counts: dict[str, npt.NDArray[np.int64]]
    ) -> dict[str, npt.NDArray[np.int64]]:
        """Raw values folded as ``fairness_groups`` folds a window without a reference: the
        ``drift.max_categories`` most frequent kept, the rest ``__other__``."""
        ranked = sorted(
            (value for value in counts if value != MISSING), key=lambda v: (-int(counts[v][0]), v)
        )
        keep = set(ranked[: self.model.drift.max_categories])
        folded: dict[str, npt.NDArray[np.int64]] = {}
        for value, found in counts.items():
            group = value if value in keep or value == MISSING else OTHER
            folded[group] = folded[group] + found if group in folded else found
        return folded
