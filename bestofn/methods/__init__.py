"""How solutions are produced for a chunk of problems: Best-of-N (and the greedy baseline), beam search, DVTS.

Contract: a method is one object with ``name``, ``steered`` (whether the PRM chooses the steps while
generating) and ``solve(problems, prompts, models) -> Solved``, which turns a chunk of problems (and their
rendered chat prompts) into solution rows (``unique_id``, ``sample_index``, ``text``, ``num_tokens``,
``finish_reason``; a steered method's rows also carry ``step_rewards`` and ``prm_truncated``) and, for a
search, the tree of every step it generated. ``models`` has ``generate`` (a backend's), ``score_detailed``
(a PRM's) and ``tokenizer``; the run machinery passes a metered view of its loaded models, tests pass
fakes with known rules. No method knows about run directories, chunks on disk or workers.

- ``best_of_n``    N independent samples (and greedy, the baseline), scored afterwards by the PRM
- ``adaptive``     Best-of-N drawn in rounds, scored as it goes, each problem stopping by a rule (``--adaptive``)
- ``tree``         the step records (nodes), beam seeds, the per-problem search state
- ``beam_search``  keep the top n/M beams per problem, expand each into M continuations
- ``dvts``         n/M independent subtrees, each a greedy beam over M candidates per step
- ``search``       the batched loop shared by both (generate, look ahead, score), and :class:`~.search.Search`
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BEST_OF_N = "best_of_n"
RUN_METHODS = (BEST_OF_N, "beam_search", "dvts")  # the choices of ``--method`` (not selection.METHODS: how to pick)
SEARCH_METHODS = RUN_METHODS[1:]
GREEDY = "greedy"  # the baseline (not a --method): one solution per problem at temperature 0
RUN_METHOD_LABELS = {BEST_OF_N: "Best-of-N", "beam_search": "beam search", "dvts": "DVTS"}  # as reports name them


@dataclass
class Solved:
    """What a method made of a chunk of problems: solution rows and (searches) every tree node."""

    rows: list[dict[str, Any]]
    tree: list[dict[str, Any]] = field(default_factory=list)

    def samples_used(self) -> dict[str, int]:
        """Solutions per problem (``unique_id``): N for Best-of-N, fewer where adaptive Best-of-N stopped early
        or a search's pool came out smaller (the server reports it as ``samples_used``)."""
        used: dict[str, int] = {}
        for row in self.rows:
            used[row["unique_id"]] = used.get(row["unique_id"], 0) + 1
        return used


def make_method(config: Any, separator: str) -> Any:
    """The method ``config.method`` names, with its settings; ``separator`` is the run's step separator (the
    PRM's), which a search stops each step at."""
    if config.method == BEST_OF_N and config.adaptive != "off":
        from .adaptive import AdaptiveBestOfN

        return AdaptiveBestOfN.from_config(config)
    if config.method == BEST_OF_N:
        from .best_of_n import BestOfN

        return BestOfN.from_config(config)
    from .search import Search

    return Search.from_config(config, separator)


__all__ = ["BEST_OF_N", "GREEDY", "RUN_METHODS", "RUN_METHOD_LABELS", "SEARCH_METHODS", "Solved", "make_method"]
