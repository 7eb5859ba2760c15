"""Best-of-N's candidates and the greedy baseline: solutions sampled independently, scored afterwards.

Both turn a chunk of problems (with their rendered prompts) into solution rows in one generator call. The
PRM does not steer them: the scores stage scores the finished solutions, so a new PRM rescores the same
samples without generating them again. The call's seed is derived from the run seed and the chunk's first
problem (:mod:`bestofn.seeds`): a chunk samples the same solutions in any process, resumed or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..data import Problem
from ..seeds import derived_seed
from . import BEST_OF_N, GREEDY, Solved


@dataclass(frozen=True)
class BestOfN:
    """N sampled solutions per problem (``sample_index`` 0..N-1)."""

    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    name: str = BEST_OF_N
    steered: bool = False  # the PRM judges finished solutions; it does not choose the steps

    @classmethod
    def from_config(cls, config: Any) -> BestOfN:
        return cls(config.n, config.temperature, config.top_p, config.max_new_tokens, config.seed)

    def solve(self, problems: Sequence[Problem], prompts: Sequence[str], models: Any) -> Solved:
        outputs = models.generate(list(prompts), n=self.n, temperature=self.temperature, top_p=self.top_p,
                                  max_new_tokens=self.max_new_tokens, seed=derived_seed(self.seed, problems[0].unique_id))
        rows = [{"unique_id": p.unique_id, **({} if self.name == GREEDY else {"sample_index": i}),
                 **c.to_dict()} for p, completions in zip(problems, outputs) for i, c in enumerate(completions)]
        return Solved(rows)


def greedy(config: Any) -> BestOfN:
    """The baseline: one greedy (temperature 0) solution per problem; its rows have no ``sample_index``."""
    return BestOfN(1, 0.0, 1.0, config.max_new_tokens, config.seed, name=GREEDY)
