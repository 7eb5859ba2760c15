"""``bestofn compare`` on three scripted runs (Best-of-N, beam search, DVTS) with answers worked out by hand.

Two problems (a level-1 and a level-2 one), N=4, beam width 2. The scripted tree: first steps ``0``-``3``
(reward .9 for ``1``, .2 for the others), second steps ``x.y`` finish (reward .8 for ``y=1``, else .3). A
Best-of-N sample is a first step that runs to its end. Right answers are on these labels (else wrong):

    problem 0 (level 1): 2, 1.1, 0.1, 2.1        problem 1 (level 2): 1.1, 0.1, 0.0

- Best-of-N pools {0, 1, 2, 3}: only 2 is right (.2) against 1.3 for the wrong answer -> wrong on both.
- Beam search keeps 1 (.9) and 0 (the earliest of the .2 ties); pools {1.0, 1.1, 0.0, 0.1}: problem 0 right
  1.6 vs .6; problem 1 right .8 + .3 + .8 vs .3 -> right on both.
- DVTS follows 1 in subtree {0, 1} and 2 (earliest tie) in subtree {2, 3}; pools {1.0, 1.1, 2.0, 2.1}:
  problem 0 right 1.6 vs .6; problem 1 right .8 vs 1.4 wrong -> right on problem 0 only.

So at N=4 (weighted Best-of-N selection): Best-of-N 0%, beam search 100%, DVTS 50%; level 1: 0, 100, 100;
level 2: 0, 100, 0. Best-of-N at n=1: problem 0 is right on 1 of 4 samples -> 12.5% over both problems.

Two more Best-of-N runs: ``bon-2``, whose PRM gives first step 2 (problem 0's right answer) .9 and the others .2
(right .9 vs wrong .6 on problem 0 -> 50% at N=4), and ``hot``, sampled at temperature 1.0 (not comparable).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bestofn import cli, pipeline
from bestofn.io import read_jsonl
import numpy as np

from bestofn.errors import BestOfNError
from bestofn.report import analysis as A
from bestofn.report.compare import Point, _budget_verdicts, compare_runs, write_compare_report
from bestofn.rundir import RECORD
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import ScriptedModels, ScriptedTreeBackend, ScriptedTreePRM, TreeRules

from conftest import tiny_config

RIGHT = [{"2", "1.1", "0.1", "2.1"}, {"1.1", "0.1", "0.0"}]


def _rules(chosen: list[dict], favourite: str) -> TreeRules:
    return TreeRules(
        reward=lambda k, label: ((0.9 if label == favourite else 0.2) if "." not in label
                                 else (0.8 if label.endswith("1") else 0.3)),
        end=lambda k, label: "stop" if label.count(".") == 1 else None,
        answer=lambda k, label: chosen[k]["answer"] if label in RIGHT[k] else "12345")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, math500_path, tiny_generator_dir, tiny_prm_dir) -> dict[str, Path]:
    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    chosen = [next(r for r in rows if r["level"] == lvl and r["answer"].isdigit()) for lvl in (1, 2)]
    base = tmp_path_factory.mktemp("compare")
    dataset = base / "two.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    texts = [r["problem"] for r in chosen]
    tokenizer = make_tokenizer()
    made = {}
    plan = [("bon", "best_of_n", "1", {}), ("beam", "beam_search", "1", {}), ("dvts", "dvts", "1", {}),
            ("bon-2", "best_of_n", "2", {}), ("hot", "best_of_n", "1", {"temperature": 1.0}),
            ("agg", "best_of_n", "1", {"aggregation": "min", "seed": 3})]
    for name, method, favourite, overrides in plan:
        rules = _rules(chosen, favourite)
        models = ScriptedModels(ScriptedTreeBackend(texts, rules, tokenizer, "\n"), ScriptedTreePRM(texts, rules, "\n"))
        config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, base / name, num_problems=2,
                             levels=[1, 2], method=method, beam_width=2, num_iterations=3, max_new_tokens=256,
                             **overrides)
        pipeline.run(config, models=models)
        made[name] = base / name
    return made


@pytest.fixture(scope="module")
def three_runs(runs) -> list[Path]:
    return [runs["bon"], runs["beam"], runs["dvts"]]


def test_compare_numbers_match_the_hand_worked_runs(three_runs) -> None:
    cmp = compare_runs(three_runs, bootstrap=200)
    acc = {(m, n, lvl): e.value for (m, n, lvl), e in cmp.accuracy.items()}
    assert acc[("Best-of-N", 4, None)] == 0.0 and acc[("Best-of-N", 1, None)] == 0.125
    assert acc[("beam search", 4, None)] == 1.0 and acc[("DVTS", 4, None)] == 0.5
    assert [acc[(m, 4, 1)] for m in ("Best-of-N", "beam search", "DVTS")] == [0.0, 1.0, 1.0]
    assert [acc[(m, 4, 2)] for m in ("Best-of-N", "beam search", "DVTS")] == [0.0, 1.0, 0.0]
    # Search points: one per run, at its N; Best-of-N: n = 1, 2, 4 from its subsets.
    assert [(p.method, p.n) for p in cmp.points] == [("best_of_n", 1), ("best_of_n", 2), ("best_of_n", 4),
                                                     ("beam_search", 4), ("dvts", 4)]
    # Cost: a search spends every node it generated (pruned ones too), read back from its tree.
    tree = read_jsonl(three_runs[1] / "tree.jsonl")
    beam = next(p for p in cmp.points if p.method == "beam_search")
    assert beam.tokens.sum() == sum(n["num_tokens"] + n["lookahead_tokens"] for n in tree)
    overall = next(v for v in cmp.verdicts if v.level is None and v.n == 4)
    assert [m for m, _ in overall.ranking] == ["beam search", "DVTS", "Best-of-N"]
    assert not overall.clear and overall.p_value == 1.0  # two problems: one solved by only one, McNemar p = 1


def test_compare_intervals_are_the_run_reports(three_runs) -> None:
    # 0 of 2 problems: the Wilson interval [0, 65.8%] (z = 1.96: centre = half = 0.9604 / 2.9207), never [0, 0].
    cmp = compare_runs(three_runs, bootstrap=200)
    est = cmp.accuracy[("Best-of-N", 4, None)]
    assert (est.value, est.low, round(est.high, 3)) == (0.0, 0.0, 0.658)
    # And exactly what `bestofn report` says of the same run at every n.
    report = A.analyze(three_runs[0], bootstrap=200)
    assert [cmp.accuracy[("Best-of-N", n, None)] for n in (1, 2, 4)] == report.accuracy["weighted_bon"]


def test_compare_command_writes_the_report(three_runs, tmp_path) -> None:
    out = tmp_path / "cmp"
    assert cli.main(["compare", *map(str, three_runs), "--output-dir", str(out), "--bootstrap", "200"]) == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "compare_accuracy.png", "compare_by_level.png",
                                               RECORD}
    md = (out / "report.md").read_text()
    assert md.startswith("# Best-of-N vs beam search vs DVTS")
    assert "| beam search | 4 |" in md and "| DVTS | 4 |" in md and "| Best-of-N | 1 |" in md
    assert "| Best-of-N | 4 | " in md and "0.0% [0.0, 65.8]" in md
    # The scripted PRM does not say how many tokens it read: unavailable, never 0.
    bon_row = next(line for line in md.splitlines() if line.startswith("| Best-of-N | 4 |"))
    assert bon_row.split(" | ")[3] == "unavailable"
    assert "Compute-optimal choice per level" in md and "two-fold cross-validation" in md
    # One problem per level: a level cannot be split in two, and the in-sample pick is named as such.
    assert "Level 2, N=4: too few problems to split in two; in-sample best (chosen and graded on the same " \
           "problems, so optimistic): beam search" in md
    assert "Which method wins at equal compute" in md
    assert "| tie (beam search, DVTS) |" in md  # level 1: both solve its problem
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_title_names_the_methods_present(runs) -> None:
    from bestofn.report.compare import title

    assert title(compare_runs([runs["bon"], runs["dvts"]], bootstrap=50)) == "Best-of-N vs DVTS"
    assert title(compare_runs([runs["bon"], runs["bon-2"]], bootstrap=50)) == "Best-of-N: 2 runs side by side"


def test_runs_of_one_method_are_kept_side_by_side(runs, tmp_path) -> None:
    # Two Best-of-N runs at the same N, scored differently: two series labelled by run name, neither dropped.
    cmp = compare_runs([runs["bon"], runs["bon-2"], runs["beam"]], bootstrap=200)
    assert list(cmp.series_method) == ["Best-of-N (bon)", "Best-of-N (bon-2)", "beam search"]
    acc = {(s, n): e.value for (s, n, lvl), e in cmp.accuracy.items() if lvl is None}
    assert acc[("Best-of-N (bon)", 4)] == 0.0 and acc[("Best-of-N (bon-2)", 4)] == 0.5
    assert acc[("Best-of-N (bon)", 1)] == acc[("Best-of-N (bon-2)", 1)] == 0.125
    overall = next(v for v in cmp.verdicts if v.level is None and v.n == 4)
    assert [s for s, _ in overall.ranking] == ["beam search", "Best-of-N (bon-2)", "Best-of-N (bon)"]
    out = tmp_path / "cmp"
    write_compare_report([runs["bon"], runs["bon-2"]], out, bootstrap=50)
    md = (out / "report.md").read_text()
    assert "| Best-of-N (bon) | 4 |" in md and "| Best-of-N (bon-2) | 4 |" in md


def test_runs_made_differently_are_refused_with_the_difference(runs, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(runs["bon"]), str(runs["hot"]), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bestofn: error: the runs are not comparable: temperature differs "
                                               "(bon: 0.8; hot: 1.0)")
    assert "--allow-mixed" in err[0] and not out.exists()


def test_runs_that_differ_in_a_setting_of_the_one_list_are_refused(runs) -> None:
    """Issue 26: the aggregation and the seed change results, so runs that differ in them are not compared."""
    with pytest.raises(BestOfNError, match=r"not comparable: seed differs \(bon: 0; agg: 3\); aggregation differs "
                                           r"\(bon: last; agg: min\);"):
        compare_runs([runs["bon"], runs["agg"]])


def test_allow_mixed_labels_every_difference(runs, tmp_path) -> None:
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(runs["bon"]), str(runs["hot"]), "--output-dir", str(out), "--allow-mixed",
                     "--bootstrap", "50"]) == 0
    md = (out / "report.md").read_text()
    assert "## The runs differ (--allow-mixed)" in md
    assert "| setting | bon | hot |" in md and "| temperature | 0.8 | 1.0 |" in md
    assert "| top_p |" not in md  # only what differs


def test_compare_refuses_an_unknown_selection_rule(three_runs, tmp_path) -> None:
    with pytest.raises(BestOfNError, match="selection must be"):
        write_compare_report(three_runs, tmp_path, selection="pass_at_n")


# --- compute-optimal: cross-validation and matched budgets, worked by hand ------------------------------------------
def test_two_fold_split_ranks_problems_by_their_id_hash() -> None:
    import hashlib

    ids = ["p/a", "p/b", "p/c", "p/d", "p/e"]
    ranked = sorted(ids, key=lambda u: hashlib.sha256(f"0:{u}".encode()).hexdigest())
    expected = [0 if u in ranked[:2] else 1 for u in ids]  # 5 problems: the first 2 by rank in fold 0
    assert A.two_fold_split(ids).tolist() == expected
    assert A.two_fold_split(ids[::-1]).tolist() == expected[::-1]  # by id, not by position


def test_compare_splits_each_level_by_its_own_seed(synthetic_run_dir) -> None:
    """The folds of compare's cross-validation follow its seed: per level, ids ranked by sha256(seed:id), the
    first half in fold 0 (worked here from the ids, not by the code under test)."""
    import hashlib

    from bestofn.io import read_jsonl

    problems = read_jsonl(synthetic_run_dir / "problems.jsonl")
    folds = {}
    for seed in (0, 7):
        cmp = compare_runs([synthetic_run_dir], seed=seed, subsets=2, bootstrap=10)
        want = {}
        for level in {p["level"] for p in problems}:
            ids = [p["unique_id"] for p in problems if p["level"] == level]
            ranked = sorted(ids, key=lambda u: hashlib.sha256(f"{seed}:{u}".encode()).hexdigest())
            want.update({u: int(u not in ranked[: len(ids) // 2]) for u in ids})
        assert dict(zip(cmp.unique_ids, cmp.folds.tolist())) == want
        folds[seed] = want
    assert folds[0] != folds[7]  # the seed matters: a compare that ignored it would fail one of the two


def test_cross_validation_chooses_on_one_half_and_grades_on_the_other() -> None:
    # Candidates (rows) on problems 0-3; folds 0, 0, 1, 1.
    #   fold 0: candidate 0 has .5, candidate 1 .5 -> tie, the earlier: 0
    #   fold 1: candidate 0 has .5, candidate 1 1.0 -> 1
    # Problems of fold 0 are graded with the pick of fold 1 (candidate 1: 0, 1); of fold 1 with candidate 0 (1, 0).
    values = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])
    cv = A.cross_validate(values, np.array([0, 0, 1, 1]))
    assert cv.picks == (0, 1)
    assert cv.held_out.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert cv.estimate.value == 0.5  # the in-sample best (candidate 1) has .75: optimistic
    assert A.cross_validate(values, np.array([1, 1, 1, 1])) is None  # an empty half: nothing to choose on


def test_matched_budgets_rank_each_series_by_its_most_expensive_affordable_point() -> None:
    # Best-of-N points cost 10, 20, 40 tokens per problem (accuracy .2, .4, .6); beam search one point of 30 (.5).
    # Budget 10 and 20: only Best-of-N fits (no verdict). 30: Best-of-N n=2 (.4) vs beam (.5) -> beam.
    # 40: Best-of-N n=4 (.6) vs beam (.5) -> Best-of-N.
    def point(series: str, method: str, n: int, accuracy: list[float], cost: float) -> Point:
        return Point(series, method, n, Path("."), np.array(accuracy), np.full(5, cost), np.zeros(5))

    pts = [point("BoN", "best_of_n", 1, [1, 0, 0, 0, 0], 10), point("BoN", "best_of_n", 2, [1, 1, 0, 0, 0], 20),
           point("BoN", "best_of_n", 4, [1, 1, 1, 0, 0], 40), point("beam", "beam_search", 4, [1, 1, .5, 0, 0], 30)]
    mask = np.ones(5, bool)
    accuracy = {(p.series, p.n, None): A.proportion(p.accuracy) for p in pts}
    verdicts = _budget_verdicts(pts, mask, None, "generated", accuracy)
    assert [(v.budget, [(p.series, p.n) for p, _, _ in v.within], v.best) for v in verdicts] == [
        (30.0, [("beam", 4), ("BoN", 2)], ["beam"]), (40.0, [("BoN", 4), ("beam", 4)], ["BoN"])]


def test_a_points_cost_is_its_mean_tokens_and_unknown_stays_unknown() -> None:
    # generated tokens 10 and 20, PRM tokens 1 and 3: generated 15, total (10+1 + 20+3) / 2 = 17; on the first
    # problem only: 10 and 11. A PRM count that is unknown (nan) makes the total unknown, never a smaller number.
    point = Point("s", "best_of_n", 2, Path("."), np.array([1.0, 0.0]), np.array([10.0, 20.0]), np.array([1.0, 3.0]))
    every, first = np.ones(2, bool), np.array([True, False])
    assert (point.cost("generated", every), point.cost("total", every)) == (15.0, 17.0)
    assert (point.cost("generated", first), point.cost("total", first)) == (10.0, 11.0)
    point.prm_tokens[1] = np.nan
    assert (point.cost("generated", every), point.cost("total", every)) == (15.0, None)


def test_runs_whose_folders_share_a_name_are_named_by_their_paths(runs, tmp_path) -> None:
    import shutil

    copy = Path(shutil.copytree(runs["bon"], tmp_path / "elsewhere" / "bon"))
    cmp = compare_runs([runs["bon"], copy], bootstrap=50)
    assert cmp.names == [str(runs["bon"]), str(copy)]
    assert list(cmp.series_method) == [f"Best-of-N ({runs['bon']})", f"Best-of-N ({copy})"]


def test_a_lead_is_clear_only_when_the_run_reports_test_says_so() -> None:
    # 0/1 outcomes on 6 problems: A solves all, B none -> 6 problems solved by only one, exact McNemar
    # p = 2 / 2**6 = 0.03125 < 5%: clear. On 5 problems p = 2 / 2**5 = 0.0625: within the noise, although the
    # bootstrap interval of the margin is [+100, +100] points.
    from bestofn.report.compare import _verdicts

    for size, clear, p in ((6, True, 0.03125), (5, False, 0.0625)):
        pts = [Point(s, m, 4, Path("."), np.full(size, acc), np.zeros(size), np.zeros(size))
               for s, m, acc in (("A", "beam_search", 1.0), ("B", "dvts", 0.0))]
        accuracy = {(p_.series, 4, None): A.proportion(p_.accuracy) for p_ in pts}
        (v,) = _verdicts(pts, np.ones(size, bool), None, accuracy, np.random.default_rng(0), 100)
        assert (v.ranking[0][0], v.clear, v.p_value, v.differing) == ("A", clear, p, size)
    # Expected accuracies (n-subsets): the bootstrap interval decides, with at least 6 differing problems.
    pts = [Point(s, m, 2, Path("."), np.array(acc), np.zeros(6), np.zeros(6))
           for s, m, acc in (("A", "best_of_n", [.75] * 6), ("B", "dvts", [.25] * 6))]
    accuracy = {(p_.series, 2, None): A.proportion(p_.accuracy) for p_ in pts}
    (v,) = _verdicts(pts, np.ones(6, bool), None, accuracy, np.random.default_rng(0), 100)
    assert v.p_value is None and v.clear


def test_an_import_is_compared_only_with_allow_mixed_and_its_unknowns_are_named(runs, tmp_path, capsys) -> None:
    # Completions made elsewhere on the same two problems, N=2: the right answer scored .9, a wrong one .1 (so
    # weighted Best-of-N is right on both: 100%), without token counts.
    from bestofn.importer import import_completions

    problems = [json.loads(line) for line in (runs["bon"].parent / "two.jsonl").read_text().splitlines()]
    rows = [{**p, "completions": [f"So the answer is $\\boxed{{{p['answer']}}}$.", "So the answer is $\\boxed{12345}$."],
             "scores": [[0.9], [0.1]]} for p in problems]
    source = tmp_path / "elsewhere.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    imported = import_completions(str(source), tmp_path / "imported", generator="org/gen", temperature=0.8)
    capsys.readouterr()  # the import's own progress lines
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(runs["bon"]), str(imported), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "generator differs (bon: " in err and "imported: org/gen)" in err
    assert "max_new_tokens differs (bon: 256; imported: not stated)" in err and "temperature" not in err
    assert cli.main(["compare", str(runs["bon"]), str(imported), "--output-dir", str(out), "--allow-mixed",
                     "--bootstrap", "50"]) == 0
    md = (out / "report.md").read_text()
    assert "| max_new_tokens | 256 | not stated |" in md
    row = next(line for line in md.splitlines() if line.startswith("| Best-of-N (imported) | 2 |"))
    assert row.split(" | ")[2:5] == ["unavailable", "unavailable", "100.0% [34.2, 100.0]"]
