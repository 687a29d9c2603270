"""Scoring a file (CSV or Parquet) of any size in this process, chunk by chunk.

The input is read in chunks (pandas' chunked CSV reader, pyarrow's Parquet batches), so
memory follows the chunk size, not the file. Each chunk is checked, its valid rows decided
by the serving core in one call, and appended to a temp file that is renamed into place at
the end (``driver.ScoringRun``). A row that breaks the feature spec is kept in the output
with empty ``probability``, ``label`` and ``class_name``, and listed (row number, field,
problem) in a side file next to the output, ``<output name>.errors.csv``; a missing column
fails the whole file before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tabops.dataset import read_table, table_format
from tabops.errors import DataError
from tabops.model.predictor import Predictor
from tabops.scoring.driver import BatchResult, scoring_run
from tabops.scoring.formats import write_csv, write_parquet
from tabops.serving.context import RequestContext
from tabops.serving.core import ServingCore
from tabops.validation import RowProblem

CHUNK_ROWS = 100_000
Progress = Callable[[int], None]
"""Called with the number of rows scored so far."""


def count_rows(source: Path) -> int | None:
    """Rows in a file when known without reading it (Parquet metadata), else None."""
    if table_format(source) == "parquet":
        return int(pq.ParquetFile(source).metadata.num_rows)
    return None


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
    core = core or ServingCore()
    context = context or RequestContext("file")
    writer: pq.ParquetWriter | None = None
    csv_handle: BinaryIO | None = None
    with scoring_run(destination) as run:
        try:
            csv_handle = run.temp.open("wb") if run.format == "csv" else None
            for chunk in _chunks(source, chunk_rows):
                scored, positives, invalid, problems = score_chunk(
                    core, context, predictor, chunk, run.next_row
                )
                if csv_handle is not None:
                    write_csv(csv_handle, scored, header=run.result.rows == 0)
                else:
                    table = pa.Table.from_pandas(scored, preserve_index=False)
                    writer = write_parquet(writer, run.temp, table)
                run.add(len(scored), positives, invalid, problems)
                if progress is not None:
                    progress(run.result.rows)
        finally:
            if csv_handle is not None:
                csv_handle.close()
            if writer is not None:
                writer.close()
        return run.publish(source.name)


def check_file(predictor: Predictor, source: Path, rows: int = 1_000) -> None:
    """Check that a file can be read and has every feature column, from its first rows.

    Raises:
        DataError: the file cannot be read or holds no rows.
        InvalidInputError: a feature column is missing.
    """
    head = next(_chunks(source, rows), None)
    if head is None or head.empty:
        raise DataError(f"{source.name} holds no rows")
    predictor.require_columns(head)


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
) -> tuple[pd.DataFrame, int, int, list[RowProblem]]:
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
