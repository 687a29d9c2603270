"""MicroBatcher on a real event loop: answers per caller, batch sizes, errors, cancellation."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tabops.serving.batching import PROBE_EVERY, MicroBatcher

POISON = -1.0
TIMEOUT = 5.0  # seconds: a future left unresolved must fail the test, not hang it


class RowSums:
    """A scorer answering each row's sum and recording the row count of every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        self.calls.append(len(matrix))
        if np.any(matrix[:, 0] == POISON):
            raise ValueError("poisoned row")
        return matrix.sum(axis=1)


def rows(count: int) -> list[np.ndarray]:
    """Distinct rows with distinct sums: row i sums to 4.5 * i + 1."""
    return [np.array([float(i), 3.5 * i, 1.0]) for i in range(count)]


def expected_sum(row: np.ndarray) -> float:
    return float(row.sum())


async def score_concurrently(batcher: MicroBatcher, inputs: list[np.ndarray]) -> list:
    calls = [batcher.score(row) for row in inputs]
    return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), TIMEOUT)


def test_concurrent_callers_each_get_their_own_rows_score():
    scorer = RowSums()
    batcher = MicroBatcher(scorer, max_rows=16, max_wait=0.05)
    inputs = rows(200)

    results = asyncio.run(score_concurrently(batcher, inputs))

    assert results == [expected_sum(row) for row in inputs]
    assert sum(scorer.calls) == len(inputs)  # every row scored exactly once


def test_concurrent_callers_are_scored_in_batches_of_at_most_max_rows():
    scorer = RowSums()
    batcher = MicroBatcher(scorer, max_rows=16, max_wait=0.05)

    asyncio.run(score_concurrently(batcher, rows(200)))

    assert len(scorer.calls) < 200
    assert max(scorer.calls) == 16
    assert all(1 <= size <= 16 for size in scorer.calls)
    assert batcher.rows_batched > batcher.batches  # rows really shared calls
    # Rows are scored alone only until the first probe finds company (and maybe a last one).
    assert scorer.calls.count(1) <= PROBE_EVERY


def test_sequential_callers_are_scored_one_row_at_a_time():
    scorer = RowSums()
    batcher = MicroBatcher(scorer, max_rows=16, max_wait=0.05)
    inputs = rows(40)

    async def one_after_another() -> list[float]:
        return [await batcher.score(row) for row in inputs]

    results = asyncio.run(one_after_another())

    assert results == [expected_sum(row) for row in inputs]
    assert scorer.calls == [1] * len(inputs)
    # Only the periodic probes for returning concurrency go through the queue.
    assert batcher.batches == len(inputs) // PROBE_EVERY
    assert batcher.rows_batched == batcher.batches


def test_a_batcher_seeing_concurrency_again_batches_again_after_a_quiet_spell():
    scorer = RowSums()
    batcher = MicroBatcher(scorer, max_rows=64, max_wait=0.05)

    async def quiet_then_busy() -> list:
        for row in rows(20):
            await batcher.score(row)
        return await score_concurrently(batcher, rows(100))

    results = asyncio.run(quiet_then_busy())

    assert results == [expected_sum(row) for row in rows(100)]
    assert max(scorer.calls[20:]) > 1


@pytest.mark.parametrize(("max_wait", "joint"), [(10.0, True), (0.0, False)])
def test_a_batch_waits_for_rows_joining_on_later_loop_turns_up_to_max_wait(max_wait, joint):
    scorer = RowSums()
    batcher = MicroBatcher(scorer, max_rows=64, max_wait=max_wait)
    inputs = rows(12)

    async def join_late(row: np.ndarray, turns: int) -> float:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await batcher.score(row)

    async def staggered() -> list:
        await score_concurrently(batcher, rows(20))  # concurrency seen: rows now queue
        scorer.calls.clear()
        # Two rows join on each of six successive loop turns.
        calls = [join_late(row, index // 2) for index, row in enumerate(inputs)]
        return await asyncio.wait_for(asyncio.gather(*calls), TIMEOUT)

    results = asyncio.run(staggered())

    assert results == [expected_sum(row) for row in inputs]
    if joint:
        assert scorer.calls == [len(inputs)]
    else:  # no time to wait: the batch leaves at the end of its first turn
        assert scorer.calls[0] == 2
        assert sum(scorer.calls) == len(inputs)


def test_a_failing_row_fails_only_its_own_caller():
    scorer = RowSums()
    batcher = MicroBatcher(scorer, max_rows=64, max_wait=0.05)
    inputs = rows(50)
    inputs[30] = np.array([POISON, 0.0, 0.0])

    results = asyncio.run(score_concurrently(batcher, inputs))

    assert isinstance(results[30], ValueError)
    assert str(results[30]) == "poisoned row"
    others = [result for index, result in enumerate(results) if index != 30]
    assert others == [expected_sum(row) for index, row in enumerate(inputs) if index != 30]
    # The joint call held the poisoned row, and failed; its rows were then scored one by one.
    assert max(scorer.calls) > 1


def test_a_caller_cancelled_while_queued_does_not_break_the_others():
    scorer = RowSums()
    batcher = MicroBatcher(scorer, max_rows=64, max_wait=0.05)
    inputs = rows(20)

    async def cancel_one() -> tuple[list, asyncio.Task]:
        tasks = [asyncio.create_task(batcher.score(row)) for row in inputs]
        await asyncio.sleep(0)  # every task runs up to its first wait; the batch is not sent
        victim = tasks[15]
        assert not victim.done(), "the row should still be waiting for its batch"
        victim.cancel()
        others = [task for task in tasks if task is not victim]
        results = await asyncio.wait_for(asyncio.gather(*others), TIMEOUT)
        await asyncio.gather(victim, return_exceptions=True)
        return results, victim

    results, victim = asyncio.run(cancel_one())

    assert victim.cancelled()
    assert results == [expected_sum(row) for index, row in enumerate(inputs) if index != 15]


def test_a_cancelled_caller_and_a_failing_batch_together_leave_the_others_answered():
    scorer = RowSums()
    batcher = MicroBatcher(scorer, max_rows=64, max_wait=0.05)
    inputs = rows(20)
    inputs[12] = np.array([POISON, 0.0, 0.0])

    async def cancel_one() -> list:
        tasks = [asyncio.create_task(batcher.score(row)) for row in inputs]
        await asyncio.sleep(0)
        assert not tasks[15].done()
        tasks[15].cancel()
        others = [task for index, task in enumerate(tasks) if index != 15]
        return await asyncio.wait_for(asyncio.gather(*others, return_exceptions=True), TIMEOUT)

    results = asyncio.run(cancel_one())

    assert isinstance(results[12], ValueError)
    survivors = [result for index, result in enumerate(results) if index != 12]
    expected = [expected_sum(row) for index, row in enumerate(inputs) if index not in (12, 15)]
    assert survivors == expected


@pytest.mark.parametrize("max_rows", [2, 7, 64])
def test_a_full_batch_is_sent_at_once_whatever_max_rows(max_rows):
    scorer = RowSums()
    batcher = MicroBatcher(scorer, max_rows=max_rows, max_wait=10.0)
    inputs = rows(3 * max_rows + 10)

    results = asyncio.run(score_concurrently(batcher, inputs))

    assert results == [expected_sum(row) for row in inputs]
    assert max(scorer.calls) == max_rows
