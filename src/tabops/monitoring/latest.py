"""The latest monitoring summaries, computed away from the requests that show them.

A summary is one pass over the prediction log: over a million predictions that takes
seconds, too long for a page to wait. ``LatestSummaries`` keeps the last summary computed
for each (model, window) asked for, and one background thread computes them: at once when
a key is asked for the first time, then again every ``refresh_seconds`` for as long as the
key keeps being asked for (a key not asked for within ``forget_seconds`` is dropped, so
memory and work follow what people look at). A reader gets the latest summary with the
time it was computed, or learns that none exists yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("tabops.monitoring")

Compute = Callable[[str, str, datetime], dict[str, Any]]
"""Computes the summary of (model, window) as of a moment."""
REFRESH_SECONDS = 60.0
FORGET_SECONDS = 15 * 60.0
MAX_KEYS = 256


@dataclass(frozen=True)
class LatestSummary:
    """What is known of one (model, window): its latest summary, or why there is none yet.

    Attributes:
        summary: the latest summary computed, ``None`` until the first one is done.
        computed_at: the moment ``summary`` describes (the end of its window).
        failure: why the latest attempt failed, if it did (``summary`` may still be older).
    """

    summary: dict[str, Any] | None
    computed_at: datetime | None
    failure: str | None = None


@dataclass
class _Entry:
    asked_at: float
    attempted_at: float | None = None
    latest: LatestSummary = LatestSummary(None, None)


class LatestSummaries:
    """Latest summaries per (model, window), refreshed by one background thread."""

    def __init__(
        self,
        compute: Compute,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        forget_seconds: float = FORGET_SECONDS,
        max_keys: int = MAX_KEYS,
    ) -> None:
        """Keep summaries made by ``compute``; the thread starts at the first ``latest``."""
        self._compute = compute
        self.refresh_seconds = refresh_seconds
        self.forget_seconds = forget_seconds
        self.max_keys = max_keys
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._is_stopping = False

    def latest(self, model: str, window: str) -> LatestSummary:
        """The latest summary of ``model`` over ``window``; asks for one when it is due."""
        key = (model, window)
        with self._changed:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(time.monotonic())
                self._forget_beyond_limit()
                self._changed.notify()
            else:
                entry.asked_at = time.monotonic()
            if self._thread is None and not self._is_stopping:
                self._thread = threading.Thread(
                    target=self._run, name="tabops-summaries", daemon=True
                )
                self._thread.start()
            return entry.latest

    def wait(self, model: str, window: str, timeout: float) -> LatestSummary:
        """The latest summary, waiting up to ``timeout`` seconds for a first one."""
        deadline = time.monotonic() + timeout
        found = self.latest(model, window)
        with self._changed:
            while True:
                # Read again under the lock: the thread may have finished since ``latest``,
                # and a notification sent before this wait began would never wake it.
                found = self._entries.get((model, window), _Entry(0.0, latest=found)).latest
                left = deadline - time.monotonic()
                if found.summary is not None or found.failure is not None or left <= 0:
                    return found
                self._changed.wait(left)

    def start(self) -> None:
        """Let the thread run again after ``stop`` (it starts at the next ask)."""
        with self._changed:
            self._is_stopping = False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread once its current computation (if any) is done."""
        with self._changed:
            self._is_stopping = True
            thread, self._thread = self._thread, None
            self._changed.notify_all()
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                key = self._next_due()
                while key is None and not self._is_stopping:
                    self._changed.wait(self._seconds_to_next_due())
                    key = self._next_due()
                if self._is_stopping:
                    return
                assert key is not None
                self._entries[key].attempted_at = time.monotonic()
            self._refresh(key)

    def _refresh(self, key: tuple[str, str]) -> None:
        moment = datetime.now(UTC)
        try:
            found = LatestSummary(self._compute(key[0], key[1], moment), moment)
        except Exception as exc:  # a failed round is reported and tried again, never fatal
            logger.exception("could not compute the monitoring summary of %s over %s", *key)
            failure = f"{type(exc).__name__}: {exc}"
            with self._changed:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.latest = LatestSummary(
                        entry.latest.summary, entry.latest.computed_at, failure
                    )
                self._changed.notify_all()
            return
        with self._changed:
            entry = self._entries.get(key)
            if entry is not None:
                entry.latest = found
            self._changed.notify_all()

    def _next_due(self) -> tuple[str, str] | None:
        """The key to compute next: never computed first, then the longest since computed."""
        now = time.monotonic()
        for key in [k for k, e in self._entries.items() if now - e.asked_at > self.forget_seconds]:
            del self._entries[key]
        due = [
            (entry.attempted_at or float("-inf"), key)
            for key, entry in self._entries.items()
            if entry.attempted_at is None or now - entry.attempted_at >= self.refresh_seconds
        ]
        return min(due)[1] if due else None

    def _seconds_to_next_due(self) -> float:
        now = time.monotonic()
        waits = [
            entry.attempted_at + self.refresh_seconds - now
            for entry in self._entries.values()
            if entry.attempted_at is not None
        ]
        return max(0.05, min(waits, default=self.refresh_seconds))

    def _forget_beyond_limit(self) -> None:
        while len(self._entries) > self.max_keys:
            oldest = min(self._entries, key=lambda key: self._entries[key].asked_at)
            del self._entries[oldest]


__all__ = ["LatestSummaries", "LatestSummary"]
