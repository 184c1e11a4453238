"""Jensen-Shannon distance between two binned distributions, base 2.

With bin proportions ``p`` (reference) and ``q`` (current), unsmoothed, and ``m = (p + q) / 2``::

    JS(p, q) = sqrt( (KL(p || m) + KL(q || m)) / 2 ),   KL in bits (log base 2)

This is a metric in ``[0, 1]``: 0 for identical proportions, 1 for disjoint supports. Empty bins
need no smoothing (``0 * log 0 = 0`` and ``m > 0`` wherever ``p`` or ``q`` is). The computation
follows ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` step by step, so the two agree to
rounding; tiny negative rounding residues are clipped to zero before the square root.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from monitor.stats._scipy import rel_entr


def jensen_shannon_distance(
    reference_counts: npt.NDArray[np.int64], current_counts: npt.NDArray[np.int64]
) -> float:
    """Base-2 Jensen-Shannon distance between the proportions of two count vectors.

    Parameters
    ----------
    reference_counts, current_counts : ndarray of int64
        Counts over the same bins, each with a positive total.

    Returns
    -------
    float
        The distance, in ``[0, 1]``.

    Examples
    --------
    >>> jensen_shannon_distance(np.array([1, 0]), np.array([0, 1]))
    1.0
    >>> jensen_shannon_distance(np.array([2, 2]), np.array([5, 5]))
    0.0
    """
    p = reference_counts / np.sum(reference_counts)
    q = current_counts / np.sum(current_counts)
    m = (p + q) / 2.0
    divergence = (np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))) / math.log(2.0)
    return float(np.sqrt(max(float(divergence), 0.0) / 2.0))
