"""Reproduce a stored evaluation from the stored data, and say what differs.

An evaluation's lineage (``domain.Lineage``) records what it compared. ``reproduce`` checks
each input again (the config's digest against the config given now; the reference's digest
against its stored records; the window's records and labelled predictions), evaluates again as
of the same time with the same reference version and the same path (exact or histograms),
and compares the results part by part. Parts:

* inputs: ``config``, ``reference``, ``window``, ``model_versions``;
* results: ``status``, ``drifted_share``, ``features``, ``outputs``, ``performance``,
  ``labels`` (without ``unmatched``, a count of the labels stored now, not in the window),
  ``versions`` (canary against stable), ``segments`` and ``fairness`` (a label corrected
  under the window can move them alone: the whole window's confusion matrix may not change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.config import ModelConfig
from monitor.config.digest import config_digest
from monitor.domain import ReferenceBatch
from monitor.evaluation.document import to_document
from monitor.ingest.reference import digest_batch
from monitor.jobs.evaluate import DriftEvaluator
from monitor.storage import windows
from monitor.storage.evaluations import stored_evaluation

RESULT_PARTS = (
    "status",
    "drifted_share",
    "features",
    "outputs",
    "performance",
    "labels",
    "versions",
    "segments",
    "fairness",
)


class EvaluationNotFound(LookupError):
    def __init__(self, model: str, evaluation_id: int) -> None:
        super().__init__(f"model {model!r} has no stored evaluation {evaluation_id}")


class NoLineage(ValueError):
    def __init__(self, evaluation_id: int) -> None:
        super().__init__(
            f"evaluation {evaluation_id} was stored without its lineage (before drift-monitor"
            " recorded it): it cannot be reproduced"
        )


@dataclass(frozen=True, slots=True)
class Reproduction:
    evaluation_id: int
    #: part -> (as stored, as reproduced), for the parts that differ
    differences: dict[str, tuple[Any, Any]]
    monitor_versions: tuple[str, str]  # (recorded by, reproduced by)

    @property
    def identical(self) -> bool:
        return not self.differences

    def to_document(self) -> dict[str, Any]:
        return {
            "evaluation": self.evaluation_id,
            "identical": self.identical,
            "differs": list(self.differences),
            "differences": {
                part: {"stored": stored, "reproduced": reproduced}
                for part, (stored, reproduced) in self.differences.items()
            },
            "monitor_version": {
                "recorded": self.monitor_versions[0],
                "reproduced": self.monitor_versions[1],
            },
        }


def reproduce(evaluator: DriftEvaluator, config: ModelConfig, evaluation_id: int) -> Reproduction:
    """Evaluate ``config``'s model again as stored evaluation ``evaluation_id`` was made."""
    model = config.name
    with evaluator.database.read() as connection:
        found = stored_evaluation(connection, model=model, evaluation_id=evaluation_id)
        if found is None:
            raise EvaluationNotFound(model, evaluation_id)
        (at, start, end), stored = found
        lineage = stored.get("lineage")
        if lineage is None:
            raise NoLineage(evaluation_id)
        reference_version = lineage["reference"]["version"]
        reference_digest = None
        if reference_version:
            reference_digest = _reference_digest(connection, config, reference_version)
    again = to_document(
        evaluator.compute(
            config,
            now=at,
            reference_version=reference_version or None,
            # made before the model had a reference (none uploaded, or not yet its first
            # records): none now either, not one stored since
            without_reference=reference_version is None and not _previous_window(config),
            exact=lineage["window"]["digest"] is not None,
            records_bounds=None if config.window.records is None else (start, end),
        )
    )
    redo = again["lineage"]
    differences: dict[str, tuple[Any, Any]] = {}

    def compare(part: str, before: Any, after: Any) -> None:
        if before != after:
            differences[part] = (before, after)

    compare("config", lineage["config_digest"], config_digest(config))
    if reference_version:
        compare("reference", lineage["reference"]["digest"], reference_digest)
    compare("window", lineage["window"], redo["window"])
    compare("model_versions", lineage["model_versions"], redo["model_versions"])
    for part in RESULT_PARTS:
        compare(part, _result(stored, part), _result(again, part))
    return Reproduction(
        evaluation_id, differences, (lineage["monitor_version"], redo["monitor_version"])
    )


def _previous_window(config: ModelConfig) -> bool:
    return config.reference is not None and config.reference.previous_window


def _result(document: dict[str, Any], part: str) -> Any:
    value = document.get(part)
    if part == "labels" and value is not None:
        return {k: v for k, v in value.items() if k != "unmatched"}
    return value


def _reference_digest(connection: Any, config: ModelConfig, version: int) -> str | None:
    """The digest of reference ``version`` recomputed from its stored records (None when the
    version is not stored any more)."""
    regression = config.task == "regression"
    rows = windows.reference_rows(
        connection, model=config.name, version=version, regression=regression
    )
    if not len(rows):
        return None
    return digest_batch(
        ReferenceBatch(
            features=rows.features,
            prediction_classes=[None if regression else p for p in rows.predictions],
            prediction_values=[p if regression else None for p in rows.predictions],
            label_classes=[None if regression else label for label in rows.labels],
            label_values=[label if regression else None for label in rows.labels],
            scores=rows.scores,
        )
    )
