"""Tests of bestofn.report.run_report: the numbers in report.md/report.html, valid plots, rendering details (the command: tests/test_cli.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from bestofn.report import analysis as A
from bestofn.report import run_report as R
from bestofn.errors import BestOfNError
from bestofn.io import read_json
from test_analysis import DISAGREE, HOPELESS, PRM_HELPS, problem, sample, write_run_dir


def assert_valid_pngs(folder: Path, names) -> None:
    for name in names:
        with Image.open(folder / name) as img:
            assert img.format == "PNG" and img.width > 300 and img.height > 200, name
            img.verify()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """The report of the three hand-made problems of test_analysis (worked out there)."""
    run = write_run_dir(tmp_path_factory.mktemp("r") / "run", [DISAGREE, PRM_HELPS, HOPELESS])
    R.write_report(run, subsets=50, seed=0, bootstrap=200)
    return run / "report"


def test_writes_markdown_html_and_valid_plots(report_dir: Path):
    assert {p.name for p in report_dir.iterdir()} == {"report.md", "report.html", *R.PLOTS}
    assert_valid_pngs(report_dir, R.PLOTS)
    md = (report_dir / "report.md").read_text()
    for name in R.PLOTS:
        assert f"]({name})" in md  # every plot is shown, beside the Markdown file
    html = (report_dir / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(R.PLOTS)  # self-contained: plots embedded
    assert "![" not in html and "<table>" in html


def test_summary_numbers(report_dir: Path):
    md = (report_dir / "report.md").read_text()
    assert "Weighted Best-of-3 solved 2/3 problems (66.7%), greedy 1/3 (33.3%): +33.3 points" in md
    assert "the interval includes zero: with 3 problems this run cannot tell the difference from noise" in md
    assert (
        "solved 1 problem that greedy missed (`disagree`) and missed 0 that greedy solved; exact McNemar test on these flips: p = 1"
        in md
    )
    assert "Majority vote alone solved 1/3." in md
    assert "it helped on 1 (`prm-helps`) and hurt on 0; on the other 2 majority vote did as well" in md
    assert "naive) solved 1/3" in md and "changed 1 outcome (1 for the better, 0 for the worse)" in md
    assert "At least one of the 3 samples was right on 2/3 problems" in md
    # AUROC of the final-step reward: 8.5 of 15 (right, wrong) pairs ordered right (see test_analysis)
    assert "the final-step reward has AUROC 0.567" in md
    assert "within a problem, which is what selection needs, it is 0.500 (mean over the 2 problems" in md
    assert "level 1: 0.0% -> 100.0%; level 2: 50.0% -> 50.0%" in md
    # accuracy vs N table, exact values of test_expected_accuracy_vs_n (problem means over the 3 problems)
    assert re.search(r"\| 2 \| 200 \| 33\.3% \[[^]]*\] \| 22\.2% \[", md)  # majority at n=2: (1/3 + 1/3 + 0) / 3


def test_flip_sections_show_groups_and_winning_solution(report_dir: Path):
    md = (report_dir / "report.md").read_text()
    flips = md.split("### Solved by weighted Best-of-3, missed by greedy (1)")[1].split("### Solved by greedy")[0]
    assert "#### disagree (level 1, Algebra)" in flips
    assert "- gold answer: `2`" in flips and "- greedy: `1` (wrong)" in flips
    assert "| `2` | 2 | 1.000 | yes | 1, 2 |" in flips and "| `1` | 1 | 0.900 | no | 0 |" in flips
    assert "Winning solution: sample 1, reward 0.500" in flips and "disagree sample 1: \\boxed{2}" in flips
    assert "### Solved by greedy, missed by weighted Best-of-3 (0)\n\nNone." in md


def test_report_follows_the_data(tmp_path: Path):
    """Another run gives other words: here weighted loses a problem greedy had, and the gain is negative."""
    lost = problem("lost", "6", greedy="6", samples=[sample("6", 0.2), sample("9", 0.8), sample("9", 0.7)])
    run = write_run_dir(tmp_path / "run", [lost, HOPELESS])
    R.write_report(run, subsets=20, bootstrap=100, formats=("md",))
    md = (run / "report" / "report.md").read_text()
    assert "Weighted Best-of-3 solved 0/2 problems (0.0%), greedy 1/2 (50.0%): -50.0 points" in md
    reverse = md.split("### Solved by greedy, missed by weighted Best-of-3 (1)")[1]
    assert "#### lost" in reverse and "Winning solution: sample 1, reward 0.800" in reverse
    assert not (run / "report" / "report.html").exists()


def test_clear_gain_is_called_significant(tmp_path: Path):
    specs = [problem(f"p{k}", "1", greedy="2", samples=[sample("1", 0.9), sample("1", 0.8)]) for k in range(12)]
    run = write_run_dir(tmp_path / "run", specs)
    text = " ".join(R.written_analysis(A.analyze(run, subsets=5, bootstrap=500)))
    assert "+100.0 points (95% CI +100.0 to +100.0)" in text and "the interval excludes zero" in text
    assert "p = 0.000488" in text  # 12 flips one way: 2 / 2**12


def test_doc_escapes_answers_in_both_formats():
    doc = R.Doc()
    doc.table(["answer"], [[R.code("|x| < 1")]])
    doc.para("**bold** and `a<b` and [link](other/report.md)")
    doc.details("solution", "x < y & ```")
    md = doc.markdown()
    assert "| `\\|x\\| < 1` |" in md  # a pipe inside a table cell must not split it
    assert "````text\nx < y & ```\n````" in md  # the fence is longer than any backtick run inside
    html = doc.html("t", {})
    assert "<td><code>|x| &lt; 1</code></td>" in html
    assert '<strong>bold</strong> and <code>a&lt;b</code> and <a href="other/report.md">link</a>' in html
    assert "<pre>x &lt; y &amp; ```</pre>" in html


def test_tiny_run_report(request, tmp_path: Path):
    """The report of a real run made by the pipeline with the tiny models (read-only: written elsewhere)."""
    try:
        run_dir = request.getfixturevalue("tiny_run_dir")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py has no tiny_run_dir fixture")
    R.write_report(run_dir, output_dir=tmp_path / "rep", subsets=20, bootstrap=100)
    assert_valid_pngs(tmp_path / "rep", R.PLOTS)
    results = read_json(run_dir / "results.json")
    md = (tmp_path / "rep" / "report.md").read_text()
    acc, total, n = results["accuracy"], results["num_problems"], results["n"]
    assert (
        f"Weighted Best-of-{n} solved {acc['weighted_bon']['correct']}/{total} problems" in md
        and f"greedy {acc['greedy']['correct']}/{total}" in md
    )
    assert "results.json disagrees" not in md
    assert not (run_dir / "report").exists()
