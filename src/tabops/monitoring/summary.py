"""What the log says about a model over a window: traffic, drift, performance, estimates.

``Monitor`` reads each version's predictions once per question, streaming: every batch is
counted into fixed-size accumulators (drift on the version's reference bins, label-free
estimates, traffic), one set per point of the series, so memory does not grow with the log.
Labels come from the label store, already joined to their predictions. The same pass feeds
``GET /v1/models/{name}/monitoring``, ``tabops monitor status``, the HTML report and the
alert rules (``observe``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tabops.config import Settings
from tabops.errors import VersionNotFoundError
from tabops.metrics import DRIFT_PSI
from tabops.model.manifest import Manifest
from tabops.model.reference_stats import ReferenceStats
from tabops.monitoring.alerts import Observation
from tabops.monitoring.drift import PSI_ALERT, PSI_WARN, DriftAccumulator, DriftResult
from tabops.monitoring.labels import LabeledPredictions, LabelStore
from tabops.monitoring.performance import (
    EstimateAccumulator,
    Metrics,
    compare_with_training,
    performance,
)
from tabops.monitoring.reference import load_reference, reference_cache_dir
from tabops.monitoring.segments import LogReader
from tabops.monitoring.traffic import TrafficCounts
from tabops.monitoring.windows import Window, bucket_index, buckets, timestamps_of
from tabops.monitoring_rules import (
    DRIFT_METRICS,
    PERFORMANCE_METRICS,
    MonitoringSection,
)
from tabops.registry.versions import ModelRegistry

_READ = ["timestamp", "probability", "positive", "latency_ms"]


@dataclass
class Point:
    """The accumulators of one point of a series (or of a whole window)."""

    since: datetime
    until: datetime
    drift: DriftAccumulator
    estimates: EstimateAccumulator
    traffic: TrafficCounts = field(default_factory=TrafficCounts)

    def add(self, batch: pa.RecordBatch) -> None:
        """Count a batch of the log into every accumulator."""
        self.drift.add(batch)
        self.estimates.add_batch(batch)
        self.traffic.add(batch)


@dataclass
class VersionReport:
    """One version over a window: drift, estimates and traffic, and its labeled performance."""

    version: int
    threshold: float
    total: Point
    points: list[Point]
    labeled: LabeledPredictions
    manifest: Manifest
    psi_warn: float
    psi_alert: float

    def drift(self, point: Point | None = None) -> DriftResult:
        """Drift over one point of the series, or the whole window."""
        return (point or self.total).drift.result(self.psi_warn, self.psi_alert)

    def performance(self, since: datetime | None = None, until: datetime | None = None) -> Metrics:
        """Realized metrics of the labeled predictions made in ``[since, until)``."""
        chosen = self._labeled_mask(since, until)
        return performance(
            self.labeled.probability[chosen], self.labeled.outcome[chosen], self.threshold
        )

    def _labeled_mask(self, since: datetime | None, until: datetime | None) -> np.ndarray:
        times = self.labeled.predicted_at
        mask = np.ones(len(times), dtype=bool)
        if since is not None:
            mask &= times >= np.datetime64(since.replace(tzinfo=None), "us")
        if until is not None:
            mask &= times < np.datetime64(until.replace(tzinfo=None), "us")
        return mask

    def observations(self, window: str) -> list[Observation]:
        """Every metric a rule may name, over the whole window."""
        drift = self.drift()
        rows = self.total.traffic.rows
        found = [Observation("rows", None, float(rows), rows, window=window)]
        for name, feature in drift.features.items():
            document = feature.to_dict()
            for metric in DRIFT_METRICS:
                value = document.get(metric)
                found.append(Observation(metric, name, _number(value), feature.rows, 0, window))
        found.append(Observation("score_psi", None, drift.score_psi, rows, window=window))
        realized = self.performance()
        labels = int(realized["rows"] or 0)
        estimates = self.total.estimates.result()
        for metric in PERFORMANCE_METRICS:
            found.append(
                Observation(metric, None, _number(realized.get(metric)), labels, labels, window)
            )
            estimated = _number(estimates.get(f"estimated_{metric}"))
            found.append(Observation(f"estimated_{metric}", None, estimated, rows, 0, window))
        return found

    def document(self, series: bool) -> dict[str, Any]:
        """The JSON answer for this version."""
        realized = self.performance()
        answer: dict[str, Any] = {
            "version": self.version,
            "threshold": self.threshold,
            "traffic": self.total.traffic.document(),
            "drift": self.drift().to_dict(),
            "performance": {
                **realized,
                "training": compare_with_training(realized, self.manifest),
            },
            "estimates": self.total.estimates.result(),
        }
        if series:
            answer["series"] = [self._point_document(point) for point in self.points]
        return answer

    def _point_document(self, point: Point) -> dict[str, Any]:
        drift = self.drift(point)
        realized = self.performance(point.since, point.until)
        return {
            "since": point.since.isoformat(),
            "until": point.until.isoformat(),
            "rows": point.traffic.rows,
            "positive_rate": point.traffic.document()["positive_rate"],
            "score_psi": drift.score_psi,
            "psi": {name: feature.psi for name, feature in drift.features.items()},
            "performance": realized,
            "estimates": point.estimates.result(),
        }


class Monitor:
    """Reads the prediction log, the labels and each version's reference for questions."""

    def __init__(
        self,
        registry: ModelRegistry,
        log: LogReader,
        labels: LabelStore,
        cache_dir: Path,
        psi_warn: float = PSI_WARN,
        psi_alert: float = PSI_ALERT,
    ) -> None:
        self.registry = registry
        self.log = log
        self.labels = labels
        self.cache_dir = cache_dir
        self.psi_warn = psi_warn
        self.psi_alert = psi_alert
        self._references: dict[tuple[str, int], ReferenceStats] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, registry: ModelRegistry, labels: LabelStore
    ) -> Monitor:
        """A monitor over the log and cache under ``settings.home``."""
        return cls(
            registry,
            LogReader(settings.home / "predictions"),
            labels,
            reference_cache_dir(settings.home),
            settings.monitoring.psi_warn,
            settings.monitoring.psi_alert,
        )

    def reference(self, model: str, version: int) -> ReferenceStats:
        """A version's reference statistics, read (or built) once per process."""
        key = (model, version)
        with self._lock:
            found = self._references.get(key)
        if found is None:
            found = load_reference(self.registry, model, version, self.cache_dir)
            with self._lock:
                self._references[key] = found
        return found

    def served_version(self, model: str) -> int:
        """The version the model's rules come from: production, else the latest.

        Raises:
            ModelNotFoundError: no such model.
        """
        try:
            return self.registry.resolve(model, None)
        except VersionNotFoundError:  # no production alias (trained without promotion)
            return self.registry.list_versions(model)[-1]

    def section(self, model: str, version: int | None = None) -> MonitoringSection:
        """The monitoring section stored with a version (``served_version`` by default)."""
        number = self.served_version(model) if version is None else version
        found = self.registry.get_version(model, number)
        return MonitoringSection.from_manifest(found.manifest.monitoring)

    def report(
        self,
        model: str,
        version: int,
        since: datetime,
        until: datetime,
        step: Window | None = None,
    ) -> VersionReport:
        """One pass over a version's log in ``[since, until)``, in points of ``step``."""
        found = self.registry.get_version(model, version)
        manifest = found.manifest
        section = MonitoringSection.from_manifest(manifest.monitoring)
        reference = self.reference(model, version)
        edges = buckets(since, until, step.length if step is not None else None)
        points = [
            Point(start, end, DriftAccumulator(reference), EstimateAccumulator(manifest.threshold))
            for start, end in pairwise(edges)
        ]
        columns = [*_READ, *(f"features.{name}" for name in reference.features)]
        for batch in self.log.batches(model, version, since, until, columns=columns):
            _add_to_points(points, edges, batch)
        total = points[0] if len(points) == 1 else _merged(points, reference, manifest.threshold)
        return VersionReport(
            version,
            manifest.threshold,
            total,
            points,
            self.labels.labeled(model, version, since, until),
            manifest,
            section.psi_warn or self.psi_warn,
            section.psi_alert or self.psi_alert,
        )

    def versions_in(self, model: str, since: datetime, until: datetime) -> list[int]:
        """Versions of ``model`` with logged predictions in the span, newest first."""
        found = []
        for version in self.log.versions(model):
            for batch in self.log.batches(model, version, since, until, columns=["timestamp"]):
                if batch.num_rows:
                    found.append(version)
                    break
        return sorted(found, reverse=True)

    def observe(self, model: str, windows: Iterable[str]) -> list[tuple[int, list[Observation]]]:
        """For the alert rules: each version's observations over each window, ending now."""
        now = datetime.now(UTC)
        by_version: dict[int, list[Observation]] = {}
        production = self.served_version(model)
        for text in sorted(set(windows)):
            window = Window.parse(text)
            since, until = window.span(self.log, model, now)
            versions = set(self.versions_in(model, since, until)) | {production}
            for version in sorted(versions):
                report = self.report(model, version, since, until)
                observations = report.observations(text)
                _publish_drift(model, version, observations)
                by_version.setdefault(version, []).extend(observations)
        return sorted(by_version.items())

    def summary(
        self,
        model: str,
        window: Window,
        since: datetime | None = None,
        until: datetime | None = None,
        versions: Sequence[int] | None = None,
    ) -> dict[str, Any]:
        """The monitoring answer of ``model``: per version, over the window (or a series)."""
        until = until or datetime.now(UTC)
        if since is None:
            since, until = window.span(self.log, model, until)
            step = None
        else:
            step = window if window.length is not None else None
        chosen = list(versions) if versions else self.versions_in(model, since, until)
        reports = [self.report(model, version, since, until, step) for version in chosen]
        return {
            "model": model,
            "window": window.text,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "versions": [report.document(series=step is not None) for report in reports],
        }


def _add_to_points(points: list[Point], edges: list[datetime], batch: pa.RecordBatch) -> None:
    if len(points) == 1:
        points[0].add(batch)
        return
    index = bucket_index(timestamps_of(batch), edges)
    for number in np.unique(index):
        points[int(number)].add(batch.filter(pa.array(index == number)))


def _merged(points: list[Point], reference: ReferenceStats, threshold: float) -> Point:
    total = Point(
        points[0].since,
        points[-1].until,
        DriftAccumulator(reference),
        EstimateAccumulator(threshold),
    )
    for point in points:
        total.drift.merge(point.drift)
        total.estimates.merge(point.estimates)
        total.traffic.merge(point.traffic)
    return total


def _publish_drift(model: str, version: int, observations: Iterable[Observation]) -> None:
    """Set the PSI gauge of each feature measured (a window without rows leaves it)."""
    for item in observations:
        if item.metric == "psi" and item.feature is not None and item.value is not None:
            DRIFT_PSI.labels(model=model, version=str(version), feature=item.feature).set(
                item.value
            )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
