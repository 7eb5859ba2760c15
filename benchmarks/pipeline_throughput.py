"""The whole pipeline, timed stage by stage, on random-weight checkpoints in the real shapes (no Hub needed).

It writes a generator (``Qwen2ForCausalLM``) and a Skywork-format PRM with ``bestofn.testing``'s builders and
tokenizer, in one of two shapes:

- ``qwen2.5-1.5b``: Qwen2.5-1.5B(-Instruct) and Skywork-o1-Open-PRM-Qwen-2.5-1.5B: hidden 1536, 28 layers, 12
  attention heads, 2 KV heads, MLP 8960; the vocabulary is the test tokenizer's 512 tokens (as in issue 12's
  baseline: 128 s on an H200 for 20 problems x 16 x 512 tokens), or 151,936 with ``--full-vocab``;
- ``small``: the same proportions scaled down for a CPU (hidden 256, 4 layers, 4 heads, 2 KV heads, MLP 1536).

Then it runs ``bestofn run`` in this process (``bestofn.cli.main``, from a recipe file it writes) on MATH-500
problems, which prints the per-stage cost table (see ``bestofn/costs.py``). With ``--compare-eager`` it runs the
pipeline a second time with ``compile_generation: off`` (eager decoding, same batches), prints both tables
and the speed-up per stage, and checks that greedy decoding wrote the same solutions both ways.

Random weights never write a right answer and rarely stop early, so every solution runs to (or near)
max_new_tokens: the numbers measure cost, not accuracy.

Usage (from the repository root):

    python benchmarks/pipeline_throughput.py --shape small                  # CPU, a few minutes
    python benchmarks/pipeline_throughput.py --shape qwen2.5-1.5b --device cuda --compare-eager --out gpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bestofn import costs  # noqa: E402
from bestofn.report import compute  # noqa: E402
from bestofn.backends import resolve_device, resolve_dtype  # noqa: E402
from bestofn.cli import main as bestofn_main  # noqa: E402
from bestofn.config import SWITCH  # noqa: E402
from bestofn.io import read_jsonl  # noqa: E402
from bestofn.testing import make_tiny_generator, make_tiny_prm  # noqa: E402

SHARED_MATH500 = Path(__file__).resolve().parents[2] / "shared" / "data" / "math500.jsonl"
FULL_VOCAB = 151936  # Qwen2.5's
SHAPES = {
    "qwen2.5-1.5b": {"hidden_size": 1536, "layers": 28, "heads": 12, "kv_heads": 2, "intermediate_size": 8960,
                     "max_positions": 32768},
    "small": {"hidden_size": 256, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate_size": 1536,
              "max_positions": 4096},
}
# Default workload per shape: issue 12's GPU baseline, and a CPU run of a few minutes.
WORKLOADS = {"qwen2.5-1.5b": {"problems": 20, "n": 16, "max_new_tokens": 512},
             "small": {"problems": 8, "n": 4, "max_new_tokens": 64}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="small")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--dtype", default="auto", help="auto: bfloat16 on GPU, float32 on CPU (as the pipeline)")
    p.add_argument("--problems", type=int, help="MATH-500 problems (levels 1-3); default per shape")
    p.add_argument("--n", type=int, help="samples per problem; default per shape")
    p.add_argument("--max-new-tokens", type=int, help="default per shape")
    p.add_argument("--compile-generation", choices=SWITCH, default="auto")
    p.add_argument("--generation-batch-tokens", type=int, help="token budget per batch (default: from free memory)")
    p.add_argument("--full-vocab", action="store_true", help=f"a {FULL_VOCAB:,}-token vocabulary (default: 512)")
    p.add_argument("--compare-eager", action="store_true",
                   help="run again with compile_generation: off; print both tables and check greedy matches")
    p.add_argument("--dataset", default=str(SHARED_MATH500) if SHARED_MATH500.exists() else "HuggingFaceH4/MATH-500")
    p.add_argument("--work-dir", help="where checkpoints and run directories go (default: a temporary folder)")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    for key, value in WORKLOADS[args.shape].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def write_checkpoints(args: argparse.Namespace, folder: Path, device: str, dtype: torch.dtype) -> float:
    """Random generator + Skywork-format PRM in the shape, built on ``device``; returns the seconds it took."""
    start = time.perf_counter()
    shape = {**SHAPES[args.shape], "vocab_size": FULL_VOCAB if args.full_vocab else None, "device": device,
             "dtype": dtype}
    make_tiny_generator(folder / "generator", **shape)
    make_tiny_prm(folder / "prm", **shape)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return time.perf_counter() - start


def run_pipeline(args: argparse.Namespace, folder: Path, name: str, compile_generation: str) -> dict:
    """``bestofn run`` from a recipe file; returns its wall time and per-stage costs."""
    recipe = {"generator": str(folder / "generator"), "prm": str(folder / "prm"), "dataset": args.dataset,
              "num_problems": args.problems, "n": args.n, "max_new_tokens": args.max_new_tokens,
              "device": args.device, "dtype": args.dtype, "compile_generation": compile_generation,
              "generation_batch_tokens": args.generation_batch_tokens, "output_dir": str(folder / name)}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    print(f"\n=== {name}: bestofn run --config {path}", flush=True)
    start = time.perf_counter()
    if bestofn_main(["run", "--config", str(path)]) != 0:
        raise SystemExit(f"bestofn run failed for {name}")
    wall = time.perf_counter() - start
    totals = compute.stage_totals(folder / name)
    return {"name": name, "compile_generation": compile_generation, "wall_s": round(wall, 1),
            "stages": {stage: c.to_dict() for stage, c in totals.items()},
            "greedy": [g["text"] for g in read_jsonl(folder / name / "greedy.jsonl")]}


def greedy_agreement(a: list[str], b: list[str]) -> dict:
    """How many greedy solutions are identical, and where the others first differ (characters)."""
    differ = [next((i for i, (x, y) in enumerate(zip(s, t)) if x != y), min(len(s), len(t)))
              for s, t in zip(a, b) if s != t]
    return {"identical": len(a) - len(differ), "total": len(a), "first_difference_chars": differ}


def environment(device: str, dtype: torch.dtype) -> dict:
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "device": costs.device_name(device), "dtype": str(dtype).removeprefix("torch."), "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    with contextlib.ExitStack() as stack:
        folder = Path(args.work_dir) if args.work_dir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        build_s = write_checkpoints(args, folder, device, dtype)
        runs = [run_pipeline(args, folder, "run", args.compile_generation)]
        if args.compare_eager:
            runs.append(run_pipeline(args, folder, "eager", "off"))
    report = {"shape": args.shape, "vocab": FULL_VOCAB if args.full_vocab else 512,
              "workload": {"problems": args.problems, "n": args.n, "max_new_tokens": args.max_new_tokens},
              "environment": environment(device, dtype), "checkpoint_build_s": round(build_s, 1), "runs": runs}
    if args.compare_eager:
        report["greedy_agreement"] = greedy_agreement(runs[0]["greedy"], runs[1]["greedy"])
    print(format_report(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def format_report(report: dict) -> str:
    w = report["workload"]
    lines = [f"\npipeline throughput: {report['shape']} shape (random weights, vocabulary {report['vocab']:,}), "
             f"{w['problems']} problems x N={w['n']} x {w['max_new_tokens']} new tokens",
             f"environment: {json.dumps(report['environment'])}; checkpoints written in {report['checkpoint_build_s']} s"]
    for run in report["runs"]:
        totals = {s: costs.Cost.from_dict(c) for s, c in run["stages"].items()}
        lines += [f"\n{run['name']} (compile_generation: {run['compile_generation']}): {run['wall_s']} s in all",
                  compute.format_cost_table(totals)]
    if len(report["runs"]) == 2:
        fast, slow = report["runs"]
        lines.append("\nspeed-up over eager (wall s): " + ", ".join(
            f"{s} {slow['stages'][s]['wall_s'] / fast['stages'][s]['wall_s']:.2f}x"
            for s in ("greedy", "samples") if s in fast["stages"] and s in slow["stages"])
            + f", whole run {slow['wall_s'] / fast['wall_s']:.2f}x")
        g = report["greedy_agreement"]
        lines.append(f"greedy solutions identical to eager decoding: {g['identical']}/{g['total']}"
                     + (f" (the others first differ at characters {g['first_difference_chars']})"
                        if g["first_difference_chars"] else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
