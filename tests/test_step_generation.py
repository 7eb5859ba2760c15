"""Step-wise generation in the transformers backend: stop strings, continuing a partial answer, per-row seeds.

Run on the peaked tiny generator (varied texts, so a step boundary and a seed can actually matter).
"""

from __future__ import annotations

import pytest

from bestofn.backends import TransformersBackend
from bestofn.config import BestOfNConfig

SEP = "\n"


@pytest.fixture(scope="module")
def backend(peaked_generator_dir):
    b = TransformersBackend.from_config(BestOfNConfig(generator=str(peaked_generator_dir), device="cpu"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def prompts(backend) -> list[str]:
    from bestofn.prompts import render_prompt

    return [render_prompt(backend.tokenizer, p, "Solve it.", "{problem}") for p in ("What is 1+1?", "Find x if 2x=6.")]


def _sample(backend, prompts, seeds, stop=None, n=2, max_new_tokens=12):
    return backend.generate(prompts, n=n, temperature=1.0, top_p=0.9, max_new_tokens=max_new_tokens, seed=0,
                            stop=stop, seeds=seeds)


def test_a_step_stops_at_the_delimiter_and_keeps_it(backend, prompts) -> None:
    steps = _sample(backend, prompts, [11, 12], stop=[SEP], n=4, max_new_tokens=40)
    full = _sample(backend, prompts, [11, 12], n=4, max_new_tokens=40)
    flat = [(s, f) for ss, ff in zip(steps, full) for s, f in zip(ss, ff)]
    delimited = [(s, f) for s, f in flat if s.finish_reason == "delimiter"]
    assert delimited, "no completion reached the delimiter: the test would prove nothing"
    for step, whole in flat:
        # Same seeds: the step is the unrestricted completion up to (and including) its first delimiter.
        if step.finish_reason == "delimiter":
            assert step.text.endswith(SEP) and SEP not in step.text[: -len(SEP)]
            assert whole.text.startswith(step.text) and step.num_tokens <= whole.num_tokens
        else:  # it ended before any delimiter: exactly the unrestricted completion
            assert (step.text, step.num_tokens, step.finish_reason) == (whole.text, whole.num_tokens, whole.finish_reason)


def test_per_prompt_seeds_make_samples_independent_of_the_batch(backend, prompts) -> None:
    together = _sample(backend, prompts, [5, 6])
    alone = _sample(backend, prompts[1:], [6])
    assert together[1] == alone[0]
    assert _sample(backend, prompts[:1], [5]) == together[:1]
    assert together[0][0] != together[0][1]  # the n samples of one prompt differ
    assert _sample(backend, prompts[:1], [7]) != together[:1]  # and another seed samples other solutions


def test_generation_continues_a_partial_solution(backend, prompts) -> None:
    # Greedy: a first "step" (stopped at a space, which this model writes often), then a call on prompt + step
    # continues where the unrestricted text goes on.
    greedy = dict(n=1, temperature=0.0, top_p=1.0, seed=0)
    step = backend.generate(prompts[:1], **greedy, max_new_tokens=24, stop=[" "])[0][0]
    assert step.finish_reason == "delimiter" and step.text.endswith(" ")
    whole = backend.generate(prompts[:1], **greedy, max_new_tokens=step.num_tokens + 4)[0][0]
    rest = backend.generate([prompts[0] + step.text], **greedy, max_new_tokens=4)[0][0]
    assert whole.text.startswith(step.text) and rest.num_tokens > 0
    # The continuation reads the step: it is not what the model writes from the bare prompt.
    assert not whole.text.startswith(rest.text)


class _ConstantPRM:
    """Every step scores 0.5 (the search's choices do not matter here, only its token budget)."""

    def __init__(self, separator: str):
        self.step_separator = separator

    def score_detailed(self, problems, responses):
        from bestofn.prm.base import PRMScore

        return [PRMScore([0.5] * (r.count(self.step_separator) + 1), False) for r in responses]


@pytest.mark.parametrize("method", ["beam_search", "dvts"])
def test_a_search_on_a_real_generator_never_passes_max_new_tokens(backend, prompts, method) -> None:
    from bestofn.data import Problem
    from bestofn.methods.search import SearchSettings, run_search

    # Steps end at a space, which this model writes often: solutions of many steps, so budgets shrink per step.
    problems = [Problem(f"p{k}", f"problem {k}", "0", 1) for k in range(len(prompts))]
    settings = SearchSettings(method, n=4, beam_width=2, num_iterations=12, lookahead=1, temperature=1.0, top_p=0.9,
                              max_new_tokens=24, seed=3, aggregation="last", separator=" ")
    states = run_search(problems, prompts, backend, _ConstantPRM(" "), settings, progress=False)
    spent = [(s.tokens(i), s.nodes[i]) for s in states for i in s.nodes]
    assert max(node.iteration for _, node in spent) >= 3, "too few steps per solution: the test would prove little"
    assert all(used <= 24 and used + node.lookahead_tokens <= 24 for used, node in spent)
    pooled = [s.tokens(i) for s in states for i in s.pool]
    assert len(pooled) == 8 and max(pooled) == 24  # the budget was reached, never passed
    # A solution that reached it ended there: nothing continues a 24-token prefix.
    assert all(node.ended for used, node in spent if used == 24)
