"""Step 1 of the method: MATH-500, levels 1-3, a reproducible subset.

The subset must be the same on every machine and Python version for the same seed, so it is not drawn with
``random`` (whose algorithms may change between versions) but by ranking problems on a hash of
``(seed, unique_id)``: stable, portable, and independent of the file's row order.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import BestOfNError, first_line
from .seeds import seed_hash

REQUIRED_FIELDS = ("problem", "answer", "level", "unique_id")


@dataclass
class Problem:
    """One MATH problem with its reference answer."""

    unique_id: str
    problem: str
    answer: str
    level: int
    subject: str = ""
    solution: str = ""  # the reference worked solution, kept for the published dataset

    def to_dict(self) -> dict:
        return asdict(self)


def load_math500(source: str, split: str = "test") -> list[Problem]:
    """Load MATH-500 from a local ``.jsonl``/``.parquet`` file or a Hub dataset id, and check every row.

    All rows are checked before any work starts, so a bad row 30 stops the run at once, naming its line.
    """
    rows = _load_rows(source, split)
    if not rows:
        raise BestOfNError(f"dataset {source} has no rows; it needs one MATH problem per row with {_NEEDS}")
    problems, bad = [], []
    for where, row in rows:
        try:
            problems.append(_to_problem(row))
        except ValueError as e:
            bad.append(f"{where}{_id_of(row)} {e}")
    if bad:
        more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise BestOfNError(f"dataset {source}: {bad[0]}{more}; every row needs {_NEEDS}")
    seen: dict[str, str] = {}
    for (where, _), p in zip(rows, problems):
        if p.unique_id in seen:
            raise BestOfNError(f"dataset {source}: {where} repeats unique_id {p.unique_id!r} of {seen[p.unique_id]}; "
                               f"every problem needs its own unique_id")
        seen[p.unique_id] = where
    return problems


_NEEDS = "problem, answer and unique_id (non-empty text) and level (an integer 1-5)"


def _load_rows(source: str, split: str) -> list[tuple[str, dict]]:
    """The rows of ``source``, each with where it is ("line 30" of a .jsonl file, "row 30" otherwise)."""
    path = Path(source)
    if path.suffix in (".jsonl", ".json", ".parquet"):
        if not path.is_file():
            raise BestOfNError(f"dataset file {source} does not exist")
        if path.suffix == ".jsonl":
            return _read_jsonl_rows(path)
    import datasets  # imported here: it is slow to import and only the other formats need it

    if path.suffix in (".json", ".parquet"):
        builder = "parquet" if path.suffix == ".parquet" else "json"
        try:
            ds = datasets.load_dataset(builder, data_files=str(path), split="train")
        except Exception as e:  # datasets wraps JSON and Arrow errors in many types
            raise BestOfNError(f"cannot read dataset file {source} ({type(e).__name__}: {first_line(e)}); "
                               f"expected {builder.upper()} rows with {_NEEDS}") from None
    else:
        try:
            ds = datasets.load_dataset(source, split=split)
        except Exception as e:
            raise BestOfNError(
                f"cannot load dataset {source!r} (split {split!r}) from the Hub: {type(e).__name__}: {first_line(e)}. "
                "Offline? Pass a local file instead, e.g. --dataset ../shared/data/math500.jsonl"
            ) from None
    return [(f"row {i}", row) for i, row in enumerate(ds.to_list(), start=1)]


def _read_jsonl_rows(path: Path) -> list[tuple[str, dict]]:
    """One JSON object per line; blank lines are skipped, anything else that is not an object is named."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BestOfNError(f"cannot read dataset file {path} ({type(e).__name__}: {first_line(e)})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise BestOfNError(f"dataset file {path}: line {number} is not valid JSON ({e.msg} at column {e.colno}); "
                               f"each line must be one JSON object with {_NEEDS}") from None
        if not isinstance(row, dict):
            raise BestOfNError(f"dataset file {path}: line {number} is a JSON {type(row).__name__}, not an object "
                               f"with {_NEEDS}")
        rows.append((f"line {number}", row))
    if not rows:
        raise BestOfNError(f"dataset file {path} is empty; it needs one JSON object per line with {_NEEDS}")
    return rows


def _id_of(row: dict) -> str:
    uid = row.get("unique_id")
    return f" (unique_id {uid!r})" if isinstance(uid, str) and uid.strip() else ""


def _to_problem(row: dict) -> Problem:
    """A checked :class:`Problem`; ``ValueError`` says what is wrong with the row."""
    missing = [f for f in REQUIRED_FIELDS if row.get(f) is None]
    if missing:
        raise ValueError(f"lacks required fields {missing} (it has {sorted(row)})")
    text = {}
    for name in ("problem", "answer", "unique_id"):
        value = row[name]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"has {name} of type {type(value).__name__} ({_short(value)}), not text")
        text[name] = str(value)
        if not text[name].strip():
            raise ValueError(f"has an empty {name}")
    level = row["level"]
    if isinstance(level, str) and level.strip().isdigit():
        level = int(level)
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
        raise ValueError(f"has level {_short(level)}, not an integer 1-5")
    return Problem(unique_id=text["unique_id"], problem=text["problem"], answer=text["answer"], level=level,
                   subject=str(row.get("subject") or ""), solution=str(row.get("solution") or ""))


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def select_subset(problems: list[Problem], levels: list[int], num_problems: int, seed: int) -> list[Problem]:
    """Keep ``levels`` and draw ``num_problems`` of them, stratified by level.

    Each level gets a share proportional to its size (largest-remainder rounding, ties to the lower level);
    within a level the problems with the smallest ``sha256(seed:unique_id)`` are taken. The result is
    sorted by level, then unique_id.
    """
    pool = [p for p in problems if p.level in levels]
    if num_problems > len(pool):
        raise BestOfNError(
            f"asked for {num_problems} problems but levels {levels} have only {len(pool)}; "
            f"lower --num-problems or add levels"
        )
    by_level = {lvl: sorted((p for p in pool if p.level == lvl), key=lambda p: seed_hash(seed, p.unique_id)) for lvl in levels}
    quotas = _proportional_quotas({lvl: len(ps) for lvl, ps in by_level.items()}, num_problems)
    chosen = [p for lvl, ps in by_level.items() for p in ps[: quotas[lvl]]]
    return sorted(chosen, key=lambda p: (p.level, p.unique_id))


def _proportional_quotas(sizes: dict[int, int], total: int) -> dict[int, int]:
    """Split ``total`` across strata in proportion to their sizes (Hamilton's largest-remainder method)."""
    pool = sum(sizes.values())
    exact = {k: total * n / pool for k, n in sizes.items()}
    quotas = {k: int(x) for k, x in exact.items()}
    by_remainder = sorted(sizes, key=lambda k: (-(exact[k] - quotas[k]), k))
    for k in by_remainder[: total - sum(quotas.values())]:
        quotas[k] += 1
    return quotas
