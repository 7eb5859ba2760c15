"""After step 6: what Best-of-N buys over greedy, computed from a finished run directory.

Everything here is a pure computation on the artifacts of ``bestofn run`` (``problems.jsonl``,
``greedy.jsonl``, ``samples.jsonl``, ``results.json``, ``config.yaml``); :mod:`bestofn.report.run_report` turns the
result into plots and words. Nothing is plotted or written here.

Accuracy vs n. A run samples N solutions per problem; the accuracy of Best-of-n for n < N is estimated by
applying each selection rule to many random n-subsets of those N and averaging. Answer equivalence groups
are computed once per problem over all N (math-verify is slow); a subset is then evaluated on group
*labels* alone, with the tie-breaking of :mod:`bestofn.selection` reproduced exactly (ties go to the group
whose first solution in the subset came first, or to the earlier solution; a solution without an answer
never wins). This assumes math-verify equivalence is transitive, so grouping a subset gives the full
grouping restricted to it; the tests check the fast path against :mod:`bestofn.selection` itself.

Uncertainty. With 20-500 problems the dominant noise is *which problems* were drawn, not which subsets:
every confidence interval is a 95% percentile bootstrap over problems (resample problems with
replacement, recompute the mean), paired across methods and n so differences are judged on the same
problems.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BestOfNError
from .. import rundir
from ..rundir import finish_hint
# Method names and labels live in bestofn.selection; run_report and sweep reach them as A.METHOD_LABELS etc.
from ..selection import AGGREGATIONS, METHOD_LABELS, METHODS, SELECTION_METHODS, aggregate, group_answers

CI_LEVEL = 0.95

DEFAULT_SUBSETS = 500
DEFAULT_BOOTSTRAP = 2000
DEFAULT_SEED = 0


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------
@dataclass
class ProblemData:
    """One problem with its greedy solution and its N sampled solutions (index = ``sample_index``)."""

    unique_id: str
    level: int
    subject: str
    problem: str
    gold: str
    greedy_answer: str | None
    greedy_correct: bool
    greedy_tokens: int
    greedy_text: str
    answers: list[str | None]
    texts: list[str]
    correct: np.ndarray  # bool (N,)
    tokens: np.ndarray  # int (N,)
    step_rewards: list[list[float]]
    scored: np.ndarray  # bool (N,): the PRM scored at least one step
    truncated: np.ndarray  # bool (N,): the PRM saw only the steps that fit its context
    cut_off: np.ndarray  # bool (N,): generation hit max_new_tokens
    labels: np.ndarray  # int (N,): answer group, in order of first appearance over all N; -1 = no answer

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

    @property
    def levels(self) -> list[int]:
        return sorted({p.level for p in self.problems})


def load_run(run_dir: str | Path) -> RunData:
    """Read and check a run directory (:func:`bestofn.rundir.load_run`), and group each problem's N answers by
    equivalence (once).

    Raises :class:`BestOfNError` when files are missing or disagree (a run that has not finished).
    """
    run = rundir.load_run(run_dir)
    try:
        loaded = [_problem(p, run.greedy[p["unique_id"]], run.samples[p["unique_id"]], run.n, run.run_dir,
                           run.config.grading_timeout) for p in run.problems]
    except KeyError as e:  # a row without a field of docs/artifacts.md: written by another version, or edited
        raise BestOfNError(f"run directory {run.run_dir} has rows without the field {e}; {finish_hint(run.run_dir)}") from None
    return RunData(
        run_dir=run.run_dir,
        n=run.n,
        reward_aggregation=str(run.results.get("reward_aggregation", "last")),
        config=run.config.to_dict(),
        results=run.results,
        problems=loaded,
    )


def _problem(p: dict, greedy: dict, rows: list[dict], n: int, run_dir: Path, timeout: float = 5) -> ProblemData:
    rows = sorted(rows, key=lambda r: r["sample_index"])
    if [r["sample_index"] for r in rows] != list(range(n)):
        raise BestOfNError(
            f"{run_dir}/samples.jsonl: problem {p['unique_id']} has sample_index "
            f"{[r['sample_index'] for r in rows]}, expected 0..{n - 1}; {finish_hint(run_dir)}"
        )
    answers = [r["answer"] for r in rows]
    labels = np.full(n, -1, dtype=int)
    # The one place math-verify runs for a problem: its N answers, grouped exactly as selection groups them.
    for g, members in enumerate(group_answers(answers, timeout=timeout)):
        labels[members] = g
    return ProblemData(
        unique_id=p["unique_id"],
        level=int(p["level"]),
        subject=str(p.get("subject", "")),
        problem=str(p.get("problem", "")),
        gold=str(p["answer"]),
        greedy_answer=greedy.get("answer"),
        greedy_correct=bool(greedy["correct"]),
        greedy_tokens=int(greedy.get("num_tokens", 0)),
        greedy_text=str(greedy.get("text", "")),
        answers=answers,
        texts=[str(r.get("text", "")) for r in rows],
        correct=np.array([bool(r["correct"]) for r in rows]),
        tokens=np.array([int(r.get("num_tokens", 0)) for r in rows]),
        step_rewards=[[float(x) for x in r["step_rewards"] or []] for r in rows],
        scored=np.array([bool(r["step_rewards"]) for r in rows]),
        truncated=np.array([bool(r.get("prm_truncated", False)) for r in rows]),
        cut_off=np.array([r.get("finish_reason") == "length" for r in rows]),
        labels=labels,
    )


# --------------------------------------------------------------------------------------------------------
# Selection on subsets, by group label
# --------------------------------------------------------------------------------------------------------
def sample_sizes(n_total: int) -> list[int]:
    """The n of the accuracy-vs-n curve: powers of two up to N, and N itself (e.g. 1, 2, 4, 8, 12 for N=12)."""
    sizes = [2**k for k in range(n_total.bit_length()) if 2**k <= n_total]
    return sizes if sizes[-1] == n_total else [*sizes, n_total]


def draw_subsets(n_total: int, n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random n-subsets of ``range(n_total)`` as sorted index rows, shape (count, n).

    Each subset holds n *distinct* solutions (drawn without replacement), as a real run with N=n would:
    drawing with replacement would repeat solutions, inflate their votes and understate Best-of-n. When
    there are no more than ``count`` distinct subsets, all of them are enumerated instead, so the average
    is exact (n=1, n=N, and small N). Rows are sorted so "earliest" keeps its meaning for tie-breaking.
    """
    if math.comb(n_total, n) <= count:
        return np.array(list(itertools.combinations(range(n_total), n)), dtype=int).reshape(-1, n)
    # argsort of uniform noise is a uniformly random permutation; its first n entries a uniform n-subset.
    return np.sort(np.argsort(rng.random((count, n_total)), axis=1)[:, :n], axis=1)


def heaviest_group(labels: np.ndarray, weights: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Per subset, the sample index that :func:`bestofn.selection._heaviest` would answer with; -1 if none.

    Majority vote is this with unit weights, weighted Best-of-N with the rewards. The answer of a group is
    its first solution in the subset; ties in summed weight go to the group that appears first.
    """
    count, n = subsets.shape
    num_groups = int(labels.max()) + 1
    if num_groups == 0:
        return np.full(count, -1)
    lab, w = labels[subsets], weights[subsets]
    member = lab[:, :, None] == np.arange(num_groups)  # (count, n, groups)
    totals = np.zeros((count, num_groups))
    for j in range(n):  # add members in index order, so the float sums equal selection's sum() bit for bit
        totals += np.where(member[:, j, :], w[:, j, None], 0.0)
    present = member.any(axis=1)
    first = np.where(member, np.arange(n)[None, :, None], n).min(axis=1)  # position of each group's first member
    totals = np.where(present, totals, -np.inf)
    tied = present & (totals == totals.max(axis=1, keepdims=True))
    pos = np.where(tied, first, n).min(axis=1)
    return np.where(present.any(axis=1), subsets[np.arange(count), np.minimum(pos, n - 1)], -1)


def best_solution(labels: np.ndarray, rewards: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Per subset, the highest-reward solution that has an answer (ties: the earlier one); -1 if none."""
    masked = np.where(labels[subsets] >= 0, rewards[subsets], -np.inf)
    pos = masked.argmax(axis=1)  # argmax returns the first of equal maxima: the earlier solution
    has_answer = np.isfinite(masked).any(axis=1)
    return np.where(has_answer, subsets[np.arange(len(subsets)), pos], -1)


def is_hit(correct: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """Whether each picked sample (-1: no answer) is correct."""
    return np.where(picked >= 0, correct[np.maximum(picked, 0)], False)


# --------------------------------------------------------------------------------------------------------
# Accuracy vs n
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% bootstrap confidence interval."""

    value: float
    low: float
    high: float


@dataclass
class Curves:
    """Per-problem expected accuracy of every method at every n (averaged over subsets), and token cost.

    ``methods[m]`` and ``by_aggregation[agg][m]`` have shape (len(ns), num_problems); ``tokens`` is the
    expected number of generated tokens per problem for n samples.
    """

    ns: list[int]
    methods: dict[str, np.ndarray]
    by_aggregation: dict[str, dict[str, np.ndarray]]
    tokens: np.ndarray
    greedy_tokens: np.ndarray
    subsets: int
    seed: int


def accuracy_curves(run: RunData, subsets: int = DEFAULT_SUBSETS, seed: int = DEFAULT_SEED) -> Curves:
    """Expected accuracy of each method for n = 1, 2, 4, ... N, averaged over ``subsets`` random n-subsets.

    All methods and aggregations are judged on the *same* subsets of a problem (common random numbers),
    so their differences carry no subset noise. Each problem has its own generator seeded by
    ``(seed, problem position)``, so adding problems to a run does not reshuffle the others' subsets.
    """
    if subsets < 1:
        raise BestOfNError(f"subsets must be at least 1, got {subsets}; e.g. --subsets 500")
    ns = sample_sizes(run.n)
    shape = (len(ns), len(run.problems))
    methods = {m: np.zeros(shape) for m in METHODS}
    by_agg = {a: {m: np.zeros(shape) for m in ("naive_bon", "weighted_bon")} for a in AGGREGATIONS}
    tokens = np.zeros(shape)
    for i, p in enumerate(run.problems):
        rng = np.random.default_rng([seed, i])
        rewards = {a: p.rewards(a) for a in AGGREGATIONS}
        methods["greedy"][:, i] = float(p.greedy_correct)
        for k, n in enumerate(ns):
            idx = draw_subsets(run.n, n, subsets, rng)
            methods["pass_at_n"][k, i] = p.correct[idx].any(axis=1).mean()
            methods["majority"][k, i] = is_hit(p.correct, heaviest_group(p.labels, np.ones(run.n), idx)).mean()
            for a in AGGREGATIONS:
                by_agg[a]["weighted_bon"][k, i] = is_hit(p.correct, heaviest_group(p.labels, rewards[a], idx)).mean()
                by_agg[a]["naive_bon"][k, i] = is_hit(p.correct, best_solution(p.labels, rewards[a], idx)).mean()
            tokens[k, i] = p.tokens[idx].sum(axis=1).mean()
    for m in ("naive_bon", "weighted_bon"):
        methods[m] = by_agg[run.reward_aggregation][m]
    return Curves(
        ns=ns,
        methods=methods,
        by_aggregation=by_agg,
        tokens=tokens,
        greedy_tokens=np.array([p.greedy_tokens for p in run.problems], dtype=float),
        subsets=subsets,
        seed=seed,
    )


def bootstrap_means(values: np.ndarray, rng: np.random.Generator, rounds: int = DEFAULT_BOOTSTRAP) -> np.ndarray:
    """Means of ``values`` (..., problems) over ``rounds`` resamples of the problems: shape (..., rounds).

    A resample is drawn as multinomial counts per problem (same distribution as sampling problems with
    replacement), so all rows share the resamples and paired differences stay paired.
    """
    num = values.shape[-1]
    counts = rng.multinomial(num, np.full(num, 1.0 / num), size=rounds)  # (rounds, problems)
    return values @ counts.T / num


def estimate(point: float, resampled: np.ndarray) -> Estimate:
    """Point value with the percentile interval of its bootstrap replicates."""
    tail = (1 - CI_LEVEL) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Estimate(float(point), float(low), float(high))


def estimates(values: np.ndarray, rng: np.random.Generator, rounds: int) -> list[Estimate]:
    """One :class:`Estimate` per row of ``values`` (rows, problems), all rows on the same resamples."""
    reps = bootstrap_means(values, rng, rounds)
    return [estimate(values[r].mean(), reps[r]) for r in range(values.shape[0])]


# --------------------------------------------------------------------------------------------------------
# Full N: what each method answered, per problem
# --------------------------------------------------------------------------------------------------------
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
    greedy: Pick
    majority: Pick
    naive_bon: Pick
    weighted_bon: Pick
    pass_at_n: bool
    num_correct: int
    groups: list[dict[str, Any]]  # answer, count, reward_sum, indices, correct: heaviest first

    def solved(self, method: str) -> bool:
        return self.pass_at_n if method == "pass_at_n" else getattr(self, method).correct


def full_n_outcome(p: ProblemData, how: str) -> ProblemOutcome:
    """Apply every rule to all N solutions of ``p`` (rewards aggregated with ``how``)."""
    rewards = p.rewards(how)
    everything = np.arange(len(p.answers))[None, :]
    majority = int(heaviest_group(p.labels, np.ones(len(p.answers)), everything)[0])
    naive = int(best_solution(p.labels, rewards, everything)[0])
    weighted = int(heaviest_group(p.labels, rewards, everything)[0])
    groups = group_table(p, rewards)
    shown = None
    if weighted >= 0:  # show the best-scored solution of the winning group, as results.json does
        members = np.flatnonzero(p.labels == p.labels[weighted])
        shown = int(members[np.argmax(rewards[members])])

    def pick(i: int, show: int | None) -> Pick:
        return Pick(p.answers[i], bool(p.correct[i]), show) if i >= 0 else Pick(None, False, None)

    return ProblemOutcome(
        unique_id=p.unique_id,
        level=p.level,
        subject=p.subject,
        gold=p.gold,
        greedy=Pick(p.greedy_answer, p.greedy_correct, None),
        majority=pick(majority, majority),
        naive_bon=pick(naive, naive),
        weighted_bon=pick(weighted, shown),
        pass_at_n=bool(p.correct.any()),
        num_correct=int(p.correct.sum()),
        groups=groups,
    )


def group_table(p: ProblemData, rewards: np.ndarray) -> list[dict[str, Any]]:
    """Answer groups with size and summed reward, heaviest first: :func:`bestofn.selection.answer_groups`'s
    rows (plus ``correct``), built from the stored labels instead of grouping again."""
    rows = []
    for g in range(int(p.labels.max()) + 1):
        members = [int(i) for i in np.flatnonzero(p.labels == g)]
        rows.append(
            {
                "answer": p.answers[members[0]],
                "count": len(members),
                "reward_sum": float(sum(rewards[i] for i in members)),
                "indices": members,
                "correct": bool(p.correct[members[0]]),
            }
        )
    return sorted(rows, key=lambda r: -r["reward_sum"])


# --------------------------------------------------------------------------------------------------------
# The PRM as a correctness detector
# --------------------------------------------------------------------------------------------------------
def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve: P(score of a correct solution > score of a wrong one), ties counting 1/2.

    Computed as the Mann-Whitney U statistic with average ranks for ties. None when one class is empty.
    """
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    num_pos, num_neg = int(positive.sum()), int((~positive).sum())
    if num_pos == 0 or num_neg == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based mean rank of each distinct score
    ranks = average_rank[inverse]
    u = ranks[positive].sum() - num_pos * (num_pos + 1) / 2
    return float(u / (num_pos * num_neg))


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

    The pooled AUROC also rewards a PRM for telling easy problems from hard ones; Best-of-N only needs the
    ranking *within* a problem, which ``within_auroc`` measures. The pooled AUROC's interval resamples whole
    problems (a problem's N solutions are not independent of each other).
    """
    per_problem = [(p.rewards(how)[p.scored], p.correct[p.scored]) for p in run.problems]
    scores = np.concatenate([s for s, _ in per_problem])
    labels = np.concatenate([c for _, c in per_problem])
    pooled = auroc(scores, labels)
    ci = None
    if pooled is not None and rounds > 0:
        reps = []
        for _ in range(rounds):
            pick = rng.integers(0, len(per_problem), len(per_problem))
            value = auroc(
                np.concatenate([per_problem[i][0] for i in pick]), np.concatenate([per_problem[i][1] for i in pick])
            )
            if value is not None:
                reps.append(value)
        tail = (1 - CI_LEVEL) / 2 * 100
        ci = tuple(float(x) for x in np.percentile(reps, [tail, 100 - tail])) if reps else None
    within = [v for s, c in per_problem if (v := auroc(s, c)) is not None]
    return PRMStats(
        aggregation=how,
        correct_rewards=scores[labels],
        incorrect_rewards=scores[~labels],
        auroc=pooled,
        auroc_ci=ci,
        within_auroc=float(np.mean(within)) if within else None,
        within_problems=len(within),
        unscored=int(sum((~p.scored).sum() for p in run.problems)),
    )


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test: is a split of ``only_a`` vs ``only_b`` discordant problems plausible
    under "both methods equally good" (a fair coin per discordant problem)?"""
    total = only_a + only_b
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, k) for k in range(min(only_a, only_b) + 1)) / 2**total
    return min(1.0, 2 * tail)


# --------------------------------------------------------------------------------------------------------
# Everything the report needs
# --------------------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """Method ``a`` against method ``b`` at full N, on the same problems."""

    a: str
    b: str
    difference: Estimate  # accuracy(a) - accuracy(b), paired bootstrap over problems
    only_a: list[str]  # unique_ids solved by a and not b
    only_b: list[str]
    p_value: float  # exact McNemar


@dataclass
class Analysis:
    """All numbers of a report, computed from one run directory."""

    run: RunData
    curves: Curves
    bootstrap: int
    accuracy: dict[str, list[Estimate]]  # method -> one estimate per n
    by_level: dict[int, dict[str, list[Estimate]]]
    aggregation: dict[str, dict[str, list[Estimate]]]  # aggregation -> naive_bon/weighted_bon -> per n
    outcomes: list[ProblemOutcome]
    comparisons: dict[str, Comparison]  # "weighted_bon-greedy", "weighted_bon-majority", ...
    prm: dict[str, PRMStats]
    mean_tokens: list[float]  # generated tokens per problem for n samples (same order as ns)
    greedy_mean_tokens: float
    tokens_by_level: dict[int, list[float]]
    greedy_tokens_by_level: dict[int, float]
    inconsistencies: list[str] = field(default_factory=list)  # disagreements with results.json

    @property
    def ns(self) -> list[int]:
        return self.curves.ns

    def at_full_n(self, method: str) -> Estimate:
        return self.accuracy[method][-1]


def compare(
    curves: Curves, outcomes: list[ProblemOutcome], a: str, b: str, rng: np.random.Generator, rounds: int
) -> Comparison:
    """Paired comparison of two methods at full N: accuracy difference with CI, flips, McNemar p."""
    diff = curves.methods[a][-1] - curves.methods[b][-1]
    only_a = [o.unique_id for o in outcomes if o.solved(a) and not o.solved(b)]
    only_b = [o.unique_id for o in outcomes if o.solved(b) and not o.solved(a)]
    reps = bootstrap_means(diff[None, :], rng, rounds)[0]
    return Comparison(a, b, estimate(diff.mean(), reps), only_a, only_b, mcnemar_p(len(only_a), len(only_b)))


def analyze(
    run: RunData | str | Path,
    subsets: int = DEFAULT_SUBSETS,
    seed: int = DEFAULT_SEED,
    bootstrap: int = DEFAULT_BOOTSTRAP,
) -> Analysis:
    """Compute every number of the report for one run directory (deterministic for a given seed)."""
    if not isinstance(run, RunData):
        run = load_run(run)
    if bootstrap < 1:
        raise BestOfNError(f"bootstrap must be at least 1, got {bootstrap}; e.g. --bootstrap 2000")
    curves = accuracy_curves(run, subsets, seed)
    rng = np.random.default_rng([seed, 1_000_003])  # bootstrap stream, apart from the subset streams
    accuracy = _estimates_by_method(curves.methods, rng, bootstrap)
    levels = np.array([p.level for p in run.problems])
    by_level = {
        lvl: _estimates_by_method({m: v[:, levels == lvl] for m, v in curves.methods.items()}, rng, bootstrap)
        for lvl in run.levels
    }
    aggregation = {a: _estimates_by_method(v, rng, bootstrap) for a, v in curves.by_aggregation.items()}
    outcomes = [full_n_outcome(p, run.reward_aggregation) for p in run.problems]
    pairs = [
        ("weighted_bon", "greedy"),
        ("weighted_bon", "majority"),
        ("weighted_bon", "naive_bon"),
        ("majority", "greedy"),
    ]
    comparisons = {f"{a}-{b}": compare(curves, outcomes, a, b, rng, bootstrap) for a, b in pairs}
    prm = {a: prm_stats(run, a, rng, bootstrap if a == "last" else 0) for a in AGGREGATIONS}
    analysis = Analysis(
        run=run,
        curves=curves,
        bootstrap=bootstrap,
        accuracy=accuracy,
        by_level=by_level,
        aggregation=aggregation,
        outcomes=outcomes,
        comparisons=comparisons,
        prm=prm,
        mean_tokens=[float(x) for x in curves.tokens.mean(axis=1)],
        greedy_mean_tokens=float(curves.greedy_tokens.mean()),
        tokens_by_level={lvl: [float(x) for x in curves.tokens[:, levels == lvl].mean(axis=1)] for lvl in run.levels},
        greedy_tokens_by_level={lvl: float(curves.greedy_tokens[levels == lvl].mean()) for lvl in run.levels},
    )
    analysis.inconsistencies = check_against_results(analysis)
    return analysis


def _estimates_by_method(
    values: dict[str, np.ndarray], rng: np.random.Generator, rounds: int
) -> dict[str, list[Estimate]]:
    names = list(values)
    stacked = np.concatenate([values[m] for m in names])  # (methods * ns, problems): one shared resample
    flat = estimates(stacked, rng, rounds)
    per = len(flat) // len(names)
    return {m: flat[i * per : (i + 1) * per] for i, m in enumerate(names)}


def check_against_results(analysis: Analysis) -> list[str]:
    """Where results.json (written by the pipeline) disagrees with the full-N numbers recomputed here.

    They should agree exactly; a disagreement means the artifacts were edited or produced by another
    version, and the report says so rather than silently picking one.
    """
    notes = []
    stored = analysis.run.results.get("accuracy", {})
    for m in METHODS:
        if m not in stored or "correct" not in stored[m]:
            continue
        ours = sum(o.solved(m) for o in analysis.outcomes)
        if int(stored[m]["correct"]) != ours:
            notes.append(f"{m}: results.json says {stored[m]['correct']} correct, the samples give {ours}")
    if "n" in analysis.run.results and int(analysis.run.results["n"]) != analysis.run.n:
        notes.append(f"results.json says n={analysis.run.results['n']}, samples.jsonl has {analysis.run.n} per problem")
    return notes


def solved_counts(outcomes: Sequence[ProblemOutcome], method: str) -> int:
    """How many problems ``method`` solved at full N."""
    return sum(o.solved(method) for o in outcomes)
