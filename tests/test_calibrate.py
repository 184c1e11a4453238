"""``monitor calibrate`` (issue 14 item 3): every figure checked against a formula written out
here with scipy and numpy, on a reference CSV given in the config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest
import scipy.special
import scipy.stats
import yaml

from monitor.cli import main
from monitor.config import parse_config

M = 4000
WEEK_EVALUATIONS = 7 * 86400 / 600


def write_config(tmp_path: Path, thresholds: str, calibration: str = "") -> Path:
    rng = np.random.default_rng(2)
    lines = ["x,c,prediction,label"]
    for value in rng.normal(10.0, 2.0, M):
        category = "abc"[int(rng.integers(3))]
        lines.append(f"{float(value)!r},{category},yes,{'yes' if rng.random() < 0.9 else 'no'}")
    (tmp_path / "reference.csv").write_text("\n".join(lines) + "\n")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"""
storage: {{url: "sqlite:///{tmp_path / "m.db"}"}}
models:
  - name: m
    task: classification
    classes: ["yes", "no"]
    features: [{{name: x, type: numeric}}, {{name: c, type: categorical}}]
    reference: {{path: reference.csv}}
    window: {{records: 500}}
    schedule: 10m
    min_samples: 100
    {calibration}
    thresholds: {thresholds}
"""
    )
    return config


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["calibrate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines_of(report: dict, statistic: str, feature: str, severity: str = "critical") -> dict:
    (line,) = [
        line
        for line in report["lines"]
        if (line["statistic"], line["feature"], line["severity"]) == (statistic, feature, severity)
    ]
    return line


def test_auto_levels_spend_the_budget_and_say_what_a_shift_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path,
        "{psi: {critical: auto}, ks_statistic: {critical: auto}, accuracy: {critical: auto}}",
        "calibration: {false_alarms_per_week: 2}",
    )
    code, out, err = run(capsys, "--config", str(config), "--json")
    assert code == 0, err
    (report,) = orjson.loads(out)
    assert report["n"] == 500  # the records window
    # family: psi on x, c, the prediction and the label, ks on x, accuracy: 6 critical tests
    alpha = 2 / (WEEK_EVALUATIONS * 6)
    # each test spends at most its share (PSI to the simulation's resolution; accuracy, a
    # count, at most)
    assert 1.5 < report["expected_false_alarms_per_week"] <= 2.0 + 1e-9
    n_eff = 500 * M / (500 + M)
    psi = lines_of(report, "psi", "x")
    # simulated (the exact law, test_stats_null_levels): its share of the budget, to the
    # draws' resolution, and above the chi-square level, at 500 and at min_samples
    assert psi["false_alarms_per_week"] == pytest.approx(2 / 6, rel=0.05)
    assert psi["level"] > scipy.stats.chi2.isf(alpha, 9) / n_eff
    n_eff_min = 100 * M / (100 + M)
    assert psi["level_at_min_samples"] > scipy.stats.chi2.isf(alpha, 9) / n_eff_min
    assert psi["level_at_min_samples"] > psi["level"]
    # A shift of 0.25 sd: the reference against itself moved; the KS level falls to the
    # shift's own distance at n_eff = (Kolmogorov quantile / D)^2.
    frame = np.genfromtxt(tmp_path / "reference.csv", delimiter=",", skip_header=1, usecols=0)
    values = np.sort(frame)
    moved = values + 0.25 * values.std()
    grid = np.concatenate([values, moved])
    distance = (
        np.abs(
            np.searchsorted(values, grid, side="right") - np.searchsorted(moved, grid, side="right")
        ).max()
        / M
    )
    needed = (scipy.special.kolmogi(alpha) / distance) ** 2
    ks = lines_of(report, "ks_statistic", "x")
    assert ks["records_to_catch"]["0.25 sd"] == max(100, math.ceil(needed * M / (M - needed)))
    assert lines_of(report, "psi", "c")["records_to_catch"].keys() == {"10% mass"}
    accuracy = lines_of(report, "accuracy", "")
    p = 0.0  # the reference's own accuracy, from the CSV
    labels = np.genfromtxt(tmp_path / "reference.csv", delimiter=",", skip_header=1, dtype=str)
    p = float(np.mean(labels[:, 2] == labels[:, 3]))
    trials = round(n_eff)
    counts = np.arange(trials + 1)
    expected = counts[scipy.stats.binom.cdf(counts, trials, p) <= alpha].max() / trials
    assert accuracy["level"] == pytest.approx(expected, rel=1e-12)
    # The YAML printed can be pasted as the model's thresholds: the same levels as numbers.
    pasted = yaml.safe_load(report["yaml"])["thresholds"]
    assert pasted["psi"]["critical"] == pytest.approx(psi["level"], rel=1e-5)
    text = config.read_text().replace(
        "thresholds: {psi: {critical: auto}, ks_statistic: {critical: auto},"
        " accuracy: {critical: auto}}",
        "thresholds: " + orjson.dumps(pasted).decode(),
    )
    model = parse_config(text, base_dir=tmp_path).models[0]
    assert model.thresholds["psi"].for_feature("c").critical == pytest.approx(  # type: ignore[union-attr]
        lines_of(report, "psi", "c")["level"], rel=1e-5
    )


def test_fixed_levels_report_the_false_alarms_they_imply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "{psi: {warning: 0.1, critical: 0.25}}")
    code, out, _ = run(capsys, "--config", str(config), "--json", "--n", "360")
    assert code == 0
    (report,) = orjson.loads(out)
    n_eff = 360 * M / (360 + M)
    warning = lines_of(report, "psi", "x", "warning")
    assert warning["level"] == 0.1 and warning["n"] == 360
    # PSI's exact law, simulated independently with numpy's multinomial over the reference's
    # deciles at the window size the report simulates (360 taken down to its grid: 304); the
    # chi-square approximation says four times fewer
    values = np.genfromtxt(tmp_path / "reference.csv", delimiter=",", skip_header=1, usecols=0)
    edges = np.unique(np.quantile(values, np.arange(1, 10) / 10, method="inverted_cdf"))
    p = np.bincount(np.searchsorted(edges, values, side="left"), minlength=10) / M
    rng = np.random.default_rng(99)
    current = rng.multinomial(304, p, size=200_000) / 304
    reference = rng.multinomial(M, p, size=200_000) / M
    c = np.where(current == 0, 1e-4, current)
    r = np.where(reference == 0, 1e-4, reference)
    chance = float(np.mean(np.sum((c - r) * np.log(c / r), axis=1) >= 0.1))
    assert warning["false_alarms_per_week"] == pytest.approx(WEEK_EVALUATIONS * chance, rel=0.3)
    assert warning["false_alarms_per_week"] > WEEK_EVALUATIONS * scipy.stats.chi2.sf(0.1 * n_eff, 9)
    code, out, _ = run(capsys, "--config", str(config), "--n", "360")
    assert code == 0 and "as numbers, to paste under the model:" in out
    assert "psi" in out and "warning" in out


def test_a_model_without_a_reference_or_window_size_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "{psi: {critical: 0.2}}")
    text = config.read_text().replace("    reference: {path: reference.csv}\n", "")
    config.write_text(text)
    code, _, err = run(capsys, "--config", str(config))
    assert code == 1 and "model 'm' has no reference yet" in err
    code, _, err = run(capsys, "--config", str(config), "--model", "other")
    assert code == 2 and "no model named 'other'" in err


def test_resampled_and_missing_value_levels_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path,
        "{f1: {critical: auto}, missing_ratio: {critical: auto}}",
        "calibration: {false_alarms_per_week: 2}",
    )
    code, out, err = run(capsys, "--config", str(config), "--json")
    assert code == 0, err
    (report,) = orjson.loads(out)
    # family: f1, and the missing-value ratio of x and c (not of the prediction or the label)
    share = 2 / 3
    f1 = lines_of(report, "f1", "")
    # the report inverts the level to first order in the skewness: about its share
    assert f1["false_alarms_per_week"] == pytest.approx(share, rel=0.1)
    # the reference has no missing value: one missing value in a window breaches, and
    # never does under no drift
    missing = lines_of(report, "missing_ratio", "x")
    assert missing["level"] == 1 / round(500 * M / (500 + M))
    assert missing["false_alarms_per_week"] == 0.0
    assert {
        line["feature"] for line in report["lines"] if line["statistic"] == "missing_ratio"
    } == {
        "x",
        "c",
    }
