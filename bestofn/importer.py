"""``bestofn import``: completions made elsewhere, turned into a run directory.

Solutions sampled by another tool (search-and-learn's published completion datasets, a vLLM script, an API)
become a run directory like the pipeline's own, so ``bestofn report``, the selection methods and PRM rescoring
(``bestofn run --config RUN_DIR/config.yaml --output-dir RUN_DIR --prm X --overwrite``) work on them.

Input: a ``.jsonl``/``.parquet`` file or a Hub dataset, one row per problem, in search-and-learn's column
layout (which imports as it is):

- ``problem``, ``answer`` (gold), ``completions`` (the N solution texts): required;
- ``scores``: per completion, a list of step rewards or one number (an outcome reward); optional;
- ``level``, ``subject``, ``unique_id``, ``solution``: optional (``level`` may read ``"Level 3"``);
- ``completion_tokens``: per completion, its generated-token count; optional (missing counts stay missing,
  never 0);
- ``greedy`` (a greedy solution's text) and ``greedy_tokens``: optional; without them the run has no greedy
  baseline.

Other columns (search-and-learn's ``pred``, ``agg_scores``, ``pred_weighted@4``...) are ignored: answers are
extracted and graded again with :mod:`bestofn.grading`, and selection is redone by the pipeline's own results
stage. ``config.yaml`` names the source as the dataset; ``manifest.json`` records where the data came from and
what it lacked.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .config import BestOfNConfig
from .data import Problem
from .errors import BestOfNError
from .grading import grade
from .methods import GREEDY
from .pipeline import Models, plan_scores, run_in
from .prm.formats import LINE
from .rundir import WRITTEN, content_key, lock_run_dir, open_run_dir, remove_written

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("problem", "answer", "completions")
UNKNOWN = "unknown (imported)"  # the model name config.yaml gets when the source does not say


def read_rows(source: str, split: str = "train", subset: str | None = None) -> list[dict[str, Any]]:
    """Rows of a local ``.jsonl``/``.json``/``.parquet`` file or of a Hub dataset (``subset``: its config name)."""
    import datasets  # slow to import; only this function needs it

    path = Path(source)
    try:
        if path.suffix in (".jsonl", ".json", ".parquet"):
            if not path.is_file():
                raise BestOfNError(f"completions file {source} does not exist")
            builder = "parquet" if path.suffix == ".parquet" else "json"
            return datasets.load_dataset(builder, data_files=str(path), split="train").to_list()
        return datasets.load_dataset(source, subset, split=split).to_list()
    except BestOfNError:
        raise
    except Exception as e:  # datasets wraps file, Arrow and Hub errors in many types
        raise BestOfNError(f"cannot read completions from {source!r}: {type(e).__name__}: {e}") from None


def check_columns(rows: list[dict[str, Any]], source: str) -> int:
    """Check the required columns and one N for all rows; return N."""
    if not rows:
        raise BestOfNError(f"{source} has no rows")
    missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
    if missing:
        raise BestOfNError(f"{source} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                           f"(it has {', '.join(sorted(rows[0]))}); each row needs problem, answer and completions "
                           f"(a list of solution texts)")
    sizes = {len(r["completions"] or []) for r in rows}
    if len(sizes) != 1 or 0 in sizes:
        raise BestOfNError(f"{source}: rows have {sorted(sizes)} completions; every problem needs the same N >= 1")
    return sizes.pop()


def _level(value: Any, index: int, source: str) -> int:
    """``3`` or ``"Level 3"`` -> 3; absent -> 0 ("not given")."""
    if value is None or value == "":
        return 0
    m = re.search(r"\d+", str(value))
    if not m:
        raise BestOfNError(f"row {index} of {source}: level {value!r} is not a number (expected e.g. 3 or 'Level 3')")
    return int(m.group())


def _rewards(score: Any) -> list[float]:
    """One completion's ``scores`` entry: a list of step rewards, or one number (an outcome reward)."""
    if score is None:
        return []
    if isinstance(score, (int, float)):
        return [float(score)]
    return [float(x) for x in score if x is not None]


def _tokens(row: dict[str, Any], n: int) -> list[int | None]:
    """Per-completion token counts; None for each one the source does not give (a missing count is not 0)."""
    counts = row.get("completion_tokens")
    if isinstance(counts, (list, tuple)) and len(counts) == n:
        return [None if c is None else int(c) for c in counts]
    return [None] * n


def import_completions(source: str, output_dir: str | Path, *, split: str = "train", subset: str | None = None,
                       generator: str | None = None, prm: str | None = None, temperature: float | None = None,
                       top_p: float | None = None, aggregation: str = "last", grading_timeout: int = 5,
                       overwrite: bool = False) -> Path:
    """Write the run directory ``output_dir`` from the completions at ``source``; return its path.

    The problems, greedy solutions (if any) and samples become chunks of the run directory that stand in for
    generation; given scores become the scores chunks of the PRM the config names, so ``bestofn run`` with
    another PRM rescores them. With scores the run is finished here (results and report-ready files).
    """
    rows = read_rows(source, split, subset)
    n = check_columns(rows, source)
    out = Path(output_dir)
    with lock_run_dir(out):  # a `bestofn run` writing the same directory stops this import, and the reverse
        if any((out / name).exists() for name in WRITTEN):
            if not overwrite:
                raise BestOfNError(f"{out} holds a run directory; choose a new --output-dir, or pass --overwrite to "
                                   f"replace it")
            remove_written(out)  # only what bestofn wrote: other files in the folder stay
        return _write_import(rows, n, source, out, split=split, subset=subset, generator=generator, prm=prm,
                             temperature=temperature, top_p=top_p, aggregation=aggregation,
                             grading_timeout=grading_timeout)


def _write_import(rows: list[dict[str, Any]], n: int, source: str, out: Path, *, split: str, subset: str | None,
                  generator: str | None, prm: str | None, temperature: float | None, top_p: float | None,
                  aggregation: str, grading_timeout: int) -> Path:
    has_scores = "scores" in rows[0] and any(r.get("scores") for r in rows)
    problems = [Problem(unique_id=str(r.get("unique_id") or f"row/{i}"), problem=str(r["problem"]),
                        answer=str(r["answer"]), level=_level(r.get("level"), i, source),
                        subject=str(r.get("subject") or ""), solution=str(r.get("solution") or ""))
                for i, r in enumerate(rows)]
    if len({p.unique_id for p in problems}) != len(problems):
        raise BestOfNError(f"{source}: unique_id repeats; each row must be one problem")
    levels = sorted({p.level for p in problems if 1 <= p.level <= 5}) or [1, 2, 3, 4, 5]
    defaults = BestOfNConfig()
    config = BestOfNConfig(
        dataset=source, dataset_split=split, levels=levels, num_problems=len(problems), n=n,
        generator=generator or UNKNOWN, prm=prm or (UNKNOWN if has_scores else defaults.prm),
        temperature=temperature if temperature is not None else defaults.temperature,
        top_p=top_p if top_p is not None else defaults.top_p, aggregation=aggregation,
        grading_timeout=grading_timeout, output_dir=str(out),
    )
    run_dir = open_run_dir(config, overwrite=True)

    # Steps 3-4: greedy (if given) and the N samples, graded with the project's own grader.
    greedy, samples = [], []
    for p, r in zip(tqdm(problems, desc="grading imported completions", unit="problem"), rows):
        if r.get("greedy"):
            greedy.append({"unique_id": p.unique_id, "text": str(r["greedy"]), "num_tokens": r.get("greedy_tokens"),
                           "finish_reason": None, **grade(str(r["greedy"]), p.answer, grading_timeout)})
        for i, (text, tokens) in enumerate(zip(r["completions"], _tokens(r, n))):
            samples.append({"unique_id": p.unique_id, "sample_index": i, "text": str(text), "num_tokens": tokens,
                            "finish_reason": None, **grade(str(text), p.answer, grading_timeout)})
    if greedy and len(greedy) != len(problems):
        raise BestOfNError(f"{source}: {len(greedy)} of {len(problems)} rows have a greedy solution; give one for "
                           f"every row or for none")
    # They become chunks of the run directory: what `bestofn run` reads in place of generating.
    chunks: dict[str, list[str]] = {}
    for stage, part in (("problems", [p.to_dict() for p in problems]), (GREEDY, greedy), ("samples", samples)):
        key = content_key(stage, source, part)
        run_dir.save_chunk(stage, key, part)
        chunks[stage] = [key]
    one_score = False
    if has_scores:
        # Step 5: the given rewards, saved as the scores of the PRM the config names (another PRM rescores).
        given = []
        for row, p in zip(rows, problems):
            scores = row.get("scores") or [None] * n
            if len(scores) != n:
                raise BestOfNError(f"{source}: problem {p.unique_id} has {len(scores)} scores for {n} completions")
            one_score = one_score or any(not isinstance(score, (list, tuple)) for score in scores)
            given += [{"step_rewards": _rewards(score), "prm_truncated": False, "prm_tokens": None} for score in scores]
        for chunk in plan_scores(config, problems, samples):
            part, given = given[: len(chunk.payload["texts"])], given[len(chunk.payload["texts"]):]
            run_dir.save_chunk("scores", chunk.key, part)
    run_dir.update_manifest(step_separator=LINE, imported_from={
        "source": source, "split": split, "subset": subset, "rows": len(rows), "n": n,
        "columns": sorted(rows[0]),
        "greedy": bool(greedy),
        "scores": ("one per completion" if one_score else "step rewards") if has_scores else None,
        "token_counts": all(s["num_tokens"] is not None for s in samples),
        "stated": {"generator": generator, "prm": prm, "temperature": temperature, "top_p": top_p},
        "chunks": chunks,
    })
    if has_scores:
        run_in(run_dir, False, Models())  # step 6 and the files users read: no model is loaded
    _log_summary(out, problems, greedy, samples, has_scores)
    return out
def _log_summary(out: Path, problems: list[Problem], greedy: list, samples: list, has_scores: bool) -> None:
    right = sum(s["correct"] for s in samples)
    log.info("imported %d problems x %d completions into %s (%d right%s%s)", len(problems),
             len(samples) // max(len(problems), 1), out, right, "" if greedy else "; no greedy solutions",
             "" if has_scores else "; no scores yet: score them with `bestofn run --config "
             f"{out / 'config.yaml'} --output-dir {out} --prm PRM`")
