"""Incremental PRM scoring (bestofn.prm.cache): every format, against a full rescoring of the same text.

A full rescoring (``score_detailed`` without a cache) is itself checked against each format's reference recipe
in tests/test_prm_formats.py and tests/test_prm.py; here the cached path must give the same rewards within
1e-5 in float32 at every depth, whatever the tokenizer does at a step boundary, while running only the tokens
no cache entry covers.
"""

from __future__ import annotations

import random

import pytest

from bestofn.data import Problem
from bestofn.methods.search import SearchSettings, run_search
from bestofn.prm import load_prm
from bestofn.prm.cache import PrefixCache
from bestofn.testing import make_tokenizer
from bestofn.testing.models import make_tiny_math_shepherd_prm, make_tiny_qwen_math_prm, make_tiny_rlhflow_prm
from bestofn.testing.scripted import ScriptedTreeBackend, TreeRules

BUILDERS = {"qwen2.5-math-prm": make_tiny_qwen_math_prm, "rlhflow": make_tiny_rlhflow_prm,
            "math-shepherd": make_tiny_math_shepherd_prm}
FORMATS = ("skywork", *BUILDERS)
PROBLEMS = ["What is $1 + 1$?", "Find all real $x$ such that $x^2 - 5x + 6 = 0$."]
STEPS = ["We add the two numbers.", "Factor: $(x-2)(x-3) = 0$, so $x = 2$.", "Then $1+1 = 2$ ки, done.",
         "Check: $2 \\cdot 3 = 6$.", "Therefore, the final answer is $\\boxed{2}$."]
TOL = 1e-5


@pytest.fixture(scope="module")
def scorers(tiny_prm_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache-formats")
    out = {"skywork": load_prm(str(tiny_prm_dir))}
    for fmt, build in BUILDERS.items():
        out[fmt] = load_prm(str(build(root / fmt)), format=fmt)
    return out


def full(scorer, problems, texts):
    return scorer.score_detailed(problems, texts)


def assert_same(got, want) -> None:
    for g, w in zip(got, want, strict=True):
        assert len(g.step_rewards) == len(w.step_rewards) > 0
        assert g.step_rewards == pytest.approx(w.step_rewards, abs=TOL, rel=0)
        assert g.truncated == w.truncated


def ids_to_score(scorer, problem: str, text: str) -> list[int]:
    """The tokens a text's rewards depend on: its encoding up to its last reward position."""
    (pair,) = scorer.encode([problem], [text])
    return pair.input_ids[: pair.step_positions[-1] + 1]


def common(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


# --- every format, several depths ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_beams_grown_step_by_step_score_as_a_full_rescoring(fmt, scorers):
    """Two problems, two beams each, five steps deep: each call names its parent; rewards match a full rescoring
    at every depth and only the new step (plus a template's few tokens around it) runs through the PRM."""
    scorer = scorers[fmt]
    sep = scorer.step_separator
    cache = PrefixCache()
    prefixes = {(p, b): "" for p in range(2) for b in range(2)}
    for depth, step in enumerate(STEPS):
        problems, texts, parents, keys = [], [], [], []
        for (p, b), prefix in prefixes.items():
            texts.append(prefix + (sep if prefix else "") + step + (" (beam 2)" if b else ""))
            problems.append(PROBLEMS[p])
            parents.append((p, b, depth - 1) if depth else (p, "root"))
            keys.append((p, b, depth))
        got = scorer.score_detailed(problems, texts, cache=cache, parents=parents, keys=keys)
        assert_same(got, full(scorer, problems, texts))
        for g, problem, text, parent in zip(got, problems, texts, parents):
            whole = ids_to_score(scorer, problem, text)
            assert g.num_tokens + g.cached_tokens == len(whole), "every token is run or served, once"
            if depth:  # the parent's entry serves exactly the tokens both encodings share
                before = ids_to_score(scorer, problem, prefixes[parent[0], parent[1]])
                assert g.cached_tokens == common(before, whole) > 0
                assert g.num_tokens < len(whole) - len(before) + 16, "only the new step and a template's turn run"
        if not depth:  # a problem's first steps share one pass over their common prefix
            first, second = (ids_to_score(scorer, problems[0], t) for t in texts[:2])
            assert sum(g.num_tokens for g in got[:2]) == len(first) + len(second) - common(first, second)
        prefixes = {key[:2]: text for key, text in zip(keys, texts)}
        cache.keep(keys)
        assert len(cache) == 4


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_prefix_that_tokenizes_differently_inside_the_longer_text_is_realigned(fmt, scorers):
    """Texts that extend their parent mid-word, mid-number, after empty steps and separators of every kind: the
    cache serves only the tokens both encodings share (never the parent's whole encoding where they differ)."""
    scorer = scorers[fmt]
    sep = scorer.step_separator
    rng = random.Random(0)
    pieces = ["We add", " the numbers", "bers", "1", "23", sep, sep + sep, "\n", " ", "ки", " ки", "$x^2$", "Th", "en."]
    parents, children = [], []
    for _ in range(24):
        parent = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 5)))
        parents.append(parent)
        children.append(parent + "".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))))
    problems = [PROBLEMS[i % 2] for i in range(len(parents))]
    cache = PrefixCache()
    keys = list(range(len(parents)))
    scorer.score_detailed(problems, parents, cache=cache, keys=keys)
    got = scorer.score_detailed(problems, children, cache=cache, parents=keys)
    assert_same(got, full(scorer, problems, children))
    realigned = 0
    for g, problem, parent, child in zip(got, problems, parents, children):
        before, after = ids_to_score(scorer, problem, parent), ids_to_score(scorer, problem, child)
        shared = common(before, after)
        assert g.cached_tokens <= shared and g.num_tokens + g.cached_tokens == len(after)
        realigned += shared < len(before)
    assert realigned > 0, "some parents must tokenize differently inside their child: the case under test"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_lookahead_is_cached_with_its_candidate_and_children_realign_on_it(fmt, scorers):
    """A candidate is scored with its lookahead and kept so; its children extend the candidate, not the
    lookahead (one diverges at once, one repeats the lookahead's step): both score as a full rescoring."""
    scorer = scorers[fmt]
    sep = scorer.step_separator
    cache = PrefixCache()
    candidate = STEPS[0] + sep
    lookahead = STEPS[1] + sep + STEPS[2]
    scorer.score_detailed([PROBLEMS[0]], [candidate + lookahead], cache=cache, keys=["c"])
    children = [candidate + STEPS[3], candidate + STEPS[1] + sep + STEPS[4]]
    got = scorer.score_detailed([PROBLEMS[0]] * 2, children, cache=cache, parents=["c", "c"])
    assert_same(got, full(scorer, [PROBLEMS[0]] * 2, children))
    assert got[1].cached_tokens > got[0].cached_tokens, "the child that repeats the lookahead's step reuses it"


def test_an_entry_without_a_reward_the_child_needs_serves_only_the_tokens_before_it(scorers):
    """An entry lacking the reward at one of the child's reward positions (say, one built for another reading
    of the same tokens) is cut before that position, which runs again, rather than failing or guessing."""
    scorer = scorers["skywork"]
    cache = PrefixCache()
    parent, child = "\n".join(STEPS[:3]), "\n".join(STEPS[:4])
    scorer.score_detailed([PROBLEMS[0]], [parent], cache=cache, keys=["a"])
    entry = cache.entries["a"]
    second = sorted(entry.rewards)[1]
    del entry.rewards[second]
    (got,) = scorer.score_detailed([PROBLEMS[0]], [child], cache=cache, parents=["a"])
    assert_same([got], full(scorer, [PROBLEMS[0]], [child]))
    assert got.cached_tokens == second


@pytest.mark.parametrize("fmt", FORMATS)
def test_identical_and_truncated_texts(fmt, scorers):
    """A text equal to its parent runs nothing; a text past the PRM's context keeps its first steps and flag."""
    scorer = scorers[fmt]
    sep = scorer.step_separator
    cache = PrefixCache()
    text = sep.join(STEPS[:2])
    scorer.score_detailed([PROBLEMS[0]], [text], cache=cache, keys=["a"])
    (same,) = scorer.score_detailed([PROBLEMS[0]], [text], cache=cache, parents=["a"], keys=["b"])
    assert same.num_tokens == 0 and same.step_rewards == pytest.approx(full(scorer, [PROBLEMS[0]], [text])[0].step_rewards,
                                                                        abs=TOL, rel=0)
    # Identical siblings (a peaked generator writes them often) run once and get the very same rewards, so a tie
    # between them is broken by the node order exactly as in a full rescoring.
    twins = scorer.score_detailed([PROBLEMS[0]] * 3, [text + sep + STEPS[3], text + sep + STEPS[2], text + sep + STEPS[3]],
                                  cache=cache, parents=["a"] * 3, keys=["t0", "t1", "t2"])
    assert twins[0].step_rewards == twins[2].step_rewards and twins[2].num_tokens == 0 < twins[0].num_tokens
    assert cache.entries["t0"] is cache.entries["t2"]
    long = sep.join(STEPS * 30)
    max_length = scorer.max_length
    try:
        scorer.max_length = 300
        (cut,) = scorer.score_detailed([PROBLEMS[0]], [long], cache=cache, parents=["b"])
        (want,) = full(scorer, [PROBLEMS[0]], [long])
    finally:
        scorer.max_length = max_length
    assert cut.truncated and want.truncated and 0 < len(cut.step_rewards) < 150
    assert cut.step_rewards == pytest.approx(want.step_rewards, abs=TOL, rel=0)


def test_a_sliding_window_model_scores_texts_longer_than_its_window_in_full(scorers):
    """The cached path's mask has no window: a Mistral text longer than its window is scored without the cache."""
    scorer = scorers["math-shepherd"]
    long = "\n\n".join(STEPS * 4)
    window = scorer.backbone.config.sliding_window
    try:
        scorer.backbone.config.sliding_window = 24
        cache = PrefixCache()
        scorer.score_detailed([PROBLEMS[0]], ["\n\n".join(STEPS[:2])], cache=cache, keys=["a"])
        got = scorer.score_detailed([PROBLEMS[0]], [long], cache=cache, parents=["a"])
        assert_same(got, full(scorer, [PROBLEMS[0]], [long]))
    finally:
        scorer.backbone.config.sliding_window = window
    unwindowed = full(scorer, [PROBLEMS[0]], [long])
    assert max(abs(a - b) for a, b in zip(got[0].step_rewards, unwindowed[0].step_rewards)) > 1e-4, \
        "the window must matter here, or the test proves nothing"


# --- memory ------------------------------------------------------------------------------------------------------
def test_batches_and_the_cache_stay_within_the_token_budget(scorers):
    """Each forward pass holds at most batch_tokens (rows x (cached + new) tokens, padded); the cache holds at most
    its capacity (default: batch_tokens) and a text that does not fit is scored all the same, just not kept."""
    scorer = scorers["skywork"]
    seen: list[tuple[int, int]] = []

    def record(module, args, kwargs):
        past = kwargs.get("past_key_values")
        seen.append((kwargs["input_ids"].shape[0], kwargs["input_ids"].shape[1] + (past.get_seq_length() if past else 0)))

    handle = scorer.backbone.register_forward_pre_hook(record, with_kwargs=True)
    old = scorer._batch_tokens
    try:
        scorer._batch_tokens = 160
        cache = PrefixCache()
        texts = [STEPS[i % 5] + "\n" + STEPS[(i + 1) % 5] for i in range(12)]
        problems = [PROBLEMS[i % 2] for i in range(12)]
        scorer.score_detailed(problems, texts, cache=cache, keys=list(range(12)))
        assert cache.capacity == 160 and 0 < cache.tokens <= 160 and len(cache) < 12, "some entries did not fit"
        children = [t + "\n" + STEPS[2] for t in texts]
        got = scorer.score_detailed(problems, children, cache=cache, parents=list(range(12)))
    finally:
        scorer._batch_tokens = old
        handle.remove()
    assert_same(got, full(scorer, problems, children))
    assert len(seen) > 2 and all(rows * width <= 160 for rows, width in seen if rows > 1)
    assert sum(g.cached_tokens > 0 for g in got) == len(cache), "the kept entries served their children"


def test_keep_frees_the_tokens_no_kept_entry_builds_on(scorers):
    scorer = scorers["skywork"]
    cache = PrefixCache(capacity=10_000)
    scorer.score_detailed([PROBLEMS[0]] * 2, [STEPS[0], STEPS[0] + " x"], cache=cache, keys=["a", "b"])
    children = [STEPS[0] + "\n" + s for s in STEPS[1:3]]
    scorer.score_detailed([PROBLEMS[0]] * 2, children, cache=cache, parents=["a", "a"], keys=["a0", "a1"])
    before = cache.tokens
    cache.keep(["a0", "a1"])  # "a" is still held through its children; "b" is freed
    b_own = cache_tokens_of(scorer, ["b"], [STEPS[0] + " x"])
    assert cache.tokens == before - b_own and len(cache) == 2
    cache.keep([])
    assert cache.tokens == 0


def cache_tokens_of(scorer, keys, texts) -> int:
    """The tokens one more entry of ``texts`` (shared prefix with "a" excluded) holds: re-derived from a fresh cache."""
    fresh = PrefixCache(capacity=10_000)
    scorer.score_detailed([PROBLEMS[0]] * 2, [STEPS[0], *texts], cache=fresh, keys=["a", *keys])
    total = fresh.tokens
    fresh.keep(["a"])
    return total - fresh.tokens


# --- in a search ---------------------------------------------------------------------------------------------------
SEARCH_PROBLEMS = [Problem("p/a.json", PROBLEMS[0], "2", 1, "Algebra"), Problem("p/b.json", PROBLEMS[1], "2", 1, "Algebra")]


def _search(scorer, method: str, prm_cache: bool, lookahead: int):
    sep = scorer.step_separator
    rules = TreeRules(end=lambda k, label: "stop" if label.count(".") == 3 and label.endswith("1") else None)
    texts = [p.problem for p in SEARCH_PROBLEMS]
    backend = ScriptedTreeBackend(texts, rules, make_tokenizer(), sep)
    settings = SearchSettings(method, n=4, beam_width=2, num_iterations=5, lookahead=lookahead, temperature=0.8,
                              top_p=1.0, max_new_tokens=512, seed=0, aggregation="last", separator=sep,
                              prm_cache=prm_cache)
    return run_search(SEARCH_PROBLEMS, [f"<chat> {t} <assistant>" for t in texts], backend, Recording(scorer), settings)


class Recording:
    """The scorer, recording which cache entries each call finds (to check that pruned beams are freed)."""

    caches_prefixes = True

    def __init__(self, scorer):
        self.scorer, self.calls = scorer, []

    def score_detailed(self, problems, responses, **cache):
        if cache:
            self.calls.append((set(cache["cache"].entries), set(cache["parents"])))
        return self.scorer.score_detailed(problems, responses, **cache)


@pytest.mark.parametrize("fmt", ["skywork", "qwen2.5-math-prm"])
@pytest.mark.parametrize("method,lookahead", [("beam_search", 0), ("beam_search", 1), ("dvts", 0), ("dvts", 1)])
def test_a_search_with_the_cache_grows_the_same_tree_with_the_same_rewards(fmt, method, lookahead, scorers):
    cached, plain = (_search(scorers[fmt], method, flag, lookahead) for flag in (True, False))
    for a, b in zip(cached, plain, strict=True):
        assert [n.text for n in a.nodes.values()] == [n.text for n in b.nodes.values()]
        assert a.pool == b.pool
        for x, y in zip(a.nodes.values(), b.nodes.values()):
            assert x.step_rewards == pytest.approx(y.step_rewards, abs=TOL, rel=0)
            assert x.prm_cached_tokens >= 0 and y.prm_cached_tokens == 0
    ran = sum(n.prm_tokens for s in cached for n in s.nodes.values())
    served = sum(n.prm_cached_tokens for s in cached for n in s.nodes.values())
    assert served > ran > 0, "most of what a search scores was scored before"
    assert ran < 0.5 * sum(n.prm_tokens for s in plain for n in s.nodes.values())
    # A problem's first candidates share one pass over the problem (all that precedes the solution).
    for c, p, problem in zip(cached, plain, SEARCH_PROBLEMS):
        firsts = [n for n in c.nodes.values() if n.iteration == 0]
        before = len(ids_to_score(scorers[fmt], problem.problem, "")) - 1  # the problem, without the first step
        assert sum(n.prm_tokens for n in firsts) <= \
            sum(n.prm_tokens for n in p.nodes.values() if n.iteration == 0) - (len(firsts) - 1) * before


def test_a_search_frees_the_cache_of_pruned_and_finished_beams(scorers):
    """Every entry a scoring call finds in the cache is the parent of a text in that call or a later one (DVTS's
    unfinished leaves wait for the last call): pruned beams, finished beams and past iterations hold nothing."""
    recording = Recording(scorers["skywork"])
    sep = "\n"
    rules = TreeRules(end=lambda k, label: "stop" if label in ("1", "2.1") else None)
    texts = [p.problem for p in SEARCH_PROBLEMS]
    for method in ("beam_search", "dvts"):
        recording.calls.clear()
        settings = SearchSettings(method, n=8, beam_width=2, num_iterations=4, lookahead=0, temperature=0.8, top_p=1.0,
                                  max_new_tokens=512, seed=0, aggregation="last", separator=sep)
        run_search(SEARCH_PROBLEMS, [f"<chat> {t} <assistant>" for t in texts],
                   ScriptedTreeBackend(texts, rules, make_tokenizer(), sep), recording, settings)
        assert len(recording.calls) >= 3
        for i, (held, _) in enumerate(recording.calls):
            later = set().union(*(parents for _, parents in recording.calls[i:]))
            assert held <= later, f"{method}: entries of beams no later call extends: {held - later}"
        assert any(held for held, _ in recording.calls[1:])


def test_the_search_asks_nothing_of_a_prm_without_a_cache():
    """The scripted PRMs (and any scorer without ``caches_prefixes``) are called exactly as before."""
    from bestofn.testing.scripted import ScriptedTreePRM

    texts = [p.problem for p in SEARCH_PROBLEMS]
    prm = ScriptedTreePRM(texts, TreeRules(), "\n")  # its score_detailed takes no cache arguments
    settings = SearchSettings("beam_search", n=4, beam_width=2, num_iterations=2, lookahead=0, temperature=0.8,
                              top_p=1.0, max_new_tokens=64, seed=0, aggregation="last", separator="\n")
    states = run_search(SEARCH_PROBLEMS, texts, ScriptedTreeBackend(texts, TreeRules(), make_tokenizer()), prm, settings)
    assert all(n.prm_cached_tokens == 0 for s in states for n in s.nodes.values()) and prm.scored
