"""Reference profiles: computed once per reference version, stored, reused by every evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from monitor.config import ModelConfig
from monitor.evaluation.columns import Columns
from monitor.stats import (
    CategoricalProfile,
    NumericProfile,
    profile_categorical,
    profile_numeric,
)
from monitor.stats.performance import Calibration

#: The stored name of the reference's score calibration (for the accuracy estimate).
CALIBRATION = "__calibration__"
#: The stored name of the reference's accuracy.
ACCURACY = "__accuracy__"
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
        return cls(version, n, numeric, categorical, calibration, accuracy)


def build_profiles(
    model: ModelConfig,
    columns: Columns,
    *,
    version: int,
    calibration: Calibration | None = None,
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
        version, columns.n, numeric, categorical, calibration, _accuracy(model, columns)
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
