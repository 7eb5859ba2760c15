"""Tests of bestofn.report.analysis on hand-made run directories whose right numbers are worked out by hand.

``write_run_dir`` (also used by test_report.py and test_sweep.py) writes the artifacts of docs/artifacts.md
from a short spec: per problem, the gold answer, the greedy answer, and each sample's answer and step
rewards. ``correct`` is judged with the real grader and results.json is filled with bestofn.selection's
own functions, as the pipeline does.
"""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import yaml

from bestofn.report import analysis as A
from bestofn.errors import BestOfNError
from bestofn.grading import is_equivalent
from bestofn.selection import (
    aggregate,
    answer_groups,
    group_answers,
    majority_vote,
    naive_best_of_n,
    weighted_best_of_n,
)


# --------------------------------------------------------------------------------------------------------
# A hand-made run directory
# --------------------------------------------------------------------------------------------------------
def sample(answer: str | None, *steps: float, tokens: int = 100, text: str | None = None) -> dict:
    """One sampled solution for the spec: its answer and its step rewards (last one = final reward)."""
    return {"answer": answer, "step_rewards": list(steps), "tokens": tokens, "text": text}


def problem(
    uid: str, gold: str, greedy: str | None, samples: list[dict], level: int = 1, greedy_tokens: int = 50
) -> dict:
    return {
        "uid": uid,
        "gold": gold,
        "greedy": greedy,
        "samples": samples,
        "level": level,
        "greedy_tokens": greedy_tokens,
    }


def write_run_dir(path: Path, problems: list[dict], how: str = "last", temperature: float = 0.8) -> Path:
    """Write problems/greedy/samples/results/config for ``problems`` (specs from :func:`problem`)."""
    path.mkdir(parents=True, exist_ok=True)
    n = len(problems[0]["samples"])
    prob_rows, greedy_rows, sample_rows, per_problem = [], [], [], []
    solved = {m: 0 for m in A.METHODS}
    for spec in problems:
        uid, gold = spec["uid"], spec["gold"]
        prob_rows.append(
            {
                "unique_id": uid,
                "problem": f"Problem {uid}?",
                "answer": gold,
                "level": spec["level"],
                "subject": "Algebra",
                "solution": "...",
            }
        )
        g_ok = is_equivalent(spec["greedy"], gold)
        greedy_rows.append(
            {
                "unique_id": uid,
                "text": f"greedy says \\boxed{{{spec['greedy']}}}",
                "num_tokens": spec["greedy_tokens"],
                "finish_reason": "stop",
                "answer": spec["greedy"],
                "correct": g_ok,
                "string_match": g_ok,
            }
        )
        answers, rewards = [], []
        for i, s in enumerate(spec["samples"]):
            ok = is_equivalent(s["answer"], gold)
            answers.append(s["answer"])
            rewards.append(aggregate(s["step_rewards"], how))
            sample_rows.append(
                {
                    "unique_id": uid,
                    "sample_index": i,
                    "text": s["text"] or f"{uid} sample {i}: \\boxed{{{s['answer']}}}",
                    "num_tokens": s["tokens"],
                    "finish_reason": "stop",
                    "answer": s["answer"],
                    "correct": ok,
                    "string_match": ok,
                    "step_rewards": s["step_rewards"],
                    "reward": s["step_rewards"][-1] if s["step_rewards"] else None,
                    "prm_truncated": False,
                }
            )
        picks = {
            "majority": majority_vote(answers),
            "naive_bon": naive_best_of_n(answers, rewards),
            "weighted_bon": weighted_best_of_n(answers, rewards),
        }
        row = {
            "unique_id": uid,
            "level": spec["level"],
            "gold": gold,
            "greedy": {"answer": spec["greedy"], "correct": g_ok},
            "pass_at_n": {"correct": any(is_equivalent(a, gold) for a in answers)},
            "groups": answer_groups(answers, rewards),
        }
        solved["greedy"] += g_ok
        solved["pass_at_n"] += row["pass_at_n"]["correct"]
        for m, a in picks.items():
            row[m] = {"answer": a, "correct": is_equivalent(a, gold)}
            solved[m] += row[m]["correct"]
        per_problem.append(row)
    total = len(problems)
    results = {
        "n": n,
        "num_problems": total,
        "reward_aggregation": how,
        "methods": list(A.METHODS),
        "accuracy": {m: {"correct": c, "total": total, "accuracy": c / total} for m, c in solved.items()},
        "per_problem": per_problem,
    }
    for name, rows in (("problems", prob_rows), ("greedy", greedy_rows), ("samples", sample_rows)):
        (path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "results.json").write_text(json.dumps(results))
    (path / "config.yaml").write_text(
        yaml.safe_dump(
            {"n": n, "temperature": temperature, "generator": "tiny-gen", "prm": "tiny-prm", "output_dir": str(path)}
        )
    )
    return path


# The problem the issue asks for: naive and weighted selection must disagree.
#   samples: "1" (reward 0.9), "2" (0.5), "2" (0.5); gold "2"
#   naive picks the single best solution ("1", wrong); weighted sums 0.5+0.5=1.0 > 0.9 for "2" (right).
DISAGREE = problem("disagree", "2", greedy="1", samples=[sample("1", 0.9), sample("2", 0.5), sample("2", 0.5)])
# Majority says "5" (two votes, low rewards); both reward rules say "7" (0.9 > 0.1+0.1). Gold 7. Greedy right.
PRM_HELPS = problem(
    "prm-helps", "7", greedy="7", samples=[sample("5", 0.1), sample("7", 0.9), sample("5", 0.1)], level=2
)
# Nobody gets it: no sample is right, greedy wrong.
HOPELESS = problem("hopeless", "3", greedy="4", samples=[sample("4", 0.6), sample(None), sample("8", 0.7)], level=2)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run_dir(tmp_path / "run", [DISAGREE, PRM_HELPS, HOPELESS])


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
    # every solution is equally likely to be in a subset: each appears in about half of them
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
            maj = A.heaviest_group(labels, np.ones(n), subsets)
            wei = A.heaviest_group(labels, rewards, subsets)
            nai = A.best_solution(labels, rewards, subsets)
            for s, idx in enumerate(subsets):
                sub_a = [answers[i] for i in idx]
                sub_r = [float(rewards[i]) for i in idx]
                assert (answers[maj[s]] if maj[s] >= 0 else None) == majority_vote(sub_a)
                assert (answers[wei[s]] if wei[s] >= 0 else None) == weighted_best_of_n(sub_a, sub_r)
                assert (answers[nai[s]] if nai[s] >= 0 else None) == naive_best_of_n(sub_a, sub_r)


def test_ties_go_to_the_earliest_group_within_the_subset():
    # full order: x(0) y(1) x(2) y(3); subset {1, 2}: y comes first there, so y wins the 1-1 tie
    labels = np.array([0, 1, 0, 1])
    assert A.heaviest_group(labels, np.ones(4), np.array([[1, 2]]))[0] == 1
    assert A.heaviest_group(labels, np.ones(4), np.array([[0, 1]]))[0] == 0
    # no answers at all: nothing is picked
    assert A.heaviest_group(np.array([-1, -1]), np.ones(2), np.array([[0, 1]]))[0] == -1
    assert A.best_solution(np.array([-1, 0]), np.array([0.9, 0.1]), np.array([[0, 1]]))[0] == 1  # None never wins


# --------------------------------------------------------------------------------------------------------
# Numbers of a hand-made run
# --------------------------------------------------------------------------------------------------------
def test_equivalent_spellings_form_one_group(tmp_path: Path):
    spec = problem(
        "half",
        "\\frac{1}{2}",
        greedy="0.5",
        samples=[sample("0.5", 0.2), sample("\\frac{1}{2}", 0.3), sample("1/3", 0.4)],
    )
    run = A.load_run(write_run_dir(tmp_path / "r", [spec]))
    assert list(run.problems[0].labels) == [0, 0, 1]
    out = A.full_n_outcome(run.problems[0], "last")
    assert out.weighted_bon.correct and not out.naive_bon.correct  # 0.2+0.3 > 0.4, but 0.4 is the single best
    assert out.weighted_bon.sample_index == 1  # shown: the best-scored solution of the winning group


def test_expected_accuracy_vs_n_matches_hand_computation(run_dir: Path):
    """DISAGREE, worked by hand over all subsets (N=3, every subset enumerated, so values are exact):
    n=1: each method is right iff the single sample is "2": 2/3.
    n=2: {0,1} and {0,2} pick "1" (vote tie -> earliest; 0.9 beats 0.5); {1,2} pick "2": 1/3 (pass@2: 1).
    n=3: majority "2", weighted "2" (1.0 > 0.9), naive "1".
    """
    curves = A.accuracy_curves(A.load_run(run_dir), subsets=50, seed=0)
    assert curves.ns == [1, 2, 3]
    col = 0  # DISAGREE is the first problem
    expect = {
        "majority": [2 / 3, 1 / 3, 1],
        "weighted_bon": [2 / 3, 1 / 3, 1],
        "naive_bon": [2 / 3, 1 / 3, 0],
        "pass_at_n": [2 / 3, 1, 1],
        "greedy": [0, 0, 0],
    }
    for m, values in expect.items():
        np.testing.assert_allclose(curves.methods[m][:, col], values, err_msg=m)
    # PRM_HELPS at n=3: majority "5" (wrong), weighted and naive "7"
    np.testing.assert_allclose([curves.methods[m][2, 1] for m in ("majority", "weighted_bon", "naive_bon")], [0, 1, 1])
    # tokens: n samples of 100 tokens each
    np.testing.assert_allclose(curves.tokens[:, 0], [100, 200, 300])


def test_full_n_analysis_flips_and_consistency(run_dir: Path):
    an = A.analyze(run_dir, subsets=50, seed=0, bootstrap=200)
    assert not an.inconsistencies  # the label fast path reproduces results.json (built with selection)
    by_id = {o.unique_id: o for o in an.outcomes}
    assert [by_id["disagree"].solved(m) for m in A.METHODS] == [False, True, False, True, True]
    assert [by_id["prm-helps"].solved(m) for m in A.METHODS] == [True, False, True, True, True]
    assert [by_id["hopeless"].solved(m) for m in A.METHODS] == [False] * 5
    wg = an.comparisons["weighted_bon-greedy"]
    assert wg.only_a == ["disagree"] and wg.only_b == []
    assert wg.difference.value == pytest.approx(1 / 3)
    assert wg.difference.low <= wg.difference.value <= wg.difference.high
    wm = an.comparisons["weighted_bon-majority"]
    assert wm.only_a == ["prm-helps"] and wm.only_b == []
    assert an.at_full_n("weighted_bon").value == pytest.approx(2 / 3)
    assert an.at_full_n("greedy").value == pytest.approx(1 / 3)
    # groups of DISAGREE, heaviest first, with correctness
    groups = by_id["disagree"].groups
    assert [(g["answer"], g["count"], round(g["reward_sum"], 6), g["correct"]) for g in groups] == [
        ("2", 2, 1.0, True),
        ("1", 1, 0.9, False),
    ]
    # per level: level 1 is DISAGREE only, level 2 the other two
    assert an.by_level[1]["weighted_bon"][-1].value == 1.0
    assert an.by_level[2]["weighted_bon"][-1].value == 0.5
    assert an.by_level[2]["greedy"][-1].value == 0.5


def test_results_json_disagreement_is_reported(run_dir: Path):
    results = json.loads((run_dir / "results.json").read_text())
    results["accuracy"]["weighted_bon"]["correct"] = 3
    (run_dir / "results.json").write_text(json.dumps(results))
    notes = A.analyze(run_dir, subsets=10, bootstrap=50).inconsistencies
    assert notes == ["weighted_bon: results.json says 3 correct, the samples give 2"]


def test_aggregations_can_disagree(tmp_path: Path):
    """Gold "1". Sample 0 ("1"): steps 0.2, 0.9; sample 1 ("2"): steps 0.6, 0.8.
    last: 0.9 > 0.8 -> "1" (right); min: 0.2 < 0.6 -> "2"; prod: 0.18 < 0.48 -> "2"; mean: 0.55 < 0.7 -> "2"."""
    spec = problem("agg", "1", greedy="1", samples=[sample("1", 0.2, 0.9), sample("2", 0.6, 0.8)])
    an = A.analyze(write_run_dir(tmp_path / "r", [spec]), subsets=10, bootstrap=50)
    full = {a: an.aggregation[a]["weighted_bon"][-1].value for a in ("last", "min", "prod", "mean")}
    assert full == {"last": 1.0, "min": 0.0, "prod": 0.0, "mean": 0.0}
    assert an.aggregation["min"]["naive_bon"][-1].value == 0.0


def test_auroc_known_values():
    assert A.auroc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0], bool)) == 1.0
    assert A.auroc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([1, 1, 0, 0], bool)) == 0.0
    assert A.auroc(np.array([0.5, 0.5]), np.array([1, 0], bool)) == 0.5  # a tie counts half
    # 3 of the 4 (pos, neg) pairs are ordered right: 0.9>0.3, 0.9>0.6, 0.4>0.3; not 0.4>0.6
    assert A.auroc(np.array([0.9, 0.4, 0.3, 0.6]), np.array([1, 1, 0, 0], bool)) == 0.75
    assert A.auroc(np.array([0.1, 0.2]), np.array([1, 1], bool)) is None


def test_prm_stats_pool_rewards_and_skip_unscored(run_dir: Path):
    stats = A.prm_stats(A.load_run(run_dir), "last", np.random.default_rng(0), rounds=50)
    assert sorted(stats.correct_rewards) == [0.5, 0.5, 0.9]
    assert sorted(stats.incorrect_rewards) == [0.1, 0.1, 0.6, 0.7, 0.9]
    assert stats.unscored == 1  # HOPELESS's None sample has no step rewards
    # pooled pairs: correct {0.5,0.5,0.9} vs wrong {0.1,0.1,0.6,0.7,0.9}: 0.5 beats 2 each, 0.9 beats 4 and ties 1
    assert stats.auroc == pytest.approx((2 + 2 + 4.5) / 15)
    # within problem: DISAGREE 0.0 (both right ones below the wrong 0.9), PRM_HELPS 1.0; HOPELESS has no right one
    assert stats.within_auroc == pytest.approx(0.5) and stats.within_problems == 2


def test_mcnemar_exact_p():
    assert A.mcnemar_p(0, 0) == 1.0
    assert A.mcnemar_p(5, 0) == pytest.approx(2 / 32)
    assert A.mcnemar_p(3, 1) == pytest.approx(2 * (1 + 4) / 16)


def test_bootstrap_interval_is_over_problems():
    values = np.array([[1.0] * 10 + [0.0] * 10])
    est = A.estimates(values, np.random.default_rng(0), 2000)[0]
    assert est.value == 0.5
    # binomial standard error sqrt(.25/20) = 0.112: a 95% interval about +-0.22
    assert 0.25 <= est.low <= 0.33 and 0.67 <= est.high <= 0.75
    same = A.estimates(np.ones((1, 20)), np.random.default_rng(0), 100)[0]
    assert (same.low, same.high) == (1.0, 1.0)


def test_subset_sampling_is_seeded(tmp_path: Path):
    rng = np.random.default_rng(7)
    specs = [
        problem(
            f"p{k}", "1", greedy="1", samples=[sample(str(rng.integers(1, 4)), float(rng.random())) for _ in range(8)]
        )
        for k in range(3)
    ]
    run = A.load_run(write_run_dir(tmp_path / "r", specs))
    a, b = A.accuracy_curves(run, subsets=20, seed=3), A.accuracy_curves(run, subsets=20, seed=3)
    c = A.accuracy_curves(run, subsets=20, seed=4)
    assert all(np.array_equal(a.methods[m], b.methods[m]) for m in A.METHODS)
    assert any(not np.array_equal(a.methods[m], c.methods[m]) for m in A.METHODS)  # C(8,4)=70 > 20: sampled


# --------------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------------
def test_empty_dir_names_missing_files_and_the_command(tmp_path: Path):
    with pytest.raises(BestOfNError) as err:
        A.load_run(tmp_path)
    msg = str(err.value)
    for name in ("config.yaml", "problems.jsonl", "greedy.jsonl", "samples.jsonl", "results.json"):
        assert name in msg
    assert "bestofn run --output-dir" in msg


def test_missing_results_and_samples(run_dir: Path):
    (run_dir / "results.json").unlink()
    (run_dir / "samples.jsonl").unlink()
    with pytest.raises(BestOfNError, match=r"lacks stages samples, scores, results \(missing files: results\.json, "
                                           r"samples\.jsonl\); .*bestofn run"):
        A.load_run(run_dir)


def test_missing_dir_and_unscored_samples(run_dir: Path, tmp_path: Path):
    with pytest.raises(BestOfNError, match="does not exist"):
        A.load_run(tmp_path / "nope")
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    for r in rows:
        del r["step_rewards"]
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BestOfNError, match="lacks stages scores"):
        A.load_run(run_dir)


def test_rows_without_a_field(run_dir: Path):
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    del rows[0]["correct"]
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BestOfNError, match=r"rows without the field 'correct'.*bestofn run --config .* --output-dir"):
        A.load_run(run_dir)


def test_incomplete_samples(run_dir: Path):
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    with pytest.raises(BestOfNError, match=r"\[2, 3\] samples per problem"):
        A.load_run(run_dir)


# --------------------------------------------------------------------------------------------------------
# The real tiny run (fixture from tests/conftest.py, when the pipeline provides it)
# --------------------------------------------------------------------------------------------------------
def test_tiny_run_fast_path_matches_selection(request):
    try:
        run_dir = request.getfixturevalue("tiny_run_dir")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py has no tiny_run_dir fixture yet")
    run = A.load_run(run_dir)
    an = A.analyze(run, subsets=20, bootstrap=50)
    assert not an.inconsistencies  # accuracies equal results.json's
    assert_outcomes_match_selection(run, an)
    stored = {r["unique_id"]: r for r in run.results["per_problem"]}
    for out in an.outcomes:
        assert out.weighted_bon.sample_index == stored[out.unique_id]["weighted_bon"]["sample_index"]
    assert math.isclose(an.mean_tokens[-1], np.mean([p.tokens.sum() for p in run.problems]))


def assert_outcomes_match_selection(run: A.RunData, an: A.Analysis) -> None:
    """Full-N picks and answer groups from the label fast path == bestofn.selection's functions on all N."""
    for p, out in zip(run.problems, an.outcomes):
        rewards = list(p.rewards(run.reward_aggregation))
        assert out.weighted_bon.answer == weighted_best_of_n(p.answers, rewards), p.unique_id
        assert out.naive_bon.answer == naive_best_of_n(p.answers, rewards), p.unique_id
        assert out.majority.answer == majority_vote(p.answers), p.unique_id
        groups = [{k: g[k] for k in ("answer", "count", "reward_sum", "indices")} for g in out.groups]
        assert groups == answer_groups(p.answers, rewards), p.unique_id


def test_hand_made_outcomes_match_selection(run_dir: Path, tmp_path: Path):
    assert_outcomes_match_selection(A.load_run(run_dir), A.analyze(run_dir, subsets=5, bootstrap=10))
    rng = np.random.default_rng(3)  # and a bigger random run, with equivalent spellings and missing answers
    vocab = ["1", "2", "\\frac{1}{2}", "0.5", None]
    specs = [
        problem(
            f"r{k}",
            "2",
            greedy="1",
            samples=[sample(vocab[i], *np.round(rng.random(2), 1)) for i in rng.integers(0, 5, 8)],
        )
        for k in range(6)
    ]
    run = A.load_run(write_run_dir(tmp_path / "rand", specs, how="min"))
    an = A.analyze(run, subsets=5, bootstrap=10)
    assert run.reward_aggregation == "min" and not an.inconsistencies
    assert_outcomes_match_selection(run, an)
