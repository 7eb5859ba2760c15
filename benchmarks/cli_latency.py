"""Command-line latency: how long ``bestofn --help`` and ``bestofn run --help`` take, and what they import.

Each command runs ``--repeats`` times in a fresh Python process (as a user's shell starts it); the best and
the median wall times are reported, with the heavy libraries the process imported (there should be none: torch,
transformers, datasets, matplotlib and math-verify are imported inside the command handlers only). The target
is under 1 s per command. ``python -X importtime`` shows where the time goes if it is missed:

    python -X importtime -m bestofn.cli run --help 2>&1 >/dev/null | sort -t'|' -k2 -n | tail

Usage (from the repository root):

    python benchmarks/cli_latency.py                 # 5 runs of each command
    python benchmarks/cli_latency.py --repeats 20 --out cli_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["run", "--help"], ["sweep", "--help"], ["push", "--help"])
HEAVY = ("torch", "transformers", "datasets", "matplotlib", "math_verify", "numpy", "vllm", "huggingface_hub")
TARGET_S = 1.0
# Runs the command's main() and then reports which heavy modules it left in sys.modules (help exits by SystemExit).
PROBE = """
import sys
from bestofn.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules) + "\\n")
"""


def time_command(argv: list[str], repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bestofn.cli", *argv], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"bestofn {' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")
    probe = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], env=env, capture_output=True,
                           text=True)
    heavy = next((line[6:] for line in probe.stderr.splitlines() if line.startswith("HEAVY=")), "?")
    return {"command": "bestofn " + " ".join(argv), "best_s": min(times), "median_s": statistics.median(times),
            "heavy_imports": [m for m in heavy.split(",") if m]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (default: 5)")
    parser.add_argument("--out", help="also write the rows as JSON to this file")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "bestofn.cli", "--help"], capture_output=True,  # compile .pyc files first
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    rows = [time_command(argv, args.repeats) for argv in COMMANDS]
    print(f"{'command':<24} {'best s':>7} {'median s':>9}  heavy imports   (target: < {TARGET_S:g} s)")
    for r in rows:
        flag = "" if r["median_s"] < TARGET_S else "  <- over target"
        print(f"{r['command']:<24} {r['best_s']:7.3f} {r['median_s']:9.3f}  {','.join(r['heavy_imports']) or 'none'}{flag}")
    if args.out:
        Path(args.out).write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
