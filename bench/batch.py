"""File-scoring benchmark: `tabops predict` against pandas + scikit-learn on the same CSV.

Usage (from the repository root):
    .venv/bin/python bench/batch.py [--rows 1000000,5000000] [--model lr|hgb] [--keep]
    .venv/bin/python bench/batch.py --engine dask [--rows 2000000] [--model lr|hgb]

For each size, a CSV of that many rows (the 30-feature synthetic table of
``peers/models.py``, repeated with fresh noise) is scored twice, each in a process of its
own, timed by wall clock, its peak resident memory read with GNU time (``%M``):

- baseline: ``pandas.read_csv`` of the whole file, the same fitted scikit-learn steps'
  ``predict_proba``, ``to_csv`` of inputs plus probability, label and class name;
- tabops: ``tabops predict -m bench-<model> -i in.csv -o out.csv`` (chunks of 100,000 rows).

Prints one markdown table: rows/s, the ratio to the baseline, and peak RSS; the last line
compares tabops' peak RSS at the largest size with the smallest.

With ``--engine dask``, a Parquet file of the first size (row groups of 100,000 rows) is
scored to Parquet (``--output csv``: to CSV) by ``score_file_dask`` on local clusters of 1
and of 2 worker processes (one thread each), and by the local engine for reference. Cold:
one call that starts its own cluster (workers import tabops and rebuild the model). Warm:
clusters started and warmed up once, then runs alternating between the set-ups
(``--repeats``, default 3), each writing a new file after the last one is removed and the
page cache flushed (``os.sync``). Prints the best and median seconds and rows/s, the
2-worker / 1-worker ratio of both, and whether every output's probabilities equal the
first's. Last, what the machine allows: 1 and then 2 processes (no Dask) reading and
scoring every row group at once, started together.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from peers.models import (
    FEATURES,
    TARGET,
    BenchModel,
    make_table,
    prepare_models,
    tabops_environment,
)

from tabops.integrations.dask import score_file_dask, start_local_cluster
from tabops.model.predictor import Predictor
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.scoring.local import score_chunk, score_file
from tabops.serving.context import RequestContext
from tabops.serving.core import ServingCore

CHUNK = 200_000
DASK_ROW_GROUP = 100_000
DASK_WORKERS = (1, 2)
BASELINE = """
import pickle, sys
import numpy as np, pandas as pd
source, destination, pipeline, threshold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
with open(pipeline, "rb") as handle:
    model = pickle.load(handle)
frame = pd.read_csv(source)
probability = model.predict_proba(frame)[:, 1]
frame["probability"] = probability
frame["label"] = (probability >= threshold).astype(int)
frame["class_name"] = np.where(probability >= threshold, "positive", "negative")
frame.to_csv(destination, index=False)
"""


def synthetic_chunks(rows: int) -> Iterator[pd.DataFrame]:
    """``rows`` rows of the synthetic table's features, resampled with noise, in chunks."""
    table = make_table()[FEATURES]
    rng = np.random.default_rng(1)
    written = 0
    while written < rows:
        count = min(CHUNK, rows - written)
        sample = table.sample(n=count, replace=True, random_state=int(rng.integers(1 << 31)))
        noise = rng.normal(0, 0.01, size=sample.shape) * sample.abs().to_numpy()
        yield pd.DataFrame(sample.to_numpy() + noise, columns=FEATURES)
        written += count


def write_csv(path: Path, rows: int) -> None:
    """``rows`` rows of the synthetic table's features, written in chunks."""
    with path.open("w") as handle:
        for number, chunk in enumerate(synthetic_chunks(rows)):
            chunk.to_csv(handle, header=number == 0, index=False)


def write_parquet(path: Path, rows: int) -> None:
    """The same rows as ``write_csv``, as Parquet with row groups of ``DASK_ROW_GROUP`` rows."""
    writer: pq.ParquetWriter | None = None
    for chunk in synthetic_chunks(rows):
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=DASK_ROW_GROUP)
    if writer is not None:
        writer.close()


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of a command run under GNU time."""
    with tempfile.NamedTemporaryFile(suffix=".time") as report:
        started = time.perf_counter()
        completed = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, *command],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if completed.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {completed.stderr.strip()[-500:]}")
        kilobytes = int(Path(report.name).read_text().split()[-1])
    return seconds, kilobytes * 1024


def read_probabilities(path: Path) -> pd.Series:
    """The probability column of a scored file."""
    if path.suffix == ".csv":
        return pd.read_csv(path, usecols=["probability"])["probability"]
    return pd.read_parquet(path, columns=["probability"])["probability"]


def run_dask(model: BenchModel, work: Path, rows: int, repeats: int, output: str) -> None:
    """Parquet to ``output`` on 1 and 2 local Dask workers, and in process for reference."""
    source = work / "in.parquet"
    warm = work / "warm.parquet"
    print(f"[batch] writing {rows:,} rows of Parquet", file=sys.stderr)
    write_parquet(source, rows)
    write_parquet(warm, 10_000)
    predictor = model.predictor
    print(f"[batch] load average at the start: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    cold = {}
    for workers in DASK_WORKERS:
        started = time.perf_counter()
        score_file_dask(predictor, source, work / f"cold.{output}", workers=workers)
        cold[workers] = time.perf_counter() - started
        print(f"[batch] {workers} worker(s), cold: {cold[workers]:.1f} s", file=sys.stderr)
    expected = read_probabilities(work / f"cold.{output}")
    timings: dict[str, list[float]] = {"local": []}
    same = {}
    with contextlib.ExitStack() as stack:
        addresses = {}
        for workers in DASK_WORKERS:
            cluster = stack.enter_context(start_local_cluster(workers, threads_per_worker=1))
            addresses[workers] = cluster.scheduler_address
            score_file_dask(
                predictor, warm, work / "warm-out.parquet", scheduler=addresses[workers]
            )
            timings[f"{workers}"] = []
        # Runs alternate between the set-ups, so a burst of load elsewhere on the machine
        # lands on all of them; the best of the repeats is compared.
        for repeat in range(repeats):
            # Each run writes a new file: replacing the last run's (freeing 500 MB of
            # blocks, about 0.3 s here) is not scoring, and would be timed otherwise.
            (work / f"local.{output}").unlink(missing_ok=True)
            os.sync()  # the last run's 500 MB go to disk now, not during this one
            started = time.perf_counter()
            score_file(predictor, source, work / f"local.{output}")
            timings["local"].append(time.perf_counter() - started)
            for workers, address in addresses.items():
                scored_path = work / f"dask-{workers}.{output}"
                scored_path.unlink(missing_ok=True)
                os.sync()
                started = time.perf_counter()
                score_file_dask(predictor, source, scored_path, scheduler=address)
                timings[f"{workers}"].append(time.perf_counter() - started)
                scored = read_probabilities(scored_path)
                same[workers] = np.array_equal(scored, expected, equal_nan=True)
            runs = ", ".join(f"{key}: {values[-1]:.1f} s" for key, values in timings.items())
            print(f"[batch] repeat {repeat + 1}: {runs}", file=sys.stderr)
    local = read_probabilities(work / f"local.{output}")
    same_local = np.array_equal(local, expected, equal_nan=True)
    print(
        f"model: bench-{model.key} ({TARGET} on 30 numeric features), {rows:,} rows, "
        f"Parquet to {output.upper() if output == 'csv' else 'Parquet'}, row groups of "
        f"{DASK_ROW_GROUP:,}; best and median of "
        f"{repeats} warm runs\n"
    )
    print("| engine | best s | best rows/s | median s | cold s | same probabilities |")
    print("|---|---:|---:|---:|---:|---|")
    best = {key: min(values) for key, values in timings.items()}
    for key, values in timings.items():
        label = (
            "local engine (in process)" if key == "local" else f"Dask, {key} worker(s) x 1 thread"
        )
        cold_text = "-" if key == "local" else f"{cold[int(key)]:.1f}"
        equal = same_local if key == "local" else same[int(key)]
        print(
            f"| {label} | {best[key]:.2f} | {rows / best[key]:,.0f} | "
            f"{statistics.median(values):.2f} | {cold_text} | {'yes' if equal else 'NO'} |"
        )
    medians = {key: statistics.median(values) for key, values in timings.items()}
    print(
        f"\n2 workers / 1 worker, warm rows/s: best {best['1'] / best['2']:.2f}, "
        f"median {medians['1'] / medians['2']:.2f}"
    )
    one, two = (
        max(read_and_score_rate(work / "home", model.name, source, processes) for _ in range(3))
        for processes in (1, 2)
    )
    print(
        f"Without Dask, reading and scoring only (best of 3): 1 process {one:,.0f} rows/s, "
        f"2 processes {two:,.0f} rows/s: {two / one:.2f}"
    )


def read_and_score_rate(home: Path, name: str, source: Path, processes: int) -> float:
    """Rows/s of ``processes`` processes each reading and scoring every row group of
    ``source`` at once, started together: what the machine allows, without Dask or writing.
    """
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start = context.Barrier(processes)
    workers = [
        context.Process(target=_read_and_score, args=(home, name, source, start, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    seconds = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    groups = pq.ParquetFile(source).metadata.num_row_groups
    rows = sum(pq.ParquetFile(source).metadata.row_group(i).num_rows for i in range(groups))
    return processes * rows / max(seconds)


def _read_and_score(home: Path, name: str, source: Path, start: Any, results: Any) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # as in a Dask worker
    pa.set_cpu_count(1)
    predictor = Predictor.load(ModelRegistry(LocalArtifactStore(home / "registry")), name)
    parquet = pq.ParquetFile(source)
    core, context = ServingCore(), RequestContext("file")
    score_chunk(core, context, predictor, parquet.read_row_group(0).to_pandas(), 1)  # warm up
    start.wait()
    started = time.perf_counter()
    for group in range(parquet.metadata.num_row_groups):
        score_chunk(core, context, predictor, parquet.read_row_group(group).to_pandas(), 1)
    results.put(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=None, help="comma-separated sizes")
    parser.add_argument("--model", default="lr", choices=["lr", "hgb"])
    parser.add_argument("--engine", default="local", choices=["local", "dask"])
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per set-up (dask)")
    parser.add_argument("--output", default="parquet", choices=["parquet", "csv"], help="(dask)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    default_rows = "2000000" if args.engine == "dask" else "1000000,5000000"
    sizes = [int(size) for size in (args.rows or default_rows).split(",")]
    work = Path(tempfile.mkdtemp(prefix="tabops-batch-bench-"))
    home = work / "home"
    print(f"[batch] training bench-{args.model} in {work}", file=sys.stderr)
    (model,) = prepare_models([args.model], work, home)
    if args.engine == "dask":
        run_dask(model, work, sizes[0], args.repeats, args.output)
        remove(work, keep=args.keep)
        return
    tabops = str(Path(sys.executable).parent / "tabops")
    rows_out = []
    for size in sizes:
        source = work / f"in-{size}.csv"
        print(f"[batch] writing {size:,} rows", file=sys.stderr)
        write_csv(source, size)
        baseline = [
            sys.executable,
            "-c",
            BASELINE,
            str(source),
            str(work / "baseline.csv"),
            str(model.peer_pipeline),
            str(model.threshold),
        ]
        base_seconds, base_rss = timed(baseline)
        command = [
            tabops,
            "predict",
            "-m",
            model.name,
            "-i",
            str(source),
            "-o",
            str(work / "out.csv"),
        ]
        env = {**tabops_environment(home), "NO_COLOR": "1"}
        ours_seconds, ours_rss = timed(command, env)
        same = np.allclose(
            pd.read_csv(work / "out.csv", usecols=["probability"])["probability"],
            pd.read_csv(work / "baseline.csv", usecols=["probability"])["probability"],
            rtol=0,
            atol=1e-9,
        )
        rows_out.append((size, base_seconds, base_rss, ours_seconds, ours_rss, same))
        print(
            f"[batch] {size:,}: baseline {base_seconds:.1f} s, tabops {ours_seconds:.1f} s",
            file=sys.stderr,
        )
        source.unlink()
    print(f"model: bench-{args.model} ({TARGET} on 30 numeric features)\n")
    print(
        "| rows | baseline rows/s | baseline peak RSS | tabops rows/s | x baseline "
        "| tabops peak RSS | same probabilities |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for size, base_seconds, base_rss, ours_seconds, ours_rss, same in rows_out:
        print(
            f"| {size:,} | {size / base_seconds:,.0f} | {base_rss / 2**20:,.0f} MiB | "
            f"{size / ours_seconds:,.0f} | {base_seconds / ours_seconds:.2f} | "
            f"{ours_rss / 2**20:,.0f} MiB | {'yes' if same else 'NO'} |"
        )
    if len(rows_out) > 1:
        ratio = rows_out[-1][4] / rows_out[0][4]
        print(f"\ntabops peak RSS at {sizes[-1]:,} rows / at {sizes[0]:,} rows: {ratio:.2f}")
    remove(work, keep=args.keep)


def remove(work: Path, *, keep: bool) -> None:
    if keep:
        return
    for path in sorted(work.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    work.rmdir()


if __name__ == "__main__":
    main()
