"""Read monitor.yaml as YAML 1.2, each plain scalar typed by what the schema expects there.

The only module that imports ruamel.yaml, which parses the text into nodes that keep every
scalar's source text and line. Values are then built here, guided by the pydantic schema:

- A **plain** (unquoted) scalar where only a string fits (names, class labels, feature lists,
  tokens, header values, paths, durations, choices) is its text exactly as written: ``010``,
  ``1:30``, ``2026-01-01``, ``yes``, ``True``, ``null`` and ``~`` stay those strings. Where a
  string or nothing fits (``secret``, ``storage.url``, ``inference_service``...), ``null``,
  ``Null``, ``NULL``, ``~`` mean "not set". An empty value is None everywhere, never ``""``.
- Anywhere else (numbers, booleans, unknown keys) the YAML 1.2 core schema decides
  (``core_value``): ``010`` is 10, ``0o10`` 8, ``0x1F`` 31, ``1e-3`` a float, only
  ``true``/``false`` are booleans, and ``1:30`` or ``2026-01-01`` are strings.
- Quoted and block scalars are strings; ``!!str``, ``!!int``, ``!!float``, ``!!bool`` and
  ``!!null`` force a type; any other tag is an error. Keys are always their text.
- Merge keys (``<<: *anchor``) fill in the keys a mapping does not write itself.

A ``%YAML 1.1`` directive does not bring back YAML 1.1's octals, sexagesimals or dates.
"""

from __future__ import annotations

import re
import types
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tag import Tag

from monitor.config.paths import PathKey, format_path
from monitor.errors import ConfigError, ConfigIssue

_CORE = "tag:yaml.org,2002:"
# the tag of a plain scalar whose type is still open (the schema decides it)
_PLAIN = "tag:drift-monitor,2026:plain"

_NULL = re.compile(r"null|Null|NULL|~|")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+")
_OCTAL = re.compile(r"0o([0-7]+)")
_HEX = re.compile(r"0x([0-9a-fA-F]+)")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INFINITY = re.compile(r"([-+]?)\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")

#: The type a scalar tagged ``!!<suffix>`` must resolve to.
_TAGGED: dict[str, type] = {"null": type(None), "bool": bool, "int": int, "float": float}
#: Types a plain scalar is given as its source text (pydantic validates the text).
_TEXT_TYPES = (str, SecretStr, Path, timedelta)


def core_value(text: str) -> bool | int | float | str | None:
    """A plain scalar by the YAML 1.2 core schema (YAML 1.2.2, section 10.3.2).

    >>> [core_value(t) for t in ("010", "0o10", "0x1F", "1e-3", "+.5", "True", "~", "")]
    [10, 8, 31, 0.001, 0.5, True, None, None]
    >>> [core_value(t) for t in ("1:30", "2026-01-01", "yes", "on", "1_000", "0b11", "-.inf")]
    ['1:30', '2026-01-01', 'yes', 'on', '1_000', '0b11', -inf]
    """
    if _NULL.fullmatch(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    try:
        if _INT.fullmatch(text):
            return int(text)
        if match := _OCTAL.fullmatch(text):
            return int(match.group(1), 8)
        if match := _HEX.fullmatch(text):
            return int(match.group(1), 16)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return text
    if _FLOAT.fullmatch(text):
        return float(text)
    if match := _INFINITY.fullmatch(text):
        return float("-inf") if match.group(1) == "-" else float("inf")
    if _NAN.fullmatch(text):
        return float("nan")
    return text


def read_yaml(text: str, *, file: str, schema: type[BaseModel]) -> tuple[Any, dict[PathKey, int]]:
    """The document's data shaped for ``schema``, and the 1-based line of every key path.

    Syntax errors and what cannot be built (a non-scalar key, a key written twice, an unknown
    tag) raise ``ConfigError`` naming file and line. An empty document is None.
    """
    yaml = YAML(typ="safe", pure=True)
    yaml.Resolver = _PlainScalarsOpen
    try:
        node = yaml.compose(text)
        if node is None:
            return None, {}
        builder = _Builder(file)
        return builder.build(node, schema, ()), builder.lines
    except RecursionError:  # both ruamel's composer and the builder recurse per level
        raise ConfigError(
            [ConfigIssue(file, None, "", "invalid YAML: nested too deeply")]
        ) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([ConfigIssue(file, line, "", f"invalid YAML: {problem}")]) from None
    except YAMLError as exc:
        raise ConfigError([ConfigIssue(file, None, "", f"invalid YAML: {exc}")]) from None


class _PlainScalarsOpen(VersionedResolver):
    """Leaves every plain scalar's type open (tag ``_PLAIN``) for the schema to decide.

    ruamel's own YAML 1.2 rules still read ``2026-01-01`` as a date and ``1_000`` as 1000.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0]:
            return Tag(suffix=_PLAIN)
        return super().resolve(kind, value, implicit)


class _Builder:
    """Builds Python values from nodes, recording the line of each key path it passes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[PathKey, int] = {}
        # the collections being built: an alias back into one of them would never end
        self._open: set[int] = set()

    def build(self, node: Node, expected: Any, path: PathKey) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, ScalarNode):
            return self._scalar(node, expected, path)
        if id(node) in self._open:
            self._fail(node, path, "an alias refers to a node that contains it")
        self._open.add(id(node))
        try:
            if isinstance(node, MappingNode) and node.tag == _CORE + "map":
                return self._mapping(node, expected, path)
            if isinstance(node, SequenceNode) and node.tag == _CORE + "seq":
                item = _item_type(expected)
                return [
                    self.build(child, item, (*path, index))
                    for index, child in enumerate(node.value)
                ]
            self._fail(node, path, f"unsupported tag {_shown(node.tag)}")
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: MappingNode, expected: Any, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, (key_node, value_node) in self._pairs(node, path).items():
            child = (*path, key)
            self.lines[child] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, _value_type(expected, key), child)
        return result

    def _pairs(self, node: MappingNode, path: PathKey) -> dict[str, tuple[Node, Node]]:
        """Key text to key and value nodes: the mapping's own, then those merged in."""
        own: dict[str, tuple[Node, Node]] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self._fail(key_node, path, "keys must be scalars")
            key: str = key_node.value
            if key == "<<" and key_node.tag == _PLAIN:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                merged.extend(sources)
                continue
            if key in own:
                self._fail(key_node, (*path, key), "key is written twice")
            own[key] = (key_node, value_node)
        # of several merged mappings the first wins, as the merge key type says
        for source in merged:
            if not isinstance(source, MappingNode):
                self._fail(source, path, "<< takes a mapping or a list of mappings")
            if id(source) in self._open:
                self._fail(source, path, "an alias refers to a node that contains it")
            self._open.add(id(source))
            try:
                for key, pair in self._pairs(source, path).items():
                    own.setdefault(key, pair)
            finally:
                self._open.discard(id(source))
        return own

    def _scalar(self, node: ScalarNode, expected: Any, path: PathKey) -> Any:
        text: str = node.value
        tag = node.tag
        if tag == _PLAIN:
            wants_text, nullable = _text_expected(expected)
            if not wants_text:
                return core_value(text)
            if text == "" or (nullable and _NULL.fullmatch(text)):
                return None
            return text
        if tag == _CORE + "str":
            return text
        suffix = tag.removeprefix(_CORE) if tag is not None else ""
        if tag is not None and tag.startswith(_CORE) and suffix in _TAGGED:
            value = core_value(text)
            if suffix == "float" and type(value) is int:
                value = float(value)
            if type(value) is _TAGGED[suffix]:
                return value
            self._fail(node, path, f"{text!r} is not a !!{suffix}")
        self._fail(node, path, f"unsupported tag {_shown(tag)}")

    def _fail(self, node: Node, path: PathKey, message: str) -> NoReturn:
        line = node.start_mark.line + 1
        raise ConfigError([ConfigIssue(self.file, line, format_path(path), message)])


def _shown(tag: str | None) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag and tag.startswith(_CORE) else str(tag)


def _alternatives(expected: Any) -> list[Any]:
    """The types a value may have where ``expected`` is declared, without Annotated wrappers."""
    origin = get_origin(expected)
    if origin is Annotated:
        return _alternatives(get_args(expected)[0])
    if origin is Union or origin is types.UnionType:
        return [alt for arg in get_args(expected) for alt in _alternatives(arg)]
    return [expected]


def _value_type(expected: Any, key: str) -> Any:
    """What the schema expects under ``key`` of a mapping expected to be ``expected``."""
    for alt in _alternatives(expected):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            for name, field in alt.model_fields.items():
                if key in (name, field.alias):
                    return field.annotation
            return Any
        if get_origin(alt) is dict:
            return get_args(alt)[1]
    return Any


def _item_type(expected: Any) -> Any:
    for alt in _alternatives(expected):
        if get_origin(alt) is list:
            return get_args(alt)[0]
    return Any


def _text_expected(expected: Any) -> tuple[bool, bool]:
    """Whether only strings fit where ``expected`` is declared, and whether None does too."""
    alternatives = _alternatives(expected)
    others = [alt for alt in alternatives if alt is not type(None)]
    wants_text = bool(others) and all(_is_text_type(alt) for alt in others)
    return wants_text, len(others) < len(alternatives)


def _is_text_type(alt: Any) -> bool:
    if get_origin(alt) is Literal:
        return all(isinstance(choice, str) for choice in get_args(alt))
    return isinstance(alt, type) and issubclass(alt, _TEXT_TYPES)
