"""A sample is a function of (run seed, problem, sample index) and the generation settings alone (issue 26).

Batch sizes, token budgets, the chunk a problem lands in and the rounds it is drawn in never change a sample;
these tests draw the same samples in those different ways on the tiny generator (CPU, float32) and compare.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bestofn import pipeline
from bestofn.backends import TransformersBackend
from bestofn.config import DEFAULT_SYSTEM_PROMPT, BestOfNConfig
from bestofn.data import Problem
from bestofn.io import read_jsonl
from bestofn.methods.best_of_n import BestOfN, greedy
from bestofn.prompts import render_prompt
from bestofn.seeds import sample_seed
from bestofn.testing.scripted import Script, ScriptedBackend, ScriptedProblem, Solution

from conftest import tiny_config


def _hash32(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def test_the_sample_seed_rule_worked_by_hand():
    # sample_seed(seed, id, i) = h(f"{h(f'{seed}:{id}')}:{i}"), h = the first 32 bits of sha256
    assert sample_seed(0, "test/algebra/1.json", 3) == _hash32(f"{_hash32('0:test/algebra/1.json')}:3")
    seeds = {sample_seed(s, u, i) for s in (0, 1) for u in ("a", "b") for i in range(4)}
    assert len(seeds) == 16  # every (seed, problem, index) its own stream


PROBLEMS = [Problem(unique_id=f"p/{k}", problem=q, answer="1", level=1) for k, q in
            enumerate(("What is $1+1$?", "Solve $x^2=4$ for $x > 0$.", "Compute $\\sqrt{81}$."))]


@pytest.fixture(scope="module")
def backend(tiny_generator_dir):
    return TransformersBackend.from_config(BestOfNConfig(generator=str(tiny_generator_dir), device="cpu"))


@pytest.fixture(scope="module")
def prompts(backend):
    return [render_prompt(backend.tokenizer, p.problem, DEFAULT_SYSTEM_PROMPT, "{problem}") for p in PROBLEMS]


def _texts(rows: list[dict]) -> dict[tuple[str, int], dict]:
    return {(r["unique_id"], r["sample_index"]): r for r in rows}


def test_samples_drawn_in_rounds_are_the_samples_drawn_at_once(backend, prompts):
    method = BestOfN(n=6, temperature=1.0, top_p=0.95, max_new_tokens=10, seed=3)
    at_once = method.solve(PROBLEMS, prompts, backend).rows
    assert [(r["unique_id"], r["sample_index"]) for r in at_once] == [(p.unique_id, i) for p in PROBLEMS for i in range(6)]
    rounds = (method.draw(PROBLEMS, prompts, backend, 0, 2) + method.draw(PROBLEMS, prompts, backend, 2, 1)
              + method.draw(PROBLEMS, prompts, backend, 3, 3))
    assert _texts(rounds) == _texts(at_once)
    # A problem drawn alone, or with other problems around it, samples the same solutions.
    alone = method.draw(PROBLEMS[1:2], prompts[1:2], backend, 0, 6)
    assert alone == [r for r in at_once if r["unique_id"] == "p/1"]
    assert len({r["text"] for r in at_once}) == len(at_once), "equal samples would prove nothing"
    # ... and another run seed samples other solutions
    other = BestOfN(n=6, temperature=1.0, top_p=0.95, max_new_tokens=10, seed=4).solve(PROBLEMS, prompts, backend).rows
    assert not {r["text"] for r in other} & {r["text"] for r in at_once}


def test_batch_budgets_never_change_a_sample(backend, prompts):
    method = BestOfN(n=4, temperature=1.0, top_p=1.0, max_new_tokens=10, seed=0)
    want = method.solve(PROBLEMS, prompts, backend).rows
    one_row = TransformersBackend(backend.model, backend.tokenizer, max_batch_sequences=1)  # every sample alone
    tight = TransformersBackend(backend.model, backend.tokenizer, batch_tokens=300)  # a prompt's samples split
    assert method.solve(PROBLEMS, prompts, one_row).rows == want
    assert method.solve(PROBLEMS, prompts, tight).rows == want
    g = greedy(BestOfNConfig(max_new_tokens=10))
    assert g.solve(PROBLEMS, prompts, one_row).rows == g.solve(PROBLEMS, prompts, backend).rows


def test_draw_asks_the_backend_for_sample_indices(tokenizer_script):
    """A backend numbers samples first..first+count-1 (the scripted one writes sample i of its script)."""
    script, backend = tokenizer_script
    method = BestOfN(n=4, temperature=1.0, top_p=1.0, max_new_tokens=64, seed=0)
    problems = [Problem(unique_id="q", problem=script.problems[0].problem, answer="1", level=1)]
    rows = method.draw(problems, [script.problems[0].problem], backend, 2, 2)
    assert [(r["sample_index"], r["text"]) for r in rows] == [
        (i, script.problems[0].samples[i].text(script.separator, f"0-{i}")) for i in (2, 3)]
    with pytest.raises(ValueError, match="cannot draw"):
        greedy(BestOfNConfig()).draw(problems, [script.problems[0].problem], backend, 1, 1)


@pytest.fixture
def tokenizer_script():
    from bestofn.testing import make_tokenizer

    samples = [Solution(str(i), (0.5,)) for i in range(4)]
    script = Script([ScriptedProblem("What is 1?", Solution("0", (0.5,)), samples)])
    return script, ScriptedBackend(script, make_tokenizer())


def test_a_run_with_generation_batch_size_1_writes_the_same_samples(tmp_path, tiny_generator_dir, tiny_prm_dir,
                                                                    math500_path):
    """The issue's check: --generation-batch-size 1 (and a small token budget) against the default, same run."""
    default = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "default", num_problems=3, n=3,
                          max_new_tokens=12, temperature=1.0)
    pipeline.run(default)
    slow = BestOfNConfig(**{**default.to_dict(), "output_dir": str(tmp_path / "slow"), "generation_batch_size": 1,
                            "generation_batch_tokens": 700})
    pipeline.run(slow)
    for name in ("greedy.jsonl", "samples.jsonl", "results.json"):
        assert (tmp_path / "slow" / name).read_bytes() == (tmp_path / "default" / name).read_bytes(), name
    chunks = {d: sorted(p.relative_to(d) for p in d.glob("chunks/*/*.json")) for d in (tmp_path / "slow", tmp_path / "default")}
    assert chunks[tmp_path / "slow"] == chunks[tmp_path / "default"]  # chunks named by what they depend on
    texts = [r["text"] for r in read_jsonl(tmp_path / "default" / "samples.jsonl")]
    assert len(set(texts)) == len(texts) == 9


def test_num_problems_all_runs_on_the_transformers_backend(tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path):
    """Issue 26/28: num_problems all crashed the transformers backend (estimated_decode_steps got "all")."""
    dataset = tmp_path / "two.jsonl"
    dataset.write_text("".join(line + "\n" for line in math500_path.read_text().splitlines()[:2]))
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", num_problems="all", n=2,
                         max_new_tokens=4, levels=[1, 2, 3, 4, 5])
    seen = []

    class Recording(pipeline.Models):
        def generator(self, config):
            seen.append(config.num_problems)  # the generator sizes its decoding by the problems drawn
            return super().generator(config)

    results = pipeline.run(config, models=Recording())
    assert seen == [2]
    assert results["num_problems"] == 2 and len(read_jsonl(tmp_path / "run" / "samples.jsonl")) == 4
    assert json.loads(Path(tmp_path / "run" / "results.json").read_text())["num_problems"] == 2
