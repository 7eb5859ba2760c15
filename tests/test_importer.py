"""Tests of `bestofn import`: completions in search-and-learn's column layout become a run directory that the
report, selection and PRM rescoring work on. Expected values are worked out by hand in each test."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bestofn import cli, pipeline
from bestofn.config import BestOfNConfig
from bestofn.errors import BestOfNError
from bestofn.importer import UNKNOWN, import_completions
from bestofn.io import read_json, read_jsonl
from bestofn.report import analysis as A
from bestofn.report.loader import load_run


def solution(answer: str, steps: int = 2) -> str:
    """A solution text with ``steps`` steps separated by blank lines, as search-and-learn's prompts write them."""
    return "\n\n".join([f"## Step {k + 1}: work." for k in range(steps - 1)] + [f"So the answer is $\\boxed{{{answer}}}$."])


# Two problems, N=3, in search-and-learn's layout (its extra columns included, and ignored):
#   p1 (gold 4): "4" (.2, .9), "5" (.8, .6), "5" (.7, .5): majority "5" (wrong); naive "4" (.9, right);
#      weighted "5" (1.1 > .9, wrong); pass@3 right.
#   p2 (gold \frac{1}{2}): "0.5" (.4, .7), "1/3" (.9, .3), "\frac12" (.6, .6): equivalent spellings form one
#      group: majority, naive (.7) and weighted (1.3) all right.
# So majority 1/2, naive 2/2, weighted 1/2, pass@3 2/2.
ROWS = [
    {"problem": "What is 2+2?", "solution": "It is 4.", "answer": "4", "subject": "Prealgebra", "level": 1,
     "unique_id": "test/prealgebra/1.json",
     "completions": [solution("4"), solution("5"), solution("5")],
     "scores": [[0.2, 0.9], [0.8, 0.6], [0.7, 0.5]], "pred": "\\boxed{5}", "completion_tokens": [31, 40, 38],
     "agg_scores": [0.9, 0.6, 0.5], "pred_weighted@1": "4", "pred_maj@1": "4", "pred_naive@1": "4"},
    {"problem": "Half of one?", "solution": "1/2.", "answer": "\\frac{1}{2}", "subject": "Algebra", "level": 3,
     "unique_id": "test/algebra/2.json",
     "completions": [solution("0.5"), solution("1/3"), solution("\\frac12")],
     "scores": [[0.4, 0.7], [0.9, 0.3], [0.6, 0.6]], "pred": "\\boxed{0.5}", "completion_tokens": [20, 22, 24],
     "agg_scores": [0.7, 0.3, 0.6], "pred_weighted@1": "0.5", "pred_maj@1": "0.5", "pred_naive@1": "0.5"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_search_and_learn_layout_imports_as_is(tmp_path: Path):
    run = import_completions(str(write_jsonl(tmp_path / "sal.jsonl", ROWS)), tmp_path / "run",
                             generator="meta-llama/Llama-3.2-1B-Instruct", prm="RLHFlow/Llama3.1-8B-PRM-Deepseek-Data",
                             temperature=0.8)
    config = load_run(run).config  # a finished run directory: every file present and as written
    assert (config.n, config.generator, config.dataset) == (3, "meta-llama/Llama-3.2-1B-Instruct", str(tmp_path / "sal.jsonl"))
    problems = read_jsonl(run / "problems.jsonl")
    assert [(p["unique_id"], p["level"], p["subject"]) for p in problems] == [
        ("test/prealgebra/1.json", 1, "Prealgebra"), ("test/algebra/2.json", 3, "Algebra")]
    samples = read_jsonl(run / "samples.jsonl")
    assert [s["answer"] for s in samples] == ["4", "5", "5", "0.5", "1/3", "\\frac12"]
    assert [s["correct"] for s in samples] == [True, False, False, True, False, True]  # the project's own grader
    assert [s["num_tokens"] for s in samples] == [31, 40, 38, 20, 22, 24]
    assert samples[1]["step_rewards"] == [0.8, 0.6] and "reward" not in samples[1]
    assert read_jsonl(run / "greedy.jsonl") == []  # no greedy column: no greedy baseline
    results = read_json(run / "results.json")
    got = {m: (a["correct"], a["total"]) for m, a in results["accuracy"].items()}
    assert got == {"majority": (1, 2), "naive_bon": (2, 2), "weighted_bon": (1, 2), "pass_at_n": (2, 2)}
    imported = read_json(run / "manifest.json")["imported_from"]
    assert imported["source"] == str(tmp_path / "sal.jsonl") and imported["rows"] == 2 and imported["n"] == 3
    assert imported["greedy"] is False and imported["scores"] == "step rewards" and imported["token_counts"] is True
    assert "pred" in imported["columns"]
    # results.json says what was imported from where, and what the input did not state
    assert results["imported_from"]["source"] == str(tmp_path / "sal.jsonl")
    assert results["imported_from"]["stated"] == {"generator": "meta-llama/Llama-3.2-1B-Instruct",
                                                  "prm": "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", "temperature": 0.8}
    assert {"top_p", "max_new_tokens", "seed"} <= set(results["imported_from"]["not_stated"])
    assert results["compute"]["generated_tokens"] == 31 + 40 + 38 + 20 + 22 + 24, "the rows' own counts"
    assert results["compute"]["prm_tokens"] is None, "the input did not say: unknown, never 0"
    an = A.analyze(run, subsets=10, bootstrap=20)
    assert not an.inconsistencies and not an.run.has_greedy and "greedy" not in an.comparisons
    assert an.mean_tokens[-1] == pytest.approx((31 + 40 + 38 + 20 + 22 + 24) / 2)


def test_parquet_greedy_one_score_and_missing_tokens(tmp_path: Path):
    """A parquet file with a greedy column, one score per completion (an outcome reward), "Level 2" levels and
    no token counts: greedy is graded, every aggregation is the one score, token counts stay unknown (None)."""
    import datasets

    rows = [{"problem": f"What is {k}?", "answer": str(k), "level": f"Level {k + 1}", "greedy": solution(str(k)),
             "completions": [solution(str(k)), solution("9")], "scores": [0.3, 0.6]} for k in range(2)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "c.parquet"))
    run = import_completions(str(tmp_path / "c.parquet"), tmp_path / "run")
    greedy = read_jsonl(run / "greedy.jsonl")
    assert [(g["answer"], g["correct"], g["num_tokens"]) for g in greedy] == [("0", True, None), ("1", True, None)]
    assert [p["unique_id"] for p in read_jsonl(run / "problems.jsonl")] == ["row/0", "row/1"]
    assert [p["level"] for p in read_jsonl(run / "problems.jsonl")] == [1, 2]
    samples = read_jsonl(run / "samples.jsonl")
    assert [s["step_rewards"] for s in samples] == [[0.3], [0.6]] * 2 and all(s["num_tokens"] is None for s in samples)
    results = read_json(run / "results.json")
    assert results["accuracy"]["greedy"]["correct"] == 2 and results["tokens"] == {"greedy": None, "samples": None}
    assert results["accuracy"]["naive_bon"]["correct"] == 0  # "9" scored 0.6 beats the right 0.3
    assert read_json(run / "manifest.json")["imported_from"]["scores"] == "one per completion"
    config = BestOfNConfig.from_yaml(run / "config.yaml")
    assert config.generator == UNKNOWN and config.prm == UNKNOWN
    an = A.analyze(run, subsets=10, bootstrap=20)
    assert an.run.one_score and an.mean_tokens is None and an.greedy_mean_tokens is None


def test_import_takes_the_lock_and_overwrite_keeps_the_users_files(tmp_path: Path):
    from bestofn.rundir import lock_run_dir

    source = str(write_jsonl(tmp_path / "sal.jsonl", ROWS))
    out = tmp_path / "run"
    import_completions(source, out)
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    with lock_run_dir(out):  # e.g. a `bestofn run` writing the same directory
        with pytest.raises(BestOfNError, match=r"in use by another bestofn process"):
            import_completions(source, out, overwrite=True)
    import_completions(source, out, overwrite=True, prm="x/y")
    assert (out / "notes.txt").read_text() == "mine" and (out / "sub").is_dir(), "only what bestofn wrote is replaced"
    assert read_json(out / "manifest.json")["imported_from"]["stated"]["prm"] == "x/y"
    assert len(list((out / "chunks" / "samples").glob("*.json"))) == 1, "the chunks of the old import are gone"


def test_missing_column_and_other_bad_input_are_named(tmp_path: Path):
    bad = [{k: v for k, v in ROWS[0].items() if k != "completions"}]
    with pytest.raises(BestOfNError, match=r"lacks the column completions \(it has .*problem.*\)"):
        import_completions(str(write_jsonl(tmp_path / "a.jsonl", bad)), tmp_path / "r1")
    uneven = [ROWS[0], {**ROWS[1], "completions": ROWS[1]["completions"][:2], "completion_tokens": [1, 2]}]
    with pytest.raises(BestOfNError, match=r"b.jsonl: line 2 \(unique_id 'test/algebra/2.json'\): field scores has "
                                           r"3 entries, not one per completion \(2\)"):
        import_completions(str(write_jsonl(tmp_path / "b.jsonl", uneven)), tmp_path / "r2")
    with pytest.raises(BestOfNError, match="does not exist"):
        import_completions(str(tmp_path / "none.jsonl"), tmp_path / "r3")
    import_completions(str(write_jsonl(tmp_path / "c.jsonl", ROWS)), tmp_path / "r4")
    with pytest.raises(BestOfNError, match=r"holds a run directory; choose a new --output-dir, or pass --overwrite"):
        import_completions(str(tmp_path / "c.jsonl"), tmp_path / "r4")
    assert cli.main(["import", str(tmp_path / "a.jsonl"), "--output-dir", str(tmp_path / "r5")]) == 2  # one line


def test_unscored_import_is_scored_by_a_real_prm_and_rescored(tmp_path: Path, tiny_prm_dir, tiny_generator_dir, capsys):
    """Without scores the run stops after the samples; `bestofn run` with a PRM finishes it (here: the tiny
    Skywork-format PRM, for real), and a second PRM rescored with --overwrite replaces the scores alone."""
    rows = [{k: v for k, v in r.items() if k != "scores"} for r in ROWS]
    source = write_jsonl(tmp_path / "unscored.jsonl", rows)
    assert cli.main(["import", str(source), "--output-dir", str(tmp_path / "run"), "--generator", "org/gen"]) == 0
    assert "imported" in capsys.readouterr().out
    run = tmp_path / "run"
    assert not (run / "results.json").exists()
    with pytest.raises(BestOfNError, match=r"not a finished run directory \(missing results.json\)"):
        load_run(run)
    config = dataclasses.replace(BestOfNConfig.from_yaml(run / "config.yaml"), prm=str(tiny_prm_dir), device="cpu")
    results = pipeline.run(config, overwrite=True)  # the generator (org/gen) is never needed: samples are done
    samples = read_jsonl(run / "samples.jsonl")
    assert all(len(s["step_rewards"]) >= 1 for s in samples) and results["accuracy"]["pass_at_n"]["correct"] == 2
    first = [s["step_rewards"] for s in samples]
    other = tmp_path / "prm2"
    import shutil

    shutil.copytree(tiny_prm_dir, other)  # the same weights under another name: a different PRM setting
    again = pipeline.run(dataclasses.replace(config, prm=str(other)), overwrite=True)
    assert [s["step_rewards"] for s in read_jsonl(run / "samples.jsonl")] == first  # same weights, same rewards
    assert read_jsonl(run / "greedy.jsonl") == [] and again["n"] == 3
    assert BestOfNConfig.from_yaml(run / "config.yaml").prm == str(other)
    load_run(run)


# --- every bad value is one line naming file, line and field (issue 22): nothing is imported as 'None' ----------
def _import_error(tmp_path: Path, capsys, lines: list[str], name: str = "bad.jsonl") -> str:
    """Run `bestofn import` on a file of these lines; assert exit 2, one line, no run directory; return the line."""
    source = tmp_path / name
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    code = cli.main(["import", str(source), "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("bestofn: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()  # checked before anything is written
    return err.removeprefix("bestofn: error: ")


def _line(**changes) -> str:
    """Line 2's row: ROWS[1] with ``changes`` (None writes JSON null)."""
    return json.dumps({**ROWS[1], **changes})


@pytest.mark.parametrize("line2, message", [
    (_line(answer=None), "line 2 (unique_id 'test/algebra/2.json'): field answer is null;"),
    (_line(problem=None), "line 2 (unique_id 'test/algebra/2.json'): field problem is null;"),
    (_line(problem="  "), "line 2 (unique_id 'test/algebra/2.json'): field problem is empty;"),
    (_line(completions=[solution("1"), None, solution("2")]),
     "line 2 (unique_id 'test/algebra/2.json'): field completions[1] is null;"),
    (_line(completions=[solution("1"), 7, solution("2")]),
     "line 2 (unique_id 'test/algebra/2.json'): field completions[1] is a int (7), not text;"),
    # JSON has no Infinity or NaN, but Python's json (and many writers) emit them: they must not pass
    (_line(scores=[[0.4, float("inf")], [0.9, 0.3], [0.6, 0.6]]),
     "line 2 (unique_id 'test/algebra/2.json'): field scores[0][1] has inf, not a number in [0, 1]"),
    (_line(scores=[[0.4, 0.7], [float("nan")], [0.6, 0.6]]),
     "line 2 (unique_id 'test/algebra/2.json'): field scores[1][0] has nan, not a number in [0, 1]"),
    (_line(scores=[[0.4, 0.7], "0.9", [0.6, 0.6]]),
     "line 2 (unique_id 'test/algebra/2.json'): field scores[1] has '0.9' (str), not a number in [0, 1]"),
    (_line(scores=[[0.4, 1.5], [0.9, 0.3], [0.6, 0.6]]),
     "line 2 (unique_id 'test/algebra/2.json'): field scores[0][1] has 1.5, not a number in [0, 1]"),
    (_line(scores=[[0.4, 0.7], [0.9, 0.3]]),
     "line 2 (unique_id 'test/algebra/2.json'): field scores has 2 entries, not one per completion (3)"),
    (_line(completion_tokens=[20, -1, 24]),
     "line 2 (unique_id 'test/algebra/2.json'): field completion_tokens[1] has -1, not a non-negative integer"),
    (_line(completion_tokens=[20, "22", 24]),
     "line 2 (unique_id 'test/algebra/2.json'): field completion_tokens[1] has '22', not a non-negative integer"),
    (_line(level="hard"), "line 2 (unique_id 'test/algebra/2.json'): field level is 'hard', not a level 1-5"),
])
def test_a_bad_value_on_line_2_is_named(tmp_path: Path, capsys, line2: str, message: str):
    err = _import_error(tmp_path, capsys, [json.dumps(ROWS[0]), line2])
    assert err.startswith(f"completions file {tmp_path / 'bad.jsonl'}: {message}"), err
    assert "each row needs problem and answer" in err


def test_a_missing_answer_is_missing_not_null(tmp_path: Path, capsys):
    row = {k: v for k, v in ROWS[1].items() if k != "answer"}
    err = _import_error(tmp_path, capsys, [json.dumps(ROWS[0]), json.dumps(row)])
    assert ": line 2 (unique_id 'test/algebra/2.json'): field answer is missing (the row has agg_scores, completion_tokens, " in err


def test_malformed_json_names_its_line(tmp_path: Path, capsys):
    lines = [json.dumps(ROWS[0]), json.dumps(ROWS[1])[:50]]  # cut mid-line, as an interrupted copy leaves it
    err = _import_error(tmp_path, capsys, lines)
    assert err.startswith(f"completions file {tmp_path / 'bad.jsonl'}: line 2 is not valid JSON (Unterminated string "
                          f"starting at, column 49); each line must be one JSON object with problem and answer"), err


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_an_empty_file_is_one_line(tmp_path: Path, capsys, content: str):
    err = _import_error(tmp_path, capsys, [content] if content else [], name="empty.jsonl")
    assert err.startswith(f"completions file {tmp_path / 'empty.jsonl'} is empty; it needs one row per line"), err


def test_a_csv_file_is_named_not_looked_up_on_the_hub(tmp_path: Path, capsys):
    err = _import_error(tmp_path, capsys, ["problem,answer", "1+1?,2"], name="rows.csv")
    assert err.startswith(f"completions file {tmp_path / 'rows.csv'} is a .csv file; bestofn reads .jsonl, .json and "
                          f".parquet files"), err
    assert "Hub" not in err


def test_a_json_array_file_imports_and_names_its_items(tmp_path: Path, capsys):
    (tmp_path / "ok.json").write_text(json.dumps(ROWS))
    assert cli.main(["import", str(tmp_path / "ok.json"), "--output-dir", str(tmp_path / "ok")]) == 0
    assert [s["answer"] for s in read_jsonl(tmp_path / "ok" / "samples.jsonl")][:3] == ["4", "5", "5"]
    (tmp_path / "bad.json").write_text(json.dumps([ROWS[0], {**ROWS[1], "answer": None}], indent=1))
    assert cli.main(["import", str(tmp_path / "bad.json"), "--output-dir", str(tmp_path / "bad")]) == 2
    assert ("bad.json: item 2 (unique_id 'test/algebra/2.json'): field answer is null;" in capsys.readouterr().err)


def test_numbers_as_answers_and_whole_float_counts_import_as_numbers(tmp_path: Path):
    """An answer stored as a number (AMC's 27.0) is the text '27', never '27.0' or 'None'; 31.0 tokens are 31."""
    row = {"problem": "How many miles?", "answer": 27.0, "completions": [solution("27"), solution("27.5")],
           "completion_tokens": [31.0, 12]}
    run = import_completions(str(write_jsonl(tmp_path / "amc.jsonl", [row])), tmp_path / "run")
    assert read_jsonl(run / "problems.jsonl")[0]["answer"] == "27"
    samples = read_jsonl(run / "samples.jsonl")
    assert [(s["correct"], s["num_tokens"]) for s in samples] == [(True, 31), (False, 12)]


def test_scores_and_greedy_are_for_every_row_or_none(tmp_path: Path, capsys):
    no_scores = {k: v for k, v in ROWS[1].items() if k != "scores"}
    err = _import_error(tmp_path, capsys, [json.dumps(ROWS[0]), json.dumps(no_scores)])
    assert err == (f"{tmp_path / 'bad.jsonl'}: problem test/algebra/2.json has no scores but others do; give scores "
                   f"for every row or for none\n")
    greedy_once = [json.dumps({**ROWS[0], "greedy": solution("4")}), json.dumps(ROWS[1])]
    err = _import_error(tmp_path, capsys, greedy_once)
    assert err.startswith(f"{tmp_path / 'bad.jsonl'}: 1 of 2 rows have a greedy solution; give one for every row or for none")


def test_rescoring_an_import_keeps_the_given_scores_and_its_generation_settings_are_fixed(tmp_path: Path, tiny_prm_dir):
    """The imported scores cannot be recomputed: after a rescore with another PRM they are still there, and
    going back to the import's own settings gives them back without any model. Its completions cannot be
    generated again, so a change of a generation setting is refused."""
    run = import_completions(str(write_jsonl(tmp_path / "sal.jsonl", ROWS)), tmp_path / "run")
    given = [s["step_rewards"] for s in read_jsonl(run / "samples.jsonl")]
    assert given[:3] == [[0.2, 0.9], [0.8, 0.6], [0.7, 0.5]]
    imported = BestOfNConfig.from_yaml(run / "config.yaml")
    pipeline.run(dataclasses.replace(imported, prm=str(tiny_prm_dir), device="cpu"), overwrite=True)
    assert [s["step_rewards"] for s in read_jsonl(run / "samples.jsonl")] != given
    pipeline.run(imported, overwrite=True)  # no model named "unknown (imported)" is ever loaded
    assert [s["step_rewards"] for s in read_jsonl(run / "samples.jsonl")] == given
    with pytest.raises(BestOfNError, match=r"imported completions, which cannot be generated again: only the PRM "
                                           r"and the aggregation may change, not beam_width, method, n;"):
        pipeline.run(dataclasses.replace(imported, n=8, method="beam_search", beam_width=2), overwrite=True)


def test_the_printed_rescoring_command_runs_without_a_false_alarm(tmp_path: Path, tiny_prm_dir, caplog, capsys):
    """Issue 29: the command `bestofn import` prints for an unscored import runs as printed (PRM filled in) and
    warns of no edited file: writing its own config.yaml is not an edit. An edit the user made still warns."""
    import logging
    import re
    import shlex

    rows = [{k: v for k, v in r.items() if k != "scores"} for r in ROWS]
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        assert cli.main(["import", str(write_jsonl(tmp_path / "unscored.jsonl", rows)), "--output-dir", str(run)]) == 0
    printed = re.search(r"score them with `(bestofn run [^`]*)`", caplog.text).group(1)
    argv = shlex.split(printed)[1:]
    assert argv[-2:] == ["--prm", "PRM"] and argv[:5] == ["run", "--config", str(run / "config.yaml"), "--output-dir",
                                                         str(run)]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert cli.main([*argv[:-1], str(tiny_prm_dir)]) == 0
    assert "was changed after the last run wrote it" not in caplog.text
    assert read_json(run / "results.json")["accuracy"]["pass_at_n"]["correct"] == 2
    (run / "problems.jsonl").write_text((run / "problems.jsonl").read_text() + "\n")  # a real edit is still named
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert cli.main([*argv[:-1], str(tiny_prm_dir)]) == 0
    assert f"{run / 'problems.jsonl'} was changed after the last run wrote it" in caplog.text
