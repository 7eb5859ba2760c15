"""Beam search and DVTS against a scripted search tree whose steps, ends and PRM rewards are known.

The fake backend labels every step by its place in the tree (``1.0`` is the first child of first step
``1``) and the fake PRM rewards each labelled step by a table, so the kept beams, the pruning and the final
pool below are worked out by hand from the tables, never by the code under test.
"""

from __future__ import annotations

import functools

import pytest

from bestofn.backends.base import Completion, GenerationBackend
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
    # Problem 0, iteration 0: 0 ends at end of sequence, 2 is cut at the length limit.
    rules = _rules(end_a={"0": "stop", "2": "length"}, end_b={})
    (a, _), _, _ = _search("beam_search", rules)
    assert a.pool[:2] == [0, 2] and [a.nodes[i].finish_reason for i in (0, 2)] == ["stop", "length"]
    # 1 and 3 were left to expand: their four children, then the best two's (3.0, 3.1) four in the last iteration.
    assert sorted(a.nodes[i].iteration for i in a.nodes) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    # The pool: 0 (.1), 2 (.5) and the four leaves 3.0.0 (.4), 3.0.1 (.95), 3.1.0 (.5), 3.1.1 (.1); the best four,
    # ties to the earlier node.
    assert _pool(a) == ["3.0.1", "2", "3.1.0", "3.0.0"]
    assert [r["finish_reason"] for r in pool_rows(a, "beam_search", 4)] == ["stop", "length", "stop", "stop"]


def test_a_whitespace_only_step_does_not_end_a_solution() -> None:
    # Problem 0 as in the table, but 1.0 is a blank line. It goes on (it has no answer yet): scored as the text
    # before it (the PRM never reads the blank as a step of its own), .9, so it is kept beside 3.0 (.8) and
    # expanded in the unrestricted last iteration; its children (labelled 1.0 and 1.1 by the scripted
    # backend, as they continue step 1) finish with a boxed answer after the blank line.
    blanks: list[str] = []

    def end(k: int, label: str) -> str | None:  # 1.0 is blank the first time only (its child has the same label)
        if label == "1.0" and not blanks:
            blanks.append(label)
            return "empty"
        return "stop" if label == "1.1" else None

    rules = TreeRules(reward=lambda k, label: REWARDS_A.get(label, 0.0), end=end,
                      answer=lambda k, label: "2" if label.endswith("1") else "3")
    (a,), _, _ = _search("beam_search", rules, PROBLEMS[:1])
    blank = next(n for n in a.nodes.values() if n.text == SEP)
    assert blank.finish_reason == "delimiter" and blank.step_rewards == [.9] and blank.score == .9
    assert {n.parent_id for n in a.nodes.values() if n.iteration == 2} == {blank.beam_id, 6}  # 6: step 3.0
    assert all("\\boxed" in a.text(i) for i in a.pool)  # no solution ends at the blank line
    after_blank = sorted(a.text(i) for i in a.pool if a.nodes[i].parent_id == blank.beam_id)
    assert after_blank == ["<step 1> we simplify.\n\n<step 1.0> the final answer is $\\boxed{3}$.",
                           "<step 1> we simplify.\n\n<step 1.1> the final answer is $\\boxed{2}$."]


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


# --- the token budget: a generator whose steps have known token counts ----------------------------------------
class CharTokenizer:
    """One token per character, so a text's token count is its length, worked out by hand."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(ch) for ch in text]}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(map(chr, ids))


class StepBackend(GenerationBackend):
    """Writes steps of ``step_tokens[k]`` tokens for problem k (digits of the sample's seed, then the delimiter) and
    never ends a solution by itself; as a real backend, it stops at ``max_new_tokens`` (``length``) and, without a
    stop string, keeps writing steps until then. Greedy calls (lookahead) write ``g`` steps."""

    def __init__(self, step_tokens: tuple[int, ...]):
        self.tokenizer = CharTokenizer()
        self.step_tokens = step_tokens
        self.calls: list[dict] = []

    def generate(self, prompts, *, n, temperature, top_p, max_new_tokens, seed, stop=None, seeds=None):
        self.calls.append({"prompts": len(prompts), "n": n, "max_new_tokens": max_new_tokens, "stop": stop})
        out = []
        for r, prompt in enumerate(prompts):
            size = self.step_tokens[next(k for k, p in enumerate(PROBLEMS) if p.problem in prompt)] - 1
            row = []
            for j in range(n):
                step = ("g" * size if seeds is None else f"{seeds[r] + j:020d}"[-size:]) + SEP
                text = step if stop else step * max_new_tokens  # unrestricted: steps until the budget
                row.append(Completion(text[:max_new_tokens], min(len(text), max_new_tokens),
                                      "delimiter" if len(text) <= max_new_tokens else "length"))
            out.append(row)
        return out


def test_dvts_subtrees_sample_their_own_streams() -> None:
    """Each subtree's first expansion is seeded by its own copy number: subtrees that all drew one stream would
    write the same first steps and not be independent."""
    (a,), backend, _ = _search("dvts", _rules(), PROBLEMS[:1])
    uid = PROBLEMS[0].unique_id
    assert backend.calls[0]["seeds"] == [beam_seed(7, uid, None, 0, 0), beam_seed(7, uid, None, 1, 0)]
    assert all(len(set(c["seeds"])) == len(c["seeds"]) for c in backend.calls)
    # the seeds reach the text: on a backend that writes its seed, the subtrees' first steps differ
    (b,), _ = _budget_search("dvts", 200, n=4, beam_width=2, num_iterations=1)
    first = {node.subtree: [] for node in b.nodes.values()}
    for node in b.nodes.values():
        if node.parent_id is None:
            first[node.subtree].append(node.text)
    assert len(first) == 2 and not set(first[0]) & set(first[1])


def _budget_search(method: str, max_new_tokens: int, *, n=4, beam_width=2, num_iterations=10, lookahead=0,
                   step_tokens=(10,)):
    backend = StepBackend(step_tokens)
    problems = PROBLEMS[: len(step_tokens)]
    texts = [p.problem for p in problems]
    settings = SearchSettings(method, n=n, beam_width=beam_width, num_iterations=num_iterations, lookahead=lookahead,
                              temperature=0.8, top_p=1.0, max_new_tokens=max_new_tokens, seed=7, aggregation="last",
                              separator=SEP)
    states = run_search(problems, texts, backend, ScriptedTreePRM(texts, TreeRules(), SEP), settings, progress=False)
    return states, backend


@pytest.mark.parametrize("method", ["beam_search", "dvts"])
@pytest.mark.parametrize(("n", "beam_width"), [(4, 2), (16, 4)])
def test_a_solution_that_reaches_max_new_tokens_at_a_step_end_is_not_expanded_again(method, n, beam_width) -> None:
    # 40 tokens = four 10-token steps: the fourth ends the solution (length) exactly at the budget.
    (state,), backend = _budget_search(method, 40, n=n, beam_width=beam_width)
    rows = pool_rows(state, method, n)
    assert len(rows) == n
    shape = [(r["num_tokens"], len(r["text"]), r["finish_reason"], r["text"].count(SEP)) for r in rows]
    assert shape == [(40, 40, "length", 4)] * n
    assert max(node.iteration for node in state.nodes.values()) == 3  # no fifth step
    # Each call asks for what is left of the budget: 40, 30, 20, 10.
    assert [c["max_new_tokens"] for c in backend.calls] == [40, 30, 20, 10]


def test_a_step_that_would_pass_max_new_tokens_is_cut_there() -> None:
    # 35 tokens: three steps (30), then the fourth is cut after 5 tokens.
    # Beside it (one call, two budgets), problem 1 writes 8-token steps: four (32), then a fifth cut after 3.
    (a, b), _ = _budget_search("beam_search", 35, step_tokens=(10, 8))
    for state, last in ((a, 5), (b, 3)):
        rows = pool_rows(state, "beam_search", 4)
        assert {(r["num_tokens"], len(r["text"]), r["finish_reason"]) for r in rows} == {(35, 35, "length")}
        assert all(len(r["steps"][-1]["text"]) == last for r in rows)


def test_the_unrestricted_last_iteration_stays_within_the_budget() -> None:
    # Two iterations: one 10-token step, then the last call writes the remaining 30 tokens at most.
    (state,), backend = _budget_search("beam_search", 40, num_iterations=2)
    assert [(c["max_new_tokens"], c["stop"]) for c in backend.calls] == [(40, [SEP]), (30, None)]
    assert {(r["num_tokens"], r["finish_reason"]) for r in pool_rows(state, "beam_search", 4)} == {(40, "length")}


def test_lookahead_rollouts_stay_within_the_remaining_budget() -> None:
    # Budget 25, lookahead 2; problem 0 writes 10-token steps, problem 1 6-token ones (one call serves both).
    # Problem 0: it 0, candidates at 10 tokens, rollouts of 10 then 5 (cut); it 1, at 20: a rollout of 5 (cut);
    #            it 2: the step is cut at 25, no rollout.
    # Problem 1: it 0, at 6: 6 + 6; it 1, at 12: 6 + 6; it 2, at 18: 6, then 1 (cut); it 3, at 24: 1 (cut);
    #            it 4: the step is cut at 25.
    (a, b), backend = _budget_search("beam_search", 25, lookahead=2, step_tokens=(10, 6))
    # Each call asks for the most any of its rows has left: it 0 (25), its rollouts (19, 13); it 1 (19), rollouts
    # (13, then problem 1 alone: 7); it 2 (13), problem 1's rollouts (7, 1); it 3 (7), rollout (1); it 4 (1).
    assert [c["max_new_tokens"] for c in backend.calls] == [25, 19, 13, 19, 13, 7, 13, 7, 1, 7, 1, 1]
    rolled = lambda s: {it: {n.lookahead_tokens for n in s.nodes.values() if n.iteration == it}  # noqa: E731
                        for it in sorted({n.iteration for n in s.nodes.values()})}
    assert rolled(a) == {0: {15}, 1: {5}, 2: {0}}
    assert rolled(b) == {0: {12}, 1: {12}, 2: {7}, 3: {1}, 4: {0}}
    assert {r["num_tokens"] for s in (a, b) for r in pool_rows(s, "beam_search", 4)} == {25}


# --- duplicates ------------------------------------------------------------------------------------------------
class EchoFirstStep(ScriptedTreeBackend):
    """The scripted tree, except that first steps 1 and 2 write exactly what first step 0 writes."""

    def _step(self, k: int, label: str, restricted: bool) -> Completion:
        return super()._step(k, "0" if label in ("1", "2") else label, restricted)


@pytest.mark.parametrize("filter_duplicates", [True, False])
def test_identical_partial_solutions_are_expanded_once_at_n16_m4(filter_duplicates) -> None:
    # n=16, M=4: first steps 0-7 write one text (scored .9 as step 0); 8-15 are distinct, scored label / 100.
    # Four beams are kept: with the filter 0 and the three best distinct others (15, 14, 13); without, 0-3.
    class EchoEight(ScriptedTreeBackend):
        def _step(self, k: int, label: str, restricted: bool) -> Completion:
            return super()._step(k, "0" if label in {str(i) for i in range(8)} else label, restricted)

    rules = TreeRules(reward=lambda k, label: .9 if label == "0" else (int(label) / 100 if "." not in label else .5))
    texts = [PROBLEMS[0].problem]
    settings = SearchSettings("beam_search", n=16, beam_width=4, num_iterations=2, lookahead=0, temperature=0.8,
                              top_p=1.0, max_new_tokens=256, seed=7, aggregation="last", separator=SEP,
                              filter_duplicates=filter_duplicates)
    (a,) = run_search(PROBLEMS[:1], texts, EchoEight(texts, rules, _tokenizer(), SEP), ScriptedTreePRM(texts, rules, SEP),
                      settings, progress=False)
    kept = sorted({n.parent_id for n in a.nodes.values() if n.iteration == 1})
    assert kept == ([0, 13, 14, 15] if filter_duplicates else [0, 1, 2, 3])
    assert [a.nodes[i].duplicate_of for i in range(16)] == ([None] + [0] * 7 + [None] * 8 if filter_duplicates
                                                             else [None] * 16)


@pytest.mark.parametrize("filter_duplicates", [True, False])
def test_identical_partial_solutions_are_expanded_once(filter_duplicates) -> None:
    # First steps 0, 1, 2 are one text, scored .9; 3 is scored .5. n=4, M=2: two beams are kept.
    rules = TreeRules(reward=lambda k, label: {"0": .9, "3": .5}.get(label, 0.1))
    texts = [PROBLEMS[0].problem]
    backend = EchoFirstStep(texts, rules, _tokenizer(), SEP)
    settings = SearchSettings("beam_search", n=4, beam_width=2, num_iterations=2, lookahead=0, temperature=0.8,
                              top_p=1.0, max_new_tokens=256, seed=7, aggregation="last", separator=SEP,
                              filter_duplicates=filter_duplicates)
    (a,) = run_search(PROBLEMS[:1], texts, backend, ScriptedTreePRM(texts, rules, SEP), settings, progress=False)
    assert [a.nodes[i].text for i in (1, 2)] == [a.nodes[0].text] * 2 and a.nodes[3].text != a.nodes[0].text
    kept = sorted({n.parent_id for n in a.nodes.values() if n.iteration == 1})
    if filter_duplicates:
        assert kept == [0, 3]  # distinct texts; 1 and 2 record that they were merged into 0
        assert [a.nodes[i].duplicate_of for i in range(4)] == [None, 0, 0, None]
    else:
        assert kept == [0, 1]  # the same prefix twice
        assert all(n.duplicate_of is None for n in a.nodes.values())


def test_the_duplicate_filter_compares_whole_solutions_not_their_last_steps() -> None:
    # n=4, M=2, two beams kept. Iteration 0 keeps first steps 0 (.9) and 1 (.8). Iteration 1: child 1.0 writes the
    # very step 0.0 writes (both scored .9), after another first step: two different solutions, both kept; the
    # other children (.1) are not. A filter on the last step alone would merge 1.0 into 0.0 and keep a .1 child.
    class SameSecondStep(ScriptedTreeBackend):
        def _step(self, k: int, label: str, restricted: bool) -> Completion:
            return super()._step(k, "0.0" if label == "1.0" else label, restricted)

    rules = TreeRules(reward=lambda k, label: {"0": .9, "1": .8, "0.0": .9}.get(label, 0.1))
    texts = [PROBLEMS[0].problem]
    settings = SearchSettings("beam_search", n=4, beam_width=2, num_iterations=3, lookahead=0, temperature=0.8,
                              top_p=1.0, max_new_tokens=256, seed=7, aggregation="last", separator=SEP)
    (a,) = run_search(PROBLEMS[:1], texts, SameSecondStep(texts, rules, _tokenizer(), SEP),
                      ScriptedTreePRM(texts, rules, SEP), settings, progress=False)
    second = [n for n in a.nodes.values() if n.iteration == 1]
    twins = [n for n in second if n.text.startswith("<step 0.0>")]
    assert len(twins) == 2 and a.text(twins[0].beam_id) != a.text(twins[1].beam_id)
    assert all(n.duplicate_of is None for n in second)
    kept = sorted({n.parent_id for n in a.nodes.values() if n.iteration == 2})
    assert kept == sorted(n.beam_id for n in twins)


# --- n/M != M: the number of kept beams and of subtrees -------------------------------------------------------
def _first_step_rules() -> TreeRules:
    # A first step's reward is its label / 100 (0 .. 15); a later step's is .5; nothing ends before the last call.
    return TreeRules(reward=lambda k, label: int(label) / 100 if "." not in label else .5,
                     answer=lambda k, label: "2")


def _search_n16(method: str, beam_width: int, num_iterations: int = 3):
    texts = [PROBLEMS[0].problem]
    backend = ScriptedTreeBackend(texts, _first_step_rules(), _tokenizer(), SEP)
    settings = SearchSettings(method, n=16, beam_width=beam_width, num_iterations=num_iterations, lookahead=0,
                              temperature=0.8, top_p=1.0, max_new_tokens=256, seed=7, aggregation="last", separator=SEP)
    (state,) = run_search(PROBLEMS[:1], texts, backend, ScriptedTreePRM(texts, _first_step_rules(), SEP), settings,
                          progress=False)
    return state, backend


@pytest.mark.parametrize(("beam_width", "kept"), [(2, list(range(8, 16))), (4, [12, 13, 14, 15]), (8, [14, 15])])
def test_beam_search_keeps_n_over_m_beams_and_expands_each_into_m(beam_width, kept) -> None:
    # n=16: 16 first steps 0..15 (n/M prompts of M samples); the n/M best by label are kept (M=2: 8; M=8: 2).
    state, backend = _search_n16("beam_search", beam_width)
    assert [(len(c["prompts"]), c["n"]) for c in backend.calls] == [(16 // beam_width, beam_width)] * 3
    assert sorted(_labels(state, {n.parent_id for n in state.nodes.values() if n.iteration == 1}), key=int) == \
        [str(k) for k in kept]
    assert len(pool_rows(state, "beam_search", 16)) == 16


@pytest.mark.parametrize("beam_width", [2, 4, 8])
def test_dvts_runs_n_over_m_subtrees_of_m_candidates(beam_width) -> None:
    # n=16: n/M subtrees; subtree s samples first steps s*M .. s*M+M-1 and follows its best (the last, by label).
    state, backend = _search_n16("dvts", beam_width, num_iterations=2)
    subtrees = 16 // beam_width
    assert [(len(c["prompts"]), c["n"]) for c in backend.calls] == [(subtrees, beam_width)] * 2
    followed = sorted(_labels(state, {n.parent_id for n in state.nodes.values() if n.iteration == 1}), key=int)
    assert followed == [str(s * beam_width + beam_width - 1) for s in range(subtrees)]
    rows = pool_rows(state, "dvts", 16)
    assert len(rows) == 16
    assert sorted(r["subtree"] for r in rows) == sorted(list(range(subtrees)) * beam_width)


def test_blank_answers_never_form_an_answer_group() -> None:
    # A pool whose leaves mostly box a blank answer: the blanks are no answer, so every rule answers "2".
    from bestofn.grading import extract_answer
    from bestofn.selection import choose_majority, choose_weighted, group_answers

    rules = TreeRules(reward=lambda k, label: .5, answer=lambda k, label: "2" if label.endswith(".1") else " ")
    texts = [PROBLEMS[0].problem]
    backend = ScriptedTreeBackend(texts, rules, _tokenizer(), SEP)
    settings = SearchSettings("dvts", n=16, beam_width=4, num_iterations=2, lookahead=0, temperature=0.8, top_p=1.0,
                              max_new_tokens=256, seed=7, aggregation="last", separator=SEP)
    (state,) = run_search(PROBLEMS[:1], texts, backend, ScriptedTreePRM(texts, rules, SEP), settings, progress=False)
    rows = pool_rows(state, "dvts", 16)
    rewards = [r["step_rewards"][-1] for r in rows]
    extracted = [extract_answer(r["text"]) for r in rows]
    assert extracted.count("2") == 4 and extracted.count(None) == 12  # one candidate of 4 per subtree answers 2
    # The blanks as extraction gives them (None) and as written (an imported run may carry " " or ""):
    for blank in (None, " ", ""):
        answers = [a if a is not None else blank for a in extracted]
        assert [[answers[i] for i in g] for g in group_answers(answers)] == [["2"] * 4]
        assert choose_majority(answers).answer == "2"
        assert choose_weighted(answers, rewards).answer == "2"
