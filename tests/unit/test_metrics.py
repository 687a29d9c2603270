"""Counting into the process-wide metrics: tallies flushed into metric objects, bounded labels."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tabops import metrics


def samples(name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named ``name`` whose labels include ``labels`` (scraping flushes first)."""
    text = metrics.scrape_metrics().decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    }


def unflushed(child: Any, name: str) -> float:
    """A sample of a metric child as it is now, without flushing the tallies."""
    return next(s.value for s in child.collect()[0].samples if s.name == name)


def test_requests_are_counted_with_their_duration_once_flushed():
    for seconds in (0.0001, 0.0002, 0.004):
        metrics.record_request("/unit/counted", "m", 2, 200, seconds)
    histogram = metrics.REQUEST_SECONDS.labels("/unit/counted")
    assert unflushed(histogram, "tabops_request_duration_seconds_count") == 0

    counts = samples("tabops_requests_total", route="/unit/counted")
    assert list(counts.values()) == [3]
    buckets = {
        dict(labels)["le"]: value
        for labels, value in samples(
            "tabops_request_duration_seconds_bucket", route="/unit/counted"
        ).items()
    }
    # A duration equal to a bound counts in that bound's bucket ("le").
    assert (buckets["0.0001"], buckets["0.00025"], buckets["0.005"], buckets["+Inf"]) == (
        1,
        2,
        3,
        3,
    )
    total = samples("tabops_request_duration_seconds_sum", route="/unit/counted")
    assert list(total.values()) == [pytest.approx(0.0043)]


def test_past_the_series_limit_new_models_count_as_other(monkeypatch):
    monkeypatch.setattr(metrics._tally, "request_keys", set())
    monkeypatch.setattr(metrics, "MAX_REQUEST_SERIES", 2)
    for name in ["a", "b", "c", "d", "a"]:
        metrics.record_request("/unit/bounded", name, "", 404, 0.001)
    counts = samples("tabops_requests_total", route="/unit/bounded")
    assert {dict(labels)["model"]: value for labels, value in counts.items()} == {
        "a": 2,
        "b": 1,
        "_other": 2,
    }


def test_predictions_counted_on_many_threads_are_all_counted():
    def count() -> None:
        for _ in range(2_000):
            metrics.record_predictions("unit-model", 4, "yes", 1)
            metrics.record_predictions("unit-model", 4, "no", 2)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counted = samples("tabops_predictions_total", model="unit-model")
    assert {dict(labels)["class"]: value for labels, value in counted.items()} == {
        "yes": 8_000,
        "no": 16_000,
    }


def test_the_flusher_flushes_on_its_own_and_once_more_when_stopped():
    flusher = metrics.MetricsFlusher(interval_seconds=0.01)
    flusher.start()
    metrics.record_predictions("flushed-model", 1, "yes", 5)
    child = metrics.PREDICTIONS.labels("flushed-model", "1", "yes")
    total = "tabops_predictions_total"
    for _ in range(500):
        if unflushed(child, total) == 5:
            break
        threading.Event().wait(0.01)
    assert unflushed(child, total) == 5
    metrics.record_predictions("flushed-model", 1, "yes", 1)
    flusher.stop()
    assert unflushed(child, total) == 6


@pytest.mark.parametrize(("depth", "expected"), [(5, [5.0]), (None, [])])
def test_the_job_queue_depth_is_read_when_collected(depth, expected):
    reads: list[int | None] = []

    def read() -> int | None:
        reads.append(depth)
        return depth

    collector = metrics.JobQueueDepthCollector(read)
    assert reads == []
    values = [s.value for family in collector.collect() for s in family.samples]
    assert (values, reads) == (expected, [depth])
