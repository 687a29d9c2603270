"""What runs on the Dask workers: scoring and encoding a partition, writing it into the output."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tabops.errors import DataError
from tabops.integrations.dask.partitions import CsvPart, ParquetPart, read_part
from tabops.integrations.parquet_join import MAGIC, Footer, body, moved_row_groups, read_footer
from tabops.integrations.shipped import WORKER_CORE, worker_context, worker_predictor
from tabops.model.manifest import ModelVersion
from tabops.scoring.formats import write_csv, write_parquet
from tabops.scoring.local import score_chunk
from tabops.validation import RowProblem


@dataclass(frozen=True)
class ShippedModel:
    """What a worker rebuilds the predictor from."""

    version: ModelVersion
    files: dict[str, bytes]


@dataclass(frozen=True)
class Output:
    """The file the workers write scored partitions into, at the offsets they are given."""

    path: str
    csv: bool
    chunk_rows: int


@dataclass
class Appended:
    """What a worker reports of a partition it wrote; rows are numbered from 1 within it.

    ``end`` is the offset just after the partition's bytes; the other fields the next
    partition needs are carried along: the first Parquet part's ``schema`` and footer
    (``first``) and how many row groups came before.
    """

    end: int
    rows: int = 0
    positives: int = 0
    invalid: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    schema: pa.Schema | None = None
    first: Footer | None = None
    row_groups_before: int = 0
    row_groups: list[list[Any]] = field(default_factory=list)


SCORED = pd.DataFrame(
    {
        "rows": pd.Series(dtype="int64"),
        "positives": pd.Series(dtype="int64"),
        "invalid": pd.Series(dtype="int64"),
        "problems": pd.Series(dtype=object),
        "data": pd.Series(dtype=object),
        "schema": pd.Series(dtype=object),
    }
)
"""The frame ``map_partitions`` returns: one row per partition, its encoded bytes included."""


def score_partition(
    frame: pd.DataFrame,
    model: ShippedModel,
    output: Output,
    partition_info: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """``map_partitions``' function: a one-row frame of the partition scored and encoded."""
    number = partition_info["number"] if partition_info is not None else 0
    scored = _encoded(frame, model, output, header=number == 0)
    return pd.DataFrame({name: [value] for name, value in scored.items()})


def _encoded(
    frame: pd.DataFrame,
    model: ShippedModel,
    output: Output,
    *,
    header: bool,
    schema: pa.Schema | None = None,
) -> dict[str, Any]:
    """Score a partition in chunks and encode it: CSV (with ``header``) or Parquet.

    A Parquet part is a whole file with the first chunk's column types, or ``schema`` when
    given; a later chunk is cast to them as the local engine casts it (``DataError`` when it
    cannot be).
    """
    predictor = worker_predictor(model.version, model.files)
    context = worker_context()
    counts = {"rows": 0, "positives": 0, "invalid": 0}
    found: list[RowProblem] = []
    buffer = io.BytesIO()
    writer: pq.ParquetWriter | None = None
    for start in range(0, len(frame), output.chunk_rows):
        chunk = frame.iloc[start : start + output.chunk_rows]
        scored, positives, invalid, problems = score_chunk(
            WORKER_CORE, context, predictor, chunk, counts["rows"] + 1
        )
        if output.csv:
            write_csv(buffer, scored, header=header and counts["rows"] == 0)
        else:
            table = pa.Table.from_pandas(scored, preserve_index=False)
            writer = write_parquet(writer, buffer, table, schema=schema)
        counts["rows"] += len(scored)
        counts["positives"] += positives
        counts["invalid"] += invalid
        found.extend(problems)
    if writer is not None:
        writer.close()
    return {
        **counts,
        "problems": found,
        "data": buffer.getvalue(),
        "schema": writer.schema if writer is not None else None,
    }


def append_part(
    encoded: pd.DataFrame,
    previous: Appended | None,
    part: CsvPart | ParquetPart,
    model: ShippedModel,
    output: Output,
) -> Appended:
    """Write an encoded partition into the output where the previous one ended."""
    scored = encoded.iloc[0]
    data: bytes = scored["data"]
    appended = Appended(
        end=previous.end if previous is not None else (0 if output.csv else len(MAGIC)),
        rows=int(scored["rows"]),
        positives=int(scored["positives"]),
        invalid=int(scored["invalid"]),
        problems=list(scored["problems"]),
    )
    if previous is not None:
        appended.schema, appended.row_groups_before = previous.schema, previous.row_groups_before
    if output.csv:
        _write_at(output, data, appended.end)
        appended.end += len(data)
        return appended
    if not appended.rows:
        return appended
    schema = appended.schema or scored["schema"]
    if not scored["schema"].equals(schema):
        # The local engine casts a chunk to the first one's types; so is the partition,
        # scored again (rarely: a column's type was guessed differently).
        data = _encoded(read_part(part), model, output, header=False, schema=schema)["data"]
    footer = read_footer(data, "a scored partition")
    if appended.schema is None:
        appended.schema, appended.first = schema, footer
    appended.row_groups = moved_row_groups(footer, appended.end, appended.row_groups_before)
    appended.row_groups_before += len(appended.row_groups)
    piece = body(data, footer)
    _write_at(output, piece, appended.end)
    appended.end += len(piece)
    return appended


def _write_at(output: Output, data: bytes | memoryview, offset: int) -> None:
    try:
        descriptor = os.open(output.path, os.O_WRONLY)
    except FileNotFoundError as exc:
        raise DataError(
            f"a Dask worker cannot write to {output.path}: on a remote cluster, write the "
            "output to a folder every worker shares"
        ) from exc
    try:
        view = memoryview(data)
        while view:
            written = os.pwrite(descriptor, view, offset)
            view, offset = view[written:], offset + written
    finally:
        os.close(descriptor)
