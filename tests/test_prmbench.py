"""`bestofn prm-bench`: ProcessBench's metrics worked by hand, step normalisation, parity with each PRM format's
own scorer on the tiny models, resumable chunks, and one line per bad input.

The metric tests score rows written here with a scripted scorer whose step rewards are known, so every
expected percentage below is worked out by hand from the table of rewards in ``SCRIPTED``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bestofn import cli
from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.prm import load_prm
from bestofn.prm.base import PRMScore
from bestofn.prm.formats import BLANK_LINE, LINE, MATH_SHEPHERD, QWEN_MATH_PRM, RLHFLOW, SKYWORK
from bestofn.bench.processbench import (BenchSettings, PRMIdentity, best_threshold, f1_sweep, join_steps, load_processbench,
                              normalise_step, plan_chunks, predict, run_prm_bench, step_auroc, subset_metrics)
from bestofn.report.prmbench_report import write_prm_bench_report
from bestofn.testing.models import make_tiny_math_shepherd_prm, make_tiny_qwen_math_prm, make_tiny_rlhflow_prm

EXCERPT = Path(__file__).resolve().parent / "data" / "processbench_excerpt.jsonl"

# id -> (label, step rewards the scripted PRM gives). At threshold 0.5 (prediction = first reward < 0.5):
#   gsm8k:  g0 L1 [.9,.3,.8] -> 1 right; g1 L0 [.6,.2] -> 1 wrong; g2 L-1 [.9,.7] -> -1 right; g3 L-1 [.8,.4] -> 1 wrong
#           error acc 1/2 = 50, correct acc 1/2 = 50, F1 50
#   math:   m0 L2 [.9,.9,.1] -> 2 right; m1 L-1 [.7] -> -1 right: 100 / 100 / F1 100
#   olympiadbench: o0 L1 [.2,.1] -> 0 wrong; o1 L-1 [.9,.3] -> 1 wrong: 0 / 0 / F1 0 (both 0)
#   omnimath: x0 L0 [.1,.9] -> 0 right; x1 L1 [.9,.4] -> 1 right; x2 L2 [.9,.9,.9] -> -1 wrong; x3 L-1 [.6,.55] -> -1
#           right: error acc 2/3 = 66.67, correct acc 100, F1 = 2*66.67*100/166.67 = 80
#   average F1 (50 + 100 + 0 + 80) / 4 = 57.5
SCRIPTED = {
    "gsm8k-0": (1, [0.9, 0.3, 0.8]), "gsm8k-1": (0, [0.6, 0.2]), "gsm8k-2": (-1, [0.9, 0.7]), "gsm8k-3": (-1, [0.8, 0.4]),
    "math-0": (2, [0.9, 0.9, 0.1]), "math-1": (-1, [0.7]),
    "olympiadbench-0": (1, [0.2, 0.1]), "olympiadbench-1": (-1, [0.9, 0.3]),
    "omnimath-0": (0, [0.1, 0.9]), "omnimath-1": (1, [0.9, 0.4]), "omnimath-2": (2, [0.9, 0.9, 0.9]),
    "omnimath-3": (-1, [0.6, 0.55]),
}


def scripted_rows() -> list[dict]:
    return [{"id": rid, "generator": "scripted", "problem": f"Problem {rid}?",
             "steps": [f"Step {k} of {rid}." for k in range(len(rewards))], "final_answer_correct": label == -1,
             "label": label} for rid, (label, rewards) in SCRIPTED.items()]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class ScriptedScorer:
    """Known step rewards per problem (``Problem <id>?``); counts the rows it is asked to score."""

    format = SKYWORK
    step_separator = LINE

    def __init__(self, rewards: dict[str, list[float]], truncated: dict[str, int] | None = None):
        self.rewards, self.truncated = rewards, truncated or {}
        self.scored: list[str] = []

    def score_detailed(self, problems, responses):
        out = []
        for problem, response in zip(problems, responses):
            rid = problem.removeprefix("Problem ").removesuffix("?")
            assert response.count(self.step_separator) + 1 == len(self.rewards[rid])
            self.scored.append(rid)
            keep = self.truncated.get(rid)
            rewards = self.rewards[rid][:keep] if keep is not None else self.rewards[rid]
            out.append(PRMScore(list(rewards), keep is not None))
        return out


def bench_config(tmp_path: Path, **overrides) -> BestOfNConfig:
    return BestOfNConfig(**{"prm": "scripted/prm", "device": "cpu", "output_dir": str(tmp_path / "bench"), **overrides})


@pytest.fixture
def scripted_data(tmp_path) -> Path:
    return write_rows(tmp_path / "scripted.jsonl", scripted_rows())


# --- metrics, worked by hand ---------------------------------------------------------------------------------------
def test_fixed_threshold_metrics_by_hand(tmp_path, scripted_data):
    scorer = ScriptedScorer({rid: r for rid, (_, r) in SCRIPTED.items()})
    results = run_prm_bench(BenchSettings(data=str(scripted_data)), bench_config(tmp_path), scorer=scorer)
    s = results["subsets"]
    assert list(s) == ["gsm8k", "math", "olympiadbench", "omnimath"]
    assert (s["gsm8k"]["error_accuracy"], s["gsm8k"]["correct_accuracy"], s["gsm8k"]["f1"]) == (50.0, 50.0, 50.0)
    assert (s["math"]["error_accuracy"], s["math"]["correct_accuracy"], s["math"]["f1"]) == (100.0, 100.0, 100.0)
    assert (s["olympiadbench"]["error_accuracy"], s["olympiadbench"]["correct_accuracy"], s["olympiadbench"]["f1"]) \
        == (0.0, 0.0, 0.0)
    assert s["omnimath"]["error_accuracy"] == pytest.approx(200 / 3)
    assert s["omnimath"]["correct_accuracy"] == 100.0
    assert s["omnimath"]["f1"] == pytest.approx(80.0)
    assert results["average_f1"] == pytest.approx(57.5)
    assert [s[k]["n"] for k in s] == [4, 2, 2, 4]
    assert results["threshold"] == {"rule": "fixed", "value": 0.5}
    predictions = [json.loads(line) for line in (tmp_path / "bench" / "predictions.jsonl").read_text().splitlines()]
    assert [p["prediction"] for p in predictions] == [1, 1, -1, 1, 2, -1, 0, 1, 0, 1, -1, -1]
    assert predictions[0] == {"id": "gsm8k-0", "subset": "gsm8k", "label": 1, "prediction": 1,
                              "step_rewards": [0.9, 0.3, 0.8], "prm_truncated": False}
    on_disk = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert on_disk["subsets"]["gsm8k"]["f1"] == 50.0 and on_disk["format"] == SKYWORK


def test_gsm8k_threshold_by_hand(tmp_path, scripted_data):
    """GSM8K F1 per candidate threshold (first reward < t):
    t=.2: all -1 -> F1 0;  t=.3: g0 -1, g1 1 -> error acc 0 -> 0;  t=.4: g0 1 ok, g1 1, g2 -1 ok, g3 -1 ok -> 50/100 -> 66.7;
    t=.6: g3 -> 1 -> 50/50 -> 50;  t=.7: g1 -> 0 ok -> 100/50 -> 66.7;  t=.8: g2 -> 1 -> 100/0 -> 0;  t=.9 and above: 0.
    Tie between .4 and .7: the lowest, .4. At .4 elsewhere: math 100; olympiadbench o0 -> 0, o1 -> 1: F1 0;
    omnimath x0 -> 0 ok, x1 -1 (0.4 is not < 0.4), x2 -1, x3 -1 ok: error acc 33.3, correct 100, F1 50.
    Average (66.67 + 100 + 0 + 50) / 4 = 54.17."""
    scorer = ScriptedScorer({rid: r for rid, (_, r) in SCRIPTED.items()})
    results = run_prm_bench(BenchSettings(data=str(scripted_data), threshold="gsm8k"), bench_config(tmp_path),
                            scorer=scorer)
    t = results["threshold"]
    assert (t["rule"], t["value"]) == ("gsm8k", 0.4)
    assert t["gsm8k_f1"] == pytest.approx(200 / 3)
    s = results["subsets"]
    assert s["gsm8k"]["f1"] == pytest.approx(200 / 3)
    assert s["math"]["f1"] == 100.0 and s["olympiadbench"]["f1"] == 0.0
    assert s["omnimath"]["error_accuracy"] == pytest.approx(100 / 3) and s["omnimath"]["f1"] == pytest.approx(50.0)
    assert results["average_f1"] == pytest.approx((200 / 3 + 100 + 0 + 50) / 4)
    # in-sample: GSM8K's own best is the chosen one; MATH's lowest threshold with F1 100 is 0.7 (at 0.1 m0 is missed)
    assert s["gsm8k"]["best_threshold_in_sample"] == {"threshold": 0.4, "f1": pytest.approx(200 / 3)}
    assert s["math"]["best_threshold_in_sample"] == {"threshold": 0.7, "f1": 100.0}


def test_average_over_the_chosen_subsets(tmp_path, scripted_data):
    """--subsets gsm8k,math: F1 50 and 100 (see SCRIPTED), average 75."""
    scorer = ScriptedScorer({rid: r for rid, (_, r) in SCRIPTED.items()})
    results = run_prm_bench(BenchSettings(data=str(scripted_data), subsets=["gsm8k", "math"]), bench_config(tmp_path),
                            scorer=scorer)
    assert list(results["subsets"]) == ["gsm8k", "math"] and results["average_f1"] == 75.0
    assert sorted(scorer.scored) == ["gsm8k-0", "gsm8k-1", "gsm8k-2", "gsm8k-3", "math-0", "math-1"]


def test_threshold_above_every_reward_is_a_candidate():
    """Row A (label 0, reward .9) is caught only by a threshold above .9; row B (label -1) had no step scored
    (cut at the context), so it is -1 at any threshold: F1 0 at .9, 100 just above it."""
    t, f1 = best_threshold([0, -1], [[0.9], []])
    assert t > 0.9 and t == pytest.approx(0.9) and f1 == 100.0


def test_step_auroc_by_hand():
    """GSM8K rows: positives (steps before the first error) .9 | - | .9 .7 | .8 .4, negatives (first wrong step) .3, .6;
    pairs won: against .3 all 5, against .6 four of 5 -> 9/10. Steps after the first error (g0's .8) do not count."""
    labels = [SCRIPTED[f"gsm8k-{k}"][0] for k in range(4)]
    rewards = [SCRIPTED[f"gsm8k-{k}"][1] for k in range(4)]
    assert step_auroc(labels, rewards) == pytest.approx(0.9)
    assert step_auroc([-1, 0], [[0.5], [0.5]]) == 0.5  # a tie counts half
    assert step_auroc([-1], [[0.5]]) is None  # no wrong step: undefined


def test_metrics_edge_cases_by_hand():
    assert predict([0.9, 0.5, 0.1], 0.5) == 2  # 0.5 is not below 0.5
    assert predict([], 0.5) == -1
    m = subset_metrics([-1, -1], [-1, 3])
    assert (m["error_accuracy"], m["correct_accuracy"], m["f1"]) == (None, 50.0, None)  # no wrong rows: undefined
    assert best_threshold([-1], [[0.4]]) is None


def test_vectorised_sweep_agrees_with_predict():
    """The threshold search's closed form equals predicting row by row (random rewards, labels, truncations)."""
    rng = np.random.default_rng(0)
    labels, rewards = [], []
    for _ in range(60):
        steps = int(rng.integers(1, 6))
        labels.append(int(rng.integers(-1, steps)))
        rewards.append([round(float(x), 1) for x in rng.random(int(rng.integers(0, steps + 1)))])  # some cut short
    thresholds = np.array([0.0, 0.1, 0.35, 0.5, 0.7, 1.0, 1.01])
    swept = f1_sweep(labels, rewards, thresholds)
    for t, f1 in zip(thresholds, swept):
        assert f1 == pytest.approx(subset_metrics(labels, [predict(r, t) for r in rewards])["f1"])


def test_truncated_rows_are_counted_and_predicted_on_scored_steps(tmp_path):
    rows = [{"id": "math-0", "generator": "g", "problem": "Problem math-0?", "steps": ["a", "b", "c"],
             "final_answer_correct": False, "label": 2},
            {"id": "math-1", "generator": "g", "problem": "Problem math-1?", "steps": ["a", "b"],
             "final_answer_correct": True, "label": -1}]
    data = write_rows(tmp_path / "cut.jsonl", rows)
    # math-0's third step (the wrong one, reward .1) did not fit: only [.9, .8] were scored, so it is predicted -1
    scorer = ScriptedScorer({"math-0": [0.9, 0.8, 0.1], "math-1": [0.9, 0.9]}, truncated={"math-0": 2})
    results = run_prm_bench(BenchSettings(data=str(data)), bench_config(tmp_path), scorer=scorer)
    assert results["truncated_rows"] == 1 and results["subsets"]["math"]["truncated"] == 1
    assert results["subsets"]["math"]["error_accuracy"] == 0.0
    predictions = [json.loads(line) for line in (tmp_path / "bench" / "predictions.jsonl").read_text().splitlines()]
    assert predictions[0]["prediction"] == -1 and predictions[0]["prm_truncated"] is True
    assert predictions[0]["step_rewards"] == [0.9, 0.8]


# --- steps ---------------------------------------------------------------------------------------------------------
def test_normalise_step_for_line_prms():
    assert normalise_step("a\n\nb\nc", LINE) == "a b c"
    assert normalise_step("", LINE) == " "
    assert join_steps(["x\ny", "z", "\n"], LINE) == "x y\nz\n "


def test_normalise_step_for_blank_line_prms():
    assert normalise_step("a\n\n\nb\nc", BLANK_LINE) == "a\nb\nc"
    assert normalise_step("\nstart\n", BLANK_LINE) == "start"
    assert join_steps(["p\n", "\nq", "\n\n"], BLANK_LINE) == "p\n\nq\n\n "


# --- each format's own scorer, on the tiny models ------------------------------------------------------------------
TRICKY_STEPS = [
    ["First line\nsecond line of the same step.", "Then $1 + 1 = 2$.\n\nStill the same step.", "So $\\boxed{2}$.\n"],
    ["\nA step that starts with a newline", "", "One ending with two\n\n", "\n\nand one after it."],
]


@pytest.fixture(scope="module")
def format_dirs(tmp_path_factory, tiny_prm_dir) -> dict[str, tuple[Path, str | None]]:
    base = tmp_path_factory.mktemp("prmbench-models")
    return {SKYWORK: (tiny_prm_dir, None), QWEN_MATH_PRM: (make_tiny_qwen_math_prm(base / "qwen"), None),
            RLHFLOW: (make_tiny_rlhflow_prm(base / "rlhflow"), RLHFLOW),
            MATH_SHEPHERD: (make_tiny_math_shepherd_prm(base / "shepherd"), MATH_SHEPHERD)}


@pytest.mark.parametrize("fmt", [SKYWORK, QWEN_MATH_PRM, RLHFLOW, MATH_SHEPHERD])
def test_parity_with_the_formats_own_scorer(tmp_path, format_dirs, fmt):
    """Through prm-bench (chunks, the PRM loaded from the config) each row gets exactly one reward per step, equal
    to the format's scorer called directly on the normalised, joined steps."""
    folder, format_flag = format_dirs[fmt]
    rows = [json.loads(line) for line in EXCERPT.read_text().splitlines()]
    rows += [{"id": f"olympiadbench-{k}", "generator": "g", "problem": "What is $1 + 1$?", "steps": steps,
              "final_answer_correct": True, "label": -1} for k, steps in enumerate(TRICKY_STEPS)]
    data = write_rows(tmp_path / "rows.jsonl", rows)
    config = bench_config(tmp_path, prm=str(folder), prm_format=format_flag)
    run_prm_bench(BenchSettings(data=str(data), chunk_rows=3), config)
    predictions = {json.loads(line)["id"]: json.loads(line)
                   for line in (tmp_path / "bench" / "predictions.jsonl").read_text().splitlines()}
    scorer = load_prm(str(folder), format=format_flag)
    for row in rows:
        response = join_steps(row["steps"], scorer.step_separator)
        direct = scorer.score([row["problem"]], [response])[0]
        got = predictions[row["id"]]["step_rewards"]
        assert len(got) == len(row["steps"]) == len(direct), row["id"]
        assert got == pytest.approx(direct, abs=1e-5)
        assert predictions[row["id"]]["prediction"] == predict(direct, 0.5)


# --- resume --------------------------------------------------------------------------------------------------------
def test_finished_chunks_are_not_rescored(tmp_path, scripted_data):
    rewards = {rid: r for rid, (_, r) in SCRIPTED.items()}
    settings = BenchSettings(data=str(scripted_data), chunk_rows=5)  # 12 rows: chunks of 5, 5 and 2
    first = ScriptedScorer(rewards)
    results = run_prm_bench(settings, bench_config(tmp_path), scorer=first)
    assert len(first.scored) == 12
    chunk_files = sorted((tmp_path / "bench" / "chunks" / "scores").glob("*.json"))
    assert len(chunk_files) == 3

    again = ScriptedScorer(rewards)
    assert run_prm_bench(settings, bench_config(tmp_path), scorer=again) == results
    assert again.scored == []  # every chunk was finished

    planned = plan_chunks(load_processbench(str(scripted_data)), LINE, PRMIdentity.from_config(bench_config(tmp_path), SKYWORK), 5)
    store = tmp_path / "bench" / "chunks" / "scores"
    by_rows = {tuple(r.id for r in c.rows): store / f"{c.key}.json" for c in planned}
    assert sorted(by_rows.values()) == chunk_files
    torn = by_rows[("gsm8k-0", "gsm8k-1", "gsm8k-2", "gsm8k-3", "math-0")]
    torn.write_bytes(torn.read_bytes()[:40])  # a torn file
    edited = by_rows[("omnimath-2", "omnimath-3")]
    edited.write_text(edited.read_text().replace("0.55", "0.05"))  # an edited reward: the checksum no longer holds
    third = ScriptedScorer(rewards)
    assert run_prm_bench(settings, bench_config(tmp_path), scorer=third) == results
    assert sorted(third.scored) == ["gsm8k-0", "gsm8k-1", "gsm8k-2", "gsm8k-3", "math-0", "omnimath-2", "omnimath-3"]

    middle = by_rows[("math-1", "olympiadbench-0", "olympiadbench-1", "omnimath-0", "omnimath-1")]
    middle.write_text(edited.read_text())  # a whole, valid chunk file, but of other rows
    fourth = ScriptedScorer(rewards)
    assert run_prm_bench(settings, bench_config(tmp_path), scorer=fourth) == results
    assert sorted(fourth.scored) == ["math-1", "olympiadbench-0", "olympiadbench-1", "omnimath-0", "omnimath-1"]


def test_another_prm_never_reuses_chunks(tmp_path, scripted_data):
    rewards = {rid: r for rid, (_, r) in SCRIPTED.items()}
    run_prm_bench(BenchSettings(data=str(scripted_data)), bench_config(tmp_path), scorer=ScriptedScorer(rewards))
    # even a chunk file copied to the name the new PRM's chunk would have is refused: it says which PRM made it
    old_file, = (tmp_path / "bench" / "chunks" / "scores").glob("*.json")
    new_key = plan_chunks(load_processbench(str(scripted_data)), LINE, PRMIdentity.from_config(bench_config(tmp_path, prm_max_length=512), SKYWORK))[0].key
    (tmp_path / "bench" / "chunks" / "scores" / f"{new_key}.json").write_bytes(old_file.read_bytes())
    other = ScriptedScorer(rewards)
    run_prm_bench(BenchSettings(data=str(scripted_data)), bench_config(tmp_path, prm_max_length=512), scorer=other)
    assert len(other.scored) == 12


# --- the command, the report, bad input ----------------------------------------------------------------------------
def test_cli_end_to_end_with_report(tmp_path, tiny_prm_dir, capsys):
    out = tmp_path / "bench"
    code = cli.main(["prm-bench", "--prm", str(tiny_prm_dir), "--data", str(EXCERPT), "--device", "cpu",
                     "--output-dir", str(out)])
    assert code == 0, capsys.readouterr().err
    for name in ("predictions.jsonl", "results.json", "report.md", "report.html", "predictions-gsm8k.png",
                 "predictions-math.png"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert list(results["subsets"]) == ["gsm8k", "math"] and results["format"] == SKYWORK
    assert "average F1" in capsys.readouterr().out


def test_report_table_beside_published_numbers(tmp_path, scripted_data):
    scorer = ScriptedScorer({rid: r for rid, (_, r) in SCRIPTED.items()})
    run_prm_bench(BenchSettings(data=str(scripted_data)),
                  bench_config(tmp_path, prm="Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B"), scorer=scorer)
    write_prm_bench_report(tmp_path / "bench")
    md = (tmp_path / "bench" / "report.md").read_text()
    # every subset is part of the published one: marked so beside the published rows, with its rows used;
    # MATH's 2 rows are both right at every resample: [100, 100]; OlympiadBench's both wrong: [0, 0]
    assert ("| **Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B (this run)** | 50.0 [0.0, 100.0] (partial: 4 of 400 rows) "
            "| 100.0 [100.0, 100.0] (partial: 2 of 1000 rows) | 0.0 [0.0, 0.0] (partial: 2 of 1000 rows) "
            "| 80.0 [0.0, 100.0] (partial: 4 of 1000 rows) | 57.5 |") in md
    assert "**Partial subsets: GSM8K (4 of 400 rows), MATH (2 of 1000 rows), OlympiadBench (2 of 1000 rows)" in md
    assert "| Skywork-PRM-1.5B (published) = this PRM | 59.0 | 48.0 | 19.3 | 19.2 | 36.4 |" in md
    assert "| Math-Shepherd-PRM-7B (published) | 47.9 | 29.5 | 24.8 | 23.8 | 31.5 |" in md
    assert "![predictions against labels, Omni-MATH](predictions-omnimath.png)" in md
    assert "data:image/png;base64," in (tmp_path / "bench" / "report.html").read_text()


def _bad_rows() -> list[tuple[str, str, list[str]]]:
    """(file text, file suffix, words the one error line must hold)."""
    good = scripted_rows()[0]
    line = lambda **changes: json.dumps({**good, **changes})  # noqa: E731
    missing = {k: v for k, v in good.items() if k != "problem"}
    return [
        (line() + "\n" + json.dumps(missing) + "\n", ".jsonl", ["line 2", "'problem'", "missing"]),
        (line() + "\n" + line(id="gsm8k-9", label=3) + "\n", ".jsonl", ["line 2", "'label'", "3 steps"]),
        (line(id="gsm8k") + "\n", ".jsonl", ["line 1", "'id'"]),
        (line(steps="one step") + "\n", ".jsonl", ["line 1", "'steps'"]),
        (line(steps=[]) + "\n", ".jsonl", ["line 1", "'steps'"]),
        (line(label=True) + "\n", ".jsonl", ["line 1", "'label'"]),
        (line(final_answer_correct="yes") + "\n", ".jsonl", ["line 1", "'final_answer_correct'"]),
        (line(generator=None) + "\n", ".jsonl", ["line 1", "'generator'"]),
        (line() + "\n{not json\n", ".jsonl", ["line 2", "not valid JSON"]),
        (line() + "\n" + line() + "\n", ".jsonl", ["line 2", "repeats", "gsm8k-0"]),
        ("[1, 2]", ".json", ["item 1", "not an object"]),
        ('{"rows": []}', ".json", ["must be a list"]),
        ("", ".jsonl", ["no rows"]),
    ]


@pytest.mark.parametrize("case", range(len(_bad_rows())))
def test_every_bad_row_is_one_line(tmp_path, tiny_prm_dir, capsys, case):
    text, suffix, words = _bad_rows()[case]
    data = tmp_path / f"bad{suffix}"
    data.write_text(text)
    code = cli.main(["prm-bench", "--prm", str(tiny_prm_dir), "--data", str(data), "--device", "cpu",
                     "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("bestofn: error: "), err
    assert str(data) in err[0]
    for word in words:
        assert word in err[0], (word, err[0])
    assert not (tmp_path / "out").exists()  # nothing written for bad input


@pytest.mark.parametrize("flags, words", [
    (["--threshold", "high"], ["--threshold", "'high'"]),
    (["--threshold", "nan"], ["--threshold"]),
    (["--subsets", "gsm8k,aime"], ["--subsets", "aime"]),
    (["--subsets", "olympiadbench"], ["no rows of subset(s) olympiadbench"]),
    (["--threshold", "gsm8k"], ["gsm8k", "both kinds"]),  # the excerpt's GSM8K row has a wrong step, none all right
    (["--threshold", "gsm8k", "--subsets", "math"], ["add gsm8k to --subsets"]),
    (["--data", "missing.jsonl"], ["missing.jsonl"]),
    (["--data", "Qwen/ProcessBench"], ["Qwen/ProcessBench"]),  # the Hub, offline in the tests
    (["--prm", "no/such/folder"], ["no/such/folder"]),
])
def test_bad_flags_are_one_line(tmp_path, tiny_prm_dir, capsys, flags, words):
    argv = ["prm-bench", "--prm", str(tiny_prm_dir), "--data", str(EXCERPT), "--device", "cpu",
            "--output-dir", str(tmp_path / "out"), *flags]
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("bestofn: error: "), err
    for word in words:
        assert word in err[0], (word, err[0])


def test_a_reward_count_that_does_not_match_the_steps_is_one_line(tmp_path, scripted_data):
    """A PRM that reads an extra step (e.g. its own step tag inside a step) cannot be matched to the labels."""
    rewards = {rid: r for rid, (_, r) in SCRIPTED.items()}
    scorer = ScriptedScorer(rewards)
    scorer.score_detailed = lambda problems, responses: [PRMScore([0.5] * 9, False) for _ in problems]
    with pytest.raises(BestOfNError, match="row gsm8k-0: the skywork PRM gave 9 step rewards for 3 steps"):
        run_prm_bench(BenchSettings(data=str(scripted_data)), bench_config(tmp_path), scorer=scorer)


def test_a_run_directory_is_refused(tmp_path, capsys, tiny_prm_dir):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text("{}")
    code = cli.main(["prm-bench", "--prm", str(tiny_prm_dir), "--data", str(EXCERPT), "--output-dir",
                     str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "run directory" in err[0]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["manifest.json"]


def test_excerpt_loads_with_subsets_from_ids():
    rows = load_processbench(str(EXCERPT))
    assert [(r.id, r.subset, r.label, len(r.steps)) for r in rows] == [("gsm8k-0", "gsm8k", 1, 4), ("math-22", "math", 2, 5)]


# --- issue 29: several files or a folder, partial subsets, F1 intervals, PRMs side by side -------------------------
def split_by_subset(folder: Path) -> Path:
    """The scripted rows as ProcessBench publishes them: one file per subset in a folder."""
    folder.mkdir()
    for subset in ("gsm8k", "math", "olympiadbench", "omnimath"):
        write_rows(folder / f"{subset}.json".replace(".json", ".jsonl"),
                   [r for r in scripted_rows() if r["id"].startswith(subset + "-")])
    return folder


def test_several_files_or_a_folder_give_the_merged_files_numbers(tmp_path, scripted_data):
    scorer = lambda: ScriptedScorer({rid: r for rid, (_, r) in SCRIPTED.items()})  # noqa: E731
    merged = run_prm_bench(BenchSettings(data=str(scripted_data), threshold="gsm8k"), bench_config(tmp_path / "a"),
                           scorer=scorer())
    folder = split_by_subset(tmp_path / "processbench")
    by_folder = run_prm_bench(BenchSettings(data=str(folder), threshold="gsm8k"), bench_config(tmp_path / "b"),
                              scorer=scorer())
    files = [str(folder / "omnimath.jsonl"), str(folder / "gsm8k.jsonl")]
    by_files = run_prm_bench(BenchSettings(data=files, threshold="gsm8k"), bench_config(tmp_path / "c"), scorer=scorer())
    for got in (by_folder, by_files):
        assert got["threshold"] == merged["threshold"]
    assert by_folder["subsets"] == merged["subsets"] and by_folder["average_f1"] == merged["average_f1"]
    assert list(by_files["subsets"]) == ["gsm8k", "omnimath"]  # the paper's order, whatever the order given
    assert by_files["subsets"]["omnimath"] == merged["subsets"]["omnimath"]
    with pytest.raises(BestOfNError, match=r"id 'gsm8k-0' is in both .*gsm8k.jsonl and .*scripted.jsonl; pass each"):
        load_processbench([str(folder / "gsm8k.jsonl"), str(scripted_data)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BestOfNError, match=r"folder .*empty holds no .json or .jsonl file"):
        load_processbench(str(tmp_path / "empty"))


def test_cli_takes_several_data_files(tmp_path, scripted_data, tiny_prm_dir, capsys):
    folder = split_by_subset(tmp_path / "pb")
    code = cli.main(["prm-bench", "--prm", str(tiny_prm_dir), "--data", str(folder / "math.jsonl"),
                     str(folder / "gsm8k.jsonl"), "--device", "cpu", "--output-dir", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(results["subsets"]) == ["gsm8k", "math"] and results["n"] == 6


def test_a_whole_subset_is_not_partial(tmp_path):
    """400 GSM8K rows are the published subset: no partial mark; 399 are."""
    rows = [{"id": f"gsm8k-{k}", "generator": "g", "problem": f"Problem gsm8k-{k}?", "steps": ["a", "b"],
             "final_answer_correct": k % 2 == 0, "label": -1 if k % 2 == 0 else 1} for k in range(400)]
    rewards = {r["id"]: [0.9, 0.9 if r["label"] == -1 or int(r["id"][6:]) % 3 else 0.1] for r in rows}
    whole = run_prm_bench(BenchSettings(data=str(write_rows(tmp_path / "g.jsonl", rows))), bench_config(tmp_path / "w"),
                          scorer=ScriptedScorer(rewards))["subsets"]["gsm8k"]
    part = run_prm_bench(BenchSettings(data=str(write_rows(tmp_path / "p.jsonl", rows[:399]))),
                         bench_config(tmp_path / "p"), scorer=ScriptedScorer(rewards))["subsets"]["gsm8k"]
    assert (whole["partial"], whole["published_rows"], part["partial"]) == (False, 400, True)
    write_prm_bench_report(tmp_path / "w" / "bench")
    assert "partial" not in (tmp_path / "w" / "bench" / "report.md").read_text().lower()


def test_f1_interval_matches_a_plain_bootstrap():
    """A plain resampling loop over the rows (numpy, subset_metrics' own F1) gives the same 95% interval within
    resampling error; a paired difference of a PRM with itself is exactly 0."""
    from bestofn.bench.processbench import f1_interval

    rng = np.random.default_rng(3)
    labels = rng.integers(-1, 6, 600)
    predictions = np.where(rng.random(600) < 0.6, labels, rng.integers(-1, 6, 600))
    f1s = []
    for _ in range(3000):
        pick = rng.integers(0, 600, 600)
        f1s.append(subset_metrics(labels[pick].tolist(), predictions[pick].tolist())["f1"])
    plain = np.percentile(f1s, [2.5, 97.5])
    assert f1_interval(labels, predictions) == pytest.approx(tuple(plain), abs=1.0)
    assert f1_interval(labels, predictions, predictions) == (0.0, 0.0)
    assert f1_interval([1, 2], [1, 2]) is None  # no row with every step right: F1 undefined


def _bench_dir(tmp_path: Path, name: str, data: Path, rewards: dict[str, list[float]], prm: str) -> Path:
    run_prm_bench(BenchSettings(data=str(data)), bench_config(tmp_path, prm=prm, output_dir=str(tmp_path / name)),
                  scorer=ScriptedScorer(rewards))
    return tmp_path / name


def test_compare_puts_prm_bench_results_side_by_side(tmp_path, scripted_data, capsys):
    """Two PRMs: the scripted one (F1 50 / 100 / 0 / 80) and one that flags every first step (reward .1 first):
    gsm8k g1 L0 right, others wrong -> error acc 1/2, correct acc 0/2 -> F1 0; math: 0/1, 0/1 -> 0;
    olympiadbench: o0 L1 -> 0 wrong, o1 wrong -> 0; omnimath: x0 L0 right, x1, x2 wrong (1/3), x3 wrong -> 0."""
    good = _bench_dir(tmp_path, "good", scripted_data, {rid: r for rid, (_, r) in SCRIPTED.items()}, "org/good-prm")
    eager = _bench_dir(tmp_path, "eager", scripted_data, {rid: [0.1] + r[1:] for rid, (_, r) in SCRIPTED.items()},
                       "org/eager-prm")
    assert cli.main(["compare", str(eager), str(good), "--output-dir", str(tmp_path / "cmp")]) == 0
    md = (tmp_path / "cmp" / "report.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| org/")]
    assert table[0].startswith("| org/good-prm | 0.5 (fixed) | 50.0 [0.0, 100.0] (partial: 4 of 400 rows) |")
    assert table[0].endswith("| 57.5 |") and table[1].startswith("| org/eager-prm |") and table[1].endswith("| 0.0 |")
    assert "GSM8K: org/good-prm leads org/eager-prm by 50.0 F1 points (paired bootstrap 95% CI" in md
    assert "on the 4 solutions both scored: +0.0 to +100.0), too few solutions to judge" in md
    assert "OlympiadBench: org/eager-prm and org/good-prm tie" in md and md.count("**Partial subsets") == 1
    assert (tmp_path / "cmp" / "prm_bench_f1.png").is_file()
    assert cli.main(["compare", str(good), str(tmp_path / "nope"), "--output-dir", str(tmp_path / "c2")]) == 2
    assert "nope: not a prm-bench directory" in capsys.readouterr().err


def test_report_on_a_prm_bench_directory_writes_its_report(tmp_path, scripted_data, capsys):
    bench = _bench_dir(tmp_path, "bench", scripted_data, {rid: r for rid, (_, r) in SCRIPTED.items()}, "org/p")
    assert cli.main(["report", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "holds `bestofn prm-bench` results, not a run" in out and (bench / "report.html").is_file()
    from bestofn.report.loader import load_run

    with pytest.raises(BestOfNError, match=r"holds `bestofn prm-bench` results, not a run: its report is .*report.html"):
        load_run(bench)


def test_prediction_matrix_counts_labels_in_rows_and_predictions_in_columns():
    """Labels 2, 2, -1, 15 against predictions 0, 2, -1, 15: row "2" has one in column "0" and one in column "2";
    -1 is the first row and column; 15 is pooled into the last ("12+")."""
    from bestofn.report.prmbench_report import MAX_INDEX, plot_predictions

    fig = plot_predictions([2, 2, -1, 15], [0, 2, -1, 15], "t")
    counts = np.asarray(fig.axes[0].images[0].get_array())
    assert counts.shape == (MAX_INDEX + 2, MAX_INDEX + 2)
    expected = np.zeros_like(counts)
    expected[3, 1] = expected[3, 3] = expected[0, 0] = expected[MAX_INDEX + 1, MAX_INDEX + 1] = 1
    assert (counts == expected).all()
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-1] == f"{MAX_INDEX}+"
