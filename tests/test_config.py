"""Config loading: every error kind names file, line and key path; valid files load."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import load_config, parse_config
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = """\
models:
  - name: m
    task: regression
    features:
      - {name: x, type: numeric}
"""


def errors_of(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]
    return [str(issue) for issue in caught.value.issues]


def test_example_config_loads_and_documents_every_key() -> None:
    config = load_config(ROOT / "examples" / "monitor.yaml", environ={})
    model = config.models[0]
    assert model.name == "credit"
    assert model.classes == ["approved", "rejected"]
    assert [f.type for f in model.features] == ["numeric", "numeric", "categorical"]
    assert model.reference is not None and model.reference.path is not None
    assert model.reference.path == ROOT / "examples" / "data" / "reference.csv"
    assert model.window.duration == timedelta(hours=1)
    assert model.schedule == timedelta(minutes=1)
    assert model.thresholds["psi"].critical == "auto"
    assert model.calibration is not None and model.calibration.false_alarms_per_week == 1
    assert model.alerts.for_ == 1 and model.alerts.routes == ["retrain"]
    assert config.storage.url == "sqlite:///./monitor.db"
    assert config.storage.retention == timedelta(days=7)
    text = (ROOT / "examples" / "monitor.yaml").read_text()
    for key in (
        "host",
        "port",
        "max_body_bytes",
        "max_decompressed_bytes",
        "auth",
        "ingest_tokens",
        "read_tokens",
        "admin_tokens",
        "protect_metrics",
        "url",
        "retention",
        "retention_check",
        "task",
        "classes",
        "features",
        "reference",
        "first_records",
        "previous_window",
        "window",
        "schedule",
        "min_samples",
        "thresholds",
        "alerts",
        "for",
        "routes",
        "webhooks",
        "secret",
        "timeout",
    ):
        assert f"{key}:" in text, key


def test_defaults_fill_what_is_left_out() -> None:
    config = parse_config(MINIMAL)
    assert config.server.port == 8000 and config.server.host == "127.0.0.1"
    assert config.server.max_body_bytes == 10 * 1024 * 1024
    assert config.storage.url is None
    assert config.models[0].window.duration == timedelta(hours=1)
    assert config.models[0].min_samples == 100


def test_wrong_choice_names_line_and_path() -> None:
    text = MINIMAL + "      - {name: y, type: nmeric}\n"
    assert errors_of(text) == [
        "monitor.yaml:6: models[0].features[1].type: must be 'numeric' or 'categorical'"
    ]


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    text = MINIMAL + "    windw: {duration: 1h}\n"
    assert errors_of(text) == [
        "monitor.yaml:6: models[0].windw: unknown key (did you mean 'window'?)"
    ]


def test_unknown_key_inside_a_threshold() -> None:
    text = MINIMAL + "    thresholds:\n      psi: {warnng: 0.1}\n"
    assert errors_of(text) == [
        "monitor.yaml:7: models[0].thresholds.psi.warnng: unknown key (did you mean 'warning'?)"
    ]


def test_unknown_statistic_lists_the_known_ones() -> None:
    text = MINIMAL + "    thresholds:\n      psy: {critical: 0.1}\n"
    [error] = errors_of(text)
    assert error.startswith("monitor.yaml:7: models[0].thresholds.psy: unknown statistic 'psy'")
    assert "psi" in error and "ks_pvalue" in error


def test_missing_required_key_points_at_its_parent() -> None:
    text = "models:\n  - name: m\n    features: [{name: x, type: numeric}]\n"
    assert errors_of(text) == ["monitor.yaml:2: models[0].task: required key is missing"]


def test_bad_duration() -> None:
    text = MINIMAL + "    schedule: 5 minutes\n"
    assert errors_of(text) == [
        "monitor.yaml:6: models[0].schedule: '5 minutes' is not a duration such as 30s, 5m, "
        "1h or 7d"
    ]


@pytest.mark.parametrize(
    "spelling,seconds", [("30s", 30), ("5m", 300), ("1h", 3600), ("7d", 604800), ("1.5h", 5400)]
)
def test_durations(spelling: str, seconds: float) -> None:
    config = parse_config(MINIMAL + f"    schedule: {spelling}\n")
    assert config.models[0].schedule.total_seconds() == seconds


def test_wrong_type_of_number() -> None:
    text = MINIMAL + "    min_samples: many\n"
    [error] = errors_of(text)
    assert error.startswith("monitor.yaml:6: models[0].min_samples: ")
    assert "integer" in error


def test_value_out_of_range() -> None:
    assert errors_of("server: {port: 70000}\n" + MINIMAL) == [
        "monitor.yaml:1: server.port: input should be less than or equal to 65535"
    ]


def test_environment_variables_are_substituted() -> None:
    text = MINIMAL + "webhooks:\n  - {name: w, url: 'https://x.test/h', secret: '${SECRET}'}\n"
    config = parse_config(text, environ={"SECRET": "s3cr3t"})
    secret = config.webhooks[0].secret
    assert secret is not None and secret.get_secret_value() == "s3cr3t"


def test_environment_default_applies_when_unset() -> None:
    text = "storage: {url: '${DB:-sqlite:///x.db}'}\n" + MINIMAL
    assert parse_config(text, environ={}).storage.url == "sqlite:///x.db"
    assert parse_config(text, environ={"DB": "postgresql+psycopg://h/db"}).storage.url == (
        "postgresql+psycopg://h/db"
    )


def test_missing_environment_variable_is_named() -> None:
    text = MINIMAL + "webhooks:\n  - name: w\n    url: https://x.test/h\n    secret: ${NOPE}\n"
    assert errors_of(text, environ={}) == [
        "monitor.yaml:9: webhooks[0].secret: environment variable NOPE is not set"
    ]


def test_invalid_yaml_syntax_names_the_line() -> None:
    text = MINIMAL + "    thresholds: {psi: {critical: 0.1}\n    schedule: 1m\n"
    [error] = errors_of(text)
    assert error.startswith("monitor.yaml:7: invalid YAML: ")


def test_key_written_twice() -> None:
    text = MINIMAL + "    task: classification\n"
    assert errors_of(text) == ["monitor.yaml:6: models[0].task: key is written twice"]


def test_route_to_unknown_webhook() -> None:
    text = MINIMAL + "    alerts: {routes: [retrain]}\n"
    assert errors_of(text) == [
        "monitor.yaml:6: models[0].alerts.routes[0]: no webhook named 'retrain' "
        "(webhooks: none are configured)"
    ]


def test_missing_reference_file(tmp_path: Path) -> None:
    text = MINIMAL + "    reference: {path: data/nope.csv}\n"
    [error] = errors_of(text, base_dir=tmp_path)
    assert error.startswith("monitor.yaml:6: models[0].reference.path: reference file ")
    assert "nope.csv" in error and error.endswith("does not exist")


def test_reference_needs_exactly_one_source() -> None:
    text = MINIMAL + "    reference: {first_records: 10, previous_window: true}\n"
    assert errors_of(text) == [
        "monitor.yaml:6: models[0].reference: set exactly one of path, first_records or "
        "previous_window: true"
    ]


def test_window_needs_exactly_one_bound() -> None:
    text = MINIMAL + "    window: {duration: 1h, records: 100}\n"
    assert errors_of(text) == [
        "monitor.yaml:6: models[0].window: set exactly one of duration or records"
    ]


def test_classification_needs_classes() -> None:
    text = (
        "models:\n  - name: m\n    task: classification\n    features: [{name: x, type: numeric}]\n"
    )
    assert errors_of(text) == [
        "monitor.yaml:2: models[0]: a classification model needs classes: [at least two labels]"
    ]


def test_a_feature_cannot_take_the_name_of_a_score_column() -> None:
    """A table of records names a class's probability score_<class> (monitor.csv_columns):
    a feature of that name would make the export's columns ambiguous."""
    text = CLASSIFIER + "      - {name: score_no, type: numeric}\n    classes: [yes, no]\n"
    assert errors_of(text) == [
        "monitor.yaml:2: models[0]: feature 'score_no' is named like the CSV column of the "
        "scores of class 'no' (export, replay, reference); rename the feature"
    ]
    regression = MINIMAL + "      - {name: score_no, type: numeric}\n"  # no classes, no scores
    assert [f.name for f in parse_config(regression).models[0].features] == ["x", "score_no"]


@pytest.mark.parametrize("name", ["model_version", "label", "id"])
def test_a_feature_cannot_take_the_name_of_a_record_column(name: str) -> None:
    """The export's CSV has a column per feature besides the record's own ones: a feature
    named like one of those (``model_version`` since issue 16) wrote the column twice, and
    ``monitor replay`` refused the export ("no column for this feature")."""
    text = MINIMAL + f"      - {{name: {name}, type: categorical}}\n"
    assert errors_of(text) == [
        f"monitor.yaml:2: models[0]: feature {name!r} is named like a column of the records'"
        " CSV (id, timestamp, prediction, label, label_timestamp, model_version: export,"
        " replay, reference); rename the feature"
    ]


def test_duplicate_feature_name() -> None:
    text = MINIMAL + "      - {name: x, type: categorical}\n"
    assert errors_of(text) == ["monitor.yaml:4: models[0].features: feature 'x' is listed twice"]


def test_duplicate_model_name() -> None:
    text = MINIMAL + MINIMAL.replace("models:\n", "")
    assert errors_of(text) == ["monitor.yaml:1: models: model 'm' is listed twice"]


def test_every_error_is_reported_not_just_the_first() -> None:
    text = """\
    server: {port: 0}
    models:
      - name: m
        task: regresion
        features:
          - {name: x, type: numeric}
          - {name: y, type: text}
        schedul: 1m
    """
    errors = errors_of(text)
    assert errors == [
        "monitor.yaml:1: server.port: input should be greater than or equal to 1",
        "monitor.yaml:4: models[0].task: must be 'classification' or 'regression'",
        "monitor.yaml:7: models[0].features[1].type: must be 'numeric' or 'categorical'",
        "monitor.yaml:8: models[0].schedul: unknown key (did you mean 'schedule'?)",
    ]


def test_empty_file_and_wrong_top_level() -> None:
    assert errors_of("") == ["monitor.yaml:1: the config file is empty"]
    assert errors_of("- a\n- b\n") == ["monitor.yaml:1: the top level must be a mapping of keys"]


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'absent.yaml'}: cannot read file")


def test_load_config_uses_the_file_name_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(MINIMAL + "    bogus: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:6: models[0].bogus: unknown key"


def test_model_names_must_be_safe_for_urls_and_labels() -> None:
    [error] = errors_of(MINIMAL.replace("name: m", "name: 'my model'"))
    assert error.startswith("monitor.yaml:2: models[0].name: must start with a letter")


def test_short_tokens_are_refused() -> None:
    text = "server: {auth: {ingest_tokens: [short]}}\n" + MINIMAL
    assert errors_of(text) == [
        "monitor.yaml:1: server.auth.ingest_tokens: tokens must be at least 16 characters long"
    ]


def test_yes_and_no_stay_strings() -> None:
    text = MINIMAL.replace("task: regression", "task: classification\n    classes: [yes, no]")
    config = parse_config(text + "server: {auth: {protect_metrics: true}}\n")
    assert config.models[0].classes == ["yes", "no"]
    assert config.server.auth.protect_metrics is True


# YAML 1.2, and the text written wherever the schema expects a string (issue 12, item 8)

CLASSIFIER = """\
models:
  - name: m
    task: classification
    features:
      - {name: x, type: numeric}
"""


def test_unquoted_class_labels_keep_the_text_written() -> None:
    # YAML 1.1 read these as 8, 90, a date, booleans and None; YAML 1.2 as 10, 8, 31, 1000.0 ...
    labels = "010, 1:30, 2026-01-01, yes, no, on, off, 0o10, 0x1F, 1e3, 1.50, True, +1, .inf"
    config = parse_config(CLASSIFIER + f"    classes: [{labels}]\n")
    assert config.models[0].classes == labels.split(", ")


def test_null_and_tilde_are_text_where_only_a_string_fits() -> None:
    config = parse_config(CLASSIFIER + "    classes: [null, ~, NULL]\n")
    assert config.models[0].classes == ["null", "~", "NULL"]


def test_an_empty_class_label_is_an_error_not_an_empty_string() -> None:
    text = CLASSIFIER + "    classes:\n      - a\n      -\n"
    assert errors_of(text) == [
        "monitor.yaml:8: models[0].classes[1]: a class label must be a string, an integer or "
        "a boolean"
    ]


def test_quoted_class_labels_are_their_quoted_text() -> None:
    config = parse_config(CLASSIFIER + "    classes: ['010', \"1:30\", 'null']\n")
    assert config.models[0].classes == ["010", "1:30", "null"]


def test_feature_names_rule_features_and_override_keys_keep_their_text() -> None:
    text = """\
    models:
      - name: m
        task: regression
        features:
          - {name: true, type: numeric}
          - {name: null, type: categorical}
          - {name: on, type: categorical}
        thresholds:
          psi:
            warning: 0.2
            features: [true, null, on]
            overrides: {null: {critical: 1e-3}, true: {warning: 1}}
    """
    model = parse_config(textwrap.dedent(text)).models[0]
    assert [f.name for f in model.features] == ["true", "null", "on"]
    psi = model.thresholds["psi"]
    assert psi.features == ["true", "null", "on"]
    assert list(psi.overrides) == ["null", "true"]
    assert psi.overrides["null"].critical == 0.001 and type(psi.overrides["null"].critical) is float
    assert psi.overrides["true"].warning == 1.0 and type(psi.overrides["true"].warning) is float


def test_a_list_of_strings_reports_the_text_written() -> None:
    # before: 010 was the integer 8, refused as "input should be a valid string"
    text = MINIMAL + "    thresholds: {psi: {warning: 0.1, features: [x, 010]}}\n"
    assert errors_of(text) == [
        "monitor.yaml:6: models[0].thresholds.psi.features[1]: '010' is not a feature of model 'm'"
    ]


def test_numbers_booleans_and_nulls_follow_yaml_1_2_where_the_schema_wants_them() -> None:
    text = """\
    server:
      port: 0o17620
      max_body_bytes: 0x10000
      max_decompressed_bytes: 0200000
      auth: {protect_metrics: True}
    storage: {url: ~}
    models:
      - name: m
        task: regression
        features: [{name: x, type: numeric}]
        min_samples: +25
        reference: {previous_window: TRUE}
        thresholds:
          psi: {warning: 1e-3, critical: 0.2}
          ks_pvalue: {critical: 1}
          mae: {warning: .5, critical: null}
        inference_service: NULL
        drift: {bins: 010}
    """
    config = parse_config(textwrap.dedent(text))
    assert config.server.port == 8080
    assert config.server.max_body_bytes == 65536
    assert config.server.max_decompressed_bytes == 200000  # YAML 1.2: decimal, not octal
    assert config.server.auth.protect_metrics is True
    assert config.storage.url is None
    model = config.models[0]
    assert model.min_samples == 25 and model.drift.bins == 10
    assert model.reference is not None and model.reference.previous_window is True
    assert model.inference_service is None
    thresholds = {name: (t.warning, t.critical) for name, t in model.thresholds.items()}
    assert thresholds == {"psi": (0.001, 0.2), "ks_pvalue": (None, 1.0), "mae": (0.5, None)}
    assert type(model.thresholds["ks_pvalue"].critical) is float


def test_optional_strings_are_text_unless_null() -> None:
    text = MINIMAL + "    inference_service: 2026-01-01\n"
    assert parse_config(text).models[0].inference_service == "2026-01-01"
    text = MINIMAL + "    inference_service: 010\n"
    assert parse_config(text).models[0].inference_service == "010"
    for empty in ("~", "null", "Null", ""):
        text = MINIMAL + f"    inference_service: {empty}\n"
        assert parse_config(text).models[0].inference_service is None


def test_tokens_and_header_values_keep_their_text() -> None:
    text = (
        "server: {auth: {read_tokens: [0123456789012345678]}}\n"
        + MINIMAL
        + "webhooks:\n  - {name: w, url: 'https://x.test/h', headers: {X-Id: 0x0A, X-N: 007}}\n"
    )
    config = parse_config(text)
    assert [t.get_secret_value() for t in config.server.auth.read_tokens] == ["0123456789012345678"]
    headers = config.webhooks[0].headers
    assert {k: v.get_secret_value() for k, v in headers.items()} == {"X-Id": "0x0A", "X-N": "007"}


def test_a_duration_written_as_a_bare_number_is_named_in_the_error() -> None:
    assert errors_of(MINIMAL + "    schedule: 60\n") == [
        "monitor.yaml:6: models[0].schedule: '60' is not a duration such as 30s, 5m, 1h or 7d"
    ]
    assert errors_of(MINIMAL + "    schedule: 1:30\n") == [
        "monitor.yaml:6: models[0].schedule: '1:30' is not a duration such as 30s, 5m, 1h or 7d"
    ]


def test_a_number_where_a_number_is_wanted_is_still_checked() -> None:
    assert errors_of(MINIMAL + "    min_samples: 1:30\n") == [
        "monitor.yaml:6: models[0].min_samples: input should be a valid integer, unable to "
        "parse string as an integer"
    ]
    assert errors_of(MINIMAL + "    min_samples: 2026-01-01\n") == [
        "monitor.yaml:6: models[0].min_samples: input should be a valid integer, unable to "
        "parse string as an integer"
    ]


def test_environment_substitution_keeps_text_and_numbers() -> None:
    text = "server: {port: '${PORT}'}\n" + MINIMAL + "    inference_service: ${SVC:-010}\n"
    config = parse_config(text, environ={"PORT": "9000"})
    assert config.server.port == 9000
    assert config.models[0].inference_service == "010"


def test_error_in_a_flow_sequence_element_names_its_line() -> None:
    text = MINIMAL + "    alerts: {routes: [ok,\n                      1bad]}\n"
    [error] = errors_of(text)
    assert error.startswith("monitor.yaml:7: models[0].alerts.routes[1]: must start with a letter")


def test_error_in_a_nested_flow_mapping_names_its_line() -> None:
    text = (
        MINIMAL + "    thresholds: {psi: {warning: 0.1,\n                       critical: high}}\n"
    )
    assert errors_of(text) == [
        "monitor.yaml:7: models[0].thresholds.psi.critical: input should be a number or auto,"
        " got 'high'"
    ]


def test_error_in_a_nested_block_mapping_names_its_line() -> None:
    text = MINIMAL + "    thresholds:\n      psi:\n        warning: 0.1\n        critical: 1:30\n"
    assert errors_of(text) == [
        "monitor.yaml:9: models[0].thresholds.psi.critical: input should be a number or auto,"
        " got '1:30'"
    ]


def test_merge_keys_fill_in_what_a_mapping_leaves_out() -> None:
    text = """\
    models:
      - &base
        name: a
        task: regression
        features: [{name: x, type: numeric}]
        min_samples: 5
      - <<: *base
        name: b
        features: [{name: on, type: categorical}]
    """
    config = parse_config(textwrap.dedent(text))
    assert [(m.name, m.min_samples) for m in config.models] == [("a", 5), ("b", 5)]
    assert [(f.name, f.type) for f in config.models[1].features] == [("on", "categorical")]
    assert errors_of(text + "    name: c\n") == [
        "monitor.yaml:10: models[1].name: key is written twice"
    ]


def test_explicit_tags() -> None:
    text = (
        CLASSIFIER + "    classes: [!!str 010, !!int 010, !!bool true]\n    min_samples: !!int 7\n"
    )
    model = parse_config(text).models[0]
    assert model.classes == ["010", "10", "true"] and model.min_samples == 7
    assert errors_of(MINIMAL + "    min_samples: !!int 1.5\n") == [
        "monitor.yaml:6: models[0].min_samples: '1.5' is not a !!int"
    ]
    assert errors_of(MINIMAL + "    schedule: !!timestamp 2026-01-01\n") == [
        "monitor.yaml:6: models[0].schedule: unsupported tag !!timestamp"
    ]


def test_an_alias_inside_its_own_anchor_is_an_error() -> None:
    text = MINIMAL + "    drift: &d {bins: 5, more: *d}\n"
    assert errors_of(text) == [
        "monitor.yaml:6: models[0].drift.more: an alias refers to a node that contains it"
    ]


def test_nesting_too_deep_is_a_config_error() -> None:
    text = "server: " + "[" * 600 + "]" * 600 + "\n" + MINIMAL
    assert errors_of(text) == ["monitor.yaml: invalid YAML: nested too deeply"]


@pytest.mark.parametrize("written", ["ref.csv", "./data/../ref.csv", "ABSOLUTE"])
def test_reference_path_is_resolved_and_remembered_as_written(tmp_path: Path, written: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "ref.csv").write_text("x\n1\n")
    written = str(tmp_path / "ref.csv") if written == "ABSOLUTE" else written
    config = parse_config(MINIMAL + f"    reference: {{path: '{written}'}}\n", base_dir=tmp_path)
    reference = config.models[0].reference
    assert reference is not None
    assert reference.path is not None and reference.path.resolve() == tmp_path / "ref.csv"
    assert reference.written_path == written
