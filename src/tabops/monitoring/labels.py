"""Late labels (feedback): the label table, labels matched to logged predictions, read back.

A label names its prediction by id, or by entity and event time: then it is the model's
latest logged prediction for that entity at or before the event time, no more than
``ENTITY_LOOKBACK`` earlier. Each prediction keeps one label, the last one given: within
one call the last occurrence of an id wins, and a later call replaces an earlier label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from tabops.database import metadata
from tabops.errors import InvalidRequestError, ModelNotFoundError, Problem
from tabops.monitoring.feedback import (
    CHUNK_ROWS,
    LabelItem,
    LabelReport,
    canonical,
    class_forms,
    file_format_of,
    given_text,
    label_problem,
    read_label_file,
)
from tabops.monitoring.matching import LoggedMatch, match_items
from tabops.monitoring.segments import LogReader
from tabops.registry.versions import ModelRegistry

ENTITY_LOOKBACK = timedelta(days=30)
"""How far before its event time a label by entity looks for the prediction it judges."""

_WRITE_ROWS = 5_000
_READ_ROWS = 10_000

prediction_labels_table = Table(
    "prediction_labels",
    metadata,
    Column("prediction_id", String(32), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("predicted_at", DateTime(timezone=True), nullable=False),
    Column("probability", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("predicted_positive", Boolean, nullable=False),
    Column("label", Text, nullable=False),  # as the caller gave it
    Column("positive", Boolean, nullable=False),  # the label is the version's positive class
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source", String(200), nullable=False),
    Index("ix_prediction_labels_model_time", "model", "predicted_at"),
)
_INSERTS: dict[str, Callable[..., Any]] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclass(frozen=True)
class LabeledPredictions:
    """Labeled predictions as columns, oldest prediction first."""

    probability: np.ndarray
    outcome: np.ndarray
    predicted_positive: np.ndarray
    predicted_at: np.ndarray
    version: np.ndarray
    threshold: np.ndarray

    def __len__(self) -> int:
        return len(self.probability)


class LabelStore:
    """Labels of logged predictions in the metadata database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, registry: ModelRegistry) -> None:
        self.engine = engine
        self.registry = registry
        self._insert = _INSERTS[engine.dialect.name]
        metadata.create_all(engine, tables=[prediction_labels_table])

    def add(
        self,
        model: str,
        items: Sequence[LabelItem],
        log: LogReader,
        *,
        source: str = "api",
        strict: bool = False,
        where: str = "labels",
        first_index: int = 0,
    ) -> LabelReport:
        """Store the labels of ``model``'s logged predictions; the last label of an id wins.

        Args:
            model: The model whose predictions are labeled.
            items: The labels; a label must be one of the version's two classes, by value
                (as given or as text) or by class name.
            log: The prediction log the ids and entities are looked up in.
            source: Where the labels came from (stored with each).
            strict: Store nothing and raise when any label is invalid.
            where: The name of the list in problems' fields (``labels[3].label``).
            first_index: The index of ``items[0]`` in that list (for a chunk of a file).

        Raises:
            ModelNotFoundError: no version of ``model`` is registered.
            InvalidRequestError: ``strict`` and a label is invalid (every problem named).
        """
        self.check_model(model)
        report = LabelReport()
        matches = match_items(log, model, items, report, ENTITY_LOOKBACK, (where, first_index))
        rows = self._rows(model, items, matches, report, source, where, first_index)
        if strict and report.invalid_count:
            raise InvalidRequestError(
                f"{report.invalid_count} of {len(items)} labels are invalid", report.problems
            )
        self._write(rows, report)
        return report

    def add_file(
        self,
        model: str,
        path: Path,
        log: LogReader,
        source: str = "file",
        chunk_rows: int = CHUNK_ROWS,
    ) -> LabelReport:
        """Store the labels of a CSV or Parquet file, chunk by chunk, as ``add`` would.

        Invalid rows (``rows[i]``, counted from 0 after the header) are reported and the
        others stored; each chunk is stored in a transaction of its own.

        Raises:
            ModelNotFoundError: no version of ``model`` is registered.
            DataError: the file cannot be read, or lacks a column.
        """
        self.check_model(model)
        report, first_index = LabelReport(), 0
        for chunk in read_label_file(path, file_format_of(path), chunk_rows):
            chunk_report = self.add(
                model, chunk, log, source=source, where="rows", first_index=first_index
            )
            report.merge(chunk_report)
            first_index += len(chunk)
        return report

    def check_model(self, model: str) -> None:
        """Raise ``ModelNotFoundError`` unless ``model`` has a registered version."""
        if not self.registry.list_versions(model):
            raise ModelNotFoundError(f"model {model!r} not found", [Problem("name", _NO_MODEL)])

    def labeled(
        self,
        model: str,
        version: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> LabeledPredictions:
        """The labeled predictions of ``model`` made in [since, until), read in chunks."""
        c = prediction_labels_table.c
        query = select(
            c.probability, c.positive, c.predicted_positive, c.predicted_at, c.version, c.threshold
        ).where(c.model == model)
        if version is not None:
            query = query.where(c.version == version)
        if since is not None:
            query = query.where(c.predicted_at >= since)
        if until is not None:
            query = query.where(c.predicted_at < until)
        chunks: list[LabeledPredictions] = []
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=_READ_ROWS).execute(
                query.order_by(c.predicted_at)
            )
            chunks.extend(_columns(partition) for partition in result.partitions())
        return LabeledPredictions(
            *(
                np.concatenate([getattr(chunk, name) for chunk in chunks])
                if chunks
                else getattr(_columns([]), name)
                for name in LabeledPredictions.__dataclass_fields__
            )
        )

    def _rows(
        self,
        model: str,
        items: Sequence[LabelItem],
        matches: dict[int, LoggedMatch],
        report: LabelReport,
        source: str,
        where: str,
        first_index: int,
    ) -> list[dict[str, Any]]:
        """One row per prediction (its last valid label), counting replaced ones."""
        positive_of = _class_reader(self.registry, model)
        received = datetime.now(UTC)
        rows: dict[str, dict[str, Any]] = {}
        for index in sorted(matches):
            match, given = matches[index], items[index].label
            ref = match.ref
            positive = positive_of(ref.version, given)
            if positive is None:
                report.add_problem(
                    Problem(f"{where}[{first_index + index}].label", label_problem(given))
                )
                continue
            report.accepted += 1
            if rows.pop(match.prediction_id, None) is not None:
                report.replaced += 1
            rows[match.prediction_id] = {
                "prediction_id": match.prediction_id,
                "model": model,
                "version": ref.version,
                "predicted_at": ref.timestamp,
                "probability": ref.probability,
                "threshold": ref.threshold,
                "predicted_positive": ref.positive,
                "label": given_text(given),
                "positive": positive,
                "received_at": received,
                "source": source[:200],
            }
        return list(rows.values())

    def _write(self, rows: list[dict[str, Any]], report: LabelReport) -> None:
        """Upsert ``rows`` in one transaction, counting the ones that held a label."""
        c = prediction_labels_table.c
        statement = self._insert(prediction_labels_table)
        statement = statement.on_conflict_do_update(
            index_elements=[c.prediction_id],
            set_={
                name: statement.excluded[name]
                for name in ("label", "positive", "received_at", "source")
            },
        )
        with self.engine.begin() as connection:
            for batch in _batches(rows, _WRITE_ROWS):
                ids = [row["prediction_id"] for row in batch]
                stored = select(c.prediction_id).where(c.prediction_id.in_(ids))
                report.replaced += len(connection.execute(stored).all())
                connection.execute(statement, batch)


_NO_MODEL = "no model of that name is registered"


def _class_reader(registry: ModelRegistry, model: str) -> Callable[[int, Any], bool | None]:
    """``(version, label) -> whether it is the positive class``, None for no class.

    Each version's classes are read once, and each distinct label matched once: a file
    of 100,000 labels holds a handful of distinct ones.
    """
    forms: dict[int, dict[str, bool]] = {}
    seen: dict[tuple[int, type, Any], bool | None] = {}

    def positive_of(version: int, label: Any) -> bool | None:
        if version not in forms:
            forms[version] = class_forms(registry.get_version(model, version).manifest.classes)
        key = (version, type(label), label)
        try:
            if key not in seen:
                seen[key] = forms[version].get(canonical(label))
        except TypeError:  # unhashable: a list or a map from a Parquet column
            return forms[version].get(canonical(label))
        return seen[key]

    return positive_of


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _columns(rows: Sequence[Any]) -> LabeledPredictions:
    listed = [tuple(row) for row in rows]
    # Stored in UTC: naive from SQLite, in the session's zone from PostgreSQL.
    moments = pd.to_datetime([row[3] for row in listed], utc=True).tz_convert(None)
    return LabeledPredictions(
        probability=np.array([row[0] for row in listed], dtype=np.float64),
        outcome=np.array([row[1] for row in listed], dtype=bool),
        predicted_positive=np.array([row[2] for row in listed], dtype=bool),
        predicted_at=moments.to_numpy().astype("datetime64[us]"),
        version=np.array([row[4] for row in listed], dtype=np.int64),
        threshold=np.array([row[5] for row in listed], dtype=np.float64),
    )
