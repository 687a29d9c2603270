"""Web UI benchmark: the overview page over a prediction log of a million rows.

Usage (from the repository root):
    .venv/bin/python bench/ui_overview.py [--rows 1000000] [--segments 600] [--repeats 30]
                                          [--home DIR]

Trains the heart-failure example once (quick settings) into a temporary home, or uses
``--home`` (a TABOPS_HOME holding a trained ``heart-failure``). Then writes a prediction log
of ``--rows`` rows over the last 24 hours as a server leaves it: one compacted file for each
closed hour and ``--segments`` small segments (one flush each) in the open hour. The
overview's traffic badge reads file names and Parquet footers only; this prints how long
that count takes cold (no footer read yet) and warm, and the whole page through
``TestClient`` (first answer, then median, 95th percentile and slowest of ``--repeats``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from example_home import MODEL, train_example
from fastapi.testclient import TestClient

from tabops.config import Settings
from tabops.monitoring import volume
from tabops.monitoring.layout import SOURCES_KEY, SegmentName, partition_folder
from tabops.server.app import create_app

PREFIX = "0123456789ab"


def write_file(path: Path, rows: int, sources: list[tuple[str, int]] | None = None) -> None:
    table = pa.table(
        {
            "prediction_id": pa.array([f"{i:032x}" for i in range(rows)]),
            "probability": pa.array([0.5] * rows, pa.float64()),
        }
    )
    if sources is not None:
        table = table.replace_schema_metadata({SOURCES_KEY: json.dumps(sources).encode()})
    pq.write_table(table, path)


def write_log(root: Path, rows: int, segments: int, now: datetime) -> int:
    """A day of log: one compacted file per closed hour, small segments in the open one."""
    hours = 24
    open_rows = rows // (hours + 1)
    closed_rows = (rows - open_rows) // (hours - 1)
    counter, seq, written = 0, 0, 0
    for back in range(hours - 1, -1, -1):
        moment = now - timedelta(hours=back)
        folder = partition_folder(root, MODEL, 1, moment.date())
        folder.mkdir(parents=True, exist_ok=True)
        if back > 0:  # a closed hour, compacted
            names, first = [], counter
            for _ in range(60):
                low, high = f"{counter:012x}", f"{counter + 9:012x}"
                name = SegmentName(PREFIX, low, high, moment.hour, seq)
                names.append((name.file_name, closed_rows // 60))
                counter, seq = counter + 10, seq + 1
            last = f"{counter - 1:012x}"
            compacted = SegmentName(PREFIX, f"{first:012x}", last, moment.hour, seq, True)
            seq += 1
            total = sum(count for _name, count in names)
            write_file(folder / compacted.file_name, total, names)
            written += total
        else:
            each = max(1, open_rows // segments)
            for _ in range(segments):
                name = SegmentName(PREFIX, f"{counter:012x}", f"{counter:012x}", moment.hour, seq)
                counter, seq = counter + 1, seq + 1
                write_file(folder / name.file_name, each)
                written += each
    return written


def summary(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{label:<34} median {statistics.median(ordered) * 1000:7.2f} ms   "
        f"p95 {p95 * 1000:7.2f} ms   max {ordered[-1] * 1000:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--home", type=Path)
    arguments = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        home = work / "home"
        if arguments.home:
            shutil.copytree(arguments.home, home)
        else:
            started = time.perf_counter()
            train_example(home, work)
            print(f"trained the example in {time.perf_counter() - started:.1f} s")
        root = home / "predictions"
        now = datetime.now(UTC)
        started = time.perf_counter()
        written = write_log(root, arguments.rows, arguments.segments, now)
        files = sum(1 for _ in root.rglob("*.parquet"))
        print(f"wrote {written:,} rows in {files} files in {time.perf_counter() - started:.1f} s")

        since = now - timedelta(hours=24)
        started = time.perf_counter()
        counted = volume.count_logged_since(root, MODEL, since)
        cold = time.perf_counter() - started
        print(f"count, cold (every footer read): {cold * 1000:.1f} ms -> {counted:,} rows")
        warm = []
        for _ in range(arguments.repeats):
            started = time.perf_counter()
            volume.count_logged_since(root, MODEL, since)
            warm.append(time.perf_counter() - started)
        print(summary("count, warm (footers remembered)", warm))

        volume._rows_of.cache_clear()
        volume._sources_of.cache_clear()
        volume._compacted_summary.cache_clear()
        with TestClient(create_app(Settings(home=home))) as client:
            started = time.perf_counter()
            first = client.get("/ui")
            print(f"overview, first answer: {(time.perf_counter() - started) * 1000:.1f} ms")
            assert first.status_code == 200, first.text[:500]
            pages = []
            for _ in range(arguments.repeats):
                started = time.perf_counter()
                client.get("/ui")
                pages.append(time.perf_counter() - started)
            print(summary("overview page", pages))
            print(f"overview size: {len(first.content):,} bytes")


if __name__ == "__main__":
    main()
