"""Scoring a file on a Dask cluster: ``dask.dataframe`` partitions, one output file in input order.

The driver splits the input into partitions (CSV: runs of lines, found by counting line
breaks; Parquet: runs of row groups) and checks the feature columns before any work starts.
The partitions become a ``dask.dataframe`` (``from_map``) scored by ``map_partitions``; the
version's files travel in the graph once, so the model needs no shared filesystem, and each
worker process rebuilds and verifies the predictor once and caches it. Each partition is
scored with ``tabops.batch.score_chunk`` and written by its worker as a file of its own (CSV
text, or a whole Parquet file) in a scratch folder beside the output; only a few numbers
per partition come back. The driver appends the part files in input order to a temp file
renamed into place, copying bytes inside the kernel (Parquet parts are joined by copying
their row groups, ``parquet_join``). Invalid rows and the side file of problems (numbered
across the whole input) are those of ``tabops.batch.score_file``.

The input is read and the parts are written by the workers, so on a remote cluster both the
input and the output must be at paths every worker and the driver see (a shared mount). CSV
is split at line breaks, so a quoted field may not hold one.
"""

from __future__ import annotations

import glob
import importlib
import io
import os
import re
import shutil
import tempfile
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
from tabops.integrations.parquet_join import Footer, JoinedParquetWriter, copy_bytes, read_footer
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
    """Where and how the workers write scored partitions."""

    scratch: str
    csv: bool
    chunk_rows: int

    def part(self, number: int) -> Path:
        return Path(self.scratch) / f"part-{number:06d}.{'csv' if self.csv else 'parquet'}"


@dataclass
class _ScoredPart:
    """What a worker reports of a partition it wrote; rows are numbered from 1 within it."""

    rows: int = 0
    positives: int = 0
    invalid: int = 0
    problems: list[Problem] = field(default_factory=list)
    footer: Footer | None = None  # a Parquet part's, decoded by the worker


_SUMMARY = pd.DataFrame(
    {
        "rows": pd.Series(dtype="int64"),
        "positives": pd.Series(dtype="int64"),
        "invalid": pd.Series(dtype="int64"),
        "problems": pd.Series(dtype=object),
        "footer": pd.Series(dtype=object),
    }
)
"""The frame ``map_partitions`` returns: one row per partition."""


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
        DataError: unreadable or empty input, an unknown output format, a part file the
            driver cannot see (the output is not on a shared path), or chunks whose extra
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
    scratch = tempfile.mkdtemp(
        prefix=f".{destination.name}.", suffix=".parts", dir=destination.parent
    )
    output = _Output(scratch, csv=output_format == "csv", chunk_rows=partition_rows)
    result = BatchResult(rows=0, positives=0, output=destination)
    try:
        with (
            temp.open("wb") as handle,
            _connect(distributed, scheduler, workers, threads_per_worker) as client,
        ):
            joined = None if output.csv else JoinedParquetWriter(handle)
            schema: pa.Schema | None = None  # the first part's, which every part must have
            partitions = _scored_partitions(client, parts, meta, model, output)
            for number, scored in enumerate(_scored_in_order(client, partitions)):
                path = _part_file(output, number)
                if joined is None:
                    _append_whole(handle, path)
                elif scored.rows:
                    part_schema = pq.read_schema(path)
                    schema = schema or part_schema
                    if not part_schema.equals(schema):
                        # The local engine casts a chunk to the first one's types; so does
                        # the part, scored again (rarely: a column's guessed type changed).
                        scored = client.submit(
                            _rescore_part,
                            parts[number],
                            model,
                            output,
                            number,
                            schema,
                            pure=False,
                        ).result()
                    joined.append(path, scored.footer)
                path.unlink()
                if scored.problems:
                    problems = _renumbered(scored.problems, result.rows)
                    append_problems(side, problems, first=result.invalid_rows == 0)
                    result.invalid_rows += scored.invalid
                    result.problems.extend(problems[: _SHOWN - len(result.problems)])
                result.rows += scored.rows
                result.positives += scored.positives
                if progress is not None:
                    progress(result.rows, number + 1, len(parts))
            if result.rows == 0:
                raise DataError(f"{_display_name(source)} holds no rows")
            if joined is not None:
                joined.close()
        publish_output(temp, side, destination, result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
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


def _scored_partitions(
    client: Any,
    parts: list[_CsvPart | _ParquetPart],
    meta: pd.DataFrame,
    model: _ShippedModel,
    output: _Output,
) -> list[Any]:
    """One delayed summary per partition: read (``from_map``) and score (``map_partitions``).

    Dask fuses the two steps into one task per partition, so the rows never leave the
    worker that reads them. The model is sent to the cluster once, ahead of them.
    """
    import dask

    # Used through Any, like ``distributed``: strict mypy refuses their untyped calls.
    dd: Any = importlib.import_module("dask.dataframe")
    delayed: Any = importlib.import_module("dask.delayed").delayed
    shipped = client.persist(delayed(model, traverse=False))
    # The input's columns reach the model as pandas reads them, not converted to Arrow
    # strings as Dask does by default.
    with dask.config.set({"dataframe.convert-string": False}):
        frames = dd.from_map(_read_part, parts, meta=meta, label="tabops-read")
        scored = frames.map_partitions(
            _score_partition, shipped, output, meta=_SUMMARY, enforce_metadata=False
        )
        return list(scored.to_delayed())


def _scored_in_order(client: Any, partitions: list[Any]) -> Iterator[_ScoredPart]:
    """The partitions' summaries in input order, with a few per worker thread in flight.

    Partitions are submitted in order as earlier ones are taken, so the driver appends
    each part while later ones are scored, and the part files waiting in the scratch
    folder stay a few whatever the input's size.
    """
    threads = sum(client.nthreads().values())
    in_flight = max(2, _IN_FLIGHT_PER_THREAD * threads)
    waiting: deque[Any] = deque()  # distributed Futures
    submitted = 0

    def submit_more() -> None:
        nonlocal submitted
        while submitted < len(partitions) and len(waiting) < in_flight:
            # An earlier partition goes first when a worker has the choice.
            priority = len(partitions) - submitted
            waiting.append(client.compute(partitions[submitted], priority=priority))
            submitted += 1

    try:
        submit_more()
        while waiting:
            future = waiting.popleft()
            summary = _summary(future.result())
            future.release()
            submit_more()
            yield summary
    finally:
        for future in waiting:
            future.cancel()


def _summary(frame: pd.DataFrame) -> _ScoredPart:
    row = frame.iloc[0]
    return _ScoredPart(
        int(row["rows"]),
        int(row["positives"]),
        int(row["invalid"]),
        list(row["problems"]),
        row["footer"],
    )


def _part_file(output: _Output, number: int) -> Path:
    path = output.part(number)
    if not path.is_file():
        raise DataError(
            f"partition {number + 1} was written where this machine cannot read it "
            f"({path}): on a remote cluster, write the output to a path every worker shares"
        )
    return path


def _append_whole(handle: BinaryIO, path: Path) -> None:
    with path.open("rb") as part:
        copy_bytes(part, handle, 0, os.fstat(part.fileno()).st_size)


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
    """``map_partitions``' function: score a partition into its part file, return a summary."""
    number = partition_info["number"] if partition_info is not None else 0
    scored = _write_scored(frame, model, output, number)
    return pd.DataFrame(
        {
            "rows": [scored.rows],
            "positives": [scored.positives],
            "invalid": [scored.invalid],
            "problems": [scored.problems],
            "footer": [scored.footer],
        }
    )


def _rescore_part(
    part: _CsvPart | _ParquetPart,
    model: _ShippedModel,
    output: _Output,
    number: int,
    schema: pa.Schema,
) -> _ScoredPart:
    return _write_scored(_read_part(part), model, output, number, schema)


def _write_scored(
    frame: pd.DataFrame,
    model: _ShippedModel,
    output: _Output,
    number: int,
    schema: pa.Schema | None = None,
) -> _ScoredPart:
    """Score a partition in chunks into its part file: CSV (the first has the header), or Parquet.

    A Parquet part has the first chunk's column types, or ``schema`` when given; a later
    chunk is cast to them as the local engine casts it (``DataError`` when it cannot be).
    """
    predictor = _worker_predictor(model)
    scored = _ScoredPart()
    path = output.part(number)
    with path.open("wb") as handle:
        writer: pq.ParquetWriter | None = None
        for start in range(0, max(len(frame), 1), output.chunk_rows):
            chunk = frame.iloc[start : start + output.chunk_rows]
            if chunk.empty:
                break
            result, positives, invalid, problems = score_chunk(predictor, chunk, scored.rows + 1)
            if output.csv:
                write_csv(handle, result, header=number == 0 and scored.rows == 0)
            else:
                table = pa.Table.from_pandas(result, preserve_index=False)
                if writer is None:
                    types = schema or table.schema
                    # Dictionary-encoding a continuous column is tried and abandoned page by
                    # page; leaving floats out makes writing about 7x faster.
                    keep = [item.name for item in types if not pa.types.is_floating(item.type)]
                    writer = pq.ParquetWriter(handle, types, use_dictionary=keep)
                writer = write_parquet(writer, handle, table)
            scored.rows += len(result)
            scored.positives += positives
            scored.invalid += invalid
            scored.problems.extend(problems)
        if writer is not None:
            writer.close()
    if writer is not None:
        # Decoding the footer here spares the driver, which joins the parts one by one.
        with path.open("rb") as written:
            scored.footer = read_footer(written, path.name)
    return scored


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
