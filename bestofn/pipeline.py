"""One run of the method: problems in, chosen answers out, in chunks of work that survive kills and reruns.

The steps of the method (the numbering of :mod:`bestofn`) and where this module runs them:

    1 data       problems      the dataset's problems, the subset drawn           -> problems.jsonl
    2-4          greedy        one greedy solution per problem, graded (baseline)  -> greedy.jsonl
    2-4 (+5)     samples       the method's solutions (:mod:`bestofn.methods`),     -> samples.jsonl
                               graded; a search scores them as it goes            (+ tree.jsonl)
    5 prm        scores        the PRM's step rewards of every unscored solution   -> samples.jsonl
    6 selection  results       every selection rule on every problem              -> results.json

Every model stage is a list of *chunks* planned from the config alone (a chunk of problems, or of solutions
to score), each named by a hash of what it depends on (:func:`bestofn.rundir.content_key`). A chunk that is
already in the run directory is reused, so a killed run resumes where it stopped, a new PRM rescores
without generating again, and the same chunks come out of one process and of a Ray cluster byte for byte.
The chunks still missing run on a :class:`Worker` through an executor (:mod:`bestofn.executors`): in this
process, or on Ray actors. A worker loads each model once and hands the method a :class:`~bestofn.costs.Meter`
of them, so each chunk comes back with its rows and its cost. The driver grades the rows (grading's time
limit needs the main thread) and saves each chunk as it arrives; at the end it writes the files users read.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .backends import backend_class, make_backend, resolve_device, resolve_dtype
from .config import BestOfNConfig, chunk_keys
from .costs import TIMINGS_FILE, Cost, Meter, add_up
from .data import Problem, dataset_title, load_problems, select_subset
from .errors import BestOfNError, check_model
from .executors import make_executor
from .grading import grade
from .io import json_bytes, jsonl_bytes
from .methods import GREEDY, make_method
from .methods.best_of_n import greedy
from .prm import load_prm, step_separator
from .prm.formats import BLANK_LINE, LINE
from .prm.base import compile_enabled
from .prompts import render_prompt
from .provenance import Provenance
from .rundir import (FILES, RunDir, content_key, edited_files, lock_run_dir, manifest_damaged, open_run_dir,
                     read_manifest)
from .selection import METHODS, verdicts

log = logging.getLogger(__name__)

SCORE_CHUNK_SOLUTIONS = 256  # solutions per PRM chunk: big enough for good batches, small enough to resume


# --- the models: loaded by the real loaders, or injected (tests pass scripted doubles) ------------------------------
class Models:
    """How a run gets its models. Subclass it to inject others (``bestofn.testing.scripted.ScriptedModels``);
    it must pickle, since a Ray worker builds its models from it."""

    # At most this many solutions per chunk of generation (None: the backend's rule). Tests set it to get several
    # small chunks from a few problems; like the backend's rule, it changes which problems share a chunk, never a sample.
    chunk_sequences: int | None = None

    def generator(self, config: BestOfNConfig) -> Any:
        return make_backend(config)

    def prm(self, config: BestOfNConfig, device: str, compile: bool = False) -> Any:
        return load_prm(config.prm, device=device, dtype=resolve_dtype(config.dtype, device), revision=config.prm_revision,
                        format=config.prm_format, batch_tokens=config.prm_batch_tokens,
                        max_length=config.prm_max_length, compile=compile)

    def chunk_size(self, config: BestOfNConfig, n: int) -> int:
        """Problems per chunk of generation when each asks for ``n`` solutions: the backend's rule, from the settings
        that change a result and the kind of device alone (never the batch sizes), capped by :attr:`chunk_sequences`."""
        size = backend_class(config).chunk_size(config, n)
        return size if self.chunk_sequences is None else min(size, max(1, self.chunk_sequences // n))

    def step_separator(self, config: BestOfNConfig) -> str:
        """The PRM's step separator, from its config.json alone: no weights load before generation."""
        return step_separator(config.prm, config.prm_format, config.prm_revision)

    def check(self, config: BestOfNConfig, role: str) -> str | None:
        """Stop at once on a model that cannot be found; return the Hub commit it resolves to (None: unknown)."""
        name, revision = (config.generator, config.generator_revision) if role == "generator" else (config.prm, config.prm_revision)
        return check_model(name, revision, role, "--generator" if role == "generator" else "--prm")


class Worker:
    """One process's models, each loaded once for the whole run, and the work of one chunk.

    Greedy and the method share the generator; the PRM loads when a chunk first needs it (a search: with
    the generator; Best-of-N: for scoring, after the generator is freed, since nothing generates after it).
    A model's load time is charged to the first chunk that ran after the load.
    """

    def __init__(self, config: BestOfNConfig, models: Models, device: str | None = None):
        # ``device``: the one a Ray actor was given (its GPU, or the CPU of a cluster without GPUs)
        self.config, self.models = (replace(config, device=device) if device else config), models
        self.device = resolve_device(self.config.device)
        self.generator: Any = None
        self.prm: Any = None
        self.load_s = 0.0

    def _load(self, generator: bool, prm: bool, stage_tokens: int = 0) -> None:
        start = time.perf_counter()
        if not generator and self.generator is not None:
            self.generator.close()  # free its memory before the PRM loads on the same device
            self.generator = None
        if generator and self.generator is None:
            self.generator = self.models.generator(self.config)
            self.load_s += time.perf_counter() - start
        if prm and self.prm is None:
            start = time.perf_counter()
            self.prm = self.models.prm(self.config, self.device, compile_enabled(self.config.prm_compile, self.device,
                                                                                 stage_tokens))
            self.load_s += time.perf_counter() - start

    def __call__(self, chunk: dict[str, Any]) -> dict[str, Any]:
        cfg, stage = self.config, chunk["stage"]
        if stage == "scores":
            self._load(generator=False, prm=True, stage_tokens=chunk["stage_tokens"])
        else:
            method = greedy(cfg) if stage == GREEDY else make_method(cfg, chunk["separator"])
            self._load(generator=True, prm=method.steered)
        meter = Meter(self.generator, self.prm, self.device, load_s=self.load_s)
        self.load_s = 0.0
        if stage == "scores":  # step 5
            scores = meter.score_detailed(chunk["problems"], chunk["texts"])
            rows = [{"step_rewards": list(s.step_rewards), "prm_truncated": s.truncated, "prm_tokens": s.num_tokens}
                    for s in scores]
            return {"rows": rows, "tree": [], "cost": meter.finish().to_dict()}
        problems = [Problem(**p) for p in chunk["problems"]]
        prompts = [render_prompt(self.generator.tokenizer, p.problem, cfg.system_prompt, cfg.user_template,
                                 chunk["separator"]) for p in problems]  # step 2
        solved = method.solve(problems, prompts, meter)  # step 3 (a search: and 5)
        return {"rows": solved.rows, "tree": solved.tree, "cost": meter.finish().to_dict()}

    def close(self) -> None:
        if self.generator is not None:
            self.generator.close()
        self.generator = self.prm = None


# --- the run --------------------------------------------------------------------------------------------------
@dataclass
class Chunk:
    """A planned piece of work: its stage, its name, what it reads, and (once done) its content."""

    stage: str
    key: str
    payload: dict[str, Any]
    content: dict[str, Any] | None = None


def run(config: BestOfNConfig, overwrite: bool = False, models: Models | None = None) -> dict[str, Any]:
    """Run (or resume) the method into ``config.output_dir`` and return the contents of ``results.json``.

    One process writes a run directory at a time; changed settings need ``overwrite`` (only the chunks
    they change are computed). ``models``: how to load the models (default: the real loaders).
    """
    with lock_run_dir(config.output_dir):
        path = Path(config.output_dir)
        manifest = read_manifest(path) if not manifest_damaged(path) else {}  # damaged: open_run_dir rebuilds it
        for name in edited_files(path, manifest) if "files" in manifest else []:  # before this run writes config.yaml
            log.warning("%s was changed after the last run wrote it: it is written again from its chunks", path / name)
        return run_in(open_run_dir(config, overwrite), overwrite, models or Models())


def run_in(run_dir: RunDir, overwrite: bool, models: Models) -> dict[str, Any]:
    """:func:`run` in a run directory already locked and opened (``bestofn import`` finishes an import here)."""
    cfg, manifest = run_dir.config, run_dir.manifest()
    separator = generation_separator(run_dir, models)
    imported = manifest.get("imported_from")
    executor = make_executor(cfg)
    try:
        if imported:  # completions made elsewhere (`bestofn import`): their chunks stand in for generation
            problems, generation = imported_chunks(run_dir, imported)
        else:
            problems = _problems(run_dir, overwrite)
            generation = plan_generation(cfg, problems, separator, models)
        # The workers know how many problems were drawn (num_problems "all" resolved): the generator sizes its work by it.
        worker = functools.partial(Worker, replace(cfg, num_problems=len(problems)), models)
        if not imported:
            _run_chunks(run_dir, executor, worker, generation, "generation", models, problems)
        chunks = {stage: [c for c in generation if c.stage == stage] for stage in (GREEDY, "samples")}
        steered = not imported and make_method(cfg, separator).steered  # a search scored its solutions already
        chunks["scores"] = [] if steered else plan_scores(cfg, problems, _rows(chunks["samples"]))
        to_score = [c for c in chunks["scores"] if not run_dir.chunk_path(c.stage, c.key).is_file()]
        if to_score and models.step_separator(cfg) != separator:
            log.warning("the solutions were generated with steps separated by %r, but the PRM %s splits steps at "
                        "its own separator: its step rewards follow it", separator, cfg.prm)
        _run_chunks(run_dir, executor, worker, chunks["scores"], "PRM scoring", models, problems)
    finally:
        executor.close()
    return finish(run_dir, problems, chunks, separator)


def imported_chunks(run_dir: RunDir, imported: dict[str, Any]) -> tuple[list[Problem], list[Chunk]]:
    """The problems and the greedy and sample chunks that ``bestofn import`` saved (they cannot be recomputed)."""
    chunks = []
    for stage, keys in imported["chunks"].items():
        if stage not in ("problems", GREEDY, "samples"):  # scores are found by their name, as any PRM's are
            continue
        for key in keys:
            chunks.append(Chunk(stage, key, {}, run_dir.load_chunk(stage, key)))
            if chunks[-1].content is None:
                raise BestOfNError(f"{run_dir.chunk_path(stage, key)} of the imported completions is missing or damaged; "
                                   f"import them again with `bestofn import {imported['source']} --output-dir "
                                   f"{run_dir.path} --overwrite`")
    problems = [Problem(**row) for c in chunks if c.stage == "problems" for row in c.content["rows"]]
    return problems, [c for c in chunks if c.stage != "problems"]


def generation_separator(run_dir: RunDir, models: Models) -> str:
    """The step separator the prompt asks for: the configured PRM's, except for the results' solutions when the
    generation settings are the same (or they were imported), which keep theirs: a new PRM then rescores them
    instead of generating. Recorded with the results (:func:`finish`), so a failed rerun changes nothing."""
    cfg, manifest = run_dir.config, run_dir.manifest()
    same = manifest.get("generated_with") == generation_settings(cfg) or manifest.get("imported_from")
    if same and "step_separator" in manifest:
        return manifest["step_separator"]
    configured = models.step_separator(cfg)
    if manifest.get("rebuilt") and not manifest.get("imported_from"):  # the separator the chunks were made with
        problems = _problems(run_dir, overwrite=True)
        for separator in dict.fromkeys((configured, LINE, BLANK_LINE)):
            if all(run_dir.chunk_path(c.stage, c.key).is_file() for c in plan_generation(cfg, problems, separator)):
                return separator
    return configured


def generation_settings(cfg: BestOfNConfig) -> str:
    return content_key({k: getattr(cfg, k) for k in sorted(chunk_keys("samples", cfg.method, cfg.adaptive))})


def _problems(run_dir: RunDir, overwrite: bool) -> list[Problem]:
    """Step 1: the problems of the run; an edited dataset is a changed setting of finished results (it needs
    ``overwrite``)."""
    cfg = run_dir.config
    problems = select_subset(load_problems(cfg.dataset, cfg.dataset_split, cfg.dataset_format), cfg.levels,
                             cfg.num_problems, cfg.seed)
    before = run_dir.manifest().get("problems_sha256")  # recorded with the results
    if before not in (None, problems_digest(problems)) and not overwrite:
        raise BestOfNError(f"the problems drawn from {cfg.dataset} differ from the ones in {run_dir.path} (the "
                           f"dataset was edited); use a new --output-dir, or pass --overwrite to recompute them")
    return problems


def problems_digest(problems: Sequence[Problem]) -> str:
    return hashlib.sha256(jsonl_bytes(p.to_dict() for p in problems)).hexdigest()


def plan_generation(cfg: BestOfNConfig, problems: Sequence[Problem], separator: str, models: Models | None = None
                    ) -> list[Chunk]:
    """Greedy's and the method's chunks of problems, planned from the config alone (same in every process, whatever
    the batch sizes: :meth:`Models.chunk_size`)."""
    out = []
    for stage, n in ((GREEDY, 1), ("samples", cfg.n)):
        settings = {k: getattr(cfg, k) for k in sorted(chunk_keys(stage, cfg.method, cfg.adaptive))}
        size = (models or Models()).chunk_size(cfg, n)
        for start in range(0, len(problems), size):
            rows = [p.to_dict() for p in problems[start : start + size]]
            out.append(Chunk(stage, content_key(stage, settings, separator, rows), {
                "stage": stage, "separator": separator, "problems": rows, "unique_ids": [p["unique_id"] for p in rows]}))
    return out


def plan_scores(cfg: BestOfNConfig, problems: Sequence[Problem], rows: Sequence[dict]) -> list[Chunk]:
    """Chunks of solutions to score (step 5), each named by the PRM's settings and the texts it reads."""
    settings = {k: getattr(cfg, k) for k in sorted(chunk_keys("scores", cfg.method))}
    text = {p.unique_id: p.problem for p in problems}
    chunks = []
    for start in range(0, len(rows), SCORE_CHUNK_SOLUTIONS):
        part = rows[start : start + SCORE_CHUNK_SOLUTIONS]
        payload = {"stage": "scores", "problems": [text[r["unique_id"]] for r in part], "texts": [r["text"] for r in part],
                   "unique_ids": [r["unique_id"] for r in part]}
        chunks.append(Chunk("scores", content_key("scores", settings, payload["problems"], payload["texts"]), payload))
    tokens = sum(r.get("num_tokens") or 0 for r in rows)  # how much there is to score: decides prm_compile=auto
    for chunk in chunks:
        chunk.payload["stage_tokens"] = tokens
    return chunks


def _run_chunks(run_dir: RunDir, executor: Any, worker: Callable[[str | None], Worker], chunks: list[Chunk], desc: str,
                models: Models, problems: Sequence[Problem]) -> None:
    """Reuse each chunk already in the run directory; compute the others (grading their rows) and save them."""
    for chunk in chunks:
        chunk.content = run_dir.load_chunk(chunk.stage, chunk.key)
    todo = [c for c in chunks if c.content is None]
    if not todo:
        return
    if len(todo) < len(chunks):
        log.info("%s: resuming, %d of %d chunks already done", desc, len(chunks) - len(todo), len(chunks))
    _record_models(run_dir, models, {"prm"} if todo[0].stage == "scores" else {"generator", "prm"})
    gold = {p.unique_id: p for p in problems}
    with tqdm(total=len(chunks), initial=len(chunks) - len(todo), desc=desc, unit="chunk") as bar:
        for index, result in executor.map(worker, [c.payload for c in todo]):
            chunk = todo[index]
            if chunk.stage != "scores":  # step 4: graded here, on the driver
                result["rows"] = [{**r, **grade(r["text"], gold[r["unique_id"]].answer, run_dir.config.grading_timeout,
                                                gold[r["unique_id"]].answer_kind)} for r in result["rows"]]
            chunk.content = run_dir.save_chunk(chunk.stage, chunk.key, result["rows"], result["tree"], result["cost"])
            bar.update()


def _record_models(run_dir: RunDir, models: Models, roles: set[str]) -> None:
    """Check the models about to run (the PRM too before generating: a typo must not wait for hours of
    generation) and record the commits they resolve to, so results trace to exact weights."""
    recorded = run_dir.manifest().get("models", {})
    for role in sorted(roles):
        name = run_dir.config.generator if role == "generator" else run_dir.config.prm
        recorded[role] = {"name": name, "commit": models.check(run_dir.config, role)}
    run_dir.update_manifest(models=recorded)


def _rows(chunks: Sequence[Chunk]) -> list[dict]:
    return [row for c in chunks for row in c.content["rows"]]


# --- the end: the files users read --------------------------------------------------------------------------------
def finish(run_dir: RunDir, problems: Sequence[Problem], chunks: dict[str, list[Chunk]], separator: str
           ) -> dict[str, Any]:
    """Merge the scores into the samples, select (step 6), write every file from the chunks, drop unused chunks."""
    cfg = run_dir.config
    greedy_rows, sample_rows = _rows(chunks[GREEDY]), _rows(chunks["samples"])
    if chunks["scores"]:
        sample_rows = [{**row, **score} for row, score in zip(sample_rows, _rows(chunks["scores"]))]
    if sample_rows and not any(r["step_rewards"] for r in sample_rows):
        log.warning("no solution was scored: the PRM gave no step of any solution a reward (each was longer than its "
                    "context, or empty), so every selection by reward is arbitrary; raise --prm-max-length if the "
                    "PRM allows, or lower --max-new-tokens")
    elif any(r["prm_truncated"] for r in sample_rows):
        log.warning("some solutions were longer than the PRM's context: only their first steps were scored "
                    "(prm_truncated=true in samples.jsonl)")
    costs = {stage: [c.content["cost"] for c in parts] for stage, parts in chunks.items()}
    results = build_results(cfg, problems, greedy_rows, sample_rows, compute(costs, sample_rows))
    results["imported_from"] = Provenance.from_manifest(run_dir.manifest()).results_entry()  # None: made here
    totals = {stage: add_up([Cost.from_dict(c) for c in parts]).to_dict()
              for stage, parts in costs.items() if parts and all(c is not None for c in parts)}
    tree = [node for c in chunks["samples"] for node in c.content["tree"]]
    files = {FILES["problems"]: jsonl_bytes(p.to_dict() for p in problems), FILES["greedy"]: jsonl_bytes(greedy_rows),
             FILES["samples"]: jsonl_bytes(sample_rows), FILES["results"]: json_bytes(results),
             TIMINGS_FILE: json_bytes({"stages": totals})}
    if tree:
        files[FILES["tree"]] = jsonl_bytes(tree)
    run_dir.publish(files, problems_sha256=problems_digest(problems), step_separator=separator,
                    generated_with=generation_settings(cfg))
    used = {stage: {c.key for c in parts} for stage, parts in chunks.items()}
    for stage, keys in (run_dir.manifest().get("imported_from") or {}).get("chunks", {}).items():
        used[stage] = used.get(stage, set()) | set(keys)  # what `bestofn import` saved cannot be recomputed
    run_dir.keep_only(used)
    return results


def rate(flags: Sequence[bool]) -> dict[str, Any]:
    """``{"correct", "total", "accuracy"}`` of a list of outcomes."""
    correct, total = int(sum(bool(f) for f in flags)), len(flags)
    return {"correct": correct, "total": total, "accuracy": correct / total if total else 0.0}


def accuracy(per_problem: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """Each method's :func:`rate` over per-problem verdicts (greedy left out when a run has none)."""
    return {m: rate([r[m]["correct"] for r in per_problem]) for m in METHODS
            if all(r[m] is not None for r in per_problem)}


def build_results(cfg: BestOfNConfig, problems: Sequence[Problem], greedy_rows: list[dict], sample_rows: list[dict],
           spent: dict[str, Any]) -> dict[str, Any]:
    """Step 6 on every problem of a run (:func:`bestofn.selection.verdicts`), and the accuracies: the contents of
    ``results.json`` (``spent``: what the method cost, from :func:`compute`)."""
    greedy_by_id = {g["unique_id"]: g for g in greedy_rows}
    samples_by_id: dict[str, list[dict]] = {p.unique_id: [] for p in problems}
    for s in sorted(sample_rows, key=lambda s: s["sample_index"]):  # position in a problem's list = sample_index
        samples_by_id[s["unique_id"]].append(s)
    per_problem = []
    for p in tqdm(problems, desc="selection", unit="problem"):
        greedy = greedy_by_id.get(p.unique_id)  # None: completions imported without a greedy solution
        per_problem.append({"unique_id": p.unique_id, "level": p.level, "subject": p.subject, "gold": p.answer,
                            "greedy": {"answer": greedy["answer"], "correct": greedy["correct"]} if greedy else None,
                            "samples_used": len(samples_by_id[p.unique_id]),  # n, or fewer: adaptive, a search's pool
                            **verdicts(samples_by_id[p.unique_id], cfg.aggregation, cfg.grading_timeout, p.answer_kind)})
    return {"method": cfg.method, "n": cfg.n, "num_problems": len(problems), "reward_aggregation": cfg.aggregation,
            "dataset": {"source": cfg.dataset, "title": dataset_title(cfg.dataset)},
            "accuracy": accuracy(per_problem),
            "by_level": {str(lvl): accuracy([r for r in per_problem if r["level"] == lvl])
                         for lvl in sorted({p.level for p in problems})},
            "string_match": {"greedy": rate([g["string_match"] for g in greedy_rows]),
                             "samples": rate([s["string_match"] for s in sample_rows])},
            "tokens": {"greedy": total(greedy_rows, "num_tokens"), "samples": total(sample_rows, "num_tokens")},
            "samples_used": {"total": len(sample_rows), "per_problem": len(sample_rows) / max(len(problems), 1)},
            "compute": {**spent, **{f"{k}_per_problem": None if v is None else v / max(len(problems), 1)
                                    for k, v in spent.items()}},
            "per_problem": per_problem}


def total(rows: list[dict], key: str) -> int | None:
    """The sum of a count over ``rows``; None when any is unknown, never a partial sum."""
    counts = [r.get(key) for r in rows]
    return None if any(c is None for c in counts) else sum(counts)


def compute(costs: dict[str, list[dict | None]], sample_rows: list[dict]) -> dict[str, int | None]:
    """What the method spent: every generated token (a search's pruned beams and lookahead included) and every
    token the PRM ran (and, apart, the tokens its prefix cache served), from the chunks' costs; imported
    completions: what their rows say (None: unknown)."""
    spent = costs["samples"] + costs["scores"]
    if spent and all(c is not None for c in spent):
        prm = [c["prm_tokens"] for c in spent]
        return {"generated_tokens": sum(c["generated_tokens"] for c in costs["samples"]),
                "prm_tokens": None if None in prm else sum(prm),
                "prm_cached_tokens": sum(c.get("prm_cached_tokens", 0) for c in spent)}
    return {"generated_tokens": total(sample_rows, "num_tokens"), "prm_tokens": total(sample_rows, "prm_tokens"),
            "prm_cached_tokens": None}
