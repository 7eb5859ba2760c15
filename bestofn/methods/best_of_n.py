"""Best-of-N's candidates and the greedy baseline: solutions sampled independently, scored afterwards.

Both turn a chunk of problems (with their rendered prompts) into solution rows in one generator call. The
PRM does not steer them: the scores stage scores the finished solutions, so a new PRM rescores the same
samples without generating them again. Sample ``i`` of a problem is seeded by the run seed, the problem and
``i`` alone (:func:`bestofn.seeds.sample_seed`): it is the same in any chunk, batch, process or round, so
:meth:`BestOfN.draw` can draw a problem's samples a few at a time (adaptive rounds) and get exactly the
samples of drawing them all at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..data import Problem
from ..seeds import problem_seed
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
        return Solved(self.draw(problems, prompts, models, 0, self.n))

    def draw(self, problems: Sequence[Problem], prompts: Sequence[str], models: Any, first: int, count: int
             ) -> list[dict[str, Any]]:
        """Samples ``first .. first + count - 1`` of every problem, as rows (problem by problem, index order).

        Sample ``i`` of a problem is seeded ``sample_seed(seed, unique_id, i)`` whatever else is drawn with it.
        """
        if count < 1 or first < 0 or (self.name == GREEDY and (first, count) != (0, 1)):
            raise ValueError(f"cannot draw samples {first}..{first + count - 1} of {self.name}")
        outputs = models.generate(list(prompts), n=count, temperature=self.temperature, top_p=self.top_p,
                                  max_new_tokens=self.max_new_tokens, seed=self.seed,
                                  seeds=[problem_seed(self.seed, p.unique_id) for p in problems],
                                  **({"first": first} if first else {}))  # (the server's generators take no first yet)
        return [{"unique_id": p.unique_id, **({} if self.name == GREEDY else {"sample_index": first + j}), **c.to_dict()}
                for p, completions in zip(problems, outputs) for j, c in enumerate(completions)]


def greedy(config: Any) -> BestOfN:
    """The baseline: one greedy (temperature 0) solution per problem; its rows have no ``sample_index``."""
    return BestOfN(1, 0.0, 1.0, config.max_new_tokens, config.seed, name=GREEDY)
