"""Majority vote, naive and weighted Best-of-N: ties, equivalent spellings, missing answers."""

import math

import pytest

from bestofn.selection import (
    METHOD_LABELS,
    METHODS,
    SELECTION_METHODS,
    Choice,
    aggregate,
    answer_groups,
    choose_majority,
    choose_naive,
    choose_weighted,
    group_answers,
    majority_vote,
    naive_best_of_n,
    weighted_best_of_n,
)


def test_weighted_and_naive_disagree():
    # One confident lone answer vs three moderately scored solutions that agree.
    answers = ["7", "5", "5", "5"]
    rewards = [0.95, 0.5, 0.5, 0.5]
    assert naive_best_of_n(answers, rewards) == "7"
    assert weighted_best_of_n(answers, rewards) == "5"  # 1.5 > 0.95
    assert majority_vote(answers) == "5"


def test_weighted_and_majority_disagree():
    answers = ["1", "1", "1", "2", "2"]
    rewards = [0.1, 0.1, 0.1, 0.9, 0.8]
    assert majority_vote(answers) == "1"
    assert weighted_best_of_n(answers, rewards) == "2"


def test_equivalent_spellings_pool_into_one_group():
    answers = ["\\frac{1}{2}", "0.5", "\\dfrac12", "3"]
    rewards = [0.3, 0.3, 0.3, 0.8]
    assert group_answers(answers) == [[0, 1, 2], [3]]
    assert weighted_best_of_n(answers, rewards) == "\\frac{1}{2}"  # 0.9 > 0.8 only if pooled
    assert majority_vote(answers) == "\\frac{1}{2}"


def test_missing_answers_never_win():
    answers = [None, "4", None]
    rewards = [0.99, 0.01, 0.99]
    assert naive_best_of_n(answers, rewards) == "4"
    assert weighted_best_of_n(answers, rewards) == "4"
    assert majority_vote(answers) == "4"


def test_no_answers_at_all():
    assert majority_vote([None, None]) is None
    assert naive_best_of_n([None, ""], [0.5, 0.6]) is None
    assert weighted_best_of_n([], []) is None


def test_ties_go_to_the_first():
    assert majority_vote(["2", "1", "1", "2"]) == "2"
    assert weighted_best_of_n(["2", "1"], [0.5, 0.5]) == "2"
    assert naive_best_of_n(["2", "1"], [0.5, 0.5]) == "2"


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one reward per solution"):
        weighted_best_of_n(["1", "2"], [0.5])


def test_answer_groups_sorted_by_summed_reward():
    groups = answer_groups(["1", "2", "1"], [0.2, 0.5, 0.2])
    assert [(g["answer"], g["count"], g["indices"]) for g in groups] == [("2", 1, [1]), ("1", 2, [0, 2])]
    assert groups[1]["reward_sum"] == pytest.approx(0.4)


@pytest.mark.parametrize("how, expected", [("last", 0.5), ("min", 0.2), ("prod", 0.9 * 0.2 * 0.5), ("mean", 1.6 / 3)])
def test_aggregation(how, expected):
    assert aggregate([0.9, 0.2, 0.5], how) == pytest.approx(expected)


def test_aggregation_changes_the_winner():
    # Solution 0 ends confidently after a bad step; solution 1 is steady.
    steps = [[0.9, 0.05, 0.95], [0.7, 0.7, 0.7]]
    answers = ["a", "b"]
    assert weighted_best_of_n(answers, [aggregate(s, "last") for s in steps]) == "a"
    assert weighted_best_of_n(answers, [aggregate(s, "min") for s in steps]) == "b"


def test_aggregation_edge_cases():
    assert aggregate([], "last") == 0.0
    assert math.isclose(aggregate([0.5], "prod"), 0.5)
    with pytest.raises(ValueError, match="unknown reward aggregation"):
        aggregate([0.5], "max")


def test_choices_name_the_chosen_solutions_in_their_own_spelling():
    # The crash of issue 15: the best solution spells its answer differently from its group's first member.
    answers = ["2", "3", "2.0", "x = 2", "x=2"]
    rewards = [0.1, 0.3, 0.9, 0.2, 0.25]
    assert group_answers(answers) == [[0, 2, 3, 4], [1]]
    naive = choose_naive(answers, rewards)
    assert naive == Choice(sample_index=2, group=(0, 2, 3, 4), answer="2.0")
    weighted = choose_weighted(answers, rewards)
    assert weighted == Choice(2, (0, 2, 3, 4), "2.0")  # 1.45 > 0.3; shown: the group's best-scored solution
    assert choose_majority(answers) == Choice(0, (0, 2, 3, 4), "2")  # no rewards: the group's first solution
    assert choose_majority(answers, rewards) == Choice(2, (0, 2, 3, 4), "2.0")
    assert naive_best_of_n(answers, rewards) == "2.0" and weighted_best_of_n(answers, rewards) == "2.0"


def test_choices_without_answers_and_with_given_groups():
    assert choose_naive([None, " "], [0.9, 0.8]) is None
    assert choose_weighted([], []) is None and choose_majority([None]) is None
    # Precomputed groups are used as given (the pipeline groups once per problem, then applies every rule).
    calls = []
    groups = group_answers(["\\frac12", "0.5", "1"], equivalent=lambda a, b: calls.append((a, b)) or a != "1")
    assert groups == [[0, 1], [2]] and calls
    assert choose_weighted(["\\frac12", "0.5", "1"], [0.2, 0.3, 0.4], groups=groups) == Choice(1, (0, 1), "0.5")


def test_grouping_honours_the_grading_timeout(monkeypatch):
    import bestofn.selection as S

    seen = []
    monkeypatch.setattr(S, "is_equivalent", lambda a, b, timeout=5, kind=None: seen.append(timeout) or False)
    S.group_answers(["1", "2"], timeout=7)
    assert seen == [7]


def test_method_names_and_labels_are_defined_once():
    from bestofn import hub
    from bestofn.report import analysis

    assert set(METHOD_LABELS) == set(METHODS) and set(SELECTION_METHODS) < set(METHODS)
    assert analysis.METHODS is METHODS
    assert analysis.METHOD_LABELS is METHOD_LABELS and hub.METHOD_LABELS is METHOD_LABELS
    assert analysis.SELECTION_METHODS is SELECTION_METHODS


def test_integer_answers_group_as_numbers():
    """GSM8K's kind: "18 dollars" and "18" are one answer; as expressions (MATH's kind) they are two."""
    from bestofn.grading import EXPRESSION, INTEGER
    from bestofn.selection import group_answers

    answers = ["18 dollars", "18", "20 cups", "19"]
    assert group_answers(answers, kind=INTEGER) == [[0, 1], [2], [3]]
    assert group_answers(answers, kind=EXPRESSION) == [[0], [1], [2], [3]]
