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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .config import BestOfNConfig
from .data import (Layout, Problem, Row, RowError, count_field, is_local, numbered, optional_text, problem_from_row,
                   read_local_rows, reward_field, row_error, row_label, short, text_field)
from .errors import BestOfNError, first_line
from .grading import EXPRESSION, grade
from .methods import GREEDY
from .pipeline import Models, plan_scores, run_in
from .prm.formats import LINE
from .io import check_output_dir, jsonl_bytes
from .rundir import FILES, IMPORT_STAGE, WRITTEN, content_key, lock_run_dir, open_run_dir, remove_written

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("problem", "answer", "completions")
NEEDS = ("problem and answer (text), completions (a list of N solution texts) and optionally scores (per completion "
         "a number or a list of step rewards in [0, 1]), completion_tokens, level, unique_id, greedy")
UNKNOWN = "unknown (imported)"  # the model name config.yaml gets when the source does not say


@dataclass
class Imported:
    """One checked row: its problem and its solutions, every value typed (nothing stored as ``'None'``)."""

    problem: Problem
    completions: list[str]
    scores: list[list[float]] | None  # per completion, its step rewards (one for an outcome reward); None: no scores
    one_score: bool  # the source gave one number per completion, not step rewards
    tokens: list[int | None]  # per completion; None where the source does not say (a missing count is not 0)
    greedy: str | None
    greedy_tokens: int | None


def read_rows(source: str, split: str = "train", subset: str | None = None) -> list[Row]:
    """Rows of a local ``.jsonl``/``.json``/``.parquet`` file (read line by line, so a bad line is named) or of a
    Hub dataset (``subset``: its config name), each with where it is."""
    if is_local(source):
        return read_local_rows(source, "completions file", NEEDS)
    import datasets  # slow to import; only Hub sources need it

    try:
        rows = datasets.load_dataset(source, subset, split=split).to_list()
    except Exception as e:  # datasets wraps network, auth and format errors in many types
        raise BestOfNError(f"cannot load completions {source!r} (split {split!r}) from the Hub: {type(e).__name__}: "
                           f"{first_line(e)}. Offline? Pass a local .jsonl/.parquet file instead") from None
    if not rows:
        raise BestOfNError(f"completions dataset {source} has no rows; each row needs {NEEDS}")
    return numbered(rows)


def _level(value: Any) -> int:
    """``3`` or ``"Level 3"`` -> 3; absent -> 0 ("not given")."""
    if value is None or value == "":
        return 0
    m = re.fullmatch(r"\s*(?:Level\s+)?([1-5])\s*", value) if isinstance(value, str) else None
    if m:
        return int(m.group(1))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise RowError("level", f"is {short(value)}, not a level 1-5 (e.g. 3 or 'Level 3')")
    return value


def _imported_problem(row: dict[str, Any], default_id: str) -> Problem:
    uid = row.get("unique_id")
    return Problem(unique_id=default_id if uid is None or uid == "" else text_field(row, "unique_id", numbers=True),
                   problem=text_field(row, "problem"), answer=text_field(row, "answer", numbers=True),
                   level=_level(row.get("level")), subject=optional_text(row, "subject"),
                   solution=optional_text(row, "solution"))


# The problem columns of an imported row: the same checks as a dataset's (bestofn.data.problem_from_row).
IMPORT_LAYOUT = Layout("import", NEEDS, EXPRESSION, lambda r: True, _imported_problem)


def _scores(value: Any, n: int) -> tuple[list[list[float]] | None, bool]:
    """``scores``: per completion, a number (an outcome reward) or a list of step rewards; each in [0, 1]."""
    if value is None:
        return None, False
    if not isinstance(value, list) or len(value) != n:
        got = f"{len(value)} entries" if isinstance(value, list) else f"a {type(value).__name__} ({short(value)})"
        raise RowError("scores", f"has {got}, not one per completion ({n})")
    rewards, one = [], False
    for i, score in enumerate(value):
        if isinstance(score, list):
            rewards.append([reward_field(x, f"scores[{i}][{j}]") for j, x in enumerate(score)])
        elif score is None:
            raise RowError(f"scores[{i}]", "is null (give every completion its score, or leave scores out)")
        else:
            rewards.append([reward_field(score, f"scores[{i}]")])
            one = True
    return rewards, one


def check_row(row: Row, position: int) -> Imported:
    """The one check of an imported solution row: its problem as a dataset row, then its completion texts, scores
    finite and in [0, 1], token counts non-negative integers; ``RowError`` names the bad field."""
    data = row.data
    problem = problem_from_row(data, IMPORT_LAYOUT, f"row/{position}")
    completions = data.get("completions")
    if completions is None:
        text_field(data, "completions")  # raises: missing or null
    if not isinstance(completions, list) or not completions:
        raise RowError("completions", f"is {short(completions)}, not a list of solution texts")
    n = len(completions)  # problems may have fewer than the largest N (adaptive sampling, a smaller search pool)
    texts = [text_field({f"completions[{i}]": c}, f"completions[{i}]", empty=True) for i, c in enumerate(completions)]
    scores, one = _scores(data.get("scores"), n)
    counts = data.get("completion_tokens")
    if counts is not None and (not isinstance(counts, list) or len(counts) != n):
        raise RowError("completion_tokens", f"is {short(counts)}, not one count per completion ({n})")
    tokens = [count_field(c, f"completion_tokens[{i}]") for i, c in enumerate(counts or [None] * n)]
    greedy = data.get("greedy")
    greedy = None if greedy is None or greedy == "" else text_field(data, "greedy", empty=True)
    return Imported(problem, texts, scores, one, tokens, greedy, count_field(data.get("greedy_tokens"), "greedy_tokens"))


def check_rows(rows: list[Row], source: str) -> list[Imported]:
    """Every row checked (the first bad one named by file, line and field); N is the most completions of a row."""
    if not rows:
        raise BestOfNError(f"{source} has no rows")
    first = rows[0].data
    missing = [c for c in REQUIRED_COLUMNS if c not in first]
    if missing:
        raise BestOfNError(f"{source} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                           f"(it has {', '.join(sorted(first))}); each row needs problem, answer and completions "
                           f"(a list of solution texts)")
    checked = []
    for k, row in enumerate(rows):
        try:
            checked.append(check_row(row, k))
        except RowError as e:
            what = "completions file" if is_local(source) else "completions dataset"
            raise row_error(what, source, row, e, f"each row needs {NEEDS}", row_label(row.data)) from None
    if len({c.problem.unique_id for c in checked}) != len(checked):
        raise BestOfNError(f"{source}: unique_id repeats; each row must be one problem")
    return checked


def import_completions(source: str, output_dir: str | Path, *, split: str = "train", subset: str | None = None,
                       generator: str | None = None, prm: str | None = None, temperature: float | None = None,
                       top_p: float | None = None, aggregation: str = "last", grading_timeout: int = 5,
                       overwrite: bool = False) -> Path:
    """Write the run directory ``output_dir`` from the completions at ``source``; return its path.

    The problems, greedy solutions (if any) and samples become chunks of the run directory that stand in for
    generation; given scores become the scores chunks of the PRM the config names, so ``bestofn run`` with
    another PRM rescores them. With scores the run is finished here (results and report-ready files).
    """
    check_output_dir(output_dir)
    raw = read_rows(source, split, subset)
    rows, columns = check_rows(raw, source), raw[0].data
    out = Path(output_dir)
    with lock_run_dir(out):  # a `bestofn run` writing the same directory stops this import, and the reverse
        if any((out / name).exists() for name in WRITTEN):
            if not overwrite:
                raise BestOfNError(f"{out} holds a run directory; choose a new --output-dir, or pass --overwrite to "
                                   f"replace it")
            remove_written(out)  # only what bestofn wrote: other files in the folder stay
        return _write_import(rows, sorted(columns), source, out, split=split, subset=subset, generator=generator,
                             prm=prm, temperature=temperature, top_p=top_p, aggregation=aggregation,
                             grading_timeout=grading_timeout)


def _write_import(rows: list[Imported], columns: list[str], source: str, out: Path, *, split: str, subset: str | None,
                  generator: str | None, prm: str | None, temperature: float | None, top_p: float | None,
                  aggregation: str, grading_timeout: int) -> Path:
    n = max(len(r.completions) for r in rows)
    has_scores = any(r.scores is not None for r in rows)
    if has_scores and not all(r.scores is not None for r in rows):
        lacking = next(k for k, r in enumerate(rows) if r.scores is None)
        raise BestOfNError(f"{source}: problem {rows[lacking].problem.unique_id} has no scores but others do; give "
                           f"scores for every row or for none")
    if any(r.greedy is not None for r in rows) and not all(r.greedy is not None for r in rows):
        raise BestOfNError(f"{source}: {sum(r.greedy is not None for r in rows)} of {len(rows)} rows have a greedy "
                           f"solution; give one for every row or for none")
    problems = [r.problem for r in rows]
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
    for r in tqdm(rows, desc="grading imported completions", unit="problem"):
        p = r.problem
        if r.greedy is not None:
            greedy.append({"unique_id": p.unique_id, "text": r.greedy, "num_tokens": r.greedy_tokens,
                           "finish_reason": None, **grade(r.greedy, p.answer, grading_timeout, p.answer_kind)})
        for i, (text, tokens) in enumerate(zip(r.completions, r.tokens)):
            samples.append({"unique_id": p.unique_id, "sample_index": i, "text": text, "num_tokens": tokens,
                            "finish_reason": None, **grade(text, p.answer, grading_timeout, p.answer_kind)})
    # They become chunks of the run directory: what `bestofn run` reads in place of generating.
    chunks: dict[str, list[str]] = {}
    for stage, part in (("problems", [p.to_dict() for p in problems]), (GREEDY, greedy), ("samples", samples)):
        key = content_key(stage, source, part)
        run_dir.save_chunk(stage, key, part)
        chunks[stage] = [key]
    if has_scores:
        # Step 5: the given rewards, saved as the scores of the PRM the config names (another PRM rescores).
        given = [{"step_rewards": rewards, "prm_truncated": False, "prm_tokens": None}
                 for r in rows for rewards in r.scores]
        chunks["scores"] = []
        for chunk in plan_scores(config, problems, samples):
            part, given = given[: len(chunk.payload["texts"])], given[len(chunk.payload["texts"]):]
            run_dir.save_chunk("scores", chunk.key, part)
            chunks["scores"].append(chunk.key)  # kept when another PRM rescores: they cannot be recomputed
    record = {
        "source": source, "split": split, "subset": subset, "rows": len(rows), "n": n, "columns": columns,
        "greedy": bool(greedy),
        "scores": ("one per completion" if any(r.one_score for r in rows) else "step rewards") if has_scores else None,
        "token_counts": all(s["num_tokens"] is not None for s in samples),
        "stated": {"generator": generator, "prm": prm, "temperature": temperature, "top_p": top_p},
        "chunks": chunks,
    }
    key = content_key(IMPORT_STAGE, record)  # the record kept as a chunk too: a damaged manifest is rebuilt from it
    run_dir.save_chunk(IMPORT_STAGE, key, [record])
    run_dir.update_manifest(step_separator=LINE, imported_from={**record, "chunks": {**chunks, IMPORT_STAGE: [key]}})
    if has_scores:
        run_in(run_dir, False, Models())  # step 6 and the files users read: no model is loaded
    else:  # the files users read, so far: `bestofn run` with a PRM scores them and writes the rest
        run_dir.publish({FILES["problems"]: jsonl_bytes(p.to_dict() for p in problems),
                         FILES["greedy"]: jsonl_bytes(greedy), FILES["samples"]: jsonl_bytes(samples)})
    _log_summary(out, problems, greedy, samples, has_scores)
    return out


def _log_summary(out: Path, problems: list[Problem], greedy: list, samples: list, has_scores: bool) -> None:
    right = sum(s["correct"] for s in samples)
    log.info("imported %d problems x %d completions into %s (%d right%s%s)", len(problems),
             len(samples) // max(len(problems), 1), out, right, "" if greedy else "; no greedy solutions",
             "" if has_scores else "; no scores yet: score them with `bestofn run --config "
             f"{out / 'config.yaml'} --output-dir {out} --prm PRM`")
