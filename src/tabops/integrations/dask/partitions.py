"""The partitions of an input, planned on the driver and read on the workers.

CSV: runs of lines, found by counting line breaks (so a quoted field may not hold one), and
parsed under the file's header. Parquet: runs of whole row groups. Each partition is read as
the local engine reads the same rows, so both engines see the same types.
"""

from __future__ import annotations

import glob
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tabops.dataset import PARQUET_SUFFIXES, table_format
from tabops.errors import DataError
from tabops.model.predictor import Predictor

_SCAN_BYTES = 1 << 20
_GLOB = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class CsvPart:
    """Bytes ``start`` to ``end`` of a CSV file, parsed under the file's header line."""

    path: str
    start: int
    end: int
    header: bytes


@dataclass(frozen=True)
class ParquetPart:
    """Some row groups of a Parquet file."""

    path: str
    row_groups: tuple[int, ...]


def read_part(part: CsvPart | ParquetPart) -> pd.DataFrame:
    """A partition's rows, as the local engine reads them (``from_map``'s function)."""
    try:
        if isinstance(part, CsvPart):
            with open(part.path, "rb") as handle:
                handle.seek(part.start)
                block = handle.read(part.end - part.start)
            frame = pd.read_csv(io.BytesIO(part.header + block))
            frame.columns = [str(column) for column in frame.columns]
            return frame
        table = pq.ParquetFile(part.path).read_row_groups(list(part.row_groups))
        rows: pd.DataFrame = table.to_pandas()
        return rows
    except (OSError, ValueError, pd.errors.ParserError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {Path(part.path).name}: {exc}") from exc


def plan(
    predictor: Predictor, source: Path | str, partition_rows: int
) -> tuple[list[CsvPart | ParquetPart], pd.DataFrame]:
    """The partitions of the input and an empty frame of its columns.

    Every file is checked for the feature columns first.
    """
    files = _input_files(source)
    if len(files) == 1 and table_format(files[0]) == "csv":
        columns, csv_parts = _plan_csv(files[0], partition_rows)
        meta = pd.DataFrame(columns=columns)
        predictor.require_columns(meta)
        return list(csv_parts), meta
    parts: list[CsvPart | ParquetPart] = []
    metas = []
    for path in files:
        try:
            parquet = pq.ParquetFile(path)
            # The empty frame goes through the conversion the workers use, so the columns
            # checked are the ones they will see (an index stored by pandas is not one).
            empty = parquet.schema_arrow.empty_table().to_pandas()
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise DataError(f"cannot read {path.name}: {exc}") from exc
        predictor.require_columns(empty)
        metas.append(empty)
        parts.extend(_plan_parquet(path, parquet.metadata, partition_rows))
    return parts, metas[0]


def _input_files(source: Path | str) -> list[Path]:
    """The input's files: the file itself, or a folder's or pattern's Parquet files."""
    text = str(source)
    if _GLOB.search(text):
        files = [Path(name) for name in glob.glob(text) if Path(name).is_file()]
    elif Path(text).is_dir():
        files = [
            path
            for path in Path(text).rglob("*")
            if path.is_file() and path.name.lower().endswith(PARQUET_SUFFIXES)
        ]
    elif Path(text).is_file():
        if table_format(Path(text)) not in ("csv", "parquet"):
            raise DataError(f"{Path(text).name}: the Dask engine reads CSV or Parquet")
        return [Path(text)]
    else:
        raise DataError(f"no data file at {source}")
    if not files:
        raise DataError(f"no Parquet files at {source}")
    unreadable = [path.name for path in files if table_format(path) != "parquet"]
    if unreadable:
        raise DataError(f"a folder or pattern must hold Parquet files only, not {unreadable[0]}")
    return sorted(files, key=_natural_key)


def _natural_key(path: Path) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(str(path))]


def display_name(source: Path | str) -> str:
    """The input as messages name it: a file's name, or the folder or pattern given."""
    return Path(source).name if isinstance(source, Path) else source


def _plan_csv(path: Path, partition_rows: int) -> tuple[list[str], list[CsvPart]]:
    """The header's columns and byte ranges of ``partition_rows`` lines each.

    Counting line breaks costs one sequential read of the file, far less than parsing it,
    and makes the partitions the local engine's chunks: each is parsed (its column types
    guessed) on the same rows, so both engines write the same text.
    """
    if not path.name.lower().endswith((".csv", ".txt")):
        raise DataError(
            f"{path.name} is compressed and cannot be split into partitions; "
            "decompress it or use the local engine"
        )
    size = path.stat().st_size
    with path.open("rb") as handle:
        first = handle.read(_SCAN_BYTES)
        header_end = first.find(b"\n") + 1 or len(first)
        header = first[:header_end]
        try:
            columns = [str(column) for column in pd.read_csv(io.BytesIO(header)).columns]
        except (ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"cannot read {path.name}: {exc}") from exc
        starts = [header_end, *_line_breaks(handle, header_end, partition_rows)]
    ends = [*starts[1:], size]
    location = str(path.resolve())
    return columns, [
        CsvPart(location, start, end, header)
        for start, end in zip(starts, ends, strict=True)
        if end > start
    ]


def _line_breaks(handle: BinaryIO, start: int, lines: int) -> Iterator[int]:
    """Offsets just after every ``lines``-th line break from ``start`` on."""
    handle.seek(start)
    position = start
    remaining = lines
    while block := handle.read(_SCAN_BYTES):
        offset = 0
        while (found := block.count(b"\n", offset)) >= remaining:
            for _ in range(remaining):
                offset = block.index(b"\n", offset) + 1
            yield position + offset
            remaining = lines
        remaining -= found
        position += len(block)


def _plan_parquet(path: Path, metadata: pq.FileMetaData, partition_rows: int) -> list[ParquetPart]:
    """Consecutive row groups of at most ``partition_rows`` rows together (empty ones left out)."""
    parts = []
    group: list[int] = []
    rows = 0
    for index in range(metadata.num_row_groups):
        count = metadata.row_group(index).num_rows
        if count == 0:
            continue
        if group and rows + count > partition_rows:
            parts.append(ParquetPart(str(path.resolve()), tuple(group)))
            group, rows = [], 0
        group.append(index)
        rows += count
    if group:
        parts.append(ParquetPart(str(path.resolve()), tuple(group)))
    return parts
