"""Binomial proportions (accuracy, precision, recall) with their Wilson score interval.

Definition
----------
For ``s`` successes in ``n >= 1`` trials, ``p = s / n`` and ``z`` the ``(1 + confidence) / 2``
quantile of the standard normal distribution (``z = 1.959963984540054`` at 95%, the value of
``scipy.stats.norm.ppf(0.975)``)::

    centre    = (p + z^2 / (2 n)) / (1 + z^2 / n)
    halfwidth = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))
    interval  = [centre - halfwidth, centre + halfwidth]

This is the set of true proportions ``p0`` that the two-sided score test would not reject,
``|p - p0| <= z sqrt(p0 (1 - p0) / n)`` (Wilson 1927). Unlike the Wald interval
``p +- z sqrt(p (1 - p) / n)`` it stays inside ``[0, 1]``, is not degenerate at ``p = 0`` or
``p = 1``, and keeps close to nominal coverage on small samples (Newcombe 1998), which is what
lets an alert rule tell a real drop from a thin sample: 8 right out of 10 is ``[0.49, 0.94]``,
950 out of 1000 is ``[0.935, 0.962]``.

At ``s = 0`` the lower bound is exactly ``0.0`` and at ``s = n`` the upper bound is exactly
``1.0`` (the closed form gives these only up to rounding); otherwise the bounds are clamped to
``[0, p]`` and ``[p, 1]``, which changes nothing but rounding, so ``lower <= value <= upper``
always holds.

References
----------
E. B. Wilson (1927), Probable inference, the law of succession, and statistical inference.
J. Amer. Statist. Assoc. 22, 209-212.
R. G. Newcombe (1998), Two-sided confidence intervals for the single proportion: comparison of
seven methods. Statistics in Medicine 17, 857-872.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.stats.performance._scipy import ndtri

#: Confidence level of every interval this subpackage reports.
CONFIDENCE: float = 0.95


@dataclass(frozen=True, slots=True)
class Proportion:
    """A proportion ``successes / n`` with its Wilson score interval.

    Attributes
    ----------
    value : float
        ``successes / n``, in ``[0, 1]``.
    lower, upper : float
        Wilson score interval at :data:`CONFIDENCE` (95%); ``lower <= value <= upper``.
    successes : int
        Trials counted as successes (correct predictions, true positives, ...).
    n : int
        Trials, at least 1.

    Examples
    --------
    >>> accuracy = proportion(successes=81, n=263)
    >>> round(accuracy.value, 4), round(accuracy.lower, 4), round(accuracy.upper, 4)
    (0.308, 0.2553, 0.3662)
    """

    value: float
    lower: float
    upper: float
    successes: int
    n: int


def wilson_interval(
    *, successes: int, n: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Wilson score interval of the proportion ``successes / n``.

    Parameters
    ----------
    successes : int
        Successes, ``0 <= successes <= n``.
    n : int
        Trials, ``n >= 1``.
    confidence : float, default 0.95
        Two-sided confidence level, in ``(0, 1)``.

    Returns
    -------
    tuple of float
        ``(lower, upper)``, with ``0 <= lower <= successes / n <= upper <= 1``.

    Raises
    ------
    ValueError
        If ``n < 1``, ``successes`` is outside ``[0, n]`` or ``confidence`` outside ``(0, 1)``.

    Examples
    --------
    Newcombe (1998), Table I: 81/263 gives 0.2553 to 0.3662, 0/20 gives 0 to 0.1611.

    >>> [round(bound, 4) for bound in wilson_interval(successes=81, n=263)]
    [0.2553, 0.3662]
    >>> [round(bound, 4) for bound in wilson_interval(successes=0, n=20)]
    [0.0, 0.1611]
    >>> [round(bound, 4) for bound in wilson_interval(successes=20, n=20, confidence=0.99)]
    [0.7509, 1.0]
    """
    if n < 1:
        raise ValueError(f"n={n} must be at least 1")
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must be in [0, n={n}]")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    z = ndtri((1.0 + confidence) / 2.0)
    p = successes / n
    z2_n = z * z / n
    centre = (p + z2_n / 2.0) / (1.0 + z2_n)
    halfwidth = z / (1.0 + z2_n) * math.sqrt(p * (1.0 - p) / n + z2_n / (4.0 * n))
    lower = 0.0 if successes == 0 else min(max(centre - halfwidth, 0.0), p)
    upper = 1.0 if successes == n else max(min(centre + halfwidth, 1.0), p)
    return lower, upper


def proportion(*, successes: int, n: int, confidence: float = CONFIDENCE) -> Proportion:
    """The proportion ``successes / n`` with its Wilson interval.

    Parameters
    ----------
    successes : int
        Successes, ``0 <= successes <= n``.
    n : int
        Trials, ``n >= 1``.
    confidence : float, default 0.95
        Two-sided confidence level of the interval.

    Returns
    -------
    Proportion
        Value, interval and counts.

    Raises
    ------
    ValueError
        As :func:`wilson_interval`.

    Examples
    --------
    >>> proportion(successes=1, n=1).upper
    1.0
    """
    successes, n = int(successes), int(n)
    lower, upper = wilson_interval(successes=successes, n=n, confidence=confidence)
    return Proportion(value=successes / n, lower=lower, upper=upper, successes=successes, n=n)


def newcombe_difference_interval(
    *, successes_1: int, n_1: int, successes_2: int, n_2: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``p1 - p2`` for two independent proportions.

    Method 10 of R. G. Newcombe (1998), Interval estimation for the difference between
    independent proportions, Statistics in Medicine 17, 873-890: each proportion's Wilson score
    interval ``(l_i, u_i)``, then ``p1 - p2 - sqrt((p1 - l1)**2 + (u2 - p2)**2)`` to
    ``p1 - p2 + sqrt((u1 - p1)**2 + (p2 - l2)**2)``.

    Examples
    --------
    Newcombe (1998), Table II, example (a): 56/70 against 48/80 gives 0.0524 to 0.3339.

    >>> low, high = newcombe_difference_interval(successes_1=56, n_1=70, successes_2=48, n_2=80)
    >>> round(low, 4), round(high, 4)
    (0.0524, 0.3339)
    """
    l1, u1 = wilson_interval(successes=successes_1, n=n_1, confidence=confidence)
    l2, u2 = wilson_interval(successes=successes_2, n=n_2, confidence=confidence)
    p1, p2 = successes_1 / n_1, successes_2 / n_2
    delta = p1 - p2
    return (
        delta - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        delta + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )
