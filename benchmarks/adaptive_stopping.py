"""Adaptive Best-of-N's stopping rules on finished completions: samples saved against accuracy kept.

Imports completions with rewards (`bestofn import`, search-and-learn's layout: problem, answer, completions,
scores per completion) into a run directory, replays every stopping rule of `bestofn run --adaptive` on them
with the report's stopping study (bestofn/report/adaptive.py: seeded random orders of each problem's own
samples), and checks issue 27's targets for weighted Best-of-N:

- the `prm` rule keeps the fixed-N accuracy within 1 point with at most 60% of the samples;
- at the accuracy it reaches, `beta` needs more samples than `prm` (its cheapest setting as accurate).

Two sources:

    # real completions in search-and-learn's layout (e.g. a parquet of HuggingFaceH4's published
    # best-of-N completions, where the Hub is reachable), all their problems
    python benchmarks/adaptive_stopping.py --completions FILE.parquet --levels 1,2,3 --out adaptive.json
    # MATH-500-shaped scripted data (no model): MATH-500's problems and gold answers, samples drawn from a
    # stated model of a 1.5B generator and a PRM; the numbers are about the rules, not about any model
    python benchmarks/adaptive_stopping.py --scripted ../shared/data/math500.jsonl --levels 1,2,3

The scripted model, per problem of level L: each sample is right with probability p ~ Beta(a_L, b_L) (mean
0.85, 0.72, 0.58, 0.42, 0.22 for levels 1-5, concentration 3); a wrong sample picks one of 1-4 distractor
answers with Dirichlet(1) weights; 5% of samples end without an answer; the PRM's last-step reward is
Beta(5, 2) for a right sample and Beta(2, 3) for a wrong one, except on 10% of problems, where it prefers the
most common distractor (Beta(5, 2)) and doubts the right answer (Beta(2, 3)).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bestofn.importer import import_completions
from bestofn.report import adaptive as S
from bestofn.report import analysis as A

RIGHT_RATE = {1: 0.85, 2: 0.72, 3: 0.58, 4: 0.42, 5: 0.22}
CONCENTRATION = 3.0
NO_ANSWER = 0.05
MISLED = 0.10  # problems where the PRM prefers a wrong answer


def scripted_rows(dataset: Path, levels: list[int], n: int, seed: int) -> list[dict]:
    """MATH-500's problems of ``levels`` with N scripted completions each, in search-and-learn's layout."""
    rng = np.random.default_rng(seed)
    rows = []
    for line in dataset.read_text().splitlines():
        p = json.loads(line)
        if p["level"] not in levels:
            continue
        mean = RIGHT_RATE[p["level"]]
        right = rng.beta(mean * CONCENTRATION, (1 - mean) * CONCENTRATION)
        distractors = [str(90001 + 7 * k + len(rows)) for k in range(int(rng.integers(1, 5)))]
        weights = rng.dirichlet(np.ones(len(distractors)))
        misled = rng.random() < MISLED
        completions, scores = [], []
        for _ in range(n):
            if rng.random() < NO_ANSWER:
                answer, good = None, False
            elif rng.random() < right:
                answer, good = p["answer"], not misled
            else:
                k = int(rng.choice(len(distractors), p=weights))
                answer, good = distractors[k], misled and k == int(weights.argmax())
            reward = rng.beta(5, 2) if good else rng.beta(2, 3)
            text = "We work it out step by step.\n\n" + (f"The final answer is $\\boxed{{{answer}}}$." if answer
                                                          else "We could not finish.")
            completions.append(text)
            scores.append([round(float(rng.uniform(0.4, 0.9)), 4), round(float(reward), 4)])
        rows.append({"problem": p["problem"], "answer": p["answer"], "unique_id": p["unique_id"], "level": p["level"],
                     "subject": p["subject"], "completions": completions, "scores": scores})
    return rows


def frontier(study: S.Study, rule: str, selection: str) -> list[S.Entry]:
    return sorted((e for e in study.entries if e.rule == rule and e.selection == selection), key=lambda e: e.mean_samples)


def cheapest(study: S.Study, rule: str, selection: str, accuracy: float) -> S.Entry | None:
    """The rule's setting with the fewest samples among those at least as accurate as ``accuracy``."""
    return next((e for e in frontier(study, rule, selection) if e.accuracy.value >= accuracy - 1e-12), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--completions", help="a .jsonl/.parquet of completions with scores (search-and-learn layout)")
    source.add_argument("--scripted", help="MATH-500 .jsonl: script MATH-500-shaped completions from it")
    p.add_argument("--levels", default="1,2,3")
    p.add_argument("--n", type=int, default=16, help="scripted: samples per problem")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--orders", type=int, default=S.DEFAULT_ORDERS, help="random orders per problem")
    p.add_argument("--work-dir", help="keep the imported run directory here")
    p.add_argument("--out", help="write the study's entries and the verdict as JSON")
    args = p.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="adaptive-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    source_file = args.completions
    if args.scripted:
        source_file = str(work / "scripted.jsonl")
        rows = scripted_rows(Path(args.scripted), levels, args.n, args.seed)
        Path(source_file).write_text("".join(json.dumps(r) + "\n" for r in rows))
    start = time.perf_counter()
    run_dir = import_completions(source_file, work / "run", overwrite=True)
    run = A.load_run_data(run_dir)
    if args.completions:  # keep the asked-for levels of a real file (an import keeps every problem)
        run.problems = [q for q in run.problems if q.level in levels or q.level == 0]
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    study = S.study(run, orders=args.orders, seed=args.seed)
    simulated = time.perf_counter() - start

    sel = "weighted_bon"
    full = study.fixed(sel)[-1]
    print(f"{len(run.problems)} problems, N={run.n}; import {loaded:.1f}s, study {simulated:.1f}s "
          f"({args.orders} orders per problem)")
    print(f"fixed N={run.n}: weighted {100 * full.accuracy.value:.2f}%, majority "
          f"{100 * study.fixed('majority')[-1].accuracy.value:.2f}%")
    print("rule  conf  batch  mean samples  share of N  weighted acc  majority acc")
    majority = {(e.rule, e.confidence, e.batch): e for e in study.entries if e.selection == "majority"}
    for e in sorted((e for e in study.entries if e.selection == sel and e.rule != "fixed"),
                    key=lambda e: (e.rule, e.batch, e.confidence or 0)):
        m = majority[(e.rule, e.confidence, e.batch)]
        print(f"{e.rule:5} {e.confidence or '-':>5} {e.batch:>5} {e.mean_samples:13.2f} {100 * e.mean_samples / run.n:10.0f}%"
              f" {100 * e.accuracy.value:12.2f}% {100 * m.accuracy.value:12.2f}%")
    # the targets
    within = [e for e in frontier(study, "prm", sel) if e.accuracy.value >= full.accuracy.value - 0.01]
    best = within[0] if within else None
    beta = cheapest(study, "beta", sel, best.accuracy.value) if best else None
    verdict = {
        "fixed_accuracy": full.accuracy.value, "n": run.n, "problems": len(run.problems),
        "prm": None if best is None else {"confidence": best.confidence, "batch": best.batch,
                                          "mean_samples": best.mean_samples, "accuracy": best.accuracy.value},
        "beta_at_equal_accuracy": None if beta is None else {"confidence": beta.confidence, "batch": beta.batch,
                                                             "mean_samples": beta.mean_samples,
                                                             "accuracy": beta.accuracy.value},
    }
    verdict["prm_within_1_point_at_most_60_percent"] = bool(best and best.mean_samples <= 0.6 * run.n)
    verdict["prm_fewer_samples_than_beta"] = bool(best and (beta is None or best.mean_samples < beta.mean_samples))
    print(json.dumps(verdict, indent=2))
    for line in S.findings(study):
        print("-", line)
    if args.out:
        Path(args.out).write_text(json.dumps({"verdict": verdict, "entries": study.to_json()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
