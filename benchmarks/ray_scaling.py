"""Wall time of one run without Ray, and on a local Ray cluster with 1, 2, ... workers; same results or not.

Tiny random models in the real formats (written to a temp folder), the transformers backend on CPU, the
MATH-500 file of the repository's shared data. Each run writes its own run directory; the script compares
their ``greedy.jsonl``, ``samples.jsonl`` and ``results.json`` byte for byte with the run without Ray and
prints the wall time of each (Ray's own start-up is timed apart, once).

    python benchmarks/ray_scaling.py                            # 8 problems x N=8 x 64 tokens, 1 and 2 workers
    python benchmarks/ray_scaling.py --workers 1,2,4 --num-cpus 4 --num-problems 16
    python benchmarks/ray_scaling.py --method beam_search     # a search (tree.jsonl compared too)

On a machine with few cores, Ray adds a fixed cost per stage (starting the actors, importing torch in them)
that the tiny models do not pay back; the numbers say how large that cost is and whether workers overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bestofn import pipeline  # noqa: E402
from bestofn.config import BestOfNConfig  # noqa: E402
from bestofn.methods import BEST_OF_N, RUN_METHODS  # noqa: E402
from bestofn.testing import make_tiny_generator, make_tiny_prm  # noqa: E402

COMPARED = ("greedy.jsonl", "samples.jsonl", "results.json")
SEARCH_COMPARED = (*COMPARED, "tree.jsonl")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts to time on Ray")
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    p.add_argument("--num-problems", type=int, default=8)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--chunk-sequences", type=int, default=16, help="at most this many solutions per generation chunk")
    p.add_argument("--method", default=BEST_OF_N, choices=RUN_METHODS)
    p.add_argument("--beam-width", type=int, default=4, help="M, for beam search and DVTS")
    p.add_argument("--num-iterations", type=int, default=4, help="search iterations, for beam search and DVTS")
    p.add_argument("--dataset", default=str(ROOT.parent / "shared" / "data" / "math500.jsonl"))
    p.add_argument("--out", help="also write the results as JSON here")
    return p.parse_args(argv)


def timed_run(config: BestOfNConfig, chunk_sequences: int) -> float:
    models = pipeline.Models()
    models.chunk_sequences = chunk_sequences  # small chunks, so that several workers have work (Models.chunk_size)
    start = time.perf_counter()
    pipeline.run(config, models=models)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import ray

    work = Path(tempfile.mkdtemp(prefix="ray_scaling_"))
    base = dict(generator=str(make_tiny_generator(work / "generator")), prm=str(make_tiny_prm(work / "prm")),
                dataset=args.dataset, num_problems=args.num_problems, n=args.n, max_new_tokens=args.max_new_tokens,
                temperature=1.0, device="cpu", method=args.method)
    if args.method != BEST_OF_N:
        base.update(beam_width=args.beam_width, num_iterations=args.num_iterations)
    compared = COMPARED if args.method == BEST_OF_N else SEARCH_COMPARED
    rows = [{"run": "no Ray", "seconds": timed_run(BestOfNConfig(**base, output_dir=str(work / "local")), args.chunk_sequences)}]
    start = time.perf_counter()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    ray_start = time.perf_counter() - start
    for k in [int(x) for x in args.workers.split(",")]:
        out = work / f"ray{k}"
        seconds = timed_run(BestOfNConfig(**base, output_dir=str(out), ray_address="auto", workers=k), args.chunk_sequences)
        same = all((out / f).read_bytes() == (work / "local" / f).read_bytes() for f in compared)
        rows.append({"run": f"Ray, {k} worker{'s' * (k > 1)}", "seconds": seconds, "same_results": same})
    ray.shutdown()
    report = {"work": {**{k: v for k, v in base.items() if k not in ("generator", "prm", "dataset")},
                       "chunk_sequences": args.chunk_sequences},
              "ray_init_seconds": round(ray_start, 1), "runs": rows}
    print(f"{args.method}: {args.num_problems} problems x N={args.n} x {args.max_new_tokens} new tokens; ray.init({args.num_cpus} CPUs) "
          f"took {ray_start:.1f} s")
    for r in rows:
        same = "" if "same_results" not in r else f"   same {'/'.join(compared)} as no Ray: {r['same_results']}"
        print(f"  {r['run']:<16} {r['seconds']:7.1f} s{same}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
