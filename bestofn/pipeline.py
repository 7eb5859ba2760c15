"""The whole method, stage by stage, in a run directory that survives kills and reruns.

Stages (each writes one artifact, see docs/artifacts.md) and the steps of the method they run (the numbering
of :mod:`bestofn`: 1 data, 2 prompts, 3 backends, 4 grading, 5 prm, 6 selection):

    problems  -> problems.jsonl   step 1      MATH-500, levels, stratified subset
    greedy    -> greedy.jsonl     steps 2-4   one greedy solution per problem, graded (the baseline)
    samples   -> samples.jsonl    steps 2-4   N sampled solutions per problem, graded
    scores    -> samples.jsonl    step 5      + PRM step rewards and reward per solution
    results   -> results.json     step 6      greedy / majority / naive / weighted Best-of-N accuracy

Where the artifacts live and what a rerun may trust is :mod:`bestofn.rundir`'s job; work is journaled one
chunk of problems at a time, so a killed stage resumes where it stopped. What each stage cost (time, tokens,
memory) goes to ``timings.json`` (:mod:`bestofn.costs`, one decorator per stage).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from . import costs
from .backends import GenerationBackend, make_backend, resolve_device, resolve_dtype
from .config import BestOfNConfig
from .data import Problem, load_math500, select_subset
from .errors import BestOfNError, missing_folder_error, model_load_error
from .grading import grade
from .io import read_jsonl, write_json, write_jsonl
from .methods.search import search_compute, search_stage
from .prm import load_prm, step_separator
from .prm.base import compile_enabled
from .prm.formats import LINE
from .prompts import render_prompt
from .rundir import RunDir, lock_run_dir, prepare_run_dir
from .seeds import derived_seed
from .selection import METHODS, Choice, aggregate, answer_groups, choose_majority, choose_naive, choose_weighted, group_answers

log = logging.getLogger(__name__)

SCORE_CHUNK_SOLUTIONS = 256  # solutions per PRM journal chunk: big enough for good batches, small enough to resume


# --- the entry point -------------------------------------------------------------------------------------------
def run(config: BestOfNConfig, overwrite: bool = False, repair: bool = False) -> dict[str, Any]:
    """Run (or resume) every stage and return the contents of ``results.json``.

    One process at a time writes a run directory (a second one stops at once). ``overwrite`` recomputes
    the stages whose settings changed or whose files were damaged; ``repair`` recomputes only the missing
    rows of damaged files. A run that fails (or is interrupted) before any stage finished in a folder it
    created removes that folder.
    """
    with lock_run_dir(config.output_dir) as created:
        run_dir = prepare_run_dir(config, overwrite, repair, created=created)
        try:
            return _run_stages(run_dir)
        except BaseException:
            run_dir.discard_if_unfinished()
            raise


def _run_stages(run_dir: RunDir) -> dict[str, Any]:
    config = run_dir.config
    # Check both models before any work (a typo in the PRM id must not wait for hours of generation),
    # and record the commits they resolve to, so the results can be traced to exact weights.
    models: dict[str, tuple[str, str | None]] = {}
    if not (run_dir.is_done("greedy") and run_dir.is_done("samples")):
        models["generator"] = (config.generator, check_model_reachable(
            config.generator, config.generator_revision, "generator", "--generator"))
    if not run_dir.is_done("scores"):
        models["prm"] = (config.prm, check_model_reachable(config.prm, config.prm_revision, "PRM", "--prm"))
    problems = stage_problems(run_dir)
    for role, (name, commit) in models.items():
        run_dir.record_model(role, name, commit)
    generator = _LazyBackend(config)
    try:
        greedy = stage_greedy(run_dir, problems, generator)
        samples = (stage_samples if config.method == "best_of_n" else stage_search)(run_dir, problems, generator)
    finally:
        generator.close()  # free the generator's memory before the PRM is loaded on the same device
    samples = stage_scores(run_dir, problems, samples)
    return stage_results(run_dir, problems, greedy, samples)


def check_model_reachable(name_or_path: str, revision: str | None, role: str, flag: str) -> str | None:
    """Fetch only the model's config.json, so a typo stops the run at once; return the Hub commit.

    A local folder must hold a config.json; its commit is None (unknown). A name that looks like a folder
    but is none is reported as a missing folder, not as a Hub problem.
    """
    missing = missing_folder_error(role, name_or_path, flag)
    if missing is not None:
        raise missing
    if Path(name_or_path).expanduser().is_dir():
        if not (Path(name_or_path).expanduser() / "config.json").exists():
            raise BestOfNError(f"the {role} folder {name_or_path} has no config.json; pass a model folder with {flag}")
        return None
    from huggingface_hub import hf_hub_download

    try:
        config_file = Path(hf_hub_download(name_or_path, "config.json", revision=revision))
    except Exception as e:  # offline, unknown repo, gated repo, bad revision: all end the same way
        raise model_load_error(role, name_or_path, flag, e) from None
    # The Hub cache stores files under .../snapshots/<commit>/, which names the exact weights used.
    return config_file.parent.name if config_file.parent.parent.name == "snapshots" else None


# --- step 1: problems ------------------------------------------------------------------------------------------
@costs.measured("problems")
def stage_problems(run_dir: RunDir) -> list[Problem]:
    if not run_dir.is_done("problems"):
        cfg = run_dir.config
        run_dir.invalidate("problems")
        problems = select_subset(load_math500(cfg.dataset, cfg.dataset_split), cfg.levels, cfg.num_problems, cfg.seed)
        write_jsonl(run_dir.file("problems"), [p.to_dict() for p in problems])
        run_dir.mark_done("problems")
        log.info("problems: %d at levels %s -> %s", len(problems), cfg.levels, run_dir.file("problems"))
    return [Problem(**row) for row in read_jsonl(run_dir.file("problems"))]


# --- steps 2-4: prompt, generate, grade ---------------------------------------------------------------------------
class _LazyBackend:
    """Loads the generator on first use, so a rerun whose generation is finished never loads it."""

    def __init__(self, config: BestOfNConfig):
        self.config = config
        self.backend: GenerationBackend | None = None

    def get(self) -> GenerationBackend:
        if self.backend is None:
            with costs.model_load():
                self.backend = make_backend(self.config)
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


@costs.measured("greedy")
def stage_greedy(run_dir: RunDir, problems: list[Problem], generator: _LazyBackend) -> list[dict]:
    """The baseline: one greedy (temperature 0) solution per problem."""
    return _generate_stage(run_dir, "greedy", problems, generator, n=1, temperature=0.0, top_p=1.0)


@costs.measured("samples")
def stage_samples(run_dir: RunDir, problems: list[Problem], generator: _LazyBackend) -> list[dict]:
    """Best-of-N's candidates: N sampled solutions per problem."""
    cfg = run_dir.config
    return _generate_stage(run_dir, "samples", problems, generator, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p)


def _generate_stage(run_dir: RunDir, stage: str, problems: list[Problem], generator: _LazyBackend, *, n: int,
                    temperature: float, top_p: float) -> list[dict]:
    if run_dir.is_done(stage):
        return read_jsonl(run_dir.file(stage))
    cfg = run_dir.config
    separator = generation_separator(run_dir)
    run_dir.invalidate(stage)
    journal = run_dir.journal(stage)
    rows = run_dir.resume_rows(stage, n)  # only problems with all their n rows count as done
    done = {r["unique_id"] for r in rows}
    todo = [p for p in problems if p.unique_id not in done]
    if done:
        log.info("%s: resuming, %d of %d problems already generated", stage, len(done), len(problems))
    gold = {p.unique_id: p.answer for p in problems}
    with tqdm(total=len(problems), initial=len(problems) - len(todo), desc=f"{stage} generation", unit="problem") as bar:
        for chunk in _chunks(todo, generator.get().chunk_size(n)) if todo else []:
            backend = generator.get()
            prompts = [render_prompt(backend.tokenizer, p.problem, cfg.system_prompt, cfg.user_template, separator)
                       for p in chunk]
            outputs = costs.metered_generate(backend, prompts, n=n, temperature=temperature, top_p=top_p,
                                             max_new_tokens=cfg.max_new_tokens,
                                             seed=derived_seed(cfg.seed, chunk[0].unique_id))
            new_rows = [_solution_row(p, i, c, gold[p.unique_id], cfg.grading_timeout, stage)
                        for p, completions in zip(chunk, outputs) for i, c in enumerate(completions)]
            journal.append(new_rows)  # a kill after this line loses nothing of this chunk
            rows.extend(new_rows)
            bar.update(len(chunk))
    order = {p.unique_id: k for k, p in enumerate(problems)}
    rows.sort(key=lambda r: (order[r["unique_id"]], r.get("sample_index", 0)))
    write_jsonl(run_dir.file(stage), rows)
    run_dir.mark_done(stage)
    return rows


def generation_separator(run_dir: RunDir) -> str:
    """The step separator the prompt asks for: the one the run's solutions use, else the configured PRM's.

    Once a generation stage has started (finished, or journaled), its separator is the run's (recorded in
    the manifest), so greedy and samples always match, and a new PRM rescores without regenerating. Runs
    from before the separator was recorded were all prompted for one step per line. The PRM's separator is
    read from its config.json (or known Hub id) alone: no weights are loaded before generation.
    """
    started = any(run_dir.is_done(s) or run_dir.journal(s).path.exists() for s in ("greedy", "samples"))
    if started:
        return run_dir.step_separator() or LINE
    cfg = run_dir.config
    separator = step_separator(cfg.prm, cfg.prm_format, cfg.prm_revision)
    run_dir.record_step_separator(separator)
    return separator


def _solution_row(problem: Problem, index: int, completion, gold: str, timeout: int, stage: str) -> dict:
    row = {"unique_id": problem.unique_id}
    if stage == "samples":
        row["sample_index"] = index
    return {**row, **completion.to_dict(), **grade(completion.text, gold, timeout)}


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def stage_search(run_dir: RunDir, problems: list[Problem], generator: _LazyBackend) -> list[dict]:
    """Beam search or DVTS (:mod:`bestofn.methods`): the PRM steers generation, so it is loaded alongside."""
    cfg = run_dir.config
    return search_stage(run_dir, problems, generator.get, lambda: _load_prm(cfg),
                        lambda text, gold: grade(text, gold, cfg.grading_timeout))


def _load_prm(cfg: BestOfNConfig):
    device = resolve_device(cfg.device)
    return load_prm(cfg.prm, device=device, dtype=resolve_dtype(cfg.dtype, device), revision=cfg.prm_revision,
                    format=cfg.prm_format, batch_tokens=cfg.prm_batch_tokens, max_length=cfg.prm_max_length)


# --- step 5: PRM scores ---------------------------------------------------------------------------------------------
@costs.measured("scores")
def stage_scores(run_dir: RunDir, problems: list[Problem], samples: list[dict]) -> list[dict]:
    """Score every sampled solution with the PRM; adds ``step_rewards``, ``reward``, ``prm_truncated``."""
    if run_dir.is_done("scores"):
        return read_jsonl(run_dir.file("scores"))
    cfg = run_dir.config
    run_dir.invalidate("scores")
    journal = run_dir.journal("scores")
    scored = {(r["unique_id"], r["sample_index"]): r for r in journal.read()}
    if cfg.method != "best_of_n":  # a search scored its solutions while searching (with this PRM: see _SEARCH_KEYS)
        scored.update({(s["unique_id"], s["sample_index"]): s for s in samples})
    todo = [s for s in samples if (s["unique_id"], s["sample_index"]) not in scored]
    if todo:
        device = resolve_device(cfg.device)
        compile = compile_enabled(cfg.prm_compile, device, sum(s["num_tokens"] for s in todo))
        with costs.model_load():
            prm = load_prm(cfg.prm, device=device, dtype=resolve_dtype(cfg.dtype, device), revision=cfg.prm_revision,
                           format=cfg.prm_format, batch_tokens=cfg.prm_batch_tokens, max_length=cfg.prm_max_length,
                           compile=compile)
        generated_with = run_dir.step_separator() or LINE
        if prm.step_separator != generated_with:  # said once per scoring stage, not once per solution
            log.warning("the solutions were generated with steps separated by %r, but the PRM (%s format) splits "
                        "steps at %r: its step rewards follow its own separator; for matched steps, generate a new "
                        "run with this PRM", generated_with, prm.format, prm.step_separator)
        problem_text = {p.unique_id: p.problem for p in problems}
        with tqdm(total=len(samples), initial=len(samples) - len(todo), desc="PRM scoring", unit="solution") as bar:
            for chunk in _chunks(todo, SCORE_CHUNK_SOLUTIONS):
                scores = costs.metered_score(prm, [problem_text[s["unique_id"]] for s in chunk],
                                             [s["text"] for s in chunk])
                new = [{"unique_id": s["unique_id"], "sample_index": s["sample_index"], "step_rewards": sc.step_rewards,
                        "prm_truncated": sc.truncated, "prm_tokens": sc.num_tokens} for s, sc in zip(chunk, scores)]
                journal.append(new)
                scored.update({(r["unique_id"], r["sample_index"]): r for r in new})
                bar.update(len(chunk))
        if any(r["prm_truncated"] for r in scored.values()):
            log.warning("some solutions were longer than the PRM's context: only their first steps were scored "
                        "(prm_truncated=true in samples.jsonl)")
        del prm
    rows = []
    for s in samples:
        sc = scored[(s["unique_id"], s["sample_index"])]
        rewards = sc["step_rewards"]
        rows.append({**s, "step_rewards": rewards, "reward": rewards[-1] if rewards else None,
                     "prm_truncated": sc["prm_truncated"], "prm_tokens": sc.get("prm_tokens")})
    write_jsonl(run_dir.file("scores"), rows)
    run_dir.mark_done("scores")
    return rows


# --- step 6: selection and accuracy -----------------------------------------------------------------------------
@costs.measured("results")
def stage_results(run_dir: RunDir, problems: list[Problem], greedy: list[dict], samples: list[dict]) -> dict[str, Any]:
    """Apply every selection rule to every problem and write the accuracies to ``results.json``."""
    cfg = run_dir.config
    greedy_by_id = {g["unique_id"]: g for g in greedy}
    samples_by_id: dict[str, list[dict]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s["sample_index"]):  # position in a problem's list = sample_index
        samples_by_id[s["unique_id"]].append(s)
    per_problem = [
        _select_for_problem(p, greedy_by_id.get(p.unique_id), samples_by_id[p.unique_id], cfg.aggregation,
                            cfg.grading_timeout)
        for p in tqdm(problems, desc="selection", unit="problem")
    ]
    results = {
        "n": cfg.n,
        "num_problems": len(problems),
        "reward_aggregation": cfg.aggregation,
        "methods": list(METHODS),
        "accuracy": _accuracy(per_problem),
        "by_level": {str(lvl): _accuracy([r for r in per_problem if r["level"] == lvl])
                     for lvl in sorted({p.level for p in problems})},
        "string_match": {"greedy": _rate([g["string_match"] for g in greedy]),
                         "samples": _rate([s["string_match"] for s in samples])},
        "tokens": {"greedy": _total_tokens(greedy), "samples": _total_tokens(samples)},
        "method": cfg.method,
        "compute": _compute(run_dir, samples),
        "per_problem": per_problem,
    }
    write_json(run_dir.file("results"), results)
    run_dir.mark_done("results")
    return results


def _total_tokens(rows: list[dict], key: str = "num_tokens") -> int | None:
    """Tokens of ``rows`` (generated, or ``prm_tokens``: read by the PRM); None when a count is unknown
    (imported completions, a PRM that cannot count), never a partial sum."""
    counts = [r.get(key) for r in rows]
    return None if any(c is None for c in counts) else sum(counts)


def _select_for_problem(problem: Problem, greedy: dict | None, samples: list[dict], how: str, timeout: int) -> dict:
    """Every method's answer for one problem, whether it is right, and the answer groups behind them."""
    answers = [s["answer"] for s in samples]
    rewards = [aggregate(s["step_rewards"], how) for s in samples]
    groups = group_answers(answers, timeout=timeout)  # math-verify runs here, once per problem

    def verdict(choice: Choice | None) -> dict:
        # A rule's verdict is the solution it chose: its own answer and its own grade (step 4 already judged
        # every sample against the gold answer), so answer, sample_index and correct always agree.
        if choice is None:
            return {"answer": None, "correct": False, "sample_index": None}
        chosen = samples[choice.sample_index]
        return {"answer": chosen["answer"], "correct": bool(chosen["correct"]), "sample_index": choice.sample_index}

    return {
        "unique_id": problem.unique_id, "level": problem.level, "subject": problem.subject, "gold": problem.answer,
        # None when the run has no greedy solution (completions imported without one: `bestofn import`)
        "greedy": {"answer": greedy["answer"], "correct": greedy["correct"]} if greedy is not None else None,
        "majority": verdict(choose_majority(answers, rewards, groups=groups)),
        "naive_bon": verdict(choose_naive(answers, rewards, groups=groups)),
        "weighted_bon": verdict(choose_weighted(answers, rewards, groups=groups)),
        "pass_at_n": {"correct": any(s["correct"] for s in samples)},
        "groups": answer_groups(answers, rewards, groups=groups),
    }


def _compute(run_dir: RunDir, samples: list[dict]) -> dict[str, Any]:
    """What the method spent: generated tokens (for a search: every step, pruned beams and lookahead included)
    and the tokens the PRM read, in total and per problem."""
    cfg = run_dir.config
    if cfg.method == "best_of_n":
        spent = {"generated_tokens": _total_tokens(samples), "prm_tokens": _total_tokens(samples, "prm_tokens")}
    else:
        spent = search_compute(run_dir.path)
    problems = len({s["unique_id"] for s in samples}) or 1
    return {"method": cfg.method, **spent,
            **{f"{k}_per_problem": None if v is None else v / problems for k, v in spent.items()}}


def _rate(flags: Sequence[bool]) -> dict[str, Any]:
    correct, total = int(sum(bool(f) for f in flags)), len(flags)
    return {"correct": correct, "total": total, "accuracy": correct / total if total else 0.0}


def _accuracy(per_problem: list[dict]) -> dict[str, dict[str, Any]]:
    return {m: _rate([r[m]["correct"] for r in per_problem]) for m in METHODS
            if all(r[m] is not None for r in per_problem)}
