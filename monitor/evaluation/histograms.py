"""Summarise records into per-time-bucket counts on the reference profiles' grids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor.config import ModelConfig
from monitor.evaluation.columns import Columns, columns_from_rows
from monitor.evaluation.counts import Counts
from monitor.evaluation.profiles import ReferenceProfiles
from monitor.stats import category_counts, grid_counts


def bucket_start(ts: float, bucket_seconds: float) -> float:
    """The start of the bucket holding ``ts``.

    >>> bucket_start(125.0, 60.0)
    120.0
    """
    return float(np.floor(ts / bucket_seconds) * bucket_seconds)


def summarize(
    model: ModelConfig,
    profiles: ReferenceProfiles,
    timestamps: Sequence[float],
    features: Sequence[bytes],
    predictions: Sequence[Any],
    *,
    bucket_seconds: float,
) -> dict[tuple[str, float], Counts]:
    """Counts per (feature, bucket start) of the given records. Labels are not summarised:
    they arrive after their predictions, so the label distribution is exact-path only."""
    starts = np.floor(np.asarray(timestamps, dtype=np.float64) / bucket_seconds) * bucket_seconds
    result: dict[tuple[str, float], Counts] = {}
    for start in np.unique(starts):
        index = np.flatnonzero(starts == start).tolist()
        columns = columns_from_rows(
            model,
            [features[i] for i in index],
            predictions=[predictions[i] for i in index],
        )
        for name, found in column_counts(profiles, columns).items():
            result[(name, float(start))] = found
    return result


def column_counts(profiles: ReferenceProfiles, columns: Columns) -> dict[str, Counts]:
    """Each column's counts on its profile's grid (numeric) or per category; columns without
    a profile are left out. Counts of pieces of a window, added, are the whole window's."""
    result: dict[str, Counts] = {}
    for name, values in columns.numeric.items():
        profile = profiles.numeric.get(name)
        if profile is None:
            continue
        counts, missing = grid_counts(profile, values)
        result[name] = Counts("numeric", counts, None, missing)
    for name, categories in columns.categorical.items():
        if name not in profiles.categorical:
            continue
        found, missing = category_counts(categories)
        result[name] = Counts("categorical", None, dict(found), missing)
    return result
