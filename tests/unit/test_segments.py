"""The prediction log's files: names, reading by time and column, lookups by id, compaction.

Segments are real Parquet files written with the log's own schema for a small feature spec;
every reader call goes through ``LogReader`` and the compaction functions.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tabops.monitoring.compaction import compact_folder, prune_log
from tabops.monitoring.layout import (
    SOURCES_KEY,
    SegmentName,
    is_prediction_id,
    partition_folder,
    plan_folder,
)
from tabops.monitoring.rows import log_schema
from tabops.monitoring.segments import LogReader
from tabops.schema import FeatureSpec

SPEC = FeatureSpec.model_validate(
    {
        "columns": [
            {"name": "amount", "kind": "numeric"},
            {"name": "city", "kind": "categorical"},
            {"name": "member", "kind": "boolean"},
            {"name": "y", "kind": "boolean", "role": "target"},
        ]
    }
)
PREFIX = "a1b2c3d4e5f6"
DAY = datetime(2025, 3, 4, tzinfo=UTC)


def write_segment(
    root: Path, counter: int, rows: int, at: datetime, *, version: int = 1, seq: int = 0
) -> SegmentName:
    """A segment of ``rows`` predictions of one group, as the writer names and types it."""
    group = f"{PREFIX}{counter:012x}"
    ids = [f"{group}{index:08x}" for index in range(rows)]
    features = pa.StructArray.from_arrays(
        [
            pa.array([float(counter * 100 + i) for i in range(rows)]),
            pa.array(["paris" if i % 2 else "lyon" for i in range(rows)]),
            pa.array([i % 3 == 0 for i in range(rows)]),
        ],
        names=["amount", "city", "member"],
    )
    schema = log_schema(SPEC)
    table = pa.Table.from_arrays(
        [
            pa.array(ids),
            pa.array([group] * rows),
            pa.array([at] * rows, pa.timestamp("us", tz="UTC")),
            pa.array(["predict"] * rows),
            pa.array(["key1"] * rows),
            pa.array([None] * rows, pa.string()),
            pa.array([0.1 * (i % 10) for i in range(rows)]),
            pa.array(["1" if i % 2 else "0" for i in range(rows)]),
            pa.array([bool(i % 2) for i in range(rows)]),
            pa.array([0.5] * rows),
            pa.array([1.5] * rows, pa.float32()),
            features.cast(schema.field("features").type),
        ],
        schema=schema,
    )
    name = SegmentName(PREFIX, f"{counter:012x}", f"{counter:012x}", at.hour, seq)
    folder = partition_folder(root, "m", version, at.date())
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / name.file_name)
    return name


def all_ids(reader: LogReader, **options) -> list[str]:
    batches = reader.batches("m", columns=["prediction_id"], **options)
    return [i for batch in batches for i in batch.column("prediction_id").to_pylist()]


def test_a_segment_name_says_which_groups_it_may_hold():
    name = SegmentName(PREFIX, "000000000010", "000000000020", 7, 42)
    assert name.file_name == f"{PREFIX}-000000000010-000000000020-07-000042.parquet"
    assert SegmentName.parse(name.file_name) == name
    assert name.may_hold(f"{PREFIX}000000000015")
    assert not name.may_hold(f"{PREFIX}000000000021")
    assert not name.may_hold("ffffffffffff000000000015")
    assert SegmentName.parse(".x.parquet.tmp") is None
    assert SegmentName.parse("notes.txt") is None
    assert is_prediction_id(f"{PREFIX}000000000015" + "00000000")
    assert not is_prediction_id("A" * 32)
    assert not is_prediction_id("0" * 31)


def test_batches_filter_by_time_and_read_feature_fields_as_flat_columns(tmp_path):
    write_segment(tmp_path, 1, 3, DAY + timedelta(hours=1))
    write_segment(tmp_path, 2, 4, DAY + timedelta(hours=5), seq=1)
    write_segment(tmp_path, 3, 2, DAY + timedelta(days=1, hours=2), seq=2)
    reader = LogReader(tmp_path)

    assert len(all_ids(reader)) == 9
    assert len(all_ids(reader, since=DAY + timedelta(hours=2))) == 6
    assert len(all_ids(reader, until=DAY + timedelta(hours=5))) == 3
    # A naive time is UTC; the window is [since, until).
    window = all_ids(reader, since=datetime(2025, 3, 4, 5), until=datetime(2025, 3, 5, 2))
    assert len(window) == 4

    [batch, *_] = reader.batches(
        "m", version=1, columns=["features.amount", "features.city", "features.absent"]
    )
    assert batch.schema.names == ["features.amount", "features.city", "features.absent"]
    assert batch.column("features.amount").to_pylist() == [100.0, 101.0, 102.0]
    assert batch.column("features.city").to_pylist() == ["lyon", "paris", "lyon"]
    assert batch.column("features.absent").null_count == 3
    assert "version" not in batch.schema.names
    with pytest.raises(ValueError, match="nope"):
        list(reader.batches("m", columns=["nope"]))


def test_reading_every_version_adds_the_version_column_and_batches_are_bounded(tmp_path):
    write_segment(tmp_path, 1, 5, DAY, version=1)
    write_segment(tmp_path, 2, 5, DAY, version=2, seq=1)
    reader = LogReader(tmp_path)
    assert reader.models() == ["m"]
    assert reader.versions("m") == [1, 2]
    batches = list(reader.batches("m", columns=["probability"], batch_rows=2))
    assert max(b.num_rows for b in batches) == 2
    versions = [v for b in batches for v in b.column("version").to_pylist()]
    assert versions == [1] * 5 + [2] * 5


def test_find_and_locate_open_only_the_files_whose_names_may_hold_the_ids(tmp_path):
    write_segment(tmp_path, 1, 3, DAY)
    write_segment(tmp_path, 9, 3, DAY + timedelta(days=2), seq=1)
    reader = LogReader(tmp_path)
    found = reader.find(f"{PREFIX}{9:012x}00000001")
    assert found is not None
    assert found["model"] == "m"
    assert found["version"] == 1
    assert found["timestamp"].startswith("2025-03-06T00:00:00")
    assert found["features"] == {"amount": 901.0, "city": "paris", "member": False}
    assert found["key_id"] == "key1"
    assert reader.find(f"{PREFIX}{9:012x}00000007") is None
    assert reader.find(f"{PREFIX}{5:012x}00000000") is None
    assert reader.find("not an id") is None

    wanted = [f"{PREFIX}{1:012x}00000002", f"{PREFIX}{9:012x}00000000", "f" * 32, "bad"]
    located = reader.locate("m", wanted)
    assert set(located) == set(wanted[:2])
    assert located[wanted[1]].timestamp == DAY + timedelta(days=2)
    assert located[wanted[0]].positive is False
    assert located[wanted[0]].threshold == 0.5
    assert reader.locate("other", wanted) == {}


def test_compaction_merges_a_closed_hour_into_one_file_with_the_same_rows(tmp_path):
    hour = DAY + timedelta(hours=3)
    for seq, counter in enumerate(range(1, 7)):
        write_segment(tmp_path, counter, 4, hour + timedelta(minutes=counter), seq=seq)
    write_segment(tmp_path, 50, 2, DAY + timedelta(hours=4), seq=10)  # the next hour
    reader = LogReader(tmp_path)
    before = sorted(all_ids(reader))
    folder = partition_folder(tmp_path, "m", 1, DAY.date())

    assert compact_folder(folder, hour + timedelta(minutes=30)) == 0  # the hour is still open
    assert compact_folder(folder, DAY + timedelta(hours=4, minutes=5)) == 1

    files = sorted(p.name for p in folder.glob("*.parquet"))
    assert len(files) == 2
    compacted = next(folder / f for f in files if f.endswith("c.parquet"))
    sources = json.loads(pq.read_schema(compacted).metadata[SOURCES_KEY])
    assert [rows for _name, rows in sources] == [4] * 6
    assert sorted(all_ids(reader)) == before
    found = reader.find(f"{PREFIX}{3:012x}00000002")
    assert found is not None
    assert found["features"]["amount"] == 302.0


def compacted_with_leftovers(root: Path) -> Path:
    """Three segments of 5 rows compacted, their sources back beside the compacted file, as
    a crash between the rename and the deletes leaves them; the partition folder."""
    for seq in range(3):
        write_segment(root, seq + 1, 5, DAY + timedelta(minutes=seq), seq=seq)
    folder = partition_folder(root, "m", 1, DAY.date())
    saved = root / "saved"
    shutil.copytree(folder, saved)
    assert compact_folder(folder, DAY + timedelta(hours=2)) == 1
    for source in saved.glob("*.parquet"):
        shutil.copy(source, folder / source.name)
    return folder


def test_a_crash_between_rename_and_delete_shows_each_row_once_and_is_finished_later(tmp_path):
    folder = compacted_with_leftovers(tmp_path)
    reader = LogReader(tmp_path)

    ids = all_ids(reader)
    assert len(ids) == len(set(ids)) == 15
    assert len(reader.locate("m", ids)) == 15
    parts = plan_folder(folder)
    assert len(parts) == 1
    assert parts[0].path.name.endswith("c.parquet")

    assert compact_folder(folder, DAY + timedelta(hours=2)) == 0
    assert len(list(folder.glob("*.parquet"))) == 1  # the leftover sources are deleted
    assert sorted(all_ids(reader)) == sorted(ids)


def test_a_segment_read_after_its_compaction_began_is_not_read_twice(tmp_path):
    for seq in range(3):
        write_segment(tmp_path, seq + 1, 5, DAY + timedelta(minutes=seq), seq=seq)
    folder = partition_folder(tmp_path, "m", 1, DAY.date())
    reader = LogReader(tmp_path)
    batches = reader.batches("m", columns=["prediction_id"])
    first = next(batches)  # the first segment is read; then the folder is compacted
    assert compact_folder(folder, DAY + timedelta(hours=2)) == 1
    rest = [i for batch in batches for i in batch.column("prediction_id").to_pylist()]
    ids = first.column("prediction_id").to_pylist() + rest
    assert len(ids) == len(set(ids)) == 15


def test_prune_deletes_days_wholly_past_retention(tmp_path):
    write_segment(tmp_path, 1, 2, DAY)
    write_segment(tmp_path, 2, 2, DAY + timedelta(days=1), seq=1)
    write_segment(tmp_path, 3, 2, DAY + timedelta(days=2), seq=2)
    now = DAY + timedelta(days=3, hours=12)
    assert prune_log(tmp_path, 2.0, now) == 1
    days = sorted(p.name for p in (tmp_path / "model=m" / "version=1").iterdir())
    assert days == ["date=2025-03-05", "date=2025-03-06"]
    assert len(all_ids(LogReader(tmp_path))) == 4
