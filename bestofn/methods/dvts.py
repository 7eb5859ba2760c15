"""Diverse verifier tree search (DVTS; Beeching et al. 2024, the paper's beam search split into subtrees).

Per problem: n/M independent subtrees (M = beam width). Each iteration every unfinished subtree samples M
candidate next steps from its current beam and greedily continues with the best-scoring one. A subtree
ends when its chosen candidate ends (end of sequence, or ``max_new_tokens`` reached) or at the last
iteration, whose call is unrestricted. Its M candidates of that last expansion are its leaves: the final
pool holds the M leaves of every subtree, n in all.

The fix over search-and-learn (issue #57 there): leaves that had not finished when their subtree ended
are never put in the pool as they are; one last unrestricted call runs them to their end first, so every
solution in the pool is finished and has an answer to parse.

``filter_duplicates`` does not apply: each subtree follows one beam, and subtrees are independent by design.
"""

from __future__ import annotations

from .tree import Expansion, Node, ProblemState, rank


class DVTS:
    """The DVTS policy: one greedy beam per subtree, M candidates per step."""

    name = "dvts"

    def __init__(self, n: int, beam_width: int):
        self.subtrees = n // beam_width

    def start(self, state: ProblemState) -> None:
        state.frontier = [Expansion(None, subtree=s, copy=s) for s in range(self.subtrees)]

    def update(self, state: ProblemState, groups: list[tuple[Expansion, list[Node]]], final: bool) -> None:
        state.frontier = []
        for expansion, candidates in groups:
            best = rank(candidates)[0]  # the subtree's greedy choice, by aggregated PRM score
            if best.ended or final:
                # The subtree is over: finished leaves join the pool, unfinished ones are run to their end.
                for node in candidates:
                    (state.pool if node.ended else state.to_finish).append(node.beam_id)
            else:
                state.frontier.append(Expansion(best.beam_id, subtree=expansion.subtree))
        state.done = not state.frontier
