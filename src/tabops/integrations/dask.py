"""Scoring a file on a Dask cluster: one task per partition, one output file in input order.

The driver splits the input into partitions (CSV: runs of lines, found by counting line
breaks; Parquet: runs of row groups) and checks the feature columns before any work starts. The
version's files travel to every worker once as bytes, so the model needs no shared
filesystem; each worker process rebuilds and verifies the predictor once and caches it. A
task reads its partition, scores it with ``tabops.batch.score_chunk`` and encodes it as CSV
text or a whole Parquet file, so the driver only appends bytes, in input order and a bounded
number of partitions at a time, to a temp file renamed into place (Parquet parts are joined
by copying their row groups, ``parquet_join``). Invalid rows and the side file of problems
(numbered across the whole input) are those of ``tabops.batch.score_file``.

The input is read by the workers, so on a remote cluster it must be at a path every worker
sees (a shared mount). CSV is split at line breaks, so a quoted field may not hold one. On a
remote cluster, results pass through the scheduler unless Dask's
``distributed.client.direct-to-workers`` is set (the driver must reach the workers).
"""

from __future__ import annotations

import glob
import importlib
import io
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tabops.batch import (
    CHUNK_ROWS,
    BatchResult,
    append_problems,
    errors_path,
    publish_output,
    score_chunk,
    temp_beside,
    write_csv,
    write_parquet,
)
from tabops.dataset import PARQUET_SUFFIXES, table_format
from tabops.errors import DataError, MissingExtraError, Problem, TabopsError
from tabops.integrations.parquet_join import JoinedParquetWriter
from tabops.predictor import Predictor
from tabops.registry.versions import ModelVersion

PartitionProgress = Callable[[int, int, int], None]
"""Called with the rows written, the partitions written and the partitions in all."""

_SHOWN = 20  # problems kept in the result for display; the side file has them all
_IN_FLIGHT_PER_THREAD = 2  # enough to keep every worker thread busy while the driver writes
_SCAN_BYTES = 1 << 20
_GLOB = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class _CsvPart:
    """Bytes ``start`` to ``end`` of a CSV file, parsed under the file's header line."""

    path: str
    start: int
    end: int
    header: bytes


@dataclass(frozen=True)
class _ParquetPart:
    """Some row groups of a Parquet file."""

    path: str
    row_groups: tuple[int, ...]


@dataclass(frozen=True)
class _ShippedModel:
    """What a worker rebuilds the predictor from."""

    version: ModelVersion
    files: dict[str, bytes]


@dataclass
class _ScoredPart:
    """A scored partition, encoded by the worker; rows are numbered from 1 within it.

    ``data`` is CSV text, or a whole Parquet file of ``schema`` (empty when no rows).
    """

    data: bytes = b""
    schema: pa.Schema | None = None
    rows: int = 0
    positives: int = 0
    invalid: int = 0
    problems: list[Problem] = field(default_factory=list)


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

    The output equals ``tabops.batch.score_file``'s row for row, side file included.

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
            larger row group is a partition of its own, scored in chunks of this size).
        progress: called after each partition is written.

    Raises:
        MissingExtraError: Dask is not installed.
        DataError: unreadable or empty input, an unknown output format, or chunks whose
            extra columns change type in a Parquet output.
        InvalidInputError: a feature column is missing (nothing is written).
        TabopsError: the scheduler cannot be reached.
    """
    distributed = _import_distributed()
    output_format = table_format(destination)
    if output_format == "sqlite":
        raise DataError("write predictions to .csv or .parquet")
    parts = _plan(predictor, source, partition_rows)
    if not parts:
        raise DataError(f"{_display_name(source)} holds no rows")
    model = _ShippedModel(predictor.version, predictor.read_files())
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_beside(destination)
    side = temp_beside(errors_path(destination))
    result = BatchResult(rows=0, positives=0, output=destination)
    csv = output_format == "csv"
    handle: BinaryIO | None = None
    try:
        handle = temp.open("wb")
        joined = None if csv else JoinedParquetWriter(handle)
        schema: pa.Schema | None = None  # the first part's, which every part must have
        with _connect(distributed, scheduler, workers, threads_per_worker) as client:
            shipped = client.scatter(model, broadcast=True, hash=False)
            options = {"csv": csv, "chunk_rows": partition_rows}
            for done, scored in enumerate(_scored_in_order(client, parts, shipped, options), 1):
                if joined is None:
                    handle.write(scored.data)
                elif scored.rows:
                    schema = schema or scored.schema
                    if scored.schema is None or not scored.schema.equals(schema):
                        # The local engine casts a chunk to the first one's types; so does
                        # the part, scored again (rarely: a column's guessed type changed).
                        part = parts[done - 1]
                        scored = client.submit(
                            _score_part, part, shipped, **options, schema=schema, pure=False
                        ).result()
                    joined.append(scored.data)
                if scored.problems:
                    problems = _renumbered(scored.problems, result.rows)
                    append_problems(side, problems, first=result.invalid_rows == 0)
                    result.invalid_rows += scored.invalid
                    result.problems.extend(problems[: _SHOWN - len(result.problems)])
                result.rows += scored.rows
                result.positives += scored.positives
                if progress is not None:
                    progress(result.rows, done, len(parts))
        if result.rows == 0:
            raise DataError(f"{_display_name(source)} holds no rows")
        if joined is not None:
            joined.close()
        handle.close()
        publish_output(temp, side, destination, result)
    finally:
        if handle is not None:
            handle.close()
        temp.unlink(missing_ok=True)
        side.unlink(missing_ok=True)
    return result


def _import_distributed() -> Any:
    """The ``distributed`` module, used through ``Any``: strict mypy refuses its untyped calls."""
    try:
        return importlib.import_module("distributed")
    except ImportError as exc:
        raise MissingExtraError("Dask", "dask") from exc


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
    # Results come straight from the workers, not through the scheduler, which shares this
    # process and would copy each of them twice more.
    with (
        start_local_cluster(workers, threads_per_worker) as cluster,
        distributed.Client(cluster, set_as_default=False, direct_to_workers=True) as client,
    ):
        yield client


def _scored_in_order(
    client: Any, parts: list[_CsvPart | _ParquetPart], model: Any, options: dict[str, Any]
) -> Iterator[_ScoredPart]:
    """Results in input order, with at most a few partitions per worker thread in flight.

    The bound keeps memory (on the workers, holding results not yet written) to a few
    partitions whatever the file's size.
    """
    threads = sum(client.nthreads().values())
    in_flight = max(2, _IN_FLIGHT_PER_THREAD * threads)
    waiting: deque[Any] = deque()  # distributed Futures
    submitted = 0

    def submit_more() -> None:
        nonlocal submitted
        while submitted < len(parts) and len(waiting) < in_flight:
            part, header = parts[submitted], submitted == 0
            future = client.submit(_score_part, part, model, **options, header=header, pure=False)
            waiting.append(future)
            submitted += 1

    try:
        submit_more()
        while waiting:
            future = waiting.popleft()
            scored: _ScoredPart = future.result()
            future.release()
            submit_more()
            yield scored
    finally:
        for future in waiting:
            future.cancel()


def _renumbered(problems: list[Problem], offset: int) -> list[Problem]:
    """Problems with rows numbered across the whole input instead of within a partition."""
    renumbered = []
    for problem in problems:
        where, _, column = problem.field.partition(".")
        row = int(where.removeprefix("row ")) + offset
        renumbered.append(Problem(f"row {row}.{column}", problem.problem))
    return renumbered


# --- on the workers ----------------------------------------------------------------------

_PREDICTORS: dict[tuple[str, int, tuple[str, ...]], Predictor] = {}
_PREDICTORS_LOCK = threading.Lock()


def _worker_predictor(model: _ShippedModel) -> Predictor:
    """The predictor of a shipped model, built and verified once per worker process."""
    files = model.version.manifest["files"]
    key = (model.version.name, model.version.version, tuple(sorted(files.values())))
    with _PREDICTORS_LOCK:
        predictor = _PREDICTORS.get(key)
        if predictor is None:
            _PREDICTORS.clear()  # a worker serves one run at a time; drop older versions
            predictor = Predictor.from_files(model.version, model.files)
            _PREDICTORS[key] = predictor
    return predictor


def _score_part(
    part: _CsvPart | _ParquetPart,
    model: _ShippedModel,
    *,
    csv: bool,
    chunk_rows: int,
    header: bool = False,
    schema: pa.Schema | None = None,
) -> _ScoredPart:
    """Score a partition and encode it: CSV text (``header`` on the first), or Parquet.

    A Parquet part has the first chunk's column types, or ``schema`` when given; a later
    chunk is cast to them as the local engine casts it (``DataError`` when it cannot be).
    """
    predictor = _worker_predictor(model)
    scored = _ScoredPart()
    buffer = io.BytesIO()
    writer: pq.ParquetWriter | None = None
    for chunk in _read_part(part, chunk_rows):
        frame, positives, invalid, problems = score_chunk(predictor, chunk, scored.rows + 1)
        if csv:
            write_csv(buffer, frame, header=header and buffer.tell() == 0)
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                types = schema or table.schema
                # Dictionary-encoding a continuous column is tried and abandoned page by
                # page; leaving floats out makes writing about 7x faster.
                keep = [column.name for column in types if not pa.types.is_floating(column.type)]
                writer = pq.ParquetWriter(buffer, types, use_dictionary=keep)
            writer = write_parquet(writer, buffer, table)
        scored.rows += len(frame)
        scored.positives += positives
        scored.invalid += invalid
        scored.problems.extend(problems)
    if writer is not None:
        writer.close()
        scored.schema = writer.schema
    scored.data = buffer.getvalue()
    return scored


def _read_part(part: _CsvPart | _ParquetPart, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        if isinstance(part, _CsvPart):
            with open(part.path, "rb") as handle:
                handle.seek(part.start)
                block = handle.read(part.end - part.start)
            frame = pd.read_csv(io.BytesIO(part.header + block))
            frame.columns = [str(column) for column in frame.columns]
            yield frame
        else:
            parquet = pq.ParquetFile(part.path)
            for batch in parquet.iter_batches(
                batch_size=chunk_rows, row_groups=list(part.row_groups)
            ):
                yield batch.to_pandas()
    except (OSError, ValueError, pd.errors.ParserError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {Path(part.path).name}: {exc}") from exc


# --- planning, on the driver -------------------------------------------------------------


def _plan(
    predictor: Predictor, source: Path | str, partition_rows: int
) -> list[_CsvPart | _ParquetPart]:
    """The partitions of the input, after checking every file has the feature columns."""
    files = _input_files(source)
    if len(files) == 1 and table_format(files[0]) == "csv":
        columns, csv_parts = _plan_csv(files[0], partition_rows)
        predictor.invalid_rows(pd.DataFrame(columns=columns))  # raises on a missing column
        return list(csv_parts)
    parts: list[_CsvPart | _ParquetPart] = []
    for path in files:
        try:
            parquet = pq.ParquetFile(path)
            # The empty frame goes through the conversion the workers use, so the columns
            # checked are the ones they will see (an index stored by pandas is not one).
            empty = parquet.schema_arrow.empty_table().to_pandas()
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise DataError(f"cannot read {path.name}: {exc}") from exc
        predictor.invalid_rows(empty)
        parts.extend(_plan_parquet(path, parquet.metadata, partition_rows))
    return parts


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


def _display_name(source: Path | str) -> str:
    return Path(source).name if isinstance(source, Path) else source


def _plan_csv(path: Path, partition_rows: int) -> tuple[list[str], list[_CsvPart]]:
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
        _CsvPart(location, start, end, header)
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


def _plan_parquet(path: Path, metadata: pq.FileMetaData, partition_rows: int) -> list[_ParquetPart]:
    """Consecutive row groups of at most ``partition_rows`` rows together (empty ones left out)."""
    parts = []
    group: list[int] = []
    rows = 0
    for index in range(metadata.num_row_groups):
        count = metadata.row_group(index).num_rows
        if count == 0:
            continue
        if group and rows + count > partition_rows:
            parts.append(_ParquetPart(str(path.resolve()), tuple(group)))
            group, rows = [], 0
        group.append(index)
        rows += count
    if group:
        parts.append(_ParquetPart(str(path.resolve()), tuple(group)))
    return parts
