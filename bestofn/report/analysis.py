"""The numbers of a run report, computed from a finished run directory (nothing is plotted or written here).

Accuracy vs n: every selection rule on many random n-subsets of the N solutions, on answer groups computed once
per problem. Intervals: Wilson over problems; two methods are compared paired (exact McNemar, bootstrap).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..errors import BestOfNError
from ..grading import EXPRESSION
from ..io import read_json
from .loader import finish_hint, load_run, whole_samples
# Method names and labels live in bestofn.selection; run_report and sweep reach them as A.METHOD_LABELS etc.
from ..selection import (AGGREGATIONS, METHOD_LABELS, METHODS, SELECTION_METHODS, aggregate, choose, group_answers,
                         group_labels, shown)

CI_LEVEL = 0.95
CALIBRATION_BINS = 10
DEFAULT_SUBSETS = 500
DEFAULT_BOOTSTRAP = 2000
DEFAULT_SEED = 0
BON_RULES = ("naive_bon", "weighted_bon")  # the rules that read rewards: curves per aggregation


# --- Loading ----------------------------------------------------------------------------------------------------------
@dataclass
class ProblemData:
    """One problem with its greedy solution and its N sampled solutions (index = ``sample_index``)."""

    unique_id: str
    level: int
    subject: str
    problem: str
    gold: str
    greedy_answer: str | None
    greedy_correct: bool | None  # None: the run has no greedy solution (imported completions)
    greedy_tokens: float  # nan: unknown
    greedy_text: str
    answers: list[str | None]
    texts: list[str]
    correct: np.ndarray  # bool (N,)
    tokens: np.ndarray  # float (N,): generated tokens per solution; nan where the count is unknown
    string_match: np.ndarray  # bool (N,): the answer equals the gold one after light normalization
    greedy_string_match: bool | None
    step_rewards: list[list[float]]
    scored: np.ndarray  # bool (N,): the PRM scored at least one step
    truncated: np.ndarray  # bool (N,): the PRM saw only the steps that fit its context
    cut_off: np.ndarray  # bool (N,): generation hit max_new_tokens
    labels: np.ndarray  # int (N,): answer group, in order of first appearance over all N; -1 = no answer

    @property
    def size(self) -> int:
        """How many solutions the problem has: N, or fewer (adaptive Best-of-N stopped, a search pool was smaller)."""
        return len(self.answers)

    def rewards(self, how: str) -> np.ndarray:
        """One reward per solution, aggregated from its step rewards exactly as selection does."""
        return np.array([aggregate(steps, how) for steps in self.step_rewards], dtype=float)


@dataclass
class RunData:
    """A finished run directory, loaded and checked."""

    run_dir: Path
    n: int
    reward_aggregation: str
    config: dict[str, Any]
    results: dict[str, Any]
    problems: list[ProblemData]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def levels(self) -> list[int]:
        return sorted({p.level for p in self.problems})

    @property
    def has_greedy(self) -> bool:
        """Whether the run has a greedy baseline (completions imported from elsewhere may not)."""
        return self.problems[0].greedy_correct is not None

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods this run can report, in :data:`METHODS` order."""
        return METHODS if self.has_greedy else tuple(m for m in METHODS if m != "greedy")

    @property
    def tokens_known(self) -> bool:
        """Whether every solution's generated-token count is known (imports may lack them)."""
        return all(not np.isnan(p.tokens).any() for p in self.problems) and (
            not self.has_greedy or all(not np.isnan(p.greedy_tokens) for p in self.problems))

    @property
    def one_score(self) -> bool:
        """Whether every solution has at most one reward (an outcome reward, or no step breaks): then every
        aggregation gives the same reward and per-step views show nothing."""
        return all(len(steps) <= 1 for p in self.problems for steps in p.step_rewards)


def load_run_data(run_dir: str | Path) -> RunData:
    """Read and check a run directory (:func:`~bestofn.report.loader.load_run`) and group each problem's answers
    (once). Raises :class:`BestOfNError` when files are missing or disagree (a run that has not finished)."""
    run = load_run(run_dir)
    try:
        loaded = [_problem(p, run.greedy.get(p["unique_id"]), run.samples[p["unique_id"]], run.n, run.run_dir,
                           run.config.grading_timeout) for p in run.problems]
    except KeyError as e:  # a row without a field of docs/artifacts.md: written by another version, or edited
        raise BestOfNError(f"run directory {run.run_dir} has rows without the field {e}; "
                           f"{finish_hint(run.run_dir)}") from None
    manifest = run.run_dir / "manifest.json"
    return RunData(run.run_dir, run.n, str(run.results.get("reward_aggregation", "last")), run.config.to_dict(),
                   run.results, loaded, read_json(manifest) if manifest.is_file() else {})


def _count(value: Any) -> float:
    """A token count, or nan when the row does not know it (never 0: 0 would read as free generation)."""
    return float("nan") if value is None else float(value)


def _problem(p: dict, greedy: dict | None, rows: list[dict], n: int, run_dir: Path, timeout: float = 5) -> ProblemData:
    rows = sorted(rows, key=lambda r: r["sample_index"])
    if not 1 <= len(rows) <= n or not whole_samples([r["sample_index"] for r in rows], len(rows)):
        raise BestOfNError(f"{run_dir}/samples.jsonl: problem {p['unique_id']} has sample_index "
                           f"{[r['sample_index'] for r in rows]}, expected 0..k-1 with k at most {n}; "
                           f"{finish_hint(run_dir)}")
    answers = [r["answer"] for r in rows]
    g = greedy or {}
    return ProblemData(
        unique_id=p["unique_id"], level=int(p["level"]), subject=str(p.get("subject", "")),
        problem=str(p.get("problem", "")), gold=str(p["answer"]), greedy_answer=g.get("answer"),
        greedy_correct=bool(g["correct"]) if greedy else None, greedy_tokens=_count(g.get("num_tokens")),
        greedy_text=str(g.get("text", "")), answers=answers, texts=[str(r.get("text", "")) for r in rows],
        correct=np.array([bool(r["correct"]) for r in rows]),
        tokens=np.array([_count(r.get("num_tokens")) for r in rows], dtype=float),
        string_match=np.array([bool(r.get("string_match", False)) for r in rows]),
        greedy_string_match=bool(g.get("string_match", False)) if greedy else None,
        step_rewards=[[float(x) for x in r["step_rewards"] or []] for r in rows],
        scored=np.array([bool(r["step_rewards"]) for r in rows]),
        truncated=np.array([bool(r.get("prm_truncated", False)) for r in rows]),
        cut_off=np.array([r.get("finish_reason") == "length" for r in rows]),
        # The one place math-verify runs for a problem: its answers, grouped exactly as selection groups them.
        labels=group_labels(group_answers(answers, timeout=timeout, kind=p.get("answer_kind", EXPRESSION)), len(rows)),
    )


# --- Selection on subsets, by group label -----------------------------------------------------------------------------
def sample_sizes(n_total: int) -> list[int]:
    """The n of the accuracy-vs-n curve: powers of two up to N, and N itself (e.g. 1, 2, 4, 8, 12 for N=12)."""
    sizes = [2**k for k in range(n_total.bit_length()) if 2**k <= n_total]
    return sizes if sizes[-1] == n_total else [*sizes, n_total]


def draw_subsets(n_total: int, n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random n-subsets of ``range(n_total)`` as sorted index rows, shape (count, n).

    Without replacement, as a real run with N=n draws (repeats would inflate votes); all subsets when there are
    at most ``count``, so the average is exact. Sorted rows keep "earliest" for tie-breaking."""
    if math.comb(n_total, n) <= count:
        return np.array(list(itertools.combinations(range(n_total), n)), dtype=int).reshape(-1, n)
    # argsort of uniform noise is a uniformly random permutation; its first n entries a uniform n-subset.
    return np.sort(np.argsort(rng.random((count, n_total)), axis=1)[:, :n], axis=1)


def is_hit(correct: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """Whether each picked sample (-1: no answer) is correct."""
    return np.where(picked >= 0, correct[np.maximum(picked, 0)], False)


# --- Accuracy vs n ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """A value with its 95% confidence interval."""

    value: float
    low: float
    high: float


def wilson(successes: float, total: int) -> tuple[float, float]:
    """Wilson score 95% interval of ``successes / total``, clamped to [0, p] and [p, 1] (float noise at 0/3).

    Written out because ``successes`` may be fractional (an expected accuracy over n-subsets), which scipy's
    ``binomtest(...).proportion_ci("wilson")`` refuses; for whole counts the two agree (tested)."""
    if total <= 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(0.5 + CI_LEVEL / 2))
    p = min(max(successes / total, 0.0), 1.0)
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return min(max(centre - half, 0.0), p), max(min(centre + half, 1.0), p)


def proportion(values: np.ndarray) -> Estimate:
    """Mean of per-problem accuracies in [0, 1] with its Wilson interval over the problems."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else 0.0
    return Estimate(mean, *wilson(mean * len(values), len(values)))


@dataclass
class Curves:
    """Per-problem expected accuracy of every method at every n (averaged over subsets), and token cost.

    ``methods[m]`` and ``by_aggregation[agg][m]``: (len(ns), problems); ``tokens``: expected generated tokens per
    problem for n samples."""

    ns: list[int]
    methods: dict[str, np.ndarray]
    by_aggregation: dict[str, dict[str, np.ndarray]]
    tokens: np.ndarray
    greedy_tokens: np.ndarray
    subsets: int
    seed: int


def accuracy_curves(run: RunData, subsets: int = DEFAULT_SUBSETS, seed: int = DEFAULT_SEED) -> Curves:
    """Expected accuracy of each method for n = 1, 2, 4, ... N, averaged over ``subsets`` random n-subsets.

    Every method and aggregation is judged on the *same* subsets (common random numbers); each problem has its own
    generator, seeded by ``(seed, problem position)``, so adding problems does not reshuffle the others."""
    if subsets < 1:
        raise BestOfNError(f"subsets must be at least 1, got {subsets}; e.g. --subsets 500")
    ns = sample_sizes(run.n)
    shape = (len(ns), len(run.problems))
    methods = {m: np.zeros(shape) for m in run.methods}
    by_agg = {a: {m: np.zeros(shape) for m in BON_RULES} for a in AGGREGATIONS}
    tokens = np.zeros(shape)
    for i, p in enumerate(run.problems):
        rng = np.random.default_rng([seed, i])
        rewards = {a: p.rewards(a) for a in AGGREGATIONS}
        if run.has_greedy:
            methods["greedy"][:, i] = float(p.greedy_correct)
        for k, n in enumerate(ns):
            idx = draw_subsets(p.size, min(n, p.size), subsets, rng)  # a problem with fewer samples: all it has
            methods["pass_at_n"][k, i] = p.correct[idx].any(axis=1).mean()
            methods["majority"][k, i] = is_hit(p.correct, choose("majority", p.labels, rewards[run.reward_aggregation],
                                                                 idx)).mean()
            for a, rule in itertools.product(AGGREGATIONS, BON_RULES):
                by_agg[a][rule][k, i] = is_hit(p.correct, choose(rule, p.labels, rewards[a], idx)).mean()
            tokens[k, i] = p.tokens[idx].sum(axis=1).mean()  # nan when a count is unknown
    methods.update(by_agg[run.reward_aggregation])
    return Curves(ns, methods, by_agg, tokens, np.array([p.greedy_tokens for p in run.problems], dtype=float),
                  subsets, seed)


def bootstrap_mean(values: np.ndarray, rng: np.random.Generator, rounds: int = DEFAULT_BOOTSTRAP) -> Estimate:
    """The mean of per-problem ``values`` (e.g. paired differences) with the percentile interval of ``rounds``
    resamples of the problems (``scipy.stats.bootstrap``); a point when there is nothing to resample."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2 or np.ptp(values) == 0:
        return Estimate(mean, mean, mean)
    ci = stats.bootstrap((values,), np.mean, n_resamples=rounds, confidence_level=CI_LEVEL, method="percentile",
                         rng=rng).confidence_interval
    return Estimate(mean, float(ci.low), float(ci.high))


def proportions(values: dict[str, np.ndarray]) -> dict[str, list[Estimate]]:
    """Per method, one Wilson :class:`Estimate` per row (n) of its (ns, problems) accuracy array."""
    return {m: [proportion(row) for row in v] for m, v in values.items()}


# --- Full N: what each method answered, per problem -------------------------------------------------------------------
@dataclass
class Pick:
    """The answer a method gave for one problem, and the solution shown for it (None: no solution)."""

    answer: str | None
    correct: bool
    sample_index: int | None


@dataclass
class ProblemOutcome:
    """One problem at full N: greedy, the three selection rules, the oracle, and the answer groups."""

    unique_id: str
    level: int
    subject: str
    gold: str
    greedy: Pick | None  # None: the run has no greedy solution
    majority: Pick
    naive_bon: Pick
    weighted_bon: Pick
    pass_at_n: bool
    num_correct: int
    groups: list[dict[str, Any]]  # answer, count, reward_sum, indices, correct: heaviest first

    def solved(self, method: str) -> bool:
        return self.pass_at_n if method == "pass_at_n" else getattr(self, method).correct

    @property
    def contested(self) -> bool:
        """More than one answer group: the rules can disagree, so selection matters here."""
        return len(self.groups) > 1

    @property
    def missed(self) -> bool:
        """A right answer was sampled but weighted Best-of-N did not choose it."""
        return self.pass_at_n and not self.weighted_bon.correct


def full_n_outcome(p: ProblemData, how: str) -> ProblemOutcome:
    """Apply every rule to all N solutions of ``p`` (rewards aggregated with ``how``)."""
    rewards = p.rewards(how)

    def pick(rule: str) -> Pick:
        """A rule's verdict is the best-scored member of the group it picks (as results.json shows it)."""
        picked = int(choose(rule, p.labels, rewards, np.arange(len(p.answers))[None, :])[0])
        if picked < 0:
            return Pick(None, False, None)
        index = shown(p.labels, rewards, picked)
        return Pick(p.answers[index], bool(p.correct[index]), index)

    greedy = Pick(p.greedy_answer, p.greedy_correct, None) if p.greedy_correct is not None else None
    return ProblemOutcome(p.unique_id, p.level, p.subject, p.gold, greedy, pick("majority"), pick("naive_bon"),
                          pick("weighted_bon"), bool(p.correct.any()), int(p.correct.sum()), group_table(p, rewards))


def group_table(p: ProblemData, rewards: np.ndarray) -> list[dict[str, Any]]:
    """Answer groups with size and summed reward, heaviest first: :func:`bestofn.selection.answer_groups`'s rows
    (plus ``correct``), built from the stored labels instead of grouping again."""
    members = [[int(i) for i in np.flatnonzero(p.labels == g)] for g in range(int(p.labels.max()) + 1)]
    rows = [{"answer": p.answers[m[0]], "count": len(m), "reward_sum": float(sum(rewards[i] for i in m)), "indices": m,
             "correct": bool(p.correct[m[0]])} for m in members]
    return sorted(rows, key=lambda r: -r["reward_sum"])


# --- The PRM as a correctness detector --------------------------------------------------------------------------------
def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """P(score of a correct solution > score of a wrong one), ties counting 1/2: the Mann-Whitney U statistic over
    the product of the class sizes (``scipy.stats.mannwhitneyu``). None when one class is empty."""
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return None
    u = stats.mannwhitneyu(scores[positive], scores[~positive]).statistic
    return float(u / (positive.sum() * (~positive).sum()))


@dataclass
class PRMStats:
    """How well one reward aggregation separates correct from incorrect solutions."""

    aggregation: str
    correct_rewards: np.ndarray
    incorrect_rewards: np.ndarray
    auroc: float | None  # pooled over all scored solutions of all problems
    auroc_ci: tuple[float, float] | None  # bootstrap over problems
    within_auroc: float | None  # mean per-problem AUROC, over problems with right and wrong solutions
    within_problems: int  # how many problems that is
    unscored: int  # solutions the PRM could not score (left out here; they get reward 0 in selection)


def prm_stats(run: RunData, how: str, rng: np.random.Generator, rounds: int = DEFAULT_BOOTSTRAP) -> PRMStats:
    """Reward distributions and AUROC of one aggregation.

    The pooled AUROC also rewards telling easy problems from hard ones; Best-of-N needs the ranking *within* a
    problem (``within_auroc``). The pooled interval resamples whole problems (their solutions are not independent)."""
    per_problem = [(p.rewards(how)[p.scored], p.correct[p.scored]) for p in run.problems]
    scores = np.concatenate([s for s, _ in per_problem])
    labels = np.concatenate([c for _, c in per_problem])
    pooled = auroc(scores, labels)
    ci = None
    if pooled is not None and rounds > 0 and len(per_problem) > 1:
        def resampled(problems: np.ndarray) -> float:
            value = auroc(*(np.concatenate([per_problem[i][k] for i in problems]) for k in (0, 1)))
            return np.nan if value is None else value  # a resample with one class only: left out below

        with warnings.catch_warnings():  # scipy warns of the nan its own interval gets from those
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            reps = stats.bootstrap((np.arange(len(per_problem)),), resampled, n_resamples=rounds, vectorized=False,
                                   method="percentile", rng=rng).bootstrap_distribution
        tail = (1 - CI_LEVEL) / 2 * 100
        ci = tuple(float(x) for x in np.nanpercentile(reps, [tail, 100 - tail])) if np.isfinite(reps).any() else None
    within = [v for s, c in per_problem if (v := auroc(s, c)) is not None]
    return PRMStats(how, scores[labels], scores[~labels], pooled, ci, float(np.mean(within)) if within else None,
                    len(within), int(sum((~p.scored).sum() for p in run.problems)))


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test: is a split of ``only_a`` vs ``only_b`` discordant problems plausible under
    "both methods equally good" (a fair coin per discordant problem)?"""
    total = only_a + only_b
    return float(stats.binomtest(only_a, total, 0.5).pvalue) if total else 1.0


def min_informative_for_significance(alpha: float = 1 - CI_LEVEL) -> int:
    """The fewest informative problems with which the exact McNemar test can reach p < ``alpha`` (6 for 5%)."""
    k = 1
    while mcnemar_p(k, 0) >= alpha:
        k += 1
    return k


# --- Calibration: does a reward of 0.8 mean "right 80% of the time"? --------------------------------------------------
@dataclass
class Calibration:
    """A reliability diagram's numbers: equal-width reward bins over [0, 1] with their accuracy; ``ece`` is the
    count-weighted mean over bins of |accuracy - mean reward| (how literally a reward reads as a probability)."""

    edges: np.ndarray  # (bins + 1,)
    counts: np.ndarray  # int (bins,)
    mean_reward: np.ndarray  # (bins,), nan for empty bins
    accuracy: np.ndarray  # (bins,), nan for empty bins
    intervals: list[tuple[float, float] | None]  # Wilson interval of each bin's accuracy, None if empty
    ece: float
    total: int
    clipped: int  # rewards outside [0, 1], put into the first or last bin


def calibration(rewards: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> Calibration:
    """Bin solution rewards into ``bins`` equal bins over [0, 1] (1.0 falls in the last) and compare each bin's mean
    reward with the share of right solutions in it."""
    rewards, correct = np.asarray(rewards, dtype=float), np.asarray(correct, dtype=bool)
    clipped = int(((rewards < 0) | (rewards > 1)).sum())
    rewards = np.clip(rewards, 0.0, 1.0)
    edges = np.arange(bins + 1) / bins  # k / bins exactly: a reward of 0.7 opens the 0.7-0.8 bin (linspace: 0.6-0.7)
    if len(rewards):
        counts = stats.binned_statistic(rewards, rewards, "count", bins=edges).statistic.astype(int)
        with np.errstate(invalid="ignore", divide="ignore"):  # empty bins: nan
            accuracy, mean_reward = stats.binned_statistic(rewards, [correct.astype(float), rewards], "mean",
                                                           bins=edges).statistic
    else:
        counts, accuracy, mean_reward = np.zeros(bins, int), np.full(bins, np.nan), np.full(bins, np.nan)
    right = np.round(np.nan_to_num(accuracy) * counts)
    filled = counts > 0
    ece = float((counts[filled] * np.abs(accuracy[filled] - mean_reward[filled])).sum() / counts.sum()) \
        if len(rewards) else 0.0
    intervals = [wilson(r, c) if c else None for r, c in zip(right, counts)]
    return Calibration(edges, counts, mean_reward, accuracy, intervals, ece, int(len(rewards)), clipped)


def run_calibration(run: RunData, how: str | None = None, bins: int = CALIBRATION_BINS) -> Calibration:
    """Calibration of the run's selection reward (``how``: its aggregation) over every scored solution."""
    how = how or run.reward_aggregation
    rewards = np.concatenate([p.rewards(how)[p.scored] for p in run.problems])
    return calibration(rewards, np.concatenate([p.correct[p.scored] for p in run.problems]), bins)


# --- Step rewards of right vs wrong solutions -------------------------------------------------------------------------
@dataclass
class StepCurve:
    """Reward at step k (1-based) over the solutions that have a step k: mean, quartiles, count."""

    steps: np.ndarray
    mean: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    count: np.ndarray


def step_curves(run: RunData, max_steps: int = 20, min_count: int = 3) -> dict[bool, StepCurve]:
    """Per correctness (True: right solutions), the reward by step index, up to ``max_steps`` steps and only where
    at least ``min_count`` solutions reach that step (a mean over one or two is noise)."""
    out = {}
    for right in (True, False):
        by_step: list[list[float]] = [[] for _ in range(max_steps)]
        for p in run.problems:
            for steps in (s for s, ok in zip(p.step_rewards, p.correct) if bool(ok) == right):
                for k, r in enumerate(steps[:max_steps]):
                    by_step[k].append(r)
        kept = [by_step[k] for k in range(max_steps) if len(by_step[k]) >= min_count]
        out[right] = StepCurve(
            np.array([k + 1 for k in range(max_steps) if len(by_step[k]) >= min_count], dtype=int),
            np.array([np.mean(v) for v in kept]), np.array([np.percentile(v, 25) for v in kept]),
            np.array([np.percentile(v, 75) for v in kept]), np.array([len(v) for v in kept], dtype=int))
    return out


# --- Everything the report needs --------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """Method ``a`` against ``b`` at full N, on the same problems.

    Only the problems solved by exactly one of the two tell them apart: ``a`` won ``only_a`` of them and lost
    ``only_b``. ``p_value``: the exact McNemar test on that split; ``difference``: the accuracy difference with a
    paired bootstrap interval over problems (its size, not a second test)."""

    a: str
    b: str
    difference: Estimate  # accuracy(a) - accuracy(b), paired bootstrap over problems
    only_a: list[str]  # unique_ids solved by a and not b
    only_b: list[str]
    p_value: float  # exact McNemar

    @property
    def informative(self) -> int:
        return len(self.only_a) + len(self.only_b)

    @property
    def significant(self) -> bool:
        """The exact McNemar test rejects "equally good" at the 5% level (the one verdict the report states)."""
        return self.p_value < 1 - CI_LEVEL


@dataclass
class SelectionMatters:
    """Where a selection rule can make a difference at full N, and where it did not find the right answer."""

    contested: list[str]  # more than one answer group: the rules can disagree
    unanimous: list[str]  # exactly one answer group: every rule gives the same answer
    no_answer: list[str]  # no sample has an answer
    missed: list[str]  # a right answer was sampled but weighted Best-of-N chose another
    none_right: list[str]  # no sample was right: no rule can help
    rules_disagree: list[str]  # majority, naive and weighted Best-of-N did not all pick the same answer


def selection_matters(outcomes: Sequence[ProblemOutcome]) -> SelectionMatters:
    def ids(keep) -> list[str]:  # noqa: ANN001 - a predicate on an outcome
        return [o.unique_id for o in outcomes if keep(o)]

    def same_pick(o: ProblemOutcome) -> bool:
        picks = (o.majority, o.naive_bon, o.weighted_bon)
        return len({p.correct for p in picks}) == 1 and len({p.answer for p in picks}) == 1

    return SelectionMatters(ids(lambda o: o.contested), ids(lambda o: len(o.groups) == 1), ids(lambda o: not o.groups),
                            ids(lambda o: o.missed), ids(lambda o: not o.pass_at_n), ids(lambda o: not same_pick(o)))


@dataclass
class AnswerChecks:
    """math-verify against plain string matching (both recorded by the pipeline for every answer)."""

    source: str  # "greedy" or "samples"
    total: int
    math_verify: int
    string_match: int
    only_math_verify: int  # answers math-verify accepts and string matching rejects
    only_string_match: int


def answer_checks(run: RunData) -> list[AnswerChecks]:
    """Counts of right answers by each check, for greedy (if any) and for all samples."""
    sources = [("samples", np.concatenate([p.correct for p in run.problems]),
                np.concatenate([p.string_match for p in run.problems]))]
    if run.has_greedy:
        sources.insert(0, ("greedy", np.array([bool(p.greedy_correct) for p in run.problems]),
                           np.array([bool(p.greedy_string_match) for p in run.problems])))
    return [AnswerChecks(source, int(len(mv)), int(mv.sum()), int(sm.sum()), int((mv & ~sm).sum()),
                         int((sm & ~mv).sum())) for source, mv, sm in sources]


@dataclass
class Analysis:
    """All numbers of a report, computed from one run directory."""

    run: RunData
    curves: Curves
    bootstrap: int
    accuracy: dict[str, list[Estimate]]  # method -> one estimate per n (Wilson interval over problems)
    by_level: dict[int, dict[str, list[Estimate]]]
    aggregation: dict[str, dict[str, list[Estimate]]]  # aggregation -> naive_bon/weighted_bon -> per n
    outcomes: list[ProblemOutcome]
    comparisons: dict[str, Comparison]  # "weighted_bon-greedy", "weighted_bon-majority", ...
    prm: dict[str, PRMStats]
    calibration: Calibration
    steps: dict[bool, StepCurve]
    matters: SelectionMatters
    checks: list[AnswerChecks]
    mean_tokens: list[float] | None  # generated tokens per problem for n samples (None: counts unknown)
    greedy_mean_tokens: float | None
    tokens_by_level: dict[int, list[float]] | None
    greedy_tokens_by_level: dict[int, float] | None
    inconsistencies: list[str] = field(default_factory=list)  # disagreements with results.json

    @property
    def ns(self) -> list[int]:
        return self.curves.ns

    @property
    def methods(self) -> tuple[str, ...]:
        return self.run.methods

    def at_full_n(self, method: str) -> Estimate:
        return self.accuracy[method][-1]


def paired_comparison(curves: Curves, outcomes: list[ProblemOutcome], a: str, b: str, rng: np.random.Generator,
                      rounds: int) -> Comparison:
    """Paired comparison of two methods at full N: accuracy difference with CI, flips, McNemar p."""
    only_a = [o.unique_id for o in outcomes if o.solved(a) and not o.solved(b)]
    only_b = [o.unique_id for o in outcomes if o.solved(b) and not o.solved(a)]
    diff = curves.methods[a][-1] - curves.methods[b][-1]
    return Comparison(a, b, bootstrap_mean(diff, rng, rounds), only_a, only_b, mcnemar_p(len(only_a), len(only_b)))


def analyze(run: RunData | str | Path, subsets: int = DEFAULT_SUBSETS, seed: int = DEFAULT_SEED,
            bootstrap: int = DEFAULT_BOOTSTRAP) -> Analysis:
    """Compute every number of the report for one run directory (deterministic for a given seed)."""
    if not isinstance(run, RunData):
        run = load_run_data(run)
    if bootstrap < 1:
        raise BestOfNError(f"bootstrap must be at least 1, got {bootstrap}; e.g. --bootstrap 2000")
    curves = accuracy_curves(run, subsets, seed)
    rng = np.random.default_rng([seed, 1_000_003])  # bootstrap stream, apart from the subset streams
    levels = np.array([p.level for p in run.problems])
    outcomes = [full_n_outcome(p, run.reward_aggregation) for p in run.problems]
    pairs = [("weighted_bon", "majority"), ("weighted_bon", "naive_bon")]
    if run.has_greedy:
        pairs = [("weighted_bon", "greedy"), *pairs, ("majority", "greedy")]
    comparisons = {f"{a}-{b}": paired_comparison(curves, outcomes, a, b, rng, bootstrap) for a, b in pairs}
    prm = {a: prm_stats(run, a, rng, bootstrap if a == run.reward_aggregation else 0) for a in AGGREGATIONS}
    known, tokens, greedy_tokens = run.tokens_known, curves.tokens, curves.greedy_tokens
    greedy_known = known and run.has_greedy
    analysis = Analysis(
        run, curves, bootstrap, proportions(curves.methods),
        {lvl: proportions({m: v[:, levels == lvl] for m, v in curves.methods.items()}) for lvl in run.levels},
        {a: proportions(v) for a, v in curves.by_aggregation.items()}, outcomes, comparisons, prm,
        run_calibration(run), step_curves(run), selection_matters(outcomes), answer_checks(run),
        [float(x) for x in tokens.mean(axis=1)] if known else None,
        float(greedy_tokens.mean()) if greedy_known else None,
        {lvl: [float(x) for x in tokens[:, levels == lvl].mean(axis=1)] for lvl in run.levels} if known else None,
        {lvl: float(greedy_tokens[levels == lvl].mean()) for lvl in run.levels} if greedy_known else None)
    analysis.inconsistencies = check_against_results(analysis)
    return analysis


def check_against_results(analysis: Analysis) -> list[str]:
    """Where results.json (written by the pipeline) disagrees with the full-N numbers recomputed here: a sign of
    edited artifacts or another version, which the report states rather than silently picking one."""
    notes = []
    stored = analysis.run.results.get("accuracy", {})
    for m in analysis.methods:
        ours = solved_counts(analysis.outcomes, m)
        if m in stored and "correct" in stored[m] and int(stored[m]["correct"]) != ours:
            notes.append(f"{m}: results.json says {stored[m]['correct']} correct, the samples give {ours}")
    if "n" in analysis.run.results and int(analysis.run.results["n"]) != analysis.run.n:
        notes.append(f"results.json says n={analysis.run.results['n']}, samples.jsonl has {analysis.run.n} per problem")
    return notes


def solved_counts(outcomes: Sequence[ProblemOutcome], method: str) -> int:
    """How many problems ``method`` solved at full N."""
    return sum(o.solved(method) for o in outcomes)


# --- Choosing a method without grading it on the same problems (compare's compute-optimal choice) ---------------------
def two_fold_split(unique_ids: Sequence[str], seed: int = DEFAULT_SEED) -> np.ndarray:
    """Fold 0 or 1 of each problem: problems ranked by ``sha256(seed:unique_id)`` (:func:`bestofn.seeds.seed_hash`),
    the first half (rounded down) in fold 0. It depends on the ids alone, never on their order or on which other
    problems a run has beside them; call it on one level's problems to split each level in two."""
    from ..seeds import seed_hash

    ranked = sorted(range(len(unique_ids)), key=lambda i: seed_hash(seed, unique_ids[i]))
    folds = np.ones(len(unique_ids), dtype=int)
    folds[ranked[: len(unique_ids) // 2]] = 0
    return folds


@dataclass(frozen=True)
class CrossValidated:
    """Two-fold cross-validation of a choice among candidates (e.g. methods at one budget): ``picks[f]`` is the
    candidate with the highest mean on fold ``f`` (ties: the earlier); each problem's ``held_out`` value is that of
    the candidate picked on the *other* fold, so no problem grades the choice it helped make."""

    picks: tuple[int, int]
    held_out: np.ndarray  # (problems,)

    @property
    def estimate(self) -> Estimate:
        return proportion(self.held_out)


def cross_validate(values: np.ndarray, folds: np.ndarray) -> CrossValidated | None:
    """``values`` (candidates, problems), ``folds`` (problems,) of 0/1; None when a fold is empty."""
    if not (folds == 0).any() or not (folds == 1).any():
        return None
    picks = tuple(int(np.argmax(values[:, folds == f].mean(axis=1))) for f in (0, 1))
    held_out = np.where(folds == 0, values[picks[1]], values[picks[0]])
    return CrossValidated((picks[0], picks[1]), held_out.astype(float))
