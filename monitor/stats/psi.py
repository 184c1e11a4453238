"""Population stability index (PSI) over bins, and the right-closed numeric bins it uses.

Definition
----------
For bins ``b = 1..k`` with reference proportion ``r_b`` and current proportion ``c_b``
(each bin's count divided by its sample's total count of non-missing values)::

    PSI = sum_b (c_b - r_b) * ln(c_b / r_b)

Smoothing of empty bins: a proportion that is exactly zero is replaced by ``PSI_EPSILON``
(``1e-4``) before the sum, in the reference and in the current alike; non-zero proportions are
used as they are, even when smaller than ``PSI_EPSILON``, and nothing is renormalised. So an
empty bin contributes ``(c - 1e-4) * ln(c / 1e-4)`` and never an infinity.

Every term is ``>= 0`` (``c - r`` and ``ln(c / r)`` share their sign, and floating-point division
and ``log`` keep that ordering), so ``PSI >= 0``; equal proportions give terms that are exactly
zero, so identical samples give ``PSI == 0.0`` exactly.

Numeric bins
------------
Numeric values are cut at the profile's inner edges ``e_0 < ... < e_{k-2}`` into the bins
``(-inf, e_0], (e_0, e_1], ..., (e_{k-2}, inf)``: right-closed, so value ``v`` lands in bin
``searchsorted(edges, v, side="left")``. Counting with ``searchsorted(sorted_values, edges,
side="right")`` on a sorted sample gives the same counts without visiting every value.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Proportion that replaces an empty (zero-proportion) bin in the PSI; see the module docstring.
PSI_EPSILON: float = 1e-4
#: Alias of :data:`PSI_EPSILON`: the floor applied to the proportion of a bin with no values.
MISSING_EPSILON: float = PSI_EPSILON


def sorted_bin_counts(
    sorted_values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Count sorted values in the right-closed bins cut at ``edges``.

    Parameters
    ----------
    sorted_values : ndarray of float64
        Non-missing values sorted ascending.
    edges : ndarray of float64
        Strictly increasing inner edges.

    Returns
    -------
    ndarray of int64
        ``len(edges) + 1`` counts; bin ``i`` is ``(edges[i-1], edges[i]]`` with open outer bins.

    Examples
    --------
    >>> sorted_bin_counts(np.array([1.0, 2.0, 2.0, 3.0, 7.0]), np.array([2.0, 5.0]))
    array([3, 1, 1])
    """
    below = np.searchsorted(sorted_values, edges, side="right")
    cumulative = np.concatenate(([0], below, [sorted_values.size]))
    return np.diff(cumulative).astype(np.int64)


def population_stability_index(
    reference_counts: npt.NDArray[np.int64], current_counts: npt.NDArray[np.int64]
) -> float:
    """PSI between two count vectors over the same bins, empty bins floored at ``PSI_EPSILON``.

    Parameters
    ----------
    reference_counts, current_counts : ndarray of int64
        Counts per bin, same length, each with a positive total.

    Returns
    -------
    float
        ``sum((c - r) * ln(c / r))`` over the bin proportions ``r`` and ``c``.

    Examples
    --------
    Reference proportions ``(0.5, 0.5)``, current ``(0.25, 0.75)``:
    ``(0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5) = 0.25 ln 3``.

    >>> psi = population_stability_index(np.array([50, 50]), np.array([25, 75]))
    >>> round(psi, 9), round(0.25 * np.log(3.0), 9)
    (0.274653072, np.float64(0.274653072))
    >>> population_stability_index(np.array([3, 1]), np.array([6, 2]))
    0.0
    """
    reference = _floored_proportions(reference_counts)
    current = _floored_proportions(current_counts)
    return float(np.sum((current - reference) * np.log(current / reference)))


def _floored_proportions(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    proportions: npt.NDArray[np.float64] = counts / counts.sum()
    proportions[proportions == 0.0] = PSI_EPSILON
    return proportions
