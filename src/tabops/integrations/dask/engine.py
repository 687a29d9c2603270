"""Scoring a file on a Dask cluster, driven from here: partitions in, one output file out."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from tabops.errors import DataError, TabopsError
from tabops.integrations.dask.partitions import CsvPart, ParquetPart, display_name, plan, read_part
from tabops.integrations.dask.workers import (
    SCORED,
    Appended,
    Output,
    ShippedModel,
    append_part,
    score_partition,
)
from tabops.integrations.parquet_join import MAGIC, Footer, joined_footer
from tabops.integrations.shipped import engine_module
from tabops.model.predictor import Predictor
from tabops.scoring.driver import BatchResult, renumbered, scoring_run
from tabops.scoring.local import CHUNK_ROWS

PartitionProgress = Callable[[int, int, int], None]
"""Called with the rows written, the partitions written and the partitions in all."""

_IN_FLIGHT_PER_THREAD = 2  # enough to keep every worker thread busy while the driver appends


def score_file_dask(
    predictor: Predictor,
    source: Path | str,
    destination: Path,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    threads_per_worker: int = 1,
    partition_rows: int = CHUNK_ROWS,
    progress: PartitionProgress | None = None,
) -> BatchResult:
    """Append ``probability``, ``label`` and ``class_name`` to every row, scored on Dask.

    The output equals ``tabops.scoring.local.score_file``'s row for row, side file
    included; both go through ``tabops.scoring.driver.ScoringRun``.

    Args:
        predictor: a version loaded from a registry (its files are shipped to the workers).
        source: a CSV or Parquet file, or a folder or glob pattern of Parquet files (read
            in natural name order: ``part.2`` before ``part.10``).
        destination: the CSV or Parquet file to write, by its suffix.
        scheduler: address of a running scheduler (``tcp://host:port``); when None, a local
            cluster of processes on 127.0.0.1 is started and closed afterwards.
        workers: worker processes of the local cluster.
        threads_per_worker: threads of each local worker.
        partition_rows: rows per partition: lines of a CSV (the local engine's chunks when
            both are the same size), or whole Parquet row groups up to this many rows (a
            larger row group is a partition of its own). A partition is scored in chunks of
            this many rows.
        progress: called after each partition is written.

    Raises:
        MissingExtraError: Dask is not installed.
        DataError: unreadable or empty input, an unknown output format, an output folder
            the workers cannot write to (it is not on a shared path), or chunks whose extra
            columns change type in a Parquet output.
        InvalidInputError: a feature column is missing (nothing is written).
        TabopsError: the scheduler cannot be reached.
    """
    distributed = _import_distributed()
    with scoring_run(destination) as run:
        parts, meta = plan(predictor, source, partition_rows)
        if not parts:
            raise DataError(f"{display_name(source)} holds no rows")
        model = ShippedModel(predictor.version, predictor.read_files())
        csv = run.format == "csv"
        # The workers write into the file; it exists first so that a worker which does not
        # see this folder fails instead of writing somewhere else.
        run.temp.write_bytes(b"" if csv else MAGIC)
        output = Output(str(run.temp.resolve()), csv=csv, chunk_rows=partition_rows)
        first: Footer | None = None
        row_groups: list[list[Any]] = []
        end = 0
        with _connect(distributed, scheduler, workers, threads_per_worker) as client:
            for number, appended in enumerate(
                _appended_in_order(client, parts, meta, model, output)
            ):
                first = first or appended.first
                row_groups.extend(appended.row_groups)
                end = appended.end
                problems = renumbered(appended.problems, run.result.rows)
                run.add(appended.rows, appended.positives, appended.invalid, problems)
                if progress is not None:
                    progress(run.result.rows, number + 1, len(parts))
        if run.result.rows:
            with run.temp.open("r+b") as handle:
                handle.seek(end)
                if first is not None:
                    handle.write(joined_footer(first, row_groups, run.result.rows))
                handle.truncate()
        return run.publish(display_name(source))


def _import_distributed() -> Any:
    return engine_module("distributed", "Dask", "dask")


def start_local_cluster(workers: int = 2, threads_per_worker: int = 1) -> Any:
    """A ``distributed.LocalCluster`` of worker processes set up for scoring; close it after.

    Everything it opens listens on 127.0.0.1 only, and there is no dashboard. Pass its
    ``scheduler_address`` to ``score_file_dask`` to score several files on one cluster.

    Raises:
        MissingExtraError: Dask is not installed.
    """
    distributed = _import_distributed()
    import dask

    # Dask makes workers hand freed memory back to the OS at once, so every partition's
    # arrays fault their pages in afresh: a quarter of a worker's CPU in this workload. A
    # scoring cluster keeps and reuses it (32 MiB is glibc's largest mmap threshold).
    keep_memory = {
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 256 << 20,
        "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 32 << 20,
    }
    with dask.config.set(keep_memory):
        return distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # Without a dashboard the scheduler still serves /health and /metrics, on port
            # 8787 unless told otherwise: a free port keeps clear of another cluster.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )


@contextmanager
def _connect(
    distributed: Any, scheduler: str | None, workers: int, threads_per_worker: int
) -> Iterator[Any]:
    """A client of the given scheduler, or of a local cluster closed on the way out."""
    # Not the default client: a caller's own dask.compute calls must not land on this cluster.
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise TabopsError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        with client:
            yield client
        return
    with (
        start_local_cluster(workers, threads_per_worker) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def _appended_in_order(
    client: Any,
    parts: list[CsvPart | ParquetPart],
    meta: pd.DataFrame,
    model: ShippedModel,
    output: Output,
) -> Iterator[Appended]:
    """Score every partition and write it into the output, reporting each in input order.

    Partition ``n`` is read (``from_map``) and scored and encoded (``map_partitions``) in
    one task; a second task, on the worker holding the encoded bytes, writes them where
    partition ``n - 1`` ended, so only a few numbers per partition cross the network and
    the driver copies nothing. Partitions are submitted in order, a few per worker thread
    ahead of the one being written, which bounds the workers' memory whatever the size.
    """
    import dask

    dd = engine_module("dask.dataframe", "Dask", "dask")
    delayed = engine_module("dask.delayed", "Dask", "dask").delayed
    distributed = _import_distributed()
    shipped = client.persist(delayed(model, traverse=False))  # sent once, used by every task
    (model_future,) = distributed.futures_of(shipped)
    # The input's columns reach the model as pandas reads them, not converted to Arrow
    # strings as Dask does by default.
    with dask.config.set({"dataframe.convert-string": False}):
        frames = dd.from_map(read_part, parts, meta=meta, label="tabops-read")
        scored = frames.map_partitions(
            score_partition, shipped, output, meta=SCORED, enforce_metadata=False
        )
        partitions = list(scored.to_delayed())
    in_flight = max(2, _IN_FLIGHT_PER_THREAD * sum(client.nthreads().values()))
    waiting: deque[Any] = deque()  # distributed Futures of append_part
    previous: Any = None
    submitted = 0

    def submit_more() -> None:
        nonlocal previous, submitted
        while submitted < len(partitions) and len(waiting) < in_flight:
            # An earlier partition goes first when a worker has the choice; writing one
            # goes before scoring another.
            rank = len(partitions) - submitted
            encoded = client.compute(partitions[submitted], priority=rank)
            previous = client.submit(
                append_part,
                encoded,
                previous,
                parts[submitted],
                model_future,
                output,
                pure=False,
                priority=rank + len(partitions),
            )
            waiting.append(previous)
            submitted += 1

    try:
        submit_more()
        while waiting:
            future = waiting.popleft()
            appended: Appended = future.result()
            submit_more()
            future.release()
            yield appended
    finally:
        for future in waiting:
            future.cancel()
