"""Threshold policies on hand-made scores whose right cut-off can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tabops.project import Costs, MinCost, MinPrecision, MinRecall
from tabops.training.evaluate import evaluate_model
from tabops.training.threshold import (
    choose_threshold,
    evaluate_operating_points,
    explain_missed_positives,
    operating_points,
)

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


# Operating points ------------------------------------------------------------------------

# 100 rows, 5 positives. From the top: 0.95 twice (one positive), 0.9, 0.85 (positive), 0.8
# three times (one positive), then 93 distinct scores from 0.6 down to 0.01 holding the other
# two positives, at 0.6 - 10 * step (the 11th) and 0.01 (the last).
LOW = np.linspace(0.6, 0.01, 93)
P_POINTS = np.r_[0.95, 0.95, 0.9, 0.85, 0.8, 0.8, 0.8, LOW]
Y_POINTS = np.r_[1, 0, 0, 1, 0, 1, 0, np.zeros(93, dtype=int)]
Y_POINTS[7 + 10] = Y_POINTS[-1] = 1


def by_label(points):
    return {point.label: point for point in points}


def test_operating_points_cover_three_top_shares_and_three_recalls():
    points = operating_points(Y_POINTS, P_POINTS)

    assert [point.label for point in points] == [
        "top 0.1%",
        "top 1%",
        "top 5%",
        "recall 0.5",
        "recall 0.8",
        "recall 0.9",
    ]
    assert [point.kind for point in points] == ["top_share"] * 3 + ["target_recall"] * 3
    assert [point.share for point in points[:3]] == [0.001, 0.01, 0.05]
    assert [point.target_recall for point in points[3:]] == [0.5, 0.8, 0.9]


def test_top_share_below_one_row_flags_the_top_row_and_its_ties():
    points = by_label(operating_points(Y_POINTS, P_POINTS))

    # 0.1% and 1% of 100 rows ask for 0.1 and 1 row: the top row, tied with a second.
    for label in ("top 0.1%", "top 1%"):
        point = points[label]
        assert point.threshold == 0.95
        assert point.flagged == 2
        assert point.true_positives == 1
        assert point.precision == 0.5
        assert point.recall == pytest.approx(0.2)


def test_top_share_counts_the_whole_tie_at_the_cut():
    point = by_label(operating_points(Y_POINTS, P_POINTS))["top 5%"]

    # The 5th highest score, 0.8, is tied with the 6th and 7th: all three are flagged.
    assert point.threshold == 0.8
    assert point.flagged == 7
    assert point.true_positives == 3
    assert point.precision == pytest.approx(3 / 7)
    assert point.recall == pytest.approx(0.6)


def test_target_recall_takes_the_highest_threshold_reaching_it():
    points = by_label(operating_points(Y_POINTS, P_POINTS))

    half = points["recall 0.5"]  # 3 of 5 positives are first reached at 0.8
    assert (half.threshold, half.flagged, half.true_positives) == (0.8, 7, 3)
    assert half.recall == pytest.approx(0.6)
    most = points["recall 0.8"]  # the 4th positive is the 11th low score
    assert most.threshold == LOW[10]
    assert (most.flagged, most.true_positives) == (18, 4)
    every = points["recall 0.9"]  # the 5th positive has the lowest score: flag every row
    assert every.threshold == pytest.approx(0.01)
    assert (every.flagged, every.true_positives, every.recall) == (100, 5, 1.0)
    assert every.precision == pytest.approx(0.05)


def test_target_recall_agrees_with_the_min_recall_policy():
    points = by_label(operating_points(Y, P))

    for target in (0.5, 0.8, 0.9):
        choice = choose_threshold(Y, P, MinRecall(min_recall=target))
        assert points[f"recall {target:g}"].threshold == choice.threshold


def test_operating_points_without_positives_have_only_top_shares():
    points = operating_points(np.zeros(50, dtype=int), np.linspace(0, 1, 50))

    assert [point.kind for point in points] == ["top_share"] * 3
    assert all(point.recall == 0.0 and point.true_positives == 0 for point in points)
    assert [point.flagged for point in points] == [1, 1, 3]  # 0.05, 0.5 and 2.5 rows


def test_operating_points_of_no_rows_are_empty():
    assert operating_points(np.array([], dtype=int), np.array([])) == []


def test_evaluate_operating_points_on_the_same_rows_gives_the_same_points():
    points = operating_points(Y_POINTS, P_POINTS)

    assert evaluate_operating_points(points, Y_POINTS, P_POINTS) == points


def test_evaluate_operating_points_keeps_the_thresholds_and_counts_other_rows():
    points = operating_points(Y_POINTS, P_POINTS)
    y_other = np.array([1, 0, 1, 0, 1])
    p_other = np.array([0.99, 0.95, 0.8, 0.5, 0.0])

    measured = by_label(evaluate_operating_points(points, y_other, p_other))

    top = measured["top 0.1%"]  # threshold 0.95, inclusive: 0.99 and 0.95
    assert (top.threshold, top.flagged, top.true_positives) == (0.95, 2, 1)
    assert top.recall == pytest.approx(1 / 3)
    share = measured["top 5%"]  # threshold 0.8
    assert (share.flagged, share.true_positives, share.precision) == (3, 2, pytest.approx(2 / 3))
    every = measured["recall 0.9"]  # threshold 0.01 misses the positive scored 0
    assert (every.flagged, every.true_positives) == (4, 2)
    assert every.kind == "target_recall"
    assert every.target_recall == 0.9


def test_evaluate_operating_points_flagging_nothing_has_zero_precision():
    points = operating_points(Y_POINTS, P_POINTS)

    measured = evaluate_operating_points(points, np.array([0, 1]), np.array([0.001, 0.005]))

    assert all(point.flagged == 0 for point in measured)
    assert all(point.precision == 0.0 and point.recall == 0.0 for point in measured)


def test_operating_points_agree_with_a_brute_force_count():
    rng = np.random.default_rng(3)
    y = (rng.random(2_000) < 0.05).astype(int)
    probability = np.round(np.clip(rng.normal(0.3 + 0.2 * y, 0.1), 0, 1), 3)  # ties

    for point in operating_points(y, probability):
        flagged = probability >= point.threshold
        assert point.flagged == flagged.sum()
        assert point.true_positives == (flagged & (y == 1)).sum()
        if point.kind == "top_share":
            assert point.share is not None
            assert flagged.sum() >= np.ceil(point.share * len(y))
            assert (probability > point.threshold).sum() < np.ceil(point.share * len(y))
        else:
            assert point.target_recall is not None
            assert point.recall >= point.target_recall
            assert (y[probability > point.threshold]).sum() / y.sum() < point.target_recall


def test_operating_points_on_a_million_rows():
    rng = np.random.default_rng(0)
    y = (rng.random(1_000_000) < 0.001).astype(int)
    probability = rng.random(1_000_000) * (0.5 + 0.5 * y)

    points = by_label(operating_points(y, probability))
    measured = evaluate_operating_points(list(points.values()), y, probability)

    assert [points["top 0.1%"].flagged, points["top 1%"].flagged] == [1_000, 10_000]
    assert points["recall 0.9"].recall >= 0.9
    assert measured == list(points.values())


# Missed positives -----------------------------------------------------------------------


def test_explain_missed_positives_names_the_rows_threshold_and_positives():
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.1, 0.05])

    [note] = explain_missed_positives({"test": evaluate_model(y, p, 0.41)})

    assert note == (
        "the threshold 0.41 catches none of the 3 positives of the test rows (it flags 2 rows, "
        "all false alarms): at this cut-off the model flags nothing useful; see the operating "
        "points, or set train.threshold to {min_recall: 0.3}"
    )


def test_explain_missed_positives_when_nothing_is_flagged_or_one_positive_is_missed():
    y = np.array([0, 0, 1, 0])
    p = np.array([0.1, 0.2, 0.3, 0.4])

    [note] = explain_missed_positives({"validation": evaluate_model(y, p, 0.5)})

    assert note.startswith(
        "the threshold 0.5 catches the only positive of the validation rows (it flags no row)"
    )


def test_explain_missed_positives_is_silent_when_a_positive_is_caught_or_none_exist():
    caught = evaluate_model(np.array([0, 1, 1]), np.array([0.9, 0.6, 0.1]), 0.5)
    no_positive = evaluate_model(np.array([0, 0]), np.array([0.9, 0.1]), 0.5)

    assert explain_missed_positives({"validation": caught, "test": no_positive}) == []


def test_explain_missed_positives_gives_one_note_per_set_of_rows():
    missed = evaluate_model(np.array([0, 1]), np.array([0.9, 0.1]), 0.5)

    notes = explain_missed_positives({"validation": missed, "test": missed})

    assert ["validation rows" in notes[0], "test rows" in notes[1]] == [True, True]
