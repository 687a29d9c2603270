"""Labels as callers offer them: items, the class values they may name, files of them.

A label file is CSV or Parquet with the columns ``prediction_id,label`` or
``entity_id,event_time,label`` (both kinds may mix in one file); it is read in chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tabops.errors import BatchTooLargeError, DataError, Problem
from tabops.model.manifest import Classes

CHUNK_ROWS = 50_000
"""Rows of a label file read at a time."""
FILE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""File name suffixes of label files, and the format each is."""

_TEXT_COLUMNS = ("prediction_id", "entity_id", "label", "event_time")
_BOOLEAN_TWINS = {"0": "false", "1": "true", "false": "0", "true": "1"}
SHOWN_PROBLEMS = 100
"""Invalid labels and unknown ids a report lists (it counts them all)."""


@dataclass(frozen=True)
class LabelItem:
    """One label as offered: for a prediction id, or for an entity at an event time."""

    label: Any
    prediction_id: str | None = None
    entity_id: str | None = None
    event_time: datetime | None = None


@dataclass
class LabelReport:
    """What became of the labels offered.

    Attributes:
        accepted: labels stored (a repeated id counts each time).
        replaced: accepted labels that replaced an earlier one (an earlier call, or an
            earlier occurrence in this one).
        unknown_ids: the first ``SHOWN_PROBLEMS`` ids (or ``entity@time``) matching no
            logged prediction; ``unknown_count`` counts them all.
        problems: the first ``SHOWN_PROBLEMS`` invalid labels; ``invalid_count`` counts them.
    """

    accepted: int = 0
    replaced: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    unknown_count: int = 0
    problems: list[Problem] = field(default_factory=list)
    invalid_count: int = 0

    def merge(self, other: LabelReport) -> None:
        """Add the report of a further chunk of the same input."""
        self.accepted += other.accepted
        self.replaced += other.replaced
        self.unknown_ids = (self.unknown_ids + other.unknown_ids)[:SHOWN_PROBLEMS]
        self.unknown_count += other.unknown_count
        self.problems = (self.problems + other.problems)[:SHOWN_PROBLEMS]
        self.invalid_count += other.invalid_count

    def document(self) -> dict[str, Any]:
        """The report as plain JSON values."""
        return {
            "accepted": self.accepted,
            "replaced": self.replaced,
            "unknown_ids": self.unknown_ids,
            "unknown_count": self.unknown_count,
            "invalid_count": self.invalid_count,
            "problems": [{"field": p.field, "problem": p.problem} for p in self.problems],
        }

    def add_unknown(self, name: str) -> None:
        """Count a label whose prediction was not found, listing the first ones."""
        self.unknown_count += 1
        if len(self.unknown_ids) < SHOWN_PROBLEMS:
            self.unknown_ids.append(name)

    def add_problem(self, problem: Problem) -> None:
        """Count an invalid label, listing the first problems."""
        self.invalid_count += 1
        if len(self.problems) < SHOWN_PROBLEMS:
            self.problems.append(problem)


def class_forms(classes: Classes) -> dict[str, bool]:
    """Each accepted form of the two classes (``canonical``) -> whether it is the positive one.

    A class is named by its value, as given or as text (true and false stand for 1 and 0),
    or by its name; a value equal to the other class's name means the value.
    """
    forms: dict[str, bool] = {}
    for label, is_positive in ((classes.negative, False), (classes.positive, True)):
        if label.name is not None:
            forms[canonical(label.name)] = is_positive
    for label, is_positive in ((classes.negative, False), (classes.positive, True)):
        value = canonical(label.value)
        forms[value] = is_positive
        if value in _BOOLEAN_TWINS:  # a 0/1 target labeled false/true, and the reverse
            forms.setdefault(_BOOLEAN_TWINS[value], is_positive)
    return forms


def canonical(value: Any) -> str:
    """One text per class value: 1, 1.0 and "1" are one value; true and "True" another."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return canonical(number) if np.isfinite(number) else text


def given_text(value: Any) -> str:
    """A label as stored: its text as given (JSON booleans as ``true``/``false``)."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def label_problem(value: Any) -> str:
    """What is wrong with a label that names no class."""
    if value is None:
        return "required: one of the model's classes"
    shown = given_text(value)
    shown = shown if len(shown) <= 40 else shown[:40] + "..."
    return f"{shown!r} is not one of the model's classes (a class value or name)"


def file_format_of(path: Path) -> str:
    """The format of a label file from its suffix.

    Raises:
        DataError: neither .csv nor .parquet.
    """
    found = FILE_FORMATS.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"cannot tell the format of {path.name!r}: name it .csv or .parquet",
            [Problem("file", "expected a .csv or .parquet file")],
        )
    return found


def read_label_file(
    path: Path, file_format: str, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[LabelItem]]:
    """The labels of a CSV or Parquet file, ``chunk_rows`` at a time, in file order.

    Raises:
        DataError: the file does not parse, or lacks the ``label`` column or both a
            ``prediction_id`` and an ``entity_id``/``event_time`` column.
    """
    try:
        pending: list[LabelItem] = []
        for batch in _batches(path, file_format):
            pending.extend(_items(batch))
            while len(pending) >= chunk_rows:
                yield pending[:chunk_rows]
                pending = pending[chunk_rows:]
        if pending:
            yield pending
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(
            f"cannot read the label file {path.name!r} as {file_format}: {exc}",
            [Problem("file", f"not a readable {file_format} file")],
        ) from exc


def read_labels(path: Path, file_format: str, max_rows: int) -> list[LabelItem]:
    """Every label of a file of at most ``max_rows`` rows.

    Raises:
        BatchTooLargeError: the file has more rows.
        DataError: as ``read_label_file``.
    """
    items: list[LabelItem] = []
    for chunk in read_label_file(path, file_format):
        items.extend(chunk)
        if len(items) > max_rows:
            raise BatchTooLargeError(
                f"the file holds more than {max_rows} labels; send it in parts",
                [Problem("file", f"at most {max_rows} rows")],
            )
    return items


def _batches(path: Path, file_format: str) -> Iterator[pa.RecordBatch]:
    if file_format == "parquet":
        source = pq.ParquetFile(path)
        _check_columns(source.schema_arrow.names)
        wanted = [name for name in _TEXT_COLUMNS if name in source.schema_arrow.names]
        yield from source.iter_batches(batch_size=CHUNK_ROWS, columns=wanted)
        return
    # Every column as text: the label is matched to the classes as text, the time parsed here.
    types = dict.fromkeys(_TEXT_COLUMNS, pa.string())
    reader = pa_csv.open_csv(path, convert_options=pa_csv.ConvertOptions(column_types=types))
    _check_columns(reader.schema.names)
    yield from reader


def _check_columns(names: list[str]) -> None:
    has_ids = "prediction_id" in names
    has_entities = "entity_id" in names and "event_time" in names
    missing = []
    if "label" not in names:
        missing.append(Problem("label", "column required"))
    if not has_ids and not has_entities:
        missing.append(Problem("prediction_id", "column required (or entity_id and event_time)"))
    if missing:
        raise DataError(
            "the label file lacks columns: " + ", ".join(p.field for p in missing), missing
        )


def _items(batch: pa.RecordBatch) -> list[LabelItem]:
    names = batch.schema.names
    rows = batch.num_rows
    labels = batch.column("label").to_pylist()
    ids = batch.column("prediction_id").to_pylist() if "prediction_id" in names else [None] * rows
    entities: list[Any] = [None] * rows
    moments: list[datetime | None] = [None] * rows
    if "entity_id" in names and "event_time" in names:
        entities = [None if e is None else str(e) for e in batch.column("entity_id").to_pylist()]
        moments = _times(batch.column("event_time"))
    return [
        LabelItem(label, None if i is None else str(i), e, t)
        for label, i, e, t in zip(labels, ids, entities, moments, strict=True)
    ]


def _times(column: pa.Array) -> list[datetime | None]:
    """Event times in UTC (a time without a zone is UTC); None where missing or unreadable."""
    parsed = pd.to_datetime(
        pd.Series(column.to_pylist(), dtype=object), utc=True, errors="coerce", format="ISO8601"
    )
    return [
        None if pd.isna(moment) else moment.to_pydatetime().astimezone(UTC) for moment in parsed
    ]
