"""``bestofn prm-bench``: ProcessBench (Zheng et al., ACL 2025; ``Qwen/ProcessBench``, Apache-2.0) for any PRM format.

3,400 solutions labelled with the index of their first wrong step (-1: all right); a PRM predicts the first step
whose reward is below a threshold. Top to bottom: 1. data, 2. one ProcessBench step as one PRM step, 3. scoring
in resumable chunks (the run's own worker and chunk store), 4. ProcessBench's metrics, 5. the whole benchmark.
Details in docs/prm-bench.md.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import BestOfNConfig, chunk_keys
from ..errors import BestOfNError, first_line
from ..io import atomic_write_bytes, json_bytes, jsonl_bytes
from ..prm.formats import LINE

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

HUB_ID = "Qwen/ProcessBench"
SUBSETS: tuple[str, ...] = ("gsm8k", "math", "olympiadbench", "omnimath")  # the Hub splits, in the paper's order
SUBSET_SIZES = {"gsm8k": 400, "math": 1000, "olympiadbench": 1000, "omnimath": 1000}  # rows of each published subset
GSM8K = "gsm8k"  # the subset whose best F1 fixes the threshold under `--threshold gsm8k`
BOOTSTRAP = 2000  # resamples of a subset's rows for each F1's 95% interval
DEFAULT_THRESHOLD = 0.5
CHUNK_ROWS = 64  # rows per scored chunk: big enough for full PRM batches, small enough that a kill loses little
FIELDS = {"id": "a text SUBSET-NUMBER naming the row's subset, like gsm8k-0", "generator": "a text", "problem": "a non-empty text",
          "steps": "a non-empty list of texts", "final_answer_correct": "true or false",
          "label": "an integer, -1 (all steps right) or the index of the first wrong step"}
_ID = re.compile(r"^(?P<subset>[A-Za-z0-9_]+)-(?P<number>\d+)$")


# --- 1. data ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelledSolution:
    """One ProcessBench solution."""

    id: str
    subset: str
    generator: str
    problem: str
    steps: tuple[str, ...]
    final_answer_correct: bool
    label: int  # index of the first wrong step, -1 when every step is right


def load_processbench(data: str | Sequence[str] = HUB_ID,
                      subsets: Sequence[str] | None = None) -> list[LabelledSolution]:
    """The rows of ``data`` (Hub ids, ``.json`` / ``.jsonl`` files, folders of them: :func:`data_sources`) in the
    chosen subsets, in data order.

    ``subsets=None``: all four for the Hub, every subset present in the files. A subset asked for that has no
    row is an error (its metrics would silently be missing); so is a row id given twice.
    """
    sources, rows, seen = data_sources(data), [], {}
    for source in sources:
        for row in _load_source(source, subsets):
            if row.id in seen:
                raise BestOfNError(f"ProcessBench id {row.id!r} is in both {seen[row.id]} and {source}; pass each "
                                   f"subset once")
            seen[row.id] = source
            rows.append(row)
    present = list(dict.fromkeys(r.subset for r in rows))
    known_first = [s for s in SUBSETS if s in present] + [s for s in present if s not in SUBSETS]
    wanted = list(subsets) if subsets else known_first
    missing = [s for s in wanted if s not in present]
    if missing:
        raise BestOfNError(f"ProcessBench data {', '.join(sources)} has no rows of subset(s) {', '.join(missing)} (it "
                           f"has {', '.join(present) or 'none'}); choose others with --subsets")
    order = {s: k for k, s in enumerate(wanted)}
    return sorted((r for r in rows if r.subset in order), key=lambda r: order[r.subset])  # stable: data order kept


def data_sources(data: str | Sequence[str]) -> list[str]:
    """``--data`` as sources: Hub ids and files as given, a folder as its ``.json`` / ``.jsonl`` files (the
    layout ProcessBench publishes: ``gsm8k.json``, ``math.json``, ``olympiadbench.json``, ``omnimath.json``)."""
    sources = []
    for item in [data] if isinstance(data, str) else data:
        folder = Path(item).expanduser()
        if not folder.is_dir():
            sources.append(str(item))
            continue
        files = sorted(str(p) for p in folder.iterdir() if p.suffix in (".json", ".jsonl"))
        if not files:
            raise BestOfNError(f"ProcessBench folder {item} holds no .json or .jsonl file; pass the folder of the "
                               f"subset files (gsm8k.json, math.json, ...), the files, or a Hub dataset id")
        sources += files
    return sources


def _load_source(data: str, subsets: Sequence[str] | None) -> list[LabelledSolution]:
    path = Path(data).expanduser()
    if path.suffix in (".json", ".jsonl"):
        return _check_rows(str(data), _read_file(path))
    if path.exists():
        raise BestOfNError(f"ProcessBench data {data} is neither a .json nor a .jsonl file; pass one of those, or "
                           f"a Hub dataset id such as {HUB_ID}")
    return [row for subset in (subsets or SUBSETS) for row in _load_hub(data, subset)]


def _read_file(path: Path) -> list[tuple[str, Any]]:
    """``(where, row)`` pairs: ``line N`` of a .jsonl file, ``item N`` of a .json list."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BestOfNError(f"cannot read ProcessBench file {path} ({type(e).__name__}: {first_line(e)})") from None
    if path.suffix == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise BestOfNError(f"ProcessBench file {path} is not valid JSON ({e.msg} at line {e.lineno}, column "
                               f"{e.colno}); it must be a JSON list of rows") from None
        if not isinstance(items, list):
            raise BestOfNError(f"ProcessBench file {path} holds a JSON {type(items).__name__}; it must be a list of "
                               f"rows (or use .jsonl, one row per line)")
        return [(f"item {k}", item) for k, item in enumerate(items, start=1)]
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise BestOfNError(f"ProcessBench file {path}: line {number} is not valid JSON ({e.msg} at column "
                               f"{e.colno}); write one JSON object per line") from None
    return rows


def _load_hub(hub_id: str, subset: str) -> list[LabelledSolution]:
    import datasets  # slow to import: only the Hub needs it

    try:
        ds = datasets.load_dataset(hub_id, split=subset)
    except Exception as e:  # offline, unknown id, no such split: all the user's to fix
        raise BestOfNError(f"cannot load the ProcessBench dataset {hub_id!r} (split {subset!r}) from the Hub: "
                           f"{type(e).__name__}: {first_line(e)}. Offline? Download it elsewhere and pass the file: "
                           f"--data gsm8k.json") from None
    return _check_rows(f"{hub_id} (split {subset})", [(f"row {k}", r) for k, r in enumerate(ds.to_list(), start=1)],
                       (subset,))


def _check_rows(source: str, items: list[tuple[str, Any]], subsets: Sequence[str] = SUBSETS) -> list[LabelledSolution]:
    """Every row checked; ``subsets``: the ones the data declares (a Hub split: its own name; a file: ProcessBench's
    four), which each row's id must name."""
    if not items:
        raise BestOfNError(f"ProcessBench data {source} has no rows; each row needs {', '.join(FIELDS)}")
    rows, seen = [], {}
    for where, item in items:
        row = check_row(item, f"ProcessBench data {source}, {where}", subsets)
        if row.id in seen:
            raise BestOfNError(f"ProcessBench data {source}, {where}: id {row.id!r} repeats the id of {seen[row.id]}; "
                               f"ids must be unique")
        seen[row.id] = where
        rows.append(row)
    return rows


def check_row(item: Any, where: str, subsets: Sequence[str] = SUBSETS) -> LabelledSolution:
    """A :class:`LabelledSolution` from one raw row, or one error line naming ``where`` and the bad field; its id must name one
    of ``subsets`` (else a typo in an id would make a subset of its own, and its metrics would be meaningless)."""
    if not isinstance(item, dict):
        raise BestOfNError(f"{where} is a JSON {type(item).__name__}, not an object with {', '.join(FIELDS)}")

    def bad(name: str, why: str | None = None) -> BestOfNError:
        shown = "missing" if name not in item else f"{json.dumps(item[name], ensure_ascii=False)[:60]}"
        return BestOfNError(f"{where}: field {name!r} is {why or shown}; it must be {FIELDS[name]}")

    for name in FIELDS:
        if name not in item:
            raise bad(name)
    found = _ID.match(item["id"]) if isinstance(item["id"], str) else None
    if found is None:
        raise bad("id")
    if found["subset"] not in subsets:
        raise bad("id", f"{item['id']!r}, whose subset {found['subset']!r} is not "
                        f"{'one of ' if len(subsets) > 1 else ''}{', '.join(subsets)}")
    if not isinstance(item["generator"], str):
        raise bad("generator")
    if not isinstance(item["problem"], str) or not item["problem"].strip():
        raise bad("problem")
    steps = item["steps"]
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        raise bad("steps")
    if not isinstance(item["final_answer_correct"], bool):
        raise bad("final_answer_correct")
    label = item["label"]
    if isinstance(label, bool) or not isinstance(label, int):
        raise bad("label")
    if not -1 <= label < len(steps):
        raise bad("label", f"{label}, but the row has {len(steps)} steps (0-{len(steps) - 1})")
    return LabelledSolution(item["id"], found["subset"], item["generator"], item["problem"], tuple(steps),
               item["final_answer_correct"], label)


# --- 2. one ProcessBench step = one PRM step ----------------------------------------------------------------------
def normalise_step(step: str, separator: str) -> str:
    """``step`` with no ``separator`` inside it, so that the PRM reads it as exactly one step.

    One-step-per-line PRMs: every run of newlines becomes one space. Blank-line PRMs: every run of two or more
    newlines becomes one newline, and newlines at the step's ends are dropped (else a step ending in a newline
    and the next one starting with one would join into an empty step between them). A step with no text left
    is scored as one space: an empty last step would vanish in Math-Shepherd's tagging.
    """
    if separator == LINE:
        text = re.sub(r"\n+", " ", step)
    else:
        text = re.sub(r"\n{2,}", "\n", step).strip("\n")
    return text or " "


def join_steps(steps: Sequence[str], separator: str) -> str:
    """The response a PRM scores: the normalised steps joined with its separator."""
    return separator.join(normalise_step(s, separator) for s in steps)


# --- 3. scoring in resumable chunks -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PRMIdentity:
    """What a step reward depends on besides the text: the settings that name a run's scoring chunks
    (``bestofn.config.chunk_keys("scores")``), the format as detected. A chunk made with another PRM is never reused."""

    settings: tuple[tuple[str, Any], ...]

    @classmethod
    def from_config(cls, config: BestOfNConfig, format: str) -> PRMIdentity:
        settings = {**{k: getattr(config, k) for k in chunk_keys("scores")}, "prm_format": format}
        return cls(tuple(sorted(settings.items())))


@dataclass
class ScoringBatch:
    """Rows scored together; ``key`` names its file."""

    rows: list[LabelledSolution]
    problems: list[str]
    responses: list[str]
    key: str


def plan_chunks(rows: Sequence[LabelledSolution], separator: str, prm: PRMIdentity,
                size: int = CHUNK_ROWS) -> list[ScoringBatch]:
    """The rows in chunks of ``size`` (fixed by the data alone), each named by what it depends on
    (:func:`bestofn.rundir.content_key`, as a run's chunks are)."""
    from ..rundir import content_key

    chunks = []
    for start in range(0, len(rows), size):
        part = list(rows[start : start + size])
        responses = [join_steps(r.steps, separator) for r in part]
        key = content_key("prm-bench", dict(prm.settings),
                          [[r.id, r.problem, text] for r, text in zip(part, responses)])
        chunks.append(ScoringBatch(part, [r.problem for r in part], responses, key))
    return chunks


def score_rows(chunks: Sequence[ScoringBatch], config: BestOfNConfig, models: Any) -> dict[str, dict]:
    """``{row id: {"step_rewards", "prm_truncated", "prm_tokens"}}`` for every row: chunks already saved in
    ``DIR/chunks/scores`` (the run directory's chunk store: written once, sealed, a damaged one scored again)
    are reused; the others are scored by the run's own scoring worker (:class:`bestofn.pipeline.Worker`), in this
    process or on Ray. ``models``: how the worker gets its PRM (:class:`bestofn.pipeline.Models`)."""
    from tqdm.auto import tqdm

    from ..executors import make_executor
    from ..pipeline import Worker
    from ..rundir import RunDir

    store = RunDir(config.output_dir, config)
    scored: dict[str, dict] = {}
    todo = []
    for chunk in chunks:
        found = store.load_chunk("scores", chunk.key)
        if found is None:
            todo.append(chunk)
        else:
            scored.update(zip([r.id for r in chunk.rows], found["rows"]))
    if len(todo) < len(chunks):
        log.info("prm-bench: resuming, %d of %d chunks already scored", len(chunks) - len(todo), len(chunks))
    # stage_tokens 0: all of ProcessBench is ~3M PRM tokens, far below what a torch.compile pays back
    payloads = [{"stage": "scores", "unique_ids": [r.id for r in c.rows], "problems": c.problems, "texts": c.responses,
                 "stage_tokens": 0} for c in todo]
    executor = make_executor(config)
    try:
        with tqdm(total=len(chunks), initial=len(chunks) - len(todo), desc="ProcessBench scoring", unit="chunk") as bar:
            for index, result in executor.map(functools.partial(Worker, config, models), payloads):
                chunk = todo[index]
                store.save_chunk("scores", chunk.key, result["rows"], cost=result["cost"])
                scored.update(zip([r.id for r in chunk.rows], result["rows"]))
                bar.update()
    finally:
        executor.close()
    return scored


def check_alignment(row: LabelledSolution, score: dict, format: str) -> None:
    """One reward per step (fewer only when the input was cut at the PRM's context), else one error line."""
    got, want = len(score["step_rewards"]), len(row.steps)
    if got == want or (score["prm_truncated"] and got < want):
        return
    raise BestOfNError(f"row {row.id}: the {format} PRM gave {got} step rewards for {want} steps, so predictions "
                       f"cannot be matched to steps; does a step or the problem contain the PRM's own step tag?")


# --- 4. predictions and metrics -----------------------------------------------------------------------------------
def predict(step_rewards: Sequence[float], threshold: float) -> int:
    """The index of the first step whose own reward is below ``threshold``; -1 if none."""
    return next((k for k, r in enumerate(step_rewards) if r < threshold), -1)


def harmonic_f1(error_accuracy: float, correct_accuracy: float) -> float:
    """ProcessBench's F1: the harmonic mean of the two accuracies (0 when both are 0)."""
    total = error_accuracy + correct_accuracy
    return 2 * error_accuracy * correct_accuracy / total if total else 0.0


def subset_metrics(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, Any]:
    """ProcessBench's numbers for one subset, in percent.

    Error accuracy: rows with a wrong step (label != -1) whose prediction is that step; correct accuracy: rows
    with every step right (label == -1) predicted -1; F1: their harmonic mean. A subset without rows of one
    kind has that accuracy and the F1 undefined (None), where ProcessBench's script would print nan.
    """
    errors = [p == lab for lab, p in zip(labels, predictions) if lab != -1]
    corrects = [p == -1 for lab, p in zip(labels, predictions) if lab == -1]
    error_acc = 100 * sum(errors) / len(errors) if errors else None
    correct_acc = 100 * sum(corrects) / len(corrects) if corrects else None
    f1 = harmonic_f1(error_acc, correct_acc) if errors and corrects else None
    return {"error_accuracy": error_acc, "correct_accuracy": correct_acc, "f1": f1, "n": len(labels),
            "n_error": len(errors), "n_correct": len(corrects)}


def f1_percent(hit: np.ndarray, wrong: np.ndarray, axis: int = -1) -> np.ndarray:
    """:func:`subset_metrics`'s F1 from per-row flags (``hit``: prediction == label; ``wrong``: label != -1),
    vectorised over resamples; nan where a resample lacks a kind of row."""
    import numpy as np

    with np.errstate(invalid="ignore", divide="ignore"):
        err = (hit * wrong).sum(axis) / wrong.sum(axis)
        ok = (hit * (1 - wrong)).sum(axis) / (1 - wrong).sum(axis)
        f1 = np.where(err + ok > 0, 200 * err * ok / (err + ok), 0.0)
    return np.where(np.isnan(err) | np.isnan(ok), np.nan, f1)


def f1_interval(labels: Sequence[int], predictions: Sequence[int], other: Sequence[int] | None = None,
                rounds: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile interval of the F1 over ``rounds`` resamples of the rows (``scipy.stats.bootstrap``); with
    ``other`` (another PRM's predictions on the same rows): of the F1 difference, paired. None: F1 undefined."""
    import warnings

    import numpy as np
    from scipy import stats

    labels = np.asarray(labels)
    wrong = (labels != -1).astype(float)
    if len(labels) < 2 or wrong.all() or not wrong.any():
        return None
    hits = [(np.asarray(p) == labels).astype(float) for p in (predictions, *([] if other is None else [other]))]

    def statistic(wrong: np.ndarray, *hits: np.ndarray, axis: int = -1) -> np.ndarray:
        f1 = [f1_percent(h, wrong, axis) for h in hits]
        return f1[0] if len(f1) == 1 else f1[0] - f1[1]

    with warnings.catch_warnings():  # a resample without one kind of row: nan, left out below
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        reps = stats.bootstrap((wrong, *hits), statistic, paired=True, vectorized=True, n_resamples=rounds,
                               method="percentile", rng=np.random.default_rng(seed)).bootstrap_distribution
    low, high = np.nanpercentile(reps, [2.5, 97.5])
    return float(low), float(high)


def f1_sweep(labels: Sequence[int], rewards: Sequence[Sequence[float]], thresholds: np.ndarray) -> np.ndarray:
    """F1 (percent) at each threshold, as :func:`predict` and :func:`subset_metrics` would give it, vectorised.

    With m_k the minimum of the first k+1 rewards, a row with label L is predicted L exactly when
    ``r_L < t <= m_{L-1}`` (m_{-1} = +inf), and a row labelled -1 is predicted -1 exactly when ``t <= m_last``
    (over the scored steps only). NaN where a kind of row is missing.
    """
    import numpy as np  # imported here: `bestofn --help` must stay fast (tests/test_cli.py)

    low, high, ok_below = [], [], []
    for lab, rs in zip(labels, rewards):
        prefix_min = np.minimum.accumulate(np.asarray(rs, dtype=float)) if len(rs) else np.array([])
        if lab == -1:
            ok_below.append(prefix_min[-1] if len(rs) else math.inf)
        elif lab < len(rs):
            low.append(rs[lab])
            high.append(prefix_min[lab - 1] if lab else math.inf)
        else:  # the labelled step was not scored (input cut at the PRM's context): it can never be predicted
            low.append(math.inf)
            high.append(-math.inf)
    t = thresholds[:, None]
    n_err, n_ok = len(low), len(ok_below)
    err = 100 * ((np.array(low)[None, :] < t) & (t <= np.array(high)[None, :])).sum(1) / n_err if n_err else None
    ok = 100 * (t <= np.array(ok_below)[None, :]).sum(1) / n_ok if n_ok else None
    if err is None or ok is None:
        return np.full(len(thresholds), np.nan)
    total = err + ok
    return np.divide(2 * err * ok, total, out=np.zeros_like(total), where=total > 0)


def candidate_thresholds(rewards: Sequence[Sequence[float]]) -> np.ndarray:
    """Every distinct step reward, plus one just above the largest: between two of these, no prediction changes."""
    import numpy as np

    values = sorted({float(r) for rs in rewards for r in rs})
    if not values:
        return np.array([DEFAULT_THRESHOLD])
    return np.array(values + [math.nextafter(values[-1], math.inf)])


def best_threshold(labels: Sequence[int], rewards: Sequence[Sequence[float]]) -> tuple[float, float] | None:
    """``(threshold, F1)`` with the highest F1 over :func:`candidate_thresholds`; ties go to the lowest threshold.

    None when the rows lack either kind (F1 undefined at every threshold).
    """
    import numpy as np

    thresholds = candidate_thresholds(rewards)
    f1 = f1_sweep(labels, rewards, thresholds)
    if np.isnan(f1).all():
        return None
    best = int(np.argmax(f1))  # the first maximum: thresholds are ascending, so the lowest of the tied
    return float(thresholds[best]), float(f1[best])


def step_auroc(labels: Sequence[int], rewards: Sequence[Sequence[float]]) -> float | None:
    """AUROC of a step's reward for "this step is right", over the steps ProcessBench labels.

    Positives: the steps before the first error (every step of a row labelled -1); negatives: the first
    wrong step. Steps after the first error are left out: ProcessBench labels only the first error. Only
    scored steps count. Ties count half (Mann-Whitney U). None without both kinds.
    """
    from scipy.stats import mannwhitneyu  # imported here: `bestofn --help` must stay fast

    pos = [r for lab, rs in zip(labels, rewards) for r in (rs if lab == -1 else rs[:lab])]
    neg = [rs[lab] for lab, rs in zip(labels, rewards) if lab != -1 and lab < len(rs)]
    if not pos or not neg:
        return None
    return float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))


# --- 5. the whole benchmark ---------------------------------------------------------------------------------------
@dataclass
class BenchSettings:
    """What ``bestofn prm-bench`` adds to the PRM, hardware and Ray settings of :class:`BestOfNConfig`."""

    data: str | list[str] = field(default=HUB_ID, metadata={
        "help": "ProcessBench: a Hub dataset id, local .json/.jsonl files in its layout, or a folder of them (the four "
                "published subset files)"})
    subsets: list[str] | None = field(default=None, metadata={
        "help": f"comma-separated subsets to score, of {','.join(SUBSETS)} (default: all four from the Hub, every "
                f"subset of a file)"})
    threshold: float | str = field(default=DEFAULT_THRESHOLD, metadata={
        "help": f"a step is wrong when its reward is below this (a number in [0, 1]); '{GSM8K}': the threshold with the best F1 on the "
                f"GSM8K subset, used for every subset (the paper's protocol for scalar PRMs)"})
    chunk_rows: int = field(default=CHUNK_ROWS, metadata={"help": "rows per scored (and saved) chunk"})


def parse_threshold(text: str) -> float | str:
    """``--threshold``: a number in [0, 1] (a step's reward is a probability), or ``gsm8k``."""
    if text.strip().lower() == GSM8K:
        return GSM8K
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:  # nan too
        raise BestOfNError(f"--threshold must be a number in [0, 1] (e.g. 0.5; step rewards are probabilities) or "
                           f"'{GSM8K}', got {text!r}")
    return value


def parse_subsets(text: str) -> list[str]:
    """``--subsets``: known subset names, comma-separated."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SUBSETS]
    if unknown or not names:
        raise BestOfNError(f"--subsets takes names from {','.join(SUBSETS)}, comma-separated; got {text!r}")
    return list(dict.fromkeys(names))


def run_prm_bench(bench: BenchSettings, config: BestOfNConfig, scorer: Any = None, overwrite: bool = False
                  ) -> dict[str, Any]:
    """Score ProcessBench with the configured PRM into ``config.output_dir`` and return ``results.json``.

    A folder holding another PRM's results is replaced only with ``overwrite`` (as ``bestofn run`` does).

    ``scorer``: an already loaded scorer (``score_detailed``, ``format``, ``step_separator``) to use instead
    of loading ``config.prm`` (in this process only).
    """
    from ..pipeline import Models
    from ..rundir import lock_run_dir

    if bench.threshold == GSM8K and bench.subsets and GSM8K not in bench.subsets:
        raise BestOfNError(f"--threshold {GSM8K} chooses the threshold on the GSM8K subset: add {GSM8K} to --subsets")
    if scorer is not None and config.ray_address:
        raise BestOfNError("an injected scorer runs in this process only: leave ray_address unset")
    if bench.chunk_rows < 1:
        raise BestOfNError(f"chunk_rows must be at least 1, got {bench.chunk_rows}")
    if (Path(config.output_dir) / "manifest.json").exists():  # results.json would overwrite the run's own
        raise BestOfNError(f"{config.output_dir} is a run directory of `bestofn run`; give prm-bench its own "
                           f"--output-dir")
    rows = load_processbench(bench.data, bench.subsets)
    if bench.threshold == GSM8K:
        check_gsm8k_rows(rows)  # before any scoring: the rule must be able to pick a threshold
    fmt, separator = _format_and_separator(config, scorer)
    prm = PRMIdentity.from_config(config, fmt)
    with lock_run_dir(config.output_dir):
        _check_previous(Path(config.output_dir), {"prm": config.prm, "prm_revision": config.prm_revision,
                                                  "format": fmt}, overwrite)
        models = Models() if scorer is None else _GivenScorer(scorer)
        scores = score_rows(plan_chunks(rows, separator, prm, bench.chunk_rows), config, models)
        for row in rows:
            check_alignment(row, scores[row.id], fmt)
        results, predictions = evaluate(rows, scores, bench.threshold)
        results = {"prm": config.prm, "prm_revision": config.prm_revision, "format": fmt, "step_separator": separator,
                   "data": bench.data, **results}
        out = Path(config.output_dir)
        atomic_write_bytes(out / "predictions.jsonl", jsonl_bytes(predictions))
        atomic_write_bytes(out / "results.json", json_bytes(results))
    return results


def is_bench_dir(path: str | Path) -> bool:
    """Whether ``path`` holds the results of ``bestofn prm-bench`` (not of ``bestofn run``, which has a manifest)."""
    path = Path(path)
    return (path / "predictions.jsonl").is_file() and (path / "results.json").is_file() and not (
        path / "manifest.json").exists()


def _check_previous(out: Path, prm: dict[str, Any], overwrite: bool) -> None:
    """Stop before scoring when ``out`` holds the results of another PRM (their report would be replaced)."""
    path = out / "results.json"
    if overwrite or not path.is_file():
        return
    try:
        old = json.loads(path.read_bytes())
    except ValueError:
        old = {}
    changed = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in prm.items() if not isinstance(old, dict) or old.get(k) != v]
    if changed:
        raise BestOfNError(f"{out} holds the ProcessBench results of another PRM ({', '.join(changed)}); use a new "
                           f"--output-dir, or pass --overwrite to replace them")


def _GivenScorer(scorer: Any) -> Any:  # noqa: N802: a class made on demand (pipeline is imported late)
    """The run's models with ``scorer`` as the PRM (an injected scorer: tests, notebooks)."""
    from ..pipeline import Models

    class GivenScorer(Models):
        def prm(self, config: BestOfNConfig, device: str, compile: bool = False) -> Any:
            return scorer

    return GivenScorer()


def _format_and_separator(config: BestOfNConfig, scorer: Any) -> tuple[str, str]:
    """The PRM's format and separator: the injected scorer's, else from its config.json (no weights read)."""
    if scorer is not None:
        return scorer.format, scorer.step_separator
    from ..prm.formats import STEP_SEPARATORS, detect_format

    fmt = detect_format(config.prm, config.prm_format, config.prm_revision)
    return fmt, STEP_SEPARATORS[fmt]


def evaluate(rows: Sequence[LabelledSolution], scores: dict[str, dict], threshold: float | str) -> tuple[dict, list[dict]]:
    """The numbers of ``results.json`` and the rows of ``predictions.jsonl``."""
    subsets = list(dict.fromkeys(r.subset for r in rows))
    by_subset = {s: [r for r in rows if r.subset == s] for s in subsets}
    rewards = {r.id: scores[r.id]["step_rewards"] for r in rows}
    chosen = {"rule": "fixed", "value": float(threshold)} if threshold != GSM8K else _gsm8k_threshold(by_subset, rewards)
    t = chosen["value"]
    predictions = [{"id": r.id, "subset": r.subset, "label": r.label, "prediction": predict(rewards[r.id], t),
                    "step_rewards": rewards[r.id], "prm_truncated": bool(scores[r.id]["prm_truncated"])} for r in rows]
    predicted = {p["id"]: p["prediction"] for p in predictions}
    per_subset = {}
    for s, members in by_subset.items():
        labels, rs = [r.label for r in members], [rewards[r.id] for r in members]
        best = best_threshold(labels, rs)
        predictions_here = [predicted[r.id] for r in members]
        per_subset[s] = {**subset_metrics(labels, predictions_here),
                         "f1_ci": f1_interval(labels, predictions_here),
                         "published_rows": SUBSET_SIZES.get(s),  # a subset scored in part is marked as such
                         "partial": s in SUBSET_SIZES and len(members) < SUBSET_SIZES[s],
                         "truncated": sum(bool(scores[r.id]["prm_truncated"]) for r in members),
                         "step_auroc": step_auroc(labels, rs),
                         "best_threshold_in_sample": None if best is None else {"threshold": best[0], "f1": best[1]}}
    f1s = [m["f1"] for m in per_subset.values()]
    average = sum(f1s) / len(f1s) if all(f is not None for f in f1s) else None
    truncated = sum(m["truncated"] for m in per_subset.values())
    if truncated:
        log.warning("%d solution(s) were longer than the PRM's context: only their first steps were scored, and "
                    "their predictions look at those steps only (prm_truncated in predictions.jsonl)", truncated)
    return {"threshold": chosen, "subsets": per_subset, "average_f1": average, "truncated_rows": truncated,
            "n": len(rows)}, predictions


def check_gsm8k_rows(rows: Sequence[LabelledSolution]) -> None:
    """``--threshold gsm8k`` needs GSM8K rows of both kinds (a wrong step; all right): else its F1 is undefined."""
    labels = {r.label == -1 for r in rows if r.subset == GSM8K}
    if not labels:
        raise BestOfNError(f"--threshold {GSM8K} needs rows of the {GSM8K} subset; the data has "
                           f"{', '.join(dict.fromkeys(r.subset for r in rows))}; pass a number instead (e.g. 0.5)")
    if labels != {True, False}:
        raise BestOfNError(f"--threshold {GSM8K} needs {GSM8K} rows of both kinds (with a wrong step, and all steps "
                           f"right) to compute an F1; pass a number instead (e.g. --threshold 0.5)")


def _gsm8k_threshold(by_subset: dict[str, list[LabelledSolution]], rewards: dict[str, list[float]]) -> dict[str, Any]:
    """The threshold with the best GSM8K F1 (the lowest of tied ones), and that F1."""
    members = by_subset[GSM8K]
    best = best_threshold([r.label for r in members], [rewards[r.id] for r in members])
    assert best is not None, "check_gsm8k_rows runs first"
    return {"rule": GSM8K, "value": best[0], "gsm8k_f1": best[1],
            "ties": "the lowest of the thresholds with the best GSM8K F1"}


__all__ = ["BenchSettings", "CHUNK_ROWS", "GSM8K", "HUB_ID", "PRMIdentity", "LabelledSolution", "SUBSETS",
           "SUBSET_SIZES", "best_threshold", "candidate_thresholds", "check_gsm8k_rows", "check_row", "data_sources",
           "evaluate", "f1_interval", "f1_percent", "f1_sweep", "harmonic_f1", "is_bench_dir", "join_steps", "load_processbench", "normalise_step", "plan_chunks", "predict",
           "run_prm_bench", "score_rows", "step_auroc", "subset_metrics"]
