"""The process-wide Prometheus metrics of tabops, and how to count into them cheaply.

Every metric object lives here, so any layer may count into it without importing the server.
Under ``tabops serve --workers N`` the serve command sets ``PROMETHEUS_MULTIPROC_DIR`` before
the workers start; prometheus-client then keeps each value in a memory-mapped file per process
and a scrape merges them (see ``scrape_metrics``). The job queue depth is not counted by any
process: it is read from the job store when a scrape asks (``JobQueueDepthCollector``).
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The variable that switches prometheus-client to multiprocess mode (read at its import)."""

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Content-Type of the text exposition format."""

MAX_REQUEST_SERIES = 2_000
"""Label sets of ``REQUESTS`` one process keeps apart; past it, new models count as ``_other``."""

OTHER_MODEL = "_other"

UNNAMED_STATUSES = frozenset({401, 403, 404})
"""Answers whose request's model name is not a label: it may be any string a caller sent."""

# From 100 µs (a cached single-record decision) to 10 s (a large batch upload).
_LATENCY_BUCKETS = (
    "0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10"
)

REQUESTS = Counter(
    "tabops_requests_total",
    "HTTP requests answered, by route template, model, version and status code.",
    ["route", "model", "version", "status"],
)
REQUEST_SECONDS = Histogram(
    "tabops_request_duration_seconds",
    "Time from a request's arrival to its answer, by route template.",
    ["route"],
    buckets=tuple(float(bound) for bound in _LATENCY_BUCKETS.split()),
)
PREDICTIONS = Counter(
    "tabops_predictions_total",
    "Decisions made by the serving core, by model, version and decided class.",
    ["model", "version", "class"],
)
LOG_ROWS = Counter(
    "tabops_prediction_log_rows_total",
    "Prediction rows written to the prediction log.",
)
LOG_DROPPED = Counter(
    "tabops_prediction_log_dropped_total",
    "Prediction rows the prediction log dropped (buffer full or write failed).",
)
DRIFT_PSI = Gauge(
    "tabops_drift_psi",
    "Latest population stability index of a feature against the version's reference.",
    ["model", "version", "feature"],
    multiprocess_mode="mostrecent",
)
ALERT_FIRING = Gauge(
    "tabops_alert_firing",
    "1 while an alert rule fires for a model version (and feature, or empty), else 0.",
    ["model", "version", "rule", "feature"],
    multiprocess_mode="mostrecent",
)

JOB_QUEUE_DEPTH = "tabops_job_queue_depth"
"""Name of the queued-jobs gauge, computed at scrape time by ``JobQueueDepthCollector``."""

_BOUNDS = [float(bound) for bound in _LATENCY_BUCKETS.split()]
_RequestKey = tuple[str, str, int | str, int]
_PredictionKey = tuple[str, int | str, str]


class _Tally:
    """Counts kept in plain Python between two flushes into the metric objects.

    prometheus-client's ``inc`` and ``observe`` cost about 1.5 us a request through their
    call layers and locks, as much as the rest of the fast path's bookkeeping; a tally costs
    a lock and three additions. One lock: decisions are counted on worker threads too.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[_RequestKey, list[Any]] = {}
        self.predictions: dict[_PredictionKey, list[int]] = {}
        self.request_keys: set[_RequestKey] = set()  # every label set counted, ever

    def take(self) -> tuple[dict[_RequestKey, list[Any]], dict[_PredictionKey, list[int]]]:
        """The counts since the last take, leaving none."""
        with self.lock:
            requests, predictions = self.requests, self.predictions
            self.requests, self.predictions = {}, {}
        return requests, predictions

    def bounded(self, key: _RequestKey) -> _RequestKey:
        """``key``, or its ``_other`` model form once ``MAX_REQUEST_SERIES`` are known."""
        if key not in self.request_keys:
            if len(self.request_keys) >= MAX_REQUEST_SERIES:
                return (key[0], OTHER_MODEL, "", key[3])
            self.request_keys.add(key)
        return key


_tally = _Tally()


def record_request(route: str, model: str, version: int | str, status: int, seconds: float) -> None:
    """Count one answered request and how long it took (in ``REQUESTS``, ``REQUEST_SECONDS``).

    Past ``MAX_REQUEST_SERIES`` distinct label sets, a new model name (a caller may send
    any) is counted as ``_other``, so labels stay bounded. Counts reach the metric objects
    at the next ``flush_metrics``.
    """
    key = (route, model, version, status)
    with _tally.lock:
        cell = _tally.requests.get(key)
        if cell is None:
            key = _tally.bounded(key)
            cell = _tally.requests.setdefault(key, [0, 0.0, [0] * (len(_BOUNDS) + 1)])
        cell[0] += 1
        cell[1] += seconds
        cell[2][bisect_left(_BOUNDS, seconds)] += 1  # "le": the first bound at or above


def record_predictions(model: str, version: int | str, class_name: str, count: int) -> None:
    """Count ``count`` decisions of one version for ``class_name`` (in ``PREDICTIONS``)."""
    key = (model, version, class_name)
    with _tally.lock:
        cell = _tally.predictions.get(key)
        if cell is None:
            cell = _tally.predictions[key] = [0]
        cell[0] += count


def flush_metrics() -> None:
    """Add what was counted since the last flush to the metric objects."""
    requests, predictions = _tally.take()
    for (route, model, version, status), (count, seconds, buckets) in requests.items():
        REQUESTS.labels(route, model, str(version), str(status)).inc(count)
        histogram = REQUEST_SECONDS.labels(route)
        # prometheus-client has no call adding many observations at once: a histogram holds
        # one value for the sum and one per bucket (the same since 0.4), each added to here.
        histogram._sum.inc(seconds)
        for value, added in zip(histogram._buckets, buckets, strict=True):
            if added:
                value.inc(added)
    for (model, version, class_name), (count,) in predictions.items():
        PREDICTIONS.labels(model, str(version), class_name).inc(count)


class MetricsFlusher:
    """Flushes this process's counts every ``interval_seconds`` on a thread of its own.

    Under several workers a scrape reads every worker's files, so each worker flushes on
    its own; a count is at most ``interval_seconds`` late there.
    """

    def __init__(self, interval_seconds: float = 1.0) -> None:
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tabops-metrics", daemon=True)

    def start(self) -> None:
        """Start flushing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop, after one last flush."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        flush_metrics()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            flush_metrics()


class JobQueueDepthCollector(Collector):
    """The number of queued jobs, read from the job store each time a scrape asks."""

    def __init__(self, read_depth: Callable[[], int | None]) -> None:
        """Collect through ``read_depth``: how many jobs wait to run, None if unknown now."""
        self._read_depth = read_depth

    def collect(self) -> Iterable[Metric]:
        """Yield the gauge with the depth read now (nothing when it cannot be read)."""
        depth = self._read_depth()
        if depth is None:
            return
        gauge = GaugeMetricFamily(JOB_QUEUE_DEPTH, "Jobs queued and not yet started.")
        gauge.add_metric([], float(depth))
        yield gauge


class _DefaultRegistryCollector(Collector):
    """Everything the process-wide default registry holds (single-process mode)."""

    def collect(self) -> Iterable[Metric]:
        """Yield the default registry's metrics."""
        return REGISTRY.collect()


def is_multiprocess() -> bool:
    """Whether metrics are kept in files shared by several worker processes."""
    return bool(os.environ.get(MULTIPROC_DIR_ENV))


def scrape_metrics(extra: Iterable[Collector] = ()) -> bytes:
    """Render all metrics in the text exposition format, with ``extra`` collectors added.

    In multiprocess mode the values of every worker are merged from their files, so the
    answer is the same whichever worker is scraped; otherwise the default registry is read.
    """
    flush_metrics()
    registry = CollectorRegistry(auto_describe=False)
    if is_multiprocess():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
    else:
        registry.register(_DefaultRegistryCollector())
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)
