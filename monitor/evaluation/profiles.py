"""Reference profiles: computed once per reference version, stored, reused by every evaluation."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from monitor.config import ModelConfig
from monitor.evaluation.columns import Columns
from monitor.evaluation.performance import score_matrix
from monitor.stats import (
    CategoricalProfile,
    NumericProfile,
    profile_categorical,
    profile_numeric,
)
from monitor.stats.performance import Calibration, encode_labels
from monitor.stats.performance.null import LabelledSample

#: The stored name of the reference's score calibration (for the accuracy estimate).
CALIBRATION = "__calibration__"
#: The stored name of the reference's accuracy.
ACCURACY = "__accuracy__"
#: The stored name of the reference's labelled predictions (what ``auto`` levels resample).
LABELLED = "__labelled__"
#: The most labelled predictions kept for resampling (a seeded subsample beyond).
LABELLED_LIMIT = 20_000
#: Columns of the model's own output, tracked like features.
OUTPUT_NAMES = ("__prediction__", "__label__")


@dataclass(frozen=True, slots=True)
class ReferenceProfiles:
    version: int
    n: int
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]
    calibration: Calibration | None = None
    #: the reference's accuracy and the labelled records it is over (a classifier's, when the
    #: reference has labels): what ``auto`` accuracy levels are set around
    accuracy: tuple[float, int] | None = None
    #: the reference's labelled predictions (at most ``LABELLED_LIMIT``): what ``auto`` levels
    #: of the other performance metrics resample
    labelled: LabelledSample | None = None
    #: what ``evaluation.levels`` simulates once per reference: no-drift Wasserstein scales,
    #: and the no-drift laws of PSI and Jensen-Shannon per feature and window size
    null_cache: dict[Any, Any] = field(default_factory=dict, compare=False)

    def to_blobs(self) -> dict[str, tuple[str, bytes]]:
        """Each profile's storage form: name -> (type, bytes)."""
        blobs = {name: ("numeric", p.to_bytes()) for name, p in self.numeric.items()}
        blobs.update({name: ("categorical", p.to_bytes()) for name, p in self.categorical.items()})
        if self.calibration is not None:
            blobs[CALIBRATION] = ("calibration", orjson.dumps(self.calibration.to_dict()))
        if self.accuracy is not None:
            blobs[ACCURACY] = ("accuracy", orjson.dumps(list(self.accuracy)))
        if self.labelled is not None:
            blobs[LABELLED] = ("labelled", sample_to_bytes(self.labelled))
        return blobs

    @classmethod
    def from_blobs(
        cls, *, version: int, n: int, blobs: dict[str, tuple[str, bytes]]
    ) -> ReferenceProfiles:
        numeric = {k: NumericProfile.from_bytes(b) for k, (t, b) in blobs.items() if t == "numeric"}
        categorical = {
            k: CategoricalProfile.from_bytes(b) for k, (t, b) in blobs.items() if t == "categorical"
        }
        calibration = None
        if CALIBRATION in blobs:
            calibration = Calibration.from_dict(orjson.loads(blobs[CALIBRATION][1]))
        accuracy = None
        if ACCURACY in blobs:
            value, count = orjson.loads(blobs[ACCURACY][1])
            accuracy = (float(value), int(count))
        labelled = None
        if LABELLED in blobs:
            labelled = sample_from_bytes(blobs[LABELLED][1])
        return cls(version, n, numeric, categorical, calibration, accuracy, labelled)


def build_profiles(
    model: ModelConfig,
    columns: Columns,
    *,
    version: int,
    calibration: Calibration | None = None,
    scores: Sequence[bytes | None] | None = None,
) -> ReferenceProfiles:
    """Profile every column that has at least one non-missing value (an all-missing column,
    e.g. no labels in the reference, has no profile and its drift is not evaluated)."""
    numeric = {}
    for name, values in columns.numeric.items():
        if values.size and not np.isnan(values).all():
            numeric[name] = profile_numeric(values, bins=model.drift.bins)
    categorical = {}
    for name, categories in columns.categorical.items():
        if any(value is not None for value in categories):
            categorical[name] = profile_categorical(
                categories, max_categories=model.drift.max_categories
            )
    return ReferenceProfiles(
        version,
        columns.n,
        numeric,
        categorical,
        calibration,
        _accuracy(model, columns),
        labelled_sample(model, columns, scores),
    )


def _accuracy(model: ModelConfig, columns: Columns) -> tuple[float, int] | None:
    """A classifier reference's accuracy over its labelled records, and their number."""
    if model.task != "classification":
        return None
    predicted = columns.categorical.get("__prediction__") or []
    actual = columns.categorical.get("__label__") or []
    pairs = [
        (p, a) for p, a in zip(predicted, actual, strict=False) if p is not None and a is not None
    ]
    if not pairs:
        return None
    return sum(p == a for p, a in pairs) / len(pairs), len(pairs)


def labelled_sample(
    model: ModelConfig, columns: Columns, scores: Sequence[bytes | None] | None = None
) -> LabelledSample | None:
    """The reference's labelled predictions (a classifier's as class codes, with their scores
    when every one has them; a regression's as values), at most ``LABELLED_LIMIT`` of them;
    None without any."""
    if model.task == "classification":
        classes = list(model.classes or ())
        predicted = columns.categorical.get("__prediction__") or []
        actual = columns.categorical.get("__label__") or []
        keep = [
            i
            for i, (p, a) in enumerate(zip(predicted, actual, strict=False))
            if p in classes and a in classes
        ]
        if not keep:
            return None
        matrix = None
        if scores is not None and len(scores) == columns.n:
            matrix = score_matrix([scores[i] for i in keep], classes)
        sample = LabelledSample(
            tuple(classes),
            encode_labels([str(predicted[i]) for i in keep], classes=classes),
            encode_labels([str(actual[i]) for i in keep], classes=classes),
            matrix,
        )
    else:
        values = columns.numeric.get("__prediction__")
        truth = columns.numeric.get("__label__")
        if values is None or truth is None:
            return None
        both = np.isfinite(values) & np.isfinite(truth)
        if not both.any():
            return None
        sample = LabelledSample((), values[both].astype(np.float64), truth[both].astype(np.float64))
    return sample.subsample(LABELLED_LIMIT, np.random.default_rng(0).permutation)


def sample_to_bytes(sample: LabelledSample) -> bytes:
    """A labelled sample's storage form: an ``.npz`` archive (no pickles)."""
    arrays: dict[str, Any] = {
        "classes": np.array(sample.classes, dtype=np.str_),
        "predicted": sample.predicted,
        "actual": sample.actual,
        "total": np.array(sample.reference_n),
    }
    if sample.scores is not None:
        arrays["scores"] = sample.scores
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def sample_from_bytes(data: bytes) -> LabelledSample:
    """``sample_to_bytes`` read back.

    >>> sample = LabelledSample(("a", "b"), np.array([0, 1]), np.array([1, 1]), None, 7)
    >>> sample_from_bytes(sample_to_bytes(sample)) == sample
    True
    """
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        scores = archive["scores"] if "scores" in archive.files else None
        return LabelledSample(
            tuple(str(c) for c in archive["classes"]),
            archive["predicted"],
            archive["actual"],
            scores,
            int(archive["total"]),
        )
