"""Adaptive micro-batching: single-row requests that arrive together are scored in one call.

When requests are arriving together, a row is queued and scored at the end of the event
loop's turn, with every row queued during that turn, in one session call. The batch keeps
collecting for further turns as long as new rows keep joining it, up to ``max_rows`` rows
or ``max_wait`` seconds after its first row. When requests come one at a time (the last
batch held a single row), a row is scored at once, except every ``PROBE_EVERY``-th, which is
queued to find out whether concurrency has returned: batching costs a lone request almost
nothing. If a joint call fails, its rows are scored one by one, so an error belongs to its
own request only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from tabops.model.predictor import Predictor

logger = logging.getLogger("tabops.serving")

Scorer = Callable[[np.ndarray], np.ndarray]
PROBE_EVERY = 8


class MicroBatcher:
    """Collects encoded rows for one model version and scores them together."""

    def __init__(self, score: Scorer, *, max_rows: int = 64, max_wait: float = 0.001) -> None:
        self._score = score
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.batches = 0
        self.rows_batched = 0
        self._rows: list[np.ndarray] = []
        self._futures: list[asyncio.Future[float]] = []
        self._scheduled = False
        self._concurrent = False
        self._solo = 0
        self._first = 0.0
        self._seen = 0

    async def score(self, row: np.ndarray) -> float:
        """The positive-class probability of one encoded row."""
        if not self._rows and not self._concurrent:
            self._solo += 1
            if self._solo % PROBE_EVERY:
                return float(self._score(row.reshape(1, -1))[0])
        return await self._enqueue(row)

    def _enqueue(self, row: np.ndarray) -> asyncio.Future[float]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        if not self._rows:
            self._first = loop.time()
            self._seen = 0
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
        growing = len(self._rows) > self._seen
        self._seen = len(self._rows)
        if growing and len(self._rows) > 1 and loop.time() - self._first < self.max_wait:
            self._scheduled = True  # rows joined during the last turn: more may follow
            loop.call_soon(self._tick, loop)
            return
        self._flush()

    def _flush(self) -> None:
        rows, futures = self._rows, self._futures
        self._rows, self._futures = [], []
        self._concurrent = len(rows) > 1
        self.batches += 1
        self.rows_batched += len(rows)
        try:
            probabilities = self._score(np.vstack(rows)).tolist()
        except Exception:  # retried row by row below, so each caller gets its own
            logger.warning("a micro-batch of %d rows failed; scoring them one by one", len(rows))
            for row, future in zip(rows, futures, strict=True):
                try:
                    _resolve(future, float(self._score(row.reshape(1, -1))[0]))
                except Exception as exc:  # handed to the one request it belongs to
                    if not future.done():
                        future.set_exception(exc)
            return
        for future, probability in zip(futures, probabilities, strict=True):
            _resolve(future, probability)


def _resolve(future: asyncio.Future[float], probability: float) -> None:
    if not future.done():  # the caller may have gone (client disconnected)
        future.set_result(probability)


class Batchers:
    """One micro-batcher per loaded version, created on first use.

    Args:
        max_rows: most rows scored in one call; 1 turns micro-batching off.
        max_wait: longest a row waits for others to join its batch, in seconds.
    """

    def __init__(self, max_rows: int = 64, max_wait: float = 0.001) -> None:
        self.max_rows = max_rows
        self.max_wait = max_wait
        self._batchers: dict[Predictor, MicroBatcher] = {}

    def get(self, predictor: Predictor) -> MicroBatcher | None:
        """The batcher of a loaded version, or None when micro-batching is off."""
        if self.max_rows <= 1:
            return None
        batcher = self._batchers.get(predictor)
        if batcher is None:
            batcher = MicroBatcher(
                predictor.score_encoded, max_rows=self.max_rows, max_wait=self.max_wait
            )
            self._batchers[predictor] = batcher
        return batcher
