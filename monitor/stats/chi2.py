"""Pearson chi-square test of homogeneity between two samples of categories.

The table is ``2 x k``: row 0 the reference counts, row 1 the current counts, one column per
category bin. Columns that are zero in both rows are dropped (they carry no information and
would make an expected frequency zero). With row totals ``R_i``, column totals ``C_j`` and grand
total ``T``, the expected count is ``E_ij = R_i C_j / T`` and::

    statistic = sum_ij (O_ij - E_ij)^2 / E_ij,   dof = k' - 1,   p = P(chi2_dof >= statistic)

where ``k'`` is the number of columns kept. There is no Yates continuity correction. When a
single column remains the test is degenerate: statistic ``0.0``, p-value ``1.0``. The arithmetic
follows ``scipy.stats.chi2_contingency(table, correction=False)`` operation by operation, so the
two agree to rounding.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from monitor.stats._scipy import chi2_sf


def chi2_homogeneity(
    reference_counts: npt.NDArray[np.int64], current_counts: npt.NDArray[np.int64]
) -> tuple[float, float]:
    """Chi-square statistic and p-value of the ``2 x k`` homogeneity test.

    Parameters
    ----------
    reference_counts, current_counts : ndarray of int64
        Counts over the same category bins, each with a positive total.

    Returns
    -------
    tuple of float
        ``(statistic, p_value)``.

    Examples
    --------
    Expected counts are all 15, each cell is off by 5: ``4 * 25 / 15 = 20 / 3``.

    >>> statistic, p_value = chi2_homogeneity(np.array([10, 20]), np.array([20, 10]))
    >>> round(statistic, 12) == round(20 / 3, 12), round(p_value, 6)
    (True, 0.009823)
    >>> chi2_homogeneity(np.array([5, 0]), np.array([7, 0]))
    (0.0, 1.0)
    """
    observed = np.stack([reference_counts, current_counts]).astype(np.float64)
    observed = observed[:, observed.sum(axis=0) > 0]
    dof = observed.shape[1] - 1
    if dof <= 0:
        return 0.0, 1.0
    row_totals = observed.sum(axis=1, keepdims=True)
    column_totals = observed.sum(axis=0, keepdims=True)
    expected = row_totals * column_totals / observed.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return statistic, chi2_sf(statistic, dof)
