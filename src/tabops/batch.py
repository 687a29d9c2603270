"""Scoring a file (CSV or Parquet) of any size, chunk by chunk, written atomically.

The input is read in chunks (pandas' chunked CSV reader, pyarrow's Parquet batches), so
memory follows the chunk size, not the file. Each chunk is checked, its valid rows scored in
one call, and appended to a temp file that is renamed into place at the end. A row that
breaks the feature spec is kept in the output with empty ``probability``, ``label`` and
``class_name``, and listed (row number, field, problem) in a side file next to the output,
``<output name>.errors.csv``; a missing column fails the whole file before anything is
written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tabops.dataset import read_table, table_format
from tabops.errors import DataError, Problem
from tabops.model.predictor import Predictor
from tabops.serving.context import RequestContext
from tabops.serving.core import ServingCore

CHUNK_ROWS = 100_000
ERRORS_SUFFIX = ".errors.csv"
_SHOWN = 20  # problems kept in the result for display; the side file has them all
Progress = Callable[[int], None]
"""Called with the number of rows scored so far."""


@dataclass
class BatchResult:
    """What a file scoring run produced."""

    rows: int
    positives: int
    output: Path
    invalid_rows: int = 0
    errors: Path | None = None
    problems: list[Problem] = field(default_factory=list)


def count_rows(source: Path) -> int | None:
    """Rows in a file when known without reading it (Parquet metadata), else None."""
    if table_format(source) == "parquet":
        return int(pq.ParquetFile(source).metadata.num_rows)
    return None


def errors_path(destination: Path) -> Path:
    """Where the rows that failed validation are listed."""
    return destination.with_name(destination.name + ERRORS_SUFFIX)


def score_file(
    predictor: Predictor,
    source: Path,
    destination: Path,
    *,
    core: ServingCore | None = None,
    context: RequestContext | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> BatchResult:
    """Append ``probability``, ``label`` and ``class_name`` to every row of a file.

    The output keeps the input columns; its format follows its suffix. Rows are decided
    by ``core`` (its hooks see every scored row) under ``context``; by a core without
    hooks when None.

    Raises:
        DataError: unreadable input, an unknown output format, or chunks whose extra columns
            change type in a Parquet output.
        InvalidInputError: a feature column is missing (nothing is written).
    """
    output_format = table_format(destination)
    if output_format == "sqlite":
        raise DataError("write predictions to .csv or .parquet")
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_beside(destination)
    side = temp_beside(errors_path(destination))
    core = core or ServingCore()
    context = context or RequestContext("file")
    result = BatchResult(rows=0, positives=0, output=destination)
    writer: pq.ParquetWriter | None = None
    csv_handle: BinaryIO | None = None
    try:
        csv_handle = temp.open("wb") if output_format == "csv" else None
        for chunk in _chunks(source, chunk_rows):
            scored, positives, invalid, problems = score_chunk(
                core, context, predictor, chunk, result.rows + 1
            )
            if csv_handle is not None:
                write_csv(csv_handle, scored, header=result.rows == 0)
            else:
                table = pa.Table.from_pandas(scored, preserve_index=False)
                writer = write_parquet(writer, temp, table)
            if problems:
                append_problems(side, problems, first=result.invalid_rows == 0)
                result.invalid_rows += invalid
                result.problems.extend(problems[: _SHOWN - len(result.problems)])
            result.rows += len(scored)
            result.positives += positives
            if progress is not None:
                progress(result.rows)
        if writer is not None:
            writer.close()
            writer = None
        if csv_handle is not None:
            csv_handle.close()
        if result.rows == 0:
            raise DataError(f"{source.name} holds no rows")
        publish_output(temp, side, destination, result)
    finally:
        if csv_handle is not None:
            csv_handle.close()
        if writer is not None:
            writer.close()
        temp.unlink(missing_ok=True)
        side.unlink(missing_ok=True)
    return result


def check_file(predictor: Predictor, source: Path, rows: int = 1_000) -> None:
    """Check that a file can be read and has every feature column, from its first rows.

    Raises:
        DataError: the file cannot be read or holds no rows.
        InvalidInputError: a feature column is missing.
    """
    head = next(_chunks(source, rows), None)
    if head is None or head.empty:
        raise DataError(f"{source.name} holds no rows")
    predictor.invalid_rows(head, 1)


def _chunks(source: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if not source.is_file():
        raise DataError(f"no data file at {source}")
    kind = table_format(source)
    try:
        if kind == "csv":
            with pd.read_csv(source, chunksize=chunk_rows) as reader:
                for frame in reader:
                    frame.columns = [str(column) for column in frame.columns]
                    yield frame
        elif kind == "parquet":
            for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        else:
            yield read_table(source)
    except (OSError, ValueError, pd.errors.ParserError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {source.name}: {exc}") from exc


def score_chunk(
    core: ServingCore,
    context: RequestContext,
    predictor: Predictor,
    chunk: pd.DataFrame,
    first_row: int,
) -> tuple[pd.DataFrame, int, int, list[Problem]]:
    """Score the valid rows of a chunk through ``core``, numbering rows from ``first_row``.

    Returns:
        The chunk plus ``probability``, ``label`` and ``class_name`` (empty on invalid
        rows), the number of positives, the number of invalid rows, and their problems.

    Raises:
        InvalidInputError: a feature column is missing.
    """
    found = core.decide_frame(context, predictor, chunk, first_row)
    decisions, valid = found.decisions, found.valid
    scored = chunk.copy()
    if bool(valid.all()):  # keep the label's own type when no row is blank
        scored["probability"] = decisions.probabilities
        scored["label"] = decisions.label_array()
        scored["class_name"] = decisions.class_name_array()
    else:
        probability = np.full(len(chunk), np.nan)
        probability[valid] = decisions.probabilities
        scored["probability"] = probability
        index = chunk.index[valid]  # blanks where rows were invalid, as where() leaves them
        scored["label"] = pd.Series(decisions.label_array(), index=index).reindex(chunk.index)
        names = pd.Series(decisions.class_name_array(), index=index, dtype=object)
        scored["class_name"] = names.reindex(chunk.index)
    return scored, decisions.positives, int((~valid).sum()), found.problems


def write_csv(handle: BinaryIO, scored: pd.DataFrame, *, header: bool) -> None:
    """Append a chunk with Arrow's CSV writer, or pandas' when Arrow cannot hold a column.

    Arrow's writer is about ten times faster than pandas' and its floats round-trip; a
    column mixing text and numbers (a bad cell), or holding an integer beyond 64 bits, falls
    back to pandas for that chunk.
    """
    try:
        table = pa.Table.from_pandas(scored, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        scored.to_csv(handle, header=header, index=False)
        return
    pa_csv.write_csv(table, handle, write_options=pa_csv.WriteOptions(include_header=header))


def write_parquet(
    writer: pq.ParquetWriter | None,
    temp: Path | BinaryIO,
    table: pa.Table,
    *,
    schema: pa.Schema | None = None,
) -> pq.ParquetWriter:
    """Append a scored chunk to a Parquet file, opening it if needed.

    The file is opened with ``schema``, or else the chunk's own. Floating-point columns are
    not dictionary-encoded: continuous values overflow the dictionary and Arrow gives up
    only after trying, at about 7x the cost of writing them plainly.

    Raises:
        DataError: the chunk's columns cannot be cast to the file's types.
    """
    if writer is None:
        types = schema or table.schema
        encoded = [column.name for column in types if not pa.types.is_floating(column.type)]
        writer = pq.ParquetWriter(temp, types, use_dictionary=encoded)
        if schema is None:
            writer.write_table(table)
            return writer
    try:
        table = table.cast(writer.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise DataError(
            f"a later chunk's columns do not match the first chunk's types ({exc}); "
            "write CSV, or convert the input to Parquet first"
        ) from exc
    writer.write_table(table)
    return writer


def append_problems(side: Path, problems: list[Problem], *, first: bool) -> None:
    """Append problems to the side file as (row, field, problem) lines."""
    rows = []
    for problem in problems:
        where, _, column = problem.field.partition(".")
        row = int(where.removeprefix("row "))
        rows.append({"row": row, "field": column, "problem": problem.problem})
    pd.DataFrame(rows).to_csv(side, mode="a", header=first, index=False)


def publish_output(temp: Path, side: Path, destination: Path, result: BatchResult) -> None:
    """Rename a finished output (and its side file of bad rows, if any) into place."""
    os.replace(temp, destination)
    if result.invalid_rows:
        result.errors = errors_path(destination)
        os.replace(side, result.errors)
    else:
        errors_path(destination).unlink(missing_ok=True)  # from an earlier run


def temp_beside(path: Path) -> Path:
    """A free name in the target's folder, for a temp file that is renamed over the target."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    Path(name).unlink()  # writers create it; only the unique name is wanted
    return Path(name)
