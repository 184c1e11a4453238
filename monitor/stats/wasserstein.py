"""Wasserstein-1 (earth mover's) distance between two samples, exact and from grid counts.

Exact
-----
``W = integral |F_ref(t) - F_cur(t)| dt``: between consecutive merged values the two ECDFs are
constant, so ``W = sum_k |F_ref(v_k) - F_cur(v_k)| (v_{k+1} - v_k)`` over the merged support
(:mod:`monitor.stats.ecdf`). This is the sum ``scipy.stats.wasserstein_distance`` evaluates, in
a different order; all terms are non-negative, so the two agree to a relative ``1e-12``.

From grid counts (approximate)
------------------------------
The histogram path knows ``F_ref`` exactly (the profile keeps the sorted reference) but of the
current window only its count in each grid bin ``(g_{j-1}, g_j]``. The approximation assumes
that inside each grid bin the current values are distributed like the reference values there:
with ``r_j`` and ``c_j`` the reference and current mass of bin ``j``, for ``t`` in the bin::

    F_cur(t) ~ F_cur(g_{j-1}) + (c_j / r_j) (F_ref(t) - F_ref(g_{j-1}))

and ``W_hist = integral |F_ref - F_cur~| dt`` is integrated exactly over the reference's own
steps. Current mass in the outer bins is placed like the reference's too: at ``g_0`` (the
reference minimum, the only reference value in ``(-inf, g_0]``) and at the reference maximum
for ``(g_{G-1}, inf)``, where the reference has none. Hence:

* the result is exact when, inside each grid bin, the current values are spread exactly like
  the reference values and none lies outside the reference range (e.g. a discrete feature
  whose values are all grid points);
* current values outside the reference range count as if they sat on its edge: compared with
  the distance for the window clipped to ``[min, max]`` of the reference, that alone lowers
  the estimate by exactly their share of the window times their mean distance to the edge;
* against that clipped window the error is at most ``sum_j c_j (g_j - g_{j-1})``: inside bin
  ``j`` both the true ``F_cur`` and ``F_cur~`` lie between ``F_cur(g_{j-1})`` and
  ``F_cur(g_j)``, so they differ by at most ``c_j`` over a width ``g_j - g_{j-1}``.

On smooth data with the default 1000-quantile grid the error is below 0.5% of the reference
standard deviation plus 2% of ``W`` (tested). The integral is evaluated per grid bin in closed
form from prefix sums of the reference values: ``|F_ref - F_cur~|`` is linear in the reference
step index within a bin, so it changes sign at most once there. Cost: one ``cumsum`` over the
reference plus O(len(grid)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.stats.ecdf import MergedSamples


def wasserstein_distance(merged: MergedSamples) -> float:
    """Exact Wasserstein-1 distance between the two merged samples.

    Parameters
    ----------
    merged : MergedSamples
        The two samples on their merged support.

    Returns
    -------
    float
        ``integral |F_ref - F_cur| dt``, in the units of the values.

    Examples
    --------
    >>> from monitor.stats.ecdf import merge_sorted
    >>> wasserstein_distance(merge_sorted(np.array([0.0, 1.0]), np.array([2.0, 3.0])))
    2.0
    """
    return float(np.dot(merged.distance[:-1], merged.gaps))


def wasserstein_histogram(
    reference: npt.NDArray[np.float64],
    grid: npt.NDArray[np.float64],
    current_cdf: npt.NDArray[np.float64],
) -> float:
    """Approximate Wasserstein-1 distance from the current window's grid counts.

    Parameters
    ----------
    reference : ndarray of float64
        Sorted reference values.
    grid : ndarray of float64
        Grid points ``g_0 < ... < g_{G-1}``, each a reference value, ``g_0`` the minimum.
    current_cdf : ndarray of float64
        ``F_cur(g_j)`` from cumulative grid counts.

    Returns
    -------
    float
        The approximation described in the module docstring.

    Examples
    --------
    Reference ``0, 1, 2, 3, 4`` on grid ``0, 2, 4``. The window ``3, 4`` has all its mass in
    the bin ``(2, 4]``, spread there like the reference values ``3, 4``, so the approximation
    is exact:

    >>> reference = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    >>> wasserstein_histogram(reference, np.array([0.0, 2.0, 4.0]), np.array([0.0, 0.0, 1.0]))
    1.5
    >>> from monitor.stats.ecdf import merge_sorted
    >>> round(wasserstein_distance(merge_sorted(reference, np.array([3.0, 4.0]))), 12)
    1.5
    """
    n = reference.size
    below = np.searchsorted(reference, grid, side="right")
    strictly_below = np.searchsorted(reference, grid, side="left")
    reference_cdf = below / n
    # Bin j = (g_{j-1}, g_j): its reference steps are T_0 = g_{j-1} <= T_1 = x_K <= ... <=
    # T_M = x_{K+M-1} <= T_{M+1} = g_j, with K values <= g_{j-1} and M values strictly inside.
    # On [T_i, T_{i+1}), F_ref - F_cur~ = delta + slope * i.
    origin = grid[0]
    shifted = reference - origin  # prefix sums lose fewer digits near zero
    prefix = np.concatenate(([0.0], np.cumsum(shifted)))
    steps = _BinSteps(
        start=grid[:-1] - origin,
        stop=grid[1:] - origin,
        first=below[:-1],
        inside=strictly_below[1:] - below[:-1],
        shifted=shifted,
        prefix=prefix,
    )
    delta = reference_cdf[:-1] - current_cdf[:-1]
    # Every bin holds its right edge, a reference value, so its reference mass is positive.
    share = np.diff(current_cdf) / np.diff(reference_cdf)
    slope = (1.0 - share) / n
    last = delta + slope * steps.inside
    crossing = delta * last < 0.0
    root = np.divide(-delta, slope, out=np.zeros_like(delta), where=crossing)
    split = np.where(crossing, np.clip(np.floor(root), 0, steps.inside - 1), steps.inside)
    split = split.astype(np.int64)
    before = steps.integral(np.zeros_like(split), split, delta, slope)
    after = steps.integral(split + 1, steps.inside, delta, slope)
    return float(np.sum(np.abs(before)) + np.sum(np.abs(after)))


@dataclass(frozen=True, slots=True)
class _BinSteps:
    """The reference's steps inside each grid bin, for sums over ranges of steps."""

    start: npt.NDArray[np.float64]
    stop: npt.NDArray[np.float64]
    first: npt.NDArray[np.int64]
    inside: npt.NDArray[np.int64]
    shifted: npt.NDArray[np.float64]
    prefix: npt.NDArray[np.float64]

    def point(self, i: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """``T_i``: the bin start for 0, its stop for ``M + 1``, else reference value ``K+i-1``."""
        index = np.clip(self.first + i - 1, 0, self.shifted.size - 1)
        inner = self.shifted[index]
        result: npt.NDArray[np.float64] = np.where(
            i == 0, self.start, np.where(i == self.inside + 1, self.stop, inner)
        )
        return result

    def integral(
        self,
        low: npt.NDArray[np.int64],
        high: npt.NDArray[np.int64],
        delta: npt.NDArray[np.float64],
        slope: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """``sum_{i=low}^{high} (T_{i+1} - T_i) (delta + slope i)``; 0 where ``low > high``.

        By parts, ``sum i (T_{i+1} - T_i) = high T_{high+1} - low T_low - sum_{low<i<=high} T_i``
        and the last sum is a difference of prefix sums of the reference values.
        """
        empty = low > high
        low = np.where(empty, high, low)
        t_low = self.point(low)
        t_high = self.point(high + 1)
        width = t_high - t_low
        inner = self.prefix[self.first + high] - self.prefix[self.first + low]
        moment = high * t_high - low * t_low - inner
        result: npt.NDArray[np.float64] = np.where(empty, 0.0, delta * width + slope * moment)
        return result
