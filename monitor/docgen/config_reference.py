"""The configuration reference: one Markdown table per section of ``monitor.yaml``, read from
the pydantic models in ``monitor.config.schema`` (key, type, default, and the description each
field carries as the string under it).

Sections follow the models' nesting from ``Config``: ``server``, ``server.auth``, ...,
``models[]``, ``models[].thresholds.<statistic>``, ``webhooks[]``. A key whose value is itself
a section links to that section's table.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from monitor.config.durations import format_duration
from monitor.config.schema import AUTO_STATISTICS, Config, StatisticName


@dataclass(frozen=True, slots=True)
class Section:
    """A table: the key path readers write (``models[].alerts``) and the model it holds."""

    path: str
    model: type[BaseModel]

    @property
    def anchor(self) -> str:
        words = "".join(c if c.isalnum() else " " for c in self.path).split()
        return "-".join(["config", *words]) if words else "config-top-level"


class UndocumentedKey(ValueError):
    """A configuration key has no description."""


def _key(name: str, field: FieldInfo) -> str:
    return field.alias or name


def _model_in(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The section model an annotation holds, with the path suffix to reach one of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _model_in(args[0])
    if origin in (typing.Union, types.UnionType):
        found = [_model_in(arg) for arg in args if arg is not type(None)]
        return next((item for item in found if item is not None), None)
    if origin is list:
        inner = _model_in(args[0])
        return (inner[0], "[]" + inner[1]) if inner else None
    if origin is dict:
        inner = _model_in(args[1])
        placeholder = "<statistic>" if args[0] == StatisticName else "<feature>"
        return (inner[0], f".{placeholder}" + inner[1]) if inner else None
    return None


def sections(root: type[BaseModel] = Config, path: str = "") -> list[Section]:
    """Every section under ``root``, depth first, the root (path ``""``) first."""
    found = [Section(path, root)]
    for name, field in root.model_fields.items():
        held = _model_in(field.annotation)
        if held is not None:
            model, suffix = held
            key = _key(name, field)
            found += sections(model, f"{path}.{key}{suffix}" if path else f"{key}{suffix}")
    return found


def _section_of(model: type[BaseModel], all_sections: list[Section]) -> Section | None:
    return next((s for s in all_sections if s.model is model and s.path), None)


def type_text(annotation: Any, all_sections: list[Section]) -> str:
    """A reader's name for a field's type: ``duration``, ``list of string``, ``a | b``."""
    if annotation is type(None):
        return "null"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0], all_sections)
    if origin is Literal:
        return " | ".join(f"`{value}`" for value in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(a, all_sections) for a in args if a is not type(None))
    if origin is list:
        return "list of " + type_text(args[0], all_sections)
    if origin is dict:
        key = "statistic" if args[0] == StatisticName else "name"
        return f"map of {key} to " + type_text(args[1], all_sections)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        section = _section_of(annotation, all_sections)
        return f"[`{section.path}`](#{section.anchor})" if section else "mapping"
    names: dict[Any, str] = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        timedelta: "duration",
        Path: "path",
        SecretStr: "string (secret)",
    }
    if annotation in names:
        return names[annotation]
    raise TypeError(f"no reader's name for the type {annotation!r}")


def _bounds(field: FieldInfo) -> str:
    low = high = None
    parts = []
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = f"{item.ge:,}"
        elif isinstance(item, annotated_types.Gt):
            parts.append(f"above {item.gt:,}")
        elif isinstance(item, annotated_types.Le):
            high = f"{item.le:,}"
        elif isinstance(item, annotated_types.MinLen):
            parts.append(f"at least {item.min_length}")
    if low is not None and high is not None:
        parts.append(f"{low} to {high}")
    elif low is not None:
        parts.append(f"at least {low}")
    elif high is not None:
        parts.append(f"at most {high}")
    return ", ".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, int | float):
        return f"{value}"
    if isinstance(value, BaseModel):
        written = value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return "{" + ", ".join(f"{k}: {v}" for k, v in written.items()) + "}"
    if isinstance(value, list | dict) and not value:
        return "[]" if isinstance(value, list) else "{}"
    return str(value)


def default_text(field: FieldInfo) -> str:
    """The default as it would be written in YAML; ``required`` or ``unset`` otherwise."""
    if field.is_required():
        return "required"
    default = field.get_default(call_default_factory=True)
    if default is None:
        return "unset"
    if isinstance(default, BaseModel) and not default.model_dump(exclude_defaults=True):
        return "its defaults"
    return f"`{_value(default)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def section_table(section: Section, all_sections: list[Section]) -> str:
    """The section's heading and table. Raises ``UndocumentedKey`` for a key without a
    description."""
    title = f"`{section.path}`" if section.path else "Top level"
    lines = [f"### {title} {{#{section.anchor}}}", ""]
    if section.path.endswith(".<statistic>"):
        lines += [
            "`<statistic>` is one of "
            + ", ".join(f"`{name}`" for name in typing.get_args(StatisticName))
            + ". A level may be `auto` for "
            + ", ".join(f"`{name}`" for name in AUTO_STATISTICS)
            + ".",
            "",
        ]
    lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in section.model.model_fields.items():
        key = _key(name, field)
        if not field.description:
            where = f"{section.path}.{key}" if section.path else key
            raise UndocumentedKey(f"{where} ({section.model.__name__}.{name}) has no description")
        kind = type_text(field.annotation, all_sections)
        bounds = _bounds(field)
        if bounds:
            kind += f", {bounds}"
        cells = [f"`{key}`", kind, default_text(field), field.description]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def config_reference(root: type[BaseModel] = Config) -> str:
    """Every section's table, in the models' order."""
    found = sections(root)
    return "\n".join(section_table(section, found) for section in found)


def documented_keys(root: type[BaseModel] = Config) -> list[str]:
    """Every key path the reference documents (``server.port``, ``models[].alerts.for``)."""
    keys = []
    for section in sections(root):
        for name, field in section.model.model_fields.items():
            key = _key(name, field)
            keys.append(f"{section.path}.{key}" if section.path else key)
    return keys
