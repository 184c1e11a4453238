"""An Evaluation as a JSON document: what the API answers and what the store keeps."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from monitor.domain import (
    CanaryComparison,
    Evaluation,
    FeatureDrift,
    FeatureFairness,
    LabelHealth,
    Lineage,
    Performance,
    SegmentResult,
    Status,
    VersionSummary,
    Window,
)
from monitor.timestamps import parse as parse_rfc3339
from monitor.timestamps import written as rfc3339


def to_document(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "model": evaluation.model,
        "evaluated_at": rfc3339(evaluation.evaluated_at),
        "status": evaluation.status,
        "window": {
            "start": rfc3339(evaluation.window.start),
            "end": rfc3339(evaluation.window.end),
            "n": evaluation.window.n,
        },
        "reference": {"version": evaluation.reference_version, "n": evaluation.reference_n},
        "drifted_share": evaluation.drifted_share,
        "duration_seconds": evaluation.duration_seconds,
        "features": {f.name: _feature(f) for f in evaluation.features},
        "outputs": {f.name: _feature(f) for f in evaluation.outputs},
        "performance": None
        if evaluation.performance is None
        else _performance(evaluation.performance),
        "labels": None if evaluation.labels is None else dataclasses.asdict(evaluation.labels),
        "lineage": None if evaluation.lineage is None else lineage_document(evaluation),
        "versions": None if evaluation.canary is None else canary_document(evaluation.canary),
        **_groups(evaluation),
    }


# --- segments and fairness: present only for a model that declares them ---------------------


def _groups(evaluation: Evaluation) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if evaluation.segments:
        segments: dict[str, dict[str, Any]] = {}
        for result in evaluation.segments:
            segment = segments.setdefault(result.segment, {"feature": result.feature, "values": {}})
            if result.refused is not None:
                segment["refused"] = result.refused
                continue
            segment["values"][result.value] = {
                "status": result.status,
                "n": result.n,
                "drifted_share": result.drifted_share,
                "features": {f.name: _feature(f) for f in result.features},
                "outputs": {f.name: _feature(f) for f in result.outputs},
                "performance": None
                if result.performance is None
                else _performance(result.performance),
            }
        body["segments"] = segments
    if evaluation.fairness:
        body["fairness"] = {
            f.feature: {
                "status": f.status,
                **f.metrics,
                "groups": {group: dict(rates) for group, rates in f.groups.items()},
            }
            for f in evaluation.fairness
        }
    return body


def _groups_from(document: dict[str, Any]) -> dict[str, Any]:
    segments: list[SegmentResult] = []
    for name, segment in (document.get("segments") or {}).items():
        if "refused" in segment:
            segments.append(
                SegmentResult(
                    name,
                    segment["feature"],
                    "__other__",
                    "insufficient",
                    0,
                    (),
                    (),
                    None,
                    None,
                    segment["refused"],
                )
            )
        for value, body in segment["values"].items():
            segments.append(
                SegmentResult(
                    segment=name,
                    feature=segment["feature"],
                    value=value,
                    status=cast(Status, body["status"]),
                    n=body["n"],
                    features=_features_from(body["features"]),
                    outputs=_features_from(body["outputs"]),
                    drifted_share=body["drifted_share"],
                    performance=None
                    if body["performance"] is None
                    else _performance_from(body["performance"]),
                )
            )
    fairness = tuple(
        FeatureFairness(
            feature=feature,
            status=cast(Status, body["status"]),
            groups=body["groups"],
            metrics={k: v for k, v in body.items() if k not in ("status", "groups")},
        )
        for feature, body in (document.get("fairness") or {}).items()
    )
    return {
        "segments": tuple(segments),
        "fairness": fairness,
    }


def _performance(performance: Performance) -> dict[str, Any]:
    body: dict[str, Any] = {"status": performance.status, "n": performance.n}
    body.update(performance.metrics)
    for name, (lower, upper) in performance.intervals.items():
        body[f"{name}_lower"] = lower
        body[f"{name}_upper"] = upper
    if performance.per_class:
        body["per_class"] = {k: dict(v) for k, v in performance.per_class.items()}
    if performance.confusion_matrix is not None:
        body["confusion_matrix"] = [list(row) for row in performance.confusion_matrix]
    body["estimated_accuracy"] = performance.estimated_accuracy
    body["estimated_accuracy_standard_error"] = performance.estimated_accuracy_standard_error
    if performance.levels:
        body["thresholds"] = {k: dict(v) for k, v in performance.levels.items()}
    return body


_PERFORMANCE_FIXED = (
    "status",
    "n",
    "per_class",
    "confusion_matrix",
    "estimated_accuracy",
    "estimated_accuracy_standard_error",
    "thresholds",
)


def _performance_from(body: dict[str, Any]) -> Performance:
    intervals = {
        key[: -len("_lower")]: (body[key], body[key[: -len("_lower")] + "_upper"])
        for key in body
        if key.endswith("_lower")
    }
    metrics = {
        key: value
        for key, value in body.items()
        if key not in _PERFORMANCE_FIXED and not key.endswith(("_lower", "_upper"))
    }
    if body.get("estimated_accuracy") is not None:
        metrics["estimated_accuracy"] = body["estimated_accuracy"]
    matrix = body.get("confusion_matrix")
    return Performance(
        status=cast(Status, body["status"]),
        n=body["n"],
        metrics=metrics,
        intervals=intervals,
        per_class=body.get("per_class", {}),
        confusion_matrix=None if matrix is None else tuple(tuple(row) for row in matrix),
        estimated_accuracy=body.get("estimated_accuracy"),
        estimated_accuracy_standard_error=body.get("estimated_accuracy_standard_error"),
        levels=body.get("thresholds", {}),
    )


def _feature(drift: FeatureDrift) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": drift.kind,
        "status": drift.status,
        "n": drift.n,
        "missing": drift.missing,
    }
    body.update(drift.statistics)
    if drift.kind == "numeric" and drift.statistics.get("ks_statistic") is not None:
        body["exact"] = drift.exact
        body["ks_bound"] = drift.ks_bound
    if drift.levels:  # auto rules' levels, as resolved for this window's n
        body["thresholds"] = {k: dict(v) for k, v in drift.levels.items()}
    return body


_FIXED = ("type", "status", "n", "missing", "exact", "ks_bound", "thresholds")


def _features_from(items: dict[str, dict[str, Any]]) -> tuple[FeatureDrift, ...]:
    return tuple(
        FeatureDrift(
            name=name,
            kind=body["type"],
            status=cast(Status, body["status"]),
            n=body["n"],
            missing=body["missing"],
            statistics={k: v for k, v in body.items() if k not in _FIXED},
            exact=body.get("exact", True),
            ks_bound=body.get("ks_bound"),
            levels=body.get("thresholds", {}),
        )
        for name, body in items.items()
    )


def from_document(document: dict[str, Any]) -> Evaluation:
    features = _features_from
    window = document["window"]
    return Evaluation(
        model=document["model"],
        evaluated_at=parse_rfc3339(document["evaluated_at"]),
        window=Window(parse_rfc3339(window["start"]), parse_rfc3339(window["end"]), window["n"]),
        reference_version=document["reference"]["version"],
        reference_n=document["reference"]["n"],
        features=features(document["features"]),
        outputs=features(document["outputs"]),
        drifted_share=document["drifted_share"],
        status=cast(Status, document["status"]),
        duration_seconds=document["duration_seconds"],
        performance=None
        if document.get("performance") is None
        else _performance_from(document["performance"]),
        labels=None if document.get("labels") is None else LabelHealth(**document["labels"]),
        lineage=_lineage_from(document.get("lineage")),
        canary=_canary_from(document.get("versions")),
        **_groups_from(document),
    )


# -- lineage (issue 16, item 4) --------------------------------------------------------------


def lineage_document(evaluation: Evaluation) -> dict[str, Any]:
    """What the evaluation compared: config, reference, window, model versions, monitor."""
    lineage = evaluation.lineage
    assert lineage is not None
    return {
        "config_digest": lineage.config_digest,
        "reference": {"version": lineage.reference_version, "digest": lineage.reference_digest},
        "window": {
            "start": rfc3339(evaluation.window.start),
            "end": rfc3339(evaluation.window.end),
            "n": lineage.window_n,
            "labelled": lineage.labelled,
            "digest": lineage.window_digest,
        },
        "model_versions": dict(lineage.model_versions),
        "monitor_version": lineage.monitor_version,
    }


def _lineage_from(body: dict[str, Any] | None) -> Lineage | None:
    if body is None:
        return None
    return Lineage(
        config_digest=body["config_digest"],
        reference_version=body["reference"]["version"],
        reference_digest=body["reference"]["digest"],
        window_n=body["window"]["n"],
        window_digest=body["window"]["digest"],
        labelled=body["window"]["labelled"],
        model_versions=dict(body["model_versions"]),
        monitor_version=body["monitor_version"],
    )


# -- model versions: canary against stable (issue 16, item 3) ---------------------------------


def canary_document(canary: CanaryComparison) -> dict[str, Any]:
    """``versions`` of the evaluation JSON: each version against the reference, and the canary
    against the stable version."""
    return {
        "stable": _version(canary.stable),
        "canary": _version(canary.canary),
        "canary_vs_stable": {
            "status": canary.status,
            "features": {f.name: _feature(f) for f in canary.drift},
            "accuracy_delta": canary.accuracy_delta,
            "accuracy_delta_lower": canary.accuracy_delta_lower,
            "accuracy_delta_upper": canary.accuracy_delta_upper,
        },
    }


def _canary_from(body: dict[str, Any] | None) -> CanaryComparison | None:
    if body is None:
        return None
    compared = body["canary_vs_stable"]
    return CanaryComparison(
        stable=_version_from(body["stable"]),
        canary=_version_from(body["canary"]),
        drift=_features_from(compared["features"]),
        status=cast(Status, compared["status"]),
        accuracy_delta=compared["accuracy_delta"],
        accuracy_delta_lower=compared["accuracy_delta_lower"],
        accuracy_delta_upper=compared["accuracy_delta_upper"],
    )


def _version(summary: VersionSummary) -> dict[str, Any]:
    """One version's entry: its drift and accuracy, and its ``performance`` written as the
    whole window's."""
    return {
        "version": summary.version,
        "n": summary.n,
        "status": summary.status,
        "drifted_share": summary.drifted_share,
        "psi": dict(summary.psi),
        "labelled": summary.labelled,
        "accuracy": summary.accuracy,
        "performance": None if summary.performance is None else _performance(summary.performance),
    }


def _version_from(body: dict[str, Any]) -> VersionSummary:
    performance = body.get("performance")  # absent from documents stored before it was
    return VersionSummary(
        version=body["version"],
        n=body["n"],
        status=cast(Status, body["status"]),
        drifted_share=body["drifted_share"],
        psi=dict(body["psi"]),
        labelled=body["labelled"],
        accuracy=body["accuracy"],
        performance=None if performance is None else _performance_from(performance),
    )
