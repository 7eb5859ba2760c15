"""Tests of the run report: the numbers and words of report.md/report.html, the plots, the renderer, the CLI.

Runs are made by the real pipeline on scripted solutions (scripted_runs.py): the hand-made three-problem run of
test_analysis, the realistic synthetic run (60 problems, N=16), a one-score run and an imported run without
token counts. Expected numbers are worked out by hand or computed plainly from the run's artifacts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from bestofn.cli import main
from bestofn.errors import BestOfNError
from bestofn.importer import import_completions
from bestofn.io import read_json, read_jsonl
from bestofn.report import analysis as A
from bestofn.report import run_report as R
from bestofn.report.render import Page, code, details, table
from bestofn.rundir import RECORD
from scripted_runs import build_run, problem, sample
from test_analysis import DISAGREE, HOPELESS, PRM_HELPS


def assert_valid_pngs(folder: Path, names) -> None:
    for name in names:
        with Image.open(folder / name) as img:
            assert img.format == "PNG" and img.width > 300 and img.height > 200, name
            img.verify()


def pngs(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.png")}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, tiny_generator_dir, tiny_prm_dir) -> Path:
    """The report of the three hand-made problems of test_analysis (worked out there)."""
    run = build_run(tmp_path_factory.mktemp("r") / "run", [DISAGREE, PRM_HELPS, HOPELESS],
                    (tiny_generator_dir, tiny_prm_dir))
    R.write_report(run, subsets=50, seed=0, bootstrap=200)
    return run / "report"


@pytest.fixture(scope="module")
def synthetic_report(synthetic_run_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic-report")
    R.write_report(synthetic_run_dir, output_dir=out, subsets=100, bootstrap=200)
    return out


def test_writes_markdown_html_and_valid_plots(report_dir: Path):
    names = pngs(report_dir)
    assert names == {"accuracy_vs_n.png", "reward_distributions.png", "calibration.png", "rewards_by_problem.png",
                     "by_level.png", "selection.png", "compute.png", "adaptive.png"}  # one-score rewards: no step or aggregation plots
    assert {p.name for p in report_dir.iterdir()} == {"report.md", "report.html", "adaptive.json", *names, RECORD}  # RECORD: what it wrote
    assert_valid_pngs(report_dir, names)
    md = (report_dir / "report.md").read_text()
    for name in names:
        assert f"]({name})" in md  # every plot is shown, beside the Markdown file
    html = (report_dir / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(names)  # self-contained: plots embedded
    assert "![" not in html and "<table>" in html and "<h2>Summary</h2>" in html  # rendered, not raw Markdown


def test_summary_numbers(report_dir: Path):
    md = (report_dir / "report.md").read_text()
    assert md.startswith("# Best-of-3 on run-problems (3 problems): generator + prm\n")  # models, N, dataset
    assert ("weighted Best-of-3 solved 2 (66.7% [20.8, 93.9]) against greedy's 1 (33.3% [6.1, 79.2]) and majority "
            "vote's 1 (33.3% [6.1, 79.2])") in md  # Wilson intervals of 2/3 and 1/3
    assert "Selection could matter on 3 problems (more than one answer group); on the other 0" in md
    assert "On 0 problems a right answer was sampled but not chosen; on 1 no sample was right" in md
    # the one comparison with greedy: 1 informative problem, won 1, lost 0; McNemar p = 1; nothing claimed
    assert ("1 informative problem (solved by exactly one of weighted Best-of-3 and greedy): weighted Best-of-3 won 1, "
            "lost 0; exact McNemar p = 1, not significant at 5%; with 1 informative problems no split could be "
            "(it takes at least 6).") in md
    assert "Won: `disagree`. Lost: none." in md
    assert "Majority vote alone solved 1/3." in md and "weighted Best-of-3 won 1, lost 0" in md
    assert "Naive Best-of-3 (trust the single highest-reward solution) solved 1/3." in md
    # AUROC of the last-step reward: 8.5 of 15 (right, wrong) pairs ordered right (see test_analysis)
    assert "has AUROC 0.567" in md and "it is 0.500 (mean over the 2 problems" in md
    assert "level 1 (1 problem): 0.0% -> 100.0%; level 2 (2 problems): 50.0% -> 50.0%" in md
    assert "with seed 0: stratified by level, the smallest sha256(seed:unique_id) within each level" in md
    assert "no difficulty levels" not in md  # MATH has levels
    assert re.search(r"\| 2 \| [\d,]+ \| 33\.3% \[[^]]*\] \| 22\.2% \[", md)  # majority at n=2: (1/3 + 1/3 + 0) / 3


def test_one_score_rewards_are_said_once_and_their_views_dropped(report_dir: Path):
    md = (report_dir / "report.md").read_text()
    assert md.count("The rewards have one score per solution (an outcome reward") == 1
    assert "## Reward aggregations" not in md and "### Step rewards" not in md
    assert "same under every aggregation" not in md and "under every aggregation" not in md


def test_contested_problem_blocks(report_dir: Path):
    md = (report_dir / "report.md").read_text()
    block = md.split("#### disagree (level 1, Algebra)")[1].split("####")[0]
    assert "- gold answer: `2`; right samples: 2/3" in block
    assert "greedy: `1` (wrong); majority vote: `2` (right); naive Best-of-3: `1` (wrong); weighted Best-of-3: `2` (right)" in block
    assert "| `2` | 2 | 1.000 | 0.500 | **right** | majority, weighted | 1, 2 |" in block
    assert "| `1` | 1 | 0.900 | 0.900 | wrong | naive | 0 |" in block
    assert "Weighted Best-of-3's solution: sample 1, reward 0.500" in block and "\\boxed{2}" in block


def test_synthetic_report_headline_matches_the_artifacts(synthetic_report: Path, synthetic_run_dir: Path):
    """The headline's counts, recomputed plainly from samples.jsonl and results.json (answers are numbers, so
    distinct values are the answer groups)."""
    samples = read_jsonl(synthetic_run_dir / "samples.jsonl")
    results = read_json(synthetic_run_dir / "results.json")
    answers: dict[str, set] = {}
    right: dict[str, bool] = {}
    for r in samples:
        answers.setdefault(r["unique_id"], set())
        if r["answer"] is not None:
            answers[r["unique_id"]].add(float(r["answer"]))  # "46" and "46.0" are one group
        right[r["unique_id"]] = right.get(r["unique_id"], False) or r["correct"]
    contested = sum(len(a) > 1 for a in answers.values())
    unanimous = sum(len(a) == 1 for a in answers.values())
    per = {p["unique_id"]: p for p in results["per_problem"]}
    missed = sum(right[u] and not per[u]["weighted_bon"]["correct"] for u in per)
    acc = results["accuracy"]
    md = (synthetic_report / "report.md").read_text()
    headline = next(line for line in md.splitlines() if line.startswith("**Headline.**"))
    assert f"weighted Best-of-16 solved {acc['weighted_bon']['correct']} (" in headline
    assert f"against greedy's {acc['greedy']['correct']} (" in headline
    assert f"majority vote's {acc['majority']['correct']} (" in headline
    assert f"Selection could matter on {contested} problems" in headline and 0 < contested < 60
    assert f"on the other {unanimous} every sample with an answer agreed" in headline
    assert f"On {missed} problems a right answer was sampled but not chosen" in headline
    assert f"on {60 - acc['pass_at_n']['correct']} no sample was right" in headline
    assert f"**{contested} of 60 problems have more than one answer group**" in md
    assert md.count("\n#### synthetic/") == contested  # one detail block per contested problem
    assert f"<details><summary>{60 - contested} problems without a choice to make" in md  # the rest in one line


def test_synthetic_report_plots_and_html(synthetic_report: Path):
    names = pngs(synthetic_report)
    assert names == {"accuracy_vs_n.png", "reward_distributions.png", "calibration.png", "rewards_by_problem.png",
                     "by_level.png", "selection.png", "compute.png", "step_rewards.png", "aggregation.png",
                     "adaptive.png"}
    assert_valid_pngs(synthetic_report, names)
    html = (synthetic_report / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(names)
    # the step viewer: steps coloured by reward in the HTML, a table of step rewards in the Markdown
    assert html.count('<div class="steps">') == R.STEP_VIEWER_PROBLEMS * 16
    assert re.search(r'<div class="step" style="background:#[0-9a-f]{6}"><span class="r">0\.\d{3,}</span>', html)
    md = (synthetic_report / "report.md").read_text()
    assert "| sample | answer | right? | reward | step rewards |" in md and 'class="step"' not in md
    assert "Expected calibration error (ECE): 0." in md and "| reward bin | solutions |" in md
    assert "**Grading.** greedy: math-verify accepts" in md and " only math-verify accepts" in md


def test_run_without_token_counts_says_unavailable(tmp_path: Path):
    """Completions imported without token counts and without a greedy solution: costs are "unavailable"."""
    rows = [{"problem": f"What is {k}?", "answer": str(k), "unique_id": f"p{k}", "level": 1,
             "completions": [f"Step.\nSo $\\boxed{{{k}}}$." if i != 2 else "Step.\nSo $\\boxed{99}$." for i in range(3)],
             "scores": [[0.3, 0.8], [0.5, 0.6], [0.4, 0.9]]} for k in range(2)]
    run, md = _imported_report(tmp_path, rows)
    assert "compute.png" not in md and not (run / "report" / "compute.png").exists()
    assert "| 1 | unavailable |" in md and "Token counts are unavailable for this run" in md
    assert not re.search(r"\b0 tokens|nan", md)
    assert "greedy" not in md.split("## Accuracy vs N")[1].split("\n\n")[2]  # no greedy column without greedy
    assert "no greedy solutions (so no greedy baseline)" in md and "temperature not stated" in md


def test_imported_run_report_states_only_what_the_input_stated(tmp_path: Path, report_dir: Path):
    """An import that names the generator and nothing else: every other setting is "not stated" in the report, and
    nothing is said to have been drawn or cut off by bestofn; a run of `bestofn run` says how its subset was drawn."""
    rows = [{"problem": f"What is {k}?", "answer": str(k), "unique_id": f"p{k}", "level": 1,
             "completions": [f"Step.\nSo $\\boxed{{{k}}}$.", "Step.\nSo $\\boxed{99}$."],
             "scores": [[0.3, 0.8], [0.5, 0.6]]} for k in range(2)]
    source = tmp_path / "made-elsewhere.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = import_completions(str(source), tmp_path / "run", generator="org/model")
    R.write_report(run, subsets=10, bootstrap=20, formats=("md",))
    md = (run / "report" / "report.md").read_text()
    assert (f"problems: 2 (level 1: 2) from `{source}`, as given by the imported input (how they were chosen: not "
            f"stated)") in md
    assert ("samples per problem N = 2, temperature not stated, top-p not stated, max new tokens not stated, seed not "
            "stated, backend not stated") in md
    assert "generator: `org/model`; reward model: not stated" in md
    assert f"completions imported with `bestofn import` from `{source}`" in md
    assert "the prompt (system and user message): not stated" in md
    assert "Whether samples were cut off at a token limit: not stated" in md and "cut off at max_new_tokens" not in md
    assert "drawn by `bestofn`" not in md and "transformers" not in md and "2048" not in md
    own = (report_dir / "report.md").read_text()  # a run of `bestofn run` knows all of it
    assert "drawn by `bestofn` with seed 0: stratified by level" in own and "not stated" not in own
    assert "max new tokens 512, seed 0, backend transformers" in own


def test_clear_gain_is_called_significant(tmp_path: Path, tiny_generator_dir, tiny_prm_dir):
    specs = [problem(f"p{k}", "1", greedy="2", samples=[sample("1", 0.9), sample("1", 0.8)]) for k in range(12)]
    run = build_run(tmp_path / "run", specs, (tiny_generator_dir, tiny_prm_dir))
    text = " ".join(R.written_analysis(A.analyze(run, subsets=5, bootstrap=500)))
    assert ("12 informative problems (solved by exactly one of weighted Best-of-2 and greedy): weighted Best-of-2 won "
            "12, lost 0; exact McNemar p = 0.000488, a split this uneven is unlikely if both were equally accurate "
            "(significant at 5%)") in text  # 2 / 2**12
    assert "+100.0 points (paired bootstrap 95% CI +100.0 to +100.0)" in text


def test_methods_at_0_and_100_percent_are_reported(tmp_path: Path, tiny_generator_dir, tiny_prm_dir):
    """Greedy solves none of 10 problems (0/7 at level 1, 0/3 at level 2), every sample is right (10/10): the
    intervals end exactly at 0% and 100% (floating point gave 5.6e-17 at 0/3 and 0.9999999999999999 at 10/10,
    and matplotlib refused the negative error bars), and the report is written with every plot."""
    specs = [problem(f"p{k}", "1", greedy="2", samples=[sample("1", 0.9), sample("1", 0.8)], level=1 + (k >= 7))
             for k in range(10)]
    run = build_run(tmp_path / "run", specs, (tiny_generator_dir, tiny_prm_dir))
    written = R.write_report(run, subsets=5, bootstrap=50)
    assert_valid_pngs(run / "report", [p.name for p in written if p.suffix == ".png"])
    md = (run / "report" / "report.md").read_text()
    # Wilson 95% of 0/10 is [0, 27.8%], of 10/10 [72.2%, 100%]
    assert "weighted Best-of-2 solved 10 (100.0% [72.2, 100.0]) against greedy's 0 (0.0% [0.0, 27.8])" in md
    assert "| level 1 | 7 | 0.0% [0.0, 35.4] |" in md and "| level 2 | 3 | 0.0% [0.0, 56.1] |" in md


def test_cli_options_and_errors(tmp_path: Path, capsys, report_dir: Path):
    run = report_dir.parent
    assert main(["report", str(run), "--subsets", "7", "--seed", "3", "--bootstrap", "40",
                 "--output-dir", str(tmp_path / "out"), "--format", "html"]) == 0
    assert "report.html" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"report.html", "adaptive.json", *pngs(report_dir), RECORD}
    html = (tmp_path / "out" / "report.html").read_text()
    assert "report settings: 7 subsets per point, seed 3, 40 bootstrap resamples" in html
    (tmp_path / "empty").mkdir()
    with pytest.raises(BestOfNError, match=r"not a finished run directory \(missing config\.yaml, manifest\.json, problems\.jsonl, "
                                           r"greedy\.jsonl, samples\.jsonl, results\.json\); .*bestofn run"):
        R.write_report(tmp_path / "empty")


def test_rendering_escapes_answers_in_both_formats():
    page = Page("t <1>")
    page.add(table(["answer"], [[code("|x| < 1")], [code("a`b")]]))
    page.para("**bold** and `a<b` and [link](other/report.md)")
    page.add(details("solution <x>", "```text\nx < y & ``\n```"))
    page.html_block('<p class="only-html">coloured</p>', "plain stand-in")
    md = page.markdown()
    assert "| `\\|x\\| < 1` |" in md  # a pipe inside a table cell must not split it
    assert "| ``a`b`` |" in md  # a backtick inside an answer gets a longer fence
    assert "plain stand-in" in md and "only-html" not in md
    html = page.html({})
    assert "<td><code>|x| &lt; 1</code></td>" in html and "<td><code>a`b</code></td>" in html
    assert '<strong>bold</strong> and <code>a&lt;b</code> and <a href="other/report.md">link</a>' in html
    assert "<summary>solution &lt;x&gt;</summary>" in html and "x &lt; y &amp; ``" in html
    assert '<p class="only-html">coloured</p>' in html and "plain stand-in" not in html
    assert "<title>t &lt;1&gt;</title>" in html


def test_tiny_run_report(tiny_run_dir: Path, tmp_path: Path):
    """The report of a real run made by the pipeline with the tiny models (read-only: written elsewhere)."""
    R.write_report(tiny_run_dir, output_dir=tmp_path / "rep", subsets=20, bootstrap=100)
    assert_valid_pngs(tmp_path / "rep", pngs(tmp_path / "rep"))
    results = read_json(tiny_run_dir / "results.json")
    md = (tmp_path / "rep" / "report.md").read_text()
    acc, n = results["accuracy"], results["n"]
    assert f"weighted Best-of-{n} solved {acc['weighted_bon']['correct']} (" in md
    assert f"against greedy's {acc['greedy']['correct']} (" in md
    assert "results.json disagrees" not in md and not re.search(r"\bnan\b", md)
    assert not (tiny_run_dir / "report").exists()


# --------------------------------------------------------------------------------------------------------
# Issue 29: ties, rewards that rank, benchmarks without levels, steps lined up with their rewards
# --------------------------------------------------------------------------------------------------------
def test_a_majority_tie_is_flagged_and_close_rewards_keep_their_order(tmp_path: Path, tiny_generator_dir, tiny_prm_dir):
    """Answers 1, 1, 2, 2: majority vote's 2-2 tie goes to the group seen first (1, wrong), and the report says it
    was a tie. The rewards (0.0001-0.0004) differ only in the fourth decimal: they are written with four, never
    as "0.000"."""
    tie = problem("tie", "2", "1", [sample("1", 0.5, 0.0001), sample("1", 0.5, 0.0002), sample("2", 0.5, 0.0003),
                                    sample("2", 0.5, 0.0001)])
    run = build_run(tmp_path / "run", [tie], (tiny_generator_dir, tiny_prm_dir))
    R.write_report(run, subsets=10, bootstrap=20, formats=("md",))
    md = (run / "report" / "report.md").read_text()
    assert "majority vote: `1` (wrong), a 2-2 tie (broken by the group that appears first)" in md
    assert "| `1` | 2 | 0.0003 | 0.0002 | wrong | majority (2-2 tie) | 0, 1 |" in md
    assert "| `2` | 2 | 0.0004 | 0.0003 | **right** | naive, weighted | 2, 3 |" in md
    rewards = md.split("## Where selection matters")[1].split("## Per level")[0]  # the groups, viewer, calibration
    assert not re.search(r"\b0\.000\b", rewards)


def test_reward_digits_rank_distinct_values():
    """Enough decimals that distinct values stay distinct (at least three); equal values need no more."""
    from bestofn.report.render import reward_digits

    assert reward_digits([0.5, 0.25, 0.125]) == 3
    assert reward_digits([0.00011, 0.00012]) == 5
    assert reward_digits([0.9, 0.9, 0.9]) == 3
    assert reward_digits([0.12341, 0.12349, 0.5]) == 4 and reward_digits([0.1234101, 0.1234149]) == 6
    assert reward_digits([0.00018]) == 4 and reward_digits([0.0, 1.0]) == 3  # nonzero never reads 0.000
    assert reward_digits([0.1 + 0.2, 0.3]) == 3  # float noise in a sum is not a difference


def test_benchmark_without_levels_gets_no_level_views(tmp_path: Path):
    """Completions imported without levels (every problem "level 0"): no level column, plot or per-level section,
    and no Compute table that would be all "unavailable" (one sentence instead)."""
    rows = [{"problem": f"What is {k}?", "answer": str(k), "unique_id": f"p{k}",
             "completions": [f"Step.\nSo $\\boxed{{{k}}}$.", "Step.\nSo $\\boxed{99}$.", f"Step.\nSo $\\boxed{{{k}}}$."],
             "scores": [[0.3, 0.8], [0.5, 0.6], [0.4, 0.9]]} for k in range(3)]
    run, md = _imported_report(tmp_path, rows)
    assert "level" not in md.lower().replace("levels", ""), [line for line in md.splitlines() if "level" in line.lower()]
    assert not (run / "report" / "by_level.png").exists()
    assert f"- problems: 3 from `{tmp_path / 'completions.jsonl'}`" in md
    assert "unavailable | unavailable" not in md
    assert "Neither generated nor PRM token counts are known for this run" in md


REAL_WITH_BLANK_LINES = ("test/prealgebra/1622.json", "test/algebra/722.json", "test/intermediate_algebra/607.json")


def test_step_viewer_shows_each_reward_on_the_text_it_scored(tmp_path: Path, math500_path: Path, tiny_prm_dir: Path):
    """Real MATH-500 solutions with blank lines, scored by the (tiny) Skywork-format PRM: it gives one reward per
    newline-separated piece, blank lines included (counted plainly here), and the report's step viewer shows
    every piece, blank ones as "(blank line)", beside the reward the PRM gave it, in order."""
    from html import unescape

    from bestofn.prm import load_prm

    rows = {r["unique_id"]: r for r in map(json.loads, math500_path.read_text().splitlines())}
    picked = [rows[u] for u in REAL_WITH_BLANK_LINES]
    right = [r["solution"] for r in picked]
    wrong = [t.replace(f"\\boxed{{{r['answer']}}}", "\\boxed{12345}") for t, r in zip(right, picked)]
    prm = load_prm(str(tiny_prm_dir))
    scored = prm.score_detailed([r["problem"] for r in picked] * 2, right + wrong)
    for text, s in zip(right + wrong, scored):
        assert "\n\n" in text and not s.truncated
        assert len(s.step_rewards) == text.count("\n") + 1  # every line is a step, a blank one too
    source = tmp_path / "real.jsonl"
    source.write_text("".join(json.dumps({
        "problem": r["problem"], "answer": r["answer"], "unique_id": r["unique_id"], "level": r["level"],
        "completions": [right[k], wrong[k]], "scores": [scored[k].step_rewards, scored[k + 3].step_rewards]}) + "\n"
        for k, r in enumerate(picked)))
    run = import_completions(str(source), tmp_path / "run", generator="org/model")
    R.write_report(run, subsets=10, bootstrap=20, formats=("html",))
    page = (run / "report" / "report.html").read_text()
    step = re.compile(r'<div class="step[^"]*"(?: style="[^"]*")?><span class="r">([^<]*)</span>'
                      r'<span class="t">(.*?)</span></div>', re.S)
    for k, r in enumerate(picked):
        viewer = page.split(f"<summary>{r['unique_id'].removeprefix('test/').removesuffix('.json')}: gold")[1]
        for i, (text, rewards) in enumerate(((right[k], scored[k].step_rewards), (wrong[k], scored[k + 3].step_rewards))):
            block = viewer.split(f'<div class="head">sample {i}: ')[1].split('<div class="steps">')[0]
            shown = step.findall(block)
            pieces = text.split("\n")
            assert len(shown) == len(pieces) == len(rewards)
            for (value, body), piece, reward in zip(shown, pieces, rewards):
                assert abs(float(value) - reward) <= 0.5 * 10 ** -len(value.split(".")[1])
                if piece.strip():
                    body = unescape(body)
                    assert body == piece or (body.endswith(" [...]") and piece.startswith(body[:-6]))
                else:
                    assert body == '<span class="blank">(blank line)</span>'
            assert "cannot be lined up" not in block and "got no reward" not in block


def _imported_report(tmp_path, rows: list[dict]):
    """Import completion rows (no token counts, no greedy) and write their report: (run dir, report.md text)."""
    source = tmp_path / "completions.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = import_completions(str(source), tmp_path / "run", generator="org/model")
    R.write_report(run, subsets=10, bootstrap=20)
    return run, (run / "report" / "report.md").read_text()
