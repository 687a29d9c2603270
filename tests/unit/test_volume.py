"""Counting recent predictions from the log's file names and footers (no row read)."""

from __future__ import annotations

from datetime import timedelta

from tabops.monitoring.compaction import compact_folder
from tabops.monitoring.layout import partition_folder
from tabops.monitoring.segments import LogReader
from tabops.monitoring.volume import count_logged_since
from unit.test_segments import DAY, compacted_with_leftovers, write_segment


def rows_since(reader: LogReader, since) -> int:
    """The exact count, reading every row (what the footers must agree with)."""
    return sum(batch.num_rows for batch in reader.batches("m", since=since, columns=["timestamp"]))


def test_counts_the_rows_of_segments_from_the_window_hour_on(tmp_path):
    write_segment(tmp_path, 1, 7, DAY + timedelta(hours=1))
    write_segment(tmp_path, 2, 5, DAY + timedelta(hours=3, minutes=10), seq=1)
    write_segment(tmp_path, 3, 4, DAY + timedelta(hours=5), seq=2)
    write_segment(tmp_path, 4, 3, DAY + timedelta(days=1, hours=2), seq=3)  # the next day
    write_segment(tmp_path, 5, 2, DAY + timedelta(hours=4), version=2, seq=4)

    assert count_logged_since(tmp_path, "m", DAY) == 21
    # From 03:30 on: the segment begun at 03:10 counts whole (the count is to the hour).
    assert count_logged_since(tmp_path, "m", DAY + timedelta(hours=3, minutes=30)) == 14
    assert count_logged_since(tmp_path, "m", DAY + timedelta(hours=4)) == 9
    assert count_logged_since(tmp_path, "m", DAY + timedelta(days=1)) == 3
    assert count_logged_since(tmp_path, "m", DAY + timedelta(days=2)) == 0
    assert count_logged_since(tmp_path, "other", DAY) == 0
    # A naive time is UTC.
    naive = (DAY + timedelta(hours=4)).replace(tzinfo=None)
    assert count_logged_since(tmp_path, "m", naive) == 9


def test_agrees_with_reading_the_rows_after_compaction(tmp_path):
    for seq in range(4):
        write_segment(tmp_path, seq + 1, 6, DAY + timedelta(hours=2, minutes=seq), seq=seq)
    write_segment(tmp_path, 9, 5, DAY + timedelta(hours=6), seq=9)
    folder = partition_folder(tmp_path, "m", 1, DAY.date())
    assert compact_folder(folder, DAY + timedelta(hours=8)) == 1
    names = sorted(path.name for path in folder.glob("*.parquet"))
    assert sorted(name.endswith("c.parquet") for name in names) == [False, True]  # 06:00 alone
    reader = LogReader(tmp_path)
    for hour in (0, 2, 3, 6, 7):
        since = DAY + timedelta(hours=hour)
        assert count_logged_since(tmp_path, "m", since) == rows_since(reader, since)
    assert count_logged_since(tmp_path, "m", DAY) == 29


def test_segments_left_beside_their_compacted_file_count_once(tmp_path):
    compacted_with_leftovers(tmp_path)

    assert count_logged_since(tmp_path, "m", DAY) == 15


def test_new_segments_are_counted_on_the_next_call(tmp_path):
    write_segment(tmp_path, 1, 4, DAY + timedelta(hours=1))
    assert count_logged_since(tmp_path, "m", DAY) == 4
    write_segment(tmp_path, 2, 6, DAY + timedelta(hours=1, minutes=1), seq=1)
    assert count_logged_since(tmp_path, "m", DAY) == 10
