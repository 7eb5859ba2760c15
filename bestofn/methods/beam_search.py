"""Beam search guided by a PRM (Snell et al. 2024, section 5; search-and-learn's ``beam_search``).

Per problem: sample n first steps; each iteration, keep the n/M best-scoring unfinished beams (M = beam width)
and expand each into M continuations of one step. A beam that ends (end of sequence, or ``max_new_tokens``
reached) joins the problem's finished pool; the problem stops when n are finished or at the last iteration,
whose call is unrestricted (no stop string), so every beam it expands runs to its end. The final pool is the n
best-scoring finished beams. (When fewer than n/M beams are left to keep, fewer candidates are expanded, and
in rare cases the pool ends with fewer than n solutions; it is never padded with copies, which would count
twice in the votes.) With ``filter_duplicates`` (the default, as in search-and-learn's recipes) the n/M kept
beams have distinct texts: a candidate whose partial solution equals a better-ranked one is not kept, and
records which one it duplicates (``Node.duplicate_of``), so identical prefixes are expanded once.

Unlike search-and-learn, beams are ranked with the configured aggregation (last/min/prod/mean) and each
problem keeps its own beams, so all problems share one batched loop.
"""

from __future__ import annotations

from .tree import Expansion, Node, ProblemState, rank


class BeamSearch:
    """The beam-search policy: which beams to keep and expand after each iteration."""

    name = "beam_search"

    def __init__(self, n: int, beam_width: int, filter_duplicates: bool = True):
        self.n = n
        self.keep = n // beam_width  # beams kept per iteration; each expands into beam_width candidates
        self.filter_duplicates = filter_duplicates

    def start(self, state: ProblemState) -> None:
        # n first steps: the empty solution expanded n/M times (copies differ in their seeds).
        state.frontier = [Expansion(None, copy=c) for c in range(self.keep)]

    def update(self, state: ProblemState, groups: list[tuple[Expansion, list[Node]]], final: bool) -> None:
        candidates = [node for _, nodes in groups for node in nodes]
        # 1. Beams that ended join the finished pool.
        state.pool.extend(node.beam_id for node in candidates if node.ended)
        active = [node for node in candidates if not node.ended]
        # 2. Stop when the pool is full, nothing is left to expand, or the iteration budget is spent.
        if final or not active or len(state.pool) >= self.n:
            state.frontier, state.done = [], True
            return
        # 3. Prune: keep the n/M best unfinished beams; each expands into M candidates next iteration.
        ranked = self._distinct(state, rank(active)) if self.filter_duplicates else rank(active)
        state.frontier = [Expansion(node.beam_id) for node in ranked[: self.keep]]

    @staticmethod
    def _distinct(state: ProblemState, ranked: list[Node]) -> list[Node]:
        """``ranked`` without the nodes whose solution text an earlier (better) one has; those are marked."""
        first: dict[str, Node] = {}
        for node in ranked:
            kept = first.setdefault(state.text(node.beam_id), node)
            if kept is not node:
                node.duplicate_of = kept.beam_id
        return list(first.values())
