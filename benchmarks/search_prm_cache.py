"""PRM work per generated token in beam search and DVTS, with and without the PRM's prefix cache (issue 26).

Without the cache (``prm_cache: false``) a search rescores every candidate's whole prefix at every iteration, so
the PRM reads each token again at every later step; with it (the default) each candidate runs only its new step
through the PRM, on its parent's cached keys and values (``bestofn.prm.cache``). This script writes a tiny
generator and a tiny PRM (``bestofn.testing``; ``--format`` picks the PRM's), runs the real pipeline
(``pipeline.run``) on a few MATH-500 problems for Best-of-N and for each search with the cache off and on, and
prints per run: PRM tokens per generated token (``results.json``'s ``compute``), tokens served from the cache,
the seconds in the PRM and the wall time of the method's stages (generation and scoring; greedy left out), and
for the searches whether the cache grew the same tree and the largest reward difference over the texts both
runs scored.

The generator writes steps: ``--generator steps`` (default) is a seeded scripted backend that writes steps of
2-8 words ending at the PRM's separator (so the PRM does real work on real-length steps, and generation costs
nothing); ``--generator tiny`` is the random tiny Qwen2 generator on the transformers backend (``--backend vllm``
for vLLM), redrawn with peaked weights and a likelier separator token so that it writes steps too.

```bash
python benchmarks/search_prm_cache.py --dataset ../shared/data/math500.jsonl                 # ~2 min on 2 cores
python benchmarks/search_prm_cache.py --dataset ../shared/data/math500.jsonl --generator tiny --out tiny.json
```
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import Any

WORDS = ("we", "add", "the", "two", "numbers", "so", "x", "=", "$2$", "then", "factor", "$(x-2)$", "gives", "and",
         "therefore", "check", "it", "holds", "since", "$3 \\cdot 4 = 12$", "divide", "by", "both", "sides")


class StepWriter:
    """A seeded generation backend that writes steps of 2-8 words; a solution ends after 3-8 steps or at the
    token budget. It honours ``stop`` (the search's step separator), ``n`` and ``max_new_tokens``, and counts
    tokens with the tokenizer, so the run's costs count what a real backend would."""

    settings: dict[str, Any] = {}

    def __init__(self, tokenizer: Any, separator: str):
        self.tokenizer, self.separator = tokenizer, separator

    def generate(self, prompts, *, n, temperature, top_p, max_new_tokens, seed, stop=None, seeds=None):
        from bestofn.backends.base import Completion

        out = []
        for k, prompt in enumerate(prompts):
            group = []
            for j in range(n):
                rng = random.Random(f"{(seeds or [seed] * len(prompts))[k]}:{j}:{prompt}")
                text, reason = "", "length"
                for step in range(rng.randint(3, 8)):
                    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
                    last = step == 7 or rng.random() < 0.2
                    text += (words + " The final answer is $\\boxed{2}$.") if last else words + self.separator
                    if last:
                        reason = "stop"
                        break
                    if stop:
                        reason = "delimiter"
                        break
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                if len(ids) > max_new_tokens:
                    text, reason, ids = self.tokenizer.decode(ids[:max_new_tokens]), "length", ids[:max_new_tokens]
                group.append(Completion(text, len(ids) + (reason == "stop"), reason))
            out.append(group)
        return out

    def close(self) -> None:
        pass


def write_models(root: Path, fmt: str, separator: str) -> tuple[Path, Path]:
    """A tiny generator (peaked weights, separator token made likelier) and a tiny PRM of ``fmt``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bestofn.testing import make_tiny_generator, make_tiny_prm
    from bestofn.testing.models import make_tiny_math_shepherd_prm, make_tiny_qwen_math_prm, make_tiny_rlhflow_prm

    builders = {"skywork": make_tiny_prm, "qwen2.5-math-prm": make_tiny_qwen_math_prm, "rlhflow": make_tiny_rlhflow_prm,
                "math-shepherd": make_tiny_math_shepherd_prm}
    generator = make_tiny_generator(root / "generator")
    model = AutoModelForCausalLM.from_pretrained(generator)
    tokenizer = AutoTokenizer.from_pretrained(generator)
    rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=rng) * 0.3)
        # Tied embeddings: the separator's row, pointed at the mean final state, makes it a likely next token.
        states = model.model(torch.randint(0, len(tokenizer), (8, 64), generator=rng)).last_hidden_state
        sep_id = tokenizer.encode(separator[0])[-1]
        model.model.embed_tokens.weight[sep_id] = states.mean((0, 1)) * 4 / states.mean((0, 1)).norm()
    model.save_pretrained(generator)
    return generator, builders[fmt](root / "prm")


def run_once(args: argparse.Namespace, generator: Path, prm: Path, method: str, prm_cache: bool, out: Path) -> dict:
    from transformers import AutoTokenizer

    from bestofn import pipeline
    from bestofn.config import BestOfNConfig
    from bestofn.io import read_json, read_jsonl
    from bestofn.pipeline import Models
    from bestofn.prm import STEP_SEPARATORS

    config = BestOfNConfig(generator=str(generator), prm=str(prm), prm_format=args.format, dataset=args.dataset,
                           num_problems=args.problems, n=args.n, beam_width=args.beam_width,
                           num_iterations=args.num_iterations, max_new_tokens=args.max_new_tokens, method=method,
                           prm_cache=prm_cache, backend=args.backend, device="cpu", output_dir=str(out), seed=0,
                           gpu_memory_utilization=0.2, enforce_eager=True)  # vLLM: a share of a shared CPU's RAM
    models: Any = Models()
    if args.generator == "steps":
        models = with_generator(StepWriter(AutoTokenizer.from_pretrained(generator), STEP_SEPARATORS[args.format]))
    results = pipeline.run(config, models=models)
    stages = read_json(out / "timings.json")["stages"]
    spent = [stages[s] for s in ("samples", "scores") if s in stages]
    compute = results["compute"]
    return {"method": method, "prm_cache": prm_cache if method != "best_of_n" else None,
            "generated_tokens": compute["generated_tokens"], "prm_tokens": compute["prm_tokens"],
            "prm_cached_tokens": compute["prm_cached_tokens"],
            "prm_tokens_per_generated_token": round(compute["prm_tokens"] / compute["generated_tokens"], 2),
            "prm_s": round(sum(s["prm_s"] for s in spent), 2), "wall_s": round(sum(s["wall_s"] for s in spent), 2),
            "tree": read_jsonl(out / "tree.jsonl") if (out / "tree.jsonl").exists() else []}


def with_generator(backend: Any) -> Any:
    """The run's real models (the PRM loads from its folder), with ``backend`` as the generator."""
    from bestofn.pipeline import Models

    class WithGenerator(Models):
        def generator(self, config: Any) -> Any:
            return backend

    return WithGenerator()


def scored_texts(tree: list[dict]) -> dict[tuple[str, str], list[float]]:
    """Each node's step rewards by (problem, the text the PRM scored: its path's steps and its lookahead)."""
    nodes = {(n["unique_id"], n["beam_id"]): n for n in tree}

    def text(n: dict) -> str:
        parent = nodes.get((n["unique_id"], n["parent_id"])) if n["parent_id"] is not None else None
        return (text(parent) if parent else "") + n["text"]

    return {(n["unique_id"], text(n) + n["lookahead_text"]): n["step_rewards"] for n in tree}


def compare_trees(off: list[dict], on: list[dict]) -> dict:
    """Whether both runs grew the same tree, and the largest reward difference over the texts both scored.

    Where two candidates' scores tie within float rounding, the runs may rank them differently (as another
    batch size may) and grow different trees from there; every text both runs scored is still compared.
    """
    a, b = scored_texts(off), scored_texts(on)
    common = [k for k in a if k in b]
    diffs = [abs(p - q) for k in common for p, q in zip(a[k], b[k], strict=True)]
    return {"same_tree": [n["text"] for n in off] == [n["text"] for n in on], "texts_compared": len(common),
            "texts": (len(a), len(b)), "max_reward_diff": max(diffs, default=0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a MATH-500 .jsonl file")
    parser.add_argument("--problems", type=int, default=3)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--beam-width", type=int, default=2)
    parser.add_argument("--num-iterations", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--format", default="skywork", help="the PRM's format (skywork, qwen2.5-math-prm, rlhflow, "
                                                            "math-shepherd)")
    parser.add_argument("--generator", choices=("steps", "tiny"), default="steps")
    parser.add_argument("--backend", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()

    from bestofn.prm import STEP_SEPARATORS

    runs = []
    with tempfile.TemporaryDirectory() as work:
        generator, prm = write_models(Path(work), args.format, STEP_SEPARATORS[args.format])
        plan = [("best_of_n", True), ("beam_search", False), ("beam_search", True), ("dvts", False), ("dvts", True)]
        for method, flag in plan:
            runs.append(run_once(args, generator, prm, method, flag, Path(work) / f"{method}-{flag}"))
    for off, on in ((runs[1], runs[2]), (runs[3], runs[4])):
        on["parity_with_off"] = compare_trees(off["tree"], on["tree"])
    bon = runs[0]["prm_tokens_per_generated_token"]
    print(f"{args.problems} problems, n={args.n}, M={args.beam_width}, {args.num_iterations} iterations, "
          f"{args.max_new_tokens} new tokens, {args.format} PRM, {args.generator} generator on {args.backend}")
    print("| method | prm_cache | generated tokens | PRM tokens | cached tokens | PRM tokens / gen token | vs Best-of-N "
          "| PRM s | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        r.pop("tree")
        cache = "-" if r["prm_cache"] is None else ("on" if r["prm_cache"] else "off")
        print(f"| {r['method']} | {cache} | {r['generated_tokens']:,} | {r['prm_tokens']:,} | {r['prm_cached_tokens']:,} "
              f"| {r['prm_tokens_per_generated_token']} | {r['prm_tokens_per_generated_token'] / bon:.2f}x "
              f"| {r['prm_s']} | {r['wall_s']} |")
    for r in runs:
        if "parity_with_off" in r:
            print(f"{r['method']}, cache on vs off: {r['parity_with_off']}")
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": vars(args), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
