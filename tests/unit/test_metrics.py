"""Counting into the process-wide metrics: cached label children, bounded label sets."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tabops import metrics


def requests_by_model(route: str) -> dict[str, float]:
    text = metrics.scrape_metrics().decode()
    return {
        sample.labels["model"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "tabops_requests_total" and sample.labels["route"] == route
    }


def test_requests_are_counted_with_their_duration():
    for _ in range(3):
        metrics.record_request("/unit/counted", "m", 2, 200, 0.0002)
    assert requests_by_model("/unit/counted") == {"m": 3}
    histogram = metrics.REQUEST_SECONDS.labels("/unit/counted")
    buckets = {s.labels["le"]: s.value for s in histogram.collect()[0].samples if "le" in s.labels}
    assert (buckets["0.0001"], buckets["0.00025"], buckets["+Inf"]) == (0, 3, 3)


def test_past_the_series_limit_new_models_count_as_other(monkeypatch):
    monkeypatch.setattr(metrics, "_request_children", {})
    monkeypatch.setattr(metrics, "MAX_REQUEST_SERIES", 2)
    for name in ["a", "b", "c", "d", "a"]:
        metrics.record_request("/unit/bounded", name, "", 404, 0.001)
    assert requests_by_model("/unit/bounded") == {"a": 2, "b": 1, "_other": 2}
    assert len(metrics._request_children) == 3


def test_predictions_are_counted_by_class():
    metrics.record_predictions("unit-model", 4, "yes", "no", positives=3, total=5)
    metrics.record_predictions("unit-model", 4, "yes", "no", positives=0, total=2)
    text = metrics.scrape_metrics().decode()
    counted = {
        sample.labels["class"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "tabops_predictions_total" and sample.labels["model"] == "unit-model"
    }
    assert counted == {"yes": 3, "no": 4}


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
