"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from selflab.evalbench import metrics as M
from selflab.evalbench.majority import majority_curve, majority_vote


def test_accuracy_and_chance() -> None:
    m = M.accuracy([1, 0, 1, 1], [1, 1, 1, 0])
    assert m.value == 0.5 and m.n == 4
    assert m.ci_low <= 0.5 <= m.ci_high
    assert M.chance_accuracy([1, 1, 1, 0]) == 0.75
    assert M.accuracy([], []).value is None


def test_cohen_kappa_hand_value() -> None:
    # p_o = 3/4, p_e = .5*.25 + .5*.75 = .5 -> kappa = .5
    assert M.cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]).value == pytest.approx(0.5)
    assert M.cohen_kappa([1, 0, 1, 0], [1, 0, 1, 0]).value == pytest.approx(1.0)
    assert M.cohen_kappa([1, 1], [1, 1]).value is None  # p_e = 1: undefined, not a number


def test_pairwise_accuracy_with_and_without_ties() -> None:
    with_ties, no_ties = M.pairwise_accuracy(["A", "tie", "B", "B"], ["A", "A", "B", "A"])
    assert with_ties.value == pytest.approx(0.5)
    assert no_ties.value == pytest.approx(2 / 3) and no_ties.n == 3
    assert M.tie_rate(["A", "tie", "B", "B"]).value == 0.25


def test_rank_correlations() -> None:
    assert M.spearman([1, 2, 3, 4], [0, 0, 1, 1]).value == pytest.approx(math.sqrt(0.8), abs=1e-9)
    assert M.kendall([1, 2, 3, 4], [1, 2, 3, 4]).value == pytest.approx(1.0)
    assert M.spearman([1, 1, 1], [0, 1, 0]).value is None


def test_position_consistency_and_preference_fairness() -> None:
    assert M.position_consistency(["A", "B", "A"], ["A", "A", "A"]).value == pytest.approx(2 / 3)
    # shown verdicts: (A,A) primacy, (B,B) recency twice, (A,B) consistent -> (2 - 1) / 3
    assert M.preference_fairness(["A", "B", "B", "A"], ["A", "B", "B", "B"]).value == pytest.approx(1 / 3)
    assert M.preference_fairness(["A", "A"], ["A", "A"]).value == -1.0
    assert M.preference_fairness(["A", "B"], ["B", "A"]).value == 0.0  # all consistent


def test_repetition_stability_flip_and_shift() -> None:
    rs = M.repetition_stability([[1, 1, 0], [5, 5, 5], [None, 2, 3]])
    assert rs.value == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert M.flip_rate([1, 0, 1, "A"], [1, 1, 0, "A"]).value == 0.5
    assert M.mean_shift([1, 2], [3, 3]).value == pytest.approx(1.5)
    assert M.parse_failure_rate([True, False, False, False]).value == 0.25
    assert M.self_preference([1, -1, 0, 1]).value == 0.25


def test_length_glm_hand_value() -> None:
    # binary covariate: P(win | longer) = 2/3, P(win | shorter) = 1/3 -> b0 = 0, b1 * tanh(1) = ln 2
    wins = [1, 1, 0, 1, 0, 0]
    lx = [10, 10, 10, 0, 0, 0]
    ly = [0, 0, 0, 10, 10, 10]
    assert M.length_bias(wins, lx, ly).value == pytest.approx(math.log(2) / math.tanh(1), abs=0.01)
    assert M.lc_win_rate(wins, lx, ly).value == pytest.approx(0.5, abs=0.01)
    # a judge that always picks the correct answer has LC win rate 1 whatever the lengths
    assert M.lc_win_rate([1, 1, 1], [1, 5, 9], [3, 3, 3]).value == 1.0
    # more wins among short-correct pairs: length-controlled rate exceeds the raw rate when the
    # judge's wins came despite a length handicap
    y = [1, 1, 1, 0, 1, 0, 0, 0]
    lx = [1, 1, 1, 1, 9, 9, 9, 9]
    ly = [5] * 8
    assert M.length_bias(y, lx, ly).value < 0


def test_bootstrap_is_seeded() -> None:
    a = M.accuracy([1, 0, 1, 1, 0, 1], [1, 1, 1, 0, 0, 1], seed=3)
    b = M.accuracy([1, 0, 1, 1, 0, 1], [1, 1, 1, 0, 0, 1], seed=3)
    assert a == b
    assert a.ci_low < a.value < a.ci_high


def test_majority_vote_and_curve() -> None:
    votes = np.array([[1, 0, np.nan], [1, 1, np.nan], [0, 1, np.nan]])
    assert majority_vote(votes).tolist() == [1.0, 1.0, 0.5]
    # truth [1, 0, 1]: item 0 right, item 1 wrong, item 2 no votes -> 0.5
    curve = majority_curve(votes, [1, 0, 1], sizes=[3], seed=0)
    assert curve[0].value == pytest.approx((1 + 0 + 0.5) / 3)
    # single jurors: juror accuracies 1/3+... averaged over random draws lies within [0, 1]
    one = majority_curve(votes, [1, 0, 1], sizes=[1], n_juries=200, seed=0)[0]
    assert 0 <= one.value <= 1
    assert majority_curve(votes, [1, 0, 1], sizes=[5])[0].value is None
