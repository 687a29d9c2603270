"""Reference statistics of a version: the fixed bins drift is measured on, and what filled them.

Built once from the training table (every training row, not a sample) and stored with the
version as ``reference_stats.json``; a drift check then only counts live values into these
bins and never reads training data again. Numbers get 10 quantile bins whose outer edges are
-inf and +inf (stored as the inner ``cuts`` only, since JSON has no infinity), categories the
50 most frequent values plus an ``other`` bucket, booleans the two values ``true``/``false``,
and the score (positive-class probability) 20 equal-width bins on [0, 1] plus quantile bins.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tabops.errors import ArtifactIntegrityError
from tabops.schema import FeatureSpec, Kind

STATS_FORMAT = 1
"""The reference statistics format this release writes and the newest it reads."""
NUMERIC_BINS = 10
SCORE_BINS = 20
MAX_CATEGORIES = 50
# Names of the rarer categories kept (their counts go to ``other``) so that a value seen in
# training is not reported as unseen; beyond this many, a rare value may be.
MAX_OTHER_NAMES = 1_000
BOOLEAN_CATEGORIES = ("false", "true")


class _Stats(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericReference(_Stats):
    """One number's distribution on its quantile bins.

    Bin ``i`` holds ``cuts[i-1] <= x < cuts[i]``: bin 0 everything below ``cuts[0]``, the
    last bin everything from ``cuts[-1]`` up, so every value falls in a bin.
    """

    kind: Literal["numeric"] = "numeric"
    cuts: list[float]
    counts: list[int]
    sums: list[float] = Field(default_factory=list, description="Sum of the values per bin.")
    rows: int
    nulls: int
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None

    @property
    def null_rate(self) -> float:
        """Share of rows without a value."""
        return self.nulls / self.rows if self.rows else 0.0


class CategoricalReference(_Stats):
    """One category's (or boolean's) frequencies: the most frequent values and the rest."""

    kind: Literal["categorical", "boolean"] = "categorical"
    categories: list[str]
    counts: list[int]
    other: int = 0
    other_values: list[str] = Field(default_factory=list)
    rows: int
    nulls: int

    @property
    def null_rate(self) -> float:
        """Share of rows without a value."""
        return self.nulls / self.rows if self.rows else 0.0


FeatureReference = Annotated[NumericReference | CategoricalReference, Field(discriminator="kind")]


class ScoreReference(_Stats):
    """The model's positive-class probabilities on the rows named by ``source``."""

    source: Literal["test", "reference_sample"]
    counts: list[int] = Field(description="Rows per equal-width bin of [0, 1] (SCORE_BINS).")
    quantiles: NumericReference


class ReferenceStats(_Stats):
    """Everything drift and performance checks compare a window of live traffic with."""

    format: int = STATS_FORMAT
    source: Literal["training", "reference_sample"] = Field(
        description="Rows the feature statistics describe: every training row, or the "
        "stored sample of them (versions registered without statistics)."
    )
    rows: int
    features: dict[str, FeatureReference]
    score: ScoreReference | None = None
    threshold: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    intervals: dict[str, list[float]] = Field(default_factory=dict)
    split_rows: dict[str, int] = Field(default_factory=dict)
    built_from: str | None = Field(
        default=None, description="sha256 of the reference sample these were built from."
    )

    def to_json(self) -> bytes:
        """The statistics as stored: compact JSON."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str, where: str = "reference statistics") -> ReferenceStats:
        """Read stored statistics.

        Raises:
            ArtifactIntegrityError: not JSON, written by a newer tabops, or malformed.
        """
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactIntegrityError(f"{where} is not valid JSON: {exc}") from exc
        found = document.get("format") if isinstance(document, dict) else None
        if not isinstance(found, int) or found > STATS_FORMAT:
            raise ArtifactIntegrityError(
                f"{where} has format {found!r}; this tabops reads formats up to {STATS_FORMAT}"
            )
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            raise ArtifactIntegrityError(f"{where} is malformed: {exc.errors()[0]['msg']}") from exc


def build_reference_stats(
    features: pd.DataFrame,
    spec: FeatureSpec,
    scores: np.ndarray | None = None,
    *,
    source: Literal["training", "reference_sample"] = "training",
    score_source: Literal["test", "reference_sample"] = "test",
    threshold: float | None = None,
    metrics: dict[str, float] | None = None,
    intervals: dict[str, list[float]] | None = None,
    split_rows: dict[str, int] | None = None,
    built_from: str | None = None,
) -> ReferenceStats:
    """Describe a version's training rows and scores.

    Args:
        features: The feature columns as ``coerce_frame`` gives them (numbers and booleans
            as float64, categories as strings or None).
        spec: The version's feature spec; its features are described in order.
        scores: Positive-class probabilities of the rows named by ``score_source``.
        source: Which rows ``features`` holds.
        score_source: Which rows were scored.
        threshold: The version's decision threshold.
        metrics: Test metrics, as in the manifest.
        intervals: Their bootstrap intervals.
        split_rows: Rows per split.
        built_from: The sha256 of the file the rows came from, when a stored sample.
    """
    described: dict[str, NumericReference | CategoricalReference] = {}
    for column in spec.features:
        series = features[column.name]
        if column.kind is Kind.CATEGORICAL:
            described[column.name] = describe_categories(series)
        elif column.kind is Kind.BOOLEAN:
            described[column.name] = describe_booleans(series)
        else:
            described[column.name] = describe_numbers(series.to_numpy(dtype="float64"))
    score = None
    if scores is not None:
        values = np.asarray(scores, dtype="float64")
        values = values[np.isfinite(values)]
        counts = np.bincount(score_bins(values), minlength=SCORE_BINS)
        score = ScoreReference(
            source=score_source, counts=counts.tolist(), quantiles=describe_numbers(values)
        )
    return ReferenceStats(
        source=source,
        rows=len(features),
        features=described,
        score=score,
        threshold=threshold,
        metrics=dict(metrics or {}),
        intervals={name: list(bounds) for name, bounds in (intervals or {}).items()},
        split_rows=dict(split_rows or {}),
        built_from=built_from,
    )


def describe_numbers(values: np.ndarray) -> NumericReference:
    """Quantile bins (deduplicated cuts, open outer bins) and moments of the finite values."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return NumericReference(
            cuts=[], counts=[0], sums=[0.0], rows=len(values), nulls=len(values)
        )
    levels = np.linspace(0.0, 1.0, NUMERIC_BINS + 1)[1:-1]
    cuts = np.unique(np.quantile(finite, levels))
    bins = np.searchsorted(cuts, finite, side="right")
    counts = np.bincount(bins, minlength=len(cuts) + 1)
    sums = np.bincount(bins, weights=finite, minlength=len(cuts) + 1)
    return NumericReference(
        cuts=cuts.tolist(),
        counts=counts.tolist(),
        sums=sums.tolist(),
        rows=len(values),
        nulls=len(values) - len(finite),
        minimum=float(finite.min()),
        maximum=float(finite.max()),
        mean=_finite(float(finite.mean())),
        std=_finite(float(finite.std())),
    )


def describe_categories(values: pd.Series) -> CategoricalReference:
    """The most frequent values (most first), the rest in ``other``, and the null count."""
    present = values.dropna().astype(str)
    frequencies = present.value_counts(sort=True)
    top = frequencies.iloc[:MAX_CATEGORIES]
    rest = frequencies.iloc[MAX_CATEGORIES:]
    return CategoricalReference(
        categories=[str(name) for name in top.index],
        counts=[int(count) for count in top.to_numpy()],
        other=int(rest.sum()),
        other_values=[str(name) for name in rest.index[:MAX_OTHER_NAMES]],
        rows=len(values),
        nulls=len(values) - len(present),
    )


def describe_booleans(values: pd.Series) -> CategoricalReference:
    """A flag's ``false``/``true`` counts (any non-zero number is true)."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    present = numbers[~np.isnan(numbers)]
    trues = int(np.count_nonzero(present))
    return CategoricalReference(
        kind="boolean",
        categories=list(BOOLEAN_CATEGORIES),
        counts=[len(present) - trues, trues],
        rows=len(values),
        nulls=len(values) - len(present),
    )


def score_bins(probabilities: np.ndarray) -> np.ndarray:
    """The equal-width score bin of each probability (1.0 falls in the last bin)."""
    scaled = np.nan_to_num(probabilities * SCORE_BINS, nan=0.0)
    bins: np.ndarray = np.clip(scaled, 0, SCORE_BINS - 1).astype(np.intp)
    return bins


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
