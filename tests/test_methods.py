"""Beam search and DVTS against a scripted search tree whose steps, ends and PRM rewards are known.

The fake backend labels every step by its place in the tree (``1.0`` is the first child of first step
``1``) and the fake PRM rewards each labelled step by a table, so the kept beams, the pruning and the final
pool below are worked out by hand from the tables, never by the code under test.
"""

from __future__ import annotations

import functools

import pytest

from bestofn.data import Problem
from bestofn.methods.search import SearchSettings, run_search
from bestofn.methods.tree import beam_seed, pool_rows
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import ScriptedTreeBackend, ScriptedTreePRM, TreeRules

SEP = "\n"
PROBLEMS = [Problem(unique_id="p/a.json", problem="What is 1+1?", answer="2", level=1, subject="Algebra"),
            Problem(unique_id="p/b.json", problem="What is 2+3?", answer="5", level=2, subject="Algebra")]

# Problem 0's tree (rewards of each step; * marks a step that ends the solution):
#   it 0:  0:.1   1:.9   2:.5   3:.7                       (n=4 first steps; keep 1 and 3)
#   it 1:  1.0:.2  1.1*:.3   3.0:.8  3.1:.6                (1.1 finishes; keep 3.0, 3.1; prune 1.0)
#   it 2:  3.0.0:.4  3.0.1:.95  3.1.0:.5  3.1.1:.1         (last iteration: unrestricted, all finish)
REWARDS_A = {"0": .1, "1": .9, "2": .5, "3": .7, "1.0": .2, "1.1": .3, "3.0": .8, "3.1": .6,
             "3.0.0": .4, "3.0.1": .95, "3.1.0": .5, "3.1.1": .1}
# Problem 1: every first step but 2 finishes at once, so its pool fills in iteration 1.
REWARDS_B = {"0": .6, "1": .4, "2": .3, "3": .2, "2.0": .9, "2.1": .1}


@functools.lru_cache(maxsize=1)
def _tokenizer():
    return make_tokenizer()  # trained in a second; shared by every test here


def _rules(end_a: dict[str, str] | None = None, end_b: dict[str, str] | None = None) -> TreeRules:
    ends = [end_a if end_a is not None else {"1.1": "stop"}, end_b if end_b is not None else {"0": "stop", "1": "stop", "3": "length", "2.0": "stop"}]
    return TreeRules(reward=lambda k, label: [REWARDS_A, REWARDS_B][k].get(label, 0.0),
                     end=lambda k, label: ends[k].get(label),
                     answer=lambda k, label: "2" if label.endswith("1") else "3")


def _search(method: str, rules: TreeRules, problems=PROBLEMS, *, aggregation="last", num_iterations=3, lookahead=0,
            backend=None):
    texts = [p.problem for p in problems]
    backend = backend or ScriptedTreeBackend(texts, rules, _tokenizer(), SEP)
    prm = ScriptedTreePRM(texts, rules, SEP)
    settings = SearchSettings(method, n=4, beam_width=2, num_iterations=num_iterations, lookahead=lookahead,
                              temperature=0.8, top_p=1.0, max_new_tokens=256, seed=7, aggregation=aggregation,
                              separator=SEP)
    states = run_search(problems, [f"<chat> {t} <assistant>" for t in texts], backend, prm, settings)
    return states, backend, prm


def _labels(state, ids) -> list[str]:
    return [state.nodes[i].text.split(">")[0].removeprefix("<step ") for i in ids]


def _pool(state) -> list[str]:
    return [row["text"].split("<step ")[-1].split(">")[0] for row in pool_rows(state, "beam_search", 4)]


def test_beam_search_keeps_the_best_beams_and_prunes_the_rest() -> None:
    (a, b), backend, prm = _search("beam_search", _rules())
    # Problem 0: kept beams per iteration, from the table.
    kept_after_it0 = sorted({a.nodes[i].parent_id for i in a.nodes if a.nodes[i].iteration == 1})
    assert _labels(a, kept_after_it0) == ["1", "3"]
    kept_after_it1 = sorted({a.nodes[i].parent_id for i in a.nodes if a.nodes[i].iteration == 2})
    assert _labels(a, kept_after_it1) == ["3.0", "3.1"]
    # The pool: five finished (1.1 and the four last-iteration leaves); the four best by last reward stay.
    assert _pool(a) == ["3.0.1", "3.1.0", "3.0.0", "1.1"]
    # Problem 1: 0, 1 finish and 3 is cut off at iteration 0 (3 of 4); 2 expands and 2.0 finishes -> full.
    assert _pool(b) == ["2.0", "0", "1", "3"]
    assert max(b.nodes[i].iteration for i in b.nodes) == 1  # stopped once n were finished
    assert [r["finish_reason"] for r in pool_rows(b, "beam_search", 4)] == ["stop", "stop", "stop", "length"]


def test_every_iteration_is_one_backend_call_and_one_prm_call_for_all_problems() -> None:
    _, backend, prm = _search("beam_search", _rules())
    # it 0: 2 expansions per problem; it 1: 2 (problem 0) + 1 (problem 1, one beam left); it 2: problem 0 only.
    assert [len(c["prompts"]) for c in backend.calls] == [4, 3, 2]
    assert [c["n"] for c in backend.calls] == [2, 2, 2]
    assert [c["stop"] for c in backend.calls] == [[SEP], [SEP], None]  # the last iteration is unrestricted
    assert [len(r) for r in prm.scored] == [8, 6, 4]
    # Seeds: a function of the run seed, the problem, the parent beam, the copy and the iteration: every
    # expansion of a call samples its own stream (no two problems or copies share one).
    assert all(len(set(c["seeds"])) == len(c["seeds"]) for c in backend.calls)
    assert backend.calls[0]["seeds"] == [beam_seed(7, PROBLEMS[0].unique_id, None, 0, 0),
                                         beam_seed(7, PROBLEMS[0].unique_id, None, 1, 0),
                                         beam_seed(7, PROBLEMS[1].unique_id, None, 0, 0),
                                         beam_seed(7, PROBLEMS[1].unique_id, None, 1, 0)]


def test_seeds_do_not_depend_on_which_problems_share_the_batch() -> None:
    _, together, _ = _search("beam_search", _rules())
    _, alone, _ = _search("beam_search", _rules(), problems=PROBLEMS[:1])
    first = lambda calls: [s for c in calls for p, s in zip(c["prompts"], c["seeds"]) if PROBLEMS[0].problem in p]  # noqa: E731
    assert first(together.calls) == first(alone.calls)


def test_beam_search_ranks_with_the_configured_aggregation() -> None:
    # First steps 0:.1 1:.3 2:.2 3:.7 -> keep 3 and 1 under any aggregation (one step each). Their children:
    # 1.0 (.3, .9), 1.1 finishes, 3.0 (.7, .8), 3.1 (.7, .75).
    #   last: 1.0 .9, 3.0 .8, 3.1 .75           -> keep 1.0, 3.0
    #   min:  1.0 .3, 3.0 .7, 3.1 .7 (tie: the earlier node first) -> keep 3.0, 3.1
    rewards = {"0": .1, "1": .3, "2": .2, "3": .7, "1.0": .9, "1.1": .5, "3.0": .8, "3.1": .75}
    rules = TreeRules(reward=lambda k, label: rewards.get(label, 0.0),
                      end=lambda k, label: "stop" if label == "1.1" else None)
    kept = lambda s: sorted(_labels(s, {s.nodes[i].parent_id for i in s.nodes if s.nodes[i].iteration == 2}))  # noqa: E731
    (last,), _, _ = _search("beam_search", rules, PROBLEMS[:1], aggregation="last")
    (worst,), _, _ = _search("beam_search", rules, PROBLEMS[:1], aggregation="min")
    assert kept(last) == ["1.0", "3.0"]
    assert kept(worst) == ["3.0", "3.1"]


def test_completed_beams_join_the_pool_however_they_end() -> None:
    # Problem 0, iteration 0: 0 ends at end of sequence, 2 is cut at the length limit, 3 writes an empty step.
    rules = _rules(end_a={"0": "stop", "2": "length", "3": "empty"}, end_b={})
    (a, _), _, _ = _search("beam_search", rules)
    rows = pool_rows(a, "beam_search", 4)
    by_first = {row["steps"][0]["beam_id"]: row for row in rows}
    assert by_first[0]["finish_reason"] == "stop" and by_first[0]["text"].endswith("$.")
    assert by_first[2]["finish_reason"] == "length"
    assert by_first[3]["finish_reason"] == "stop" and by_first[3]["text"] == SEP  # an empty step ends the beam
    # Only 1 was left to expand: its two children, then their four in the unrestricted last iteration.
    assert sorted(a.nodes[i].iteration for i in a.nodes) == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert all(row["finish_reason"] in ("stop", "length") for row in rows)


def test_dvts_grows_independent_greedy_subtrees_and_pools_only_finished_leaves() -> None:
    # Problem 0, n=4, M=2: subtree 0 samples 0, 1 and follows 1 (.9); subtree 1 samples 2, 3 and follows 3 (.7).
    # it 1: subtree 0 gets 1.0 (.2) and 1.1 (.3, finished): its best finished, so it ends; 1.0 is unfinished.
    #       subtree 1 gets 3.0 (.8), 3.1 (.6): follows 3.0.
    # it 2 (last, unrestricted): 3.0 -> 3.0.0, 3.0.1, both finish. Then 1.0 is run to its end: 1.0.0.
    rewards = dict(REWARDS_A, **{"1.1": .3, "1.0": .2})
    rules = TreeRules(reward=lambda k, label: rewards.get(label, 0.0),
                      end=lambda k, label: "stop" if label == "1.1" else None)
    (a,), backend, _ = _search("dvts", rules, PROBLEMS[:1])
    rows = pool_rows(a, "dvts", 4)
    assert sorted(row["text"].split("<step ")[-1].split(">")[0] for row in rows) == ["1.0.0", "1.1", "3.0.0", "3.0.1"]
    assert {row["subtree"] for row in rows if row["text"].count("<step 1")} == {0}
    assert {row["subtree"] for row in rows if row["text"].count("<step 3")} == {1}
    assert all(row["finish_reason"] in ("stop", "length") for row in rows)  # never an unfinished candidate
    # Calls: 2 subtrees x M=2; 2 x 2; 1 x 2 unrestricted; then the finishing call, one sample, unrestricted.
    assert [(len(c["prompts"]), c["n"], c["stop"]) for c in backend.calls] == [
        (2, 2, [SEP]), (2, 2, [SEP]), (1, 2, None), (1, 1, None)]


def test_dvts_pool_never_holds_an_unfinished_candidate_even_when_all_subtrees_end_early() -> None:
    # Every subtree's best first step finishes at once, its sibling does not: both siblings must be finished.
    rules = TreeRules(reward=lambda k, label: {"0": .9, "1": .1, "2": .2, "3": .8}.get(label, 0.5),
                      end=lambda k, label: "stop" if label in ("0", "3") else None)
    (a,), backend, _ = _search("dvts", rules, PROBLEMS[:1], num_iterations=5)
    rows = pool_rows(a, "dvts", 4)
    assert len(rows) == 4 and all(row["finish_reason"] == "stop" for row in rows)
    assert sorted(r["text"].split("<step ")[-1].split(">")[0] for r in rows) == ["0", "1.0", "2.0", "3"]
    assert len(backend.calls) == 2  # one iteration, then one finishing call: no idle iterations


def test_lookahead_scores_a_candidate_by_where_its_greedy_rollout_leads() -> None:
    # With lookahead 1 each unfinished candidate is scored with its greedy next step (child .0) appended:
    # first steps 0..3 are judged by 0.0..3.0. Give 0.0 the best reward: 0 and then 1 are kept, not 1 and 3.
    rewards = dict(REWARDS_A, **{"0.0": .99, "1.0": .95, "2.0": .1, "3.0": .1})
    rules = TreeRules(reward=lambda k, label: rewards.get(label, 0.0))
    (a,), backend, _ = _search("beam_search", rules, PROBLEMS[:1], lookahead=1, num_iterations=2)
    kept = sorted({a.nodes[i].parent_id for i in a.nodes if a.nodes[i].iteration == 1})
    assert _labels(a, kept) == ["0", "1"]
    assert a.nodes[0].lookahead_text.startswith("<step 0.0>") and a.nodes[0].lookahead_tokens > 0
    assert [(c["temperature"], c["stop"]) for c in backend.calls[:2]] == [(0.8, [SEP]), (0.0, [SEP])]
