"""Stored rows (feature objects, prediction, label) to one column per feature."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from monitor import codec
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


def _categories(values: list[Any]) -> list[str | None]:
    if all(type(v) is str or v is None for v in values):
        return values
    return [_category(v) for v in values]


def _number(value: Any) -> float | None:
    """A stored value read as a number; anything else (a type changed in the config) is
    missing."""
    kind = type(value)
    return float(value) if kind is float or kind is int else None


@functools.lru_cache(maxsize=64)
def _struct_decoder(name: str, numeric: tuple[str, ...], categorical: tuple[str, ...]) -> Any:
    fields: list[tuple[str, Any, Any]] = [(f, float | None, None) for f in numeric]
    fields += [(f, str | int | bool | None, None) for f in categorical]
    # gc=False: the fields are scalars, so these structs can never be part of a cycle, and a
    # 100k-record window would otherwise make the collector walk them all
    struct = msgspec.defstruct(f"{name}_stored_features", fields, gc=False)
    return codec.decoder(struct)


def _decoder(model: ModelConfig) -> Any:
    return _struct_decoder(
        model.name,
        tuple(f.name for f in model.features if f.type == "numeric"),
        tuple(f.name for f in model.features if f.type == "categorical"),
    )


#: Rows decoded at a time: the decoded objects of one chunk are all that is alive besides the
#: finished columns, so memory stays near the columns' own size whatever the window's. A
#: decoded row of 25 features is about 1 KB of small Python objects, and what Python's
#: object allocator takes at a peak stays fragmented afterwards (bench/soak.py), so chunks
#: are kept small: 4,096 rows, about 4 MB; larger ones were no faster.
_CHUNK_ROWS = 4_096


def _decoded_columns(
    model: ModelConfig,
    features: Sequence[bytes],
    numeric_names: list[str],
    categorical_names: list[str],
) -> tuple[dict[str, npt.NDArray[np.float64]], dict[str, list[str | None]]]:
    n, k = len(features), len(numeric_names)
    decode = _decoder(model).decode
    by_feature = np.empty((k, n), dtype=np.float64)  # one row per feature: columns contiguous
    categorical: dict[str, list[str | None]] = {name: [] for name in categorical_names}
    seen: dict[str, dict[str | None, str | None]] = {name: {} for name in categorical_names}
    numeric_of = attrgetter(*numeric_names) if k > 1 else None
    for start in range(0, n, _CHUNK_ROWS):
        structs = list(map(decode, features[start : start + _CHUNK_ROWS]))
        block = by_feature[:, start : start + len(structs)].T
        if numeric_of is not None:
            values = itertools.chain.from_iterable(map(numeric_of, structs))
            try:  # no missing value: straight from the tuples
                block[:] = np.fromiter(values, np.float64, len(structs) * k).reshape(-1, k)
            except TypeError:  # a None: the same, with None read as NaN
                block[:] = np.array(list(map(numeric_of, structs)), dtype=np.float64)
        elif k == 1:
            block[:, 0] = np.array(list(map(attrgetter(numeric_names[0]), structs)), np.float64)
        for name in categorical_names:
            # one str object per distinct category, not per row: a 100k window's categorical
            # columns would otherwise hold hundreds of thousands of equal strings
            same = seen[name]
            found = _categories(list(map(attrgetter(name), structs)))
            categorical[name].extend(map(same.setdefault, found, found))
    return {name: by_feature[i] for i, name in enumerate(numeric_names)}, categorical


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
    >>> rows = [codec.encode({"x": 1.5, "c": "a"}), codec.encode({"x": None, "c": 3})]
    >>> cols = columns_from_rows(model, rows)
    >>> cols.numeric["x"].tolist(), cols.categorical["c"]
    ([1.5, nan], ['a', '3'])
    """
    numeric_names = [f.name for f in model.features if f.type == "numeric"]
    categorical_names = [f.name for f in model.features if f.type == "categorical"]
    n = len(features)
    numeric: dict[str, npt.NDArray[np.float64]]
    categorical: dict[str, list[str | None]]
    try:  # typed decoding in C; a key absent from an older row decodes as missing
        numeric, categorical = _decoded_columns(model, features, numeric_names, categorical_names)
    except msgspec.ValidationError:  # e.g. a feature whose type changed in the config
        rows: list[dict[str, Any]] = codec.decode(codec.concat(features))
        numeric = {
            name: np.array([_number(row.get(name)) for row in rows], dtype=np.float64)
            for name in numeric_names
        }
        categorical = {
            name: [_category(row.get(name)) for row in rows] for name in categorical_names
        }
    classification = model.task == "classification"
    for name, values in (("__prediction__", predictions), ("__label__", labels)):
        if values is None:
            continue
        if classification:
            categorical[name] = [_category(v) for v in values]
        else:
            numeric[name] = np.array(values, dtype=np.float64)
    return Columns(n, numeric, categorical)
