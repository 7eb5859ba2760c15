"""``bestofn push RUN_DIR --repo-id OWNER/NAME``: a finished run as a Hub dataset with a dataset card.

Two configurations, ``problems`` (each rule's answer, the answer groups) and ``samples`` (every solution with its
step rewards), as typed Parquet; a dry run writes the very folder a push uploads (``HfApi.upload_folder``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
import shutil
import tempfile
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, Features, List, Value
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData, HfApi, get_token
from huggingface_hub.errors import HFValidationError, HfHubHTTPError, OfflineModeIsEnabled
# The base class of every HTTP failure huggingface_hub raises, refused connections included: huggingface_hub
# re-exports it from the HTTP library it is built on (httpx in 1.x, httpx2 in 2.x), so this stays right.
from huggingface_hub.errors import HTTPError as HubHTTPError
from huggingface_hub.utils import validate_repo_id

from .config import BestOfNConfig
from .data import NO_LEVEL, DatasetSpec, dataset_spec, dataset_title, is_local
from .errors import BestOfNError, first_line
from .prompts import system_prompt_for
from .provenance import GENERATION_SETTINGS, NOT_STATED, Provenance
from .report.loader import Run as RunArtifacts
from .report.loader import load_run
from .selection import METHOD_LABELS

TEMPLATE_PATH = Path(__file__).parent / "templates" / "dataset_card.md"
SPLIT = "test"  # the problems come from benchmarks' test splits: the name tells users not to train on them
CONFIGS = ("problems", "samples")
DEFAULT_CONFIG = "problems"

# --- column types and their documentation ------------------------------------------------------------------
# column -> (feature, description): the features are the dataset's schema, the descriptions the card's "Fields"
# tables, so the two cannot drift apart.
_PROBLEM_COLUMNS: dict[str, tuple[Any, str]] = {
    "unique_id": (Value("string"), "Id of the problem: MATH-500's path in MATH (e.g. `test/algebra/1.json`); "
                                   "`NAME/ID` for other benchmarks (e.g. `aime24/60`, `gsm8k/17`; docs/datasets.md)."),
    "problem": (Value("string"), "Problem statement (LaTeX)."),
    "level": (Value("int32"), "MATH difficulty level, 1 (easiest) to 5; 0 for benchmarks without levels."),
    "subject": (Value("string"), "MATH subject (e.g. `Algebra`), or the benchmark's own topic field; may be empty."),
    "answer": (Value("string"), "Gold (reference) answer."),
    "reference_solution": (Value("string"), "Reference worked solution from the benchmark (may be empty)."),
    "greedy_solution": (Value("string"), "Greedy-decoded solution of the generator."),
    "greedy_answer": (Value("string"), "Answer extracted from the greedy solution (last `\\boxed{}`); null if none."),
    "greedy_correct": (Value("bool"), "Whether the greedy answer is correct (math-verify)."),
    "greedy_num_tokens": (Value("int32"), "Tokens in the greedy solution."),
    "greedy_finish_reason": (Value("string"), "`stop` (the model finished) or `length` (cut at the token limit)."),
    "weighted_bon_answer": (Value("string"),
                            "Weighted Best-of-N answer (heaviest answer group); null if no sample has an answer."),
    "weighted_bon_correct": (Value("bool"), "Whether the weighted Best-of-N answer is correct."),
    "weighted_bon_sample_index": (Value("int32"),
                                  "`sample_index` of the highest-reward solution in the winning group."),
    "weighted_bon_solution": (Value("string"), "That solution's text: the Best-of-N solution."),
    "majority_answer": (Value("string"), "Most frequent answer among the N samples (equivalent answers pooled)."),
    "majority_correct": (Value("bool"), "Whether the majority answer is correct."),
    "naive_bon_answer": (Value("string"), "Answer of the single highest-reward sample."),
    "naive_bon_correct": (Value("bool"), "Whether the naive Best-of-N answer is correct."),
    "naive_bon_sample_index": (Value("int32"), "`sample_index` of the highest-reward sample."),
    "pass_at_n": (Value("bool"), "Whether any of the N samples is correct (oracle)."),
    "answer_groups": (List({"answer": Value("string"), "count": Value("int32"), "reward_sum": Value("float64"),
                            "sample_indices": List(Value("int32"))}),
                      "Samples grouped by equivalent answer, heaviest first: `answer`, `count`, `reward_sum` (summed "
                      "rewards), `sample_indices`."),
}
_SAMPLE_COLUMNS: dict[str, tuple[Any, str]] = {
    "unique_id": (Value("string"), "Problem id; joins with the `problems` configuration."),
    "level": (Value("int32"), "MATH difficulty level of the problem (0: the benchmark has no levels)."),
    "sample_index": (Value("int32"), "Index of the sample, 0 to N-1."),
    "solution": (Value("string"), "Sampled solution, one reasoning step per line."),
    "num_tokens": (Value("int32"), "Tokens in the solution."),
    "finish_reason": (Value("string"), "`stop` or `length` (cut at the token limit)."),
    "answer": (Value("string"), "Extracted answer (last `\\boxed{}`); null if none."),
    "answer_status": (Value("string"), "Why the answer is what it is: `ok`, or why there is none: `no_box`, "
                                       "`unclosed_box` (cut off inside the box), `empty_box`, `timeout` (grading ran "
                                       "out of time)."),
    "correct": (Value("bool"), "Whether the answer is correct (math-verify)."),
    "string_match": (Value("bool"), "Whether the answer equals the gold answer after string normalization."),
    "step_rewards": (List(Value("float64")), "PRM score of each step (steps are the solution's lines)."),
    "reward": (Value("float64"), "The last step's score (the reward selection uses with `last` aggregation); null if "
                                 "no step could be scored."),
    "prm_truncated": (Value("bool"),
                      "True if the solution was longer than the PRM's context: only the steps that fit were scored."),
}
_COLUMNS = {"problems": _PROBLEM_COLUMNS, "samples": _SAMPLE_COLUMNS}
FEATURES: dict[str, Features] = {name: Features({k: f for k, (f, _) in columns.items()})
                                 for name, columns in _COLUMNS.items()}
PROBLEM_FEATURES, SAMPLE_FEATURES = FEATURES["problems"], FEATURES["samples"]

# Licenses we can state for the default models; any other model gets "see the model card".
KNOWN_LICENSES = {
    "Qwen/Qwen2.5-1.5B-Instruct": "Apache-2.0",
    "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B": "Skywork community license, see the model card",
}
_AGGREGATION_TEXT = {"last": "the score of its **last** step", "min": "the **minimum** of its step scores",
                     "prod": "the **product** of its step scores", "mean": "the **mean** of its step scores"}


# --- the two datasets --------------------------------------------------------------------------------------
_NO_GREEDY = {"text": None, "answer": None, "correct": None, "num_tokens": None, "finish_reason": None}


def problem_rows(run: RunArtifacts) -> list[dict[str, Any]]:
    """One row per problem, joining problems, greedy solutions and the results' per-problem decisions."""
    per_problem = {p["unique_id"]: p for p in run.results["per_problem"]}
    rows = []
    for prob in run.problems:
        uid = prob["unique_id"]
        # An imported run may have no greedy solutions: its greedy_* columns are null.
        res, greedy = per_problem[uid], run.greedy.get(uid, _NO_GREEDY)
        win = res["weighted_bon"].get("sample_index")  # None when no sample had an answer
        rows.append({
            "unique_id": uid, "problem": prob["problem"], "level": prob["level"], "subject": prob.get("subject", ""),
            "answer": prob["answer"], "reference_solution": prob.get("solution", ""), "greedy_solution": greedy["text"],
            **{f"greedy_{k}": greedy[k] for k in ("answer", "correct", "num_tokens", "finish_reason")},
            "weighted_bon_answer": res["weighted_bon"]["answer"],
            "weighted_bon_correct": res["weighted_bon"]["correct"], "weighted_bon_sample_index": win,
            "weighted_bon_solution": run.samples[uid][win]["text"] if win is not None else None,
            **{f"{rule}_{k}": res[rule][k] for rule in ("majority", "naive_bon") for k in ("answer", "correct")},
            "naive_bon_sample_index": res["naive_bon"].get("sample_index"),
            "pass_at_n": res["pass_at_n"]["correct"],
            "answer_groups": [{"answer": g["answer"], "count": g["count"], "reward_sum": g["reward_sum"],
                               "sample_indices": g["indices"]} for g in res.get("groups", [])],
        })
    return rows


def sample_rows(run: RunArtifacts) -> list[dict[str, Any]]:
    """One row per sampled solution, in problem order then sample order."""
    return [{"unique_id": s["unique_id"], "level": prob["level"], "sample_index": s["sample_index"],
             "solution": s["text"], "num_tokens": s["num_tokens"], "finish_reason": s["finish_reason"],
             "answer": s["answer"], "answer_status": s.get("answer_status"),  # null in runs graded before it existed
             "correct": s["correct"], "string_match": s["string_match"], "step_rewards": s["step_rewards"],
             "reward": s["step_rewards"][-1] if s["step_rewards"] else None,  # the last step's score
             "prm_truncated": s["prm_truncated"]}
            for prob in run.problems for s in run.samples[prob["unique_id"]]]




# --- the dataset card ---------------------------------------------------------------------------------------
def data_file(config_name: str) -> str:
    """Repo path of a configuration's single Parquet shard (named like ``push_to_hub``'s shards)."""
    return f"{config_name}/{SPLIT}-00000-of-00001.parquet"


def build_card_data(run: RunArtifacts, dsets: dict[str, Dataset], file_sizes: dict[str, int],
                    known: Provenance | None = None) -> DatasetCardData:
    """The card's YAML metadata; ``configs`` and ``dataset_info`` are written by ``datasets``' own helpers,
    so ``load_dataset`` reads them back exactly as it reads a card made by ``push_to_hub``."""
    known = known or Provenance.read(run.run_dir)
    spec, rows = _benchmark(run), max(len(d) for d in dsets.values())
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    card_data = DatasetCardData(
        pretty_name=_pretty_name(run, known), license=spec.hub_license if spec else "other", language=["en"],
        language_creators=["expert-generated", "machine-generated"],  # MATH problems; model solutions
        annotations_creators=["machine-generated"],  # rewards (PRM) and correctness (math-verify)
        task_categories=["text-generation"],
        tags=["math", *([spec.title.lower().replace(" ", "-")] if spec else []), "best-of-n", "process-reward-model",
              "test-time-compute", "synthetic"],
        source_datasets=_source_dataset_ids(run, known),
        size_categories=[next((label for bound, label in bounds if rows < bound), "1M<n<10M")],  # the Hub's buckets
    )
    configs = {name: {"data_files": [{"split": SPLIT, "path": data_file(name)}]} for name in CONFIGS}
    configs[DEFAULT_CONFIG]["default"] = True
    MetadataConfigs(configs).to_dataset_card_data(card_data)
    DatasetInfosDict({name: DatasetInfo(
        features=d.features, splits=SplitDict({SPLIT: SplitInfo(name=SPLIT, num_bytes=d.data.nbytes,
                                                                num_examples=len(d))}),
        download_size=file_sizes[name], dataset_size=d.data.nbytes, config_name=name)
        for name, d in dsets.items()}).to_dataset_card_data(card_data)
    return card_data


def build_card(run: RunArtifacts, dsets: dict[str, Dataset], repo_id: str, file_sizes: dict[str, int]) -> DatasetCard:
    """Render the card template with the run's settings, results and field tables."""
    cfg = run.config
    known = Provenance.read(run.run_dir)  # an imported run states only what its input stated
    aggregation = run.results.get("reward_aggregation", "last")
    num_samples = len(dsets["samples"])
    return DatasetCard.from_template(
        build_card_data(run, dsets, file_sizes, known), template_path=str(TEMPLATE_PATH), repo_id=repo_id,
        split=SPLIT, bestofn_version=run.bestofn_version, n=cfg.n, num_problems=len(run.problems),
        num_samples=num_samples, stderr_text=f"{100 * math.sqrt(0.25 / max(len(run.problems), 1)):.0f}",
        # the problems: where from, which levels, under which license
        source_text=_source_text(run, known), problems_text=_problems_text(run, known), leveled=_leveled(run),
        levels_text=", ".join(str(lvl) for lvl in cfg.levels), benchmark_title=_title(run),
        data_license_text=_data_license_text(run),
        # what an import did not state
        imported=known.is_imported, imported_text=_imported_text(run, known), has_greedy=bool(run.greedy),
        scores_imported=known.is_imported and not known.scored_by_bestofn,
        # the models, the prompt and the sampling settings
        generator=_model_info(cfg.generator, cfg.generator_revision, run.model_commits.get("generator"),
                              known.stated("generator"), loaded=not known.is_imported),
        prm=_model_info(cfg.prm, cfg.prm_revision, run.model_commits.get("prm"), known.stated("prm"),
                        loaded=not known.is_imported or known.scored_by_bestofn),
        system_prompt_block=(_fenced(system_prompt_for(cfg.system_prompt, run.step_separator) or "(no system message)")
                             if known.stated("system_prompt") else NOT_STATED),
        user_template_block=_fenced(cfg.user_template) if known.stated("user_template") else NOT_STATED,
        **{key: known.setting(key, getattr(cfg, key)) for key in ("temperature", "top_p", "max_new_tokens", "seed",
                                                                   "backend")},
        # the results and the fields
        aggregation=aggregation,
        aggregation_text=_AGGREGATION_TEXT.get(aggregation, f"the `{aggregation}` aggregation of its step scores"),
        results_table=results_table(run.results), string_match_text=_string_match_text(run.results),
        tokens_text=_tokens_text(run.results, bool(run.greedy)), problem_fields_table=fields_table("problems"),
        sample_fields_table=fields_table("samples"), truncation_text=_truncation_text(run, num_samples, known),
        revision_text=_revision_text(cfg, run.model_commits, known),
        # cite a model paper only for the model that was actually used
        cite_qwen="qwen2.5" in cfg.generator.lower(), cite_skywork="skywork" in cfg.prm.lower())


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
                      *("| " + " | ".join(row) + " |" for row in rows)])


def results_table(results: dict[str, Any]) -> str:
    """Markdown table of accuracy per method, overall and per level, as ``pct% (correct/total)``."""
    levels = sorted(results.get("by_level", {}), key=int)

    def cell(acc: dict[str, Any] | None) -> str:
        return f"{100 * acc['accuracy']:.1f}% ({acc['correct']}/{acc['total']})" if acc and acc.get("total") else "-"

    return _markdown_table(["Method", "All levels", *(f"Level {lvl}" for lvl in levels)],
                           [[METHOD_LABELS.get(m, m), cell(acc), *(cell(results["by_level"][lvl].get(m))
                                                                  for lvl in levels)]
                            for m, acc in results["accuracy"].items()])


def fields_table(config_name: str) -> str:
    """Markdown table of a configuration's columns: name, type (from its Features) and meaning."""
    return _markdown_table(["Column", "Type", "Description"],
                           [[f"`{name}`", _type_name(feature), doc] for name, (feature, doc)
                            in _COLUMNS[config_name].items()])


def _type_name(feature: Any) -> str:
    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, List):
        return f"list of {_type_name(feature.feature)}"
    if isinstance(feature, dict):
        return "{" + ", ".join(f"{k}: {_type_name(v)}" for k, v in feature.items()) + "}"
    return type(feature).__name__


def _fenced(text: str) -> str:
    """A code block that shows ``text`` verbatim: the fence is longer than any backtick run inside it."""
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}text\n{text}\n{fence}"


def _is_hub_id(name: str) -> bool:
    """A Hub id is ``owner/name`` that is not a folder on this machine (local paths must not be linked)."""
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", name)) and not Path(name).exists()


def _is_hub_dataset(name: str) -> bool:
    """A dataset Hub id: ``owner/name``, not a local file (``data/mine.jsonl`` is one, even where it is missing)."""
    return _is_hub_id(name) and not is_local(name)


def _short(name: str) -> str:
    return name.split("/")[-1] if _is_hub_id(name) else Path(name).name


def _model_info(name: str, revision: str | None, commit: str | None = None, stated: bool = True,
                loaded: bool = True) -> dict[str, str]:
    """The card's cells for a model. ``stated``: the run knows its name; ``loaded``: bestofn itself loaded it, so
    an unpinned revision means "the default branch at run time" (for imported completions it is not stated)."""
    if not stated:  # completions imported without naming the model: nothing about it is known
        return {"name_md": f"a model the imported input does not name ({NOT_STATED})", "revision_md": NOT_STATED,
                "license": NOT_STATED}
    # A local model: only the folder's name (the absolute path says nothing to readers and may expose a home folder).
    name_md = (f"[{name}](https://huggingface.co/{name})" if _is_hub_id(name)
               else f"`{Path(name).name}` (a local model folder)")
    if revision and commit and commit != revision:
        revision_md = f"`{revision}` (commit `{commit}`)"  # the asked-for revision and the commit it resolved to
    elif revision or commit:
        revision_md = f"`{revision or commit}`"
    else:
        revision_md = "not pinned (default branch at run time)" if loaded else NOT_STATED
    return {"name_md": name_md, "revision_md": revision_md, "license": KNOWN_LICENSES.get(name, "see the model card")}


# --- the benchmark the problems come from (bestofn.data's registry) ------------------------------------------------
def _benchmark(run: RunArtifacts) -> DatasetSpec | None:
    """The benchmark the config's dataset is (its registry name or Hub id), else None: a file's layout or levels
    say nothing of where its problems come from, so the card claims no benchmark, license or source for them."""
    return dataset_spec(run.config.dataset)


def _title(run: RunArtifacts) -> str:
    spec = _benchmark(run)
    return spec.title if spec is not None else dataset_title(run.config.dataset)


def _leveled(run: RunArtifacts) -> bool:
    """Whether the problems have difficulty levels (MATH); other benchmarks' problems are all level 0."""
    return any(int(p["level"]) != NO_LEVEL for p in run.problems)


def _levels(run: RunArtifacts) -> str:
    return ", ".join(str(lvl) for lvl in run.config.levels)


def _source_dataset_ids(run: RunArtifacts, known: Provenance) -> list[str] | None:
    """A known benchmark names its Hub copy, a Hub dataset itself, a local file nothing (nothing is claimed about
    it); imported completions come from their own source."""
    cfg, spec = run.config, _benchmark(run)
    if spec is not None and not known.is_imported:
        return [spec.hub_id]
    return [cfg.dataset] if _is_hub_dataset(cfg.dataset) else (None if known.is_imported else [])


def _source_text(run: RunArtifacts, known: Provenance) -> str:
    cfg, spec = run.config, _benchmark(run)
    hub = _is_hub_dataset(cfg.dataset)
    link = f"[{cfg.dataset}](https://huggingface.co/datasets/{cfg.dataset})"
    if known.is_imported:
        where = link if hub else f"the completions file `{Path(cfg.dataset).name}`"
        return f"{where} (imported with `bestofn import`)"
    if spec is not None:
        return f"{spec.title} ([{spec.hub_id}]({spec.url}))"
    return link if hub else f"the local file `{Path(cfg.dataset).name}`"


def _pretty_name(run: RunArtifacts, known: Provenance) -> str:
    cfg = run.config
    if known.is_imported:
        models = " + ".join(_short(getattr(cfg, k)) for k in ("generator", "prm") if known.stated(k))
        return f"Best-of-{cfg.n} on imported completions ({_short(cfg.dataset)})" + (f": {models}" if models else "")
    levels = f" levels {_levels(run)}" if _leveled(run) else ""
    return f"Best-of-{cfg.n} on {_title(run)}{levels}: {_short(cfg.generator)} + {_short(cfg.prm)}"


def _problems_text(run: RunArtifacts, known: Provenance) -> str:
    """Where the problems come from and how they were drawn (MATH-500's history; the levels clause only with levels;
    for imported completions, as the input gave them)."""
    cfg = run.config
    if known.is_imported:
        split = f" (split `{cfg.dataset_split}`)" if _is_hub_dataset(known.source or "") else ""
        levels = f" at levels {_levels(run)}" if _leveled(run) else ""
        return (f"This dataset uses {len(run.problems)} problems{levels} of {_source_text(run, known)}{split}, as the "
                f"imported input gave them (how they were chosen: {NOT_STATED}).")
    about = ("MATH-500 is the 500-problem subset of the MATH test set (Hendrycks et al., 2021) that Lightman et al. "
             "(2023) held out in \"Let's Verify Step by Step\". " if _title(run) == "MATH-500" else "")
    if _leveled(run):
        counts = ", ".join(f"level {lvl}: {c}" for lvl, c in sorted(Counter(p["level"] for p in run.problems).items()))
        drawn = (f"levels {_levels(run)},\ndrawn by `bestofn` with seed {cfg.seed}, "
                 f"stratified by level (problems ranked by a hash of the seed and their\n`unique_id`, so the subset "
                 f"is the same on every machine). Problems per level: {counts}.")
    else:
        drawn = (f"drawn by `bestofn` with seed {cfg.seed} from every problem ({_title(run)} has no difficulty "
                 f"levels; problems ranked by a hash of the seed and their `unique_id`, so the subset is the same "
                 f"on every machine).")
    return (f"{about}This dataset uses {len(run.problems)} problems of {_source_text(run, known)}\n"
            f"(split `{cfg.dataset_split}`), {drawn}")


def _data_license_text(run: RunArtifacts) -> str:
    spec = _benchmark(run)
    if spec is None:
        return "The problems come from a dataset whose license this card does not know: check it before reusing them."
    if spec.name == "math500":
        return "The dataset is released under the MIT license, the license of MATH and of the MATH-500 split (PRM800K)."
    return f"The problems come from {spec.title} ({spec.license}; see [its Hub copy]({spec.url}))."


def _imported_text(run: RunArtifacts, known: Provenance) -> str:
    """The card's account of imported completions: where from, who wrote and scored them as far as the input says,
    and which settings it did not state ("" for a run of ``bestofn run``)."""
    if not known.is_imported:
        return ""
    cfg, imp = run.config, known.imported
    source = known.source if _is_hub_id(known.source) else Path(known.source).name
    writer = _model_info(cfg.generator, None, None, known.stated("generator"))["name_md"]
    scorer = _model_info(cfg.prm, None, None, known.stated("prm"))["name_md"]
    scores = "one score per solution" if imp.get("scores") == "one per completion" else "a score per step"
    greedy = " and one greedy solution" if run.greedy else " (no greedy solution)"
    missing = ", ".join(GENERATION_SETTINGS[k] for k in known.not_stated())
    rescored = " (rescored by `bestofn`)" if known.scored_by_bestofn else ""
    return (f"**Imported completions.** `bestofn` did not generate these solutions: they were imported with "
            f"`bestofn import` from `{source}`, {cfg.n} solutions{greedy} for each of {len(run.problems)} problems, "
            f"written by {writer}; {scorer} gave {scores}{rescored}. `bestofn` extracted and graded the answers "
            f"again and redid the selection (three rules pick one answer per problem). What the input did not state "
            f"is marked \"{NOT_STATED}\" below" + (f" ({missing})." if missing else "."))


def _string_match_text(results: dict[str, Any]) -> str:
    sm = results.get("string_match", {})
    parts = [f"{label} {100 * sm[key]['accuracy']:.1f}%"
             for key, label in (("greedy", "greedy"), ("samples", "all samples")) if sm.get(key, {}).get("total")]
    return (f"With exact string matching instead of math-verify the accuracy would be: {', '.join(parts)}."
            if parts else "")


def _tokens_text(results: dict[str, Any], has_greedy: bool = True) -> str:
    """Generated tokens; a count the run does not know (imported without counts) is "not stated", never 0."""
    tokens = results.get("tokens", {})
    shown = {k: NOT_STATED if tokens.get(k) is None else f"{tokens[k]:,}" for k in ("greedy", "samples")}
    return f"{shown['greedy'] + ' (greedy)' if has_greedy else 'no greedy solutions'}, {shown['samples']} (samples)"


def _truncation_text(run: RunArtifacts, num_samples: int, known: Provenance) -> str:
    samples = [s for rows in run.samples.values() for s in rows]
    limit = (f"{sum(s['finish_reason'] == 'length' for s in samples)} of {num_samples} samples hit the "
             f"{run.config.max_new_tokens}-token limit" if known.stated("max_new_tokens")
             else f"whether any of the {num_samples} samples hit a token limit is {NOT_STATED}")
    context = (f"{sum(bool(s['prm_truncated']) for s in samples)} were longer than the PRM's context and scored on "
               f"their first steps only" if known.scored_by_bestofn or not known.is_imported
               else f"whether the imported scores covered every step is {NOT_STATED}")
    return (f"{limit[0].upper() + limit[1:]}, {sum(s['answer'] is None for s in samples)} have no extracted answer, "
            f"and {context}.")


def _revision_text(cfg: BestOfNConfig, commits: dict[str, str | None], provenance: Provenance) -> str:
    unnamed = [role for role, key in (("generator", "generator"), ("PRM", "prm")) if not provenance.stated(key)]
    if unnamed:
        return (f"The imported input does not name the {' or the '.join(unnamed)}, so no model or revision is known "
                f"for {'it' if len(unnamed) == 1 else 'them'}.")
    known = {"generator": cfg.generator_revision or commits.get("generator"),
             "PRM": cfg.prm_revision or commits.get("prm")}
    unpinned = [role for role, rev in known.items() if not rev]
    if not unpinned:
        return "Both models are identified by the revisions above (the commits the run actually used)."
    return (f"The {' and '.join(unpinned)} {'revision is' if len(unpinned) == 1 else 'revisions are'} unknown (a "
            "local folder, or not recorded): the run used whatever weights that name pointed to at the time.")


# --- writing the folder ---------------------------------------------------------------------------------------
def save_dataset_folder(run_dir: str | Path, save_dir: str | Path, repo_id: str) -> list[Path]:
    """Write the upload folder (``problems/*.parquet``, ``samples/*.parquet``, ``README.md``) and return its files;
    nothing is uploaded (:func:`push` uploads this same folder)."""
    _check_repo_id(repo_id)
    run, save_dir = load_run(run_dir), Path(save_dir)
    # An empty folder or a previous output of this function, nothing else: the upload must be exactly what was built.
    if save_dir.exists():
        if not save_dir.is_dir():
            raise BestOfNError(f"--save-dir {save_dir} is a file; pass a folder")
        stray = sorted(p.name for p in save_dir.iterdir() if p.name not in {"README.md", *CONFIGS})
        if stray:
            raise BestOfNError(f"--save-dir {save_dir} holds other files ({', '.join(stray[:5])}); pass an empty or "
                               f"new folder")
        for name in CONFIGS:
            shutil.rmtree(save_dir / name, ignore_errors=True)
        (save_dir / "README.md").unlink(missing_ok=True)
    # the two datasets, typed by FEATURES (a wrong type fails here)
    dsets = {name: Dataset.from_list(rows, features=FEATURES[name], split=datasets.NamedSplit(SPLIT))
             for name, rows in (("problems", problem_rows(run)), ("samples", sample_rows(run)))}
    files = [save_dir / data_file(name) for name in dsets]
    for path, ds in zip(files, dsets.values()):
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(path))  # stores the Features in the Parquet schema, so types survive a reload
    readme = save_dir / "README.md"
    build_card(run, dsets, repo_id, {name: path.stat().st_size for name, path in zip(dsets, files)}).save(readme)
    return [readme, *files]


# --- pushing -----------------------------------------------------------------------------------------------
def _check_repo_id(repo_id: str) -> None:
    # The owner is required: a bare name would go to whatever account the token belongs to.
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise BestOfNError(f"--repo-id {repo_id!r} is not a valid repo id ({e}); use OWNER/NAME") from None
    if repo_id.count("/") != 1:
        raise BestOfNError(f"--repo-id {repo_id!r} must be OWNER/NAME, e.g. my-user/bestofn-math500")


def _hub_error(action: str, error: Exception) -> BestOfNError:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status is None and not isinstance(error, HfHubHTTPError):
        return BestOfNError(f"cannot reach the Hugging Face Hub to {action} ({first_line(error)}); check the network, "
                            f"or use --dry-run --save-dir DIR")
    return BestOfNError(f"the Hub refused to {action} (HTTP {status}: {first_line(error)})")


def check_write_access(api: HfApi, repo_id: str) -> str:
    """Check the token before any work: it exists, is valid and may write; return the user name. For an existing
    repo the Hub's write check decides (:func:`_check_overwrite`); for a new one, the owner must be the user or one
    of their organizations and the token must not be read-only."""
    if api.token is None:
        raise BestOfNError("no Hugging Face token found: run `hf auth login` (with a write token) or set HF_TOKEN; "
                           "to build the files without uploading, use --dry-run --save-dir DIR")
    try:
        who = api.whoami()
    except OfflineModeIsEnabled:  # the first request of a push: say so once, instead of a traceback
        raise BestOfNError("offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set), so nothing can be "
                           "uploaded: unset it to push, or build the files without uploading with --dry-run "
                           "--save-dir DIR") from None
    except HubHTTPError as e:
        if isinstance(e, HfHubHTTPError) and e.response.status_code == 401:
            raise BestOfNError("the Hugging Face token is invalid or expired: run `hf auth login` with a new write "
                               "token") from None
        raise _hub_error("check the token", e) from None
    user = who.get("name", "?")
    if ((who.get("auth") or {}).get("accessToken") or {}).get("role") == "read":
        raise BestOfNError(f"the token of {user} is read-only: create a write token at "
                           "https://huggingface.co/settings/tokens and run `hf auth login`")
    owner = repo_id.split("/")[0]
    namespaces = {user, *(org.get("name") for org in who.get("orgs") or [])}
    if owner not in namespaces:
        own = ", ".join(sorted(n for n in namespaces if n))
        raise BestOfNError(f"the token belongs to {user}, who cannot write to {owner}/ (own namespaces: {own})")
    return user


def _check_overwrite(api: HfApi, repo_id: str, revision: str | None, overwrite: bool) -> bool:
    """Refuse to write into an existing repo or branch unless asked to; return whether the repo exists."""
    try:
        if not api.repo_exists(repo_id, repo_type="dataset"):
            return False
        api.auth_check(repo_id, repo_type="dataset", write=True)
        branches = {b.name for b in api.list_repo_refs(repo_id, repo_type="dataset").branches}
    except HubHTTPError as e:
        if getattr(getattr(e, "response", None), "status_code", None) in (401, 403):
            raise BestOfNError(f"the token cannot write to the dataset repo {repo_id}: use a token with write access "
                               f"to it") from None
        raise _hub_error(f"check the dataset repo {repo_id}", e) from None
    if not overwrite and revision is None:
        raise BestOfNError(f"the dataset repo {repo_id} already exists; pass --revision BRANCH to push to a new branch "
                           f"of it, or --overwrite to replace its dataset files on main")
    if not overwrite and revision in branches:
        raise BestOfNError(f"branch {revision!r} of the dataset repo {repo_id} already exists; pass another "
                           f"--revision, or --overwrite to replace its dataset files")
    return True


def push(run_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
         overwrite: bool = False, token: str | None = None, save_dir: str | Path | None = None,
         commit_message: str | None = None) -> str:
    """Build the dataset folder from ``run_dir`` and upload it to the dataset repo ``repo_id``; return the commit URL.

    The cheap checks that fail most (repo id, token, repo) come first; then the folder is written (into ``save_dir``
    or a temporary folder) and the card validated by the Hub; only then is the repo created and the folder uploaded.
    """
    _check_repo_id(repo_id)
    api = HfApi(token=token or get_token())
    check_write_access(api, repo_id)
    exists = _check_overwrite(api, repo_id, revision, overwrite)
    with tempfile.TemporaryDirectory(prefix="bestofn-push-") as tmp:
        folder = Path(save_dir) if save_dir is not None else Path(tmp)
        save_dataset_folder(run_dir, folder, repo_id)  # checks the run dir: a broken run creates no repo
        try:
            DatasetCard.load(folder / "README.md").validate()  # a bad card fails before the repo is created
        except ValueError as e:
            raise BestOfNError(f"the Hub rejects the dataset card's metadata: {e}") from None
        except HubHTTPError as e:
            raise _hub_error("validate the dataset card", e) from None
        try:
            if not exists:
                api.create_repo(repo_id, repo_type="dataset", private=private)
            if revision is not None:
                api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id, repo_type="dataset", folder_path=folder, revision=revision,
                commit_message=commit_message or f"Upload Best-of-N results from {Path(run_dir).name}",
                # Remove shards of an earlier push that this one does not replace, so a config never mixes runs.
                delete_patterns=[f"{name}/*" for name in CONFIGS])
        except HubHTTPError as e:
            raise _hub_error(f"create or write to the dataset repo {repo_id}", e) from None
    return info.commit_url
