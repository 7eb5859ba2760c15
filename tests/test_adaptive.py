"""Adaptive Best-of-N end to end (scripted solutions with known answers and rewards), the readers on runs with
uneven sample counts, and the report's stopping study against an enumeration of every order.

The scripted problems (N=8, rounds of 4, confidence 0.95), each stopping point worked out by hand:

- ``easy``: 8 right answers, reward 0.8: a first round of 4 agreeing answers, 1 - I_0.5(5, 1) = 31/32 >= 0.95,
  so every rule stops after 4;
- ``backed``: answers R R R W | R R R R with rewards 0.9 (R) and 0.1 (W): after round 1, beta sees 3 to 1
  (26/32 = 0.81, goes on), esc a split round (goes on), prm votes 4 * 2.7/2.8 = 3.86 to 0.14 (> 0.95: stops
  after 4); beta and esc then reach N = 8;
- ``blank``: no sample has an answer: nothing ever stops, 8;
- ``tie``: R W R W R W R W at equal rewards: 2 to 2 then 4 to 4, 8 for every rule.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from bestofn import pipeline
from bestofn.config import BestOfNConfig, chunk_keys
from bestofn.errors import BestOfNError
from bestofn.importer import import_completions
from bestofn.io import read_json, read_jsonl
from bestofn.methods import Solved
from bestofn.report import adaptive as S
from bestofn.report import analysis as A
from bestofn.report.compare import compare_runs
from bestofn.report.loader import load_run
from bestofn.report.run_report import write_report
from bestofn.selection import aggregate, choose_majority, choose_weighted, group_answers, group_labels
from bestofn.stopping import should_stop
from bestofn.testing import make_tokenizer
from bestofn.backends.base import Completion
from bestofn.testing.scripted import (Script, ScriptedModels, ScriptedPRM, ScriptedProblem, ScriptedTreeBackend,
                                      ScriptedTreePRM, Solution, TreeRules)

from conftest import tiny_config
from test_resume import DyingBackend, SimulatedKill  # the scripted generator, killed at its k-th call

N = 8
USED = {"prm": [4, 4, 8, 8], "beta": [4, 8, 8, 8], "esc": [4, 8, 8, 8]}  # easy, backed, blank, tie (see above)


def _specs() -> list[tuple[str, str, list[Solution]]]:
    r, w = "7", "9"
    right, wrong = (lambda: Solution(r, (0.5, 0.9))), (lambda: Solution(w, (0.5, 0.1)))
    return [
        ("easy", r, [Solution(r, (0.6, 0.8)) for _ in range(N)]),
        ("backed", r, [right(), right(), right(), wrong(), right(), right(), right(), right()]),
        ("blank", r, [Solution(None, (0.5, 0.5)) for _ in range(N)]),
        ("tie", r, [Solution(r if i % 2 == 0 else w, (0.5, 0.5)) for i in range(N)]),
    ]


def _text(uid: str) -> str:
    return f"Problem {uid}: compute the requested value."


@pytest.fixture
def setup(tmp_path, tiny_generator_dir, tiny_prm_dir):
    """``config(name, **overrides)`` and ``models(die_at=None)`` for the four scripted problems."""
    specs = _specs()
    dataset = tmp_path / "four.jsonl"
    dataset.write_text("".join(json.dumps({"unique_id": uid, "problem": _text(uid), "answer": gold, "level": 1 + k % 2,
                                           "subject": "Algebra", "solution": "."}) + "\n"
                               for k, (uid, gold, _) in enumerate(specs)))
    script = Script([ScriptedProblem(_text(uid), Solution(gold), samples) for uid, gold, samples in specs])

    def config(name: str, **overrides) -> BestOfNConfig:
        settings = dict(num_problems=4, n=N, levels=[1, 2], adaptive="prm")
        return tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / name, **{**settings, **overrides})

    def models(die_at: int | None = None) -> ScriptedModels:
        return ScriptedModels(DyingBackend(script, die_at), ScriptedPRM(script), chunk_sequences=N)  # a problem a chunk

    return config, models


def _used(run: Path) -> dict[str, int]:
    return {r["unique_id"]: r["samples_used"] for r in read_json(run / "results.json")["per_problem"]}


# --- the run ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["prm", "beta", "esc"])
def test_each_problem_stops_where_worked_out_by_hand(rule, setup):
    config, models = setup
    cfg = config(rule, adaptive=rule)
    results = pipeline.run(cfg, models=models())
    run = Path(cfg.output_dir)
    assert _used(run) == dict(zip(["easy", "backed", "blank", "tie"], USED[rule]))
    assert results["samples_used"] == {"total": sum(USED[rule]), "per_problem": sum(USED[rule]) / 4}
    rows = read_jsonl(run / "samples.jsonl")
    by_problem = {uid: [r["sample_index"] for r in rows if r["unique_id"] == uid] for uid in _used(run)}
    assert {uid: idx for uid, idx in by_problem.items()} == {uid: list(range(k)) for uid, k in _used(run).items()}
    assert all(r["step_rewards"] for r in rows), "every drawn sample was scored as it was drawn"
    assert not (run / "chunks" / "scores").exists(), "no separate scoring stage: the rounds scored the samples"
    # costs count what was drawn: the samples stage generated exactly the rows of samples.jsonl
    timings = read_json(run / "timings.json")["stages"]["samples"]
    assert timings["sequences"] == len(rows) == sum(USED[rule])
    assert timings["prm_sequences"] == len(rows)
    assert results["compute"]["generated_tokens"] == sum(r["num_tokens"] for r in rows)
    # selection on what was drawn: easy and backed right, blank no answer, tie: the group drawn first (right)
    assert {r["unique_id"]: r["weighted_bon"]["correct"] for r in results["per_problem"]} == {
        "easy": True, "backed": True, "blank": False, "tie": True}


def test_rounds_draw_the_samples_a_fixed_run_draws(setup):
    """Sample i of a problem is the same whether drawn in rounds or in one draw of N (per-sample seeds)."""
    config, models = setup
    fixed, adaptive = Path(config("fixed", adaptive="off").output_dir), Path(config("prm").output_dir)
    pipeline.run(config("fixed", adaptive="off"), models=models())
    pipeline.run(config("prm"), models=models())
    key = lambda r: (r["unique_id"], r["sample_index"])  # noqa: E731
    full = {key(r): r for r in read_jsonl(fixed / "samples.jsonl")}
    for row in read_jsonl(adaptive / "samples.jsonl"):
        assert row == full[key(row)]  # every field: text, tokens, grade, step rewards
    assert len(full) == 4 * N


def test_adaptive_draw_seeds_each_sample_by_its_index_alone(setup):
    config, models = setup
    m = models()
    pipeline.run(config("prm"), models=m)
    sampled = [c for c in m._generator.calls if c["temperature"] > 0]
    # per problem (one chunk each): round 1, round 2; each prompt once, its samples first..first+3
    assert [(c["prompts"], c["n"]) for c in sampled] == [(1, 4)] * 6
    from bestofn.seeds import problem_seed
    # the backend seeds sample first + j of a prompt from its problem's seed (bestofn.seeds.sample_seed)
    uid_of = {problem_seed(0, uid): uid for uid in ("easy", "backed", "blank", "tie")}
    drawn = sorted((uid_of[c["seeds"][0]], c["first"]) for c in sampled)
    assert drawn == [("backed", 0), ("blank", 0), ("blank", 4), ("easy", 0), ("tie", 0), ("tie", 4)]


@pytest.mark.parametrize("die_at", [2, 4, 6])  # greedy is call 0; each problem's rounds follow: killed between rounds
def test_a_run_killed_between_rounds_resumes_to_the_same_bytes(die_at, setup):
    config, models = setup
    pipeline.run(config("reference"), models=models())
    with pytest.raises(SimulatedKill):
        pipeline.run(config("run"), models=models(die_at=die_at))
    resumed = models()
    pipeline.run(config("run"), models=resumed)
    for name in ("problems.jsonl", "greedy.jsonl", "samples.jsonl", "results.json"):
        assert (Path(config("run").output_dir) / name).read_bytes() == (Path(config("reference").output_dir) / name).read_bytes()
    # one chunk per problem, in run order, each drawing its rounds; the chunks whose rounds all came before the
    # killed call were saved, and only the others are drawn again
    used = dict(zip(["easy", "backed", "blank", "tie"], USED["prm"]))
    order = [p["unique_id"] for p in read_jsonl(Path(config("run").output_dir) / "problems.jsonl")]
    saved, calls = 0, 1  # greedy's call first
    for uid in order:
        calls += used[uid] // 4
        saved += used[uid] if calls <= die_at else 0
    assert 0 < saved < 24 or die_at == 2
    redrawn = sum(c["prompts"] * c["n"] for c in resumed._generator.calls if c["temperature"] > 0)
    assert redrawn == 24 - saved, "finished chunks are not drawn again"


def test_adaptive_settings_name_the_samples_chunks_only_when_adaptive(setup):
    config, _ = setup
    off, on = config("a", adaptive="off"), config("a")
    assert not {"adaptive_batch", "prm", "aggregation"} & chunk_keys("samples", off.method, off.adaptive)
    assert {"adaptive", "adaptive_batch", "adaptive_confidence", "prm", "aggregation"} <= chunk_keys(
        "samples", on.method, on.adaptive)
    assert chunk_keys("greedy", on.method, on.adaptive) == chunk_keys("greedy", off.method, off.adaptive)


def test_a_rerun_with_another_rule_is_a_changed_setting(setup):
    config, models = setup
    pipeline.run(config("r"), models=models())
    with pytest.raises(BestOfNError, match=r"adaptive: 'prm' -> 'beta'"):
        pipeline.run(config("r", adaptive="beta"), models=models())
    with pytest.raises(BestOfNError, match=r"adaptive: 'prm' -> 'off'"):
        pipeline.run(config("r", adaptive="off"), models=models())


@pytest.mark.parametrize("overrides,message", [
    ({"method": "beam_search"}, "adaptive sampling is for best_of_n"),
    ({"adaptive_batch": 0}, "adaptive_batch must be at least 1"),
    ({"adaptive_confidence": 1.0}, r"adaptive_confidence must be in \(0.5, 1\)"),
    ({"adaptive_confidence": 0.5}, r"adaptive_confidence must be in \(0.5, 1\)"),
])
def test_bad_adaptive_settings_are_one_clear_error(overrides, message, setup):
    config, _ = setup
    with pytest.raises(BestOfNError, match=message):
        config("bad", **overrides)


def test_the_cli_takes_the_adaptive_flags_and_prints_the_samples_used(setup, capsys):
    from bestofn import cli

    config, models = setup
    cfg = config("cli")
    argv = ["run", "--dataset", cfg.dataset, "--generator", cfg.generator, "--prm", cfg.prm, "--num-problems", "4",
            "--levels", "1,2", "--n", "8", "--max-new-tokens", "32", "--device", "cpu", "--generation-batch-size", "8",
            "--adaptive", "beta", "--adaptive-batch", "4", "--adaptive-confidence", "0.95", "--output-dir", cfg.output_dir]
    assert cli.main(argv, models=models()) == 0
    assert "samples used: 28 of 32 (7.00 per problem)" in capsys.readouterr().out
    saved = BestOfNConfig.from_yaml(Path(cfg.output_dir) / "config.yaml")
    assert (saved.adaptive, saved.adaptive_batch, saved.adaptive_confidence) == ("beta", 4, 0.95)
    assert cli.main([*argv[:-2], "--adaptive-confidence", "1.5", "--output-dir", cfg.output_dir + "2"]) == 2


def test_samples_used_is_derived_from_the_rows():
    solved = Solved([{"unique_id": "a"}, {"unique_id": "b"}, {"unique_id": "a"}])
    assert solved.samples_used() == {"a": 2, "b": 1}


# --- every reader accepts runs with uneven sample counts -----------------------------------------------------------
def test_readers_accept_a_run_with_uneven_sample_counts(setup, tmp_path):
    config, models = setup
    adaptive, fixed = Path(config("prm").output_dir), Path(config("fixed", adaptive="off").output_dir)
    pipeline.run(config("prm"), models=models())
    pipeline.run(config("fixed", adaptive="off"), models=models())
    run = load_run(adaptive)
    used = dict(zip(["easy", "backed", "blank", "tie"], USED["prm"]))
    assert {p["unique_id"]: len(run.samples[p["unique_id"]]) for p in run.problems} == used
    data = A.load_run_data(adaptive)
    assert {p.unique_id: p.size for p in data.problems} == used
    assert not S.can_study(data), "an adaptive run holds too few samples to replay other rules"
    written = write_report(adaptive, subsets=20, bootstrap=50)
    assert (adaptive / "report" / "report.md") in written and not (adaptive / "report" / S.FILE).exists()
    report = (adaptive / "report" / "report.md").read_text()
    # 4 + 4 + 8 + 8 = 24 of 32 drawn: the run's own section says so, with each stopping point's count
    assert "24 samples of 32, 6.00 per problem (75% of N=8)" in report
    assert "| 4 | 2 |" in report and "| 8 | 2 |" in report
    comparison = compare_runs([fixed, adaptive], subsets=20)
    assert {p.n for p in comparison.points if p.run_dir == adaptive} == {N}  # one point: what it drew
    from bestofn import hub
    hub.save_dataset_folder(adaptive, tmp_path / "hub", "someone/adaptive")
    assert (tmp_path / "hub" / "README.md").is_file()


def test_an_import_with_uneven_completions_is_a_finished_run(tmp_path):
    box = lambda a: f"We compute.\nTherefore, the final answer is $\\boxed{{{a}}}$."  # noqa: E731
    rows = [{"problem": "2+2?", "answer": "4", "unique_id": "b", "completions": [box(4)], "scores": [0.7]},
            {"problem": "1+1?", "answer": "2", "unique_id": "a", "completions": [box(2), box(3), box(2)],
             "scores": [0.9, 0.2, 0.8]}]
    source = tmp_path / "uneven.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = import_completions(str(source), tmp_path / "run")
    results = read_json(run / "results.json")
    assert results["n"] == 3, "N is the most completions of a row, not the first row's"
    assert {p["unique_id"]: p["samples_used"] for p in results["per_problem"]} == {"a": 3, "b": 1}
    assert results["accuracy"]["weighted_bon"]["correct"] == 2
    assert {p.unique_id: p.size for p in A.load_run_data(run).problems} == {"a": 3, "b": 1}


def test_a_gap_in_sample_indices_is_still_refused(setup):
    """Sample indices must be exactly 0..k-1, k the samples_used results.json records for the problem (a dropped
    last sample of a problem that stopped early is damage too)."""
    config, models = setup
    cfg = config("prm")
    pipeline.run(cfg, models=models())
    run = load_run(cfg.output_dir)
    from bestofn.report.loader import whole_samples
    assert whole_samples([0, 1, 2], 3) and whole_samples(list(range(8)), 8)
    assert not whole_samples([0, 2], 2) and not whole_samples([], 0) and not whole_samples([0, 1], 3)
    assert not whole_samples([1, 2], 2) and not whole_samples([0, 0], 2)
    assert run.n == N
    # drop the last sample of the problem that stopped after 4 (manifest entry dropped too, so the rows are judged)
    from test_analysis import rewrite_unrecorded
    rows = read_jsonl(Path(cfg.output_dir) / "samples.jsonl")
    rows.remove(next(r for r in rows if (r["unique_id"], r["sample_index"]) == ("easy", 3)))
    rewrite_unrecorded(Path(cfg.output_dir), "samples.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BestOfNError, match=r"lacks scored samples 0..3 \(samples_used in results.json.* 'easy'"):
        load_run(cfg.output_dir)


# --- the report's stopping study ------------------------------------------------------------------------------------
def _enumerated(labels_answers, rewards, correct, order, rule, confidence, batch):
    """One order walked by hand: group the prefix's own answers, ask the rule, choose with selection's rules."""
    k = 0
    while True:
        k = min(k + batch, len(order))
        answers = [labels_answers[i] for i in order[:k]]
        pre_rewards = [rewards[i] for i in order[:k]]
        labels = list(group_labels(group_answers(answers, equivalent=lambda a, b: a == b), k))
        if k == len(order) or should_stop(rule, labels, pre_rewards, k - (k - 1) // batch * batch, confidence):
            break
    hits = {}
    for sel, choose in (("majority", choose_majority), ("weighted_bon", choose_weighted)):
        choice = choose(answers, pre_rewards, groups=group_answers(answers, equivalent=lambda a, b: a == b))
        hits[sel] = choice is not None and correct[order[choice.sample_index]]
    return k, hits


def _matches_enumeration(st: S.Study, run: A.RunData, n: int) -> None:
    """Every adaptive entry of the study equals the mean over problems of its mean over all n! orders."""
    for e in (e for e in st.entries if e.rule != "fixed"):
        samples, accuracy = [], []
        for p in run.problems:
            rewards = p.rewards(run.reward_aggregation)
            walked = [_enumerated(p.answers, rewards, p.correct, order, e.rule, e.confidence or 1.0, e.batch)
                      for order in itertools.permutations(range(n))]
            samples.append(np.mean([k for k, _ in walked]))
            accuracy.append(np.mean([h[e.selection] for _, h in walked]))
        assert e.mean_samples == pytest.approx(np.mean(samples), abs=1e-12), (e.rule, e.confidence, e.batch)
        assert e.accuracy.value == pytest.approx(np.mean(accuracy), abs=1e-12), (e.rule, e.confidence, e.batch, e.selection)


def test_the_simulation_matches_an_enumeration_of_every_order(setup):
    """A fixed run of 4 problems with N=4: all 24 orders of each, walked one by one by hand, against the study."""
    config, models = setup
    cfg = config("small", adaptive="off", n=4)
    pipeline.run(cfg, models=models())
    run = A.load_run_data(cfg.output_dir)
    orders = [np.array(list(itertools.permutations(range(4)))) for _ in run.problems]
    st = S.study(run, given_orders=orders, confidences=(0.6, 0.9), batches=(1, 2, 3))
    _matches_enumeration(st, run, 4)


def test_the_report_writes_the_stopping_study(setup):
    config, models = setup
    cfg = config("fixed", adaptive="off")
    pipeline.run(cfg, models=models())
    run = Path(cfg.output_dir)
    write_report(run, subsets=20, bootstrap=50)
    entries = read_json(run / "report" / S.FILE)
    keys = {"rule", "confidence", "batch", "selection", "mean_samples", "accuracy"}
    assert all(keys <= set(e) and 0 <= e["accuracy"] <= 1 and 1 <= e["mean_samples"] <= N for e in entries)
    assert {e["rule"] for e in entries} == {"fixed", "beta", "esc", "prm"}
    assert {e["selection"] for e in entries} == {"majority", "weighted_bon"}
    fixed_full = [e for e in entries if e["rule"] == "fixed" and e["batch"] == N]
    # at N: easy and backed right, blank no answer, tie 4 to 4 at equal rewards goes to the group drawn first: 7, right
    assert {e["selection"]: e["accuracy"] for e in fixed_full} == {"majority": 0.75, "weighted_bon": 0.75}
    # beta at 0.95 in rounds of 4 on these problems, in any order: easy stops at 4 (unanimous), blank and tie
    # never stop (8); backed stops at 4 only when its wrong answer is drawn after the first round (prob 1/2)
    beta = next(e for e in entries if (e["rule"], e["confidence"], e["batch"], e["selection"]) == ("beta", 0.95, 4, "majority"))
    assert beta["mean_samples"] == pytest.approx((4 + (4 * 0.5 + 8 * 0.5) + 8 + 8) / 4, abs=0.1)
    report = (run / "report" / "report.md").read_text()
    assert "Stopping early" in report and "keeps the fixed-N accuracy" in report
    assert (run / "report" / S.PLOT).is_file()


class SameFirstSteps(ScriptedTreeBackend):
    """Every first step is the same text, so beam search's duplicate filter keeps one beam of n/M."""

    def _step(self, k, label, restricted):
        step = super()._step(k, label, restricted)
        if "." not in label:
            return Completion(step.text.replace(f"<step {label}>", "<step 0>"), step.num_tokens, step.finish_reason)
        return step


def test_readers_accept_a_search_whose_pool_is_smaller_than_n(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir):
    """Beam search, n=4, M=2: the 4 first steps are one text, so one beam is kept and its 2 children end: a pool of
    2 < n. Report, compare and the Hub files take the run (they refused it before, asking to finish the run)."""
    rows = [json.loads(line) for line in math500_path.read_text().splitlines()]
    chosen = [r for r in rows if r["level"] == 1 and r["answer"].isdigit()][:2]
    dataset = tmp_path / "two.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    texts = [r["problem"] for r in chosen]
    rules = TreeRules(reward=lambda k, label: 0.8 if label.endswith("1") else 0.4,
                      end=lambda k, label: "stop" if "." in label else None,
                      answer=lambda k, label: chosen[k]["answer"] if label.endswith("1") else "12345")
    runs = {}
    for name, backend in (("merged", SameFirstSteps), ("distinct", ScriptedTreeBackend)):
        config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / name, num_problems=2,
                             method="beam_search", n=4, beam_width=2, num_iterations=3, max_new_tokens=256)
        pipeline.run(config, models=ScriptedModels(backend(texts, rules, make_tokenizer(), "\n"),
                                                   ScriptedTreePRM(texts, rules, "\n")))
        runs[name] = Path(config.output_dir)
    merged = read_json(runs["merged"] / "results.json")
    assert [p["samples_used"] for p in merged["per_problem"]] == [2, 2]
    assert merged["accuracy"]["weighted_bon"]["accuracy"] == 1.0  # the right child's .8 beats the wrong one's .4
    data = A.load_run_data(runs["merged"])
    assert [p.size for p in data.problems] == [2, 2]
    write_report(runs["merged"], subsets=20, bootstrap=50)
    assert (runs["merged"] / "report" / "report.md").is_file()
    comparison = compare_runs([runs["merged"], runs["distinct"]], subsets=20)
    assert {p.run_dir for p in comparison.points} == {runs["merged"], runs["distinct"]}
    from bestofn import hub
    hub.save_dataset_folder(runs["merged"], tmp_path / "hub", "someone/merged")
    assert (tmp_path / "hub" / "README.md").is_file()


def test_the_simulation_matches_an_enumeration_on_an_imported_run(tmp_path):
    """N=5 (all 120 orders), answers without a box, splits the PRM backs and doubts, and a tie: every rule at
    every round size against the orders walked one by one."""
    box = lambda a: "We compute.\nNo answer." if a is None else f"We compute.\nSo the answer is $\\boxed{{{a}}}$."  # noqa: E731
    problems = [("2", [None, "2", "2", "2", None], [0.9, 0.6, 0.7, 0.8, 0.1]),
                ("3", ["3", "4", "3", "4", "3"], [0.2, 0.9, 0.3, 0.8, 0.2]),
                ("5", ["5", "5", "6", "5", "7"], [0.9, 0.8, 0.1, 0.9, 0.2]),
                ("9", ["8", "9", "8", "9", None], [0.5, 0.5, 0.5, 0.5, 0.5])]
    source = tmp_path / "five.jsonl"
    source.write_text("".join(json.dumps({"problem": f"Problem {k}?", "answer": gold, "unique_id": f"p{k}",
                                          "completions": [box(a) for a in answers], "scores": rewards}) + "\n"
                              for k, (gold, answers, rewards) in enumerate(problems)))
    run = A.load_run_data(import_completions(str(source), tmp_path / "run"))
    every = np.array(list(itertools.permutations(range(5))))
    st = S.study(run, given_orders=[every] * len(run.problems), confidences=(0.6, 0.8, 0.95), batches=(1, 2, 3))
    assert {e.batch for e in st.entries if e.rule != "fixed"} == {1, 2, 3}
    _matches_enumeration(st, run, 5)


def test_the_cheapest_setting_is_chosen_on_the_levels_own_numbers():
    """`a` is cheapest and keeps the overall accuracy but not level 2's; on level 2 `b` is the cheapest that does."""
    est = lambda v: A.Estimate(v, v, v)  # noqa: E731
    a = S.Entry("esc", None, 1, "majority", 2.0, est(0.8), {1: (2.0, est(0.9)), 2: (2.0, est(0.5))})
    b = S.Entry("prm", 0.9, 1, "majority", 3.0, est(0.7), {1: (3.0, est(0.6)), 2: (3.0, est(0.8))})
    assert S.cheapest_keeping([a, b], 0.8) is a and S.cheapest_keeping([a, b], 0.8, level=2) is b
    assert a.at(2) == (2.0, est(0.5)) and a.at(None) == (2.0, est(0.8))
