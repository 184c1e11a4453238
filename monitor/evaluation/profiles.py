"""Reference profiles: computed once per reference version, stored, reused by every evaluation."""

from __future__ import annotations

from dataclasses import dataclass

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
#: Columns of the model's own output, tracked like features.
OUTPUT_NAMES = ("__prediction__", "__label__")


@dataclass(frozen=True, slots=True)
class ReferenceProfiles:
    version: int
    n: int
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]
    calibration: Calibration | None = None

    def to_blobs(self) -> dict[str, tuple[str, bytes]]:
        """Each profile's storage form: name -> (type, bytes)."""
        blobs = {name: ("numeric", p.to_bytes()) for name, p in self.numeric.items()}
        blobs.update({name: ("categorical", p.to_bytes()) for name, p in self.categorical.items()})
        if self.calibration is not None:
            blobs[CALIBRATION] = ("calibration", orjson.dumps(self.calibration.to_dict()))
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
        return cls(version, n, numeric, categorical, calibration)


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
    return ReferenceProfiles(version, columns.n, numeric, categorical, calibration)
