"""Stored rows (JSON feature objects, prediction, label) to one column per feature."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from monitor.config import ModelConfig


@dataclass(frozen=True, slots=True)
class Columns:
    """A window (or reference) column by column; NaN / None mark missing values."""

    n: int
    numeric: dict[str, npt.NDArray[np.float64]]
    categorical: dict[str, list[str | None]]


def _category(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


def columns_from_rows(
    model: ModelConfig,
    features: Sequence[bytes],
    *,
    predictions: Sequence[Any] | None = None,
    labels: Sequence[Any] | None = None,
) -> Columns:
    """Columns of the configured features, plus the model's output columns when given.

    The prediction and label go under ``__prediction__`` and ``__label__``: categorical for
    classification, numeric for regression. A key absent from a stored object is missing.

    >>> from monitor.config import parse_config
    >>> model = parse_config('''models: [{name: m, task: regression, features:
    ...   [{name: x, type: numeric}, {name: c, type: categorical}]}]''').models[0]
    >>> cols = columns_from_rows(model, [b'{"x": 1.5, "c": "a"}', b'{"x": null, "c": 3}'])
    >>> cols.numeric["x"].tolist(), cols.categorical["c"]
    ([1.5, nan], ['a', '3'])
    """
    rows: list[dict[str, Any]] = orjson.loads(b"[" + b",".join(features) + b"]")
    numeric_names = [f.name for f in model.features if f.type == "numeric"]
    categorical_names = [f.name for f in model.features if f.type == "categorical"]
    numeric: dict[str, npt.NDArray[np.float64]] = {}
    if numeric_names and rows:
        try:
            get = itemgetter(*numeric_names)
            matrix = np.array(list(map(get, rows)), dtype=np.float64).reshape(len(rows), -1)
            numeric = {name: matrix[:, i].copy() for i, name in enumerate(numeric_names)}
        except KeyError:  # rows stored under an older feature list: absent means missing
            numeric = {
                name: np.array([row.get(name) for row in rows], dtype=np.float64)
                for name in numeric_names
            }
    else:
        numeric = {name: np.empty(0, dtype=np.float64) for name in numeric_names}
    categorical = {name: [_category(row.get(name)) for row in rows] for name in categorical_names}
    classification = model.task == "classification"
    for name, values in (("__prediction__", predictions), ("__label__", labels)):
        if values is None:
            continue
        if classification:
            categorical[name] = [_category(v) for v in values]
        else:
            numeric[name] = np.array(values, dtype=np.float64)
    return Columns(len(rows), numeric, categorical)
