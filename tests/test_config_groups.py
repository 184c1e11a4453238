"""Segments and fairness in monitor.yaml: what is accepted, and what is refused with file:line."""

from __future__ import annotations

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError

MODEL = """\
models:
  - name: m
    task: classification
    classes: [approved, denied]
    features:
      - {name: x, type: numeric}
      - {name: country, type: categorical}
      - {name: gender, type: categorical}
"""


def errors_of(extra: str, model: str = MODEL) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(model + extra)
    return [str(issue) for issue in caught.value.issues]


def test_segments_and_fairness_are_read() -> None:
    model = parse_config(
        MODEL
        + """\
    segments:
      - {name: by_country, feature: country, values: [FR, DE], min_samples: 20,
         thresholds: {psi: {critical: 0.5}}}
    fairness: {sensitive: [gender, country], positive: approved}
    thresholds:
      demographic_parity_ratio: {critical: 0.8}
      equal_opportunity_difference: {warning: 0.1, critical: 0.2}
"""
    ).models[0]
    (segment,) = model.segments
    assert (segment.name, segment.feature, segment.values, segment.min_samples) == (
        "by_country",
        "country",
        ["FR", "DE"],
        20,
    )
    assert segment.thresholds["psi"].critical == 0.5
    assert model.fairness is not None
    assert (model.fairness.sensitive, model.fairness.positive) == (
        ["gender", "country"],
        "approved",
    )
    assert model.thresholds["demographic_parity_ratio"].critical == 0.8


def test_a_segment_on_a_numeric_or_unknown_feature_is_refused_at_its_line() -> None:
    assert errors_of(
        "    segments:\n      - {name: a, feature: x}\n      - {name: b, feature: y}\n"
    ) == [
        "monitor.yaml:10: models[0].segments[0].feature: 'x' is a numeric feature: groups need"
        " a categorical one",
        "monitor.yaml:11: models[0].segments[1].feature: 'y' is not a feature of model 'm'",
    ]


def test_segment_names_are_distinct_and_values_exclude_other() -> None:
    assert errors_of(
        "    segments:\n      - {name: a, feature: country}\n      - {name: a, feature: gender}\n"
    ) == ["monitor.yaml:11: models[0].segments[1].name: segment 'a' is listed twice"]
    assert errors_of(
        "    segments:\n      - {name: a, feature: country, values: [FR, __other__]}\n"
    ) == [
        "monitor.yaml:10: models[0].segments[0].values: __other__ is the bucket of the values"
        " not listed"
    ]


def test_a_segment_value_no_record_can_carry_is_refused() -> None:
    long = "v" * 257
    assert errors_of(
        f"    segments:\n      - {{name: a, feature: country, values: [FR, {long}]}}\n"
    ) == [
        f"monitor.yaml:10: models[0].segments[0].values: {'v' * 40!r}... can never match a"
        " record: a category holds at most 256 characters and no NUL"
    ]
    assert errors_of('    segments:\n      - {name: a, feature: country, values: ["F\\0R"]}\n') == [
        "monitor.yaml:10: models[0].segments[0].values: 'F\\x00R' can never match a record: a"
        " category holds no NUL"
    ]
    parse_config(
        MODEL + f"    segments:\n      - {{name: a, feature: country, values: [{'v' * 256}]}}\n"
    )


def test_a_segment_level_is_checked_like_a_model_level() -> None:
    assert errors_of(
        "    segments:\n      - name: a\n        feature: country\n        thresholds:\n"
        "          accuracy: {warning: 0.7, critical: 0.9}\n"
    ) == [
        "monitor.yaml:13: models[0].segments[0].thresholds.accuracy: warning 0.7 must be at"
        " least critical 0.9 (lower accuracy is worse)"
    ]


def test_fairness_needs_a_known_positive_class_and_categorical_features() -> None:
    assert errors_of("    fairness: {sensitive: [gender, x, gender], positive: maybe}\n") == [
        "monitor.yaml:9: models[0].fairness.positive: 'maybe' is not one of the classes"
        " (approved, denied)",
        "monitor.yaml:9: models[0].fairness.sensitive[1]: 'x' is a numeric feature: groups need"
        " a categorical one",
        "monitor.yaml:9: models[0].fairness.sensitive[2]: 'gender' is listed twice",
    ]


def test_a_fairness_threshold_without_fairness_is_refused() -> None:
    assert errors_of("    thresholds:\n      demographic_parity_ratio: {critical: 0.8}\n") == [
        "monitor.yaml:10: models[0].thresholds.demographic_parity_ratio:"
        " demographic_parity_ratio needs fairness: {sensitive: [...], positive: <class>}"
    ]


def test_fairness_levels_have_a_range_and_no_auto() -> None:
    fairness = "    fairness: {sensitive: [gender], positive: approved}\n"
    assert errors_of(
        fairness + "    thresholds:\n      demographic_parity_ratio: {critical: 1.5}\n"
    ) == [
        "monitor.yaml:11: models[0].thresholds.demographic_parity_ratio.critical: 1.5 is above"
        " 1: demographic_parity_ratio is a ratio of the smallest rate to the largest, from 0"
        " to 1"
    ]
    errors = errors_of(
        fairness
        + "    calibration: {false_alarms_per_week: 1}\n"
        + "    thresholds:\n      demographic_parity_ratio: {critical: auto}\n"
    )
    assert len(errors) == 1 and "auto is not available for demographic_parity_ratio" in errors[0]


REGRESSION = """\
models:
  - name: m
    task: regression
    features:
      - {name: x, type: numeric}
      - {name: country, type: categorical}
"""


def test_a_bad_versions_is_one_error_at_its_key() -> None:
    """Not pydantic's union branches (``versions.function-after[...]``, and a second error
    from the ``compare`` branch for a mapping that was never meant to be it)."""
    assert errors_of("    versions: {stable: v1, canary: v1}\n") == [
        "monitor.yaml:9: models[0].versions: stable and canary must be two different versions"
    ]
    assert errors_of("    versions: {stable: v1}\n") == [
        "monitor.yaml:9: models[0].versions.canary: required key is missing"
    ]
    assert errors_of("    versions:\n      stable: v1\n      canary: ''\n") == [
        "monitor.yaml:11: models[0].versions.canary: string should have at least 1 character"
    ]
    assert errors_of("    versions: compair\n") == [
        "monitor.yaml:9: models[0].versions: must be 'compare'"
    ]
    assert errors_of("    versions: [v1, v2]\n") == [
        "monitor.yaml:9: models[0].versions: must be compare or {stable: <version>, canary:"
        " <version>}"
    ]


def test_a_canary_threshold_needs_versions_and_a_classifier_for_accuracy() -> None:
    """Without ``versions`` there is nothing to compare: the rule would never fire, as a
    fairness threshold without ``fairness`` would not (refused alike); the accuracy difference
    is a classifier's; a segment does not compare versions."""
    assert errors_of(
        "    thresholds:\n      canary_psi: {warning: 0.1}\n"
        "      canary_accuracy_delta: {critical: -0.05}\n"
    ) == [
        "monitor.yaml:10: models[0].thresholds.canary_psi: canary_psi needs versions:"
        " {stable: <version>, canary: <version>} or versions: compare",
        "monitor.yaml:11: models[0].thresholds.canary_accuracy_delta: canary_accuracy_delta"
        " needs versions: {stable: <version>, canary: <version>} or versions: compare",
    ]
    assert errors_of(
        "    versions: compare\n    thresholds:\n      canary_accuracy_delta: {critical: -0.05}\n",
        REGRESSION,
    ) == [
        "monitor.yaml:9: models[0].thresholds.canary_accuracy_delta: canary_accuracy_delta is"
        " for task: classification (a regression has no accuracy to compare)"
    ]
    assert errors_of(
        "    versions: compare\n    segments:\n      - name: a\n        feature: country\n"
        "        thresholds: {canary_psi: {warning: 0.1}}\n"
    ) == [
        "monitor.yaml:13: models[0].segments[0].thresholds.canary_psi: the versions are compared"
        " for the whole model"
    ]


def test_a_segment_threshold_on_a_statistic_no_segment_has_is_refused() -> None:
    """A segment computes neither label coverage nor the label-free estimate (the whole
    model's only): a level for them there would never be compared with anything."""
    assert errors_of(
        "    segments:\n      - name: a\n        feature: country\n        thresholds:\n"
        "          label_coverage: {warning: 0.5}\n"
        "          estimated_accuracy: {warning: 0.8}\n"
    ) == [
        "monitor.yaml:13: models[0].segments[0].thresholds.label_coverage: label coverage is"
        " the whole model's (its labels arrive for every segment alike)",
        "monitor.yaml:14: models[0].segments[0].thresholds.estimated_accuracy: the label-free"
        " estimate is the whole model's (it needs the model's calibration)",
    ]
