"""The transformers backend's memory-sized batches and its static-cache decoding (hand-worked numbers)."""

from __future__ import annotations

import logging

import pytest
import torch

from bestofn.backends import TransformersBackend
from bestofn.backends.transformers_backend import (
    COMPILE_MIN_DECODE_STEPS,
    Batch,
    choose_decoding,
    estimated_decode_steps,
    kv_cache_bytes_per_token,
    memory_batch_tokens,
    plan_batches,
    prefill_bytes_per_token,
    prompts_per_call,
)
from bestofn.config import DEFAULT_SYSTEM_PROMPT, BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.prompts import render_prompt


# --- batch plans -------------------------------------------------------------------------------------------------
def test_prompts_join_a_batch_while_their_padded_size_fits_the_budget():
    # 4 prompts x n=4 x (100 + 100) tokens = 3200: all in one batch at 3200, three of them at 2400.
    assert plan_batches([100] * 4, n=4, max_new_tokens=100, budget_tokens=3200) == [Batch(0, 4, 4)]
    assert plan_batches([100] * 4, n=4, max_new_tokens=100, budget_tokens=2400) == [Batch(0, 3, 4), Batch(3, 4, 4)]


def test_left_padding_counts_every_row_at_the_longest_prompt():
    # [100, 300]: 2 prompts x 2 x (300 + 100) = 1600 fits; with the third, 3 x 2 x 400 = 2400 does not.
    assert plan_batches([100, 300, 100], n=2, max_new_tokens=100, budget_tokens=1600) == [Batch(0, 2, 2), Batch(2, 3, 2)]


def test_a_prompt_too_big_for_the_budget_splits_its_samples():
    # One sequence is 100 + 100 = 200 tokens; 1000 tokens hold 5 of the 16: 5 + 5 + 5 + 1.
    assert plan_batches([100], n=16, max_new_tokens=100, budget_tokens=1000) == [
        Batch(0, 1, 5), Batch(0, 1, 5), Batch(0, 1, 5), Batch(0, 1, 1)]
    # In the middle of a run: the batch before it closes, and the next prompt starts a new one.
    # 2 x 4 x 1100 > 2000 closes [0, 1); 1100 alone fits once, so 4 batches of 1; then [2, 3).
    assert plan_batches([100, 1000, 100], n=4, max_new_tokens=100, budget_tokens=2000) == [
        Batch(0, 1, 4), *[Batch(1, 2, 1)] * 4, Batch(2, 3, 4)]
    # Even a budget below one sequence generates it (alone): nothing is ever dropped.
    assert plan_batches([50, 50], n=1, max_new_tokens=100, budget_tokens=10) == [Batch(0, 1, 1), Batch(1, 2, 1)]


def test_the_sequence_cap_limits_a_batch_and_defaults_to_none():
    assert plan_batches([10] * 4, n=4, max_new_tokens=10, budget_tokens=10**6, max_sequences=8) == [
        Batch(0, 2, 4), Batch(2, 4, 4)]
    assert plan_batches([10] * 4, n=4, max_new_tokens=10, budget_tokens=10**6, max_sequences=2) == [
        Batch(i, i + 1, 2) for i in range(4) for _ in range(2)]


def test_greedy_of_all_problems_and_the_default_samples_fit_one_batch_on_a_big_gpu():
    # The default experiment: 20 problems x 16 samples, ~300-token prompts, 512 new tokens; an H200 budget.
    budget = 1_200_000
    assert plan_batches([300] * 20, n=1, max_new_tokens=512, budget_tokens=budget) == [Batch(0, 20, 1)]
    assert plan_batches([300] * 20, n=16, max_new_tokens=512, budget_tokens=budget) == [Batch(0, 20, 16)]


def test_memory_budget_from_the_qwen_1_5b_shape():
    from transformers import Qwen2Config

    qwen = Qwen2Config(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2)
    # keys + values x 28 layers x 2 KV heads x head_dim 128 x 2 bytes = 28,672 bytes per token in bf16.
    assert kv_cache_bytes_per_token(qwen, torch.bfloat16) == 28672
    assert kv_cache_bytes_per_token(qwen, torch.float32) == 57344
    # (4 x 1536 + 3 x 8960) x 2 bytes = 66,048
    assert prefill_bytes_per_token(qwen, torch.bfloat16) == 66048
    # 100 GB free, 85% of it, at 28,672 + 66,048 = 94,720 bytes per token: 897,381 tokens.
    assert memory_batch_tokens(100 * 10**9, 94720, share=0.85) == 897381
    assert memory_batch_tokens(10, 94720) == 1  # never zero


def test_pipeline_chunks_hold_one_batch_of_typical_prompts():
    # 1,048,576 tokens / (512 assumed prompt + 512 new) = 1024 sequences = 64 problems of 16 samples.
    assert prompts_per_call(16, 512, 1_048_576) == 64
    assert prompts_per_call(1, 512, 1_048_576) == 1024
    assert prompts_per_call(16, 512, 1_048_576, max_sequences=32) == 2
    assert prompts_per_call(16, 2048, 4096) == 1  # at least one prompt


def test_compile_is_chosen_for_long_runs_on_cuda_only(caplog):
    assert choose_decoding("auto", "cuda", COMPILE_MIN_DECODE_STEPS) == "compiled"
    assert choose_decoding("auto", "cuda:1", COMPILE_MIN_DECODE_STEPS - 1) == "eager"
    assert choose_decoding("on", "cuda", 1) == "compiled"
    assert choose_decoding("off", "cuda", 10**9) == "eager"
    assert choose_decoding("auto", "cpu", 10**9) == "eager"
    with caplog.at_level(logging.WARNING):
        assert choose_decoding("on", "cpu", 10**9) == "eager"
    assert "needs a CUDA GPU" in caplog.text
    with pytest.raises(BestOfNError, match="compile_generation"):
        choose_decoding("yes", "cuda", 1)


def test_decode_steps_of_a_run():
    config = BestOfNConfig(num_problems=20, n=16, max_new_tokens=512)
    # Big budget: greedy in one batch, samples in one batch: 2 x 512 steps.
    assert estimated_decode_steps(config, 1_048_576, 20) == 1024
    # 65,536 tokens: 64 sequences per call, greedy 1 batch, samples 4 problems per call: 5 batches -> 6 x 512.
    assert estimated_decode_steps(config, 65536, 20) == 3072
    # num_problems: all counts the problems drawn (here 40: greedy 1 batch, samples 10 -> 11 x 512)
    assert estimated_decode_steps(BestOfNConfig(num_problems="all", n=16, max_new_tokens=512), 65536, 40) == 5632


def test_config_rejects_bad_batch_and_compile_settings():
    with pytest.raises(BestOfNError, match="compile_generation"):
        BestOfNConfig(compile_generation="always")
    with pytest.raises(BestOfNError, match="generation_batch_tokens"):
        BestOfNConfig(generation_batch_tokens=0)


# --- the backend on the tiny model ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eager(tiny_generator_dir):
    return TransformersBackend.from_config(BestOfNConfig(generator=str(tiny_generator_dir), device="cpu"))


@pytest.fixture(scope="module")
def prompts(eager):
    questions = ("What is $1+1$?", "Solve $x^2=4$ for $x > 0$, and explain each step of the solution.",
                 "Compute $\\sqrt{81}$.")
    return [render_prompt(eager.tokenizer, q, DEFAULT_SYSTEM_PROMPT, "{problem}") for q in questions]


def _spy(monkeypatch, backend) -> list[dict]:
    """Record the keyword arguments of each model.generate call of ``backend``."""
    calls: list[dict] = []
    real = backend.model.generate

    def generate(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(backend.model, "generate", generate)
    return calls


def test_from_config_uses_the_cpu_budget_and_eager_decoding(eager, tiny_generator_dir):
    assert (eager.decoding, eager.batch_tokens, eager.max_batch_sequences) == ("eager", 32768, None)

def test_chunks_are_planned_from_the_config_alone():
    """Every process (a resumed run, a Ray worker on another machine) plans the same chunks: no measured memory."""
    default = BestOfNConfig(device="cpu", max_new_tokens=512)  # the CPU budget: 32768 // (512 + 512) = 32 sequences
    assert TransformersBackend.chunk_size(default, 16) == 2 and TransformersBackend.chunk_size(default, 1) == 32
    # Batch settings size generate()'s batches inside a chunk, never the chunks (their names would change).
    custom = BestOfNConfig(device="cpu", max_new_tokens=512, generation_batch_tokens=5000, generation_batch_size=3)
    assert TransformersBackend.chunk_size(custom, 16) == 2 and TransformersBackend.chunk_size(custom, 1) == 32
    longer = BestOfNConfig(device="cpu", max_new_tokens=1536)  # 32768 // (512 + 1536) = 16 sequences
    assert TransformersBackend.chunk_size(longer, 16) == 1 and TransformersBackend.chunk_size(longer, 4) == 4


def test_static_cache_greedy_equals_eager_greedy(monkeypatch, eager, prompts):
    """transformers' static KV cache (compile disabled: on CPU compiling takes minutes, see the benchmark for the
    compiled path on a GPU) writes exactly the eager path's greedy tokens, left padding included."""
    static = TransformersBackend(eager.model, eager.tokenizer, decoding="static")
    want = eager.generate(prompts, n=1, temperature=0, top_p=1.0, max_new_tokens=24, seed=0)
    calls = _spy(monkeypatch, static)  # the two backends share one model: spy on the static calls only
    got = static.generate(prompts, n=1, temperature=0, top_p=1.0, max_new_tokens=24, seed=0)
    assert [[c.to_dict() for c in g] for g in got] == [[c.to_dict() for c in g] for g in want]
    assert len(calls) == 1 and calls[0]["cache_implementation"] == "static" and calls[0]["disable_compile"] is True
    longest = calls[0]["input_ids"].shape[1]
    assert calls[0]["max_cache_len"] % 256 == 0 and calls[0]["max_cache_len"] >= longest + 24


def test_static_cache_sampling_equals_eager_sampling(eager, prompts):
    static = TransformersBackend(eager.model, eager.tokenizer, decoding="static")
    kwargs = dict(n=3, temperature=1.0, top_p=0.9, max_new_tokens=12, seed=5)
    assert ([[c.text for c in g] for g in static.generate(prompts[:2], **kwargs)]
            == [[c.text for c in g] for g in eager.generate(prompts[:2], **kwargs)])


def test_budget_sized_batches_keep_greedy_results_and_sample_counts(monkeypatch, eager, prompts):
    lengths = [len(ids) for ids in eager.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    # A budget of one sequence of the longest prompt: every prompt alone, and N=3 samples split 1 + 1 + 1.
    tight = TransformersBackend(eager.model, eager.tokenizer, batch_tokens=max(lengths) + 16)
    want = eager.generate(prompts, n=1, temperature=0, top_p=1.0, max_new_tokens=16, seed=0)
    calls = _spy(monkeypatch, tight)
    assert tight.generate(prompts, n=1, temperature=0, top_p=1.0, max_new_tokens=16, seed=0) == want
    assert [c["input_ids"].shape[0] for c in calls] == [1, 1, 1]
    calls.clear()
    sampled = tight.generate(prompts[:2], n=3, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=0)
    assert [len(g) for g in sampled] == [3, 3]
    assert [c["input_ids"].shape[0] for c in calls] == [1] * 6
    # Every sample has its own seed: split 1 + 1 + 1 or all at once, the same samples (each one different).
    assert sampled == eager.generate(prompts[:2], n=3, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=0)
    assert all(len({c.text for c in g}) == 3 for g in sampled)
    # The default budget takes them all at once: 3 prompts x 3 samples, one row each.
    calls.clear()
    eager.generate(prompts, n=3, temperature=1.0, top_p=1.0, max_new_tokens=4, seed=0)
    assert [c["input_ids"].shape[0] for c in calls] == [9]
