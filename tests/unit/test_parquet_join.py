"""Joining Parquet parts by copying bytes: the footer codec and the joined file."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tabops.errors import DataError
from tabops.integrations.parquet_join import (
    MAGIC,
    _read_struct,
    _write_struct,
    body,
    joined_footer,
    moved_row_groups,
    read_footer,
)


def parquet_bytes(frame: pd.DataFrame, **options) -> bytes:
    buffer = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with pq.ParquetWriter(buffer, table.schema, **options) as writer:
        writer.write_table(table, row_group_size=700)
    return buffer.getvalue()


@pytest.fixture
def frames() -> list[pd.DataFrame]:
    rng = np.random.default_rng(0)
    return [
        pd.DataFrame(
            {
                "x": rng.normal(size=rows),
                "k": rng.integers(0, 3, rows),
                "s": np.where(rng.random(rows) > 0.5, "yes", None),
            }
        )
        for rows in (1000, 10, 2500)
    ]


def test_a_footer_is_written_back_byte_for_byte(frames):
    data = parquet_bytes(frames[0], write_page_index=True)
    length = int.from_bytes(data[-8:-4], "little")
    footer = data[len(data) - 8 - length : len(data) - 8]

    fields, end = _read_struct(footer, 0)
    written = bytearray()
    _write_struct(written, fields)

    assert end == len(footer)
    assert bytes(written) == footer


@pytest.mark.parametrize("page_index", [False, True])
def test_parts_copied_where_they_land_read_as_one_file_with_every_row_group(frames, page_index):
    joined = io.BytesIO()
    joined.write(MAGIC)
    row_groups: list = []
    first = None
    for number, frame in enumerate(frames):
        data = parquet_bytes(frame, write_page_index=page_index)
        footer = read_footer(data, f"part {number}")
        first = first or footer
        row_groups.extend(moved_row_groups(footer, joined.tell(), len(row_groups)))
        joined.write(body(data, footer))
    joined.write(joined_footer(first, row_groups, sum(len(frame) for frame in frames)))

    data = joined.getvalue()
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    everything = pd.concat(frames, ignore_index=True)
    pd.testing.assert_frame_equal(pq.read_table(io.BytesIO(data)).to_pandas(), everything)
    assert metadata.num_rows == len(everything)
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        700,
        300,
        10,
        700,
        700,
        700,
        400,
    ]
    # Row-group statistics still point at the right bytes: a filter reads the right rows.
    filtered = pq.read_table(io.BytesIO(data), filters=[("x", ">", 1.5)]).to_pandas()
    assert filtered["x"].tolist() == everything.loc[everything["x"] > 1.5, "x"].tolist()


@pytest.mark.parametrize("content", [b"PAR1 not really", b"PAR1" + b"\xff" * 8 + b"PAR1", b""])
def test_a_part_that_is_not_parquet_is_refused(content):
    with pytest.raises(DataError, match="part 3 is not a Parquet file"):
        read_footer(content, "part 3")
