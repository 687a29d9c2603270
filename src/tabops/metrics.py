"""The process-wide Prometheus metrics of tabops, and how to count into them cheaply.

Every metric object lives here, so any layer may count into it without importing the server.
Under ``tabops serve --workers N`` the serve command sets ``PROMETHEUS_MULTIPROC_DIR`` before
the workers start; prometheus-client then keeps each value in a memory-mapped file per process
and a scrape merges them (see ``scrape_metrics``). The job queue depth is not counted by any
process: it is read from the job store when a scrape asks (``JobQueueDepthCollector``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

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
    "1 while an alert rule fires for a model (and feature, or empty), else 0.",
    ["model", "rule", "feature"],
    multiprocess_mode="mostrecent",
)

JOB_QUEUE_DEPTH = "tabops_job_queue_depth"
"""Name of the queued-jobs gauge, computed at scrape time by ``JobQueueDepthCollector``."""

_RequestChildren = tuple[Callable[[], None], Callable[[float], None]]
_request_children: dict[tuple[str, str, int | str, int], _RequestChildren] = {}
_prediction_children: dict[tuple[str, int | str, str, str], tuple[Counter, Counter]] = {}


def _new_request_children(
    route: str, model: str, version: int | str, status: int
) -> _RequestChildren:
    counter = REQUESTS.labels(route, model, str(version), str(status))
    return counter.inc, REQUEST_SECONDS.labels(route).observe


def record_request(route: str, model: str, version: int | str, status: int, seconds: float) -> None:
    """Count one answered request and observe how long it took.

    The label children are cached per label tuple, so a steady stream of requests costs one
    dict lookup and two increments. Past ``MAX_REQUEST_SERIES`` distinct label sets, a new
    model name (a caller may send any) is counted as ``_other``, so labels stay bounded.
    """
    key = (route, model, version, status)
    children = _request_children.get(key)
    if children is None:
        if len(_request_children) >= MAX_REQUEST_SERIES:
            key = (route, OTHER_MODEL, "", status)
            children = _request_children.get(key)
        if children is None:
            children = _new_request_children(*key)
            _request_children[key] = children
    children[0]()
    children[1](seconds)


def record_predictions(
    model: str,
    version: int | str,
    positive_class: str,
    negative_class: str,
    positives: int,
    total: int,
) -> None:
    """Count ``total`` decisions of one version, ``positives`` of them the positive class."""
    key = (model, version, positive_class, negative_class)
    children = _prediction_children.get(key)
    if children is None:
        children = (
            PREDICTIONS.labels(model, str(version), positive_class),
            PREDICTIONS.labels(model, str(version), negative_class),
        )
        _prediction_children[key] = children
    if positives:
        children[0].inc(positives)
    if total > positives:
        children[1].inc(total - positives)


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
    registry = CollectorRegistry(auto_describe=False)
    if is_multiprocess():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
    else:
        registry.register(_DefaultRegistryCollector())
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)
