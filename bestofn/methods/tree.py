"""The records of a search: one :class:`Node` per generated step, and the per-problem state built from them.

A node is one candidate step, born at an iteration from a parent node (None: the empty solution). A
solution is the path from the root to a node; its text is the concatenation of the path's step texts. Nodes
are numbered per problem in the order they are generated, which the loop keeps deterministic, so the same
chunk of problems always grows the same tree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..data import Problem
from ..seeds import derived_seed
from ..selection import aggregate

ENDED = ("stop", "length")  # finish reasons of a finished solution; "delimiter" means more steps follow


@dataclass
class Node:
    """One generated step and what the PRM said about the solution up to it."""

    beam_id: int  # this node's number within its problem
    parent_id: int | None  # None: a first step
    iteration: int  # when it was generated (the finishing call counts as one more iteration)
    text: str  # the step, its delimiter kept at the end
    num_tokens: int
    finish_reason: str  # "delimiter" (the solution goes on), "stop", "length"
    subtree: int = 0  # DVTS: which independent subtree; beam search: 0
    lookahead_text: str = ""  # greedy steps generated after this one only to score it (not part of the solution)
    lookahead_tokens: int = 0
    step_rewards: list[float] = field(default_factory=list)  # PRM rewards of the scored text's steps
    prm_tokens: int | None = 0  # tokens the PRM ran to score this node (None: it cannot say)
    prm_cached_tokens: int = 0  # tokens of its scored text served from the PRM's prefix cache (not run)
    prm_truncated: bool = False  # the scored text was longer than the PRM's context
    score: float = 0.0  # step_rewards aggregated with the configured aggregation: what ranks beams
    # filter_duplicates: the better-ranked node with the same solution text, expanded in this one's stead
    duplicate_of: int | None = None

    @property
    def ended(self) -> bool:
        return self.finish_reason in ENDED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def beam_seed(seed: int, unique_id: str, parent_id: int | None, copy: int, iteration: int) -> int:
    """The sampling seed of one expansion: a function of content only, never of batching or resume."""
    return derived_seed(seed, f"{unique_id}:{parent_id}:{copy}:{iteration}")


@dataclass(frozen=True)
class Expansion:
    """A request for ``M`` candidate steps continuing ``parent_id`` (``copy`` tells apart equal requests)."""

    parent_id: int | None
    subtree: int = 0
    copy: int = 0


@dataclass
class ProblemState:
    """The search of one problem: its nodes, what the next iteration expands, and the finished pool."""

    problem: Problem
    prompt: str  # the rendered chat prompt; a partial solution is appended to it
    nodes: dict[int, Node] = field(default_factory=dict)
    frontier: list[Expansion] = field(default_factory=list)
    pool: list[int] = field(default_factory=list)  # finished nodes (every one ends a solution)
    to_finish: list[int] = field(default_factory=list)  # DVTS: unfinished leaves still to run to the end
    done: bool = False

    def path(self, node_id: int | None) -> list[Node]:
        """The nodes from the first step to ``node_id``."""
        out = []
        while node_id is not None:
            node = self.nodes[node_id]
            out.append(node)
            node_id = node.parent_id
        return out[::-1]

    def text(self, node_id: int | None) -> str:
        """The solution text up to and including ``node_id``."""
        return "".join(n.text for n in self.path(node_id))

    def tokens(self, node_id: int | None) -> int:
        """The solution's tokens up to and including ``node_id`` (what counts against ``max_new_tokens``)."""
        return sum(n.num_tokens for n in self.path(node_id))

    def add(self, node: Node) -> None:
        if node.beam_id != len(self.nodes):
            raise ValueError(f"node {node.beam_id} of {self.problem.unique_id} out of order (expected {len(self.nodes)})")
        self.nodes[node.beam_id] = node


def rank(nodes: list[Node]) -> list[Node]:
    """Best first by aggregated PRM score; ties go to the earlier node, so the order is deterministic."""
    return sorted(nodes, key=lambda n: (-n.score, n.beam_id))


def score_nodes(nodes: list[Node], how: str) -> None:
    for node in nodes:
        node.score = aggregate(node.step_rewards, how)


def pool_rows(state: ProblemState, method: str, n: int) -> list[dict[str, Any]]:
    """The final pool as ``samples.jsonl`` rows (without grades): best-scored first, at most ``n``.

    Each row carries its history (the path's steps with when and from what they were born), so a solution's
    place in the tree can be rebuilt; ``step_rewards`` are the PRM's rewards of the whole solution text.
    """
    finished = rank([state.nodes[i] for i in state.pool])[:n]
    rows = []
    for k, leaf in enumerate(finished):
        path = state.path(leaf.beam_id)
        rows.append({
            "unique_id": state.problem.unique_id, "sample_index": k, "method": method,
            "text": "".join(p.text for p in path), "num_tokens": sum(p.num_tokens for p in path),
            "finish_reason": leaf.finish_reason,
            "beam_id": leaf.beam_id, "parent_id": leaf.parent_id, "iteration": leaf.iteration, "subtree": leaf.subtree,
            "step_rewards": leaf.step_rewards, "prm_truncated": leaf.prm_truncated,
            "steps": [{"text": p.text, "beam_id": p.beam_id, "parent_id": p.parent_id, "iteration": p.iteration,
                       "score": p.score, "prm_rewards": p.step_rewards} for p in path],
        })
    return rows
