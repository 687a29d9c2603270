"""Traffic over a window: predictions, the positive share, scores and latency, in fixed counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Latency bins: 0.05 ms to ~100 s, ten a decade, so percentiles are read to within ~12 %.
_LATENCY_EDGES = np.logspace(np.log10(0.05), 5, 64)


class TrafficCounts:
    """Rows, positive decisions, the score's sum and a latency histogram, merged by adding."""

    def __init__(self) -> None:
        self.rows = 0
        self.positives = 0
        self.score_sum = 0.0
        self.latency = np.zeros(len(_LATENCY_EDGES) + 1, dtype=np.int64)

    def add(self, batch: pa.RecordBatch) -> None:
        """Count a batch with ``probability``, ``positive`` and ``latency_ms`` columns."""
        names = batch.schema.names
        self.rows += batch.num_rows
        if "positive" in names:
            self.positives += int(pc.sum(batch.column("positive")).as_py() or 0)
        if "probability" in names:
            self.score_sum += float(pc.sum(batch.column("probability")).as_py() or 0.0)
        if "latency_ms" in names:
            latency = batch.column("latency_ms").drop_null().to_numpy(zero_copy_only=False)
            bins = np.searchsorted(_LATENCY_EDGES, latency, side="right")
            self.latency += np.bincount(bins, minlength=len(self.latency))

    def merge(self, other: TrafficCounts) -> None:
        """Add another window's counts."""
        self.rows += other.rows
        self.positives += other.positives
        self.score_sum += other.score_sum
        self.latency += other.latency

    def latency_quantile(self, share: float) -> float | None:
        """The latency (ms) below which ``share`` of the requests fell: a bin's upper edge."""
        total = int(self.latency.sum())
        if total == 0:
            return None
        index = int(np.searchsorted(np.cumsum(self.latency), share * total))
        edges = [*_LATENCY_EDGES.tolist(), float("inf")]
        upper = edges[min(index, len(edges) - 1)]
        return round(upper, 3) if np.isfinite(upper) else None

    def document(self) -> dict[str, Any]:
        """JSON-ready counts and rates."""
        rows = self.rows
        return {
            "rows": rows,
            "positives": self.positives,
            "positive_rate": self.positives / rows if rows else None,
            "mean_probability": self.score_sum / rows if rows else None,
            "latency_ms_p50": self.latency_quantile(0.5),
            "latency_ms_p95": self.latency_quantile(0.95),
            "latency_ms_p99": self.latency_quantile(0.99),
        }
