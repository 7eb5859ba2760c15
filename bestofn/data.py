"""Step 1 of the method: a math benchmark, every row checked, and a reproducible subset of its problems.

Benchmarks are named by the registry (:data:`DATASETS`: ``math500``, ``gsm8k``, ``aime24``, ``aime25``,
``amc23``, ``minerva_math``, ``olympiadbench``), each the canonical Hub copy with its own column layout and
gold answer (docs/datasets.md gives sources and licenses). A local ``.jsonl``/``.json``/``.parquet`` file in
any of those layouts loads as it is: the layout is recognised from the columns, or named by
``dataset_format``. Every row goes through one check (:func:`problem_from_row`), so a bad row stops the run
before any work, naming file, line and field.

The subset must be the same on every machine and Python version for the same seed, so it is not drawn with
``random`` (whose algorithms may change between versions) but by ranking problems on a hash of
``(seed, unique_id)``: stable, portable, and independent of the file's row order. Only MATH has difficulty
levels; for the other benchmarks every problem is eligible and the ``levels`` setting does not apply.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import BestOfNError, first_line
from .grading import EXPRESSION, INTEGER, find_answer
from .seeds import seed_hash

# --- rows read from a file or the Hub, each with where it is, and the checks every row goes through ---------------
# Two kinds of rows enter bestofn: problem rows (a dataset: this step) and solution rows (completions made
# elsewhere: ``bestofn import``). Whatever their source, a row that is wrong stops the command with one line
# naming the file, the line number (1-based, as an editor shows it) or row number, and the field; nothing is
# stored as the text 'None', and no value is taken on trust (a NaN score, a string count). Local .jsonl and
# .json files are read here, one JSON value at a time, so that a malformed line is named; ``datasets`` would
# hide it behind "An error occurred while generating the dataset".
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


# --- problems -------------------------------------------------------------------------------------------------
ALL = "all"  # num_problems: every eligible problem
NO_LEVEL = 0  # the level of a problem from a benchmark without levels ("level not given" in reports)


@dataclass
class Problem:
    """One problem with its gold answer, as every later step reads it."""

    unique_id: str
    problem: str
    answer: str
    level: int  # 1-5 for MATH; 0 (NO_LEVEL) for benchmarks without levels
    subject: str = ""
    solution: str = ""  # the reference worked solution, kept for the published dataset
    answer_kind: str = EXPRESSION  # how answers are compared with the gold (bestofn.grading.ANSWER_KINDS)

    def to_dict(self) -> dict:
        return asdict(self)


# --- layouts: how each benchmark publishes its rows --------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """One published column layout: how to recognise it and how a row becomes a :class:`Problem`."""

    name: str
    needs: str  # what every row needs, for error messages
    answer_kind: str
    matches: Callable[[dict[str, Any]], bool]  # does a row with these columns look like this layout?
    read: Callable[[dict[str, Any], str], Problem]  # row, default id -> problem; RowError names a bad field


def _problem_text(row: dict[str, Any]) -> str:
    """The problem statement: ``problem``, or ``question`` (GSM8K, OlympiadBench and some copies)."""
    return text_field(row, "problem" if "problem" in row else "question")


def _row_id(row: dict[str, Any], fields: tuple[str, ...], default: str) -> str:
    """A stable id for a benchmark without ``unique_id``: ``NAME/ID`` from its first id column present (``id``,
    ``idx``), else ``default``, ``NAME/POSITION`` (0-based, in the published order: GSM8K's ``idx`` is that)."""
    for name in fields:
        if row.get(name) is not None:
            return f"{_prefix(default)}/{text_field(row, name, numbers=True).strip()}"
    return default


def _math(row: dict[str, Any], default_id: str) -> Problem:
    level = row.get("level")
    if level is None:
        text_field(row, "level")  # raises: missing or null
    m = re.fullmatch(r"\s*(?:Level\s+)?(\d)\s*", level) if isinstance(level, str) else None
    if m:
        level = int(m.group(1))
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
        raise RowError("level", f"is {short(level)}, not an integer 1-5")
    return Problem(unique_id=text_field(row, "unique_id", numbers=True), problem=_problem_text(row),
                   answer=text_field(row, "answer", numbers=True), level=level,
                   subject=optional_text(row, "subject"), solution=optional_text(row, "solution"))


def gsm8k_answer(text: str) -> str:
    """GSM8K's gold: the text after ``####``, thousands separators removed (``#### 1,600`` -> ``1600``)."""
    if "####" not in text:
        raise RowError("answer", "has no '#### ANSWER' line (GSM8K keeps its final answer after ####)")
    gold = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text.rsplit("####", 1)[1].strip())
    if not gold:
        raise RowError("answer", "has nothing after ####")
    return gold


def _gsm8k(row: dict[str, Any], default_id: str) -> Problem:
    full = text_field(row, "answer")
    return Problem(unique_id=_row_id(row, ("idx",), default_id), problem=_problem_text(row),
                   answer=gsm8k_answer(full), level=NO_LEVEL, solution=full.rsplit("####", 1)[0].rstrip())


def _final_answer(row: dict[str, Any], default_id: str) -> Problem:
    """AIME and AMC: ``problem`` and ``answer`` (AMC's ``27.0`` is the integer 27)."""
    return Problem(unique_id=_row_id(row, ("id",), default_id), problem=_problem_text(row),
                   answer=text_field(row, "answer", numbers=True), level=NO_LEVEL,
                   solution=optional_text(row, "solution"))


def minerva_answer(solution: str) -> str:
    """Minerva Math's gold: the last ``\\boxed{}`` of its worked solution (the project's own extraction)."""
    answer, status = find_answer(solution)
    if answer is None:
        raise RowError("solution", f"has no final \\boxed{{}} answer ({status})")
    return answer


def _minerva(row: dict[str, Any], default_id: str) -> Problem:
    solution = optional_text(row, "solution")
    gold = text_field(row, "answer", numbers=True) if "answer" in row else minerva_answer(text_field(row, "solution"))
    return Problem(unique_id=_row_id(row, ("idx", "id"), default_id),
                   problem=_problem_text(row), answer=gold, level=NO_LEVEL, subject=optional_text(row, "type"),
                   solution=solution)


def olympiadbench_answer(final_answer: Any) -> str:
    """OlympiadBench's gold: its ``final_answer`` list without math-mode ``$`` (also inside an entry: ``$69$,$84$``)
    or a final period; several answers are all required, so they are joined into one comma-separated list,
    which math-verify compares as a set."""
    if not isinstance(final_answer, list) or not final_answer:
        kind = "empty" if final_answer == [] else f"a {type(final_answer).__name__} ({short(final_answer)})"
        raise RowError("final_answer", f"is {kind}, not a list of answers")
    parts = []
    for item in final_answer:
        text = _MATH_DOLLAR.sub("", item).strip().rstrip(".").strip() if isinstance(item, str) else ""
        if not text:
            raise RowError("final_answer", f"holds {short(item)}, not the text of an answer")
        parts.append(text)
    return ", ".join(parts)


# A math-mode ``$`` (not ``\$``, a dollar sign): OlympiadBench writes several answers in one string, ``$69$,$84$``.
_MATH_DOLLAR = re.compile(r"(?<!\\)\$")


def _olympiadbench(row: dict[str, Any], default_id: str) -> Problem:
    question, context = text_field(row, "question"), optional_text(row, "context")
    solution = row.get("solution")
    return Problem(unique_id=_row_id(row, ("id",), default_id),
                   problem=f"{context.strip()}\n\n{question}" if context.strip() else question,
                   answer=olympiadbench_answer(row.get("final_answer") if "final_answer" in row else
                                               text_field(row, "final_answer")),
                   level=NO_LEVEL, subject=optional_text(row, "subfield"),
                   solution="\n\n".join(s for s in solution if isinstance(s, str)) if isinstance(solution, list)
                   else optional_text(row, "solution"))


def _prefix(default_id: str) -> str:
    return default_id.rsplit("/", 1)[0]


def _has(row: dict[str, Any], *columns: str) -> bool:
    return all(c in row for c in columns)


# In the order they are tried when recognising a file's layout from its first row's columns.
LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("olympiadbench", "question and final_answer (a list of answers)", EXPRESSION,
           lambda r: _has(r, "final_answer"), _olympiadbench),
    Layout("math", "problem, answer and unique_id (non-empty text) and level (an integer 1-5)", EXPRESSION,
           lambda r: "problem" in r and ("level" in r or "unique_id" in r), _math),
    Layout("gsm8k", "question and answer (a worked solution ending in '#### ANSWER')", INTEGER,
           lambda r: _has(r, "question", "answer") and "####" in str(r.get("answer")), _gsm8k),
    Layout("minerva", "problem and solution (a worked solution whose last \\boxed{} is the answer)", EXPRESSION,
           lambda r: _has(r, "solution") and "answer" not in r and ("problem" in r or "question" in r), _minerva),
    Layout("final_answer", "problem and answer (the final answer: text or a number)", INTEGER,
           lambda r: "answer" in r and ("problem" in r or "question" in r), _final_answer),
)}


# --- the registry of benchmarks ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSpec:
    """A benchmark by name: its canonical Hub copy, its layout, and where it comes from (docs/datasets.md)."""

    name: str
    title: str  # how reports and cards name it
    hub_id: str
    config: str | None
    split: str
    layout: str  # a key of LAYOUTS
    license: str  # in words, for docs and cards
    hub_license: str  # the Hub's license id for a dataset card's metadata ("other": see the words)

    @property
    def url(self) -> str:
        return f"https://huggingface.co/datasets/{self.hub_id}"


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("math500", "MATH-500", "HuggingFaceH4/MATH-500", None, "test", "math", "MIT", "mit"),
    DatasetSpec("gsm8k", "GSM8K", "openai/gsm8k", "main", "test", "gsm8k", "MIT", "mit"),
    DatasetSpec("aime24", "AIME 2024", "HuggingFaceH4/aime_2024", None, "train", "final_answer",
                "problems (c) MAA; published on the Hub without a license", "other"),
    DatasetSpec("aime25", "AIME 2025", "yentinglin/aime_2025", None, "train", "final_answer",
                "problems (c) MAA; published on the Hub without a license", "other"),
    DatasetSpec("amc23", "AMC 2023", "math-ai/amc23", None, "test", "final_answer",
                "problems (c) MAA; published on the Hub without a license", "other"),
    DatasetSpec("minerva_math", "Minerva Math", "math-ai/minervamath", None, "test", "minerva",
                "problems from MIT OpenCourseWare (CC BY-NC-SA 4.0)", "cc-by-nc-sa-4.0"),
    DatasetSpec("olympiadbench", "OlympiadBench", "Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train",
                "olympiadbench", "Apache-2.0", "apache-2.0"),
)}
DATASET_NAMES = tuple(DATASETS)  # the choices of the dataset_format setting


def dataset_spec(dataset: str) -> DatasetSpec | None:
    """The registry entry a run's data is: named by its name or its Hub id. A file is no benchmark, whatever its
    layout (``dataset_format`` says only how to read its columns: an AMC file read as AIME's is still AMC)."""
    return DATASETS.get(dataset) or next((s for s in DATASETS.values() if s.hub_id == dataset), None)


def dataset_title(dataset: str) -> str:
    """How reports and cards name a run's data: the benchmark's title (``GSM8K``), else the file's or Hub
    dataset's name (``HuggingFaceH4/MATH-500`` -> ``MATH-500``, ``../data/my_set.jsonl`` -> ``my_set``)."""
    spec = dataset_spec(dataset)
    if spec is not None:
        return spec.title
    path = Path(dataset)
    return path.stem if path.suffix.lower() in (".jsonl", ".json", ".parquet") else path.name or dataset


# --- loading ---------------------------------------------------------------------------------------------------
def load_problems(dataset: str, split: str = "test", dataset_format: str | None = None) -> list[Problem]:
    """Every problem of ``dataset`` (a registry name, a Hub id, or a local file), each row checked.

    ``split`` applies to a Hub id outside the registry (a name brings its own split); ``dataset_format`` (a
    registry name) says which layout a file or Hub id is in, else it is recognised from the columns. All rows
    are checked before any work starts, so a bad row 30 stops the run at once, naming its line and field.
    """
    if dataset_format is not None and dataset_format not in DATASETS:
        raise BestOfNError(f"dataset_format must be one of {', '.join(DATASET_NAMES)}, got {dataset_format!r}")
    spec = dataset_spec(dataset)
    rows, label = _load_rows(dataset, split, spec, dataset_format)
    named = DATASETS[dataset_format].layout if dataset_format is not None else spec.layout if spec else None
    layout = LAYOUTS[named] if named is not None else _recognise(rows[0], label)
    # Ids made for benchmarks without unique_id start with the benchmark's name when the data is one (its registry
    # name or Hub id), else with the file's (or dataset's) name: a layout names no benchmark.
    prefix = spec.name if spec is not None else Path(dataset).stem
    problems, bad = [], []
    for position, row in enumerate(rows):
        try:
            problems.append(problem_from_row(row.data, layout, f"{prefix}/{position}"))
        except RowError as e:
            bad.append((row, e))
    if bad:
        (row, e), more = bad[0], f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise row_error("dataset", label, row, e, f"every row needs {layout.needs}", row_label(row.data), more)
    _check_unique(problems, rows, label)
    return problems


def load_math500(source: str, split: str = "test") -> list[Problem]:
    """MATH-500 (or any file in its layout) from a local file or a Hub id: :func:`load_problems` in MATH's layout."""
    return load_problems(source, split, "math500")


def problem_from_row(row: dict[str, Any], layout: Layout, default_id: str) -> Problem:
    """The one check of a problem row, whatever its source: the layout reads it (each field typed and
    non-empty, a ``RowError`` naming a bad one) into a :class:`Problem` with its layout's answer kind."""
    problem = layout.read(row, default_id)
    problem.answer_kind = layout.answer_kind
    return problem


def _recognise(first: Row, label: str) -> Layout:
    for layout in LAYOUTS.values():
        if layout.matches(first.data):
            return layout
    raise BestOfNError(f"dataset {label}: the columns of its first row ({', '.join(sorted(map(str, first.data)))}) "
                       f"match none of the known layouts; name it with --dataset-format "
                       f"({', '.join(DATASET_NAMES)}) or give MATH-500's columns (problem, answer, level, unique_id)")


def _load_rows(dataset: str, split: str, spec: DatasetSpec | None, dataset_format: str | None = None
               ) -> tuple[list[Row], str]:
    """The rows of a local file or Hub dataset, each with where it is, and how errors name the source."""
    if dataset not in DATASETS and is_local(dataset):
        needs = f"the columns of {spec.title}" if spec is not None else "a problem and its answer"
        return read_local_rows(dataset, "dataset file", needs), f"file {dataset}"
    # A name loads its benchmark's Hub copy, config and split; a registry Hub id its config (OlympiadBench needs one).
    source = DATASETS.get(dataset) or next((s for s in DATASETS.values() if s.hub_id == dataset), None)
    hub_id, config = (source.hub_id, source.config) if source is not None else (dataset, None)
    if dataset in DATASETS:
        split = DATASETS[dataset].split
    import datasets  # imported here: it is slow to import and only Hub datasets need it

    named = f"{dataset} (Hub dataset {hub_id}" + (f", config {config}" if config else "") + f", split {split})"
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as e:  # datasets wraps network, auth and format errors in many types
        raise BestOfNError(
            f"cannot load dataset {named} from the Hub: {type(e).__name__}: {first_line(e)}. Offline? Download it "
            f"elsewhere (`hf download {hub_id} --repo-type dataset --local-dir DIR`) and pass its data file: "
            f"--dataset DIR/FILE" + (f" --dataset-format {spec.name} (a file named {spec.name}.jsonl or "
                                     f".parquet keeps the benchmark's ids)" if spec is not None else
                                     f" --dataset-format {dataset_format}" if dataset_format else "")
        ) from None
    rows = numbered(ds.to_list())
    if not rows:
        raise BestOfNError(f"dataset {named} has no rows")
    return rows, named


def row_label(row: dict[str, Any]) -> str:
    """`` (unique_id 'x')`` or `` (id 60)``: how an error names a row beside its line, when it has an id."""
    uid = row.get("unique_id", row.get("id"))
    return f" ({'unique_id' if 'unique_id' in row else 'id'} {uid!r})" if isinstance(uid, (str, int)) and str(uid).strip() else ""


def _check_unique(problems: list[Problem], rows: list[Row], label: str) -> None:
    seen: dict[str, str] = {}
    for row, p in zip(rows, problems):
        if p.unique_id in seen:
            raise BestOfNError(f"dataset {label}: {row.where} repeats unique_id {p.unique_id!r} of {seen[p.unique_id]}; "
                               f"every problem needs its own unique_id")
        seen[p.unique_id] = row.where


# --- the subset ----------------------------------------------------------------------------------------------------
def has_levels(problems: list[Problem]) -> bool:
    """Whether the benchmark has difficulty levels (MATH does; the others give every problem level 0)."""
    return any(p.level != NO_LEVEL for p in problems)


def select_subset(problems: list[Problem], levels: list[int], num_problems: int | str, seed: int) -> list[Problem]:
    """Keep ``levels`` (when the benchmark has levels) and draw ``num_problems`` (or ``"all"``), stratified by level.

    Each level gets a share proportional to its size (largest-remainder rounding, ties to the lower level);
    within a level the problems with the smallest ``sha256(seed:unique_id)`` are taken. A benchmark without
    levels is one stratum: every problem is eligible and ``levels`` does not apply. The result is sorted by
    level, then unique_id.
    """
    leveled = has_levels(problems)
    pool = [p for p in problems if p.level in levels] if leveled else list(problems)
    if num_problems == ALL:
        return sorted(pool, key=lambda p: (p.level, p.unique_id))
    if num_problems > len(pool):
        where = f"levels {levels} have only {len(pool)}" if leveled else f"the dataset has only {len(pool)}"
        raise BestOfNError(f"asked for {num_problems} problems but {where}; lower --num-problems (or pass "
                           f"--num-problems all)" + (" or add levels" if leveled else ""))
    strata = sorted({p.level for p in pool})
    by_level = {lvl: sorted((p for p in pool if p.level == lvl), key=lambda p: seed_hash(seed, p.unique_id)) for lvl in strata}
    quotas = _proportional_quotas({lvl: len(ps) for lvl, ps in by_level.items()}, num_problems)
    chosen = [p for lvl, ps in by_level.items() for p in ps[: quotas[lvl]]]
    return sorted(chosen, key=lambda p: (p.level, p.unique_id))


def subset_note(problems: list[Problem]) -> str:
    """How the subset was drawn, in words, for reports and cards (the levels clause only where there are levels)."""
    if has_levels(problems):
        return "stratified by level, the smallest sha256(seed:unique_id) within each level"
    return ("the benchmark has no difficulty levels: every problem was eligible (the levels setting does not "
            "apply), the smallest sha256(seed:unique_id) taken")


def _proportional_quotas(sizes: dict[int, int], total: int) -> dict[int, int]:
    """Split ``total`` across strata in proportion to their sizes (Hamilton's largest-remainder method)."""
    pool = sum(sizes.values())
    exact = {k: total * n / pool for k, n in sizes.items()}
    quotas = {k: int(x) for k, x in exact.items()}
    by_remainder = sorted(sizes, key=lambda k: (-(exact[k] - quotas[k]), k))
    for k in by_remainder[: total - sum(quotas.values())]:
        quotas[k] += 1
    return quotas
