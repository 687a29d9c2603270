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
    JoinedParquetWriter,
    _read_struct,
    _write_struct,
    copy_bytes,
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
@pytest.mark.parametrize("buffering", [0, -1], ids=["file", "buffered"])
def test_joined_parts_read_as_one_file_with_every_row_group(
    frames, page_index, buffering, tmp_path
):
    parts = []
    for number, frame in enumerate(frames):
        parts.append(tmp_path / f"part-{number}.parquet")
        parts[-1].write_bytes(parquet_bytes(frame, write_page_index=page_index))
    output = tmp_path / "joined.parquet"
    with output.open("wb", buffering=buffering) as handle:
        joined = JoinedParquetWriter(handle)
        for part in parts:
            joined.append(part)
        joined.close()

    data = output.read_bytes()
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    everything = pd.concat(frames, ignore_index=True)
    pd.testing.assert_frame_equal(pq.read_table(io.BytesIO(data)).to_pandas(), everything)
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
def test_a_part_that_is_not_parquet_is_refused(content, tmp_path):
    part = tmp_path / "part.parquet"
    part.write_bytes(content)
    joined = JoinedParquetWriter(io.BytesIO())

    with pytest.raises(DataError, match=r"part\.parquet is not a Parquet file"):
        joined.append(part)


def test_copying_between_buffers_goes_a_block_at_a_time():
    source = io.BytesIO(bytes(range(256)) * 10_000)
    destination = io.BytesIO(b"head")

    destination.seek(0, io.SEEK_END)
    copy_bytes(source, destination, 100, 2_000_000)

    assert destination.getvalue() == b"head" + source.getvalue()[100:2_000_100]


def test_a_source_shorter_than_promised_is_a_data_error(tmp_path):
    source = tmp_path / "short"
    source.write_bytes(b"x" * 10)

    with (
        source.open("rb") as handle,
        (tmp_path / "out").open("wb", buffering=0) as out,
        pytest.raises(DataError, match="ended before"),
    ):
        copy_bytes(handle, out, 0, 100)
