"""Step 4: pick one answer out of N sampled solutions.

Three rules are compared (answers are the extracted ``\\boxed{}`` contents, None when a solution has none):

- **majority vote** (self-consistency): the answer given most often;
- **naive Best-of-N**: the answer of the single highest-reward solution;
- **weighted Best-of-N** (the DeepMind paper's choice): group solutions whose answers are *equivalent*,
  sum the rewards inside each group, answer with the heaviest group. It combines both signals: an answer
  reached by many well-scored solutions beats a lone lucky one.

Answers are grouped by mathematical equivalence (``\\frac{1}{2}`` and ``0.5`` are one answer), not by string,
otherwise votes for the same answer would be split across spellings. A solution without an answer never
wins; with no answers at all the prediction is None. Ties go to the group whose first solution came first,
so results are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from .grading import is_equivalent, normalize_answer

AGGREGATIONS = ("last", "min", "prod", "mean")


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
    answers: Sequence[str | None], equivalent: Callable[[str, str], bool] = is_equivalent
) -> list[list[int]]:
    """Indices of solutions grouped by equivalent answer, groups in order of first appearance.

    Each answer is compared with one representative per group (the group's first answer); identical
    normalized strings are merged without calling math-verify, which keeps this fast for N=16.
    Solutions without an answer are left out.
    """
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


def _heaviest(answers: Sequence[str | None], weights: Sequence[float]) -> str | None:
    groups = group_answers(answers)
    if not groups:
        return None
    totals = [sum(weights[i] for i in g) for g in groups]
    best = max(range(len(groups)), key=lambda k: (totals[k], -k))  # ties: earliest group
    return answers[groups[best][0]]


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """The most frequent answer (equivalent answers pooled)."""
    return _heaviest(answers, [1.0] * len(answers))


def weighted_best_of_n(answers: Sequence[str | None], rewards: Sequence[float]) -> str | None:
    """The answer whose equivalent solutions have the largest summed reward."""
    _check_lengths(answers, rewards)
    return _heaviest(answers, rewards)


def naive_best_of_n(answers: Sequence[str | None], rewards: Sequence[float]) -> str | None:
    """The answer of the highest-reward solution that has an answer (ties: the earlier solution)."""
    _check_lengths(answers, rewards)
    candidates = [i for i, a in enumerate(answers) if a is not None and a.strip()]
    if not candidates:
        return None
    return answers[max(candidates, key=lambda i: (rewards[i], -i))]


def answer_groups(answers: Sequence[str | None], rewards: Sequence[float]) -> list[dict]:
    """Each answer group with its size and summed reward, heaviest first (for reports and the dataset)."""
    _check_lengths(answers, rewards)
    rows = [
        {"answer": answers[g[0]], "count": len(g), "reward_sum": float(sum(rewards[i] for i in g)), "indices": g}
        for g in group_answers(answers)
    ]
    return sorted(rows, key=lambda r: -r["reward_sum"])


def _check_lengths(answers: Sequence, rewards: Sequence) -> None:
    if len(answers) != len(rewards):
        raise ValueError(f"{len(answers)} answers but {len(rewards)} rewards: need one reward per solution")
