"""Stored feature objects to columns: chunked decoding gives what a plain loop over the
decoded objects gives, with missing values (None, absent keys) as NaN / None."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from monitor import codec
from monitor.config import ModelConfig, parse_config
from monitor.evaluation import columns as columns_module
from monitor.evaluation.columns import columns_from_rows


def model_with(numeric: int, categorical: int) -> ModelConfig:
    features = [f"{{name: n{i}, type: numeric}}" for i in range(numeric)]
    features += [f"{{name: c{i}, type: categorical}}" for i in range(categorical)]
    return parse_config(
        f"models: [{{name: m, task: regression, features: [{', '.join(features)}]}}]"
    ).models[0]


def random_rows(rng: random.Random, n: int, numeric: int, categorical: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(n):
        row: dict[str, Any] = {}
        for i in range(numeric):
            roll = rng.random()
            if roll < 0.1:
                row[f"n{i}"] = None
            elif roll < 0.15:
                continue  # absent, as in a row stored before the feature was added
            else:
                row[f"n{i}"] = rng.choice([rng.gauss(0, 1), rng.randint(-5, 5)])
        for i in range(categorical):
            row[f"c{i}"] = rng.choice(["a", "b", None, 3, True])
        rows.append(row)
    return rows


def expected_number(value: Any) -> float:
    return math.nan if value is None else float(value)


def expected_category(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.mark.parametrize(("numeric", "categorical"), [(3, 2), (1, 1), (0, 2), (2, 0)])
@pytest.mark.parametrize("with_missing", [True, False])
def test_chunked_columns_equal_a_plain_loop(
    monkeypatch: pytest.MonkeyPatch, numeric: int, categorical: int, with_missing: bool
) -> None:
    monkeypatch.setattr(columns_module, "_CHUNK_ROWS", 7)  # many chunks, a short last one
    rng = random.Random(numeric * 10 + categorical)
    rows = random_rows(rng, 53, numeric, categorical)
    if not with_missing:
        for row in rows:
            for i in range(numeric):
                row[f"n{i}"] = float(i) + rng.random()
    model = model_with(numeric, categorical)
    found = columns_from_rows(model, [codec.encode(row) for row in rows])
    assert found.n == 53
    for i in range(numeric):
        expected = [expected_number(row.get(f"n{i}")) for row in rows]
        column = found.numeric[f"n{i}"]
        assert column.flags.c_contiguous and column.dtype.name == "float64"
        assert [str(v) for v in column.tolist()] == [str(v) for v in expected]
    for i in range(categorical):
        assert found.categorical[f"c{i}"] == [expected_category(row.get(f"c{i}")) for row in rows]


def test_a_type_changed_in_the_config_reads_as_missing() -> None:
    model = model_with(1, 1)
    rows = [codec.encode({"n0": "was categorical", "c0": "a"}), codec.encode({"n0": 2.5})]
    found = columns_from_rows(model, rows)
    assert [str(v) for v in found.numeric["n0"].tolist()] == ["nan", "2.5"]
    assert found.categorical["c0"] == ["a", None]


def test_no_rows() -> None:
    found = columns_from_rows(model_with(2, 1), [])
    assert found.n == 0
    assert found.numeric["n0"].shape == (0,) and found.categorical["c0"] == []
