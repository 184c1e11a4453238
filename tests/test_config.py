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
    assert model.thresholds["psi"].critical == 0.25
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
