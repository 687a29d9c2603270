"""Streaming drift: live values counted into a version's reference bins, compared on demand.

``DriftAccumulator`` only keeps fixed-size counts (one array per feature on the reference's
bins, a bounded dict of unseen category names), so its memory does not grow with the rows
that pass; accumulators of two windows or two workers merge by adding counts. Every
statistic is computed on those bins (``tabops.monitoring.statistics``), never on raw values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from tabops.model.reference_stats import (
    CategoricalReference,
    NumericReference,
    ReferenceStats,
    ScoreReference,
)
from tabops.monitoring.counts import CategoryCounts, NumericCounts, ScoreCounts
from tabops.monitoring.statistics import (
    compute_chi2_pvalue,
    compute_jensen_shannon,
    compute_ks,
    compute_psi,
    compute_wasserstein,
)
from tabops.monitoring_rules import DEFAULT_MIN_ROWS

PSI_WARN = 0.1
PSI_ALERT = 0.2
FEATURE_PREFIX = "features."
SCORE_COLUMN = "probability"
_SHOWN_UNSEEN = 10

Status = Literal["ok", "warn", "alert", "no_data", "few_rows"]
MIN_ROWS = DEFAULT_MIN_ROWS
"""Rows below which a feature's drift is reported but given no ok/warn/alert status."""


def drift_status(psi: float | None, warn: float = PSI_WARN, alert: float = PSI_ALERT) -> Status:
    """``alert`` from ``alert`` up, ``warn`` from ``warn`` up, ``no_data`` without a PSI."""
    if psi is None:
        return "no_data"
    return "alert" if psi >= alert else "warn" if psi >= warn else "ok"


@dataclass(frozen=True)
class FeatureDrift:
    """How one feature (or the score) moved from its reference, on the reference's bins.

    ``ks`` is the largest gap between the two binned CDFs, read at the bin edges only: a
    lower bound of the two-sample KS statistic. ``wasserstein`` is the binned earth mover's
    distance (values spread evenly within a bin) in reference standard deviations.
    ``jensen_shannon`` is the base-2 Jensen-Shannon distance, in [0, 1].
    ``chi2_pvalue`` is the two-sample chi-square test's p-value on the category counts.
    """

    name: str
    kind: str
    rows: int
    status: Status
    null_rate: float | None
    reference_null_rate: float
    psi: float | None = None
    ks: float | None = None
    wasserstein: float | None = None
    jensen_shannon: float | None = None
    chi2_pvalue: float | None = None
    unseen_share: float | None = None
    mean: float | None = None
    reference_mean: float | None = None
    cuts: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    shares: tuple[float, ...] = ()
    reference_shares: tuple[float, ...] = ()
    unseen_values: dict[str, int] = field(default_factory=dict)

    @property
    def null_rate_change(self) -> float | None:
        """The null rate now minus the reference's."""
        return None if self.null_rate is None else self.null_rate - self.reference_null_rate

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (tuples as lists)."""
        document = {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }
        document["null_rate_change"] = self.null_rate_change
        return document


@dataclass(frozen=True)
class DriftResult:
    """Drift of every feature and of the score over one window of predictions."""

    rows: int
    features: dict[str, FeatureDrift]
    score: FeatureDrift | None
    score_histogram: dict[str, list[float]] | None
    psi_warn: float
    psi_alert: float

    @property
    def score_psi(self) -> float | None:
        """PSI of the positive-class probability on its reference quantile bins."""
        return self.score.psi if self.score is not None else None

    @property
    def drifted(self) -> list[str]:
        """Features whose status is ``alert``, in feature order."""
        return [name for name, drift in self.features.items() if drift.status == "alert"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "rows": self.rows,
            "psi_warn": self.psi_warn,
            "psi_alert": self.psi_alert,
            "score_psi": self.score_psi,
            "drifted": self.drifted,
            "features": {name: drift.to_dict() for name, drift in self.features.items()},
            "score": self.score.to_dict() if self.score is not None else None,
            "score_histogram": self.score_histogram,
        }


class DriftAccumulator:
    """Counts of a window of predictions on a version's reference bins.

    Batches hold the features as ``features.<name>`` columns or one ``features`` struct
    column, and the score as ``probability``; a feature absent from a batch is not counted.
    """

    def __init__(self, reference: ReferenceStats) -> None:
        self.reference = reference
        self.rows = 0
        self.numbers: dict[str, NumericCounts] = {}
        self.categories: dict[str, CategoryCounts] = {}
        for name, described in reference.features.items():
            if isinstance(described, NumericReference):
                self.numbers[name] = NumericCounts(described.cuts)
            else:
                self.categories[name] = CategoryCounts(described, name)
        score = reference.score
        self.score = ScoreCounts(score.quantiles.cuts) if score is not None else None

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Count a batch of logged predictions.

        Raises:
            InvalidInputError: a feature's column holds values of the wrong type.
        """
        if isinstance(batch, pa.Table):
            for part in batch.to_batches():
                self.add(part)
            return
        self.rows += batch.num_rows
        columns = _feature_columns(batch)
        for name, numbers in self.numbers.items():
            if name in columns:
                numbers.add(columns[name], name)
        for name, categories in self.categories.items():
            if name in columns:
                categories.add(columns[name])
        if self.score is not None and SCORE_COLUMN in batch.schema.names:
            self.score.add(batch.column(SCORE_COLUMN), SCORE_COLUMN)

    def add_all(self, batches: Iterable[pa.RecordBatch]) -> DriftAccumulator:
        """Count every batch; this accumulator, for chaining."""
        for batch in batches:
            self.add(batch)
        return self

    def merge(self, other: DriftAccumulator) -> DriftAccumulator:
        """Add another accumulator's counts (another window or worker) to this one.

        Raises:
            ValueError: the other counts were made on another reference.
        """
        if other.reference is not self.reference and other.reference != self.reference:
            raise ValueError("cannot merge drift counts made on different references")
        self.rows += other.rows
        for name, numbers in self.numbers.items():
            numbers.merge(other.numbers[name])
        for name, categories in self.categories.items():
            categories.merge(other.categories[name])
        if self.score is not None and other.score is not None:
            self.score.merge(other.score)
        return self

    def result(
        self, psi_warn: float = PSI_WARN, psi_alert: float = PSI_ALERT, min_rows: int = MIN_ROWS
    ) -> DriftResult:
        """Drift statistics of everything counted so far.

        A feature seen in fewer than ``min_rows`` rows gets the status ``few_rows``: its
        statistics are given, but on so few rows a PSI says little (one row moves it past any
        threshold), so it is neither ``warn`` nor ``alert`` (nor among ``drifted``).
        """
        features: dict[str, FeatureDrift] = {}
        for name, described in self.reference.features.items():
            if isinstance(described, NumericReference):
                features[name] = _numeric_drift(
                    name, described, self.numbers[name], psi_warn, psi_alert
                )
            else:
                features[name] = _category_drift(
                    name, described, self.categories[name], psi_warn, psi_alert
                )
        score, histogram = None, None
        if self.score is not None and self.reference.score is not None:
            score = _numeric_drift(
                SCORE_COLUMN,
                self.reference.score.quantiles,
                self.score.numbers,
                psi_warn,
                psi_alert,
            )
            score = _few_rows(_as_score(score), min_rows)
            histogram = _score_histogram(self.reference.score, self.score)
        features = {name: _few_rows(drift, min_rows) for name, drift in features.items()}
        return DriftResult(self.rows, features, score, histogram, psi_warn, psi_alert)


def _few_rows(drift: FeatureDrift, min_rows: int) -> FeatureDrift:
    """``drift`` marked ``few_rows`` when it was measured on fewer than ``min_rows`` rows."""
    if 0 < drift.rows < min_rows and drift.status != "no_data":
        return replace(drift, status="few_rows")
    return drift


def _feature_columns(batch: pa.RecordBatch) -> dict[str, pa.Array]:
    """Feature name -> column, from ``features.<name>`` columns or a ``features`` struct."""
    columns: dict[str, pa.Array] = {}
    names = batch.schema.names
    if "features" in names:
        struct = batch.column("features")
        if pa.types.is_struct(struct.type):
            fields = [struct.type.field(i).name for i in range(struct.type.num_fields)]
            columns.update(zip(fields, struct.flatten(), strict=True))
    for position, name in enumerate(names):
        if name.startswith(FEATURE_PREFIX):
            columns[name.removeprefix(FEATURE_PREFIX)] = batch.column(position)
    return columns


def _numeric_drift(
    name: str, reference: NumericReference, counts: NumericCounts, warn: float, alert: float
) -> FeatureDrift:
    reference_counts = np.asarray(reference.counts, dtype=np.int64)
    values = int(counts.counts.sum())
    shares = counts.counts / values if values else np.zeros(len(counts.counts))
    has_data = values > 0 and reference_counts.sum() > 0
    psi = compute_psi(reference_counts, counts.counts) if has_data else None
    wasserstein = None
    if has_data and reference.std and len(reference.sums) == len(reference_counts):
        means = _reference_means(reference)
        distance = compute_wasserstein(
            reference_counts, means, counts.counts, counts.bin_means(means)
        )
        wasserstein = distance / reference.std
    return FeatureDrift(
        name=name,
        kind="numeric",
        rows=counts.rows,
        status=drift_status(psi, warn, alert),
        null_rate=counts.nulls / counts.rows if counts.rows else None,
        reference_null_rate=reference.null_rate,
        psi=psi,
        ks=compute_ks(reference_counts, counts.counts) if has_data else None,
        wasserstein=wasserstein,
        jensen_shannon=compute_jensen_shannon(reference_counts, counts.counts)
        if has_data
        else None,
        mean=counts.total / values if values else None,
        reference_mean=reference.mean,
        cuts=tuple(reference.cuts),
        shares=tuple(shares.tolist()),
        reference_shares=tuple(_shares(reference_counts)),
    )


def _reference_means(reference: NumericReference) -> np.ndarray:
    """The mean of each reference bin; an empty one's middle (outer bins end at min and max)."""
    counts = np.asarray(reference.counts, dtype=np.float64)
    edges = np.asarray([reference.minimum, *reference.cuts, reference.maximum], dtype=np.float64)
    middles = (edges[:-1] + edges[1:]) / 2
    sums = np.asarray(reference.sums, dtype=np.float64)
    means: np.ndarray = np.where(counts > 0, sums / np.maximum(counts, 1), middles)
    return means


def _category_drift(
    name: str, reference: CategoricalReference, counts: CategoryCounts, warn: float, alert: float
) -> FeatureDrift:
    # The reference has no unseen values; its "other" bucket and the unseen one close the bins.
    reference_counts = np.asarray([*reference.counts, reference.other, 0], dtype=np.int64)
    values = int(counts.counts.sum())
    has_data = values > 0 and reference_counts.sum() > 0
    psi = compute_psi(reference_counts, counts.counts) if has_data else None
    shown = sorted(counts.unseen_names.items(), key=lambda item: (-item[1], item[0]))
    return FeatureDrift(
        name=name,
        kind=reference.kind,
        rows=counts.rows,
        status=drift_status(psi, warn, alert),
        null_rate=counts.nulls / counts.rows if counts.rows else None,
        reference_null_rate=reference.null_rate,
        psi=psi,
        jensen_shannon=compute_jensen_shannon(reference_counts, counts.counts)
        if has_data
        else None,
        chi2_pvalue=compute_chi2_pvalue(reference_counts, counts.counts) if has_data else None,
        unseen_share=int(counts.counts[-1]) / values if values else None,
        categories=(*reference.categories, "other", "unseen"),
        shares=tuple((counts.counts / values).tolist()) if values else (),
        reference_shares=tuple(_shares(reference_counts)),
        unseen_values=dict(shown[:_SHOWN_UNSEEN]),
    )


def _as_score(drift: FeatureDrift) -> FeatureDrift:
    """The score's drift, marked as such."""
    return FeatureDrift(**{**drift.__dict__, "kind": "score"})


def _score_histogram(reference: ScoreReference, counts: ScoreCounts) -> dict[str, list[float]]:
    """Shares of the reference and of the window on the equal-width score bins."""
    bins = len(reference.counts)
    return {
        "edges": np.linspace(0.0, 1.0, bins + 1).tolist(),
        "reference": _shares(np.asarray(reference.counts, dtype=np.int64)),
        "current": _shares(counts.fixed),
    }


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)
