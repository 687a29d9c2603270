"""Scoring a file on a Dask cluster: ``dask.dataframe`` partitions, one output file in input order.

The driver splits the input into partitions (CSV: runs of lines, found by counting line
breaks; Parquet: runs of row groups) and checks the feature columns before any work starts.
The partitions become a ``dask.dataframe`` (``from_map``) scored by ``map_partitions``; the
version's files are sent to the cluster once, so the model needs no shared filesystem, and
each worker process rebuilds and verifies the predictor once and caches it. A partition is
scored with ``tabops.batch.score_chunk`` and encoded (CSV text, or a whole Parquet file) by
the worker that read it; the same worker then writes the bytes into the output's temp file,
at the offset where the previous partition ended (a chain of small tasks), so rows never
cross the network and the driver copies nothing. Parquet parts are joined by copying their
row groups and writing one footer (``parquet_join``). The temp file is renamed into place
at the end. Invalid rows and the side file of problems (numbered across the whole input)
are those of ``tabops.batch.score_file``.

The workers read the input and write the output, so on a remote cluster both must be at
paths every worker and the driver see (a shared mount). CSV is split at line breaks, so a
quoted field may not hold one.
"""

from __future__ import annotations

import glob
import importlib
import io
import os
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
from tabops.integrations.parquet_join import (
    MAGIC,
    Footer,
    body,
    joined_footer,
    moved_row_groups,
    read_footer,
)
from tabops.predictor import Predictor
from tabops.registry.versions import ModelVersion

PartitionProgress = Callable[[int, int, int], None]
"""Called with the rows written, the partitions written and the partitions in all."""

_SHOWN = 20  # problems kept in the result for display; the side file has them all
_IN_FLIGHT_PER_THREAD = 2  # enough to keep every worker thread busy while the driver appends
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


@dataclass(frozen=True)
class _Output:
    """The file the workers write scored partitions into, at the offsets they are given."""

    path: str
    csv: bool
    chunk_rows: int


@dataclass
class _Appended:
    """What a worker reports of a partition it wrote; rows are numbered from 1 within it.

    ``end`` is the offset just after the partition's bytes; the other fields the next
    partition needs are carried along: the first Parquet part's ``schema`` and footer
    (``first``) and how many row groups came before.
    """

    end: int
    rows: int = 0
    positives: int = 0
    invalid: int = 0
    problems: list[Problem] = field(default_factory=list)
    schema: pa.Schema | None = None
    first: Footer | None = None
    row_groups_before: int = 0
    row_groups: list[list[Any]] = field(default_factory=list)


_SCORED = pd.DataFrame(
    {
        "rows": pd.Series(dtype="int64"),
        "positives": pd.Series(dtype="int64"),
        "invalid": pd.Series(dtype="int64"),
        "problems": pd.Series(dtype=object),
        "data": pd.Series(dtype=object),
        "schema": pd.Series(dtype=object),
    }
)
"""The frame ``map_partitions`` returns: one row per partition, its encoded bytes included."""


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
    output_format = table_format(destination)
    if output_format == "sqlite":
        raise DataError("write predictions to .csv or .parquet")
    parts, meta = _plan(predictor, source, partition_rows)
    if not parts:
        raise DataError(f"{_display_name(source)} holds no rows")
    model = _ShippedModel(predictor.version, predictor.read_files())
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_beside(destination)
    side = temp_beside(errors_path(destination))
    csv = output_format == "csv"
    # The workers write into the file; it exists first so that a worker which does not
    # see this folder fails instead of writing somewhere else.
    temp.write_bytes(b"" if csv else MAGIC)
    output = _Output(str(temp.resolve()), csv=csv, chunk_rows=partition_rows)
    result = BatchResult(rows=0, positives=0, output=destination)
    try:
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
                if appended.problems:
                    problems = _renumbered(appended.problems, result.rows)
                    append_problems(side, problems, first=result.invalid_rows == 0)
                    result.invalid_rows += appended.invalid
                    result.problems.extend(problems[: _SHOWN - len(result.problems)])
                result.rows += appended.rows
                result.positives += appended.positives
                if progress is not None:
                    progress(result.rows, number + 1, len(parts))
        if result.rows == 0:
            raise DataError(f"{_display_name(source)} holds no rows")
        with temp.open("r+b") as handle:
            handle.seek(end)
            if first is not None:
                handle.write(joined_footer(first, row_groups, result.rows))
            handle.truncate()
        publish_output(temp, side, destination, result)
    finally:
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
    with (
        start_local_cluster(workers, threads_per_worker) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def _appended_in_order(
    client: Any,
    parts: list[_CsvPart | _ParquetPart],
    meta: pd.DataFrame,
    model: _ShippedModel,
    output: _Output,
) -> Iterator[_Appended]:
    """Score every partition and write it into the output, reporting each in input order.

    Partition ``n`` is read (``from_map``) and scored and encoded (``map_partitions``) in
    one task; a second task, on the worker holding the encoded bytes, writes them where
    partition ``n - 1`` ended, so only a few numbers per partition cross the network and
    the driver copies nothing. Partitions are submitted in order, a few per worker thread
    ahead of the one being written, which bounds the workers' memory whatever the size.
    """
    import dask

    # Used through Any, like ``distributed``: strict mypy refuses their untyped calls.
    dd: Any = importlib.import_module("dask.dataframe")
    delayed: Any = importlib.import_module("dask.delayed").delayed
    distributed = _import_distributed()
    shipped = client.persist(delayed(model, traverse=False))  # sent once, used by every task
    (model_future,) = distributed.futures_of(shipped)
    # The input's columns reach the model as pandas reads them, not converted to Arrow
    # strings as Dask does by default.
    with dask.config.set({"dataframe.convert-string": False}):
        frames = dd.from_map(_read_part, parts, meta=meta, label="tabops-read")
        scored = frames.map_partitions(
            _score_partition, shipped, output, meta=_SCORED, enforce_metadata=False
        )
        partitions = list(scored.to_delayed())
    in_flight = max(2, _IN_FLIGHT_PER_THREAD * sum(client.nthreads().values()))
    waiting: deque[Any] = deque()  # distributed Futures of _append_part
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
                _append_part,
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
            appended: _Appended = future.result()
            submit_more()
            future.release()
            yield appended
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


def _score_partition(
    frame: pd.DataFrame,
    model: _ShippedModel,
    output: _Output,
    partition_info: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """``map_partitions``' function: a one-row frame of the partition scored and encoded."""
    number = partition_info["number"] if partition_info is not None else 0
    scored = _encoded(frame, model, output, header=number == 0)
    return pd.DataFrame({name: [value] for name, value in scored.items()})


def _encoded(
    frame: pd.DataFrame,
    model: _ShippedModel,
    output: _Output,
    *,
    header: bool,
    schema: pa.Schema | None = None,
) -> dict[str, Any]:
    """Score a partition in chunks and encode it: CSV (with ``header``) or Parquet.

    A Parquet part is a whole file with the first chunk's column types, or ``schema`` when
    given; a later chunk is cast to them as the local engine casts it (``DataError`` when it
    cannot be).
    """
    predictor = _worker_predictor(model)
    counts = {"rows": 0, "positives": 0, "invalid": 0}
    found: list[Problem] = []
    buffer = io.BytesIO()
    writer: pq.ParquetWriter | None = None
    for start in range(0, len(frame), output.chunk_rows):
        chunk = frame.iloc[start : start + output.chunk_rows]
        scored, positives, invalid, problems = score_chunk(predictor, chunk, counts["rows"] + 1)
        if output.csv:
            write_csv(buffer, scored, header=header and counts["rows"] == 0)
        else:
            table = pa.Table.from_pandas(scored, preserve_index=False)
            writer = write_parquet(writer, buffer, table, schema=schema)
        counts["rows"] += len(scored)
        counts["positives"] += positives
        counts["invalid"] += invalid
        found.extend(problems)
    if writer is not None:
        writer.close()
    return {
        **counts,
        "problems": found,
        "data": buffer.getvalue(),
        "schema": writer.schema if writer is not None else None,
    }


def _append_part(
    encoded: pd.DataFrame,
    previous: _Appended | None,
    part: _CsvPart | _ParquetPart,
    model: _ShippedModel,
    output: _Output,
) -> _Appended:
    """Write an encoded partition into the output where the previous one ended."""
    scored = encoded.iloc[0]
    data: bytes = scored["data"]
    appended = _Appended(
        end=previous.end if previous is not None else (0 if output.csv else len(MAGIC)),
        rows=int(scored["rows"]),
        positives=int(scored["positives"]),
        invalid=int(scored["invalid"]),
        problems=list(scored["problems"]),
    )
    if previous is not None:
        appended.schema, appended.row_groups_before = previous.schema, previous.row_groups_before
    if output.csv:
        _write_at(output, data, appended.end)
        appended.end += len(data)
        return appended
    if not appended.rows:
        return appended
    schema = appended.schema or scored["schema"]
    if not scored["schema"].equals(schema):
        # The local engine casts a chunk to the first one's types; so is the partition,
        # scored again (rarely: a column's type was guessed differently).
        data = _encoded(_read_part(part), model, output, header=False, schema=schema)["data"]
    footer = read_footer(data, "a scored partition")
    if appended.schema is None:
        appended.schema, appended.first = schema, footer
    appended.row_groups = moved_row_groups(footer, appended.end, appended.row_groups_before)
    appended.row_groups_before += len(appended.row_groups)
    piece = body(data, footer)
    _write_at(output, piece, appended.end)
    appended.end += len(piece)
    return appended


def _write_at(output: _Output, data: bytes | memoryview, offset: int) -> None:
    try:
        descriptor = os.open(output.path, os.O_WRONLY)
    except FileNotFoundError as exc:
        raise DataError(
            f"a Dask worker cannot write to {output.path}: on a remote cluster, write the "
            "output to a folder every worker shares"
        ) from exc
    try:
        view = memoryview(data)
        while view:
            written = os.pwrite(descriptor, view, offset)
            view, offset = view[written:], offset + written
    finally:
        os.close(descriptor)


def _read_part(part: _CsvPart | _ParquetPart) -> pd.DataFrame:
    """A partition's rows, as the local engine reads them (``from_map``'s function)."""
    try:
        if isinstance(part, _CsvPart):
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


# --- planning, on the driver -------------------------------------------------------------


def _plan(
    predictor: Predictor, source: Path | str, partition_rows: int
) -> tuple[list[_CsvPart | _ParquetPart], pd.DataFrame]:
    """The partitions of the input and an empty frame of its columns.

    Every file is checked for the feature columns first.
    """
    files = _input_files(source)
    if len(files) == 1 and table_format(files[0]) == "csv":
        columns, csv_parts = _plan_csv(files[0], partition_rows)
        meta = pd.DataFrame(columns=columns)
        predictor.invalid_rows(meta)  # raises on a missing column
        return list(csv_parts), meta
    parts: list[_CsvPart | _ParquetPart] = []
    metas = []
    for path in files:
        try:
            parquet = pq.ParquetFile(path)
            # The empty frame goes through the conversion the workers use, so the columns
            # checked are the ones they will see (an index stored by pandas is not one).
            empty = parquet.schema_arrow.empty_table().to_pandas()
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise DataError(f"cannot read {path.name}: {exc}") from exc
        predictor.invalid_rows(empty)
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
