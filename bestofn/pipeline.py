"""The whole method, stage by stage, in a run directory that survives kills and reruns.

Stages (each writes one artifact, see docs/artifacts.md) and the steps of the method they run (the numbering
of :mod:`bestofn`: 1 data, 2 prompts, 3 backends, 4 grading, 5 prm, 6 selection):

    problems  -> problems.jsonl   step 1      MATH-500, levels, stratified subset
    greedy    -> greedy.jsonl     steps 2-4   one greedy solution per problem, graded (the baseline)
    samples   -> samples.jsonl    steps 2-4   N sampled solutions per problem, graded
    scores    -> samples.jsonl    step 5      + PRM step rewards and reward per solution
    results   -> results.json     step 6      greedy / majority / naive / weighted Best-of-N accuracy

Where the artifacts live and what a rerun may trust is :mod:`bestofn.rundir`'s job; work is journaled one
chunk of problems at a time, so a killed stage resumes where it stopped. Each model stage is a list of chunks
planned here from the config alone and a worker class (:class:`GenerationWorker`, :class:`ScoringWorker`,
:class:`SearchWorker`) that an executor runs, in this process or on a Ray cluster (:mod:`bestofn.executors`).
What each stage cost (time, tokens, memory) goes to ``timings.json`` (:mod:`bestofn.costs`: one decorator per
stage; the workers measure their model calls and return the numbers with each chunk's result, which this
process records).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from . import costs
from .backends import Completion, backend_class, make_backend, resolve_device, resolve_dtype
from .config import BestOfNConfig
from .data import Problem, load_math500, select_subset
from .errors import BestOfNError, missing_folder_error, model_load_error
from .executors import Executor, make_executor
from .grading import grade
from .io import Journal, read_jsonl
from .methods import BEST_OF_N
from .methods.search import finish_search, search_compute, search_problems
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
    # Generation and scoring run chunk by chunk, in this process or on a Ray cluster (bestofn.executors).
    executor = make_executor(config)
    try:
        greedy = stage_greedy(run_dir, problems, executor)
        if config.method == BEST_OF_N:
            samples = stage_samples(run_dir, problems, executor)
        else:
            samples = stage_search(run_dir, problems, executor)
        samples = stage_scores(run_dir, problems, samples, executor)
    finally:
        executor.close()
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
        run_dir.finish("problems", [p.to_dict() for p in problems])
        log.info("problems: %d at levels %s -> %s", len(problems), cfg.levels, run_dir.file("problems"))
    return [Problem(**row) for row in read_jsonl(run_dir.file("problems"))]


# --- steps 2-4: prompt, generate, grade ---------------------------------------------------------------------------
class GenerationWorker:
    """Steps 2-3 on one worker: holds the generator; a chunk's problems in, their completions and costs out.

    It measures its own model load and generate calls (:class:`costs.WorkerMeter`) and returns the numbers
    with each chunk: on Ray it runs in another process, where the driver's cost record cannot be reached, so
    the driver records them as each chunk arrives, the same way for every executor.
    """

    def __init__(self, config: BestOfNConfig):
        self.config = config
        self.meter = costs.WorkerMeter(resolve_device(config.device))
        with self.meter.load():
            self.backend = make_backend(config)  # the module-level name: bestofn.testing.scripted replaces it

    @staticmethod
    def gpus(config: BestOfNConfig) -> int:
        return config.tensor_parallel_size if config.backend == "vllm" else 1

    def __call__(self, chunk: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        prompts = [render_prompt(self.backend.tokenizer, text, cfg.system_prompt, cfg.user_template,
                                 chunk["step_separator"]) for text in chunk["problems"]]
        with self.meter.chunk() as cost:
            outputs = costs.metered_generate(self.backend, prompts, n=chunk["n"], temperature=chunk["temperature"],
                                             top_p=chunk["top_p"], max_new_tokens=cfg.max_new_tokens, seed=chunk["seed"])
        return {"completions": [[c.to_dict() for c in completions] for completions in outputs], "cost": cost.to_dict()}

    def close(self) -> None:
        self.backend.close()  # free the generator's memory before the PRM is loaded on the same device


@costs.measured("greedy")
def stage_greedy(run_dir: RunDir, problems: list[Problem], executor: Executor) -> list[dict]:
    """The baseline: one greedy (temperature 0) solution per problem."""
    return _generate_stage(run_dir, "greedy", problems, executor, n=1, temperature=0.0, top_p=1.0)


@costs.measured("samples")
def stage_samples(run_dir: RunDir, problems: list[Problem], executor: Executor) -> list[dict]:
    """Best-of-N's candidates: N sampled solutions per problem."""
    cfg = run_dir.config
    return _generate_stage(run_dir, "samples", problems, executor, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p)


def _generate_stage(run_dir: RunDir, stage: str, problems: list[Problem], executor: Executor, *, n: int,
                    temperature: float, top_p: float) -> list[dict]:
    if run_dir.is_done(stage):
        return read_jsonl(run_dir.file(stage))
    cfg = run_dir.config
    separator = generation_separator(run_dir)
    run_dir.invalidate(stage)
    journal = run_dir.journal(stage)
    # The same chunks in every run (fixed by the config, never by what is already done or by the workers),
    # each seeded by its first problem: a resumed or distributed run samples the same solutions.
    chunks = list(_chunks(problems, backend_class(cfg).chunk_size(cfg, n)))
    # Only problems with all their n rows count as journaled; a chunk with any problem missing is redone whole.
    rows, todo = _resume(run_dir.resume_rows(stage, n), chunks, key=lambda r: r["unique_id"],
                         item_key=lambda p: p.unique_id)
    if len(todo) < len(chunks):
        log.info("%s: resuming, %d of %d chunks of problems already generated", stage, len(chunks) - len(todo), len(chunks))
    payloads = [{"unique_ids": [p.unique_id for p in chunk], "problems": [p.problem for p in chunk], "n": n,
                 "temperature": temperature, "top_p": top_p, "seed": derived_seed(cfg.seed, chunk[0].unique_id),
                 "step_separator": separator}
                for chunk in todo]
    gold = {p.unique_id: p.answer for p in problems}
    for chunk, result in _run_chunks(executor, GenerationWorker, todo, payloads, len(chunks), f"{stage} generation"):
        costs.record(result["cost"])
        new_rows = [_solution_row(p, i, Completion(**c), gold[p.unique_id], cfg.grading_timeout, stage)
                    for p, completions in zip(chunk, result["completions"]) for i, c in enumerate(completions)]
        journal.append(new_rows)  # a kill after this line loses nothing of this chunk
        rows.extend(new_rows)
    order = {p.unique_id: k for k, p in enumerate(problems)}
    rows.sort(key=lambda r: (order[r["unique_id"]], r.get("sample_index", 0)))
    run_dir.finish(stage, rows)
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


def _solution_row(problem: Problem, index: int, completion: Completion, gold: str, timeout: int, stage: str) -> dict:
    row = {"unique_id": problem.unique_id}
    if stage == "samples":
        row["sample_index"] = index
    return {**row, **completion.to_dict(), **grade(completion.text, gold, timeout)}


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


class SearchWorker:
    """Beam search or DVTS on one worker: holds the generator and the PRM that steers it; a chunk's problems in,
    their pools (not yet graded: grading runs on the driver), their tree nodes and the chunk's costs out.

    A chunk that names a ``journal`` (only in this process) journals each of its iterations there and, when
    that journal already holds some, resumes after the last one.
    """

    def __init__(self, config: BestOfNConfig):
        self.config = config
        device = resolve_device(config.device)
        self.meter = costs.WorkerMeter(device)
        with self.meter.load():
            self.backend = make_backend(config)  # module-level names: bestofn.testing.scripted replaces them
            self.prm = _load_prm(config, device)

    def __call__(self, chunk: dict[str, Any]) -> dict[str, Any]:
        problems = [Problem(**p) for p in chunk["problems"]]
        journal = Journal(chunk["journal"]) if chunk.get("journal") else None
        with self.meter.chunk() as cost:
            # Both models' calls are measured: the generator's as the stage's, the PRM's as its steering share.
            pool, tree = search_problems(problems, costs.MeteredGenerator(self.backend), costs.SteeringPRM(self.prm),
                                         self.config, journal=journal, progress=journal is not None)
        return {"pool": pool, "tree": tree, "cost": cost.to_dict()}

    def close(self) -> None:
        self.backend.close()
        self.prm = None


@costs.measured("samples")
def stage_search(run_dir: RunDir, problems: list[Problem], executor: Executor) -> list[dict]:
    """Beam search or DVTS (:mod:`bestofn.methods`): the PRM steers generation, so both models load together.

    The problems are searched in chunks planned from the config alone (the backend's ``chunk_size``), the
    same in this process and on a Ray cluster: a problem's candidates are always generated and scored beside
    the same other problems', so both write the same bytes (batch composition moves the last float bits of a
    PRM reward). Each finished chunk is journaled; in this process the chunk in progress also journals every
    iteration, so a killed search resumes at its last iteration, and on Ray at its last finished chunk. A
    rerun keeps every problem already searched, even when changed batch settings plan other chunks.
    """
    if run_dir.is_done("samples"):
        return read_jsonl(run_dir.file("samples"))
    cfg = run_dir.config
    run_dir.invalidate("samples")
    journal = run_dir.journal("samples", "chunks")  # one record per finished chunk: its pools and tree nodes
    done = _searched_problems(journal.read())
    chunks = list(_chunks(problems, backend_class(cfg).chunk_size(cfg, cfg.n)))
    # A chunk's problems not yet searched: all or none of them with an unchanged plan. After a change of the
    # batch settings (which plan the chunks but change no result), finished problems are still kept.
    todo = [c for c in ([p for p in chunk if p.unique_id not in done] for chunk in chunks) if c]
    if any(p.unique_id in done for p in problems):
        log.info("%s: resuming, %d of %d problems already searched", cfg.method,
                 sum(p.unique_id in done for p in problems), len(problems))
    # In this process, the chunk in progress journals its iterations, under a name given by its problems.
    work = [(chunk, run_dir.journal("samples", _chunk_name(chunk))) for chunk in todo]
    payloads = [{"unique_ids": [p.unique_id for p in chunk], "problems": [p.to_dict() for p in chunk],
                 "journal": str(iterations.path) if executor.in_process else None} for chunk, iterations in work]
    for (chunk, iterations), result in _run_chunks(executor, SearchWorker, work, payloads, len(chunks), cfg.method):
        costs.record(result.pop("cost"))
        record = {"unique_ids": [p.unique_id for p in chunk], **result}
        journal.append([record])  # a kill after this line loses nothing of this chunk
        iterations.remove()
        done.update(_searched_problems([record]))
    # Grading runs here, on the driver (its time limit needs the main thread); pools in problem order.
    return finish_search(run_dir, problems, [r for p in problems for r in done[p.unique_id]["pool"]],
                         [n for p in problems for n in done[p.unique_id]["tree"]],
                         lambda text, gold: grade(text, gold, cfg.grading_timeout))


def _chunk_name(chunk: list[Problem]) -> str:
    """``chunk-<hash of its problem ids>``: a journal name that no other set of problems can reuse."""
    return "chunk-" + hashlib.sha256("\n".join(p.unique_id for p in chunk).encode()).hexdigest()[:16]


def _searched_problems(records: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """``{unique_id: {"pool": rows, "tree": nodes}}`` from journaled chunk records (a later record wins)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for record in records:
        fresh = {uid: {"pool": [], "tree": []} for uid in record["unique_ids"]}
        for row in record["pool"]:
            fresh[row["unique_id"]]["pool"].append(row)
        for node in record["tree"]:
            fresh[node["unique_id"]]["tree"].append(node)
        out.update(fresh)
    return out


def _load_prm(cfg: BestOfNConfig, device: str, compile: bool = False) -> Any:
    """The configured PRM on ``device``, through the module-level ``load_prm`` (bestofn.testing.scripted replaces it)."""
    return load_prm(cfg.prm, device=device, dtype=resolve_dtype(cfg.dtype, device), revision=cfg.prm_revision,
                    format=cfg.prm_format, batch_tokens=cfg.prm_batch_tokens, max_length=cfg.prm_max_length,
                    compile=compile)


def _resume(journaled: list[dict], chunks: list[list], key: Callable[[dict], Any],
            item_key: Callable[[Any], Any]) -> tuple[list[dict], list[list]]:
    """Journaled rows of finished chunks, and the chunks still to do (a partly journaled one is redone whole)."""
    done = {key(r) for r in journaled}
    todo = [c for c in chunks if not all(item_key(x) in done for x in c)]
    redo = {item_key(x) for c in todo for x in c}
    return [r for r in journaled if key(r) not in redo], todo


def _run_chunks(executor: Executor, worker: type, todo: list[list], payloads: list[dict], total: int,
                desc: str) -> Iterator[tuple[list, Any]]:
    """Yield ``(chunk, result)`` as the executor finishes each chunk (in any order), with a bar over chunks."""
    with tqdm(total=total, initial=total - len(todo), desc=desc, unit="chunk") as bar:
        for index, result in executor.map(worker, payloads):
            yield todo[index], result
            bar.update()


# --- step 5: PRM scores ---------------------------------------------------------------------------------------------
class ScoringWorker:
    """Step 5 on one worker: holds the PRM; a chunk of (problem, solution) pairs in, their step rewards and costs out.

    The PRM loads with the first chunk, which says how many tokens the stage still has to score: with
    ``prm_compile=auto`` that decides, on the worker's own device, whether compiling the backbone pays back.
    Costs are measured here and recorded by the driver, as in :class:`GenerationWorker`.
    """

    def __init__(self, config: BestOfNConfig):
        self.config = config
        self.device = resolve_device(config.device)
        self.meter = costs.WorkerMeter(self.device)
        self.prm: Any = None

    def _load(self, stage_tokens: int) -> Any:
        cfg = self.config
        compile = compile_enabled(cfg.prm_compile, self.device, stage_tokens)
        with self.meter.load():
            return _load_prm(cfg, self.device, compile)

    def __call__(self, chunk: dict[str, Any]) -> dict[str, Any]:
        if self.prm is None:
            self.prm = self._load(chunk["stage_tokens"])
        with self.meter.chunk() as cost:
            scores = costs.metered_score(self.prm, chunk["problems"], chunk["texts"])
        return {"scores": [{"step_rewards": sc.step_rewards, "prm_truncated": sc.truncated, "prm_tokens": sc.num_tokens}
                           for sc in scores],
                "cost": cost.to_dict()}

    def close(self) -> None:
        self.prm = None


@costs.measured("scores")
def stage_scores(run_dir: RunDir, problems: list[Problem], samples: list[dict], executor: Executor) -> list[dict]:
    """Score every sampled solution with the PRM; adds ``step_rewards``, ``reward``, ``prm_truncated``."""
    if run_dir.is_done("scores"):
        return read_jsonl(run_dir.file("scores"))
    cfg = run_dir.config
    run_dir.invalidate("scores")
    journal = run_dir.journal("scores")
    solution_key = lambda r: (r["unique_id"], r["sample_index"])  # noqa: E731
    chunks = list(_chunks(samples, SCORE_CHUNK_SOLUTIONS))
    journaled, todo = _resume(journal.read(), chunks, key=solution_key, item_key=solution_key)
    if cfg.method != BEST_OF_N:  # a search scored its solutions while searching (with this PRM: see _SEARCH_KEYS)
        journaled, todo = samples, []
    scored = {solution_key(r): r for r in journaled}
    if todo:
        _warn_if_separators_differ(run_dir)
    problem_text = {p.unique_id: p.problem for p in problems}
    stage_tokens = sum(s["num_tokens"] or 0 for chunk in todo for s in chunk)
    payloads = [{"unique_ids": [s["unique_id"] for s in chunk], "problems": [problem_text[s["unique_id"]] for s in chunk],
                 "texts": [s["text"] for s in chunk], "stage_tokens": stage_tokens} for chunk in todo]
    for chunk, result in _run_chunks(executor, ScoringWorker, todo, payloads, len(chunks), "PRM scoring"):
        costs.record(result["cost"])
        new = [{"unique_id": s["unique_id"], "sample_index": s["sample_index"], **sc}
               for s, sc in zip(chunk, result["scores"])]
        journal.append(new)
        scored.update({solution_key(r): r for r in new})
    if any(r["prm_truncated"] for r in scored.values()):
        log.warning("some solutions were longer than the PRM's context: only their first steps were scored "
                    "(prm_truncated=true in samples.jsonl)")
    rows = []
    for s in samples:
        sc = scored[solution_key(s)]
        rewards = sc["step_rewards"]
        rows.append({**s, "step_rewards": rewards, "reward": rewards[-1] if rewards else None,
                     "prm_truncated": sc["prm_truncated"], "prm_tokens": sc.get("prm_tokens")})
    run_dir.finish("scores", rows)
    return rows


def _warn_if_separators_differ(run_dir: RunDir) -> None:
    """Say once per scoring stage (not once per solution or worker) when the PRM splits steps elsewhere than the
    generation prompt asked; the PRM's separator comes from its config.json alone, so no weights load here."""
    cfg = run_dir.config
    generated_with = run_dir.step_separator() or LINE
    reads = step_separator(cfg.prm, cfg.prm_format, cfg.prm_revision)
    if reads != generated_with:
        log.warning("the solutions were generated with steps separated by %r, but the PRM %s splits steps at %r: "
                    "its step rewards follow its own separator; for matched steps, generate a new run with this PRM",
                    generated_with, cfg.prm, reads)


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
    run_dir.finish("results", results)
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
    if cfg.method == BEST_OF_N:
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
