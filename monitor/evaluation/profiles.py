"""Reference profiles: computed once per reference version, stored, reused by every evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.config import ModelConfig
from monitor.evaluation.columns import Columns
from monitor.stats import (
    CategoricalProfile,
    NumericProfile,
    profile_categorical,
    profile_numeric,
)

#: Columns of the model's own output, tracked like features.
OUTPUT_NAMES = ("__prediction__", "__label__")


@dataclass(frozen=True, slots=True)
class ReferenceProfiles:
    version: int
    n: int
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]

    def to_blobs(self) -> dict[str, tuple[str, bytes]]:
        """Each profile's storage form: name -> (type, bytes)."""
        blobs = {name: ("numeric", p.to_bytes()) for name, p in self.numeric.items()}
        blobs.update({name: ("categorical", p.to_bytes()) for name, p in self.categorical.items()})
        return blobs

    @classmethod
    def from_blobs(
        cls, *, version: int, n: int, blobs: dict[str, tuple[str, bytes]]
    ) -> ReferenceProfiles:
        numeric = {k: NumericProfile.from_bytes(b) for k, (t, b) in blobs.items() if t == "numeric"}
        categorical = {
            k: CategoricalProfile.from_bytes(b) for k, (t, b) in blobs.items() if t != "numeric"
        }
        return cls(version, n, numeric, categorical)


def build_profiles(model: ModelConfig, columns: Columns, *, version: int) -> ReferenceProfiles:
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
    return ReferenceProfiles(version, columns.n, numeric, categorical)
