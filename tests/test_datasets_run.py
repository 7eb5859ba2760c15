"""A tiny end-to-end run per benchmark: its excerpt file, in its own layout, through the real pipeline with
scripted solutions whose answers are known (bestofn.testing.scripted), so grading and selection are checked
against golds worked out by hand.

The pipeline loads with ``bestofn.data.load_problems(cfg.dataset, cfg.dataset_split, cfg.dataset_format)`` and
grades with each problem's ``answer_kind``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bestofn import pipeline
from bestofn.config import BestOfNConfig
from bestofn.data import load_problems
from bestofn.io import read_json, read_jsonl
from bestofn.report import analysis as A
from bestofn.report import run_report
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedProblem, Solution, scripted_models

DATA = Path(__file__).resolve().parent / "data"

# Per benchmark: for each problem of its excerpt, an answer that is right but spelled otherwise than the gold,
# and one that is wrong (worked out by hand from the excerpt files; the golds are in test_datasets.EXPECTED).
ANSWERS = {
    "gsm8k": [("\\$18", "19"), ("3 \\text{ bolts}", "2"), ("70,000", "7000"), ("540.0", "545"), ("20", "21"),
              ("064", "46"), ("2,125 blocks", "2.125")],  # "2,125 blocks" is right only as an integer answer
    "aime24": [("204", "240"), ("113", "13"), ("371", "173"), ("25", "52")],
    "aime25": [("70", "7"), ("117", "171"), ("204", "402"), ("735", "753"), ("49", "94")],
    "amc23": [("27", "27.5"), ("36", "63"), ("45", "54"), ("3,159", "3195"), ("36.0", "6"), ("7", "77")],
    "minerva_math": [("1.6", "16"), ("4.5 \\times 10^{33}", "4.5 \\times 10^{34}"), ("41.8", "48.1"),
                     ("6 \\times 10^{-3}", "0.06"), ("100", "10"), ("3.83e35", "3.83e36")],
    "olympiadbench": [("2", "3"), ("\\frac{1}{2n+2}", "\\frac{1}{2n}"), ("(2,7,13), (4,5,7), (1,8,19)", "(1,8,19)"),
                      ("84, 69", "69"), ("f(x)=x+1, f(x)=-1", "f(x)=-1"), ("(-\\infty,0)\\cup\\{1\\}", "(-\\infty,0]"),
                      ("\\left[\\frac12, 8\\right]", "[0.5, 8)")],
}


@pytest.mark.parametrize("name", list(ANSWERS))
def test_a_tiny_run_per_benchmark(tmp_path, tiny_generator_dir, tiny_prm_dir, name):
    """Each problem: greedy wrong; samples right (.9), right (.8), wrong (.3). So every selection rule and pass@3
    solve all problems (100%) and greedy none (0%)."""
    dataset = DATA / f"{name}_excerpt.jsonl"
    texts = [p.problem for p in load_problems(str(dataset), dataset_format=name)]
    assert len(texts) == len(ANSWERS[name])
    script = Script([ScriptedProblem(text, Solution(wrong, (0.5, 0.5)),
                                     [Solution(right, (0.5, 0.9)), Solution(right, (0.5, 0.8)), Solution(wrong, (0.5, 0.3))])
                     for text, (right, wrong) in zip(texts, ANSWERS[name])])
    config = BestOfNConfig(generator=str(tiny_generator_dir), prm=str(tiny_prm_dir), dataset=str(dataset),
                           dataset_format=name, num_problems="all", n=3, max_new_tokens=64, device="cpu",
                           output_dir=str(tmp_path / "run"))
    pipeline.run(config, models=scripted_models(script, make_tokenizer()))
    problems = read_jsonl(tmp_path / "run" / "problems.jsonl")
    assert len(problems) == len(texts) and all(p["level"] == 0 for p in problems)
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert [s["correct"] for s in samples] == [True, True, False] * len(texts)
    accuracy = {m: (a["correct"], a["total"]) for m, a in read_json(tmp_path / "run" / "results.json")["accuracy"].items()}
    k = len(texts)
    assert accuracy == {"greedy": (0, k), "majority": (k, k), "naive_bon": (k, k), "weighted_bon": (k, k),
                        "pass_at_n": (k, k)}
    md = run_report.build_report(A.analyze(tmp_path / "run", subsets=10, bootstrap=20)).markdown()
    assert md.startswith(f"# Best-of-3 on {name}_excerpt ({k} problems): ")  # a file's layout names no benchmark
    assert "the benchmark has no difficulty levels: every problem was eligible" in md
    assert md.count("no difficulty levels") == 1 and "stratified by level" not in md  # setup lines that agree
    assert "level not given" not in md and "level 0" not in md and "## Per level" not in md  # no level views
