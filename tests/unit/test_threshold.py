"""Threshold policies on hand-made scores whose right cut-off can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tabops.project import Costs, MinCost, MinPrecision, MinRecall
from tabops.training.threshold import choose_threshold

# Ties at 0.4 (one positive, one negative) and at 0.7 (two positives). Per cut-off:
#   cut-off   tp fp fn  precision recall  F1
#   0, 0.2     3  3  0    0.5     1       0.667
#   0.4        3  2  0    0.6     1       0.75
#   0.7        2  1  1    0.667   0.667   0.667
#   0.9        0  1  3    0       0       0
#   above 0.9  0  0  3    0       0       0
Y = np.array([0, 1, 0, 1, 1, 0])
P = np.array([0.9, 0.7, 0.4, 0.4, 0.7, 0.2])

# Six negatives and two positives; one positive hides among the negatives at 0.35.
Y_RARE = np.array([0, 0, 0, 1, 0, 0, 0, 1])
P_RARE = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.6, 0.8])


def _cost(false_positive: float, false_negative: float) -> MinCost:
    return MinCost(cost=Costs(false_positive=false_positive, false_negative=false_negative))


def test_max_f1_picks_the_tied_cut_off_with_the_best_f1():
    choice = choose_threshold(Y, P)

    assert choice.threshold == pytest.approx(0.4)
    assert choice.policy == "max_f1"
    assert choice.met is True
    assert choice.validation == pytest.approx({"precision": 0.6, "recall": 1.0, "f1": 0.75})
    assert choice.reason == "highest F1 (0.750) on 6 validation rows"


def test_max_f1_is_the_default_policy_and_matches_the_explicit_one():
    assert choose_threshold(Y, P) == choose_threshold(Y, P, "max_f1")


def test_max_f1_picks_the_perfect_separation_cut_off():
    y = np.array([0, 0, 0, 1, 1])
    probability = np.array([0.05, 0.2, 0.3, 0.6, 0.9])

    assert choose_threshold(y, probability).threshold == pytest.approx(0.6)


def test_max_f1_on_four_rows():
    # Cut-offs: 0.1 -> F1 0.667, 0.35 -> F1 0.8, 0.4 -> F1 0.5, 0.8 -> F1 0.667.
    choice = choose_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))

    assert choice.threshold == pytest.approx(0.35)


def test_min_recall_takes_the_highest_threshold_that_keeps_the_recall():
    choice = choose_threshold(Y, P, MinRecall(min_recall=0.6))

    # Recall is 2/3 at 0.7 and 0 above it.
    assert choice.threshold == pytest.approx(0.7)
    assert choice.policy == "min_recall 0.6"
    assert choice.met is True
    assert choice.validation["recall"] == pytest.approx(2 / 3)
    assert choice.validation["precision"] == pytest.approx(2 / 3)


def test_min_recall_of_one_keeps_every_positive_with_the_fewest_false_positives():
    choice = choose_threshold(Y, P, MinRecall(min_recall=1.0))

    # 0, 0.2 and 0.4 all keep recall 1; 0.4 flags one negative fewer.
    assert choice.threshold == pytest.approx(0.4)
    assert choice.validation["recall"] == 1.0
    assert choice.validation["precision"] == pytest.approx(0.6)


def test_min_precision_takes_the_lowest_threshold_that_reaches_the_precision():
    choice = choose_threshold(Y, P, MinPrecision(min_precision=0.6))

    assert choice.threshold == pytest.approx(0.4)
    assert choice.policy == "min_precision 0.6"
    assert choice.met is True
    assert choice.validation["precision"] == pytest.approx(0.6)


def test_min_precision_moves_past_a_tie_that_falls_short():
    # At 0.4 the tied negative keeps precision at 0.6; 0.7 reaches 2/3.
    choice = choose_threshold(Y, P, MinPrecision(min_precision=0.65))

    assert choice.threshold == pytest.approx(0.7)
    assert choice.validation["precision"] == pytest.approx(2 / 3)


def test_min_precision_out_of_reach_falls_back_to_max_f1():
    choice = choose_threshold(Y, P, MinPrecision(min_precision=0.9))

    assert choice.met is False
    assert choice.threshold == pytest.approx(0.4)
    assert choice.policy == "min_precision 0.9"
    assert "no threshold reaches precision 0.9" in choice.reason
    assert "fell back to the highest F1 (0.750)" in choice.reason


def test_min_cost_with_equal_costs_trades_one_miss_for_three_false_alarms():
    choice = choose_threshold(Y_RARE, P_RARE, _cost(1, 1))

    # 0.8: 0 false positives + 1 false negative = 1; 0.35: 3 false positives = 3.
    assert choice.threshold == pytest.approx(0.8)
    assert choice.policy == "cost fp=1 fn=1"
    assert choice.validation["cost"] == 1.0
    assert choice.met is True


def test_min_cost_with_expensive_misses_picks_a_lower_threshold():
    cheap = choose_threshold(Y_RARE, P_RARE, _cost(1, 1))
    expensive = choose_threshold(Y_RARE, P_RARE, _cost(1, 20))

    # 0.35: 3 false positives = 3; 0.8: one miss = 20.
    assert expensive.threshold == pytest.approx(0.35)
    assert expensive.threshold < cheap.threshold
    assert expensive.policy == "cost fp=1 fn=20"
    assert expensive.validation["cost"] == 3.0
    assert expensive.reason == (
        "lowest cost 3 (3 false positives, 0 false negatives) on 8 validation rows"
    )


def test_min_cost_can_flag_every_row_with_threshold_zero():
    choice = choose_threshold(Y_RARE, P_RARE, _cost(0, 1))

    # A false positive costs nothing, so the lowest candidate, 0, ties with 0.1 to 0.35 and wins.
    assert choice.threshold == 0.0
    assert choice.validation["recall"] == 1.0


def test_min_cost_can_flag_no_row_with_a_threshold_above_every_probability():
    choice = choose_threshold(Y, P, _cost(20, 1))

    # Flagging nothing costs 3 misses = 3; the best cut-off that flags anything, 0.7, costs 21.
    assert choice.threshold > P.max()
    assert choice.validation == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "cost": 3.0}


def test_min_cost_ties_go_to_the_lower_threshold():
    # 0.4 and 0.7 both cost 2 at 1:1.
    assert choose_threshold(Y, P, _cost(1, 1)).threshold == pytest.approx(0.4)


@pytest.mark.parametrize(
    "policy", ["max_f1", MinRecall(min_recall=0.9), MinPrecision(min_precision=0.5), _cost(1, 5)]
)
def test_single_class_rows_give_one_half_unmet(policy):
    choice = choose_threshold(np.array([0, 0, 0]), np.array([0.1, 0.7, 0.3]), policy)

    assert choice.threshold == 0.5
    assert choice.met is False
    assert "single class" in choice.reason


def test_policies_agree_with_a_brute_force_search():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    probability = np.round(rng.beta(2, 2, 300) * 0.5 + y * 0.2, 2)  # rounding makes ties
    candidates = np.r_[0.0, np.unique(probability), 1.5]
    flagged = probability[None, :] >= candidates[:, None]
    tp = (flagged & (y == 1)).sum(axis=1)
    fp = (flagged & (y == 0)).sum(axis=1)
    fn = y.sum() - tp
    f1 = 2 * tp / (2 * tp + fp + fn)
    recall = tp / y.sum()
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)

    assert choose_threshold(y, probability).validation["f1"] == pytest.approx(f1.max())
    assert choose_threshold(y, probability, MinRecall(min_recall=0.8)).threshold == (
        pytest.approx(candidates[recall >= 0.8].max())
    )
    assert choose_threshold(y, probability, MinPrecision(min_precision=0.7)).threshold == (
        pytest.approx(candidates[precision >= 0.7].min())
    )
    cost = 2 * fp + 7 * fn
    assert choose_threshold(y, probability, _cost(2, 7)).validation["cost"] == cost.min()


def test_choose_threshold_on_a_hundred_thousand_rows():
    rng = np.random.default_rng(0)
    y = (rng.random(100_000) < 0.05).astype(int)
    probability = np.clip(rng.normal(0.3 + 0.3 * y, 0.15), 0, 1)

    choice = choose_threshold(y, probability, MinRecall(min_recall=0.9))

    assert choice.validation["recall"] >= 0.9
    assert choice.met is True


@pytest.mark.parametrize(
    ("y", "probability", "message"),
    [
        (np.array([0, 1]), np.array([0.5]), "2 labels but 1 probabilities"),
        (np.array([0, 2]), np.array([0.1, 0.9]), "labels must be 0 or 1"),
        (np.array([0, 1]), np.array([0.1, 1.5]), "probabilities must lie in"),
    ],
)
def test_choose_threshold_rejects_bad_input(y, probability, message):
    with pytest.raises(ValueError, match=message):
        choose_threshold(y, probability)
