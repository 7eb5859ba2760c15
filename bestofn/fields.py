"""Typed settings: what a config field accepts, read from its dataclass annotation and metadata.

One rule per field, used in both directions, so a setting is checked the same way wherever it comes from:

- :func:`check_value` checks a value already parsed (a YAML key, a Python argument) and normalizes it (an
  int where a float is expected becomes a float, so ``temperature: 1`` and ``--temperature 1`` name chunks
  alike);
- :func:`parse_text` turns a command-line string into the field's type (``--levels 1,2,3``).

Supported annotations: ``int``, ``float``, ``str``, ``bool``, ``list[X]`` (X one of the scalars; on the command
line comma-separated), ``X | None`` (``none`` on the command line), and ``Literal[...]``. ``metadata["choices"]``
restricts a value to a set; ``metadata["words"]`` adds words a scalar field also takes (``num_problems: all``);
``metadata["min"]`` is the least number a field takes (``n: 1``: a count where zero would mean nothing), checked
with the type wherever the value comes from. Checks across fields stay in :meth:`BestOfNConfig.validate`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import BestOfNError

_SCALARS = (bool, int, float, str)
_NAMES = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}
_GENERIC_EXAMPLES = {int: 1, float: 0.5, str: "text", bool: True}


@dataclass(frozen=True)
class FieldType:
    """What one setting accepts: a scalar type, maybe a list of it, maybe None, maybe only some choices."""

    name: str
    base: type
    is_list: bool = False
    optional: bool = False
    choices: tuple | None = None
    example: Any = None  # a good value, shown in error messages
    words: tuple[str, ...] = ()  # words taken besides values of the base type ("all")
    minimum: int | float | None = None  # the least value taken (metadata["min"])

    def describe(self) -> str:
        words = "".join(f" or {w}" for w in self.words)
        if self.choices:
            text = "one of " + ", ".join(str(c) for c in self.choices)
        elif self.is_list:
            text = f"a list of {_NAMES[self.base].removeprefix('an ').removeprefix('a ')}s"
        else:
            text = _NAMES[self.base]
        return text + words + (" or null" if self.optional else "")


@functools.cache
def field_types(cls: type) -> dict[str, FieldType]:
    """The :class:`FieldType` of every field of the dataclass ``cls``, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: _field_type(f, hints[f.name]) for f in dataclasses.fields(cls)}


def _field_type(f: dataclasses.Field, annotation: Any) -> FieldType:
    optional, is_list, choices = False, False, f.metadata.get("choices")
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        optional = True
        (annotation,) = [a for a in args if a is not type(None)]
    if typing.get_origin(annotation) is list:
        is_list, (annotation,) = True, typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        choices = choices or typing.get_args(annotation)
        annotation = type(choices[0])
    if annotation not in _SCALARS:
        raise TypeError(f"config field {f.name!r}: unsupported annotation {annotation!r} (see bestofn.fields)")
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    example = f.metadata.get("example", default)
    if example is None or example is dataclasses.MISSING:
        example = choices[0] if choices else _GENERIC_EXAMPLES[annotation]
        example = [example] if is_list else example
    return FieldType(f.name, annotation, is_list, optional, tuple(choices) if choices else None, example,
                     tuple(f.metadata.get("words", ())), f.metadata.get("min"))


# --- values already parsed (YAML, Python) ---------------------------------------------------------------------
def check_value(ft: FieldType, value: Any, where: str = "") -> Any:
    """Return ``value`` normalized to the field's type, or raise one line naming key, value and a good example."""
    if value is None and ft.optional:
        return None
    if isinstance(value, str) and value in ft.words:
        return value
    if ft.is_list:
        if not isinstance(value, (list, tuple)) or not value:
            _reject(ft, value, where)
        return [_check_scalar(ft, v, value, where) for v in value]
    return _check_scalar(ft, value, value, where)


def _check_scalar(ft: FieldType, value: Any, whole: Any, where: str) -> Any:
    ok = isinstance(value, ft.base) and not (ft.base is int and isinstance(value, bool))
    if ft.base is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if ok and ft.base is float and not math.isfinite(value):
        ok = False
    if ok and ft.choices and value not in ft.choices:
        ok = False
    if not ok:
        _reject(ft, whole, where)
    if ft.minimum is not None and value < ft.minimum:
        _too_small(ft, value, f"{where}{ft.name}", f"{ft.name}: {yaml_text(ft.example)}")
    return value


def _too_small(ft: FieldType, value: Any, name: str, example: str) -> None:
    words = "".join(f" (or {w})" for w in ft.words)
    raise BestOfNError(f"{name} must be at least {ft.minimum}{words}, got {value!r}; e.g. {example}")


def _reject(ft: FieldType, value: Any, where: str) -> None:
    hint = " (a string: write it without quotes)" if isinstance(value, str) and _parses(ft, value) else ""
    raise BestOfNError(f"{where}{ft.name} must be {ft.describe()}, got {value!r}{hint}; "
                       f"e.g. {ft.name}: {yaml_text(ft.example)}")


def _parses(ft: FieldType, text: str) -> bool:
    """Whether a quoted YAML value would be right without its quotes (``"0.8"`` for a float)."""
    try:
        return ft.base is not str and check_value(dataclasses.replace(ft, is_list=False), _parse_scalar(ft.base, text)) is not None
    except (ValueError, BestOfNError):
        return False


def yaml_text(value: Any, limit: int = 40) -> str:
    """A value as it is written in a recipe file (``[1, 2, 3]``, ``true``, ``0.8``), cut to ``limit`` characters."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- command-line text ----------------------------------------------------------------------------------------
def flag_name(name: str) -> str:
    """``max_new_tokens`` -> ``--max-new-tokens``."""
    return "--" + name.replace("_", "-")


def flag_text(value: Any) -> str:
    """A value as it is written on the command line (``1,2,3``, ``0.8``, ``none``)."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(flag_text(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_text(ft: FieldType, text: str) -> Any:
    """Turn the text of ``--flag TEXT`` into the field's type; one line naming flag, text and a good example."""
    if ft.optional and text.strip().lower() in ("none", "null", ""):
        return None
    if text.strip().lower() in ft.words:
        return text.strip().lower()
    try:
        if ft.is_list:
            items = [t.strip() for t in text.split(",")]
            if not all(items):  # "1,,2" or "1,": an item left out is a typo, not a shorter list
                raise ValueError(text)
            value: Any = [_parse_scalar(ft.base, t) for t in items]
        else:
            value = _parse_scalar(ft.base, text)
        # argparse checks choices, naming them; the minimum is checked below, naming the flag
        value = check_value(dataclasses.replace(ft, choices=None, minimum=None), value)
    except (ValueError, BestOfNError):
        kind = ft.describe().replace(" or null", " or none")
        if ft.is_list:
            kind += ", comma-separated"
        raise BestOfNError(f"{flag_name(ft.name)} takes {kind}, got {text!r}; "
                           f"e.g. {flag_name(ft.name)} {flag_text(ft.example)}") from None
    for item in value if ft.is_list else [value]:
        if ft.minimum is not None and item < ft.minimum:
            _too_small(ft, item, flag_name(ft.name), f"{flag_name(ft.name)} {flag_text(ft.example)}")
    return value


def _parse_scalar(base: type, text: str) -> Any:
    if base is bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(text)
        return lowered in ("true", "1", "yes")
    return base(text) if base is not str else text
