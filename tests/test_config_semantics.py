"""Threshold levels that cannot mean what they say are config errors naming file, line and key:
out of the statistic's range, or warning and critical in the wrong order for its direction."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from monitor.cli import main
from monitor.config import parse_config
from monitor.config.schema import StatisticName
from monitor.config.semantics import RANGES
from monitor.errors import ConfigError
from monitor.stats.jensen_shannon import jensen_shannon_distance
from monitor.thresholds import HIGHER_IS_WORSE, LOWER_IS_WORSE
from tests.test_deploy import configmap_config_text, container_environ, monitor_container

ROOT = Path(__file__).resolve().parent.parent
MODEL = """\
models:
  - name: m
    task: classification
    classes: [a, b]
    features: [{name: x, type: numeric}, {name: c, type: categorical}]
    thresholds:
"""
# after the thresholds, so that their line numbers stay; lets fairness and canary thresholds be set
FAIRNESS = "    fairness: {sensitive: [c], positive: a}\n    versions: compare\n"


def errors_of(thresholds: str) -> list[str]:
    """The errors of MODEL with these lines under ``thresholds:`` (the first is line 7)."""
    text = MODEL + textwrap.indent(textwrap.dedent(thresholds), "      ") + FAIRNESS
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(issue) for issue in caught.value.issues]


def levels_of(thresholds: str) -> dict[str, tuple[float | None, float | None]]:
    text = MODEL + textwrap.indent(textwrap.dedent(thresholds), "      ") + FAIRNESS
    model = parse_config(text).models[0]
    return {name: (t.warning, t.critical) for name, t in model.thresholds.items()}


# -- order -------------------------------------------------------------------------------------


def test_warning_above_critical_is_refused_where_higher_is_worse() -> None:
    assert errors_of("psi: {warning: 0.5, critical: 0.25}\n") == [
        "monitor.yaml:7: models[0].thresholds.psi: warning 0.5 must be at most critical 0.25 "
        "(higher psi is worse)"
    ]


def test_warning_below_critical_is_refused_where_lower_is_worse() -> None:
    assert errors_of("ks_pvalue: {warning: 0.001, critical: 0.01}\n") == [
        "monitor.yaml:7: models[0].thresholds.ks_pvalue: warning 0.001 must be at least "
        "critical 0.01 (lower ks_pvalue is worse)"
    ]


def test_an_override_in_the_wrong_order_is_refused_at_its_feature() -> None:
    errors = errors_of(
        """\
        wasserstein_normalized:
          warning: 0.1
          critical: 0.3
          overrides:
            x: {warning: 0.5, critical: 0.4}
        """
    )
    assert errors == [
        "monitor.yaml:11: models[0].thresholds.wasserstein_normalized.overrides.x: warning 0.5 "
        "must be at most critical 0.4 (higher wasserstein_normalized is worse)"
    ]


def test_an_override_is_checked_on_its_own_not_against_the_model_levels() -> None:
    # the override replaces both levels for x, so only its own pair is compared
    text = "psi: {warning: 0.1, critical: 0.25, overrides: {x: {warning: 0.3}}}\n"
    assert levels_of(text) == {"psi": (0.1, 0.25)}


def test_equal_levels_and_a_single_level_are_accepted() -> None:
    text = "psi: {warning: 0.2, critical: 0.2}\naccuracy: {warning: 0.8, critical: 0.8}\n"
    assert levels_of(text) == {"psi": (0.2, 0.2), "accuracy": (0.8, 0.8)}
    assert levels_of("accuracy: {warning: 0.95}\npsi: {critical: 0.3}\n") == {
        "accuracy": (0.95, None),
        "psi": (None, 0.3),
    }


@pytest.mark.parametrize("statistic", sorted(HIGHER_IS_WORSE))
def test_order_of_every_higher_is_worse_statistic(statistic: str) -> None:
    assert errors_of(f"{statistic}: {{warning: 0.6, critical: 0.4}}\n") == [
        f"monitor.yaml:7: models[0].thresholds.{statistic}: warning 0.6 must be at most "
        f"critical 0.4 (higher {statistic} is worse)"
    ]
    assert levels_of(f"{statistic}: {{warning: 0.4, critical: 0.6}}\n") == {statistic: (0.4, 0.6)}


@pytest.mark.parametrize("statistic", sorted(LOWER_IS_WORSE))
def test_order_of_every_lower_is_worse_statistic(statistic: str) -> None:
    assert errors_of(f"{statistic}: {{warning: 0.4, critical: 0.6}}\n") == [
        f"monitor.yaml:7: models[0].thresholds.{statistic}: warning 0.4 must be at least "
        f"critical 0.6 (lower {statistic} is worse)"
    ]
    assert levels_of(f"{statistic}: {{warning: 0.6, critical: 0.4}}\n") == {statistic: (0.6, 0.4)}


# -- range -------------------------------------------------------------------------------------


def test_the_issues_accuracy_example_is_refused_at_both_levels() -> None:
    assert errors_of("accuracy: {warning: 1.5, critical: -0.2}\n") == [
        "monitor.yaml:7: models[0].thresholds.accuracy.warning: 1.5 is above 1: accuracy is a "
        "proportion, from 0 to 1",
        "monitor.yaml:7: models[0].thresholds.accuracy.critical: -0.2 is below 0: accuracy is a "
        "proportion, from 0 to 1",
    ]


def test_p_values_outside_0_and_1_are_refused() -> None:
    errors = errors_of("ks_pvalue: {critical: 1.5}\nchi2_pvalue: {warning: -0.01}\n")
    assert errors == [
        "monitor.yaml:7: models[0].thresholds.ks_pvalue.critical: 1.5 is above 1: ks_pvalue is a "
        "p-value, from 0 to 1",
        "monitor.yaml:8: models[0].thresholds.chi2_pvalue.warning: -0.01 is below 0: chi2_pvalue "
        "is a p-value, from 0 to 1",
    ]


def test_shares_and_ratios_outside_0_and_1_are_refused() -> None:
    errors = errors_of(
        """\
        missing_ratio: {warning: 5}
        drifted_share: {critical: 1.01}
        label_coverage: {warning: -0.5}
        """
    )
    assert errors == [
        "monitor.yaml:7: models[0].thresholds.missing_ratio.warning: 5 is above 1: missing_ratio "
        "is a share of records, from 0 to 1",
        "monitor.yaml:8: models[0].thresholds.drifted_share.critical: 1.01 is above 1: "
        "drifted_share is a share of features, from 0 to 1",
        "monitor.yaml:9: models[0].thresholds.label_coverage.warning: -0.5 is below 0: "
        "label_coverage is a proportion, from 0 to 1",
    ]


def test_negative_distances_divergences_and_errors_are_refused() -> None:
    errors = errors_of(
        """\
        psi: {critical: -0.1}
        ks_statistic: {warning: -0.2}
        wasserstein: {warning: -3}
        log_loss: {critical: -1}
        rmse: {critical: -0.5}
        """
    )
    assert errors == [
        "monitor.yaml:7: models[0].thresholds.psi.critical: -0.1 is below 0: psi is a divergence, "
        "0 or more",
        "monitor.yaml:8: models[0].thresholds.ks_statistic.warning: -0.2 is below 0: ks_statistic "
        "is a distance between distribution functions, from 0 to 1",
        "monitor.yaml:9: models[0].thresholds.wasserstein.warning: -3 is below 0: wasserstein is "
        "a distance, 0 or more",
        "monitor.yaml:10: models[0].thresholds.log_loss.critical: -1 is below 0: log_loss is a "
        "loss, 0 or more",
        "monitor.yaml:11: models[0].thresholds.rmse.critical: -0.5 is below 0: rmse is an error, "
        "0 or more",
    ]


def test_jensen_shannon_is_bounded_by_1_the_most_the_base_2_distance_reaches() -> None:
    # the bound follows the base the statistic is computed in: 1 for disjoint supports
    assert jensen_shannon_distance(np.array([1, 0]), np.array([0, 1])) == 1.0
    assert levels_of("jensen_shannon: {warning: 0.9, critical: 1}\n") == {
        "jensen_shannon": (0.9, 1.0)
    }
    assert errors_of("jensen_shannon: {critical: 1.2}\n") == [
        "monitor.yaml:7: models[0].thresholds.jensen_shannon.critical: 1.2 is above 1: "
        "jensen_shannon is a base-2 distance, from 0 to 1"
    ]


def test_r2_is_at_most_1_and_may_be_negative() -> None:
    assert levels_of("r2: {warning: 0, critical: -0.5}\n") == {"r2": (0.0, -0.5)}
    assert errors_of("r2: {warning: 1.5}\n") == [
        "monitor.yaml:7: models[0].thresholds.r2.warning: 1.5 is above 1: r2 is a coefficient "
        "of determination, at most 1"
    ]


def test_large_distances_and_errors_are_accepted() -> None:
    text = "mae: {warning: 1000, critical: 2500.5}\npsi: {critical: 3}\n"
    assert levels_of(text) == {"mae": (1000.0, 2500.5), "psi": (None, 3.0)}


def test_the_bounds_themselves_are_accepted() -> None:
    text = "ks_pvalue: {warning: 1, critical: 0}\naccuracy: {warning: 1, critical: 0}\n"
    assert levels_of(text) == {"ks_pvalue": (1.0, 0.0), "accuracy": (1.0, 0.0)}


def test_nan_is_not_a_level() -> None:
    assert errors_of("psi: {warning: .nan, critical: 0.25}\n") == [
        "monitor.yaml:7: models[0].thresholds.psi.warning: nan is not a number: psi is a "
        "divergence, 0 or more"
    ]


def test_an_override_out_of_range_is_refused_at_its_level() -> None:
    errors = errors_of(
        """\
        accuracy:
          warning: 0.9
          overrides:
            __label__:
              critical: 1.2
        """
    )
    assert errors == [
        "monitor.yaml:11: models[0].thresholds.accuracy.overrides.__label__.critical: 1.2 is "
        "above 1: accuracy is a proportion, from 0 to 1"
    ]


def test_levels_of_a_later_model_in_block_style_name_their_own_lines() -> None:
    text = MODEL + (
        "      psi: {warning: 0.1}\n"
        "  - name: n\n"
        "    task: regression\n"
        "    features: [{name: y, type: numeric}]\n"
        "    thresholds:\n"
        "      mape:\n"
        "        warning: 0.3\n"
        "        critical: 0.2\n"
        "      r2:\n"
        "        warning: 3\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert [str(issue) for issue in caught.value.issues] == [
        "monitor.yaml:12: models[1].thresholds.mape: warning 0.3 must be at most critical 0.2 "
        "(higher mape is worse)",
        "monitor.yaml:16: models[1].thresholds.r2.warning: 3 is above 1: r2 is a coefficient of "
        "determination, at most 1",
    ]


def test_every_statistic_has_a_direction_and_a_range() -> None:
    statistics = set(get_args(StatisticName))
    assert statistics == HIGHER_IS_WORSE | LOWER_IS_WORSE
    assert not HIGHER_IS_WORSE & LOWER_IS_WORSE
    assert set(RANGES) == statistics


@pytest.mark.parametrize("statistic", sorted(RANGES))
def test_every_finite_bound_is_enforced_for_every_statistic(statistic: str) -> None:
    least, most, _ = RANGES[statistic]
    for outside, side in ((least - 0.5, "below"), (most + 0.5, "above")):
        if math.isinf(outside):
            continue
        [error] = errors_of(f"{statistic}: {{critical: {outside}}}\n")
        bound = least if side == "below" else most
        assert error.startswith(
            f"monitor.yaml:7: models[0].thresholds.{statistic}.critical: "
            f"{outside:g} is {side} {bound:g}: {statistic} is "
        )


def test_check_config_prints_each_level_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MODEL + "      psi: {warning: 0.5, critical: 0.25}\n")
    assert main(["check-config", str(path)]) == 1
    assert (
        f"{path}:7: models[0].thresholds.psi: warning 0.5 must be at most critical 0.25 "
        "(higher psi is worse)"
    ) in capsys.readouterr().err


# -- shipped configs ---------------------------------------------------------------------------

#: Every config file shipped with models in it, and the folder its relative paths resolve from.
SHIPPED = {
    "examples/monitor.yaml": ROOT / "examples",
    "examples/webhooks/monitor.yaml": ROOT / "examples" / "webhooks",
    "examples/canary/monitor.yaml": ROOT / "examples" / "canary",
    "monitor/demo/config.yaml": ROOT / "monitor" / "demo",
    # as the compose file mounts it: examples/data next to the config
    "deploy/monitor.compose.yaml": ROOT / "examples",
}


def test_every_shipped_config_is_listed() -> None:
    found = {
        str(path.relative_to(ROOT))
        for folder in ("examples", "deploy", "monitor/demo")
        for path in (ROOT / folder).rglob("*.y*ml")
        if "\nmodels:" in "\n" + path.read_text()
    }
    assert found == set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_config_passes_the_level_checks(name: str) -> None:
    text = (ROOT / name).read_text()
    config = parse_config(text, file=name, base_dir=SHIPPED[name], environ={})
    assert any(model.thresholds for model in config.models)


def test_the_kubernetes_configmap_config_passes_the_level_checks() -> None:
    environ = container_environ(monitor_container())
    config = parse_config(configmap_config_text(), environ=environ)
    assert config.models[0].thresholds


def test_level_errors_are_listed_by_line_with_the_other_errors() -> None:
    text = MODEL + (
        "      psi: {warning: 0.5, critical: 0.25}\n"
        "    alerts: {routes: [nowhere]}\n"
        "  - name: n\n"
        "    task: regression\n"
        "    features: [{name: y, type: numeric}]\n"
        "    thresholds: {mae: {critical: -1}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert [str(issue) for issue in caught.value.issues] == [
        "monitor.yaml:7: models[0].thresholds.psi: warning 0.5 must be at most critical 0.25 "
        "(higher psi is worse)",
        "monitor.yaml:8: models[0].alerts.routes[0]: no webhook named 'nowhere' (webhooks: none "
        "are configured)",
        "monitor.yaml:12: models[1].thresholds.mae.critical: -1 is below 0: mae is an error, "
        "0 or more",
    ]
