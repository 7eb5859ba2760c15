"""The stopping rules of adaptive Best-of-N (bestofn.stopping), each stopping point worked out by hand.

The Beta tail is checked against its closed form: for integers a, b the regularised incomplete Beta function
is a binomial tail, I_x(a, b) = P(Binomial(a + b - 1, x) >= a), so at x = 1/2
1 - I_0.5(v1 + 1, v2 + 1) = P(Binomial(v1 + v2 + 1, 1/2) <= v1) = sum_{j <= v1} C(v1 + v2 + 1, j) / 2^(v1 + v2 + 1).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from bestofn.stopping import (fires, group_totals, leader_stays_ahead, reward_votes, round_agrees, round_ends,
                              should_stop, top_two)


def closed_form(v1: int, v2: int) -> Fraction:
    m = v1 + v2 + 1
    return Fraction(sum(math.comb(m, j) for j in range(v1 + 1)), 2**m)


@pytest.mark.parametrize("v1,v2", [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (2, 1), (3, 1), (5, 2), (7, 7), (12, 3), (1, 3)])
def test_the_beta_tail_is_the_binomial_closed_form(v1, v2):
    assert leader_stays_ahead(v1, v2) == pytest.approx(float(closed_form(v1, v2)), abs=1e-12)


def test_hand_worked_beta_tails():
    assert leader_stays_ahead(0, 0) == pytest.approx(0.5)  # nothing known: a coin
    assert leader_stays_ahead(4, 0) == pytest.approx(31 / 32)  # 1 - 1/2^5
    assert leader_stays_ahead(3, 0) == pytest.approx(15 / 16)  # below 0.95: 3 agreeing answers are not enough
    assert leader_stays_ahead(3, 1) == pytest.approx(26 / 32)  # P(Bin(5) <= 3) = (1 + 5 + 10 + 10) / 32


def test_top_two_pads_missing_groups_with_zero():
    v1, v2 = top_two(np.array([[2.0, 5.0, 1.0], [0.0, 0.0, 0.0]]))
    assert v1.tolist() == [5.0, 0.0] and v2.tolist() == [2.0, 0.0]
    v1, v2 = top_two(np.zeros((0,)))  # no answer at all
    assert float(v1) == 0.0 and float(v2) == 0.0


# --- beta: a round of 4 agreeing answers stops at 0.95, 3 do not; a split keeps going -------------------------------
def test_beta_stops_on_four_agreeing_answers_not_three():
    assert should_stop("beta", [0, 0, 0, 0], [0.5] * 4, 4, 0.95)  # 31/32 >= 0.95
    assert not should_stop("beta", [0, 0, 0], [0.5] * 3, 3, 0.95)  # 15/16 < 0.95
    assert should_stop("beta", [0, 0, 0], [0.5] * 3, 3, 0.9)


def test_a_confidence_reached_exactly_stops():
    assert should_stop("beta", [0, 0, 0, 0], [0.5] * 4, 4, 31 / 32)  # the tail equals the confidence: >=
    assert not should_stop("beta", [0, 0, 0, 0], [0.5] * 4, 4, 31 / 32 + 1e-9)


def test_beta_on_a_tie_never_stops():
    assert not should_stop("beta", [0, 1, 0, 1], [0.9, 0.1, 0.9, 0.1], 4, 0.51)  # 2 vs 2: 0.5


def test_beta_without_answers_never_stops():
    assert not should_stop("beta", [-1, -1, -1, -1], [0.9] * 4, 4, 0.51)


def test_beta_ignores_samples_without_answers():
    # 4 answers of group 0, 2 without an answer: 4 vs 0 as if they were not drawn
    assert should_stop("beta", [0, -1, 0, 0, -1, 0], [0.5] * 6, 2, 0.95)


def test_beta_compares_the_two_largest_groups():
    # groups of 5, 1, 1 (7 answers over two rounds): 1 - I(6, 2) = P(Bin(7) <= 5) = 120/128 = 0.9375
    labels = [0, 0, 1, 0, 0, 2, 0, 0][:7]
    assert leader_stays_ahead(5, 1) == pytest.approx(120 / 128)
    assert should_stop("beta", labels, [0.5] * 7, 3, 0.93) and not should_stop("beta", labels, [0.5] * 7, 3, 0.95)


# --- esc: the last round in one group ---------------------------------------------------------------------------------
def test_esc_stops_after_a_round_in_full_agreement():
    assert should_stop("esc", [0, 1, 1, 1, 1], [0.5] * 5, 4, 0.95)  # the last round (1, 1, 1, 1) agrees
    assert not should_stop("esc", [1, 1, 1, 1, 0], [0.5] * 5, 4, 0.95)  # the last round (1, 1, 1, 0) does not


def test_esc_a_sample_without_an_answer_breaks_agreement():
    assert not should_stop("esc", [0, 0, -1, 0], [0.5] * 4, 4, 0.95)
    assert not should_stop("esc", [-1, -1], [0.5] * 2, 2, 0.95)


def test_esc_with_one_sample_per_round_stops_at_the_first_answer():
    assert not should_stop("esc", [-1], [0.5], 1, 0.95)
    assert should_stop("esc", [-1, 3], [0.5, 0.5], 1, 0.95)


def test_round_agreement_is_vectorised_over_rounds():
    assert round_agrees(np.array([[0, 0], [0, 1], [-1, -1], [2, 2]])).tolist() == [True, False, False, True]


# --- prm: the Beta test on votes shared by reward -----------------------------------------------------------------
def test_prm_votes_share_the_answered_samples_by_reward():
    counts, sums = group_totals([0, 0, 0, 1], [0.9, 0.9, 0.9, 0.1])
    assert counts.tolist() == [3.0, 1.0] and sums == pytest.approx([2.7, 0.1])
    assert reward_votes(counts, sums) == pytest.approx([4 * 2.7 / 2.8, 4 * 0.1 / 2.8])


def test_prm_stops_on_a_split_the_prm_backs_where_beta_goes_on():
    labels, rewards = [0, 0, 0, 1], [0.9, 0.9, 0.9, 0.1]
    # votes 3.857 vs 0.143: 1 - I_0.5(4.857, 1.143) is above 0.95 (a 4-0 round gives 31/32 = 0.969)
    assert float(leader_stays_ahead(4 * 2.7 / 2.8, 4 * 0.1 / 2.8)) > 0.95
    assert should_stop("prm", labels, rewards, 4, 0.95)
    assert not should_stop("beta", labels, rewards, 4, 0.95)  # 3 vs 1: 26/32


def test_prm_goes_on_where_the_prm_doubts_the_majority():
    labels, rewards = [0, 0, 0, 1], [0.2, 0.2, 0.2, 0.9]  # votes 4*0.6/1.5 = 1.6 vs 2.4
    assert not should_stop("prm", labels, rewards, 4, 0.8)
    assert should_stop("beta", labels, rewards, 4, 0.8)  # 26/32 = 0.8125


def test_prm_is_beta_on_a_unanimous_round_and_when_every_reward_is_zero():
    for labels, rewards in (([0, 0, 0, 0], [0.3, 0.9, 0.5, 0.7]), ([0, 1, 0, 0], [0.0] * 4), ([0, 0, 0], [0.2] * 3)):
        for confidence in (0.8, 0.9, 0.95):
            assert (should_stop("prm", labels, rewards, len(labels), confidence)
                    == should_stop("beta", labels, rewards, len(labels), confidence))


def test_prm_without_answers_never_stops():
    assert not should_stop("prm", [-1, -1, -1], [0.9, 0.9, 0.9], 3, 0.51)


def test_prm_ignores_the_rewards_of_samples_without_an_answer():
    # the unanswered sample's reward 0.99 must not dilute the votes: 4 answered samples, all in group 0
    assert should_stop("prm", [0, 0, -1, 0, 0], [0.5, 0.5, 0.99, 0.5, 0.5], 5, 0.95)


# --- the plumbing ---------------------------------------------------------------------------------------------------
def test_fires_is_vectorised_over_prefixes():
    counts = np.array([[1.0, 0.0], [4.0, 0.0], [3.0, 1.0]])
    out = fires("beta", counts, counts * 0.5, np.array([True, True, False]), 0.95)
    assert out.tolist() == [False, True, False]
    assert fires("esc", counts, counts, np.array([True, False, True]), 0.95).tolist() == [True, False, True]


def test_unknown_rule_and_bad_rounds_are_refused():
    with pytest.raises(ValueError, match="unknown stopping rule"):
        fires("vote", np.ones(2), np.ones(2), np.array(True), 0.9)
    with pytest.raises(ValueError, match="last round"):
        should_stop("beta", [0, 0], [0.5, 0.5], 3, 0.9)
    with pytest.raises(ValueError, match="one reward"):
        should_stop("beta", [0, 0], [0.5], 1, 0.9)


def test_round_ends():
    assert round_ends(16, 4) == [4, 8, 12, 16]
    assert round_ends(10, 4) == [4, 8, 10]
    assert round_ends(3, 1) == [1, 2, 3]
    assert round_ends(2, 8) == [2]
