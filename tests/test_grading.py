"""Answer extraction and equivalence: the cases MATH answers actually take."""

import logging
import re
import signal
import time

import pytest

from bestofn import grading
from bestofn.grading import extract_answer, find_answer, grade, is_equivalent, normalize_answer, string_match


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so the answer is $\\boxed{5}$.", "5"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("first \\boxed{1}, then finally \\boxed{2}", "2"),  # the last box wins
        ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces are literal
        ("\\fbox{7}", "7"),
        ("$\\boxed 42$", "42"),
        ("\\boxed{x} and a cut-off \\boxed{\\frac{1", None),  # unclosed last box: no fall-back to an earlier one
        ("\\boxed{\\begin{matrix} 1 \\\\ 2 \\\\}", "\\begin{matrix} 1 \\\\ 2 \\\\"),  # \\\\ before the closing brace
        ("\\boxed{a \\\\} and more", "a \\\\"),
        ("\\boxed{\\{1\\}}", "\\{1\\}"),  # \\} before the closing brace is a literal brace
        ("no box here: 5", None),
        ("\\boxed{3", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("0.5", "\\frac{1}{2}"),  # decimal vs fraction
        ("\\dfrac{3}{4}", "\\frac34"),
        ("[2, 5)", "[2,5)"),  # intervals
        ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),  # matrices
        ("10\\text{ cm}", "10"),  # units
        ("\\text{(C)}", "C"),  # \text{} choices
        ("2x + x^2", "x^2+2x"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)"),
        ("90^\\circ", "90"),
    ],
)
def test_equivalent_answers(pred, gold):
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize(
    "pred, gold",
    [("3", "4"), ("\\frac{1}{3}", "0.33"), ("[2,5]", "[2,5)"), ("x^2", "2x"), (None, "1"), ("", "1")],
)
def test_different_answers(pred, gold):
    assert not is_equivalent(pred, gold)


def test_string_match_misses_what_math_verify_finds():
    assert string_match("\\dfrac{1}{2}", "\\frac{1}{2}")  # light normalization handles spelling
    assert not string_match("0.5", "\\frac{1}{2}")  # ...but not values
    assert is_equivalent("0.5", "\\frac{1}{2}")
    assert normalize_answer(" \\left( 1, 2 \\right) ") == "(1,2)"


def test_a_final_period_is_not_part_of_an_answer():
    """Solutions end sentences with ".": "5." is 5 for string_match (a decimal point inside stays)."""
    assert normalize_answer("5.") == "5" and normalize_answer("\\frac{1}{2}.") == "\\frac{1}{2}"
    assert normalize_answer("2.5") == "2.5"
    assert string_match("5.", "5") and string_match("x+1.", "x + 1")


def test_grade_records_both_judgements():
    assert grade("Thus $\\boxed{0.5}$.", "\\frac{1}{2}") == {"answer": "0.5", "answer_status": "ok", "correct": True,
                                                          "string_match": False}
    assert grade("I give up.", "1") == {"answer": None, "answer_status": "no_box", "correct": False, "string_match": False}


@pytest.mark.parametrize(
    "text, status",
    [
        ("so $\\boxed{2}$", "ok"),
        ("no box at all", "no_box"),
        ("first \\boxed{1}, then the final box is cut off: \\boxed{\\frac{3}{", "unclosed_box"),
        ("a box with a broken brace \\boxed{2\\}", "unclosed_box"),
        ("an empty box \\boxed{ }", "empty_box"),
    ],
)
def test_the_row_says_why_there_is_no_answer(text, status):
    graded = grade(text, "1")
    assert graded["answer_status"] == status
    assert (graded["answer"] is None) == (status != "ok")
    assert find_answer(text)[1] == status


def _alarm_after(seconds: float):
    """Make a test fail (instead of hanging for minutes) if the code under test runs past ``seconds``."""

    def expire(signum, frame):
        raise AssertionError(f"took longer than {seconds} s")

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


@pytest.mark.parametrize("text", ["\\boxed{" * 15_000, "\\boxed{" + "{" * 100_000, "\\boxed{1} " + "\\fbox{x" * 15_000])
def test_extraction_is_linear_in_the_text_length(text):
    # 100k characters of unclosed boxes: quadratic extraction took minutes (20k characters: 254 s).
    assert len(text) >= 100_000
    _alarm_after(10)
    try:
        start = time.perf_counter()
        graded = grade(text, "1")
        elapsed = time.perf_counter() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    assert graded["answer"] is None and graded["answer_status"] == "unclosed_box"
    assert elapsed < 2.0, elapsed


def test_one_time_limit_covers_extraction_and_comparison(monkeypatch):
    slow = lambda pred, gold, kind=None: time.sleep(30)  # noqa: E731 - a comparison that never ends in time
    monkeypatch.setattr(grading, "_equivalent", slow)
    _alarm_after(10)
    try:
        start = time.perf_counter()
        graded = grade("so \\boxed{2}", "2", timeout=1)
        compared = is_equivalent("3", "2", timeout=1)
        elapsed = time.perf_counter() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    assert graded == {"answer": "2", "answer_status": "ok", "correct": False, "string_match": True}
    assert compared is False and elapsed < 4


def test_a_slow_extraction_is_bounded_too(monkeypatch):
    def slow_find(text):
        time.sleep(30)

    monkeypatch.setattr(grading, "find_answer", slow_find)
    start = time.perf_counter()
    assert grade("\\boxed{2}", "2", timeout=1) == {"answer": None, "answer_status": "timeout", "correct": False,
                                                    "string_match": False}
    assert time.perf_counter() - start < 4


def test_timeout_messages_are_short(monkeypatch, caplog):
    long_answer = "x^{" * 2500 + "}" * 2500  # 10,000 characters
    monkeypatch.setattr(grading, "_equivalent", lambda pred, gold, kind=None: time.sleep(30))
    with caplog.at_level(logging.WARNING):
        assert not is_equivalent(long_answer, "1", timeout=1)
        grading._math_verify()  # installs the filter on math-verify's own loggers
        logging.getLogger("math_verify.parser").warning(f"Timeout during parsing: {long_answer}")
    assert len(caplog.records) == 2
    for record in caplog.records:
        assert len(record.getMessage()) < 3 * grading.LOG_CHARS and re.search(r"\.\.\. \(100\d\d characters\)", record.getMessage())


def test_real_math_verify_still_decides_within_the_limit():
    assert is_equivalent("\\frac{6}{4}", "1.5", timeout=5)
    assert grade("so \\boxed{\\dfrac{3}{2}}", "1.5", timeout=5)["correct"]
