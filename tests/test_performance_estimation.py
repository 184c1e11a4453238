"""Calibration equals scikit-learn's isotonic regression; CBPE tracks the realised accuracy.

The synthetic processes draw a "true" probability vector per prediction and the true class from
it, so the realised accuracy of any window is known exactly, and the estimate is judged in units
of its own standard error. Many seeds, fixed: the tests are deterministic.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.isotonic import IsotonicRegression

from monitor.stats.performance import (
    AccuracyEstimate,
    Calibration,
    IsotonicMap,
    calibrated_probabilities,
    calibrated_probability_of,
    estimate_accuracy,
    fit_calibration,
)

Floats = npt.NDArray[np.float64]
SEEDS = range(20)


def softmax(logits: Floats) -> Floats:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: Floats = exp / exp.sum(axis=1, keepdims=True)
    return result


def draw_classes(rng: np.random.Generator, probabilities: Floats) -> npt.NDArray[np.intp]:
    """One class per row, drawn from that row's probabilities."""
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random((len(probabilities), 1))
    codes: npt.NDArray[np.intp] = np.sum(draws > cumulative, axis=1, dtype=np.intp)
    capped: npt.NDArray[np.intp] = np.minimum(codes, probabilities.shape[1] - 1)
    return capped


def labels(classes: tuple[str, ...], codes: npt.NDArray[np.intp]) -> list[str]:
    return [classes[code] for code in codes]


def realised_accuracy(y_true: npt.NDArray[np.intp], y_pred: npt.NDArray[np.intp]) -> float:
    return float(np.mean(y_true == y_pred))


def z_score(estimate: AccuracyEstimate, realised: float) -> float:
    return (estimate.value - realised) / estimate.standard_error


# -- calibration maps -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 2])
def test_maps_equal_sklearn_isotonic_regression(seed: int, decimals: int | None) -> None:
    rng = np.random.default_rng(seed)
    classes = ("a", "b", "c", "d")
    true = softmax(rng.normal(size=(3000, 4)) * 1.5)
    codes = draw_classes(rng, true)
    scores = softmax(np.log(true) * rng.uniform(0.3, 3.0))  # mis-calibrated, order kept
    if decimals is not None:
        scores = np.round(scores, decimals)  # heavy ties
    calibration = fit_calibration(scores, labels(classes, codes), classes=classes)
    assert calibration.n == 3000 and calibration.classes == classes
    probe = np.concatenate((rng.random(2000), [0.0, 1.0], scores[:50, 0]))
    for code, isotonic in enumerate(calibration.maps):
        reference = IsotonicRegression(out_of_bounds="clip").fit(scores[:, code], codes == code)
        np.testing.assert_array_equal(isotonic.knots, reference.X_thresholds_)
        np.testing.assert_allclose(
            isotonic.probabilities, reference.y_thresholds_, rtol=0, atol=1e-12
        )
        np.testing.assert_allclose(
            isotonic.apply(probe), reference.predict(probe), rtol=0, atol=1e-12
        )


def test_binary_calibration_has_one_map_for_the_second_class() -> None:
    rng = np.random.default_rng(0)
    positive = rng.random(500)
    codes = (rng.random(500) < positive).astype(np.intp)
    scores = np.column_stack((1 - positive, positive))
    calibration = fit_calibration(scores, labels(("no", "yes"), codes), classes=("no", "yes"))
    assert len(calibration.maps) == 1
    reference = IsotonicRegression(out_of_bounds="clip").fit(positive, codes == 1)
    probe = rng.random(100)
    expected = reference.predict(probe)
    calibrated = calibrated_probabilities(calibration, np.column_stack((1 - probe, probe)))
    np.testing.assert_allclose(calibrated[:, 1], expected, atol=1e-12)
    np.testing.assert_allclose(calibrated[:, 0], 1 - expected, atol=1e-12)


def test_multiclass_probabilities_come_from_each_class_map_without_renormalising() -> None:
    ramp = IsotonicMap(knots=np.array([0.5, 1.0]), probabilities=np.array([0.0, 1.0]))
    flat = IsotonicMap(knots=np.array([0.0]), probabilities=np.array([0.3]))
    calibration = Calibration(classes=("a", "b", "c"), n=10, maps=(ramp, ramp, flat))
    scores = np.array([[0.75, 1.0, 0.5], [0.2, 0.3, 0.4]])
    calibrated = calibrated_probabilities(calibration, scores)
    np.testing.assert_allclose(calibrated, [[0.5, 1.0, 0.3], [0.0, 0.0, 0.3]])
    for codes in ([0, 2], [1, 1], [2, 0]):
        picked = calibrated_probability_of(calibration, scores, np.array(codes))
        np.testing.assert_array_equal(picked, calibrated[[0, 1], codes])
    # The estimate of the argmax predictions (b, then c): (1.0 + 0.3) / 2.
    assert estimate_accuracy(calibration, scores).value == pytest.approx(0.65)


def test_calibration_round_trips_through_json() -> None:
    rng = np.random.default_rng(1)
    scores = rng.dirichlet(np.ones(3), size=200)
    calibration = fit_calibration(
        scores, labels(("x", "y", "z"), draw_classes(rng, scores)), classes=("x", "y", "z")
    )
    restored = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert restored == calibration
    assert not restored.maps[0].knots.flags.writeable


@pytest.mark.parametrize(
    ("knots", "probabilities", "message"),
    [
        ([], [], "non-empty"),
        ([0.1, 0.2], [0.5], "equal length"),
        ([0.2, 0.2], [0.1, 0.5], "strictly increasing"),
        ([0.1, np.nan], [0.1, 0.5], "finite"),
        ([0.1, 0.2], [0.5, 0.1], "non-decreasing"),
        ([0.1, 0.2], [0.5, 1.5], r"\[0, 1\]"),
    ],
)
def test_invalid_maps_are_refused(
    knots: list[float], probabilities: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        IsotonicMap(knots=np.array(knots, dtype=np.float64), probabilities=np.array(probabilities))


def test_invalid_calibration_inputs_are_refused() -> None:
    ramp = IsotonicMap(knots=np.array([0.0]), probabilities=np.array([0.5]))
    with pytest.raises(ValueError, match="need 1 maps"):
        Calibration(classes=("a", "b"), n=5, maps=(ramp, ramp))
    with pytest.raises(ValueError, match="no labelled predictions"):
        fit_calibration(np.empty((0, 2)), [], classes=("a", "b"))
    with pytest.raises(ValueError, match="shape"):
        fit_calibration(np.full((2, 3), 0.3), ["a", "b"], classes=("a", "b"))
    calibration = Calibration(classes=("a", "b"), n=5, maps=(ramp,))
    with pytest.raises(ValueError, match="no predictions"):
        estimate_accuracy(calibration, np.empty((0, 2)))
    with pytest.raises(ValueError, match="y_pred has 1"):
        estimate_accuracy(calibration, np.full((2, 2), 0.5), y_pred=["a"])
    with pytest.raises(ValueError, match="not one of the classes"):
        estimate_accuracy(calibration, np.full((1, 2), 0.5), y_pred=["c"])


# -- confidence-based performance estimation ------------------------------------------------


def binary_process(
    rng: np.random.Generator, size: int, *, concentration: float = 1.0
) -> tuple[Floats, npt.NDArray[np.intp]]:
    """Calibrated binary scores: P(yes) ~ Beta(c, c) and the label drawn from it."""
    positive = rng.beta(concentration, concentration, size)
    return np.column_stack((1 - positive, positive)), (rng.random(size) < positive).astype(np.intp)


def multiclass_process(
    rng: np.random.Generator, size: int, *, spread: float = 1.5
) -> tuple[Floats, npt.NDArray[np.intp]]:
    """Calibrated 3-class scores: softmax of normal logits, the class drawn from them."""
    probabilities = softmax(rng.normal(size=(size, 3)) * spread)
    return probabilities, draw_classes(rng, probabilities)


def test_calibrated_binary_estimate_is_unbiased_within_its_standard_error() -> None:
    classes = ("no", "yes")
    z_scores = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        reference, reference_codes = binary_process(rng, 20_000)
        calibration = fit_calibration(reference, labels(classes, reference_codes), classes=classes)
        current, current_codes = binary_process(rng, 5_000)
        estimate = estimate_accuracy(calibration, current)
        assert estimate.n == 5_000
        z_scores.append(z_score(estimate, realised_accuracy(current_codes, current.argmax(1))))
    assert max(abs(z) for z in z_scores) < 4.0
    assert abs(np.mean(z_scores)) < 1.0  # the mean of 20 unit normals has sd 0.22


def test_calibrated_multiclass_estimate_is_unbiased_within_its_standard_error() -> None:
    classes = ("a", "b", "c")
    z_scores = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        reference, reference_codes = multiclass_process(rng, 20_000)
        calibration = fit_calibration(reference, labels(classes, reference_codes), classes=classes)
        current, current_codes = multiclass_process(rng, 5_000)
        estimate = estimate_accuracy(calibration, current)
        z_scores.append(z_score(estimate, realised_accuracy(current_codes, current.argmax(1))))
    assert max(abs(z) for z in z_scores) < 4.0
    assert abs(np.mean(z_scores)) < 1.0


def test_estimate_follows_covariate_shift() -> None:
    # The current inputs move to where the model is surer (scores nearer 0 and 1): the
    # accuracy rises from 0.75 to about 0.88, and the estimate follows without a label.
    classes = ("no", "yes")
    rng = np.random.default_rng(7)
    reference, reference_codes = binary_process(rng, 20_000)
    calibration = fit_calibration(reference, labels(classes, reference_codes), classes=classes)
    current, current_codes = binary_process(rng, 5_000, concentration=0.3)
    estimate = estimate_accuracy(calibration, current)
    realised = realised_accuracy(current_codes, current.argmax(1))
    reference_accuracy = realised_accuracy(reference_codes, reference.argmax(1))
    assert realised - reference_accuracy > 0.08
    assert abs(z_score(estimate, realised)) < 4.0


def test_calibration_corrects_an_overconfident_model() -> None:
    for classes, process in (
        (("no", "yes"), binary_process),
        (("a", "b", "c"), multiclass_process),
    ):
        rng = np.random.default_rng(3)
        true_reference, reference_codes = process(rng, 30_000)
        true_current, current_codes = process(rng, 5_000)
        # The model's scores are sharpened (temperature 1/3): same argmax, overconfident.
        reference = softmax(3.0 * np.log(true_reference))
        current = softmax(3.0 * np.log(true_current))
        calibration = fit_calibration(reference, labels(classes, reference_codes), classes=classes)
        estimate = estimate_accuracy(calibration, current)
        realised = realised_accuracy(current_codes, current.argmax(1))
        naive = float(np.mean(current.max(axis=1)))  # the scores taken at their word
        assert (naive - realised) / estimate.standard_error > 10.0
        assert abs(z_score(estimate, realised)) < 4.0


def test_given_predictions_replace_the_argmax() -> None:
    # The model predicts "yes" from P(yes) > 0.3, not the argmax: the estimate must be of
    # those predictions.
    classes = ("no", "yes")
    rng = np.random.default_rng(5)
    reference, reference_codes = binary_process(rng, 20_000)
    calibration = fit_calibration(reference, labels(classes, reference_codes), classes=classes)
    current, current_codes = binary_process(rng, 5_000)
    pred_codes = (current[:, 1] > 0.3).astype(np.intp)
    estimate = estimate_accuracy(calibration, current, y_pred=labels(classes, pred_codes))
    realised = realised_accuracy(current_codes, pred_codes)
    assert abs(z_score(estimate, realised)) < 4.0
    argmax_estimate = estimate_accuracy(calibration, current)
    assert (argmax_estimate.value - realised) / estimate.standard_error > 4.0
    as_argmax = estimate_accuracy(calibration, current, y_pred=labels(classes, current.argmax(1)))
    assert as_argmax == argmax_estimate


def test_concept_shift_is_invisible_to_the_estimate() -> None:
    # The documented limit: a quarter of the current labels no longer follow the scores. The
    # realised accuracy falls, the estimate stays where the reference put it.
    classes = ("no", "yes")
    rng = np.random.default_rng(9)
    reference, reference_codes = binary_process(rng, 20_000)
    calibration = fit_calibration(reference, labels(classes, reference_codes), classes=classes)
    current, current_codes = binary_process(rng, 5_000)
    flipped = rng.random(5_000) < 0.25
    current_codes = np.where(flipped, 1 - current_codes, current_codes)
    estimate = estimate_accuracy(calibration, current)
    realised = realised_accuracy(current_codes, current.argmax(1))
    assert (estimate.value - realised) / estimate.standard_error > 10.0


def test_estimate_by_hand() -> None:
    map_ = IsotonicMap(knots=np.array([0.0, 1.0]), probabilities=np.array([0.0, 1.0]))
    calibration = Calibration(classes=("no", "yes"), n=100, maps=(map_,))
    # Calibration is the identity: predictions "yes" at 0.9, "no" at 0.2 (right w.p. 0.8),
    # "yes" at 0.6: expected accuracy (0.9 + 0.8 + 0.6) / 3.
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]])
    estimate = estimate_accuracy(calibration, scores)
    assert estimate.value == pytest.approx(2.3 / 3)
    assert estimate.standard_error == pytest.approx(np.sqrt(0.09 + 0.16 + 0.24) / 3)


def test_scores_outside_the_reference_range_take_the_end_values() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibration = fit_calibration(
            np.array([[0.6, 0.4], [0.4, 0.6]]), ["no", "yes"], classes=("no", "yes")
        )
    calibrated = calibrated_probabilities(calibration, [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(calibrated, [[1.0, 0.0], [0.0, 1.0]])
