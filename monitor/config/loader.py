"""Read monitor.yaml: YAML 1.2 with line numbers, ``${VAR}`` substitution, validation, cross-checks
and threshold levels' ranges and order (``semantics.py``).

Every problem becomes a ``ConfigIssue`` naming file, line and key path, and all of them are
reported together in one ``ConfigError``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from monitor.config.groups import group_issues
from monitor.config.paths import PathKey, format_path, line_for
from monitor.config.schema import VERSIONS_FORMS, Config, StatisticName
from monitor.config.semantics import level_issues
from monitor.config.yaml_reader import read_yaml
from monitor.errors import ConfigError, ConfigIssue

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate a config file; raise ``ConfigError`` listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(file, None, "", f"cannot read file: {exc.strerror}")]
        ) from exc
    return parse_config(text, file=file, base_dir=Path(path).resolve().parent, environ=environ)


def parse_config(
    text: str,
    *,
    file: str = "monitor.yaml",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate config text; ``file`` is only used in messages, ``base_dir`` resolves paths."""
    data, lines = read_yaml(text, file=file, schema=Config)
    if data is None:
        raise ConfigError([ConfigIssue(file, 1, "", "the config file is empty")])
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, 1, "", "the top level must be a mapping of keys")])
    issues: list[ConfigIssue] = []
    data = _substitute_env(
        data, (), os.environ if environ is None else environ, lines, file, issues
    )
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        issues.extend(_issues_from_validation(exc, lines, file))
        issues.sort(key=lambda issue: issue.line or 0)
        raise ConfigError(issues) from None
    issues.extend(_cross_check(config, lines, file))
    issues.extend(level_issues(config, lines, file))
    issues.extend(group_issues(config, lines, file))
    if issues:
        issues.sort(key=lambda issue: issue.line or 0)
        raise ConfigError(issues)
    return config


def _substitute_env(
    value: Any,
    path: PathKey,
    environ: Mapping[str, str],
    lines: dict[PathKey, int],
    file: str,
    issues: list[ConfigIssue],
) -> Any:
    """Replace ``${VAR}`` (or ``${VAR:-default}``) in every string value from the environment."""
    if isinstance(value, dict):
        return {
            k: _substitute_env(v, (*path, str(k)), environ, lines, file, issues)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _substitute_env(v, (*path, i), environ, lines, file, issues)
            for i, v in enumerate(value)
        ]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        issues.append(
            ConfigIssue(
                file,
                line_for(path, lines),
                format_path(path),
                f"environment variable {name} is not set",
            )
        )
        return ""

    return _ENV_REFERENCE.sub(replace, value)


def _issues_from_validation(
    exc: ValidationError, lines: dict[PathKey, int], file: str
) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc = _key_path(error["loc"])
        issues.append(
            ConfigIssue(file, line_for(loc, lines), format_path(loc), _message(error, loc))
        )
    return issues


def _key_path(loc: tuple[str | int, ...]) -> PathKey:
    """An error's key path in the file: without pydantic's ``[key]`` marks, nor the tag of
    the form ``versions`` was read as (``schema.VERSIONS_FORMS``)."""
    path: list[str | int] = []
    for part in loc:
        if part == "[key]" or (path and path[-1] == "versions" and part in VERSIONS_FORMS):
            continue
        path.append(part)
    return tuple(path)


def _message(error: Any, loc: PathKey) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "literal_error":
        if len(loc) >= 2 and loc[-2] == "thresholds":
            known = ", ".join(get_args(StatisticName))
            return f"unknown statistic {loc[-1]!r} (known: {known})"
        return f"must be {ctx['expected']}"
    if kind == "extra_forbidden":
        suggestion = _suggest(loc)
        return "unknown key" + (f" (did you mean {suggestion!r}?)" if suggestion else "")
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        if loc and loc[-1] == "url":
            return "must be an http:// or https:// URL"
        return "must start with a letter or _ and use only letters, digits, _ . - (at most 128)"
    message: str = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def _suggest(loc: PathKey) -> str | None:
    """Suggest the nearest known key for a misspelt one."""
    model: type[BaseModel] | None = Config
    skip_key = False
    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(part, int) or skip_key:
            skip_key = False
            continue
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return None
        skip_key = getattr(field.annotation, "__origin__", None) is dict
        model = _inner_model(field.annotation)
    if model is None:
        return None
    names = [field.alias or name for name, field in model.model_fields.items()]
    matches = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _cross_check(config: Config, lines: dict[PathKey, int], file: str) -> list[ConfigIssue]:
    issues = []
    webhooks = {webhook.name for webhook in config.webhooks}
    for m, model in enumerate(config.models):
        for r, route in enumerate(model.alerts.routes):
            if route not in webhooks:
                loc: PathKey = ("models", m, "alerts", "routes", r)
                known = ", ".join(sorted(webhooks)) or "none are configured"
                issues.append(
                    ConfigIssue(
                        file,
                        line_for(loc, lines),
                        format_path(loc),
                        f"no webhook named {route!r} (webhooks: {known})",
                    )
                )
        features = {f.name for f in model.features} | {"__prediction__", "__label__"}
        for rule, threshold in model.thresholds.items():
            named: list[tuple[PathKey, str]] = [
                (("models", m, "thresholds", rule, "features", f), name)
                for f, name in enumerate(threshold.features or [])
            ]
            named += [
                (("models", m, "thresholds", rule, "overrides", name), name)
                for name in threshold.overrides
            ]
            for loc, name in named:
                if name not in features:
                    issues.append(
                        ConfigIssue(
                            file,
                            line_for(loc, lines),
                            format_path(loc),
                            f"{name!r} is not a feature of model {model.name!r}",
                        )
                    )
    return issues
