"""Model performance of a window: metrics over its labelled predictions, label health, and
the accuracy estimated from scores alone (CBPE). Pure: rows in, domain values out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from monitor.config import ModelConfig, ThresholdConfig
from monitor.config.schema import StatisticName
from monitor.domain import LabelHealth, Performance, Status
from monitor.evaluation import levels
from monitor.evaluation.labelled import Labelled, score_rows
from monitor.stats.performance import (
    Calibration,
    classification_metrics_of_codes,
    estimate_accuracy,
    fit_calibration,
    regression_metrics,
)
from monitor.stats.performance.null import LabelledSample
from monitor.thresholds import worst_status


def label_health(*, predictions: int, pairs: Labelled, unmatched: int) -> LabelHealth:
    """Coverage is labelled / predictions in the window; delay is label time minus prediction
    time over the labelled ones (negative delays, labels stamped before their prediction, are
    kept as they are)."""
    labelled = len(pairs)
    p50 = p90 = p99 = None
    if labelled:
        delays = pairs.label_ts - pairs.prediction_ts
        p50, p90, p99 = (float(v) for v in np.quantile(delays, [0.5, 0.9, 0.99]))
    return LabelHealth(
        predictions=predictions,
        labelled=labelled,
        coverage=labelled / predictions if predictions else None,
        delay_seconds_p50=p50,
        delay_seconds_p90=p90,
        delay_seconds_p99=p99,
        unmatched=unmatched,
    )


def score_matrix(scores: Sequence[bytes | None], classes: Sequence[str]) -> np.ndarray | None:
    """Stored score objects as an (n, classes) array; None unless every row has every class.

    >>> from monitor.codec import encode
    >>> stored = [encode({"a": 0.25, "b": 0.75}), encode({"b": 1, "a": 0})]
    >>> score_matrix(stored, ["a", "b"]).tolist()
    [[0.25, 0.75], [0.0, 1.0]]
    """
    if not scores or any(blob is None for blob in scores):
        return None
    matrix = score_rows(scores, classes)
    return None if bool(np.isnan(matrix).any()) else matrix


def calibrate(
    model: ModelConfig, labels: Sequence[Any], scores: Sequence[bytes | None]
) -> Calibration | None:
    """Calibration for the estimate, from the reference records that have a label and scores."""
    if model.task != "classification" or not model.classes:
        return None
    pairs = [(y, s) for y, s in zip(labels, scores, strict=True) if y is not None and s]
    matrix = score_matrix([s for _, s in pairs], model.classes)
    if matrix is None or len(pairs) < model.min_samples:
        return None
    return fit_calibration(matrix, [y for y, _ in pairs], classes=model.classes)


def evaluate_performance(
    model: ModelConfig,
    *,
    pairs: Labelled,
    calibration: Calibration | None,
    window_predictions: Sequence[Any] | None,
    window_scores: Sequence[bytes | None] | None,
    reference_accuracy: tuple[float, int] | None = None,
    reference_labelled: LabelledSample | None = None,
    cache: dict[Any, Any] | None = None,
) -> Performance:
    """Metrics over the window's labelled predictions (``pairs``); the estimate over the whole
    window's predictions and scores when a calibration exists. ``auto`` levels are resolved
    around the reference's accuracy and its labelled predictions (``cache``: the reference's
    ``null_cache``)."""
    n = len(pairs)
    metrics: dict[str, float | None] = {}
    intervals: dict[str, tuple[float, float]] = {}
    per_class: dict[str, dict[str, float | None]] = {}
    confusion: tuple[tuple[int, ...], ...] | None = None
    resolved: dict[str, dict[str, float | int | None]] = {}
    estimate = None
    scored = 0
    classes = list(model.classes or ())
    if calibration is not None and window_predictions and window_scores:
        matrix = score_matrix(window_scores, classes)
        if matrix is not None:
            estimate = estimate_accuracy(calibration, matrix, y_pred=list(window_predictions))
            metrics["estimated_accuracy"] = estimate.value
            scored = len(matrix)

    def thresholds_for(names: Sequence[str]) -> dict[StatisticName, ThresholdConfig]:
        """The model's thresholds of ``names``, ``auto`` levels resolved for this window."""
        found: dict[StatisticName, ThresholdConfig] = {}
        for name in names:
            statistic = cast("StatisticName", name)
            threshold = model.thresholds.get(statistic)
            if threshold is None:
                continue
            size = scored if statistic == "estimated_accuracy" else n
            found[statistic], auto = levels.resolve(
                model,
                statistic,
                threshold,
                n=size,
                accuracy=reference_accuracy,
                labelled=reference_labelled,
                calibration=calibration,
                cache=cache,
            )
            if auto is not None:
                resolved[statistic] = auto.to_dict()
        return found

    status: Status = "insufficient"
    if n >= model.min_samples:
        if model.task == "classification":
            result = classification_metrics_of_codes(
                true_codes=pairs.actual,
                pred_codes=pairs.predicted,
                classes=classes,
                scores=pairs.complete_scores(),
            )
            metrics.update(
                accuracy=result.accuracy.value,
                precision=result.macro_precision,
                recall=result.macro_recall,
                f1=result.macro_f1,
                roc_auc=result.roc_auc,
                average_precision=result.average_precision,
                log_loss=result.log_loss,
            )
            intervals["accuracy"] = (result.accuracy.lower, result.accuracy.upper)
            for name in classes:
                precision, recall = result.precision[name], result.recall[name]
                per_class[name] = {
                    "precision": None if precision is None else precision.value,
                    "recall": None if recall is None else recall.value,
                    "f1": result.f1[name],
                }
            confusion = result.confusion_matrix
        else:
            regression = regression_metrics(
                y_true=np.asarray(pairs.actual, dtype=np.float64),
                y_pred=np.asarray(pairs.predicted, dtype=np.float64),
            )
            metrics.update(
                mae=regression.mae, rmse=regression.rmse, mape=regression.mape, r2=regression.r2
            )
        status = worst_status(metrics, thresholds_for(list(metrics)))
    elif estimate is not None:
        status = worst_status(
            {"estimated_accuracy": estimate.value}, thresholds_for(["estimated_accuracy"])
        )
    return Performance(
        status=status,
        n=n,
        metrics=metrics,
        intervals=intervals,
        per_class=per_class,
        confusion_matrix=confusion,
        estimated_accuracy=None if estimate is None else estimate.value,
        estimated_accuracy_standard_error=None if estimate is None else estimate.standard_error,
        levels=resolved,
    )
