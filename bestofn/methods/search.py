"""The batched search loop shared by beam search and DVTS, and :class:`Search`, the method object of both.

Each iteration, for all unfinished problems of a chunk at once:

1. **generate**: one backend call with every requested expansion (a partial solution appended to the rendered
   chat prompt, M samples each, stopped at the PRM's step delimiter; the last iteration is unrestricted);
2. **look ahead** (``lookahead`` > 0): up to ``lookahead`` more greedy steps per unfinished candidate, one
   batched call per step, used only to score the candidate (Snell et al.'s lookahead search);
3. **score**: one PRM call with every candidate's prefix; the configured aggregation ranks them. With
   ``prm_cache`` (the default) the PRM keeps the cache of each candidate it may extend, so a candidate runs only
   its new step (and lookahead) through the PRM, on its parent's cache; a problem's first candidates share one
   pass over the problem (:mod:`bestofn.prm.cache`);
4. let the policy keep, prune and finish beams; the PRM caches of pruned and finished beams are freed.

Seeds are derived from the run seed, the problem and the beam (``tree.beam_seed``), so batching never changes
what is sampled. A chunk of problems is the unit of work: a killed search redoes its unfinished chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tqdm.auto import tqdm

from ..backends.base import Completion, GenerationBackend
from ..data import Problem
from ..prm.cache import PrefixCache
from . import Solved
from .beam_search import BeamSearch
from .dvts import DVTS
from .tree import Expansion, Node, ProblemState, beam_seed, pool_rows, score_nodes


class StepScorer(Protocol):
    """What the search needs from a PRM (``bestofn.prm``'s scorers and the test fakes have it)."""

    def score_detailed(self, problems: Sequence[str], responses: Sequence[str], **cache: Any) -> list[Any]: ...


@dataclass(frozen=True)
class SearchSettings:
    """The settings of one search, taken from the run's config."""

    method: str
    n: int
    beam_width: int
    num_iterations: int
    lookahead: int
    temperature: float
    top_p: float
    max_new_tokens: int  # per solution (all its steps)
    seed: int
    aggregation: str
    separator: str  # the PRM's step delimiter: the stop string of a step
    filter_duplicates: bool = True  # beam search expands identical partial solutions once
    prm_cache: bool = True  # keep each beam's PRM cache and run only new tokens (off: rescore every prefix)

    @classmethod
    def from_config(cls, config: Any, separator: str) -> SearchSettings:
        return cls(config.method, config.n, config.beam_width, config.num_iterations, config.lookahead,
                   config.temperature, config.top_p, config.max_new_tokens, config.seed, config.aggregation, separator,
                   config.filter_duplicates, config.prm_cache)


def make_policy(settings: SearchSettings) -> BeamSearch | DVTS:
    if settings.method == "beam_search":
        return BeamSearch(settings.n, settings.beam_width, settings.filter_duplicates)
    if settings.method == "dvts":
        return DVTS(settings.n, settings.beam_width)
    raise ValueError(f"not a search method: {settings.method!r}")


# --- the loop ------------------------------------------------------------------------------------------------
def run_search(problems: Sequence[Problem], prompts: Sequence[str], backend: GenerationBackend, prm: StepScorer,
               settings: SearchSettings, progress: bool = False) -> list[ProblemState]:
    """Search every problem (all in lockstep) and return their states; finished pools are in ``state.pool``."""
    policy = make_policy(settings)
    states = [ProblemState(p, prompt) for p, prompt in zip(problems, prompts)]
    for state in states:
        policy.start(state)
    step = _Stepper(backend, prm, settings)
    for it in tqdm(range(settings.num_iterations), desc=settings.method, unit="iteration", disable=not progress):
        active = [s for s in states if not s.done]
        if not active:
            break
        final = it == settings.num_iterations - 1  # the last call runs every beam to its end
        groups = step(it, [(s, e) for s in active for e in s.frontier], settings.beam_width, restricted=not final)
        for state in active:
            policy.update(state, groups[state.problem.unique_id], final)
        step.keep(states)
    # DVTS: leaves that were still unfinished when their subtree ended run to their end in one last call.
    jobs = [(s, Expansion(i, subtree=s.nodes[i].subtree)) for s in states for i in s.to_finish]
    if jobs:
        groups = step(settings.num_iterations, jobs, 1, restricted=False)
        for state in states:
            state.pool.extend(node.beam_id for _, nodes in groups.get(state.problem.unique_id, []) for node in nodes)
            state.to_finish = []
    return states


class _Stepper:
    """One iteration's generation, lookahead and scoring."""

    def __init__(self, backend: GenerationBackend, prm: StepScorer, settings: SearchSettings):
        self.backend, self.prm, self.settings = backend, prm, settings
        # The PRM's cache of every beam a later call may extend, keyed (problem, node); one per search (chunk), so
        # what a chunk computes never depends on what ran before it. A PRM that cannot keep one rescores prefixes.
        self.cache = PrefixCache() if settings.prm_cache and getattr(prm, "caches_prefixes", False) else None

    def keep(self, states: Sequence[ProblemState]) -> None:
        """Free the PRM cache of every beam that no later call extends (pruned, finished, or past)."""
        if self.cache is not None:
            self.cache.keep((s.problem.unique_id, i) for s in states
                            for i in [e.parent_id for e in s.frontier] + s.to_finish)

    def __call__(self, iteration: int, jobs: list[tuple[ProblemState, Expansion]], per_job: int,
                 restricted: bool) -> dict[str, list[tuple[Expansion, list[Node]]]]:
        nodes = self._compute(iteration, jobs, per_job, restricted)
        groups: dict[str, list[tuple[Expansion, list[Node]]]] = {}
        for (state, expansion), cands in zip(jobs, nodes):
            for node in cands:
                state.add(node)
            groups.setdefault(state.problem.unique_id, []).append((expansion, cands))
        return groups

    def _compute(self, iteration: int, jobs: list[tuple[ProblemState, Expansion]], per_job: int,
                 restricted: bool) -> list[list[Node]]:
        cfg = self.settings
        prefixes = [state.text(e.parent_id) for state, e in jobs]
        # Tokens left to each solution: always some, since a step that reaches max_new_tokens ends its solution.
        budgets = [cfg.max_new_tokens - state.tokens(e.parent_id) for state, e in jobs]
        # 1. One backend call: every expansion of every problem of the chunk.
        seeds = [beam_seed(cfg.seed, s.problem.unique_id, e.parent_id, e.copy, iteration) for s, e in jobs]
        outputs = self.backend.generate(
            [s.prompt + p for (s, _), p in zip(jobs, prefixes)], n=per_job, temperature=cfg.temperature,
            top_p=cfg.top_p, max_new_tokens=max(budgets), seed=cfg.seed,
            stop=[cfg.separator] if restricted else None, seeds=seeds)
        nodes: list[list[Node]] = []
        next_id = {id(s): len(s.nodes) for s, _ in jobs}
        for (state, e), completions, budget in zip(jobs, outputs, budgets):
            cands = []
            for c in completions:
                # A whitespace-only step is a step like any other ("delimiter": the solution goes on; see
                # docs/search.md): only the end of sequence, the token budget or the last iteration end one.
                c = self._within_budget(c, budget)
                cands.append(Node(next_id[id(state)], e.parent_id, iteration, c.text, c.num_tokens, c.finish_reason,
                                  e.subtree))
                next_id[id(state)] += 1
            nodes.append(cands)
        flat = [(state, prefix, node) for (state, _), prefix, cands in zip(jobs, prefixes, nodes) for node in cands]
        # 2. Lookahead: greedy steps after each unfinished candidate, to score it by where it leads.
        self._look_ahead(flat)
        # 3. One PRM call: every candidate's prefix (plus its lookahead).
        texts = [_scored_text(prefix + node.text + node.lookahead_text, cfg.separator) for _, prefix, node in flat]
        cache = {}
        if self.cache is not None:
            # Each candidate extends its parent's text (a first step: the problem's root, shared by its siblings);
            # an unfinished one is kept for its children (the lookahead too: they realign on the common tokens).
            cache = {"cache": self.cache, "parents": [(s.problem.unique_id, n.parent_id) for s, _, n in flat],
                     "keys": [None if n.ended else (s.problem.unique_id, n.beam_id) for s, _, n in flat]}
        scores, tokens = score_with_tokens(self.prm, [s.problem.problem for s, _, _ in flat], texts, **cache)
        for (_, _, node), sc, t in zip(flat, scores, tokens):
            node.step_rewards, node.prm_truncated, node.prm_tokens = list(sc.step_rewards), sc.truncated, t
            node.prm_cached_tokens = getattr(sc, "cached_tokens", 0)
        score_nodes([node for _, _, node in flat], cfg.aggregation)
        return nodes

    def _look_ahead(self, flat: list[tuple[ProblemState, str, Node]]) -> None:
        """Up to ``lookahead`` greedy steps after each unfinished candidate, within its solution's token budget."""
        cfg = self.settings
        open_ = [(s, p, n) for s, p, n in flat if not n.ended]
        for _ in range(cfg.lookahead):
            if not open_:
                return
            left = [cfg.max_new_tokens - s.tokens(n.parent_id) - n.num_tokens - n.lookahead_tokens for s, _, n in open_]
            outputs = self.backend.generate(
                [s.prompt + p + n.text + n.lookahead_text for s, p, n in open_], n=1, temperature=0.0, top_p=1.0,
                max_new_tokens=max(left), seed=cfg.seed, stop=[cfg.separator])
            still = []
            for item, (c,), budget in zip(open_, outputs, left):
                c = self._within_budget(c, budget)
                node = item[2]
                node.lookahead_text += c.text
                node.lookahead_tokens += c.num_tokens
                if c.finish_reason == "delimiter":  # the rollout can go on (it has budget left)
                    still.append(item)
            open_ = still

    def _within_budget(self, c: Completion, budget: int) -> Completion:
        """``c`` as one unbroken generation of ``budget`` more tokens would end: a step that would run past it is
        cut there, and one that reaches it exactly ends its solution (``length``), so it is never expanded again.
        (One call serves many budgets: it is asked for the largest.)"""
        if c.num_tokens > budget:
            tok = self.backend.tokenizer
            ids = tok(c.text, add_special_tokens=False)["input_ids"][:budget]
            return Completion(tok.decode(ids, skip_special_tokens=True), budget, "length")
        if c.num_tokens == budget and c.finish_reason == "delimiter":
            return Completion(c.text, c.num_tokens, "length")
        return c


def _scored_text(text: str, separator: str) -> str:
    """The text the PRM scores: without trailing delimiters, which would read as one more, empty, step."""
    while separator and text.endswith(separator):
        text = text[: -len(separator)]
    return text


def score_with_tokens(prm: StepScorer, problems: Sequence[str], responses: Sequence[str],
                      **cache: Any) -> tuple[list[Any], list[int | None]]:
    """The PRM's scores (``PRMScore``: step rewards, truncation flag) of each pair, and the tokens it ran for
    each (None when the PRM cannot say, never 0): the PRM's share of a method's compute. ``cache``: the
    prefix-cache arguments of ``score_detailed`` (the tokens it serves are ``PRMScore.cached_tokens``)."""
    scores = prm.score_detailed(problems, responses, **cache)
    return scores, [getattr(sc, "num_tokens", None) for sc in scores]


# --- the method object -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """Beam search or DVTS as a method: a chunk of problems in, their final pools (scored while searching) and
    every node of their trees out (``tree.jsonl`` rows: pruned beams and lookahead included)."""

    settings: SearchSettings
    steered: bool = True  # the PRM chooses the steps: the pools come out scored

    @property
    def name(self) -> str:
        return self.settings.method

    @classmethod
    def from_config(cls, config: Any, separator: str) -> Search:
        return cls(SearchSettings.from_config(config, separator))

    def solve(self, problems: Sequence[Problem], prompts: Sequence[str], models: Any) -> Solved:
        states = run_search(problems, prompts, models, models, self.settings)
        pool = [row for state in states for row in pool_rows(state, self.settings.method, self.settings.n)]
        tree = [{"unique_id": s.problem.unique_id, **node.to_dict()} for s in states for node in s.nodes.values()]
        return Solved(pool, tree)
