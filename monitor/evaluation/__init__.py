"""Drift evaluation: stored rows to columns, reference profiles, statistics to an Evaluation.

Everything here is pure; the service loads rows and stores the result.
"""

from __future__ import annotations

from monitor.evaluation.columns import Columns, columns_from_rows
from monitor.evaluation.evaluate import evaluate_drift
from monitor.evaluation.profiles import OUTPUT_NAMES, ReferenceProfiles, build_profiles

__all__ = [
    "OUTPUT_NAMES",
    "Columns",
    "ReferenceProfiles",
    "build_profiles",
    "columns_from_rows",
    "evaluate_drift",
]
