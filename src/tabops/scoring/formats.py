"""Writing scored chunks: CSV through Arrow (pandas as a fallback), Parquet by row group."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tabops.errors import DataError


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
