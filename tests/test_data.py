"""Loading MATH-500, checking its fields, and the reproducible stratified subset."""

import json
from collections import Counter

import pytest

from bestofn.data import Problem, load_math500, select_subset
from bestofn.errors import BestOfNError
from conftest import MATH500


@pytest.fixture(scope="module")
def math500(math500_full):
    return load_math500(math500_full)


def test_excerpt_is_a_verbatim_part_of_math500(math500_path):
    excerpt = math500_path.read_text(encoding="utf-8").splitlines()
    assert Counter(json.loads(line)["level"] for line in excerpt) == {1: 10, 2: 10, 3: 10}
    if MATH500.is_file():  # without the full file there is nothing to compare with
        full = set(MATH500.read_text(encoding="utf-8").splitlines())
        assert all(line in full for line in excerpt)


def test_loads_all_problems(math500):
    assert len(math500) == 500
    assert Counter(p.level for p in math500) == {1: 43, 2: 90, 3: 105, 4: 128, 5: 134}
    first = math500[0]
    assert first.unique_id == "test/precalculus/807.json" and first.level == 2 and first.subject == "Precalculus"
    assert first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"


def test_subset_is_stratified_and_sorted(math500):
    subset = select_subset(math500, [1, 2, 3], 20, seed=0)
    assert len(subset) == 20 and len({p.unique_id for p in subset}) == 20
    # 238 problems at levels 1-3 (43/90/105): shares 3.61/7.56/8.82 -> floors 3/7/8, the two largest
    # remainders (.82, .61) get the last two problems -> 4/7/9
    assert Counter(p.level for p in subset) == {1: 4, 2: 7, 3: 9}
    assert subset == sorted(subset, key=lambda p: (p.level, p.unique_id))


def test_subset_is_reproducible_and_order_independent(math500):
    a = select_subset(math500, [1, 2, 3], 20, seed=0)
    b = select_subset(list(reversed(math500)), [1, 2, 3], 20, seed=0)
    c = select_subset(math500, [1, 2, 3], 20, seed=1)
    assert [p.unique_id for p in a] == [p.unique_id for p in b]
    assert [p.unique_id for p in a] != [p.unique_id for p in c]


def test_subset_is_pinned(math500):
    # The subset must be the same on every machine and Python version: pin the first ids for seed 0.
    # A change of this list is a breaking change of every published result.
    ids = [p.unique_id for p in select_subset(math500, [1], 3, seed=0)]
    assert ids == ["test/algebra/2470.json", "test/algebra/2789.json", "test/prealgebra/307.json"]


def test_too_many_problems(math500):
    with pytest.raises(BestOfNError, match="only 43"):
        select_subset(math500, [1], 50, seed=0)


def test_local_parquet(tmp_path, math500_path):
    import datasets

    few = load_math500(str(math500_path))[:5]
    path = tmp_path / "math.parquet"
    datasets.Dataset.from_list([p.to_dict() for p in few]).to_parquet(str(path))
    assert [p.unique_id for p in load_math500(str(path))] == [p.unique_id for p in few]


def test_missing_fields_are_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"problem": "1+1?", "unique_id": "x"}) + "\n")
    with pytest.raises(BestOfNError, match=r"bad.jsonl: line 1 \(unique_id 'x'\): field level is missing \(the row "
                                           r"has problem, unique_id\); every row needs problem, answer"):
        load_math500(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(BestOfNError, match="does not exist"):
        load_math500(str(tmp_path / "nope.jsonl"))


def test_unreachable_hub_dataset_suggests_local_file():
    with pytest.raises(BestOfNError, match=r"cannot load dataset no-such-owner/no-such-dataset .*Offline\? Download it "
                                           r"elsewhere .* and pass its data file: --dataset DIR/FILE --dataset-format math500"):
        load_math500("no-such-owner/no-such-dataset")


def test_problem_round_trip():
    p = Problem(unique_id="a", problem="q", answer="1", level=1)
    assert Problem(**p.to_dict()) == p


# --- every row checked before any work, with its line number ------------------------------------------------------
def _rows(math500_path, k: int = 30) -> list[dict]:
    return [json.loads(line) for line in math500_path.read_text(encoding="utf-8").splitlines()[:k]]


def _write(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.pop("answer"), r"line 30 \(unique_id '{uid}'\): field answer is missing \(the row has level, "
                                    r"problem, solution, subject, unique_id\)"),
        (lambda r: r.update(answer=None), r"line 30 \(unique_id '{uid}'\): field answer is null;"),
        (lambda r: r.update(answer="  "), r"line 30 \(unique_id '{uid}'\): field answer is empty"),
        (lambda r: r.update(answer=float("nan")), r"line 30 \(unique_id '{uid}'\): field answer is nan, not a finite"),
        (lambda r: r.update(problem=["a", "list"]), r"line 30 \(unique_id '{uid}'\): field problem is a list "),
        (lambda r: r.update(level=7), r"line 30 \(unique_id '{uid}'\): field level is 7, not an integer 1-5"),
        (lambda r: r.update(level="hard"), r"line 30 \(unique_id '{uid}'\): field level is 'hard'"),
        (lambda r: r.pop("unique_id"), r"line 30: field unique_id is missing"),
    ],
)
def test_a_bad_row_30_is_named_before_any_work(tmp_path, math500_path, change, message):
    rows = _rows(math500_path)
    uid = rows[29]["unique_id"]
    change(rows[29])
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(BestOfNError, match=message.format(uid=uid)) as err:
        load_math500(path)
    assert "every row needs problem, answer and unique_id" in str(err.value)


def test_every_bad_row_is_counted(tmp_path, math500_path):
    rows = _rows(math500_path)
    for r in (rows[3], rows[10], rows[20]):
        r.pop("answer")
    with pytest.raises(BestOfNError, match=r"line 4 .*: field answer is missing .*\(and 2 more bad rows\); every row"):
        load_math500(_write(tmp_path / "bad.jsonl", rows))


def test_a_repeated_unique_id_is_named(tmp_path, math500_path):
    rows = _rows(math500_path, 5)
    rows[4]["unique_id"] = rows[1]["unique_id"]
    with pytest.raises(BestOfNError, match=r"line 5 repeats unique_id '.*' of line 2"):
        load_math500(_write(tmp_path / "dup.jsonl", rows))


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_file_says_so(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(BestOfNError, match=r"dataset file .*empty.jsonl is empty; it needs one row per line"):
        load_math500(str(path))


def test_a_malformed_line_is_named(tmp_path, math500_path):
    lines = [json.dumps(r) for r in _rows(math500_path, 12)]
    lines[6] = lines[6][:40]  # cut mid-line, as a copy interrupted half-way leaves it
    with pytest.raises(BestOfNError, match=r"bad.jsonl: line 7 is not valid JSON \(Unterminated string starting at, column 13\)"):
        load_math500(_write(tmp_path / "bad.jsonl", lines))
    lines[6] = "[1, 2]"
    with pytest.raises(BestOfNError, match=r"line 7 is a JSON list, not an object"):
        load_math500(_write(tmp_path / "bad.jsonl", lines))


def test_a_bad_parquet_row_is_named(tmp_path, math500_path):
    import datasets

    rows = _rows(math500_path, 6)
    rows[5]["answer"] = ""
    path = tmp_path / "bad.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    with pytest.raises(BestOfNError, match=r"bad.parquet: row 6 \(unique_id .*\): field answer is empty"):
        load_math500(str(path))
