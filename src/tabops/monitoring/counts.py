"""Fixed-size counters of Arrow columns on reference bins: what drift accumulates.

Each counter's state is a few numbers and one count array sized by the reference, plus, for
categories, a dict of unseen names capped at ``MAX_UNSEEN_NAMES``: however many rows pass,
memory stays the same. Counters of the same reference merge by adding.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tabops.errors import InvalidInputError, Problem
from tabops.model.reference_stats import SCORE_BINS, CategoricalReference, score_bins

MAX_UNSEEN_NAMES = 100
"""Unseen category names remembered per feature (all are counted, only these are named)."""


class NumericCounts:
    """Non-null values per reference bin, nulls, and sums, minimum and maximum.

    Bins are counted as "values at or above each cut" (one vectorised comparison per cut,
    several times faster than a binary search per value); ``counts`` turns that into bins.
    The sums of the two open outer bins are kept, for the binned Wasserstein distance.
    """

    def __init__(self, cuts: list[float]) -> None:
        self.cuts = np.asarray(cuts, dtype=np.float64)
        self.at_least = np.zeros(len(cuts), dtype=np.int64)
        self.values = 0
        self.rows = 0
        self.nulls = 0
        self.total = 0.0
        self.low_sum = 0.0
        self.high_sum = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf

    @property
    def counts(self) -> np.ndarray:
        """Non-null values per bin (bin ``i`` spans ``cuts[i-1]`` to ``cuts[i]``)."""
        bounds = np.concatenate([[self.values], self.at_least, [0]])
        counts: np.ndarray = bounds[:-1] - bounds[1:]
        return counts

    def add(self, column: pa.Array, name: str) -> None:
        """Count one column (nulls and NaN are nulls).

        Raises:
            InvalidInputError: the column does not hold numbers.
        """
        self.add_values(_as_numbers(column, name))

    def add_values(self, values: np.ndarray) -> np.ndarray:
        """Count float64 values (NaN is null); the values that were not null."""
        self.rows += len(values)
        missing = np.isnan(values)
        nulls = int(np.count_nonzero(missing))
        if nulls:
            self.nulls += nulls
            values = values[~missing]
        if not len(values):
            return values
        above = np.empty(len(values), dtype=bool)
        last = len(self.cuts) - 1
        for position, cut in enumerate(self.cuts):
            np.greater_equal(values, cut, out=above)
            self.at_least[position] += np.count_nonzero(above)
            if position == 0:
                self.low_sum += float(values[~above].sum())
            if position == last:
                self.high_sum += float(values[above].sum())
        self.values += len(values)
        self.total += float(values.sum())
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))
        return values

    def bin_means(self, reference_means: np.ndarray) -> np.ndarray:
        """Where each bin's values sit: the outer bins' own means, the inner ones' reference."""
        counts = self.counts
        means = reference_means.astype(np.float64, copy=True)
        if len(self.cuts) == 0:
            means[0] = self.total / self.values if self.values else means[0]
            return means
        if counts[0]:
            means[0] = self.low_sum / counts[0]
        if counts[-1]:
            means[-1] = self.high_sum / counts[-1]
        return means

    def merge(self, other: NumericCounts) -> None:
        """Add another counter of the same bins."""
        self.at_least += other.at_least
        self.values += other.values
        self.rows += other.rows
        self.nulls += other.nulls
        self.total += other.total
        self.low_sum += other.low_sum
        self.high_sum += other.high_sum
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)


class ScoreCounts:
    """Probabilities on the reference score quantile bins and on the equal-width bins."""

    def __init__(self, cuts: list[float]) -> None:
        self.numbers = NumericCounts(cuts)
        self.fixed = np.zeros(SCORE_BINS, dtype=np.int64)

    def add(self, column: pa.Array, name: str) -> None:
        """Count one column of probabilities.

        Raises:
            InvalidInputError: the column does not hold numbers.
        """
        present = self.numbers.add_values(_as_numbers(column, name))
        self.fixed += np.bincount(score_bins(present), minlength=SCORE_BINS)

    def merge(self, other: ScoreCounts) -> None:
        """Add another counter of the same bins."""
        self.numbers.merge(other.numbers)
        self.fixed += other.fixed


class CategoryCounts:
    """Rows per reference category, then ``other`` (rare in training), then ``unseen``."""

    def __init__(self, reference: CategoricalReference, name: str) -> None:
        self.name = name
        other = len(reference.categories)
        self.index = {value: position for position, value in enumerate(reference.categories)}
        self.index.update(dict.fromkeys(reference.other_values, other))
        self.unseen = other + 1
        self.counts = np.zeros(other + 2, dtype=np.int64)
        self.rows = 0
        self.nulls = 0
        self.unseen_names: dict[str, int] = {}

    def add(self, column: pa.Array) -> None:
        """Count one column: strings, dictionary-encoded strings, booleans or numbers."""
        self.rows += len(column)
        kind = column.type
        if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
            # A flag, maybe logged as a number: any non-zero value is true, as in training.
            present = _as_numbers(column, self.name)
            present = present[~np.isnan(present)]
            trues = int(np.count_nonzero(present))
            self.nulls += len(column) - len(present)
            self._count("true", trues)
            self._count("false", len(present) - trues)
            return
        self.nulls += column.null_count
        if not (pa.types.is_dictionary(column.type) or pa.types.is_string(column.type)):
            column = column.cast(pa.string())
        frequencies = pc.value_counts(column)
        names = frequencies.field("values").to_pylist()
        counts = frequencies.field("counts").to_numpy()
        for value, count in zip(names, counts.tolist(), strict=True):
            if value is not None:
                self._count(str(value), count)

    def _count(self, value: str, count: int) -> None:
        if not count:
            return
        position = self.index.get(value)
        if position is not None:
            self.counts[position] += count
            return
        self.counts[self.unseen] += count
        if value in self.unseen_names or len(self.unseen_names) < MAX_UNSEEN_NAMES:
            self.unseen_names[value] = self.unseen_names.get(value, 0) + count

    def merge(self, other: CategoryCounts) -> None:
        """Add another counter of the same categories (unseen names stay capped)."""
        self.counts += other.counts
        self.rows += other.rows
        self.nulls += other.nulls
        for value, count in other.unseen_names.items():
            if value in self.unseen_names or len(self.unseen_names) < MAX_UNSEEN_NAMES:
                self.unseen_names[value] = self.unseen_names.get(value, 0) + count


def _as_numbers(column: pa.Array, name: str) -> np.ndarray:
    """A numeric column as float64, nulls as NaN.

    Raises:
        InvalidInputError: the column holds text or another non-numeric type.
    """
    kind = column.type
    if not (pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
        raise InvalidInputError(
            f"{name} holds {kind} values, not numbers", [Problem(name, f"{kind} is not numeric")]
        )
    if not pa.types.is_float64(kind):
        column = column.cast(pa.float64())
    values: np.ndarray = column.to_numpy(zero_copy_only=False)
    return values
