"""The transformers backend and the prompt, on the tiny random Qwen2."""

import pytest

from bestofn.config import DEFAULT_SYSTEM_PROMPT, BestOfNConfig
from bestofn.backends import TransformersBackend
from bestofn.prompts import build_messages, render_prompt


@pytest.fixture(scope="module")
def backend(tiny_generator_dir):
    return TransformersBackend.from_config(BestOfNConfig(generator=str(tiny_generator_dir), device="cpu",
                                                         generation_batch_size=8))


@pytest.fixture(scope="module")
def prompts(backend):
    return [render_prompt(backend.tokenizer, q, DEFAULT_SYSTEM_PROMPT, "Problem: {problem}")
            for q in ("What is $1+1$?", "Solve $x^2=4$ for $x > 0$.", "Compute $\\sqrt{81}$.")]


def test_prompt_uses_the_chat_template_and_asks_for_steps_and_a_box(backend, prompts):
    assert build_messages("Q", "", "{problem}") == [{"role": "user", "content": "Q"}]
    assert prompts[0].startswith("<|im_start|>system\n") and prompts[0].endswith("<|im_start|>assistant\n")
    assert "Problem: What is $1+1$?" in prompts[0]
    assert "one reasoning step per line" in prompts[0] and "\\boxed{" in prompts[0]


def test_greedy_is_deterministic_and_batch_independent(backend, prompts):
    batched = backend.generate(prompts, n=1, temperature=0, top_p=1.0, max_new_tokens=16, seed=0)
    alone = [backend.generate([p], n=1, temperature=0, top_p=1.0, max_new_tokens=16, seed=123)[0] for p in prompts]
    assert [c[0].text for c in batched] == [c[0].text for c in alone]  # left padding does not change the result
    with pytest.raises(ValueError, match="n=1"):
        backend.generate(prompts, n=2, temperature=0, top_p=1.0, max_new_tokens=4, seed=0)


def test_sampling_is_reproducible_per_seed(backend, prompts):
    a = backend.generate(prompts[:2], n=3, temperature=1.0, top_p=0.95, max_new_tokens=12, seed=7)
    b = backend.generate(prompts[:2], n=3, temperature=1.0, top_p=0.95, max_new_tokens=12, seed=7)
    c = backend.generate(prompts[:2], n=3, temperature=1.0, top_p=0.95, max_new_tokens=12, seed=8)
    assert [len(x) for x in a] == [3, 3]
    texts = lambda out: [comp.text for group in out for comp in group]  # noqa: E731
    assert texts(a) == texts(b) and texts(a) != texts(c)
    assert len(set(texts(a))) > 1


def test_finish_reasons_and_token_counts(backend):
    stop = backend.stop_ids[0]
    other = next(t for t in range(10, 100) if t not in backend.stop_ids)
    assert backend._completion([other, other, stop, 0, 0], 5).finish_reason == "stop"
    assert backend._completion([other, other, stop, 0, 0], 5).num_tokens == 3  # the stop token counts
    cut = backend._completion([other] * 4, 4)
    assert (cut.finish_reason, cut.num_tokens) == ("length", 4)
    assert set(backend.stop_ids) == {backend.tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}


def test_generated_records_are_consistent(backend, prompts):
    for group in backend.generate(prompts, n=2, temperature=1.0, top_p=1.0, max_new_tokens=10, seed=1):
        for c in group:
            assert 1 <= c.num_tokens <= 10
            assert c.finish_reason in ("stop", "length")
            if c.finish_reason == "length":
                assert c.num_tokens == 10  # only a solution that used the whole budget is cut off
            assert "<|im_end|>" not in c.text  # special tokens are not part of the solution


def test_model_generation_defaults_do_not_leak_in(tiny_generator_dir, tmp_path, prompts):
    # Qwen2.5-Instruct ships repetition_penalty=1.1 and top_k=20 in generation_config.json; the method
    # samples with temperature and top_p only, so those defaults must not change what the backend produces.
    import json
    import shutil

    shaped = tmp_path / "generator"
    shutil.copytree(tiny_generator_dir, shaped)
    gen_config = json.loads((shaped / "generation_config.json").read_text())
    (shaped / "generation_config.json").write_text(json.dumps({**gen_config, "repetition_penalty": 3.0, "top_k": 2}))
    plain = TransformersBackend.from_config(BestOfNConfig(generator=str(tiny_generator_dir), device="cpu"))
    other = TransformersBackend.from_config(BestOfNConfig(generator=str(shaped), device="cpu"))
    for kwargs in ({"n": 1, "temperature": 0}, {"n": 3, "temperature": 1.0}):
        a = plain.generate(prompts, top_p=1.0, max_new_tokens=24, seed=3, **kwargs)
        b = other.generate(prompts, top_p=1.0, max_new_tokens=24, seed=3, **kwargs)
        assert [[c.text for c in g] for g in a] == [[c.text for c in g] for g in b]
