"""The whole method end to end on tiny local models: files and chunks, resume after a kill, changed settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from bestofn import pipeline, rundir
from bestofn.report.loader import load_run
from bestofn.cli import main
from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError, check_model
from bestofn.io import read_json, read_jsonl

from bestofn.data import Problem
from bestofn.selection import SELECTION_METHODS
from bestofn.testing import make_tokenizer
from bestofn.testing.scripted import Script, ScriptedProblem, Solution, scripted_models

from conftest import CountingModels, SimulatedKill, integer_problems, tiny_config, write_dataset


def test_run_directory_has_every_artifact(tiny_run_dir):
    import hashlib

    files = {p.name for p in tiny_run_dir.iterdir()}
    assert files == {"config.yaml", "manifest.json", "problems.jsonl", "greedy.jsonl", "samples.jsonl", "results.json",
                     "timings.json", "chunks"}, "no tree.jsonl for Best-of-N, nothing half-written left behind"
    recorded = read_json(tiny_run_dir / "manifest.json")["files"]
    assert set(recorded) == files - {"manifest.json", "chunks"}
    for name, digest in recorded.items():
        assert hashlib.sha256((tiny_run_dir / name).read_bytes()).hexdigest() == digest
    # 4 problems: greedy in one chunk (n=1), samples in chunks planned by the backend, scores in one chunk
    chunks = {d.name: len(list(d.glob("*.json"))) for d in (tiny_run_dir / "chunks").iterdir()}
    assert chunks["greedy"] == 1 and chunks["scores"] == 1 and chunks["samples"] >= 1 and set(chunks) == {
        "greedy", "samples", "scores"}

    problems = read_jsonl(tiny_run_dir / "problems.jsonl")
    assert len(problems) == 4 and all(1 <= p["level"] <= 3 for p in problems)
    ids = [p["unique_id"] for p in problems]

    greedy = read_jsonl(tiny_run_dir / "greedy.jsonl")
    assert [g["unique_id"] for g in greedy] == ids
    for g in greedy:
        assert set(g) == {"unique_id", "text", "num_tokens", "finish_reason", "answer", "answer_status", "correct",
                          "string_match"}
        assert 1 <= g["num_tokens"] <= 32 and g["finish_reason"] in ("stop", "length")
        if g["finish_reason"] == "length":
            assert g["num_tokens"] == 32

    samples = read_jsonl(tiny_run_dir / "samples.jsonl")
    assert [(s["unique_id"], s["sample_index"]) for s in samples] == [(i, k) for i in ids for k in range(4)]
    for s in samples:
        # one reward per step: the PRM splits the text at newlines, and the reward is the last step's
        assert len(s["step_rewards"]) == s["text"].count("\n") + 1
        assert all(0 < r < 1 for r in s["step_rewards"]) and s["prm_tokens"] > len(s["step_rewards"])
        assert s["prm_truncated"] is False and "reward" not in s, "the reward is aggregated by selection, not stored"
    assert len({s["text"] for s in samples}) > 1, "sampling must give different solutions"


# --- the method on scripted solutions with known answers --------------------------------------------------------
def _spelled(gold: str) -> dict[str, str]:
    """Equivalent spellings of an integer answer (they must land in one answer group) and wrong answers."""
    g = int(gold)
    return {"plain": gold, "decimal": f"{g}.0", "frac": f"\\frac{{{2 * g}}}{{2}}", "dfrac": f"\\dfrac{{{2 * g}}}{{2}}",
            "eq_spaced": f"x = {g}", "eq": f"x={g}", "wrong": str(g + 1), "wrong2": str(g + 2), "wrong_decimal": f"{g + 1}.0"}


def known_patterns(math500_path, tmp_path) -> tuple[Script, list[dict], Path]:
    """Four problems, N=4, rewards = last step's; the answer groups spell one answer several ways.

    | problem | greedy | samples (answer: reward)                         | majority   | naive      | weighted   | pass@4 |
    | ------- | ------ | ------------------------------------------------ | ---------- | ---------- | ---------- | ------ |
    | P1      | wrong  | w: .2, w: .2, \\frac{2g}{2}: .6, \\dfrac{2g}{2}: .7 | wrong (tie, | right,     | right,     | right  |
    |         |        |                                                  | first grp) | \\dfrac #3 | \\dfrac #3 |        |
    | P2      | right  | x = g: .6, w: .95, x=g: .5, no answer: .99        | right #0   | wrong #1   | right #0   | right  |
    | P3      | none   | w: .3, w2: .4, w.0: .5, cut off (right): .9       | wrong #2   | wrong #2   | wrong #2   | wrong  |
    | P4      | wrong  | g: .1, g.0: .1, g: .1, w: .9                      | right #0   | wrong #3   | wrong #3   | right  |

    P1: greedy and majority wrong, weighted Best-of-N right. P2: the PRM's favourite is wrong, the weighted
    vote fixes it. P4: the PRM misleads both Best-of-N rules. Totals: greedy 1/4, majority 2/4, naive 1/4,
    weighted 2/4, pass@4 3/4. In P1 and P3 the chosen solution spells its answer differently from the first
    member of its group (the crash of issue 15), and the verdict shows the chosen solution's own spelling.
    """
    rows = integer_problems(math500_path, 4)
    s = [_spelled(r["answer"]) for r in rows]
    script = Script([
        ScriptedProblem(rows[0]["problem"], Solution(s[0]["wrong"]),
                        [Solution(s[0]["wrong"], (0.5, 0.2)), Solution(s[0]["wrong"], (0.2,)),
                         Solution(s[0]["frac"], (0.1, 0.6)), Solution(s[0]["dfrac"], (0.7,))]),
        ScriptedProblem(rows[1]["problem"], Solution(s[1]["plain"]),
                        [Solution(s[1]["eq_spaced"], (0.6,)), Solution(s[1]["wrong"], (0.95,)),
                         Solution(s[1]["eq"], (0.5,)), Solution(None, (0.99,))]),
        ScriptedProblem(rows[2]["problem"], Solution(None),
                        [Solution(s[2]["wrong"], (0.3,)), Solution(s[2]["wrong2"], (0.4,)),
                         Solution(s[2]["wrong_decimal"], (0.5,)), Solution(s[2]["plain"], (0.9,), "length")]),
        ScriptedProblem(rows[3]["problem"], Solution(s[3]["wrong"]),
                        [Solution(s[3]["plain"], (0.1,)), Solution(s[3]["decimal"], (0.1,)),
                         Solution(s[3]["plain"], (0.1,)), Solution(s[3]["wrong"], (0.9,))]),
    ])
    return script, rows, write_dataset(rows, tmp_path / "four.jsonl")


EXPECTED_ACCURACY = {"greedy": (1, 4), "majority": (2, 4), "naive_bon": (1, 4), "weighted_bon": (2, 4), "pass_at_n": (3, 4)}


def _expected_verdicts(rows: list[dict]) -> list[dict]:
    """Per problem and rule: (answer as the chosen solution spells it, correct, sample_index), from the table."""
    s = [_spelled(r["answer"]) for r in rows]
    return [
        {"majority": (s[0]["wrong"], False, 0), "naive_bon": (s[0]["dfrac"], True, 3), "weighted_bon": (s[0]["dfrac"], True, 3)},
        {"majority": (s[1]["eq_spaced"], True, 0), "naive_bon": (s[1]["wrong"], False, 1),
         "weighted_bon": (s[1]["eq_spaced"], True, 0)},
        {"majority": (s[2]["wrong_decimal"], False, 2), "naive_bon": (s[2]["wrong_decimal"], False, 2),
         "weighted_bon": (s[2]["wrong_decimal"], False, 2)},
        {"majority": (s[3]["plain"], True, 0), "naive_bon": (s[3]["wrong"], False, 3), "weighted_bon": (s[3]["wrong"], False, 3)},
    ]


def _check_known_patterns(results: dict, rows: list[dict]) -> None:
    assert {m: (a["correct"], a["total"]) for m, a in results["accuracy"].items()} == EXPECTED_ACCURACY
    by_id = {r["unique_id"]: r for r in results["per_problem"]}
    for row, expected in zip(rows, _expected_verdicts(rows)):
        got = by_id[row["unique_id"]]
        for method, (answer, correct, index) in expected.items():
            assert (got[method]["answer"], got[method]["correct"], got[method]["sample_index"]) == (answer, correct, index), (
                row["unique_id"], method)
    p1 = by_id[rows[0]["unique_id"]]
    assert [(g["count"], g["indices"]) for g in p1["groups"]] == [(2, [2, 3]), (2, [0, 1])]  # \\frac, \\dfrac pooled
    assert [g["reward_sum"] for g in p1["groups"]] == pytest.approx([1.3, 0.4])


def test_selection_shows_the_chosen_solution_whatever_its_spelling(tmp_path, math500_path,
                                                                   tiny_generator_dir, tiny_prm_dir):
    script, rows, dataset = known_patterns(math500_path, tmp_path)
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run")

    results = pipeline.run(config, models=scripted_models(script, make_tokenizer()))

    _check_known_patterns(results, rows)
    assert read_json(tmp_path / "run" / "results.json") == results
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    for row in results["per_problem"]:  # every verdict points at a real solution with exactly that answer
        mine = [s for s in samples if s["unique_id"] == row["unique_id"]]
        for method in SELECTION_METHODS:
            chosen = mine[row[method]["sample_index"]]
            assert (chosen["answer"], chosen["correct"]) == (row[method]["answer"], row[method]["correct"])
        assert row["pass_at_n"]["correct"] == any(s["correct"] for s in mine)
        assert sum(g["count"] for g in row["groups"]) == sum(s["answer"] is not None for s in mine)


def test_results_stage_alone_on_equivalent_spellings(tmp_path, math500_path, tiny_generator_dir,
                                                     tiny_prm_dir):
    """Selection recomputed from the stored samples with another aggregation: min of the step rewards.

    With ``min``, P1's rewards become w: .2, w: .2, \\frac: .1, \\dfrac: .7 (the others have one step), so the
    groups weigh .4 vs .8: the same verdicts, computed again from the files alone.
    """
    script, rows, dataset = known_patterns(math500_path, tmp_path)
    pipeline.run(tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run"),
                 models=scripted_models(script, make_tokenizer()))
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", aggregation="min")
    problems = [Problem(**r) for r in read_jsonl(tmp_path / "run" / "problems.jsonl")]
    results = pipeline.build_results(config, problems, read_jsonl(tmp_path / "run" / "greedy.jsonl"),
                              read_jsonl(tmp_path / "run" / "samples.jsonl"), {})
    assert {m: (a["correct"], a["total"]) for m, a in results["accuracy"].items()} == EXPECTED_ACCURACY
    p1 = results["per_problem"][[p.unique_id for p in problems].index(rows[0]["unique_id"])]
    assert p1["weighted_bon"]["sample_index"] == 3 and p1["weighted_bon"]["answer"] == _spelled(rows[0]["answer"])["dfrac"]
    assert [g["reward_sum"] for g in p1["groups"]] == pytest.approx([0.8, 0.4])


def test_cli_end_to_end(tmp_path, math500_path, tiny_generator_dir, tiny_prm_dir, capsys):
    script, rows, dataset = known_patterns(math500_path, tmp_path)
    out = tmp_path / "run"
    argv = ["run", "--generator", str(tiny_generator_dir), "--prm", str(tiny_prm_dir), "--dataset", str(dataset),
            "--levels", "1,2", "--num-problems", "4", "--n", "4", "--max-new-tokens", "64", "--temperature", "1.0",
            "--device", "cpu", "--output-dir", str(out)]
    assert main(argv, models=scripted_models(script, make_tokenizer())) == 0
    printed = capsys.readouterr().out
    assert re.search(r"weighted_bon\s+50\.0%\s+\(2/4\)", printed) and re.search(r"greedy\s+25\.0%\s+\(1/4\)", printed)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["levels"] == [1, 2] and saved["n"] == 4 and saved["temperature"] == 1.0
    _check_known_patterns(read_json(out / "results.json"), rows)


def chunk_files(run: Path, stage: str) -> set[str]:
    return {p.name for p in (run / "chunks" / stage).glob("*.json")}


def test_killed_run_resumes_without_redoing_work(tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path):
    # chunks of at most 4 solutions with n=4: one problem per sampling call and chunk.
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run")
    killer = CountingModels(die_after=3, chunk_sequences=4)  # greedy (one call) + two sample calls
    with pytest.raises(SimulatedKill):
        pipeline.run(config, models=killer)
    assert killer.calls == [4, 1, 1]  # greedy for all four problems, then two problems' samples
    assert len(chunk_files(tmp_path / "run", "greedy")) == 1 and len(chunk_files(tmp_path / "run", "samples")) == 2
    assert not (tmp_path / "run" / "samples.jsonl").exists(), "files are written from the chunks at the end"

    resumed = CountingModels(chunk_sequences=4)
    pipeline.run(config, models=resumed)
    assert resumed.calls == [1, 1], "only the two unfinished problems are generated again"

    # The resumed run gives exactly what an uninterrupted run gives, byte for byte.
    fresh = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "fresh")
    pipeline.run(fresh, models=CountingModels(chunk_sequences=4))
    for name in ("problems.jsonl", "greedy.jsonl", "samples.jsonl", "results.json"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name

    # A rerun with the same settings generates nothing.
    again = CountingModels(chunk_sequences=4)
    pipeline.run(config, models=again)
    assert again.calls == []


def test_the_run_seed_changes_the_samples_and_only_them(tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / name, seed=seed, num_problems=8)
        pipeline.run(config)
        runs[name] = read_jsonl(tmp_path / name / "samples.jsonl")
    texts = {name: {(r["unique_id"], r["sample_index"]): r["text"] for r in rows} for name, rows in runs.items()}
    assert texts["a"] == texts["b"], "the same seed samples the same solutions"
    shared = set(texts["a"]) & set(texts["c"])  # another seed draws another subset: compare the shared problems
    assert shared and sum(texts["a"][k] != texts["c"][k] for k in shared) > len(shared) // 2


def test_changed_settings_are_never_silently_reused(tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path):
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run", n=2)
    pipeline.run(config)
    changed = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run", n=3)
    with pytest.raises(BestOfNError, match=r"other settings \(n: 2 -> 3\).*--overwrite"):
        pipeline.run(changed)

    counter = CountingModels()
    results = pipeline.run(changed, overwrite=True, models=counter)
    assert counter.calls == [4], "greedy is reused, the samples are drawn again (4 problems, one call)"
    assert results["n"] == 3 and len(read_jsonl(tmp_path / "run" / "samples.jsonl")) == 12
    assert len(chunk_files(tmp_path / "run", "samples")) == 1, "the chunks of n=2 are gone"

    # Speed-only settings may change freely.
    faster = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run", n=3, prm_batch_tokens=256)
    pipeline.run(faster, models=counter)
    assert counter.calls == [4]


def test_an_edited_dataset_is_a_changed_setting(tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path):
    rows = integer_problems(math500_path, 4)
    dataset = write_dataset(rows, tmp_path / "four.jsonl")
    config = tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run")
    first = pipeline.run(config, models=CountingModels(chunk_sequences=4))
    rows[1] = {**rows[1], "answer": str(int(rows[1]["answer"]) + 1)}  # the gold answer of one problem changes
    write_dataset(rows, dataset)
    with pytest.raises(BestOfNError, match=r"problems drawn from .*four.jsonl differ .*--overwrite"):
        pipeline.run(config)
    counter = CountingModels(chunk_sequences=4)
    results = pipeline.run(config, overwrite=True, models=counter)
    # greedy's one chunk holds all four problems; the samples come one problem per chunk (chunk_sequences=4)
    assert counter.calls == [4, 1], "only the chunks that hold the edited problem are computed again"
    gold = {r["unique_id"]: r["gold"] for r in results["per_problem"]}
    assert gold[rows[1]["unique_id"]] == rows[1]["answer"] != {r["unique_id"]: r["gold"] for r in first["per_problem"]}[
        rows[1]["unique_id"]]


def test_changing_the_prm_rescores_without_regenerating(tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path):
    from bestofn.testing import make_tiny_prm

    config = tiny_config(tiny_generator_dir, tiny_prm_dir, math500_path, tmp_path / "run")
    pipeline.run(config)
    before = read_jsonl(tmp_path / "run" / "samples.jsonl")
    other_prm = make_tiny_prm(tmp_path / "prm2", seed=7)
    counter = CountingModels()
    pipeline.run(tiny_config(tiny_generator_dir, other_prm, math500_path, tmp_path / "run"), overwrite=True,
                 models=counter)
    after = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert counter.calls == []
    assert [s["text"] for s in after] == [s["text"] for s in before]
    assert [s["step_rewards"] for s in after] != [s["step_rewards"] for s in before]


def test_a_sweep_shares_the_greedy_chunks(tmp_path, tiny_run_dir):
    source = BestOfNConfig.from_yaml(tiny_run_dir / "config.yaml")
    hotter = BestOfNConfig.from_dict({**source.to_dict(), "temperature": 1.2, "output_dir": str(tmp_path / "hot")})
    assert rundir.share_chunks(tiny_run_dir, tmp_path / "hot", "greedy") == 1
    counter = CountingModels()
    pipeline.run(hotter, models=counter)
    assert counter.calls == [4], "only the samples are generated"
    assert read_jsonl(tmp_path / "hot" / "greedy.jsonl") == read_jsonl(tiny_run_dir / "greedy.jsonl")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--generator", "no-such-org/no-such-model"], "cannot load the generator 'no-such-org/no-such-model'.*--generator DIR"),
        (["--prm", "no-such-org/no-such-prm"], "cannot load the PRM 'no-such-org/no-such-prm'.*--prm DIR"),
        (["--levels", "1,7"], "levels must be a non-empty subset of 1-5"),
        (["--levels", "one"], "--levels takes a list of integers, comma-separated, got 'one'"),
        (["--n", "0"], "n must be at least 1"),
        (["--num-problems", "999"], "asked for 999 problems but levels"),
        (["--output-dir", "/proc/bestofn-run"], "/proc/bestofn-run: "),
    ],
)
def test_bad_input_is_one_clear_line(flags, message, tmp_path, tiny_generator_dir, tiny_prm_dir, math500_path, capsys):
    argv = ["run", "--generator", str(tiny_generator_dir), "--prm", str(tiny_prm_dir), "--dataset", str(math500_path),
            "--num-problems", "1", "--n", "1", "--max-new-tokens", "4", "--device", "cpu",
            "--output-dir", str(tmp_path / "run"), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("bestofn: error: ")
    import re

    assert re.search(message, err[-1]), err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "run").exists(), "a failed first run leaves no run directory"


def test_dataset_with_missing_fields(tmp_path, tiny_generator_dir, tiny_prm_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "1+1", "answer": "2", "unique_id": "a"}) + "\n")
    argv = ["run", "--generator", str(tiny_generator_dir), "--prm", str(tiny_prm_dir), "--dataset", str(bad),
            "--output-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    assert "field level is missing" in capsys.readouterr().err


def test_the_models_used_are_recorded(tiny_run_dir, tiny_generator_dir, tiny_prm_dir):
    models = read_json(tiny_run_dir / "manifest.json")["models"]
    assert models == {"generator": {"name": str(tiny_generator_dir), "commit": None},  # local folders: no commit
                      "prm": {"name": str(tiny_prm_dir), "commit": None}}


def test_hub_commit_comes_from_the_cache_path(tmp_path, monkeypatch):
    config_file = tmp_path / "models--org--prm" / "snapshots" / "c0ffee42" / "config.json"
    config_file.parent.mkdir(parents=True)
    config_file.write_text("{}")
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda repo, name, revision=None: str(config_file))
    assert check_model("org/prm", None, "PRM", "--prm") == "c0ffee42"
    with pytest.raises(BestOfNError, match="has no config.json"):
        check_model(str(tmp_path), None, "PRM", "--prm")


def test_load_run_accepts_a_finished_run_and_names_what_is_missing(tiny_run_dir, tmp_path):
    import shutil

    assert load_run(tiny_run_dir).config == BestOfNConfig.from_yaml(tiny_run_dir / "config.yaml")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_run_dir, partial)
    (partial / "results.json").unlink()
    with pytest.raises(BestOfNError, match=r"not a finished run directory \(missing results.json\); finish the run "
                                           r"with `bestofn run --config .*partial/config.yaml --output-dir"):
        load_run(partial)


def test_grading_timeout_reaches_every_comparison(tmp_path, monkeypatch, math500_path, tiny_generator_dir, tiny_prm_dir):
    """grading_timeout bounds the grading of each solution and each comparison made to group answers."""
    from bestofn import selection

    script, rows, dataset = known_patterns(math500_path, tmp_path)
    seen = {"grade": set(), "group": set()}
    real_grade, real_equivalent = pipeline.grade, selection.is_equivalent
    monkeypatch.setattr(pipeline, "grade", lambda text, gold, timeout, kind="expression": seen["grade"].add(timeout)
                        or real_grade(text, gold, timeout, kind))
    monkeypatch.setattr(selection, "is_equivalent", lambda a, b, timeout=5, kind="expression": seen["group"].add(timeout)
                        or real_equivalent(a, b, timeout, kind))
    results = pipeline.run(tiny_config(tiny_generator_dir, tiny_prm_dir, dataset, tmp_path / "run", grading_timeout=3),
                           models=scripted_models(script, make_tokenizer()))
    assert seen == {"grade": {3}, "group": {3}}
    assert {m: (a["correct"], a["total"]) for m, a in results["accuracy"].items()} == EXPECTED_ACCURACY


def test_results_json_is_built_by_the_run_from_rows_worked_by_hand():
    """pipeline.build_results (issue 29: the run builds results.json; selection only gives verdicts), no model:
    p1 (level 1, gold 3): samples "3" (.9, right, string match), "4" (.2); greedy "3" right.
    p2 (level 2, gold 5): samples "6" (.8), "5" (.7, right, no string match); greedy none right.
    weighted: p1 "3" right, p2 "6" wrong -> 1/2; pass@2 2/2; greedy 1/2; by level: level 1 all right."""
    config = BestOfNConfig(n=2, dataset="math500", aggregation="last")
    problems = [Problem("p1", "1+2?", "3", 1), Problem("p2", "2+3?", "5", 2)]

    def row(uid, index, answer, reward, correct, match, tokens):
        return {"unique_id": uid, "sample_index": index, "answer": answer, "step_rewards": [reward],
                "correct": correct, "string_match": match, "num_tokens": tokens}

    samples = [row("p1", 0, "3", 0.9, True, True, 10), row("p1", 1, "4", 0.2, False, False, 12),
               row("p2", 1, "5", 0.7, True, False, 9), row("p2", 0, "6", 0.8, False, False, 11)]  # out of order
    greedy = [{"unique_id": "p1", "answer": "3", "correct": True, "string_match": True, "num_tokens": 5},
              {"unique_id": "p2", "answer": "7", "correct": False, "string_match": False, "num_tokens": 6}]
    results = pipeline.build_results(config, problems, greedy, samples, {"generated_tokens": 42, "prm_tokens": None})
    acc = {m: (a["correct"], a["total"]) for m, a in results["accuracy"].items()}
    assert acc == {"greedy": (1, 2), "majority": (1, 2), "naive_bon": (1, 2), "weighted_bon": (1, 2), "pass_at_n": (2, 2)}
    assert {lvl: v["weighted_bon"]["correct"] for lvl, v in results["by_level"].items()} == {"1": 1, "2": 0}
    assert results["string_match"] == {"greedy": {"correct": 1, "total": 2, "accuracy": 0.5},
                                       "samples": {"correct": 1, "total": 4, "accuracy": 0.25}}
    assert results["tokens"] == {"greedy": 11, "samples": 42}
    assert results["compute"] == {"generated_tokens": 42, "prm_tokens": None, "generated_tokens_per_problem": 21.0,
                                  "prm_tokens_per_problem": None}
    assert results["dataset"] == {"source": "math500", "title": "MATH-500"} and results["n"] == 2
    p2 = results["per_problem"][1]
    assert p2["weighted_bon"] == {"answer": "6", "correct": False, "sample_index": 0} and p2["gold"] == "5"
    assert p2["greedy"] == {"answer": "7", "correct": False} and p2["level"] == 2
