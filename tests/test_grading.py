"""Answer extraction and equivalence: the cases MATH answers actually take."""

import pytest

from bestofn.grading import extract_answer, grade, is_equivalent, normalize_answer, string_match


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
        ("\\boxed{x} and a cut-off \\boxed{\\frac{1", "x"),  # unclosed last box: fall back to the previous
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


def test_grade_records_both_judgements():
    assert grade("Thus $\\boxed{0.5}$.", "\\frac{1}{2}") == {"answer": "0.5", "correct": True, "string_match": False}
    assert grade("I give up.", "1") == {"answer": None, "correct": False, "string_match": False}
