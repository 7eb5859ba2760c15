"""Adaptive Best-of-N: samples drawn in rounds, each problem stopping when its answer is no longer in doubt.

For a chunk of problems, round after round until every problem has stopped or drawn ``n``:

1. **draw** the next ``batch`` samples of every problem still going, in one generator call
   (:meth:`~bestofn.methods.best_of_n.BestOfN.draw`: sample i is seeded by the run seed, the problem and i
   alone, so the samples are exactly the first ones a fixed Best-of-N run draws);
2. **score** them with the PRM, in one call (the rows carry their step rewards, as a search's do);
3. **group** each problem's answers so far exactly as selection groups them, and ask the stopping rule
   (:mod:`bestofn.stopping`) whether it may stop.

The rows are ordinary Best-of-N rows, only fewer for the problems that stopped: ``sample_index`` 0..k-1,
k the samples used (:meth:`~bestofn.methods.Solved.samples_used`). Selection, grading and the report then
run on them as on any run. A chunk is the unit of work: a killed run redoes its unfinished chunk, drawing
the same samples again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..data import Problem
from ..grading import extract_answer
from ..selection import aggregate, group_answers, group_labels
from ..stopping import should_stop
from . import BEST_OF_N, Solved
from .best_of_n import BestOfN


@dataclass(frozen=True)
class AdaptiveBestOfN:
    """Up to ``sampling.n`` samples per problem, ``batch`` per round, until ``rule`` fires at ``confidence``."""

    sampling: BestOfN
    rule: str
    batch: int
    confidence: float
    aggregation: str  # how the rule turns step rewards into one reward per sample (``prm``), as selection does
    grading_timeout: float  # bounds each answer comparison while grouping, as in selection
    name: str = BEST_OF_N
    steered: bool = True  # the PRM scores each round as it is drawn: the rule needs the rewards

    @classmethod
    def from_config(cls, config: Any) -> AdaptiveBestOfN:
        return cls(BestOfN.from_config(config), config.adaptive, config.adaptive_batch, config.adaptive_confidence,
                   config.aggregation, config.grading_timeout)

    def solve(self, problems: Sequence[Problem], prompts: Sequence[str], models: Any) -> Solved:
        drawn: list[list[dict[str, Any]]] = [[] for _ in problems]
        answers: list[list[str | None]] = [[] for _ in problems]
        going, first = list(range(len(problems))), 0
        while going:
            count = min(self.batch, self.sampling.n - first)
            # rows problem by problem, ``count`` each, samples first..first+count-1
            rows = self.sampling.draw([problems[k] for k in going], [prompts[k] for k in going], models, first, count)
            scores = models.score_detailed([problems[k].problem for k in going for _ in range(count)],
                                           [row["text"] for row in rows])
            for position, (row, s) in enumerate(zip(rows, scores, strict=True)):
                k = going[position // count]
                drawn[k].append({**row, "step_rewards": list(s.step_rewards), "prm_truncated": s.truncated,
                                 "prm_tokens": s.num_tokens})
                answers[k].append(extract_answer(row["text"]))
            first += count
            going = [k for k in going if first < self.sampling.n and not self._stops(problems[k], drawn[k], answers[k], count)]
        return Solved([row for rows in drawn for row in rows])

    def _stops(self, problem: Problem, rows: list[dict[str, Any]], answers: list[str | None], last_round: int) -> bool:
        """The rule on the problem's samples so far, grouped as selection will group them."""
        labels = group_labels(group_answers(answers, timeout=self.grading_timeout, kind=problem.answer_kind), len(rows))
        rewards = [aggregate(r["step_rewards"], self.aggregation) for r in rows]
        return should_stop(self.rule, list(labels), rewards, last_round, self.confidence)
