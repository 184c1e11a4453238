"""An Evaluation as a JSON document: what the API answers and what the store keeps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from monitor.domain import Evaluation, FeatureDrift, Status, Window


def rfc3339(seconds: float) -> str:
    """Unix seconds as an RFC 3339 UTC date-time.

    >>> rfc3339(0.5)
    '1970-01-01T00:00:00.500000Z'
    """
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


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
    }


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
    return body


_FIXED = ("type", "status", "n", "missing", "exact", "ks_bound")


def from_document(document: dict[str, Any]) -> Evaluation:
    def features(items: dict[str, dict[str, Any]]) -> tuple[FeatureDrift, ...]:
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
            )
            for name, body in items.items()
        )

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
    )
