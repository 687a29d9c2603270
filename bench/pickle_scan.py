"""Pickle scan benchmark: how long ``scan_pickle`` takes beside reading and loading the file.

Usage (from the repository root):
    .venv/bin/python bench/pickle_scan.py [--megabytes 300] [--trees 100] [--strings 1000000]

Writes, in a temporary folder: a fitted logistic regression next to one large float64 array
(``--megabytes``) saved four ways (joblib plain, joblib with compress=3, pickle protocols 2
and 5); a random forest of ``--trees`` trees with joblib and pickle protocol 2; an object
array of ``--strings`` distinct strings (an opcode or two per string: the worst case for a
scan written in Python) with joblib and pickle protocol 5. For each file it prints its size,
the time to read it in 1 MiB chunks, the time to scan it, the time the real loader
(``joblib.load`` or ``pickle.load``) takes to load it, and the scan's peak Python allocation
(tracemalloc, in another run). Files are in the page cache, so no time includes the disk.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from tabops.model.pickle_scan import scan_pickle

CHUNK = 1 << 20


def read_seconds(path: Path) -> float:
    start = time.perf_counter()
    with path.open("rb") as stream:
        while stream.read(CHUNK):
            pass
    return time.perf_counter() - start


def load_seconds(path: Path, way: str) -> float:
    """How long the real loader takes: the cost the scan adds to."""
    start = time.perf_counter()
    if way.startswith("joblib"):
        joblib.load(path)
    else:
        with path.open("rb") as stream:
            pickle.load(stream)
    return time.perf_counter() - start


def scan_seconds(path: Path) -> float:
    start = time.perf_counter()
    scan_pickle(path)
    return time.perf_counter() - start


def scan_peak_megabytes(path: Path) -> float:
    tracemalloc.start()
    scan_pickle(path)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def writers(value: object) -> dict[str, Callable[[Path], None]]:
    return {
        "joblib": lambda path: joblib.dump(value, path),
        "joblib+zlib": lambda path: joblib.dump(value, path, compress=3),
        "pickle-2": lambda path: path.write_bytes(pickle.dumps(value, protocol=2)),
        "pickle-5": lambda path: path.write_bytes(pickle.dumps(value, protocol=5)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=300)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--strings", type=int, default=1_000_000)
    options = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(10_000, 8))
    y = (x[:, 0] + rng.normal(size=10_000) > 0).astype(int)
    weights = rng.random(options.megabytes * 1_000_000 // 8)
    cases: list[tuple[str, str, Callable[[Path], None]]] = [
        ("array", way, write)
        for way, write in writers(
            {"model": LogisticRegression().fit(x, y), "weights": weights}
        ).items()
    ]
    forest = RandomForestClassifier(n_estimators=options.trees, random_state=0, n_jobs=1).fit(x, y)
    forest_writers = writers(forest)
    cases += [("forest", way, forest_writers[way]) for way in ("joblib", "pickle-2")]
    labels = np.array([f"category-{index}" for index in range(options.strings)], dtype=object)
    string_writers = writers({"categories": labels})
    cases += [("strings", way, string_writers[way]) for way in ("joblib", "pickle-5")]

    print(
        f"{'content':8} {'format':12} {'MB':>8} {'read s':>8} {'scan s':>8} {'load s':>8} "
        f"{'scan peak MB':>12}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for content, way, write in cases:
            path = Path(folder) / f"{content}-{way}.bin"
            write(path)
            size = path.stat().st_size / 1e6
            read = min(read_seconds(path) for _ in range(2))
            scan = min(scan_seconds(path) for _ in range(2))
            load = load_seconds(path, way)
            peak = scan_peak_megabytes(path)
            print(
                f"{content:8} {way:12} {size:8.1f} {read:8.3f} {scan:8.3f} {load:8.3f} {peak:12.1f}"
            )
            path.unlink()


if __name__ == "__main__":
    main()
