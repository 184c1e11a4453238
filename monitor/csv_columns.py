"""The columns of a table of records (CSV, or Parquet for ``monitor replay``), named once.

``id``, ``timestamp``, one column per feature (named after it), ``prediction``, one
``score_<class>`` column per class (a classification model's probabilities: ``scores``),
``label``, ``label_timestamp`` and ``model_version`` (the model version that made the
prediction, issue 16; empty when none). ``GET .../export?format=csv`` writes them in that order
(``header``), so that a window exported replays with its scores and model versions and can be
uploaded as a reference; ``monitor replay`` reads them in any order (``model_version``
optional); a CSV reference reads the features,
``prediction``, the scores and ``label``, and ignores ``id``, ``timestamp``,
``label_timestamp`` and ``model_version``.

A column is what ``kind_of`` says: one of the record's own (``RECORD_COLUMNS``) first, then a
feature, then a score (``score_`` and a class); a config cannot give a model a feature named
like one of the record's columns, nor a classification model one named like one of its score
columns (``monitor.config``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final, Literal

RECORD_COLUMNS: Final = (
    "id",
    "timestamp",
    "prediction",
    "label",
    "label_timestamp",
    "model_version",
)
SCORE_PREFIX: Final = "score_"

Kind = Literal["record", "feature", "score"]


def score_column(label: str) -> str:
    """The column of a class's probability.

    >>> score_column("approved")
    'score_approved'
    """
    return SCORE_PREFIX + label


def header(features: Sequence[str], classes: Sequence[str] | None) -> list[str]:
    """The columns of a table of a model's records, in the order the export writes them.

    >>> header(["age", "country"], ["no", "yes"])
    ['id', 'timestamp', 'age', 'country', 'prediction', 'score_no', 'score_yes', 'label', 'label_timestamp', 'model_version']
    """  # noqa: E501
    scores = [score_column(label) for label in classes or ()]
    return [
        "id",
        "timestamp",
        *features,
        "prediction",
        *scores,
        "label",
        "label_timestamp",
        "model_version",
    ]


def kind_of(column: str, features: Collection[str]) -> Kind | None:
    """What ``column`` holds; ``None`` for a column that is none of these.

    >>> [kind_of(c, {"age"}) for c in ("label", "age", "score_yes", "colour")]
    ['record', 'feature', 'score', None]
    """
    if column in RECORD_COLUMNS:
        return "record"
    if column in features:
        return "feature"
    if column.startswith(SCORE_PREFIX) and len(column) > len(SCORE_PREFIX):
        return "score"
    return None


def score_class(column: str) -> str:
    """The class of a score column.

    >>> score_class("score_yes")
    'yes'
    """
    return column.removeprefix(SCORE_PREFIX)
