"""Reference profiles: computed once from the reference data, stored as bytes, reused.

A :class:`NumericProfile` keeps the sorted non-missing reference values (the exact KS,
Wasserstein and PSI need nothing else), the PSI bin edges, and a fine grid for the histogram
path. Quantiles use the *inverted CDF* definition: the quantile at ``p`` is the smallest
reference value ``x`` with ``F_ref(x) >= p``, i.e. ``sorted_values[ceil(n p) - 1]`` computed in
integer arithmetic (``numpy.quantile(..., method="inverted_cdf")``). Edges are therefore
reference values, which is what makes every PSI bin non-empty on the reference:

* ``psi_edges``: quantiles at ``i / bins`` for ``i = 1 .. bins - 1``, duplicates merged, edges
  equal to the maximum dropped. Bin ``(-inf, e_0]`` holds ``e_0``, bin ``(e_{i-1}, e_i]`` holds
  ``e_i`` and ``(e_last, inf)`` holds the maximum. Heavy ties give fewer than ``bins`` bins.
* ``grid``: quantiles at ``i / grid_size`` for ``i = 0 .. grid_size`` (minimum and maximum
  included), duplicates merged, united with ``psi_edges`` so that every PSI bin is a union of
  grid bins and the histogram path reproduces the exact PSI.

A :class:`CategoricalProfile` keeps the counts of the ``max_categories`` most frequent
reference categories (ties broken by name) and, if there were more, the sum of the rest under
``OTHER``: so at most ``max_categories + 1`` entries, the ``OTHER`` entry last.

Binary form (``to_bytes``), little-endian, version 1::

    numeric:     b"DMNP" u16 version, 2 pad, i64 n, i64 missing, f64 mean, f64 std,
                 i64 len(psi_edges), i64 len(grid), then f64 sorted_values, psi_edges, grid
    categorical: b"DMCP" u16 version, 2 pad, i64 n, i64 missing, i64 max_categories,
                 i64 k, then i64 counts[k], i64 utf-8 name lengths[k], the names' utf-8 bytes

``from_bytes`` checks magic, version and lengths, and the constructors check the invariants
the statistics rely on (``sorted_values`` finite and ascending with ``n`` entries; ``grid``
strictly increasing reference values from the minimum to the maximum; ``psi_edges`` grid points
below the maximum; category counts non-negative and summing to ``n``), so a corrupt blob raises
``ValueError`` instead of producing wrong statistics.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.stats.categories import OTHER, category_counts, fold_rare

_NUMERIC_MAGIC = b"DMNP"
_CATEGORICAL_MAGIC = b"DMCP"
_VERSION = 1
_NUMERIC_HEADER = struct.Struct("<4sH2xqqddqq")
_CATEGORICAL_HEADER = struct.Struct("<4sH2xqqqq")
_FLOAT = np.dtype("<f8")
_INT = np.dtype("<i8")


@dataclass(frozen=True, slots=True)
class NumericProfile:
    """The reference distribution of one numeric feature.

    Attributes
    ----------
    n : int
        Non-missing reference values.
    missing : int
        NaN count in the reference.
    sorted_values : ndarray of float64
        The non-missing reference values, ascending (read-only when built here).
    psi_edges : ndarray of float64
        Inner PSI edges; bins ``(-inf, e_0], (e_0, e_1], ..., (e_last, inf)``.
    grid : ndarray of float64
        Strictly increasing reference quantiles for the histogram path; contains ``psi_edges``.
    mean : float
        Mean of the reference values.
    std : float
        Population standard deviation (``ddof=0``) of the reference values.

    Examples
    --------
    >>> profile = profile_numeric(np.array([3.0, 1.0, np.nan, 2.0, 4.0]), bins=2, grid_size=4)
    >>> profile.n, profile.missing, profile.sorted_values, profile.psi_edges, profile.grid
    (4, 1, array([1., 2., 3., 4.]), array([2.]), array([1., 2., 3., 4.]))
    >>> NumericProfile.from_bytes(profile.to_bytes()) == profile
    True
    """

    n: int
    missing: int
    sorted_values: npt.NDArray[np.float64]
    psi_edges: npt.NDArray[np.float64]
    grid: npt.NDArray[np.float64]
    mean: float
    std: float

    def __post_init__(self) -> None:
        for name in ("sorted_values", "psi_edges", "grid"):
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype != np.float64:
                raise ValueError(f"{name} must be a 1-D float64 array")
        values = self.sorted_values
        if self.n < 1 or values.size != self.n:
            raise ValueError(f"n={self.n} must be positive and equal len(sorted_values)")
        if self.missing < 0:
            raise ValueError(f"missing={self.missing} must be >= 0")
        if not (np.isfinite(values[0]) and np.isfinite(values[-1])):
            raise ValueError("sorted_values must be finite")
        if not np.all(values[1:] >= values[:-1]):  # also false at any NaN
            raise ValueError("sorted_values must be sorted ascending, without NaN")
        for name in ("psi_edges", "grid"):
            array = getattr(self, name)
            if np.any(array[1:] <= array[:-1]) or not np.all(np.isfinite(array)):
                raise ValueError(f"{name} must be finite and strictly increasing")
        if not _is_subset(self.grid, values) or self.grid.size == 0:
            raise ValueError("grid must be non-empty reference values")
        if self.grid[0] != values[0] or self.grid[-1] != values[-1]:
            raise ValueError("grid must start at the reference minimum and end at its maximum")
        if not _is_subset(self.psi_edges, self.grid) or np.any(self.psi_edges >= values[-1]):
            raise ValueError("psi_edges must be grid points below the reference maximum")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericProfile):
            return NotImplemented
        return (
            (self.n, self.missing, self.mean, self.std)
            == (other.n, other.missing, other.mean, other.std)
            and np.array_equal(self.sorted_values, other.sorted_values)
            and np.array_equal(self.psi_edges, other.psi_edges)
            and np.array_equal(self.grid, other.grid)
        )

    def to_bytes(self) -> bytes:
        """The versioned binary form described in the module docstring."""
        header = _NUMERIC_HEADER.pack(
            _NUMERIC_MAGIC,
            _VERSION,
            self.n,
            self.missing,
            self.mean,
            self.std,
            self.psi_edges.size,
            self.grid.size,
        )
        arrays = (self.sorted_values, self.psi_edges, self.grid)
        return header + b"".join(array.astype(_FLOAT).tobytes() for array in arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> NumericProfile:
        """Rebuild a profile from :meth:`to_bytes` output; ``ValueError`` if malformed."""
        fields = _unpack_header(_NUMERIC_HEADER, _NUMERIC_MAGIC, data)
        n, missing, mean, std, n_edges, n_grid = fields
        sizes = (int(n), int(n_edges), int(n_grid))
        if min(sizes) < 0 or len(data) != _NUMERIC_HEADER.size + _FLOAT.itemsize * sum(sizes):
            raise ValueError("numeric profile: array lengths do not match the data size")
        arrays = []
        offset = _NUMERIC_HEADER.size
        for size in sizes:
            array = np.frombuffer(data, dtype=_FLOAT, count=size, offset=offset)
            arrays.append(array.astype(np.float64, copy=False))
            offset += size * _FLOAT.itemsize
        sorted_values, psi_edges, grid = arrays
        return cls(int(n), int(missing), sorted_values, psi_edges, grid, float(mean), float(std))


@dataclass(frozen=True, slots=True)
class CategoricalProfile:
    """The reference distribution of one categorical feature.

    Attributes
    ----------
    n : int
        Non-missing reference values.
    missing : int
        ``None`` count in the reference.
    counts : dict of str to int
        Counts of the ``max_categories`` most frequent categories, most frequent first, and
        the sum of all others under ``OTHER`` (present only if some category was folded).
    max_categories : int
        The folding limit the profile was built with.

    Examples
    --------
    >>> profile = profile_categorical(["a", "b", "a", None, "c"], max_categories=1)
    >>> profile.counts, profile.n, profile.missing
    ({'a': 2, '__other__': 2}, 4, 1)
    >>> CategoricalProfile.from_bytes(profile.to_bytes()) == profile
    True
    """

    n: int
    missing: int
    counts: dict[str, int]
    max_categories: int

    def __post_init__(self) -> None:
        if self.max_categories < 1:
            raise ValueError(f"max_categories={self.max_categories} must be >= 1")
        if self.missing < 0 or any(count < 0 for count in self.counts.values()):
            raise ValueError("counts and missing must be >= 0")
        if self.n < 1 or sum(self.counts.values()) != self.n:
            raise ValueError(f"n={self.n} must be positive and equal the sum of counts")
        if len(self.counts) > self.max_categories + 1:
            raise ValueError("counts hold more than max_categories categories and OTHER")

    def to_bytes(self) -> bytes:
        """The versioned binary form described in the module docstring."""
        names = [name.encode("utf-8") for name in self.counts]
        header = _CATEGORICAL_HEADER.pack(
            _CATEGORICAL_MAGIC, _VERSION, self.n, self.missing, self.max_categories, len(names)
        )
        counts = np.fromiter(self.counts.values(), dtype=_INT, count=len(names))
        lengths = np.fromiter((len(name) for name in names), dtype=_INT, count=len(names))
        return header + counts.tobytes() + lengths.tobytes() + b"".join(names)

    @classmethod
    def from_bytes(cls, data: bytes) -> CategoricalProfile:
        """Rebuild a profile from :meth:`to_bytes` output; ``ValueError`` if malformed."""
        n, missing, max_categories, k = _unpack_header(
            _CATEGORICAL_HEADER, _CATEGORICAL_MAGIC, data
        )
        offset = _CATEGORICAL_HEADER.size
        if k < 0 or len(data) < offset + 2 * k * _INT.itemsize:
            raise ValueError("categorical profile: data too short for its counts")
        counts = np.frombuffer(data, dtype=_INT, count=k, offset=offset)
        lengths = np.frombuffer(data, dtype=_INT, count=k, offset=offset + k * _INT.itemsize)
        offset += 2 * k * _INT.itemsize
        if np.any(lengths < 0) or len(data) != offset + int(lengths.sum()):
            raise ValueError("categorical profile: name lengths do not match the data size")
        table: dict[str, int] = {}
        for count, length in zip(counts.tolist(), lengths.tolist(), strict=True):
            table[data[offset : offset + length].decode("utf-8")] = count
            offset += length
        if len(table) != k:
            raise ValueError("categorical profile: duplicate category names")
        return cls(int(n), int(missing), table, int(max_categories))


def profile_numeric(
    values: npt.NDArray[np.float64], *, bins: int = 10, grid_size: int = 1000
) -> NumericProfile:
    """Profile a numeric reference sample; NaN marks a missing value.

    Parameters
    ----------
    values : ndarray of float64
        Reference values, 1-D. NaN is missing; infinite values are rejected (map them to
        NaN or clip them upstream).
    bins : int, default 10
        Number of PSI quantile bins before tied edges are merged.
    grid_size : int, default 1000
        Number of quantile steps of the histogram grid.

    Returns
    -------
    NumericProfile
        Read-only arrays; see the module docstring for edges and grid.

    Raises
    ------
    ValueError
        If no value is non-missing, a value is infinite, or ``bins``/``grid_size`` < 1.

    Examples
    --------
    Ties merge edges: the quartiles of ``1, 1, 1, 1, 2, 3`` are ``1, 1, 2``.

    >>> profile = profile_numeric(np.array([1.0, 1.0, 1.0, 1.0, 2.0, 3.0]), bins=4)
    >>> profile.psi_edges, profile.mean
    (array([1., 2.]), 1.5)
    """
    if bins < 1 or grid_size < 1:
        raise ValueError(f"bins={bins} and grid_size={grid_size} must be >= 1")
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {array.shape}")
    missing_mask = np.isnan(array)
    sorted_values = np.sort(array[~missing_mask])
    if sorted_values.size == 0:
        raise ValueError("the reference has no non-missing value")
    if np.isinf(sorted_values[0]) or np.isinf(sorted_values[-1]):
        raise ValueError("the reference has infinite values; map them to NaN or clip them")
    inner = _inverted_cdf_quantiles(sorted_values, bins)[1:-1]
    psi_edges = np.unique(inner)
    psi_edges = psi_edges[psi_edges < sorted_values[-1]]
    grid = np.union1d(np.unique(_inverted_cdf_quantiles(sorted_values, grid_size)), psi_edges)
    for array_field in (sorted_values, psi_edges, grid):
        array_field.setflags(write=False)
    return NumericProfile(
        n=int(sorted_values.size),
        missing=int(np.count_nonzero(missing_mask)),
        sorted_values=sorted_values,
        psi_edges=psi_edges,
        grid=grid,
        mean=float(np.mean(sorted_values)),
        std=float(np.std(sorted_values)),
    )


def profile_categorical(
    values: Sequence[str | None], *, max_categories: int = 50
) -> CategoricalProfile:
    """Profile a categorical reference sample; ``None`` marks a missing value.

    Parameters
    ----------
    values : sequence of str or None
        Reference categories.
    max_categories : int, default 50
        Categories kept by name; the rest are summed under ``OTHER``.

    Returns
    -------
    CategoricalProfile
        The kept counts, most frequent first (ties by name), then ``OTHER`` if anything folded.

    Raises
    ------
    ValueError
        If no value is non-missing or ``max_categories`` < 1.

    Examples
    --------
    >>> profile_categorical(["b", "a", "c", "a", "b", "d"], max_categories=2).counts
    {'a': 2, 'b': 2, '__other__': 2}
    """
    if max_categories < 1:
        raise ValueError(f"max_categories={max_categories} must be >= 1")
    counts, missing = category_counts(values)
    if not counts:
        raise ValueError("the reference has no non-missing value")
    kept, folded_total, folded_categories = fold_rare(counts, limit=max_categories)
    if folded_categories:
        # A real category spelled like OTHER shares its bin: the name is reserved.
        kept[OTHER] = kept.pop(OTHER, 0) + folded_total
    return CategoricalProfile(
        n=sum(counts.values()), missing=missing, counts=kept, max_categories=max_categories
    )


def _inverted_cdf_quantiles(
    sorted_values: npt.NDArray[np.float64], steps: int
) -> npt.NDArray[np.float64]:
    """Quantiles at ``i / steps``, ``i = 0 .. steps``: ``sorted_values[ceil(n i / steps) - 1]``."""
    n = sorted_values.size
    i = np.arange(steps + 1, dtype=np.int64)
    index = np.maximum((n * i + steps - 1) // steps - 1, 0)
    result: npt.NDArray[np.float64] = sorted_values[index]
    return result


def _is_subset(items: npt.NDArray[np.float64], sorted_values: npt.NDArray[np.float64]) -> bool:
    position = np.minimum(np.searchsorted(sorted_values, items), sorted_values.size - 1)
    return bool(np.all(sorted_values[position] == items))


def _unpack_header(header: struct.Struct, magic: bytes, data: bytes) -> tuple[Any, ...]:
    if len(data) < header.size:
        raise ValueError("profile data is truncated")
    fields = header.unpack_from(data)
    if fields[0] != magic:
        raise ValueError(f"not a {magic!r} profile (magic {fields[0]!r})")
    if fields[1] != _VERSION:
        raise ValueError(f"unsupported profile format version {fields[1]}")
    return tuple(fields[2:])
