"""``monitor calibrate``: each model's report (``evaluation.calibrate``) against its reference in
the configured store, as JSON-ready dicts and as text."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from monitor.config import Config, ModelConfig
from monitor.evaluation import calibrate


def model_report(
    config: Config, models: Sequence[ModelConfig], *, n: int | None, database: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """(a report per model that has a reference, the problems of the others)."""
    from monitor.service import Service
    from monitor.storage import create_database_engine

    engine = create_database_engine(database) if database else None
    service = Service(config, engine=engine)
    service.start(run_jobs=False)  # migrates, loads reference files
    reports: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        for model in models:
            with service.database.read() as connection:
                profiles = service.evaluator.reference_profiles(connection, model, time.time())
            if profiles is None:
                problems.append(
                    f"model {model.name!r} has no reference yet (reference.path in the config,"
                    " or PUT /v1/models/{model}/reference)"
                )
                continue
            size = n or model.window.records
            if size is None:
                latest = service.latest_evaluation(model.name)
                size = None if latest is None else int(latest["window"]["n"]) or None
            if size is None:
                problems.append(
                    f"model {model.name!r}: give --n, the records a window holds (its window is"
                    " a duration and it has no evaluation to read it from)"
                )
                continue
            lines = calibrate.report(model, profiles, n=size)
            critical = [
                line.false_alarms_per_week
                for line in lines
                if line.severity == "critical" and line.false_alarms_per_week is not None
            ]
            reports.append(
                {
                    "model": model.name,
                    "n": size,
                    "min_samples": model.min_samples,
                    "budget": None
                    if model.calibration is None
                    else model.calibration.false_alarms_per_week,
                    "expected_false_alarms_per_week": sum(critical),
                    "lines": [line.to_dict() for line in lines],
                    "yaml": calibrate.yaml_snippet(lines),
                }
            )
    finally:
        service.stop()
    return reports, problems


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.4g}"


def text(reports: list[dict[str, Any]]) -> str:
    """The reports as aligned tables, each followed by its YAML."""
    out: list[str] = []
    for report in reports:
        budget = report["budget"]
        out.append(
            f"model {report['model']}: windows of {report['n']} records"
            f" (min_samples {report['min_samples']});"
            + (
                f" budget {budget:g} false alarm(s) a week (critical)"
                if budget is not None
                else " no calibration budget"
            )
        )
        shifts = sorted({k for line in report["lines"] for k in line["records_to_catch"]})
        header = [
            "feature",
            "statistic",
            "severity",
            "configured",
            f"level@{report['n']}",
            f"level@{report['min_samples']}",
            "alarms/week",
            *(f"n to catch {shift}" for shift in shifts),
        ]
        rows = [header]
        for line in report["lines"]:
            catch = line["records_to_catch"]
            rows.append(
                [
                    line["feature"] or "(model)",
                    line["statistic"],
                    line["severity"],
                    _number(line["configured"]),
                    _number(line["level"]),
                    _number(line["level_at_min_samples"]),
                    _number(line["false_alarms_per_week"]),
                    *(
                        ("never" if catch[shift] is None else str(catch[shift]))
                        if shift in catch
                        else "-"
                        for shift in shifts
                    ),
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            out.append(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            )
        out.append(
            "expected false alarms a week (critical, on data from the reference's"
            f" distribution): at most {report['expected_false_alarms_per_week']:.3g}"
        )
        out.append("as numbers, to paste under the model:")
        out.append(report["yaml"])
        out.append("")
    return "\n".join(out).rstrip()
