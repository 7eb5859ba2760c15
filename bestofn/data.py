"""Step 1 of the method: MATH-500, levels 1-3, a reproducible subset.

The subset must be the same on every machine and Python version for the same seed, so it is not drawn with
``random`` (whose algorithms may change between versions) but by ranking problems on a hash of
``(seed, unique_id)``: stable, portable, and independent of the file's row order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import BestOfNError
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
    """Load MATH-500 from a local ``.jsonl``/``.parquet`` file or a Hub dataset id, and check its fields."""
    rows = _load_rows(source, split)
    if not rows:
        raise BestOfNError(f"dataset {source} has no rows")
    missing = [f for f in REQUIRED_FIELDS if f not in rows[0]]
    if missing:
        raise BestOfNError(
            f"dataset {source} lacks required fields {missing} (it has {sorted(rows[0])}); "
            f"MATH-500 rows need {list(REQUIRED_FIELDS)}, plus 'subject' when present"
        )
    return [_to_problem(row, i, source) for i, row in enumerate(rows)]


def _load_rows(source: str, split: str) -> list[dict]:
    import datasets  # imported here: it is slow to import and only this function needs it

    path = Path(source)
    if path.suffix in (".jsonl", ".json", ".parquet"):
        if not path.is_file():
            raise BestOfNError(f"dataset file {source} does not exist")
        builder = "parquet" if path.suffix == ".parquet" else "json"
        try:
            ds = datasets.load_dataset(builder, data_files=str(path), split="train")
        except Exception as e:  # datasets wraps JSON and Arrow errors in many types
            raise BestOfNError(f"cannot read dataset file {source}: {e}") from None
        return ds.to_list()
    try:
        ds = datasets.load_dataset(source, split=split)
    except Exception as e:
        raise BestOfNError(
            f"cannot load dataset {source!r} (split {split!r}) from the Hub: {type(e).__name__}: {e}. "
            "Offline? Pass a local file instead, e.g. --dataset ../shared/data/math500.jsonl"
        ) from None
    return ds.to_list()


def _to_problem(row: dict, index: int, source: str) -> Problem:
    try:
        level = int(row["level"])
    except (TypeError, ValueError):
        raise BestOfNError(f"row {index} of {source}: level {row['level']!r} is not an integer 1-5") from None
    return Problem(
        unique_id=str(row["unique_id"]),
        problem=str(row["problem"]),
        answer=str(row["answer"]),
        level=level,
        subject=str(row.get("subject") or ""),
        solution=str(row.get("solution") or ""),
    )


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
