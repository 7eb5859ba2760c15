"""A short beam search on vLLM with and without prefix caching (issue 19).

A search sends the chat prompt and every partial solution again at each iteration (one step per call), so
without a prefix cache the engine computes their KV cache again every time. This script writes a tiny
generator (random weights redrawn at std 0.3, so texts and step lengths vary), then runs the same beam search
(:func:`bestofn.methods.search.run_search`; a constant PRM, so only generation is timed) on one engine with
``enable_prefix_caching`` and one without, started in turn with the backend's own engine arguments
(:func:`bestofn.backends.vllm_backend.engine_args`). It prints, per setting, the time inside ``generate()``,
the prompt tokens sent, the tokens generated, the engine's prefix-cache hits, and whether both searches
wrote the same tree.

```bash
python benchmarks/search_prefix_cache.py --dataset ../shared/data/math500.jsonl   # ~3 minutes on 2 CPU cores
```
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


class ConstantPRM:
    """Every step scores 0.5: the search keeps the earliest beams, and no PRM time is measured."""

    step_separator = "\n"

    def score_detailed(self, problems, responses):
        from bestofn.prm.base import PRMScore

        return [PRMScore([0.5] * (r.count("\n") + 1), False) for r in responses]


def write_generator(path: Path, hidden: int, layers: int) -> Path:
    from transformers import AutoModelForCausalLM

    from bestofn.testing import make_tiny_generator

    make_tiny_generator(path, hidden_size=hidden, layers=layers, heads=hidden // 64)
    model = AutoModelForCausalLM.from_pretrained(path)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.save_pretrained(path)
    return path


def search_once(model_dir: Path, problems: list, args: argparse.Namespace, prefix_caching: bool) -> dict:
    import vllm
    from transformers import AutoTokenizer, GenerationConfig

    from bestofn.backends.base import stop_token_ids
    from bestofn.backends.vllm_backend import VLLMBackend, engine_args
    from bestofn.config import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE, BestOfNConfig
    from bestofn.methods.search import SearchSettings, run_search
    from bestofn.prompts import render_prompt

    config = BestOfNConfig(generator=str(model_dir), backend="vllm", device="cpu", gpu_memory_utilization=0.3,
                           enforce_eager=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    start = time.perf_counter()
    llm = vllm.LLM(**{**engine_args(config, "cpu"), "enable_prefix_caching": prefix_caching,
                      "disable_log_stats": False})
    load_s = time.perf_counter() - start
    backend = VLLMBackend(llm, tokenizer, stop_token_ids(GenerationConfig.from_pretrained(model_dir), tokenizer))
    calls = {"seconds": 0.0, "prompt_tokens": 0}
    generate = backend.generate

    def timed(prompts, **kw):
        calls["prompt_tokens"] += sum(len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"])
        t = time.perf_counter()
        try:
            return generate(prompts, **kw)
        finally:
            calls["seconds"] += time.perf_counter() - t

    backend.generate = timed
    prompts = [render_prompt(tokenizer, p.problem, DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE) for p in problems]
    settings = SearchSettings("beam_search", n=args.n, beam_width=args.beam_width, num_iterations=args.num_iterations,
                              lookahead=0, temperature=0.8, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0,
                              aggregation="last", separator="\n")
    states = run_search(problems, prompts, backend, ConstantPRM(), settings, progress=False)
    metrics = {m.name: getattr(m, "value", None) for m in llm.get_metrics()}
    backend.close()
    return {"prefix_caching": prefix_caching, "load_s": round(load_s, 1), "generate_s": round(calls["seconds"], 2),
            "prompt_tokens_sent": calls["prompt_tokens"],
            "generated_tokens": sum(n.num_tokens for s in states for n in s.nodes.values()),
            "nodes": sum(len(s.nodes) for s in states),
            "prefix_cache_queries": metrics.get("vllm:prefix_cache_queries"),
            "prefix_cache_hits": metrics.get("vllm:prefix_cache_hits"),
            "tree": [[n.text for n in s.nodes.values()] for s in states]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a MATH-500 .jsonl file")
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--beam-width", type=int, default=2)
    parser.add_argument("--num-iterations", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()

    from bestofn.data import Problem

    rows = [json.loads(line) for line in Path(args.dataset).read_text().splitlines()[: args.problems]]
    problems = [Problem(r["unique_id"], r["problem"], r["answer"], int(r["level"]), r["subject"]) for r in rows]
    with tempfile.TemporaryDirectory() as work:
        model_dir = write_generator(Path(work) / "generator", args.hidden, args.layers)
        results = [search_once(model_dir, problems, args, flag) for flag in (True, False)]
    same = results[0].pop("tree") == results[1].pop("tree")
    for r in results:
        print(json.dumps(r))
    on, off = results
    print(f"beam search, {args.problems} problems, n={args.n}, M={args.beam_width}, {args.num_iterations} iterations: "
          f"generate() {on['generate_s']} s with prefix caching, {off['generate_s']} s without "
          f"({off['generate_s'] / max(on['generate_s'], 1e-9):.2f}x); same tree: {same}")
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": vars(args), "runs": results, "same_tree": same}, indent=1))


if __name__ == "__main__":
    main()
