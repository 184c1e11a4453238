"""Probability calibration fitted on the labelled reference: isotonic regression per class.

A model's scores are calibrated when, among the predictions scored ``p`` for a class, a
fraction ``p`` truly are of that class. Confidence-based performance estimation
(:mod:`.estimation`) needs calibrated probabilities, so they are learned from the labelled
reference, as NannyML's CBPE does:

* For each class, the fraction of the class among reference rows is fitted as a
  non-decreasing function of that class's score by isotonic regression (pool adjacent
  violators, weighted least squares; ``scipy.optimize.isotonic_regression``). Tied scores are
  pooled first (exact equality). The map interpolates linearly between its knots and is
  constant beyond the reference's smallest and largest score. This is
  ``sklearn.isotonic.IsotonicRegression(out_of_bounds="clip")`` fitted on
  ``(scores[:, j], y_true == classes[j])``, except that scikit-learn also pools scores closer
  than ``1e-15``.
* Two classes: one map, for ``classes[1]`` on ``scores[:, 1]``; the calibrated probability of
  ``classes[0]`` is its complement. Three or more: one map per class (one-vs-rest), each
  giving ``P(y = c | scores[:, c])``.
* Unlike NannyML, multi-class rows are not divided by their sum, so they need not sum to one:
  the one-vs-rest calibrated probabilities have no reason to sum to one, and forcing them to
  moves every one of them. In simulations (3 and 5 classes, log-probabilities scaled by 3 or
  1/2 to make the model over- or under-confident, 30 000 reference and 5 000 current rows),
  dividing by the row sum made the bias of the accuracy estimate 1.4 to 6.6 times larger, e.g.
  +1.2 against +0.2 percentage points for 5 over-confident classes; for calibrated models it
  made no difference.

Isotonic regression assumes only that a higher score for a class does not mean a lower chance of
that class; it corrects over- and under-confidence of any monotone shape. It needs enough
reference rows per class (hundreds at least, thousands better): with few, the map is a coarse
staircase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.stats.performance._scipy import isotonic_regression
from monitor.stats.performance.labels import Labels, check_classes, encode_labels
from monitor.stats.performance.scoring import check_scores


@dataclass(frozen=True, slots=True)
class IsotonicMap:
    """A non-decreasing piecewise-linear map from a score to a calibrated probability.

    Attributes
    ----------
    knots : ndarray of float64
        Strictly increasing scores, at least one (read-only when built here).
    probabilities : ndarray of float64
        The calibrated probability at each knot: non-decreasing, in ``[0, 1]``.

    Examples
    --------
    >>> isotonic = IsotonicMap(knots=np.array([0.2, 0.6]), probabilities=np.array([0.0, 0.8]))
    >>> isotonic.apply(np.array([0.1, 0.4, 0.9]))
    array([0. , 0.4, 0.8])
    """

    knots: npt.NDArray[np.float64]
    probabilities: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        for name in ("knots", "probabilities"):
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype != np.float64:
                raise ValueError(f"{name} must be a 1-D float64 array")
        knots, probabilities = self.knots, self.probabilities
        if knots.size == 0 or knots.size != probabilities.size:
            raise ValueError("knots and probabilities must be non-empty and of equal length")
        if not (np.all(np.isfinite(knots)) and np.all(knots[1:] > knots[:-1])):
            raise ValueError("knots must be finite and strictly increasing")
        if not (np.all(probabilities >= 0.0) and np.all(probabilities <= 1.0)):
            raise ValueError("probabilities must be in [0, 1]")
        if np.any(probabilities[1:] < probabilities[:-1]):
            raise ValueError("probabilities must be non-decreasing")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IsotonicMap):
            return NotImplemented
        return np.array_equal(self.knots, other.knots) and np.array_equal(
            self.probabilities, other.probabilities
        )

    def apply(self, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Calibrated probabilities of ``scores``: linear between knots, constant beyond them."""
        return np.interp(scores, self.knots, self.probabilities)


@dataclass(frozen=True, slots=True)
class Calibration:
    """Per-class isotonic calibration maps fitted on a labelled reference.

    Attributes
    ----------
    classes : tuple of str
        The configured classes, in configuration order (the scores' column order).
    n : int
        Labelled reference predictions the maps were fitted on.
    maps : tuple of IsotonicMap
        Two classes: one map, for ``classes[1]`` on ``scores[:, 1]``. More: one map per class,
        in ``classes`` order, on that class's column.

    Examples
    --------
    >>> calibration = fit_calibration(
    ...     np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]]),
    ...     ["no", "yes", "no", "yes"],
    ...     classes=["no", "yes"],
    ... )
    >>> Calibration.from_dict(calibration.to_dict()) == calibration
    True
    """

    classes: tuple[str, ...]
    n: int
    maps: tuple[IsotonicMap, ...]

    def __post_init__(self) -> None:
        check_classes(self.classes)
        expected = 1 if len(self.classes) == 2 else len(self.classes)
        if len(self.maps) != expected:
            raise ValueError(f"{len(self.classes)} classes need {expected} maps")
        if self.n < 1:
            raise ValueError(f"n={self.n} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, numbers and strings, for the caller to store (e.g. as JSON)."""
        return {
            "classes": list(self.classes),
            "n": self.n,
            "maps": [
                {"knots": m.knots.tolist(), "probabilities": m.probabilities.tolist()}
                for m in self.maps
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """The calibration :meth:`to_dict` described, validated.

        Raises
        ------
        ValueError
            If the maps or classes are invalid.
        KeyError
            If a key is missing.
        """
        return cls(
            classes=tuple(str(label) for label in data["classes"]),
            n=int(data["n"]),
            maps=tuple(
                _read_only_map(
                    np.array(m["knots"], dtype=np.float64),
                    np.array(m["probabilities"], dtype=np.float64),
                )
                for m in data["maps"]
            ),
        )


def fit_calibration(
    scores: npt.ArrayLike, y_true: Labels, *, classes: Sequence[str]
) -> Calibration:
    """Fit the per-class isotonic calibration on the labelled reference.

    Parameters
    ----------
    scores : array_like of float
        Reference scores, shape ``(n, len(classes))``, columns in ``classes`` order, in
        ``[0, 1]``.
    y_true : sequence of str
        The reference's true classes, ``n`` of them, ``n >= 1``.
    classes : sequence of str
        The configured classes, at least two, distinct.

    Returns
    -------
    Calibration
        The maps, as the module docstring defines them.

    Raises
    ------
    ValueError
        If the reference is empty, the lengths or shapes differ, a label is not a configured
        class, or a score is outside ``[0, 1]``.

    Examples
    --------
    An over-confident model: scores of 0.9 are right only half of the time, and so on.

    >>> calibration = fit_calibration(
    ...     np.array([[0.1, 0.9], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8], [0.9, 0.1], [0.9, 0.1]]),
    ...     ["yes", "no", "yes", "no", "no", "no"],
    ...     classes=["no", "yes"],
    ... )
    >>> calibration.maps[0].knots, calibration.maps[0].probabilities
    (array([0.1, 0.2, 0.9]), array([0. , 0.5, 0.5]))
    """
    classes = check_classes(classes)
    true_codes = encode_labels(y_true, classes=classes)
    if true_codes.size == 0:
        raise ValueError("the reference has no labelled predictions")
    checked = check_scores(scores, n=true_codes.size, n_classes=len(classes))
    columns = [1] if len(classes) == 2 else range(len(classes))
    return Calibration(
        classes=classes,
        n=int(true_codes.size),
        maps=tuple(_fit_isotonic(checked[:, code], true_codes == code) for code in columns),
    )


def calibrated_probabilities(
    calibration: Calibration, scores: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Calibrated probability of each class, from that class's own score.

    Parameters
    ----------
    calibration : Calibration
        Fitted on the reference by :func:`fit_calibration`.
    scores : array_like of float
        Shape ``(m, len(calibration.classes))``, in ``[0, 1]``.

    Returns
    -------
    ndarray of float64
        Shape ``(m, k)``. Two classes: ``[1 - f(s_1), f(s_1)]``, rows summing to one. More:
        column ``c`` is ``f_c(scores[:, c])``, and rows need not sum to one (module docstring).

    Raises
    ------
    ValueError
        If ``scores`` has the wrong shape or a value outside ``[0, 1]``.

    Examples
    --------
    >>> calibration = Calibration(
    ...     classes=("no", "yes"),
    ...     n=10,
    ...     maps=(IsotonicMap(knots=np.array([0.0, 1.0]), probabilities=np.array([0.2, 0.6])),),
    ... )
    >>> calibrated_probabilities(calibration, [[0.5, 0.5], [0.0, 1.0]])
    array([[0.6, 0.4],
           [0.4, 0.6]])
    """
    checked = check_scores(scores, n=None, n_classes=len(calibration.classes))
    if len(calibration.classes) == 2:
        positive = calibration.maps[0].apply(checked[:, 1])
        return np.column_stack((1.0 - positive, positive))
    return np.column_stack(
        [isotonic.apply(checked[:, code]) for code, isotonic in enumerate(calibration.maps)]
    )


def calibrated_probability_of(
    calibration: Calibration, scores: npt.ArrayLike, codes: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    """``calibrated_probabilities(calibration, scores)[i, codes[i]]``, one map call per row.

    Parameters
    ----------
    calibration : Calibration
        Fitted on the reference by :func:`fit_calibration`.
    scores : array_like of float
        Shape ``(m, len(calibration.classes))``, in ``[0, 1]``.
    codes : ndarray of intp
        One class code per row, e.g. the predicted class.

    Returns
    -------
    ndarray of float64
        The calibrated probability of the class ``codes[i]`` for each row ``i``.

    Raises
    ------
    ValueError
        If ``scores`` has the wrong shape or a value outside ``[0, 1]``, or ``codes`` another
        length.

    Examples
    --------
    >>> ramp = IsotonicMap(knots=np.array([0.0, 1.0]), probabilities=np.array([0.0, 1.0]))
    >>> calibration = Calibration(classes=("a", "b", "c"), n=10, maps=(ramp, ramp, ramp))
    >>> calibrated_probability_of(calibration, [[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]], np.array([0, 1]))
    array([0.7, 0.3])
    """
    checked = check_scores(scores, n=None, n_classes=len(calibration.classes))
    if codes.shape != (checked.shape[0],):
        raise ValueError(f"scores has {checked.shape[0]} rows but there are {codes.size} codes")
    if len(calibration.classes) == 2:
        positive = calibration.maps[0].apply(checked[:, 1])
        return np.where(codes == 1, positive, 1.0 - positive)
    probabilities = np.empty(codes.size, dtype=np.float64)
    for code, isotonic in enumerate(calibration.maps):
        rows = codes == code
        probabilities[rows] = isotonic.apply(checked[rows, code])
    return probabilities


def _fit_isotonic(scores: npt.NDArray[np.float64], positive: npt.NDArray[np.bool_]) -> IsotonicMap:
    order = np.argsort(scores)
    sorted_scores = scores[order]
    is_first = np.empty(scores.size, dtype=np.bool_)
    is_first[0] = True
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=is_first[1:])
    first = np.flatnonzero(is_first)
    tied = np.diff(first, append=scores.size).astype(np.float64)
    positives = np.add.reduceat(positive[order].astype(np.float64), first)
    fitted = np.clip(isotonic_regression(positives / tied, tied), 0.0, 1.0)
    # Inside a run of equal fitted values only its two ends shape the interpolation.
    keep = np.ones(fitted.size, dtype=np.bool_)
    keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
    return _read_only_map(sorted_scores[first][keep], fitted[keep])


def _read_only_map(
    knots: npt.NDArray[np.float64], probabilities: npt.NDArray[np.float64]
) -> IsotonicMap:
    knots.setflags(write=False)
    probabilities.setflags(write=False)
    return IsotonicMap(knots=knots, probabilities=probabilities)
