"""The hooks every prediction passes: ``authorize`` before, the prediction sink after.

``authorize(context, action, model)`` raises an ``AccessError`` to refuse; it runs before
any version is loaded or any body decoded. A ``PredictionSink`` receives each group of
decisions once, with the features they were made from; a sink that fails is logged and
does not fail the prediction, which has already been made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from tabops.serving.context import RequestContext

if TYPE_CHECKING:
    from tabops.model.predictor import Predictor
    from tabops.serving.decisions import Decisions

logger = logging.getLogger("tabops.serving")

PREDICT = "predict"
"""The action of every predict route and scoring job."""
READ = "read"
"""The action of routes that read models, versions, health detail and features."""
ADMIN = "admin"
"""The action of training, keys, the audit log and other callers' jobs."""

Authorizer = Callable[[RequestContext, str, str | None], None]
"""``(context, action, model name or None)``; sets ``context.caller`` or raises
``AccessError`` to refuse."""


def allow_everyone(context: RequestContext, action: str, model: str | None) -> None:
    """The default ``authorize``: every caller may do everything."""


@dataclass(slots=True)
class FeatureRows:
    """The inputs of a group of decisions, in whichever form the route decoded them.

    Exactly one of ``rows`` (tuples in ``names`` order), ``matrix`` (``[n, k]`` numbers, its
    columns in ``names`` order, NaN for a gap), ``records`` or ``frame`` is set. A matrix is
    kept as it is: a sink turns it into values off the serving thread, if ever.
    """

    names: Sequence[str]
    rows: Sequence[tuple[Any, ...]] | None = None
    records: Sequence[Mapping[str, Any]] | None = None
    frame: pd.DataFrame | None = None
    matrix: np.ndarray | None = None

    def columns(self) -> list[list[Any]] | None:
        """A matrix's columns as lists of values (None for a gap); None for other forms."""
        if self.matrix is None:
            return None
        columns: list[list[Any]] = self.matrix.T.tolist()
        if not np.isnan(self.matrix).any():
            return columns
        return [
            [None if value != value else value for value in column]  # NaN is not equal to itself
            for column in columns
        ]

    def to_records(self) -> list[dict[str, Any]]:
        """The inputs as one dict of feature values per decision."""
        lists = self.columns()
        if lists is not None:
            return [dict(zip(self.names, row, strict=True)) for row in zip(*lists, strict=True)]
        if self.rows is not None:
            return [dict(zip(self.names, row, strict=True)) for row in self.rows]
        if self.records is not None:
            return [{name: record.get(name) for name in self.names} for record in self.records]
        if self.frame is not None:
            columns = self.frame[list(self.names)].astype(object)
            return columns.where(columns.notna(), None).to_dict("records")  # type: ignore[return-value]  # str keys
        return []


@dataclass(slots=True)
class ServedPredictions:
    """What a sink receives: the request, the version, its decisions and their inputs."""

    context: RequestContext
    predictor: Predictor
    decisions: Decisions
    features: FeatureRows


class PredictionSink(Protocol):
    """Where served predictions go (a prediction log, a stream, a test's list)."""

    def record(self, served: ServedPredictions) -> None:
        """Take one group of decisions; called once per group, on the serving thread."""
        ...


@dataclass(frozen=True)
class Hooks:
    """The hooks a serving core runs for every route."""

    authorize: Authorizer = allow_everyone
    sink: PredictionSink | None = None

    def record(self, served: ServedPredictions) -> None:
        """Hand decisions to the sink; a failing sink is logged, never raised."""
        if self.sink is None:
            return
        try:
            self.sink.record(served)
        except Exception:  # the prediction stands; losing a log entry must be visible
            logger.exception("the prediction sink failed for request %s", served.context.request_id)
