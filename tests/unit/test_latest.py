"""The latest monitoring summaries: computed in the background, refreshed, forgotten."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tabops.monitoring.latest import LatestSummaries

HANG_SECONDS = 10.0


class Counting:
    """A summary that says which (model, window) and which round it is; may be held."""

    def __init__(self) -> None:
        self.rounds: dict[tuple[str, str], int] = {}
        self.is_released = threading.Event()
        self.is_released.set()

    def __call__(self, model: str, window: str, until: datetime) -> dict[str, Any]:
        self.is_released.wait(HANG_SECONDS)
        if model == "broken":
            raise ValueError("the log is unreadable")
        key = (model, window)
        self.rounds[key] = self.rounds.get(key, 0) + 1
        return {"model": model, "window": window, "round": self.rounds[key], "until": until}


@pytest.fixture
def compute() -> Counting:
    return Counting()


@pytest.fixture
def summaries(compute: Counting) -> Iterator[LatestSummaries]:
    latest = LatestSummaries(compute, refresh_seconds=0.2, forget_seconds=60)
    yield latest
    compute.is_released.set()
    latest.stop()


def test_a_first_ask_is_not_ready_until_the_thread_computed_it(summaries, compute):
    compute.is_released.clear()
    first = summaries.latest("m", "1d")
    assert first.summary is None
    assert first.computed_at is None
    compute.is_released.set()
    ready = summaries.wait("m", "1d", HANG_SECONDS)
    assert ready.summary is not None
    assert ready.summary["model"] == "m"
    assert ready.summary["window"] == "1d"
    assert ready.computed_at == ready.summary["until"]


def test_a_summary_asked_for_is_refreshed_after_the_interval(summaries):
    first = summaries.wait("m", "1d", HANG_SECONDS).summary
    assert first is not None
    assert first["round"] == 1
    deadline = time.monotonic() + HANG_SECONDS
    while (summaries.latest("m", "1d").summary or {})["round"] < 2:
        assert time.monotonic() < deadline, "never refreshed"
        time.sleep(0.02)


def test_keys_not_asked_for_are_forgotten(compute):
    latest = LatestSummaries(compute, refresh_seconds=0.05, forget_seconds=0.2)
    try:
        latest.wait("m", "1d", HANG_SECONDS)
        time.sleep(0.6)
        rounds = compute.rounds[("m", "1d")]
        time.sleep(0.3)
        assert compute.rounds[("m", "1d")] == rounds  # no longer refreshed
        assert latest.latest("m", "1d").summary is None  # asked again: computed afresh
    finally:
        latest.stop()


def test_a_failure_is_reported_and_the_thread_keeps_working(summaries):
    failed = summaries.wait("broken", "1d", HANG_SECONDS)
    assert failed.summary is None
    assert failed.failure == "ValueError: the log is unreadable"
    assert summaries.wait("m", "7d", HANG_SECONDS).summary is not None


def test_only_the_latest_keys_are_kept(compute):
    latest = LatestSummaries(compute, max_keys=2)
    try:
        for model in ("a", "b", "c"):
            assert latest.wait(model, "1d", HANG_SECONDS).summary is not None
        assert latest.latest("c", "1d").summary is not None
        assert latest.latest("a", "1d").summary is None
    finally:
        latest.stop()


def test_stop_ends_the_thread_and_later_asks_compute_nothing(compute):
    latest = LatestSummaries(compute)
    latest.wait("m", "1d", HANG_SECONDS)
    latest.stop()
    assert latest.latest("n", "1d").summary is None
    time.sleep(0.1)
    assert ("n", "1d") not in compute.rounds


def test_a_start_after_a_stop_computes_again(compute):
    latest = LatestSummaries(compute)
    latest.stop()
    latest.start()
    try:
        assert latest.wait("m", "1d", HANG_SECONDS).summary is not None
    finally:
        latest.stop()
