from __future__ import annotations

import numpy as np
import pytest

from tabops.training.budget import RunClock
from tabops.training.candidates import SEARCH_SPACES
from tabops.training.search import (
    LARGE_SEARCH_SETTINGS,
    SAMPLE_MINORITY_ROWS,
    SMALL_SEARCH_ROWS,
    planned_settings,
    sample_search_rows,
    settings_per_candidate,
)

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


def test_a_small_table_tries_every_setting_and_a_large_one_a_few():
    assert settings_per_candidate(None, SMALL_SEARCH_ROWS) is None
    assert settings_per_candidate(None, SMALL_SEARCH_ROWS + 1) == LARGE_SEARCH_SETTINGS
    assert settings_per_candidate(7, 100) == 7
    assert settings_per_candidate(2, 1_000_000) == 2


def test_the_search_sample_keeps_each_class_share_and_depends_on_the_seed_only():
    y = (np.arange(100_000) % 20 == 0).astype(int)  # 5% positives
    rows = sample_search_rows(y, 10_000, seed=1)
    assert len(rows) == 10_000
    assert y[rows].sum() == 500
    assert np.array_equal(rows, np.unique(rows))
    assert np.array_equal(rows, sample_search_rows(y, 10_000, seed=1))
    assert not np.array_equal(rows, sample_search_rows(y, 10_000, seed=2))


def test_the_search_sample_grows_to_keep_enough_rare_rows():
    y = np.zeros(100_000, dtype=int)
    y[::1_000] = 1  # 100 positives: too few to sample away any
    assert len(sample_search_rows(y, 10_000, seed=0)) == 100_000
    y = np.zeros(100_000, dtype=int)
    y[::250] = 1  # 400 positives: a sample holding 200 of them is half the table
    rows = sample_search_rows(y, 10_000, seed=0)
    assert y[rows].sum() == SAMPLE_MINORITY_ROWS
    assert len(rows) == 50_000


def test_a_table_within_the_limit_is_searched_whole():
    y = np.array([0, 1] * 50)
    assert np.array_equal(sample_search_rows(y, 1_000, seed=0), np.arange(100))
    assert np.array_equal(sample_search_rows(y, None, seed=0), np.arange(100))


def test_the_clock_lets_a_step_start_only_if_its_estimate_ends_within_the_cap():
    clock = RunClock(60.0)
    assert clock.allows(10.0)
    assert clock.allows(10.0, reserve_seconds=40.0)
    assert not clock.allows(50.0, reserve_seconds=20.0)
    assert not RunClock(0.0).allows(0.001)


def test_the_clock_adds_up_a_stage_closed_twice():
    clock = RunClock(60.0)
    first = clock.lap("search")
    second = clock.lap("search")
    clock.lap("fit")
    assert clock.stage_seconds["search"] == pytest.approx(first + second)
    assert list(clock.stage_seconds) == ["search", "fit"]
    assert clock.stage_peak_rss_mb["fit"] > 0
