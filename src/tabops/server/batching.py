"""Adaptive micro-batching: single-row requests that arrive together are scored in one call.

A request's row waits at most until the event loop has run the other requests that are
already being read (never longer than ``max_wait`` seconds), or until ``max_rows`` rows are
waiting; then every waiting row is scored in one session call and each caller gets its own
probability. A lone request at low load is scored on the next loop turn, so batching adds
no latency when there is nothing to batch. If the joint call fails, rows are scored one by
one, so a failure belongs to its own request only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

logger = logging.getLogger("tabops.server")

Scorer = Callable[[np.ndarray], np.ndarray]


class MicroBatcher:
    """Collects encoded rows for one model version and scores them together."""

    def __init__(self, score: Scorer, *, max_rows: int = 64, max_wait: float = 0.001) -> None:
        self.score = score
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.arriving = 0
        self.batches = 0
        self.rows_scored = 0
        self._rows: list[np.ndarray] = []
        self._futures: list[asyncio.Future[float]] = []
        self._scheduled = False
        self._first = 0.0

    def expect(self) -> None:
        """A request for this version started reading its body; a row should follow."""
        self.arriving += 1

    def abandon(self) -> None:
        """A request that called ``expect`` will not submit a row after all."""
        self.arriving -= 1

    def submit(self, row: np.ndarray) -> asyncio.Future[float]:
        """Queue one encoded row (after ``expect``); the future gets its probability."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self.arriving -= 1
        if not self._rows:
            self._first = loop.time()
        self._rows.append(row)
        self._futures.append(future)
        if len(self._rows) >= self.max_rows:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._tick, loop)
        return future

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        if not self._rows:
            return
        if self.arriving > 0 and loop.time() - self._first < self.max_wait:
            # Requests already being read will submit on the next turns: wait for them.
            self._scheduled = True
            loop.call_soon(self._tick, loop)
            return
        self._flush()

    def _flush(self) -> None:
        rows, futures = self._rows, self._futures
        self._rows, self._futures = [], []
        self.batches += 1
        self.rows_scored += len(rows)
        try:
            probabilities = self.score(np.vstack(rows)).tolist()
        except Exception:  # retried row by row below, so each caller gets its own
            logger.warning("a micro-batch of %d rows failed; scoring them one by one", len(rows))
            for row, future in zip(rows, futures, strict=True):
                try:
                    _resolve(future, float(self.score(row.reshape(1, -1))[0]))
                except Exception as exc:  # handed to the one request it belongs to
                    if not future.done():
                        future.set_exception(exc)
            return
        for future, probability in zip(futures, probabilities, strict=True):
            _resolve(future, probability)


def _resolve(future: asyncio.Future[float], probability: float) -> None:
    if not future.done():  # the caller may have gone (client disconnected)
        future.set_result(probability)
