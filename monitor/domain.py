"""Frozen values that cross layers: validated batches, ingest results, model summaries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

#: A feature value as stored: a number, a category, or None for a missing value.
FeatureValue = float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class PredictionBatch:
    """Validated prediction records, column by column, ready to store.

    ``features`` and ``scores`` hold each record's stored form (``monitor.codec``);
    ``timestamps`` are Unix seconds; a classification model fills ``prediction_classes``, a
    regression model ``prediction_values`` (the other list is all None).
    """

    ids: list[str]
    timestamps: list[float]
    features: list[bytes]
    prediction_classes: list[str | None]
    prediction_values: list[float | None]
    scores: list[bytes | None]
    duplicates_in_batch: int = 0
    #: each record's ``model_version`` (issue 16), or None when no record of the batch has one
    model_versions: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class LabelBatch:
    """Validated ground-truth labels, column by column (Unix seconds for ``timestamps``)."""

    ids: list[str]
    timestamps: list[float]
    label_classes: list[str | None]
    label_values: list[float | None]
    duplicates_in_batch: int = 0

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class ReferenceBatch:
    """A validated reference data set: features, and optionally prediction and label."""

    features: list[bytes]
    prediction_classes: list[str | None]
    prediction_values: list[float | None]
    label_classes: list[str | None]
    label_values: list[float | None]
    scores: list[bytes | None]

    def __len__(self) -> int:
        return len(self.features)

    def rows(
        self,
    ) -> Iterator[tuple[bytes, str | None, float | None, str | None, float | None, bytes | None]]:
        """(features, prediction class, prediction value, label class, label value, scores)."""
        return zip(
            self.features,
            self.prediction_classes,
            self.prediction_values,
            self.label_classes,
            self.label_values,
            self.scores,
            strict=True,
        )


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What a stored batch did: new records, and records whose id was already stored."""

    accepted: int
    duplicates: int
    corrections: int = 0
    #: For new labels of stored predictions: label time minus prediction time, in seconds.
    label_delays: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    model: str
    version: int
    n: int
    source: str
    created_at: float
    digest: str


@dataclass(frozen=True, slots=True)
class ModelCounts:
    predictions: int
    labels: int
    labelled_predictions: int
    first_timestamp: float | None
    last_timestamp: float | None


#: A feature's verdict: the worst configured threshold it breaches, or why it has none.
Status = Literal["ok", "warning", "critical", "insufficient", "no_reference"]


@dataclass(frozen=True, slots=True)
class Window:
    """The records an evaluation covered: prediction times in [start, end], n records."""

    start: float
    end: float
    n: int


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's (or model output's) drift in one evaluation.

    ``statistics`` maps statistic names (``psi``, ``ks_pvalue``, ...) to values; it is empty
    when the status is ``insufficient`` or ``no_reference``: no statistic is invented.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    status: Status
    n: int
    missing: int
    statistics: Mapping[str, float | None]
    exact: bool = True
    ks_bound: float | None = None
    #: ``auto`` rules' levels as resolved for this window: statistic -> {warning, critical, n}
    levels: Mapping[str, Mapping[str, float | int | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation:
    model: str
    evaluated_at: float
    window: Window
    reference_version: int | None
    reference_n: int
    features: tuple[FeatureDrift, ...]
    outputs: tuple[FeatureDrift, ...]
    drifted_share: float | None
    status: Status
    duration_seconds: float = 0.0
    performance: Performance | None = None
    labels: LabelHealth | None = None
    lineage: Lineage | None = None
    canary: CanaryComparison | None = None
    # segments and fairness (monitor.evaluation.groups; folded_groups for a large window)
    segments: tuple[SegmentResult, ...] = ()
    fairness: tuple[FeatureFairness, ...] = ()

    def feature(self, name: str) -> FeatureDrift | None:
        for item in (*self.features, *self.outputs):
            if item.name == name:
                return item
        return None


@dataclass(frozen=True, slots=True)
class LabelHealth:
    """How well labels cover a window: coverage, delay, labels without a prediction."""

    predictions: int
    labelled: int
    coverage: float | None
    delay_seconds_p50: float | None
    delay_seconds_p90: float | None
    delay_seconds_p99: float | None
    unmatched: int


@dataclass(frozen=True, slots=True)
class Performance:
    """Model performance over a window's labelled predictions, and the label-free estimate.

    ``metrics`` maps metric names (``accuracy``, ``f1``, ``rmse``, ...) to values; it holds no
    metric when ``status`` is ``insufficient``. ``intervals`` maps accuracy-like proportions to
    their 95% Wilson interval. The estimate needs only scores, so it is reported either way.
    """

    status: Status
    n: int
    metrics: Mapping[str, float | None]
    intervals: Mapping[str, tuple[float, float]]
    per_class: Mapping[str, Mapping[str, float | None]]
    confusion_matrix: tuple[tuple[int, ...], ...] | None
    estimated_accuracy: float | None
    estimated_accuracy_standard_error: float | None
    #: ``auto`` rules' levels as resolved for this window: metric -> {warning, critical, n}
    levels: Mapping[str, Mapping[str, float | int | None]] = field(default_factory=dict)


# -- lineage (issue 16, item 4) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lineage:
    """What an evaluation compared, so that it can be told apart and reproduced.

    ``config_digest``: the model's normalised config (``monitor.config.digest``);
    ``reference_digest``: the reference's data as stored (``ingest.reference.digest_batch``),
    None for a ``previous_window`` reference; ``window_digest``: the window's stored records
    (None when the window was evaluated from histograms); ``labelled``: labelled predictions
    the performance counted; ``model_versions``: records per ``model_version`` in the window
    (``evaluation.canary.lineage_versions``: bounded by the config, the rest as ``__other__``).
    """

    config_digest: str
    reference_version: int | None
    reference_digest: str | None
    window_n: int
    window_digest: str | None
    labelled: int
    model_versions: dict[str, int]
    monitor_version: str


# -- model versions: canary against stable (issue 16, item 3) ---------------------------------


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """One model version's records in the window, against the reference: drift (``status``,
    ``drifted_share``, each feature's and output's PSI), accuracy on its labelled records
    (None for a regression model or without labels; what ``accuracy_delta`` compares), and
    ``performance``: every metric of its labelled records, as the whole window's (None in an
    evaluation stored before it was computed)."""

    version: str
    n: int
    status: Status
    drifted_share: float | None
    psi: dict[str, float | None]
    labelled: int
    accuracy: float | None
    performance: Performance | None = None


@dataclass(frozen=True, slots=True)
class CanaryComparison:
    """The canary version against the stable one in the same window: ``drift`` holds the same
    statistics as against the reference, the stable version's records taking the reference's
    place; ``accuracy_delta`` is the canary's accuracy minus the stable one's, with Newcombe's
    hybrid score interval (None while either has fewer than ``min_samples`` labelled)."""

    stable: VersionSummary
    canary: VersionSummary
    drift: tuple[FeatureDrift, ...]
    status: Status
    accuracy_delta: float | None
    accuracy_delta_lower: float | None
    accuracy_delta_upper: float | None


# --- segments and fairness --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """Drift and performance of the window's records whose ``feature`` is ``value`` (or, for
    ``__other__``, none of the segment's values); ``refused`` says why it was not evaluated."""

    segment: str
    feature: str
    value: str
    status: Status
    n: int
    features: tuple[FeatureDrift, ...]
    outputs: tuple[FeatureDrift, ...]
    drifted_share: float | None
    performance: Performance | None
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class FeatureFairness:
    """Group fairness across one sensitive feature.

    ``groups`` maps each group to its counts and rates (``predictions``, ``labelled``,
    ``selection_rate``, ``accuracy``, ``true_positive_rate``, ``false_positive_rate``);
    ``metrics`` the disparities, None where held (too few predictions or labels in a group) or
    undefined. ``status`` is ``insufficient`` when a label-based disparity is held.
    """

    feature: str
    status: Status
    groups: Mapping[str, Mapping[str, float | int | None]]
    metrics: Mapping[str, float | None]
