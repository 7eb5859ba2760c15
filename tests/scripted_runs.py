"""Run directories with known answers, made by the real pipeline on scripted solutions (bestofn.testing.scripted).

A test describes each problem by a short spec (gold answer, greedy answer, each sample's answer and step
rewards); :func:`build_run` writes the problems as a dataset file, scripts the generator and the PRM to
produce exactly those solutions, and runs :func:`bestofn.pipeline.run` into a run directory, so grading,
selection and results.json come from the pipeline itself. :func:`synthetic_specs` makes a realistic run
(many problems, N=16, a few answer groups, rewards correlated with correctness) for looking at the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bestofn import pipeline
from bestofn.config import BestOfNConfig
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedProblem, Solution, scripted_models


def sample(answer: str | None, *steps: float, finish: str = "stop") -> Solution:
    """One sampled solution: its answer (None: no box) and its step rewards (the last is its reward with `last`)."""
    return Solution(answer, tuple(steps), finish)


def problem(uid: str, gold: str, greedy: str | None, samples: list[Solution], level: int = 1,
            subject: str = "Algebra") -> dict:
    return {"uid": uid, "gold": gold, "greedy": greedy, "samples": samples, "level": level, "subject": subject}


def problem_text(uid: str) -> str:
    return f"Problem {uid}: compute the requested value."


def build_run(path: Path, specs: list[dict], models: tuple[Path, Path], how: str = "last",
              temperature: float = 0.8, dataset_name: str | None = None, **settings) -> Path:
    """Run the pipeline on ``specs`` (see :func:`problem`) into ``path``; ``models`` are the tiny model folders.
    The problems are written to ``DATASET_NAME.jsonl`` beside ``path`` (default: ``<path name>-problems``);
    ``settings``: other config keys (e.g. ``adaptive="prm"``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset = path.parent / f"{dataset_name or path.name + '-problems'}.jsonl"
    dataset.write_text("".join(
        json.dumps({"unique_id": s["uid"], "problem": problem_text(s["uid"]), "answer": s["gold"], "level": s["level"],
                    "subject": s["subject"], "solution": "..."}) + "\n" for s in specs))
    script = Script([ScriptedProblem(problem_text(s["uid"]), Solution(s["greedy"], (0.5, 0.5)), list(s["samples"]))
                     for s in specs])
    generator, prm = models
    config = BestOfNConfig(generator=str(generator), prm=str(prm), dataset=str(dataset),
                           levels=sorted({s["level"] for s in specs}), num_problems=len(specs),
                           n=len(specs[0]["samples"]), temperature=temperature, max_new_tokens=512, device="cpu",
                           aggregation=how, output_dir=str(path), **settings)
    pipeline.run(config, models=scripted_models(script, make_tokenizer()))
    return path


# --------------------------------------------------------------------------------------------------------
# A realistic synthetic run
# --------------------------------------------------------------------------------------------------------
def _steps(rng: np.random.Generator, right: bool) -> tuple[float, ...]:
    """Step rewards that drift up for right solutions and down for wrong ones (noisy, in (0, 1))."""
    k = int(rng.integers(3, 9))
    start = rng.uniform(0.55, 0.8)
    drift = rng.uniform(0.0, 0.04) if right else -rng.uniform(0.02, 0.09)
    values = start + drift * np.arange(k) + rng.normal(0, 0.05, k)
    values[-1] = rng.beta(8, 2) if right else rng.beta(2, 5)  # the final step judges the whole solution
    return tuple(float(round(min(max(v, 0.01), 0.99), 3)) for v in values)


def synthetic_specs(num_problems: int = 60, n: int = 16, seed: int = 0) -> list[dict]:
    """Problems with known properties: ~1/4 unanimous and right (some answers spelled "N.0", which only
    math-verify accepts),
    a few unanimous and wrong, ~1/6 with no right sample, the rest mixed with 1-3 wrong answer groups; a few
    samples without an answer or cut off; one problem where three well-scored right answers are outvoted by
    five lower-scored wrong ones."""
    rng = np.random.default_rng(seed)
    specs = []
    for k in range(num_problems):
        gold = str(10 + 3 * k)
        wrongs = [str(int(gold) + d) for d in (1, -2, 5)]
        level = 1 + k % 3
        kind = rng.choice(["unanimous", "unanimous_wrong", "none_right", "mixed"], p=[0.25, 0.07, 0.16, 0.52])
        if k == 0:
            kind = "outvoted"
        samples = []
        if kind == "outvoted":
            samples = [sample(gold, 0.8, 0.88)] * 3 + [sample(wrongs[0], 0.7, 0.73)] * 5 + [
                sample(wrongs[1], 0.6, 0.4) for _ in range(n - 8)]
            p_right = 3 / n
        else:
            p_right = {"unanimous": 1.0, "unanimous_wrong": 0.0, "none_right": 0.0}.get(kind, rng.uniform(0.15, 0.85))
            groups = 1 if kind == "unanimous_wrong" else int(rng.integers(1, 4))
            weights = rng.dirichlet(np.ones(groups))
            for _ in range(n):
                right = rng.random() < p_right
                spelled = f"{gold}.0" if kind == "unanimous" and rng.random() < 0.2 else gold  # one group, two spellings
                answer = spelled if right else wrongs[int(rng.choice(groups, p=weights))]
                roll = rng.random()
                if roll < 0.04:
                    samples.append(sample(None, *_steps(rng, False)))
                elif roll < 0.07:
                    samples.append(sample(answer, *_steps(rng, False), finish="length"))
                else:
                    samples.append(sample(answer, *_steps(rng, right)))
        greedy = gold if rng.random() < min(1.0, p_right + 0.05) else wrongs[0]
        if greedy == gold and k % 4 == 1:
            greedy = f"{gold}.0"  # right, but only math-verify says so (string matching does not)
        specs.append(problem(f"synthetic/{k:03d}", gold, greedy, samples, level=level,
                             subject=["Algebra", "Number Theory", "Geometry"][k % 3]))
    return specs
