"""Decisions: probabilities turned into labels at a version's threshold, in one place.

Rows scored together share one ``Decisions``: columns (probabilities, a positive mask)
rather than an object per row, so a batch of 10,000 costs no more than its answer. Every
prediction id is the group's 24-hex-digit id (unique across processes) followed by the
row's index as 8 hex digits, so the ids of a batch are unique and sort in row order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tabops.model.predictor import Predictor
from tabops.serving.context import RequestContext, new_id

_SUFFIXES: list[str] = [f"{index:08x}" for index in range(1_024)]


@dataclass(slots=True)
class Decision:
    """The decision for one row."""

    prediction_id: str
    request_id: str
    model: str
    version: int
    probability: float
    label: Any
    class_name: str
    threshold: float
    timestamp: str


class Decisions:
    """The decisions for rows scored together, held as columns.

    Args:
        predictor: the version that scored them.
        probabilities: positive-class probabilities, one per row.
        context: the request they answer.
        id_prefix: the prefix of their prediction ids (random when None), and
        first_index: the index of the first row, when a group continues another.
    """

    __slots__ = (
        "context",
        "first_index",
        "id_prefix",
        "is_positive",
        "model",
        "negative",
        "positive",
        "probabilities",
        "threshold",
        "timestamp",
        "version",
    )

    def __init__(
        self,
        predictor: Predictor,
        probabilities: Sequence[float] | np.ndarray,
        context: RequestContext,
        *,
        id_prefix: str | None = None,
        first_index: int = 0,
    ) -> None:
        self.context = context
        # What every decision of a version shares, gathered once per version (this runs on
        # every request).
        self.model, self.version, self.threshold, self.positive, self.negative = (
            predictor.decision_basis
        )
        if isinstance(probabilities, np.ndarray):
            self.probabilities: list[float] = probabilities.tolist()
            self.is_positive: list[bool] = predictor.decide_positive(probabilities)
        else:
            values = probabilities if type(probabilities) is list else list(probabilities)
            self.probabilities = values
            self.is_positive = predictor.decide_positive(values)
        self.timestamp = datetime.now(UTC).isoformat()
        self.id_prefix = id_prefix or new_id()
        self.first_index = first_index

    def __len__(self) -> int:
        return len(self.probabilities)

    def __getitem__(self, index: int) -> Decision:
        label, class_name = self.positive if self.is_positive[index] else self.negative
        return Decision(
            prediction_id=self.id_prefix + row_suffix(self.first_index + index),
            request_id=self.context.request_id,
            model=self.model,
            version=self.version,
            probability=self.probabilities[index],
            label=label,
            class_name=class_name,
            threshold=self.threshold,
            timestamp=self.timestamp,
        )

    def __iter__(self) -> Iterator[Decision]:
        return (self[index] for index in range(len(self)))

    @property
    def positives(self) -> int:
        """How many rows were decided positive."""
        return sum(self.is_positive)

    def head(self) -> dict[str, Any]:
        """What the rows share: model, version, threshold and time (a batch answer's head)."""
        return {
            "model": self.model,
            "version": self.version,
            "threshold": self.threshold,
            "timestamp": self.timestamp,
        }

    def items(self, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        """Rows ``start`` to ``stop`` as plain dicts: id, label, class name, probability."""
        stop = len(self) if stop is None else min(stop, len(self))
        prefix = self.id_prefix
        positive_label, positive_name = self.positive
        negative_label, negative_name = self.negative
        first = self.first_index
        suffixes = prediction_suffixes(first + stop)[first + start : first + stop]
        flags = self.is_positive[start:stop]
        return [
            {
                "prediction_id": prefix + suffix,
                "label": positive_label if positive else negative_label,
                "class_name": positive_name if positive else negative_name,
                "probability": probability,
            }
            for suffix, positive, probability in zip(
                suffixes, flags, self.probabilities[start:stop], strict=True
            )
        ]

    def label_array(self) -> np.ndarray:
        """The labels as an array (for frames)."""
        labels: np.ndarray = np.where(self.is_positive, self.positive[0], self.negative[0])
        return labels

    def class_name_array(self) -> np.ndarray:
        """The class names as an array (for frames)."""
        return np.where(self.is_positive, self.positive[1], self.negative[1])


def row_suffix(index: int) -> str:
    """One row index as the 8 hex digits ending its prediction id."""
    return _SUFFIXES[index] if index < len(_SUFFIXES) else prediction_suffixes(index + 1)[index]


def prediction_suffixes(stop: int) -> list[str]:
    """Row indexes as 8 hex digits, formatted once per process (halves building an answer)."""
    if len(_SUFFIXES) < stop:
        _SUFFIXES.extend(f"{index:08x}" for index in range(len(_SUFFIXES), stop))
    return _SUFFIXES
