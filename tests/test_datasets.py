"""Every benchmark of the registry from a real excerpt in its own published layout (tests/data/README.md):
layouts recognised, gold answers extracted as each benchmark keeps them, stable ids, grading per answer kind,
and the subset of benchmarks without levels. Expected golds are read off the excerpt files by hand."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from bestofn import cli
from bestofn.config import BestOfNConfig
from bestofn.data import (ALL, DATASET_NAMES, DATASETS, LAYOUTS, NO_LEVEL, load_problems, select_subset,
                          subset_note)
from bestofn.errors import BestOfNError
from bestofn.grading import ANSWER_KINDS, EXPRESSION, INTEGER, as_number, grade

DATA = Path(__file__).resolve().parent / "data"


def excerpt(name: str) -> str:
    return str(DATA / f"{name}_excerpt.jsonl")


# (ids with the benchmark named, golds, answer kind), read off each excerpt file by hand.
EXPECTED = {
    # GSM8K: the text after ####; line 7 is test row 146, "#### 2,125" (a thousands separator)
    "gsm8k": (["gsm8k/0", "gsm8k/1", "gsm8k/2", "gsm8k/3", "gsm8k/4", "gsm8k/5", "gsm8k/146"],
              ["18", "3", "70000", "540", "20", "64", "2125"], INTEGER),
    # AIME 2024: `answer` as written (problem 67's is "025"), ids from `id`
    "aime24": (["aime24/60", "aime24/61", "aime24/62", "aime24/67"], ["204", "113", "371", "025"], INTEGER),
    # AIME 2025 (math-ai/aime25's layout): answers stored as JSON integers, ids as strings
    "aime25": (["aime25/0", "aime25/3", "aime25/12", "aime25/14", "aime25/16"], ["70", "117", "204", "735", "49"],
               INTEGER),
    # AMC 2023: answers stored as floats 27.0 ... : the gold is the integer
    "amc23": (["amc23/0", "amc23/1", "amc23/2", "amc23/3", "amc23/4", "amc23/5"], ["27", "36", "45", "3159", "36", "7"],
              INTEGER),
    # Minerva Math: the last \boxed{} of `solution` (idx 2's is followed by ^{\circ}, outside the box)
    "minerva_math": (["minerva_math/0", "minerva_math/1", "minerva_math/2", "minerva_math/4", "minerva_math/7",
                      "minerva_math/10"], ["1.6", "4.5e33", "41.8", "0.006", "100", "3.83e35"], EXPRESSION),
    # OlympiadBench: final_answer without math-mode $ (also between answers: "$69$,$84$") or a final period
    "olympiadbench": (["olympiadbench/1606", "olympiadbench/1610", "olympiadbench/1618", "olympiadbench/1664",
                       "olympiadbench/1938", "olympiadbench/1970", "olympiadbench/2410"],
                      ["2", "\\frac{1}{2 n+2}", "(1,8,19), (2,7,13), (4,5,7)", "69,84", "f(x)=-1,f(x)=x+1",
                       "(-\\infty, 0) \\cup\\{1\\}", "[\\frac{1}{2}, 8]"], EXPRESSION),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_excerpt_loads_in_its_own_layout(name, tmp_path):
    """A copy named after the benchmark gets the benchmark's ids (they start with the file's name, issue 28)."""
    ids, golds, kind = EXPECTED[name]
    copy = tmp_path / f"{name}.jsonl"
    copy.write_bytes(Path(excerpt(name)).read_bytes())
    problems = load_problems(str(copy), dataset_format=name)
    assert [p.unique_id for p in problems] == ids
    assert [p.answer for p in problems] == golds
    assert {p.answer_kind for p in problems} == {kind} and {p.level for p in problems} == {NO_LEVEL}
    assert all(p.problem.strip() for p in problems)


@pytest.mark.parametrize("name, layout", [("gsm8k", "gsm8k"), ("aime24", "final_answer"), ("aime25", "final_answer"),
                                          ("amc23", "final_answer"), ("minerva_math", "minerva"),
                                          ("olympiadbench", "olympiadbench"), ("math500", "math")])
def test_the_layout_is_recognised_from_the_columns(name, layout):
    """Unnamed, a file loads with the same golds; ids made from its id column start with the file's name."""
    assert DATASETS[name].layout == layout
    problems = load_problems(excerpt(name))
    named = load_problems(excerpt(name), dataset_format=name)
    assert [p.answer for p in problems] == [p.answer for p in named]
    assert [p.answer_kind for p in problems] == [LAYOUTS[layout].answer_kind] * len(problems)
    if name != "math500":
        assert problems[0].unique_id == f"{name}_excerpt/" + named[0].unique_id.split("/", 1)[1]


def test_math500_keeps_its_ids_levels_and_subjects():
    first = load_problems(excerpt("math500"))[0]
    assert (first.unique_id, first.level, first.subject, first.answer_kind) == (
        "test/precalculus/807.json", 2, "Precalculus", EXPRESSION)


def test_an_id_less_file_gets_ids_from_positions(tmp_path):
    """openai/gsm8k has no id column: each problem is named by its 0-based position in the file."""
    rows = [json.loads(line) for line in Path(excerpt("gsm8k")).read_text().splitlines()]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"]}) + "\n" for r in rows))
    problems = load_problems(str(path), dataset_format="gsm8k")
    assert [p.unique_id for p in problems] == [f"gsm8k/{k}" for k in range(7)]
    assert problems[6].answer == "2125" and problems[6].solution.endswith("2125 blocks")


def test_parquet_and_json_array_copies_load_alike(tmp_path):
    import datasets

    rows = [json.loads(line) for line in Path(excerpt("amc23")).read_text().splitlines()]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "amc.parquet"))
    (tmp_path / "amc.json").write_text(json.dumps(rows, indent=2))
    golds = ["27", "36", "45", "3159", "36", "7"]
    assert [p.answer for p in load_problems(str(tmp_path / "amc.parquet"), dataset_format="amc23")] == golds
    assert [p.answer for p in load_problems(str(tmp_path / "amc.json"), dataset_format="amc23")] == golds


# --- bad rows of each layout: one line naming file, line and field ---------------------------------------------------
def _rewrite(tmp_path: Path, name: str, line: int, change) -> str:
    rows = [json.loads(x) for x in Path(excerpt(name)).read_text().splitlines()]
    change(rows[line - 1])
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("name, line, change, message", [
    ("gsm8k", 3, lambda r: r.update(answer="It is 70000."),
     "line 3: field answer has no '#### ANSWER' line (GSM8K keeps its final answer after ####)"),
    ("gsm8k", 2, lambda r: r.update(question=None), "line 2: field question is null"),
    ("amc23", 4, lambda r: r.update(answer=None), "line 4 (id 3): field answer is null"),
    ("amc23", 4, lambda r: r.update(answer=float("inf")), "line 4 (id 3): field answer is inf, not a finite number"),
    ("aime24", 2, lambda r: r.update(answer=["113"]), "line 2 (id 61): field answer is a list (['113']), not text or a number"),
    ("minerva_math", 5, lambda r: r.update(solution="It is 100 parsecs."),
     "line 5: field solution has no final \\boxed{} answer (no_box)"),
    ("olympiadbench", 4, lambda r: r.update(final_answer=[]), "line 4 (id 1664): field final_answer is empty, not a list"),
    ("olympiadbench", 4, lambda r: r.update(final_answer=["$$"]),
     "line 4 (id 1664): field final_answer holds '$$', not the text of an answer"),
    ("olympiadbench", 1, lambda r: r.pop("question"), "line 1 (id 1606): field question is missing (the row has "),
])
def test_a_bad_row_is_named(tmp_path, name, line, change, message):
    path = _rewrite(tmp_path, name, line, change)
    with pytest.raises(BestOfNError) as err:
        load_problems(path, dataset_format=name)
    assert str(err.value).startswith(f"dataset file {path}: {message}"), str(err.value)
    assert "every row needs " in str(err.value)


def test_a_file_in_no_known_layout_says_which_columns_it_has(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"prompt": "1+1?", "target": "2"}) + "\n")
    with pytest.raises(BestOfNError, match=r"the columns of its first row \(prompt, target\) match none of the known "
                                           r"layouts; name it with --dataset-format \(math500, gsm8k, aime24"):
        load_problems(str(path))


def test_a_csv_dataset_is_a_file_not_a_hub_id(tmp_path):
    path = tmp_path / "problems.csv"
    path.write_text("problem,answer\n1+1?,2\n")
    with pytest.raises(BestOfNError) as err:
        load_problems(str(path))
    assert str(err.value).startswith(f"dataset file {path} is a .csv file; bestofn reads .jsonl, .json and .parquet")
    assert "Hub" not in str(err.value)
    with pytest.raises(BestOfNError, match=r"dataset file .*missing.csv is a .csv file"):
        load_problems(str(tmp_path / "missing.csv"))  # not there either: still a file, never a Hub lookup


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_offline_a_name_fails_with_one_line_naming_its_hub_id(name):
    spec = DATASETS[name]
    with pytest.raises(BestOfNError) as err:
        load_problems(name)
    text = str(err.value)
    assert text.startswith(f"cannot load dataset {name} (Hub dataset {spec.hub_id}"), text
    assert f"--dataset-format {name}" in text and "\n" not in text


def test_the_registry_is_consistent():
    assert DATASET_NAMES == ("math500", "gsm8k", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench")
    assert all(s.layout in LAYOUTS and s.license and s.hub_id.count("/") == 1 for s in DATASETS.values())
    assert {layout.answer_kind for layout in LAYOUTS.values()} <= set(ANSWER_KINDS)


# --- grading real answers of each benchmark ---------------------------------------------------------------------
def solution(answer: str) -> str:
    return f"We work it out.\nTherefore, the final answer is $\\boxed{{{answer}}}$."


# (benchmark, problem's position in the excerpt, a model's boxed answer, right?) worked out by hand.
GRADED = [
    ("gsm8k", 0, "\\$18", True), ("gsm8k", 0, "18 \\text{ dollars}", True), ("gsm8k", 0, "18 dollars", True),
    ("gsm8k", 6, "2,125", True), ("gsm8k", 6, "2,125 blocks", True),
    ("gsm8k", 6, "2125.0", True), ("gsm8k", 6, "2.125", False), ("gsm8k", 2, "70{,}000", True),
    ("aime24", 3, "25", True), ("aime24", 3, "025", True), ("aime24", 0, "\\frac{408}{2}", True), ("aime24", 0, "205", False),
    ("aime25", 0, "70", True), ("aime25", 0, "7", False),
    ("amc23", 0, "27", True), ("amc23", 0, "27.5", False), ("amc23", 3, "3,159", True),
    ("minerva_math", 1, "4.5 \\times 10^{33}", True), ("minerva_math", 1, "4.5e33", True),
    ("minerva_math", 1, "4.6 \\times 10^{33}", False), ("minerva_math", 3, "0.006", True),
    # several answers: all required, in any order
    ("olympiadbench", 3, "84, 69", True), ("olympiadbench", 3, "69", False),
    ("olympiadbench", 2, "(2,7,13), (1,8,19), (4,5,7)", True), ("olympiadbench", 2, "(1,8,19), (2,7,13)", False),
    ("olympiadbench", 4, "f(x)=x+1, f(x)=-1", True), ("olympiadbench", 4, "f(x)=-1", False),
    # intervals
    ("olympiadbench", 5, "(-\\infty,0)\\cup\\{1\\}", True), ("olympiadbench", 5, "(-\\infty,0]", False),
    ("olympiadbench", 6, "\\left[\\frac12, 8\\right]", True), ("olympiadbench", 6, "[0.5, 8)", False),
    ("olympiadbench", 1, "\\frac{1}{2n+2}", True),
]


@pytest.mark.parametrize("name, k, answer, right", GRADED)
def test_real_answers_are_graded_per_benchmark(name, k, answer, right):
    p = load_problems(excerpt(name), dataset_format=name)[k]
    graded = grade(solution(answer), p.answer, timeout=10, kind=p.answer_kind)
    assert graded["answer"] == answer and graded["answer_status"] == "ok"
    assert graded["correct"] is right


@pytest.mark.parametrize("text, number", [
    ("18", Decimal(18)), ("\\$18", Decimal(18)), ("025", Decimal(25)), ("27.0", Decimal(27)), ("2,125", Decimal(2125)),
    ("1{,}600", Decimal(1600)), ("18 \\text{ dollars}", Decimal(18)), ("-4", Decimal(-4)), ("12\\%", Decimal(12)),
    ("x=3", None), ("\\frac{1}{2}", None), ("1,6", None), ("", None),
])
def test_integer_answers_are_read_as_numbers(text, number):
    assert as_number(text) == number


def test_an_integer_answer_is_compared_exactly():
    """As numbers, 2.125 is not 2125 (one digit group) and 025 is 25; text that is no plain number goes to math-verify."""
    assert grade(solution("2.125"), "2125", kind=INTEGER)["correct"] is False
    assert grade(solution("1,000"), "1000", kind=INTEGER)["correct"] is True
    assert grade(solution("2^{3}"), "8", kind=INTEGER)["correct"] is True


@pytest.mark.parametrize("answer, gold", [("18 dollars", "18"), ("20 cups", "20"), ("2,125 blocks", "2125")])
def test_a_bare_unit_word_is_right_only_for_integer_answers(answer, gold):
    """GSM8K-style answers with a unit word outside \\text{}: math-verify reads "18 dollars" as a product of
    letters, so as an expression it is wrong; as a number (GSM8K's kind) it is 18."""
    assert grade(solution(answer), gold, kind=EXPRESSION)["correct"] is False
    assert grade(solution(answer), gold, kind=INTEGER)["correct"] is True


# --- levels only where a benchmark has them; --num-problems all ---------------------------------------------------
def test_a_benchmark_without_levels_draws_from_every_problem(tmp_path):
    copy = tmp_path / "gsm8k.jsonl"  # named after the benchmark: its ids are the benchmark's
    copy.write_bytes(Path(excerpt("gsm8k")).read_bytes())
    problems = load_problems(str(copy), dataset_format="gsm8k")
    # the 3 smallest sha256("0:gsm8k/K"): gsm8k/4 (2400..), gsm8k/1 (42cf..), gsm8k/2 (7dd5..); sorted by id
    assert [p.unique_id for p in select_subset(problems, [1, 2, 3], 3, seed=0)] == ["gsm8k/1", "gsm8k/2", "gsm8k/4"]
    assert select_subset(problems, [5], 3, seed=0) == select_subset(problems, [1, 2, 3], 3, seed=0)  # levels: n/a
    assert [p.unique_id for p in select_subset(problems, [1], ALL, seed=0)] == sorted(p.unique_id for p in problems)
    assert subset_note(problems).startswith("the benchmark has no difficulty levels: every problem was eligible")
    with pytest.raises(BestOfNError, match=r"asked for 8 problems but the dataset has only 7; lower --num-problems "
                                           r"\(or pass --num-problems all\)$"):
        select_subset(problems, [1, 2, 3], 8, seed=0)


def test_all_keeps_every_problem_of_the_chosen_levels():
    problems = load_problems(excerpt("math500"))  # 10 problems at each of levels 1-3
    chosen = select_subset(problems, [1, 3], ALL, seed=0)
    assert len(chosen) == 20 and {p.level for p in chosen} == {1, 3}
    assert subset_note(problems).startswith("stratified by level")


def test_num_problems_all_and_dataset_format_are_settings(tmp_path, capsys):
    assert BestOfNConfig(num_problems="all").num_problems == ALL
    args = cli.build_parser().parse_args(["run", "--num-problems", "all", "--dataset", "gsm8k",
                                          "--dataset-format", "gsm8k"])
    config = cli.config_from_args(args)
    assert (config.num_problems, config.dataset, config.dataset_format) == ("all", "gsm8k", "gsm8k")
    with pytest.raises(BestOfNError, match=r"^num_problems must be an integer or all, got 'some'; e.g. num_problems: 20$"):
        BestOfNConfig(num_problems="some")
    with pytest.raises(BestOfNError, match=r"^num_problems must be at least 1 \(or all\), got 0"):
        BestOfNConfig(num_problems=0)
    assert cli.main(["run", "--num-problems", "many", "--output-dir", str(tmp_path / "r")]) == 2
    assert "--num-problems takes an integer or all, got 'many'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # argparse checks choices, naming them (as for --backend)
        cli.main(["run", "--dataset-format", "math", "--output-dir", str(tmp_path / "r")])
    assert stop.value.code == 2 and "invalid choice: 'math' (choose from 'math500', 'gsm8k'" in capsys.readouterr().err
    from bestofn.config import stage_keys

    # both choose the problems: a change is a changed setting of the run (bestofn.rundir.open_run_dir)
    assert {"num_problems", "dataset_format"} <= stage_keys("problems") <= stage_keys("results")


# --- a recipe per benchmark -------------------------------------------------------------------------------------
RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_each_benchmark_has_a_recipe(name):
    config = BestOfNConfig.from_yaml(RECIPES / f"{name}.yaml")
    assert (config.dataset, config.num_problems, config.output_dir) == (name, ALL, f"runs/{name}")
    assert "{step_format}" in config.system_prompt and "\\boxed{" in config.system_prompt
    if DATASETS[name].layout == "final_answer":  # AIME and AMC: long solutions, a larger N
        assert config.max_new_tokens >= 4096 and config.n >= 64
    if name == "gsm8k":  # not LaTeX-heavy, but still boxed
        assert "no LaTeX needed" in config.system_prompt and config.max_new_tokens == 1024


@pytest.mark.parametrize("row, message", [
    ({"problem": "1+1", "answer": "2", "unique_id": "a"}, "line 1 (unique_id 'a'): field level is missing"),
    ({"problem": "1+1", "level": 1, "unique_id": "a", "solution": "\\boxed{2}"},
     "line 1 (unique_id 'a'): field answer is missing"),
])
def test_a_math_row_without_one_of_its_fields_is_named_not_read_another_way(tmp_path, row, message):
    """A row with MATH's level or unique_id is a MATH row: a missing field is named (not read as AIME's layout)."""
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(BestOfNError) as err:
        load_problems(str(path))
    assert str(err.value).startswith(f"dataset file {path}: {message}")


def test_minerva_gold_is_the_last_box_of_the_solution(tmp_path):
    """Worked solutions box intermediate results too; the gold is the last box (bestofn.grading's rule)."""
    path = tmp_path / "minerva.jsonl"
    solution = ("First $u=\\boxed{2}$ in the units of the first part of the problem, which the second part then "
                "uses to find the speed, so $v=\\boxed{3 \\times 10^{8}}$ m/s.")
    path.write_text(json.dumps({"problem": "Find v.", "solution": solution, "type": "Physics", "idx": 9}) + "\n")
    (p,) = load_problems(str(path), dataset_format="minerva_math")
    assert (p.unique_id, p.answer, p.subject) == ("minerva/9", "3 \\times 10^{8}", "Physics")  # the file's name


def test_minerva_answer_column_is_the_gold_when_a_copy_has_one(tmp_path):
    """Copies of Minerva Math with an ``answer`` column: that column is the gold, not a box of the solution."""
    path = tmp_path / "minerva.jsonl"
    row = {"problem": "Find v.", "solution": "So $v=\\boxed{3 \\times 10^{8}}$ m/s.", "answer": "300000000", "idx": 4}
    path.write_text(json.dumps(row) + "\n")
    (p,) = load_problems(str(path), dataset_format="minerva_math")
    assert (p.unique_id, p.answer) == ("minerva/4", "300000000")  # ids from the file name (a layout is no benchmark)


def test_olympiadbench_answers_with_several_entries_are_all_required(tmp_path):
    """Each entry of ``final_answer`` is one required answer: all kept, in order, ``$`` and a final "." removed."""
    from bestofn.data import olympiadbench_answer

    assert olympiadbench_answer(["$x=1$", "$y=-2$."]) == "x=1, y=-2"
    assert olympiadbench_answer(["$69$,$84$"]) == "69,84"  # several answers in one entry
    assert olympiadbench_answer(["\\$5", "$3$"]) == "\\$5, 3"  # a dollar sign is not math mode
    path = tmp_path / "olympiad.jsonl"
    row = {"id": 7, "question": "Find all pairs.", "final_answer": ["$(1,2)$", "$(3,4)$"], "solution": ["Try."]}
    path.write_text(json.dumps(row) + "\n")
    (p,) = load_problems(str(path), dataset_format="olympiadbench")
    assert p.answer == "(1,2), (3,4)"
    assert grade("So $\\boxed{(3,4), (1,2)}$.", p.answer, kind=p.answer_kind)["correct"]
    assert not grade("So $\\boxed{(1,2)}$.", p.answer, kind=p.answer_kind)["correct"]  # one of two: wrong


def test_a_name_loads_its_own_hub_copy_whatever_the_format(tmp_path):
    """--dataset gsm8k --dataset-format aime24 still asks the Hub for openai/gsm8k (config main, split test), and the
    offline fix names GSM8K's own layout."""
    with pytest.raises(BestOfNError, match=r"^cannot load dataset gsm8k \(Hub dataset openai/gsm8k, config main, split "
                                           r"test\) from the Hub: .* --dataset-format gsm8k \(a file named gsm8k"):
        load_problems("gsm8k", "train", dataset_format="aime24")
    with pytest.raises(BestOfNError, match=r"^cannot load dataset Hothan/OlympiadBench \(Hub dataset Hothan/OlympiadBench, "
                                           r"config OE_TO_maths_en_COMP, split train\)"):
        load_problems("Hothan/OlympiadBench", "train")  # a registry Hub id: its config, the split asked for
    with pytest.raises(BestOfNError, match=r"^dataset file .* is a folder; pass one .jsonl, .json or .parquet file$"):
        load_problems(str(tmp_path))


def test_a_config_from_before_dataset_format_is_the_same_run(tmp_path):
    """A config.yaml written before dataset_format existed reads as the default (None): reusing its run directory
    is not a change of settings."""
    from bestofn.rundir import open_run_dir

    old = BestOfNConfig(output_dir=str(tmp_path / "run")).to_dict()
    del old["dataset_format"]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(__import__("yaml").safe_dump(old))
    (tmp_path / "run" / "manifest.json").write_text('{"files": {"results.json": "x"}}')  # a finished run
    assert BestOfNConfig.from_yaml(tmp_path / "run" / "config.yaml").dataset_format is None
    open_run_dir(BestOfNConfig(output_dir=str(tmp_path / "run")), overwrite=False)  # no "other settings" error
    with pytest.raises(BestOfNError, match=r"other settings \(dataset_format: None -> 'gsm8k'\)"):
        open_run_dir(BestOfNConfig(output_dir=str(tmp_path / "run"), dataset_format="gsm8k"), overwrite=False)

