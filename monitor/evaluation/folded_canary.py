"""Canary against stable in a window too large to hold: its records folded a chunk at a time.

``evaluation.canary`` compares the versions of a window held in memory. A window of more than
``drift.exact_max_samples`` records is read once, in chunks (the read that folds its segments
and fairness, ``evaluation.folded_groups``), and ``CanaryFolder`` keeps:

* per version, each column's counts on the reference profiles' grids, compared as the
  histogram path compares the whole window (``evaluate_drift_counts``: PSI equals the exact
  one), and its labelled predictions (a class code or value each, and the scores) and correct
  ones: the version summaries' accuracy and performance, and the accuracy difference with its
  interval, equal the exact path's;
* per version, a sample of at most ``drift.exact_max_samples`` of its records: those whose
  content hashes lowest (a bottom-k sample: the same records whatever order the window is read
  in, and all of them while a version has no more). The canary-against-stable statistics are
  the exact path's on these samples: the stable sample profiled as the reference is, the
  canary sample compared with it. Equal to the exact path's while both versions fit.

Memory: a chunk, the counts, and two samples of encoded records. Pure: rows in, a
``CanaryComparison`` out.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor import codec
from monitor.config import ModelConfig
from monitor.domain import CanaryComparison, VersionSummary, Window
from monitor.evaluation import labelled as pairs_of
from monitor.evaluation.canary import comparison, version_model
from monitor.evaluation.columns import Columns, columns_from_rows
from monitor.evaluation.counts import Counts, merge_into
from monitor.evaluation.evaluate import evaluate_drift, evaluate_drift_counts
from monitor.evaluation.groups import GroupSplitter, codes_of, group_performance
from monitor.evaluation.histograms import column_counts
from monitor.evaluation.labelled import Labelled
from monitor.evaluation.profiles import ReferenceProfiles, build_profiles

#: A sampled record: (negated hash, so that the heap's top is the highest kept; features,
#: prediction, label, scores).
_Kept = tuple[int, bytes, Any, Any, "bytes | None"]


def record_hash(features: bytes, prediction: Any, label: Any, scores: bytes | None) -> int:
    """A record's place in the bottom-k sample: 8 bytes of BLAKE2b over its stored content."""
    digest = hashlib.blake2b(
        codec.encode([features, prediction, label, scores]), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big")


class CanaryFolder:
    """Folds a window's records, chunk by chunk (``add``), into the canary comparison."""

    def __init__(
        self,
        config: ModelConfig,
        profiles: ReferenceProfiles,
        *,
        stable: str,
        canary: str,
        sample_size: int,
    ) -> None:
        self.config = config
        self.profiles = profiles
        self.names = (stable, canary)
        self.sample_size = sample_size
        self._counts: dict[str, dict[str, Counts]] = {stable: {}, canary: {}}
        self._n: Counter[str] = Counter()
        self._labelled: Counter[str] = Counter()
        self._correct: Counter[str] = Counter()
        self._samples: dict[str, list[_Kept]] = {stable: [], canary: []}
        self._pairs: dict[str, list[Labelled]] = {stable: [], canary: []}
        self._scored = version_model(config)
        self._n_classes = len(config.classes or ()) if config.task == "classification" else 0

    def add(
        self,
        columns: Columns,
        *,
        features: Sequence[bytes],
        predictions: Sequence[Any],
        labels: Sequence[Any],
        scores: Sequence[bytes | None],
        versions: Sequence[str | None],
    ) -> None:
        """Fold one chunk in: its decoded ``columns`` and the stored records they came from."""
        codes = codes_of(versions, self.names, len(self.names)).astype(np.intp)
        parts = GroupSplitter(self._scored, columns, scores).split(codes, len(self.names))
        for i, (name, (part, pairs)) in enumerate(zip(self.names, parts, strict=True)):
            positions = np.flatnonzero(codes == i).tolist()
            if not positions:
                continue
            self._n[name] += len(positions)
            self._pairs[name].append(pairs)
            merge_into(self._counts[name], column_counts(self.profiles, part))
            for i in positions:
                if labels[i] is not None:
                    self._labelled[name] += 1
                    self._correct[name] += int(predictions[i] == labels[i])
            sample = self._samples[name]
            for i in positions:
                key = -record_hash(features[i], predictions[i], labels[i], scores[i])
                kept = (key, features[i], predictions[i], labels[i], scores[i])
                if len(sample) < self.sample_size:
                    heapq.heappush(sample, kept)
                elif key > sample[0][0]:  # hashes lower than the highest kept
                    heapq.heapreplace(sample, kept)

    def _summary(self, name: str, window: Window, evaluated_at: float) -> VersionSummary:
        n = self._n[name]
        against = evaluate_drift_counts(
            self.config,
            self.profiles,
            self._counts[name],
            window=Window(window.start, window.end, n),
            evaluated_at=evaluated_at,
        )
        labelled = self._labelled[name]
        classification = self.config.task == "classification"
        return VersionSummary(
            version=name,
            n=n,
            status=against.status,
            drifted_share=against.drifted_share,
            psi={f.name: f.statistics.get("psi") for f in (*against.features, *against.outputs)},
            labelled=labelled,
            accuracy=self._correct[name] / labelled if classification and labelled else None,
            performance=group_performance(
                self._scored, pairs_of.concat(self._pairs[name], self._n_classes)
            ),
        )

    def _sample(self, name: str) -> tuple[Columns, list[bytes | None]]:
        kept = sorted(self._samples[name], reverse=True)  # lowest hash first
        columns = columns_from_rows(
            self.config,
            [k[1] for k in kept],
            predictions=[k[2] for k in kept],
            labels=[k[3] for k in kept],
        )
        return columns, [k[4] for k in kept]

    def result(self, window: Window, evaluated_at: float) -> CanaryComparison:
        """The comparison, as ``evaluation.canary.compare_versions`` reports it."""
        stable_name, canary_name = self.names
        stable = self._summary(stable_name, window, evaluated_at)
        canary = self._summary(canary_name, window, evaluated_at)
        stable_columns, stable_scores = self._sample(stable_name)
        canary_columns, _ = self._sample(canary_name)
        baseline = (
            build_profiles(self.config, stable_columns, version=0, scores=stable_scores)
            if stable_columns.n
            else None
        )
        drift = evaluate_drift(
            self.config,
            baseline,
            canary_columns,
            window=Window(window.start, window.end, canary_columns.n),
            evaluated_at=evaluated_at,
        )
        canary_correct, stable_correct = self._correct[canary_name], self._correct[stable_name]
        return comparison(self.config, stable, canary, stable_correct, canary_correct, drift)
