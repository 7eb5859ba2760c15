"""Tests of bestofn.report.analysis on run directories with known answers, made by the real pipeline.

The runs come from ``scripted_runs.build_run``: the scripted generator writes each spec's solutions and the
scripted PRM gives them the spec's step rewards, so grading, selection and results.json are the pipeline's
own; the right numbers are worked out by hand here (or computed plainly from the artifacts).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from bestofn.errors import BestOfNError
from bestofn.io import read_jsonl
from bestofn.report import analysis as A
from bestofn.selection import (answer_groups, best_solution, choose, choose_majority, choose_naive, choose_weighted,
                               group_answers, heaviest_group, majority_vote, naive_best_of_n, weighted_best_of_n)
from scripted_runs import build_run, problem, sample, synthetic_specs

# The problem the issue asks for: naive and weighted selection must disagree.
#   samples: "1" (reward 0.9), "2" (0.5), "2" (0.5); gold "2"
#   naive picks the single best solution ("1", wrong); weighted sums 0.5+0.5=1.0 > 0.9 for "2" (right).
DISAGREE = problem("disagree", "2", greedy="1", samples=[sample("1", 0.9), sample("2", 0.5), sample("2", 0.5)])
# Majority says "5" (two votes, low rewards); both reward rules say "7" (0.9 > 0.1+0.1). Gold 7. Greedy right.
PRM_HELPS = problem("prm-helps", "7", greedy="7", samples=[sample("5", 0.1), sample("7", 0.9), sample("5", 0.1)],
                    level=2)
# Nobody gets it: no sample is right, greedy wrong; one sample has no answer (and no scored step).
HOPELESS = problem("hopeless", "3", greedy="4", samples=[sample("4", 0.6), sample(None), sample("8", 0.7)], level=2)


@pytest.fixture(scope="session")
def models(tiny_generator_dir, tiny_prm_dir) -> tuple[Path, Path]:
    return tiny_generator_dir, tiny_prm_dir


@pytest.fixture(scope="module")
def three_run(tmp_path_factory, models) -> Path:
    """DISAGREE, PRM_HELPS, HOPELESS through the pipeline (read-only; tests that edit it take a copy)."""
    return build_run(tmp_path_factory.mktemp("three") / "run", [DISAGREE, PRM_HELPS, HOPELESS], models)


@pytest.fixture
def run_dir(three_run: Path, tmp_path: Path) -> Path:
    """A private copy of ``three_run`` that a test may break."""
    return Path(shutil.copytree(three_run, tmp_path / "run"))


# --------------------------------------------------------------------------------------------------------
# Subset selection by label agrees with bestofn.selection
# --------------------------------------------------------------------------------------------------------
def test_sample_sizes_are_powers_of_two_up_to_n():
    assert A.sample_sizes(16) == [1, 2, 4, 8, 16]
    assert A.sample_sizes(12) == [1, 2, 4, 8, 12]
    assert A.sample_sizes(1) == [1]


def test_draw_subsets_enumerates_small_cases_and_samples_distinct_sorted_indices():
    rng = np.random.default_rng(0)
    assert sorted(map(tuple, A.draw_subsets(4, 2, 100, rng))) == list(combinations(range(4), 2))
    big = A.draw_subsets(16, 8, 300, rng)
    assert big.shape == (300, 8)
    assert all(len(set(row)) == 8 and list(row) == sorted(row) for row in big)  # without replacement, sorted
    assert len({tuple(r) for r in big}) > 250  # random, not the first n every time
    assert np.abs(np.bincount(big.ravel(), minlength=16) / 300 - 0.5).max() < 0.12


def test_fast_path_matches_selection_on_every_subset_of_random_problems():
    """Random answers (ties in reward included) on all subsets: label-based picks == selection's picks."""
    rng = np.random.default_rng(1)
    vocab = ["1", "2", "3", None]
    for _ in range(12):
        n = 6
        answers = [vocab[k] for k in rng.integers(0, 4, n)]
        rewards = np.round(rng.random(n), 1)  # coarse values: many exact ties
        labels = np.full(n, -1)
        for g, members in enumerate(group_answers(answers)):
            labels[members] = g
        for size in range(1, n + 1):
            subsets = np.array(list(combinations(range(n), size)))
            maj, wei, nai = (choose(rule, labels, rewards, subsets) for rule in ("majority", "weighted_bon", "naive_bon"))
            for s, idx in enumerate(subsets):
                sub_a = [answers[i] for i in idx]
                sub_r = [float(rewards[i]) for i in idx]
                assert (answers[maj[s]] if maj[s] >= 0 else None) == majority_vote(sub_a)
                assert (answers[wei[s]] if wei[s] >= 0 else None) == weighted_best_of_n(sub_a, sub_r)
                assert (answers[nai[s]] if nai[s] >= 0 else None) == naive_best_of_n(sub_a, sub_r)


def test_ties_go_to_the_earliest_group_within_the_subset():
    labels = np.array([0, 1, 0, 1])  # x(0) y(1) x(2) y(3); in subset {1, 2} y comes first and wins the tie
    assert heaviest_group(labels, np.ones(4), np.array([[1, 2]]))[0] == 1
    assert heaviest_group(labels, np.ones(4), np.array([[0, 1]]))[0] == 0
    assert heaviest_group(np.array([-1, -1]), np.ones(2), np.array([[0, 1]]))[0] == -1
    assert best_solution(np.array([-1, 0]), np.array([0.9, 0.1]), np.array([[0, 1]]))[0] == 1  # None never wins


# --------------------------------------------------------------------------------------------------------
# Numbers of hand-made runs
# --------------------------------------------------------------------------------------------------------
def test_equivalent_spellings_form_one_group(tmp_path: Path, models):
    spec = problem("half", "\\frac{1}{2}", greedy="0.5",
                   samples=[sample("0.5", 0.2), sample("\\frac{1}{2}", 0.3), sample("1/3", 0.4)])
    run = A.load_run_data(build_run(tmp_path / "r", [spec], models))
    assert list(run.problems[0].labels) == [0, 0, 1]
    out = A.full_n_outcome(run.problems[0], "last")
    assert out.weighted_bon.correct and not out.naive_bon.correct  # 0.2+0.3 > 0.4, but 0.4 is the single best
    assert out.weighted_bon.sample_index == 1  # shown: the best-scored solution of the winning group


def test_expected_accuracy_vs_n_matches_hand_computation(three_run: Path):
    """DISAGREE, worked by hand over all subsets (N=3, every subset enumerated, so values are exact):
    n=1: each method is right iff the single sample is "2": 2/3.
    n=2: {0,1} and {0,2} pick "1" (vote tie -> earliest; 0.9 beats 0.5); {1,2} pick "2": 1/3 (pass@2: 1).
    n=3: majority "2", weighted "2" (1.0 > 0.9), naive "1".
    """
    run = A.load_run_data(three_run)
    col = {p.unique_id: k for k, p in enumerate(run.problems)}  # the pipeline orders problems by level, then id
    curves = A.accuracy_curves(run, subsets=50, seed=0)
    assert curves.ns == [1, 2, 3]
    expect = {"majority": [2 / 3, 1 / 3, 1], "weighted_bon": [2 / 3, 1 / 3, 1], "naive_bon": [2 / 3, 1 / 3, 0],
              "pass_at_n": [2 / 3, 1, 1], "greedy": [0, 0, 0]}
    for m, values in expect.items():
        np.testing.assert_allclose(curves.methods[m][:, col["disagree"]], values, err_msg=m)
    # PRM_HELPS at n=3: majority "5" (wrong), weighted and naive "7"
    np.testing.assert_allclose([curves.methods[m][2, col["prm-helps"]] for m in ("majority", "weighted_bon", "naive_bon")], [0, 1, 1])
    # tokens: the mean over all n-subsets of the summed counts = n * (mean count), from samples.jsonl
    counts = [r["num_tokens"] for r in read_jsonl(three_run / "samples.jsonl") if r["unique_id"] == "disagree"]
    np.testing.assert_allclose(curves.tokens[:, col["disagree"]], [k * np.mean(counts) for k in (1, 2, 3)])


def test_full_n_analysis_flips_and_consistency(three_run: Path):
    an = A.analyze(three_run, subsets=50, seed=0, bootstrap=200)
    assert not an.inconsistencies  # the label fast path reproduces results.json (written by the pipeline)
    by_id = {o.unique_id: o for o in an.outcomes}
    assert [by_id["disagree"].solved(m) for m in A.METHODS] == [False, True, False, True, True]
    assert [by_id["prm-helps"].solved(m) for m in A.METHODS] == [True, False, True, True, True]
    assert [by_id["hopeless"].solved(m) for m in A.METHODS] == [False] * 5
    wg = an.comparisons["weighted_bon-greedy"]
    assert wg.only_a == ["disagree"] and wg.only_b == [] and wg.informative == 1 and not wg.significant
    assert wg.difference.value == pytest.approx(1 / 3)
    assert wg.difference.low <= wg.difference.value <= wg.difference.high
    wm = an.comparisons["weighted_bon-majority"]
    assert wm.only_a == ["prm-helps"] and wm.only_b == []
    assert an.at_full_n("weighted_bon").value == pytest.approx(2 / 3)
    assert an.at_full_n("greedy").value == pytest.approx(1 / 3)
    groups = by_id["disagree"].groups
    assert [(g["answer"], g["count"], round(g["reward_sum"], 6), g["correct"]) for g in groups] == [
        ("2", 2, 1.0, True), ("1", 1, 0.9, False)]
    assert an.by_level[1]["weighted_bon"][-1].value == 1.0
    assert an.by_level[2]["weighted_bon"][-1].value == 0.5
    assert an.by_level[2]["greedy"][-1].value == 0.5


def test_accuracy_intervals_are_wilson_and_never_collapse(three_run: Path):
    """The interval of k/n solved is the Wilson score interval, written out plainly here."""
    def wilson(k: int, n: int) -> tuple[float, float]:
        z = 1.959963984540054
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return centre - half, centre + half

    an = A.analyze(three_run, subsets=20, bootstrap=50)
    est = an.at_full_n("weighted_bon")  # 2 of 3
    assert (est.low, est.high) == pytest.approx(wilson(2, 3))
    one = an.by_level[1]["weighted_bon"][-1]  # 1 of 1: 100%, yet the interval keeps its width
    assert one.value == 1.0 and one.high == pytest.approx(1.0) and one.low == pytest.approx(wilson(1, 1)[0])
    assert one.low < 0.25
    assert A.wilson(12, 12)[0] == pytest.approx(wilson(12, 12)[0]) and A.wilson(12, 12)[0] < 0.8
    assert A.wilson(0, 10) == pytest.approx((0.0, wilson(0, 10)[1]))


@pytest.mark.parametrize("total", range(1, 101))
def test_wilson_ends_exactly_at_0_and_1_with_non_negative_error_bars(total: int):
    """0 of t solved has the lower bound 0 exactly, t of t the upper bound 1 exactly (in floating point, the formula
    gives 5.6e-17 at 0/3 and 0.9999999999999999 at 30/30): an error bar below or above the point is never negative."""
    for solved, end in ((0, 0), (total, 1)):
        low, high = A.wilson(solved, total)
        p = solved / total
        assert (low if end == 0 else high) == float(end), (solved, total, low, high)
        assert 0.0 <= low <= p <= high <= 1.0 and p - low >= 0.0 and high - p >= 0.0
    for solved in range(total + 1):  # and every other count stays inside [0, 1] around its point
        low, high = A.wilson(solved, total)
        assert 0.0 <= low <= solved / total <= high <= 1.0



def rewrite_unrecorded(run_dir: Path, name: str, text: str) -> None:
    """Rewrite a finished file and record its new sha256 in manifest.json (a record dropped is no seal, issue 28),
    so the analysis' own consistency checks (not the manifest's hash check, tested in test_resume) see it."""
    (run_dir / name).write_text(text)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((run_dir / name).read_bytes()).hexdigest()
    (run_dir / "manifest.json").write_text(json.dumps(manifest))

def test_results_json_disagreement_is_reported(run_dir: Path):
    results = json.loads((run_dir / "results.json").read_text())
    results["accuracy"]["weighted_bon"]["correct"] = 3
    rewrite_unrecorded(run_dir, "results.json", json.dumps(results))
    notes = A.analyze(run_dir, subsets=10, bootstrap=50).inconsistencies
    assert notes == ["weighted_bon: results.json says 3 correct, the samples give 2"]


def test_aggregations_can_disagree(tmp_path: Path, models):
    """Gold "1". Sample 0 ("1"): steps 0.2, 0.9; sample 1 ("2"): steps 0.6, 0.8.
    last: 0.9 > 0.8 -> "1" (right); min: 0.2 < 0.6 -> "2"; prod: 0.18 < 0.48 -> "2"; mean: 0.55 < 0.7 -> "2"."""
    spec = problem("agg", "1", greedy="1", samples=[sample("1", 0.2, 0.9), sample("2", 0.6, 0.8)])
    an = A.analyze(build_run(tmp_path / "r", [spec], models), subsets=10, bootstrap=50)
    assert not an.run.one_score
    full = {a: an.aggregation[a]["weighted_bon"][-1].value for a in ("last", "min", "prod", "mean")}
    assert full == {"last": 1.0, "min": 0.0, "prod": 0.0, "mean": 0.0}
    assert an.aggregation["min"]["naive_bon"][-1].value == 0.0


def test_auroc_known_values():
    assert A.auroc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0], bool)) == 1.0
    assert A.auroc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([1, 1, 0, 0], bool)) == 0.0
    assert A.auroc(np.array([0.5, 0.5]), np.array([1, 0], bool)) == 0.5  # a tie counts half
    assert A.auroc(np.array([0.9, 0.4, 0.3, 0.6]), np.array([1, 1, 0, 0], bool)) == 0.75
    assert A.auroc(np.array([0.1, 0.2]), np.array([1, 1], bool)) is None


def test_prm_stats_pool_rewards_and_skip_unscored(three_run: Path):
    stats = A.prm_stats(A.load_run_data(three_run), "last", np.random.default_rng(0), rounds=50)
    assert sorted(stats.correct_rewards) == [0.5, 0.5, 0.9]
    assert sorted(stats.incorrect_rewards) == [0.1, 0.1, 0.6, 0.7, 0.9]
    assert stats.unscored == 1  # HOPELESS's sample without an answer has no scored step
    assert stats.auroc == pytest.approx((2 + 2 + 4.5) / 15)
    assert stats.within_auroc == pytest.approx(0.5) and stats.within_problems == 2


def test_mcnemar_exact_p_and_the_fewest_informative_problems():
    assert A.mcnemar_p(0, 0) == 1.0
    assert A.mcnemar_p(5, 0) == pytest.approx(2 / 32)
    assert A.mcnemar_p(3, 1) == pytest.approx(2 * (1 + 4) / 16)
    assert A.min_informative_for_significance() == 6  # 2/2**5 = 0.0625, 2/2**6 = 0.03125


def test_subset_sampling_is_seeded(tmp_path: Path, models):
    rng = np.random.default_rng(7)
    specs = [problem(f"p{k}", "1", greedy="1",
                     samples=[sample(str(rng.integers(1, 4)), round(float(rng.random()), 3)) for _ in range(8)])
             for k in range(3)]
    run = A.load_run_data(build_run(tmp_path / "r", specs, models))
    a, b = A.accuracy_curves(run, subsets=20, seed=3), A.accuracy_curves(run, subsets=20, seed=3)
    c = A.accuracy_curves(run, subsets=20, seed=4)
    assert all(np.array_equal(a.methods[m], b.methods[m]) for m in A.METHODS)
    assert any(not np.array_equal(a.methods[m], c.methods[m]) for m in A.METHODS)  # C(8,4)=70 > 20: sampled


# --------------------------------------------------------------------------------------------------------
# Where selection matters, one-score rewards, calibration, step rewards
# --------------------------------------------------------------------------------------------------------
def test_selection_matters_on_exactly_the_contested_problems(tmp_path: Path, models):
    """Six problems, N=4; exactly three (c1-c3) have more than one answer group."""
    specs = [
        problem("u-right", "1", "1", [sample("1", 0.6)] * 4),  # unanimous, right
        problem("u-wrong", "2", "2", [sample("9", 0.6)] * 3 + [sample(None)]),  # unanimous (one without answer), wrong
        problem("silent", "3", "3", [sample(None)] * 4),  # no answer at all
        problem("c1", "4", "4", [sample("4", 0.9), sample("5", 0.2), sample("5", 0.3), sample("4", 0.8)]),  # all right
        problem("c2", "5", "1", [sample("5", 0.3), sample("6", 0.6), sample("6", 0.7), sample("6", 0.9)]),  # missed
        problem("c3", "6", "1", [sample("7", 0.3), sample("8", 0.6), sample("7", 0.7), sample("8", 0.1)]),  # none right
    ]
    an = A.analyze(build_run(tmp_path / "r", specs, models), subsets=10, bootstrap=20)
    m = an.matters
    assert sorted(m.contested) == ["c1", "c2", "c3"]
    assert sorted(m.unanimous) == ["u-right", "u-wrong"] and m.no_answer == ["silent"]
    assert m.missed == ["c2"]  # right answer "5" sampled once, outweighed
    assert sorted(m.none_right) == ["c3", "silent", "u-wrong"]
    # c1: majority tie 2-2 -> "4" (first); weighted 1.7 vs 0.5 -> "4"; naive 0.9 -> "4": no disagreement.
    # c2: all "6". c3: majority tie -> "7" (first); weighted 1.0 vs 0.7 -> "7"; naive 0.7 -> "7".
    assert m.rules_disagree == []


def test_rules_that_pick_different_wrong_answers_disagree():
    """Majority picks "2", both Best-of-N rules "3": all wrong, yet the rules disagree; a problem where every rule
    picks the same answer does not."""
    def outcome(uid: str, majority: str) -> A.ProblemOutcome:
        return A.ProblemOutcome(uid, 1, "", "1", None, A.Pick(majority, False, 0), A.Pick("3", False, 1),
                                A.Pick("3", False, 1), False, 0, [])

    assert A.selection_matters([outcome("differ", "2"), outcome("same", "3")]).rules_disagree == ["differ"]


def test_the_runs_aggregation_picks_for_the_reward_rules():
    """One problem, N=2: sample 0 is right with step rewards (0.1, 0.9), sample 1 wrong with (0.5, 0.6). With the
    run's aggregation `min` weighted and naive Best-of-2 pick sample 1 (0.5 > 0.1): accuracy 0 at n=2, where
    `last` would pick sample 0 (0.9 > 0.6). At n=1 every rule averages the two samples: 0.5."""
    p = A.ProblemData(
        unique_id="x", level=1, subject="", problem="", gold="1", greedy_answer=None, greedy_correct=None,
        greedy_tokens=float("nan"), greedy_text="", answers=["1", "2"], texts=["", ""], correct=np.array([True, False]),
        tokens=np.full(2, np.nan), string_match=np.zeros(2, bool), greedy_string_match=None,
        step_rewards=[[0.1, 0.9], [0.5, 0.6]], scored=np.ones(2, bool), truncated=np.zeros(2, bool),
        cut_off=np.zeros(2, bool), labels=np.array([0, 1]))
    curves = A.accuracy_curves(A.RunData(Path("."), 2, "min", {}, {}, [p]), subsets=10)
    for rule in ("naive_bon", "weighted_bon"):
        assert curves.methods[rule][:, 0].tolist() == [0.5, 0.0], rule
        assert curves.by_aggregation["last"][rule][:, 0].tolist() == [0.5, 1.0], rule


def test_one_score_rewards_are_detected(tmp_path: Path, models):
    specs = [problem("o1", "1", "2", [sample("1", 0.8), sample("2", 0.3), sample("2", 0.4)]),
             problem("o2", "2", "2", [sample("2", 0.2), sample("3", 0.9), sample("2", 0.5)])]
    an = A.analyze(build_run(tmp_path / "r", specs, models), subsets=10, bootstrap=20)
    assert an.run.one_score
    for how in ("min", "prod", "mean"):  # every aggregation of one score is that score
        for m in ("naive_bon", "weighted_bon"):
            assert [e.value for e in an.aggregation[how][m]] == [e.value for e in an.aggregation["last"][m]]


def test_calibration_hand_example():
    """Bins of 0.1: 0.05 -> bin 0 (wrong), 0.15 -> bin 1 (right), 0.95 twice -> bin 9 (one right), 1.0 -> bin 9.
    ECE = (1 * |0 - .05| + 1 * |1 - .15| + 3 * |2/3 - (.95 + .95 + 1) / 3|) / 5."""
    cal = A.calibration(np.array([0.05, 0.15, 0.95, 0.95, 1.0]), np.array([False, True, True, False, True]))
    assert list(cal.counts) == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert cal.accuracy[9] == pytest.approx(2 / 3) and np.isnan(cal.accuracy[5])
    assert cal.ece == pytest.approx((0.05 + 0.85 + 3 * abs(2 / 3 - 2.9 / 3)) / 5)
    assert cal.clipped == 0 and cal.total == 5


def test_calibration_of_the_synthetic_run_matches_a_direct_computation(synthetic_run_dir: Path):
    """From samples.jsonl, plainly: the last step reward of every scored sample, binned by tenths."""
    counts, right, summed = [0] * 10, [0] * 10, [0.0] * 10
    for row in read_jsonl(synthetic_run_dir / "samples.jsonl"):
        if not row["step_rewards"]:
            continue
        reward = row["step_rewards"][-1]
        b = min(int(reward * 10), 9)
        counts[b] += 1
        right[b] += row["correct"]
        summed[b] += reward
    total = sum(counts)
    ece = sum(c / total * abs(r / c - s / c) for c, r, s in zip(counts, right, summed) if c)
    cal = A.run_calibration(A.load_run_data(synthetic_run_dir))
    assert list(cal.counts) == counts and cal.total == total
    assert cal.ece == pytest.approx(ece)
    assert np.allclose(cal.accuracy[cal.counts > 0], [r / c for r, c in zip(right, counts) if c])


def test_step_curves_and_step_splitting():
    run = A.RunData(run_dir=Path("."), n=3, reward_aggregation="last", config={}, results={}, problems=[])
    rows = [((0.5, 0.9), True), ((0.7, 0.8, 0.6), True), ((0.4, 0.2), False), ((0.6,), True)]
    p = A.ProblemData(
        unique_id="x", level=1, subject="", problem="", gold="1", greedy_answer=None, greedy_correct=None,
        greedy_tokens=float("nan"), greedy_text="", answers=["1"] * 4, texts=[""] * 4,
        correct=np.array([ok for _, ok in rows]), tokens=np.full(4, np.nan), string_match=np.zeros(4, bool),
        greedy_string_match=None, step_rewards=[list(s) for s, _ in rows], scored=np.ones(4, bool),
        truncated=np.zeros(4, bool), cut_off=np.zeros(4, bool), labels=np.zeros(4, int))
    run.problems = [p]
    curves = A.step_curves(run, min_count=2)
    assert list(curves[True].steps) == [1, 2]  # step 3 is reached by one right solution only
    assert curves[True].mean == pytest.approx([(0.5 + 0.7 + 0.6) / 3, (0.9 + 0.8) / 2])
    assert list(curves[True].count) == [3, 2]
    # quartiles, linear interpolation: step 1 of 0.5, 0.6, 0.7 -> 0.55 and 0.65; step 2 of 0.8, 0.9 -> 0.825, 0.875
    assert curves[True].q25 == pytest.approx([0.55, 0.825]) and curves[True].q75 == pytest.approx([0.65, 0.875])
    assert list(A.step_curves(run, min_count=1)[False].mean) == pytest.approx([0.4, 0.2])
    assert not run.has_greedy and not run.tokens_known and not run.one_score


def test_string_match_counts(synthetic_run_dir: Path):
    """Answers spelled "N.0" (every fourth right greedy answer, some samples of unanimous problems): math-verify
    accepts them, string matching does not."""
    spelled = sum(1 for s in synthetic_specs() if s["greedy"] == s["gold"] + ".0")
    checks = {c.source: c for c in A.answer_checks(A.load_run_data(synthetic_run_dir))}
    assert checks["greedy"].only_math_verify == spelled > 0
    assert checks["greedy"].total == 60 and checks["samples"].total == 60 * 16
    # samples: the right answers spelled "N.0" (a cut-off solution has no answer at all)
    spelled_samples = sum(1 for s in synthetic_specs() for x in s["samples"]
                          if x.answer == s["gold"] + ".0" and x.finish_reason == "stop")
    assert checks["samples"].only_math_verify == spelled_samples > 0


# --------------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------------
def test_empty_dir_names_missing_files_and_the_command(tmp_path: Path):
    with pytest.raises(BestOfNError) as err:
        A.load_run_data(tmp_path)
    msg = str(err.value)
    for name in ("config.yaml", "problems.jsonl", "greedy.jsonl", "samples.jsonl", "results.json"):
        assert name in msg
    assert "bestofn run --output-dir" in msg


def test_missing_results_and_samples(run_dir: Path):
    (run_dir / "results.json").unlink()
    (run_dir / "samples.jsonl").unlink()
    with pytest.raises(BestOfNError, match=r"not a finished run directory \(missing samples\.jsonl, results\.json\); "
                                           r".*bestofn run"):
        A.load_run_data(run_dir)


def test_missing_dir(tmp_path: Path):
    with pytest.raises(BestOfNError, match="does not exist"):
        A.load_run_data(tmp_path / "nope")


def test_rows_without_a_field(run_dir: Path):
    rows = read_jsonl(run_dir / "samples.jsonl")
    del rows[0]["correct"]
    rewrite_unrecorded(run_dir, "samples.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BestOfNError, match=r"rows without the field 'correct'.*bestofn run --config .* --output-dir"):
        A.load_run_data(run_dir)


def test_incomplete_samples(run_dir: Path):
    rows = read_jsonl(run_dir / "samples.jsonl")
    rewrite_unrecorded(run_dir, "samples.jsonl", "".join(json.dumps(r) + "\n" for r in rows[:-1]))
    with pytest.raises(BestOfNError, match=r"lacks scored samples 0..2 \(samples_used in results.json, at most n in "
                                           r"config.yaml\) of problem"):
        A.load_run_data(run_dir)


def test_partial_greedy_is_an_error(run_dir: Path):
    rows = read_jsonl(run_dir / "greedy.jsonl")
    rewrite_unrecorded(run_dir, "greedy.jsonl", "".join(json.dumps(r) + "\n" for r in rows[:-1]))
    with pytest.raises(BestOfNError, match=r"greedy\.jsonl has no entry for problem 'prm-helps'"):
        A.load_run_data(run_dir)


# --------------------------------------------------------------------------------------------------------
# The fast path against bestofn.selection, on pipeline-made runs
# --------------------------------------------------------------------------------------------------------
def assert_outcomes_match_selection(run: A.RunData, an: A.Analysis) -> None:
    """Full-N picks and answer groups from the label fast path == bestofn.selection's functions on all N."""
    for p, out in zip(run.problems, an.outcomes):
        rewards = list(p.rewards(run.reward_aggregation))
        for method, choose in (("majority", choose_majority), ("naive_bon", choose_naive),
                               ("weighted_bon", choose_weighted)):
            choice, pick = choose(p.answers, rewards), getattr(out, method)
            assert (pick.answer, pick.sample_index) == ((choice.answer, choice.sample_index) if choice else
                                                        (None, None)), (p.unique_id, method)
        stored = {r["unique_id"]: r for r in run.results["per_problem"]}[p.unique_id]
        for method in A.SELECTION_METHODS:  # and the report shows what results.json says
            assert getattr(out, method).answer == stored[method]["answer"], (p.unique_id, method)
            assert getattr(out, method).sample_index == stored[method]["sample_index"], (p.unique_id, method)
        groups = [{k: g[k] for k in ("answer", "count", "reward_sum", "indices")} for g in out.groups]
        assert groups == answer_groups(p.answers, rewards), p.unique_id


def test_tiny_run_fast_path_matches_selection(tiny_run_dir: Path):
    run = A.load_run_data(tiny_run_dir)
    an = A.analyze(run, subsets=20, bootstrap=50)
    assert not an.inconsistencies
    assert_outcomes_match_selection(run, an)
    assert math.isclose(an.mean_tokens[-1], np.mean([p.tokens.sum() for p in run.problems]))
    greedy = {r["unique_id"]: r["num_tokens"] for r in read_jsonl(tiny_run_dir / "greedy.jsonl")}
    level = {p.unique_id: p.level for p in run.problems}
    assert math.isclose(an.greedy_mean_tokens, np.mean(list(greedy.values())))
    assert an.greedy_tokens_by_level == {lvl: pytest.approx(np.mean([t for u, t in greedy.items() if level[u] == lvl]))
                                         for lvl in set(level.values())}


def test_synthetic_and_random_runs_match_selection(synthetic_run_dir: Path, tmp_path: Path, models):
    run = A.load_run_data(synthetic_run_dir)
    an = A.analyze(run, subsets=20, bootstrap=50)
    assert not an.inconsistencies
    assert_outcomes_match_selection(run, an)
    rng = np.random.default_rng(3)  # a random run under `min`, with missing answers and many ties
    vocab = ["1", "2", "\\frac{1}{2}", "3", None]
    specs = [problem(f"r{k}", "2", "1", [sample(vocab[i], *np.round(rng.random(2), 1)) for i in rng.integers(0, 5, 8)])
             for k in range(6)]
    run = A.load_run_data(build_run(tmp_path / "rand", specs, models, how="min"))
    an = A.analyze(run, subsets=5, bootstrap=10)
    assert run.reward_aggregation == "min" and not an.inconsistencies
    assert_outcomes_match_selection(run, an)


# --------------------------------------------------------------------------------------------------------
# The statistics come from scipy.stats (issue 29): the numbers did not change
# --------------------------------------------------------------------------------------------------------
# Expected values computed by the hand-written statistics this module had before issue 29 (commit 374c759:
# wilson's closed form, the binomial-sum McNemar, the rank-based AUROC, floor-binned calibration and the
# multinomial bootstrap), on these inputs, before they were replaced.
SCORES = np.array([0.1925, 0.9279, 0.5523, 0.1806, 0.8841, 0.6416, 0.5697, 0.3763, 0.411, 0.2395, 0.0381, 0.8762,
                   0.4677, 0.5476, 0.3222, 0.7513, 0.0252, 0.3722, 0.0304, 0.1229, 0.9671, 0.6578, 0.4282, 0.5237,
                   0.8728, 0.3442, 0.5903, 0.6837, 0.3554, 0.5191])
RIGHT = np.array([0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0], bool)
SOLVED_A = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1,
                     1, 1, 1, 1, 1, 0, 1], float)
SOLVED_B = np.array([1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
                     0, 1, 0, 0, 0, 0, 1], float)


def test_library_statistics_give_the_old_numbers():
    assert A.wilson(13, 40) == pytest.approx((0.200845022317827, 0.47982253810122333), abs=1e-12)
    assert A.wilson(2.5, 7) == pytest.approx((0.11808301126155257, 0.6974399701860725), abs=1e-12)
    assert A.wilson(0, 5) == pytest.approx((0.0, 0.43448246478317476), abs=1e-12)
    assert A.mcnemar_p(9, 3) == pytest.approx(0.14599609375) and A.mcnemar_p(17, 6) == pytest.approx(0.03468966484069824)
    assert A.mcnemar_p(0, 6) == pytest.approx(0.03125) and A.min_informative_for_significance() == 6
    assert A.auroc(SCORES, RIGHT) == pytest.approx(0.78125)
    cal = A.calibration(SCORES, RIGHT)
    assert cal.counts.tolist() == [3, 3, 1, 5, 3, 6, 3, 1, 3, 2] and cal.ece == pytest.approx(0.11616000000000001)
    assert cal.accuracy[3] == pytest.approx(0.4) and cal.mean_reward[8] == pytest.approx(0.8776999999999999)
    assert cal.intervals[0] == pytest.approx((0.06149194472039621, 0.7923403991979522))
    # the bootstrap draws other resamples than the old one: the same interval within a resampling error
    est = A.bootstrap_mean(SOLVED_A - SOLVED_B, np.random.default_rng(0), 20000)
    assert est.value == pytest.approx(0.325) and (est.low, est.high) == pytest.approx((0.15, 0.5), abs=0.026)


def test_wilson_agrees_with_scipy_on_whole_counts():
    from scipy.stats import binomtest

    for k, n in ((0, 3), (2, 3), (13, 40), (30, 30), (1, 1)):
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert A.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_calibration_bins_open_at_their_lower_edge():
    """0.3, 0.7 and 1.0 are not moved by floating-point bin edges: 0.3 and 0.7 open their bins, 1.0 is in the last."""
    cal = A.calibration(np.array([0.3, 0.7, 0.6, 1.0]), np.array([True, True, False, True]))
    assert cal.counts.tolist() == [0, 0, 0, 1, 0, 0, 1, 1, 0, 1]


def test_synthetic_run_statistics_match_the_old_implementation(synthetic_run_dir: Path):
    """Values from the pre-issue-29 code on this run (bootstrap intervals within a resampling error)."""
    an = A.analyze(synthetic_run_dir)
    stats = an.prm[an.run.reward_aggregation]
    assert stats.auroc == pytest.approx(0.9820031916386083) and stats.within_auroc == pytest.approx(0.9865447957839263)
    assert stats.auroc_ci == pytest.approx((0.9754521754847283, 0.9876892702238838), abs=0.0008)  # new: +-0.0002
    assert an.calibration.ece == pytest.approx(0.17773124999999998)
    assert an.calibration.counts.tolist() == [58, 120, 112, 89, 87, 63, 83, 101, 154, 93]
    old = {"weighted_bon-greedy": (0.2, 0.1, 0.3, 0.00048828125), "weighted_bon-majority": (0.25, 0.15, 0.36666666666666664,
           6.103515625e-05), "weighted_bon-naive_bon": (-0.06666666666666667, -0.13333333333333333, -0.016666666666666666,
           0.125), "majority-greedy": (-0.05, -0.15, 0.05, 0.5078125)}
    for key, (value, low, high, p) in old.items():
        got = an.comparisons[key]
        assert got.difference.value == pytest.approx(value) and got.p_value == pytest.approx(p)
        assert (got.difference.low, got.difference.high) == pytest.approx((low, high), abs=0.034)  # two problems of 60
    assert an.at_full_n("weighted_bon").low == pytest.approx(0.5923271483560882)


def test_auroc_interval_resamples_whole_problems_as_a_plain_loop_does():
    """prm_stats' interval against a plain loop (sklearn's roc_auc_score, numpy resampling of whole problems,
    5,000 rounds) on 12 problems of 4 solutions: the same 95% interval within resampling error."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    problems = []
    for k in range(12):
        correct = rng.random(4) < 0.5
        rewards = np.clip(0.5 + 0.25 * (correct - 0.5) + 0.3 * rng.standard_normal(4), 0, 1)
        problems.append(A.ProblemData(
            unique_id=str(k), level=1, subject="", problem="", gold="1", greedy_answer=None, greedy_correct=None,
            greedy_tokens=float("nan"), greedy_text="", answers=["1"] * 4, texts=[""] * 4, correct=correct,
            tokens=np.full(4, np.nan), string_match=np.zeros(4, bool), greedy_string_match=None,
            step_rewards=[[float(r)] for r in rewards], scored=np.ones(4, bool), truncated=np.zeros(4, bool),
            cut_off=np.zeros(4, bool), labels=np.zeros(4, int)))
    run = A.RunData(run_dir=Path("."), n=4, reward_aggregation="last", config={}, results={}, problems=problems)
    stats = A.prm_stats(run, "last", np.random.default_rng(0), 2000)
    reps = []
    for _ in range(5000):
        pick = rng.integers(0, 12, 12)
        y = np.concatenate([problems[i].correct for i in pick])
        if y.all() or not y.any():
            continue
        reps.append(roc_auc_score(y, np.concatenate([problems[i].rewards("last") for i in pick])))
    assert stats.auroc_ci == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])), abs=0.012)
