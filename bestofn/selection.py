"""Step 6: pick one answer out of N sampled solutions.

- **majority vote** (self-consistency): the answer given most often;
- **naive Best-of-N**: the answer of the single highest-reward solution;
- **weighted Best-of-N** (the DeepMind paper's choice): the answer whose equivalent solutions have the largest
  summed reward.

Answers are grouped by mathematical equivalence (``\\frac{1}{2}`` and ``0.5`` are one answer); a solution without
an answer never wins; ties go to the group that appears first. Each rule is written once, on answer-group
labels, vectorised over subsets, and reached by name through :func:`choose`. The names and labels of the
methods every artifact uses are defined here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from typing import TYPE_CHECKING, Any

from .grading import EXPRESSION, is_equivalent, normalize_answer

if TYPE_CHECKING:  # numpy is imported inside the rules: the CLI imports this module's names and must start fast
    import numpy as np

AGGREGATIONS = ("last", "min", "prod", "mean")  # step rewards -> one reward per solution, see aggregate()

# The methods of results.json, in the order tables and plots show them, and their human-readable labels.
METHODS = ("greedy", "majority", "naive_bon", "weighted_bon", "pass_at_n")
SELECTION_METHODS = ("majority", "naive_bon", "weighted_bon")  # those that pick one answer out of N
METHOD_LABELS = {
    "greedy": "greedy",
    "majority": "majority vote",
    "naive_bon": "naive Best-of-N",
    "weighted_bon": "weighted Best-of-N",
    "pass_at_n": "pass@N (oracle)",
}


def aggregate(step_rewards: Sequence[float], how: str = "last") -> float:
    """One reward per solution from its step rewards.

    ``last`` is the default because the PRM's score at the final step already judges the whole solution
    (Appendix E of the DeepMind paper found it the best); ``min`` and ``prod`` treat the PRM as a
    per-step verifier (one bad step sinks the solution); ``mean`` is the lenient average. A solution
    with no scored step gets 0.0, so it can never outweigh a scored one.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown reward aggregation {how!r}; choose one of {AGGREGATIONS}")
    if not step_rewards:
        return 0.0
    if how == "last":
        return float(step_rewards[-1])
    if how == "min":
        return float(min(step_rewards))
    if how == "prod":
        return float(math.prod(step_rewards))
    return float(sum(step_rewards) / len(step_rewards))


def group_answers(
    answers: Sequence[str | None], equivalent: Callable[[str, str], bool] | None = None, timeout: float = 5,
    kind: str = EXPRESSION,
) -> list[list[int]]:
    """Indices of solutions grouped by equivalent answer, groups in order of first appearance.

    Each answer is compared with one representative per group (the group's first answer); identical
    normalized strings are merged without calling math-verify, which keeps this fast for N=16.
    Solutions without an answer are left out. ``timeout`` bounds each comparison (``grading_timeout``);
    ``kind`` is the problem's ``answer_kind`` (GSM8K's ``18 dollars`` and ``18`` are one integer answer).
    """
    if equivalent is None:
        equivalent = lambda a, b: is_equivalent(a, b, timeout, kind)  # noqa: E731
    groups: list[list[int]] = []
    reps: list[str] = []
    by_text: dict[str, int] = {}
    for i, ans in enumerate(answers):
        if ans is None or not ans.strip():
            continue
        key = normalize_answer(ans)
        g = by_text.get(key)
        if g is None:
            g = next((k for k, rep in enumerate(reps) if equivalent(ans, rep)), None)
        if g is None:
            g = len(groups)
            groups.append([])
            reps.append(ans)
        by_text[key] = g
        groups[g].append(i)
    return groups


@dataclass(frozen=True)
class Choice:
    """Which solutions a rule chose: the answer shown is the chosen solution's own spelling.

    ``sample_index`` is the solution the rule answers with (naive Best-of-N: the highest-reward one;
    the group rules: the highest-reward member of the winning group, the one a reader should see);
    ``group`` holds every solution whose answer is equivalent to it, in sample order.
    """

    sample_index: int
    group: tuple[int, ...]
    answer: str


# --- the rules, on group labels, for any number of subsets at once ---------------------------------------------
def group_labels(groups: list[list[int]], n: int) -> np.ndarray:
    """``groups`` (:func:`group_answers`) as one label per solution: its group's number, -1 for no answer."""
    import numpy as np

    labels = np.full(n, -1, dtype=int)
    for g, members in enumerate(groups):
        labels[members] = g
    return labels


def heaviest_group(labels: np.ndarray, weights: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Per subset (a row of solution indices, in order), the first solution of the group with the largest
    summed weight; -1 when no solution of the subset has an answer.

    Majority vote is this with unit weights, weighted Best-of-N with the rewards. Ties in summed weight go to
    the group that appears first in the subset.
    """
    import numpy as np

    count, n = subsets.shape
    num_groups = int(labels.max()) + 1
    if num_groups == 0:
        return np.full(count, -1)
    lab, w = labels[subsets], np.asarray(weights, dtype=float)[subsets]
    member = lab[:, :, None] == np.arange(num_groups)  # (count, n, groups)
    totals = np.zeros((count, num_groups))
    for j in range(n):  # add members in index order: the sums are the same floats for one subset or many
        totals += np.where(member[:, j, :], w[:, j, None], 0.0)
    present = member.any(axis=1)
    first = np.where(member, np.arange(n)[None, :, None], n).min(axis=1)  # position of each group's first member
    totals = np.where(present, totals, -np.inf)
    tied = present & (totals == totals.max(axis=1, keepdims=True))
    pos = np.where(tied, first, n).min(axis=1)
    return np.where(present.any(axis=1), subsets[np.arange(count), np.minimum(pos, n - 1)], -1)


def best_solution(labels: np.ndarray, rewards: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Per subset, the highest-reward solution that has an answer (ties: the earlier one); -1 if none."""
    import numpy as np

    masked = np.where(labels[subsets] >= 0, np.asarray(rewards, dtype=float)[subsets], -np.inf)
    pos = masked.argmax(axis=1)  # argmax returns the first of equal maxima: the earlier solution
    has_answer = np.isfinite(masked).any(axis=1)
    return np.where(has_answer, subsets[np.arange(len(subsets)), pos], -1)


def choose(rule: str, labels: np.ndarray, rewards: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Per subset, a solution of the answer group ``rule`` (one of :data:`SELECTION_METHODS`) picks; -1: none.

    The one dispatch from a rule's name to its implementation: results.json, the report's curves and
    ``compare`` all pick through it. The solution *shown* for a group is its best-scored member (:func:`shown`).
    """
    import numpy as np

    if rule == "majority":
        return heaviest_group(labels, np.ones(len(labels)), subsets)
    if rule == "weighted_bon":
        return heaviest_group(labels, rewards, subsets)
    if rule == "naive_bon":
        return best_solution(labels, rewards, subsets)
    raise ValueError(f"unknown selection rule {rule!r}; choose one of {SELECTION_METHODS}")


def shown(labels: np.ndarray, rewards: np.ndarray, picked: int) -> int:
    """The highest-reward member of ``picked``'s answer group (ties: the earlier one): the solution a verdict shows."""
    import numpy as np

    members = np.flatnonzero(labels == labels[picked])
    return int(members[np.argmax(np.asarray(rewards, dtype=float)[members])])  # argmax: the first of equal maxima


# --- the rules on one problem's N solutions --------------------------------------------------------------------
def _choose(rule: str, answers: Sequence[str | None], rewards: Sequence[float], groups: list[list[int]] | None,
            timeout: float) -> Choice | None:
    import numpy as np

    _check_lengths(answers, rewards)
    groups = group_answers(answers, timeout=timeout) if groups is None else groups
    if not groups:
        return None
    labels, rewards = group_labels(groups, len(answers)), np.asarray(rewards, dtype=float)
    picked = int(choose(rule, labels, rewards, np.arange(len(answers))[None, :])[0])
    if picked < 0:
        return None
    index = shown(labels, rewards, picked)
    return Choice(index, tuple(groups[labels[picked]]), str(answers[index]))


def choose_majority(answers: Sequence[str | None], rewards: Sequence[float] | None = None, *,
                    groups: list[list[int]] | None = None, timeout: float = 5) -> Choice | None:
    """Majority vote: the largest group of equivalent answers (ties: the group that appears first).

    ``rewards`` only decide which member of the winning group is shown (without them, its first).
    """
    return _choose("majority", answers, [0.0] * len(answers) if rewards is None else rewards, groups, timeout)


def choose_weighted(answers: Sequence[str | None], rewards: Sequence[float], *,
                    groups: list[list[int]] | None = None, timeout: float = 5) -> Choice | None:
    """Weighted Best-of-N: the group of equivalent answers with the largest summed reward."""
    return _choose("weighted_bon", answers, rewards, groups, timeout)


def choose_naive(answers: Sequence[str | None], rewards: Sequence[float], *,
                 groups: list[list[int]] | None = None, timeout: float = 5) -> Choice | None:
    """Naive Best-of-N: the highest-reward solution that has an answer (ties: the earlier solution)."""
    return _choose("naive_bon", answers, rewards, groups, timeout)


# The answer alone, for callers that need no indices.
def majority_vote(answers: Sequence[str | None], timeout: float = 5) -> str | None:
    """The most frequent answer (equivalent answers pooled), as its group's first solution spells it."""
    choice = choose_majority(answers, timeout=timeout)
    return choice.answer if choice else None


def weighted_best_of_n(answers: Sequence[str | None], rewards: Sequence[float], timeout: float = 5) -> str | None:
    """The answer whose equivalent solutions have the largest summed reward (its best solution's spelling)."""
    choice = choose_weighted(answers, rewards, timeout=timeout)
    return choice.answer if choice else None


def naive_best_of_n(answers: Sequence[str | None], rewards: Sequence[float]) -> str | None:
    """The answer of the highest-reward solution that has an answer (ties: the earlier solution)."""
    import numpy as np

    _check_lengths(answers, rewards)  # no grouping needed: the answer is the best solution's own
    has_answer = np.array([0 if a is not None and a.strip() else -1 for a in answers], dtype=int)
    if not (has_answer >= 0).any():
        return None
    chosen = int(best_solution(has_answer, rewards, np.arange(len(answers))[None, :])[0])
    return answers[chosen] if chosen >= 0 else None


def answer_groups(answers: Sequence[str | None], rewards: Sequence[float], *,
                  groups: list[list[int]] | None = None, timeout: float = 5) -> list[dict]:
    """Each answer group with its size and summed reward, heaviest first (for reports and the dataset)."""
    _check_lengths(answers, rewards)
    groups = group_answers(answers, timeout=timeout) if groups is None else groups
    rows = [
        {"answer": answers[g[0]], "count": len(g), "reward_sum": float(sum(rewards[i] for i in g)), "indices": g}
        for g in groups
    ]
    return sorted(rows, key=lambda r: -r["reward_sum"])


# --- step 6 on a run: every rule on every problem ----------------------------------------------------------------
def verdicts(samples: Sequence[dict], how: str, timeout: float = 5, kind: str = EXPRESSION) -> dict[str, Any]:
    """Every rule's verdict on one problem's solutions (rows in ``sample_index`` order, graded), the oracle, and
    the answer groups behind them: the per-problem entry of ``results.json``."""
    answers = [s["answer"] for s in samples]
    rewards = [aggregate(s["step_rewards"], how) for s in samples]
    groups = group_answers(answers, timeout=timeout, kind=kind)  # math-verify runs here, once per problem

    def verdict(choice: Choice | None) -> dict[str, Any]:
        # A rule's verdict is the solution it chose: its own answer and its own grade (step 4 judged every
        # sample against the gold answer), so answer, sample_index and correct always agree.
        if choice is None:
            return {"answer": None, "correct": False, "sample_index": None}
        chosen = samples[choice.sample_index]
        return {"answer": chosen["answer"], "correct": bool(chosen["correct"]), "sample_index": choice.sample_index}

    return {**{rule: verdict(_choose(rule, answers, rewards, groups, timeout)) for rule in SELECTION_METHODS},
            "pass_at_n": {"correct": any(s["correct"] for s in samples)},
            "groups": answer_groups(answers, rewards, groups=groups)}


def _check_lengths(answers: Sequence, rewards: Sequence) -> None:
    if len(answers) != len(rewards):
        raise ValueError(f"{len(answers)} answers but {len(rewards)} rewards: need one reward per solution")
