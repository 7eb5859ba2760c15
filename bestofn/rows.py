"""Rows read from a file or the Hub, each with where it is, and the checks every row goes through.

Two kinds of rows enter bestofn: **problem rows** (a dataset: step 1) and **solution rows** (completions made
elsewhere: ``bestofn import``). Whatever their source, a row that is wrong stops the command with one line
naming the file, the line number (1-based, as an editor shows it) or row number, and the field; nothing is
stored as the text ``'None'``, and no value is taken on trust (a ``NaN`` score, a string count).

Local ``.jsonl`` and ``.json`` files are read here, one JSON value at a time, so that a malformed line is
named; ``datasets`` would hide it behind "An error occurred while generating the dataset".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BestOfNError, first_line

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
# Suffixes of data files bestofn does not read: such a source is a local file, never a Hub id.
OTHER_DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xls", ".arrow", ".feather", ".yaml", ".yml")


@dataclass(frozen=True)
class Row:
    """One row of a source and where it is: ``line 30`` of a ``.jsonl`` file, ``row 30`` of a table."""

    where: str
    data: dict[str, Any]


class RowError(ValueError):
    """What is wrong with one field of a row (the caller adds the file and the row's place)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"field {field} {problem}")
        self.field = field


# --- reading ------------------------------------------------------------------------------------------------
def is_local(source: str) -> bool:
    """Whether ``source`` names a local file (existing, or with a data file's suffix) rather than a Hub id."""
    path = Path(source)
    return path.exists() or path.suffix.lower() in LOCAL_SUFFIXES + OTHER_DATA_SUFFIXES


def read_local_rows(path: str | Path, what: str, needs: str) -> list[Row]:
    """The rows of a local ``.jsonl``/``.json``/``.parquet`` file, each with its line (or row) number.

    ``what`` names the file in errors ("dataset file", "completions file"); ``needs`` says what each row
    needs, for the error of an empty file or a line that is not an object.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        raise BestOfNError(f"{what} {path} is a folder; pass one .jsonl, .json or .parquet file")
    if suffix not in LOCAL_SUFFIXES:
        raise BestOfNError(f"{what} {path} is a {suffix or 'suffix-less'} file; bestofn reads .jsonl, .json and "
                           f".parquet files (convert it, e.g. with pandas: df.to_json('{path.stem}.jsonl', "
                           f"orient='records', lines=True))")
    if not path.is_file():
        raise BestOfNError(f"{what} {path} does not exist")
    rows = _read_parquet(path, what) if suffix == ".parquet" else _read_json(path, what, needs)
    if not rows:
        raise BestOfNError(f"{what} {path} is empty; it needs one row per line with {needs}")
    return rows


def _read_json(path: Path, what: str, needs: str) -> list[Row]:
    """JSON lines (``.jsonl``, or a ``.json`` file that is not one JSON document), or a JSON array of objects."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BestOfNError(f"cannot read {what} {path} ({type(e).__name__}: {first_line(e)})") from None
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise BestOfNError(f"{what} {path}: line {e.lineno} is not valid JSON ({e.msg}, column {e.colno}); "
                               f"the file must be one JSON array of objects, or one JSON object per line") from None
        return [_object(item, f"item {k}", path, what, needs) for k, item in enumerate(items, start=1)]
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise BestOfNError(f"{what} {path}: line {number} is not valid JSON ({e.msg}, column {e.colno}); "
                               f"each line must be one JSON object with {needs}") from None
        rows.append(_object(value, f"line {number}", path, what, needs))
    return rows


def _object(value: Any, where: str, path: Path, what: str, needs: str) -> Row:
    if not isinstance(value, dict):
        raise BestOfNError(f"{what} {path}: {where} is a JSON {type(value).__name__}, not an object with {needs}")
    return Row(where, value)


def _read_parquet(path: Path, what: str) -> list[Row]:
    import pyarrow.parquet as pq  # a dependency of datasets; imported here, it is slow to import

    try:
        table = pq.read_table(path)
    except Exception as e:  # Arrow raises several types for a damaged or foreign file
        raise BestOfNError(f"cannot read {what} {path} as Parquet ({type(e).__name__}: {first_line(e)})") from None
    return [Row(f"row {k}", row) for k, row in enumerate(table.to_pylist(), start=1)]


def numbered(rows: Sequence[dict[str, Any]]) -> list[Row]:
    """Rows that come without a file (a Hub dataset, a list in Python), numbered from 1."""
    return [Row(f"row {k}", row) for k, row in enumerate(rows, start=1)]


# --- field checks (each raises RowError naming the field) -------------------------------------------------------
def short(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _null_or_missing(row: dict[str, Any], field: str) -> RowError:
    if field not in row:
        return RowError(field, f"is missing (the row has {', '.join(sorted(map(str, row))) or 'no fields'})")
    return RowError(field, "is null")


def number_text(value: int | float) -> str:
    """A number as answer text: ``27.0`` -> ``27`` (AMC stores integer answers as floats), ``0.5`` -> ``0.5``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def text_field(row: dict[str, Any], field: str, *, numbers: bool = False, empty: bool = False) -> str:
    """The text of ``row[field]``: a string (or, with ``numbers``, a finite int or float), non-empty unless
    ``empty``. Missing, null, lists, booleans, ``NaN`` and blank text are each named."""
    value = row.get(field)
    if value is None:
        raise _null_or_missing(row, field)
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise RowError(field, f"is {value}, not a finite number")
        return number_text(value)
    if not isinstance(value, str):
        kind = "text or a number" if numbers else "text"
        raise RowError(field, f"is a {type(value).__name__} ({short(value)}), not {kind}")
    if not empty and not value.strip():
        raise RowError(field, "is empty")
    return value


def optional_text(row: dict[str, Any], field: str) -> str:
    """``row[field]`` as text, or ``""`` when it is missing or null (never the text ``'None'``)."""
    value = row.get(field)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RowError(field, f"is a {type(value).__name__} ({short(value)}), not text")
    return number_text(value) if isinstance(value, (int, float)) else value


def count_field(value: Any, field: str) -> int | None:
    """A token count: a non-negative integer (``12.0`` is 12), or None when not given."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RowError(field, f"has {short(value)}, not a non-negative integer number of tokens")
    return value


def reward_field(value: Any, field: str) -> float:
    """One reward: a finite number in [0, 1] (a probability, as every supported PRM gives and selection sums)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError(field, f"has {short(value)} ({type(value).__name__}), not a number in [0, 1]")
    if not 0 <= value <= 1:  # also NaN and infinities
        raise RowError(field, f"has {value}, not a number in [0, 1] (rewards are probabilities; rescale logits "
                              f"with a sigmoid first)")
    return float(value)


def row_error(what: str, source: str, row: Row, error: RowError, needs: str, label: str = "",
              more: str = "") -> BestOfNError:
    """The one-line error of a bad field: file, line (or row), the row's id when it has one, field, fix
    (``more``: e.g. how many other rows are bad too)."""
    return BestOfNError(f"{what} {source}: {row.where}{label}: {error}{more}; {needs}")
