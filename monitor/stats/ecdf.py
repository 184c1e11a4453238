"""Two empirical CDFs on their merged support: what the exact KS and Wasserstein paths share.

Both samples arrive sorted (the reference once, in its profile; the current once per window).
Merging two sorted runs with a stable argsort is a linear-time timsort merge, far cheaper than
locating every value of one sample in the other with ``searchsorted``. Walking the merged
order, ``r_k`` and ``c_k`` count the values of each sample among the first ``k + 1`` merged
values, and ``distance[k] = |r_k / n_ref - c_k / n_cur|``, computed with the same float
operations as ``scipy.stats.ks_2samp``. At the last position of every run of tied values those
counts are the exact ECDF numerators ``#{x <= v}``; inside a run they are partial, but there the
gap to the next merged value is zero, so they never weigh in an integral, and the KS maximum
skips them.

Arrays here are large (``n_ref + n_cur`` elements) and short-lived, so the merge reuses its
buffers: with glibc's default thresholds, every fresh allocation of a megabyte or more is a new
``mmap`` whose page faults cost more than the arithmetic done on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class MergedSamples:
    """Two sorted samples merged, with the ECDF distance at each merged position.

    Attributes
    ----------
    values : ndarray of float64
        All values of both samples, ascending.
    distance : ndarray of float64
        ``|F_ref - F_cur|`` after each merged position (exact at the last of tied values).
    gaps : ndarray of float64
        ``values[k + 1] - values[k]``; zero inside runs of tied values.
    """

    values: npt.NDArray[np.float64]
    distance: npt.NDArray[np.float64]
    gaps: npt.NDArray[np.float64]


def merge_sorted(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> MergedSamples:
    """Merge two ascending, non-empty, NaN-free samples.

    Parameters
    ----------
    reference, current : ndarray of float64
        Sorted samples.

    Returns
    -------
    MergedSamples
        The merged values, ECDF distances and gaps.

    Examples
    --------
    >>> merged = merge_sorted(np.array([1.0, 2.0, 2.0]), np.array([2.0, 3.0]))
    >>> merged.values
    array([1., 2., 2., 2., 3.])
    >>> merged.distance  # exact after 1.0, after the last 2.0, after 3.0
    array([0.33333333, 0.66666667, 1.        , 0.5       , 0.        ])
    >>> merged.gaps
    array([1., 0., 0., 1.])
    """
    combined = np.concatenate((reference, current))
    order = np.argsort(combined, kind="stable")
    values = combined[order]
    # ``combined`` is free now (its values live on in ``values``): it receives the running count
    # of current values, as floats, which hold integers exactly. ``order`` then receives the
    # running count of reference values.
    current_below = np.greater_equal(order, reference.size, out=combined)
    np.cumsum(current_below, out=current_below)
    reference_below = np.less(order, reference.size, out=order)
    np.cumsum(reference_below, out=reference_below)
    distance = np.divide(reference_below, reference.size)
    np.subtract(distance, np.divide(current_below, current.size, out=current_below), out=distance)
    np.abs(distance, out=distance)
    gaps = np.subtract(values[1:], values[:-1], out=combined[:-1])
    return MergedSamples(values=values, distance=distance, gaps=gaps)
