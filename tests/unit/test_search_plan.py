from __future__ import annotations

from tabops.training.candidates import SEARCH_SPACES
from tabops.training.search import planned_settings

GRID = SEARCH_SPACES["hist_gradient_boosting"]


def test_the_plan_starts_with_the_first_setting_and_holds_every_one_once():
    plan = planned_settings(GRID, None, seed=42)
    assert plan[0] == GRID[0]
    assert sorted(map(str, plan)) == sorted(map(str, GRID))


def test_the_plan_depends_on_the_seed_only():
    assert planned_settings(GRID, None, seed=7) == planned_settings(GRID, None, seed=7)
    orders = {tuple(map(str, planned_settings(GRID, None, seed=seed))) for seed in range(5)}
    assert len(orders) > 1


def test_a_limit_keeps_the_first_settings_of_the_plan():
    full = planned_settings(GRID, None, seed=3)
    assert planned_settings(GRID, 4, seed=3) == full[:4]
    assert planned_settings(GRID, 100, seed=3) == full
    assert planned_settings([{}], 3, seed=3) == [{}]
