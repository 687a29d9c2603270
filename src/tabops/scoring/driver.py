"""What every file-scoring engine shares: temp outputs, the tally, the side file, publication."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from tabops.dataset import table_format
from tabops.errors import DataError, Problem
from tabops.validation import RowProblem

ERRORS_SUFFIX = ".errors.csv"
_SHOWN = 20  # problems kept in the result for display; the side file has them all


@dataclass
class BatchResult:
    """What a file scoring run produced."""

    rows: int
    positives: int
    output: Path
    invalid_rows: int = 0
    errors: Path | None = None
    problems: list[Problem] = field(default_factory=list)


def errors_path(destination: Path) -> Path:
    """Where the rows that failed validation are listed."""
    return destination.with_name(destination.name + ERRORS_SUFFIX)


def temp_beside(path: Path) -> Path:
    """A free name in the target's folder, for a temp file that is renamed over the target."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    Path(name).unlink()  # writers create it; only the unique name is wanted
    return Path(name)


def renumbered(problems: Sequence[RowProblem], offset: int) -> list[RowProblem]:
    """Problems with rows counted ``offset`` further (a partition's rows in the whole input)."""
    return [replace(problem, row=problem.row + offset) for problem in problems]


class ScoringRun:
    """One scoring of a file into ``destination``: written aside, published all at once.

    Open one with ``scoring_run``, which removes the temp output and side file on the way
    out, whether or not ``publish`` renamed them into place first.

    Raises:
        DataError: the destination is not a CSV or Parquet file.
    """

    def __init__(self, destination: Path) -> None:
        self.format = table_format(destination)
        if self.format == "sqlite":
            raise DataError("write predictions to .csv or .parquet")
        destination.parent.mkdir(parents=True, exist_ok=True)
        self.destination = destination
        self.temp = temp_beside(destination)
        self.side = temp_beside(errors_path(destination))
        self.result = BatchResult(rows=0, positives=0, output=destination)

    @property
    def next_row(self) -> int:
        """The number of the next row to be scored, counting from 1."""
        return self.result.rows + 1

    def add(self, rows: int, positives: int, invalid: int, problems: Sequence[RowProblem]) -> None:
        """Count a scored piece of the input; its bad rows go to the side file."""
        result = self.result
        if problems:
            frame = pd.DataFrame(
                {
                    "row": [p.row for p in problems],
                    "field": [p.column for p in problems],
                    "problem": [p.problem for p in problems],
                }
            )
            frame.to_csv(self.side, mode="a", header=result.invalid_rows == 0, index=False)
            result.invalid_rows += invalid
            shown = problems[: max(_SHOWN - len(result.problems), 0)]
            result.problems.extend(problem.as_problem() for problem in shown)
        result.rows += rows
        result.positives += positives

    def publish(self, source_name: str) -> BatchResult:
        """Rename the finished output (and its side file, if any rows failed) into place.

        Raises:
            DataError: no row was scored.
        """
        result = self.result
        if result.rows == 0:
            raise DataError(f"{source_name} holds no rows")
        os.replace(self.temp, self.destination)
        if result.invalid_rows:
            result.errors = errors_path(self.destination)
            os.replace(self.side, result.errors)
        else:
            errors_path(self.destination).unlink(missing_ok=True)  # from an earlier run
        return result


@contextmanager
def scoring_run(destination: Path) -> Iterator[ScoringRun]:
    """A ``ScoringRun`` whose temp files are gone when the block ends, however it ends."""
    run = ScoringRun(destination)
    try:
        yield run
    finally:
        run.temp.unlink(missing_ok=True)
        run.side.unlink(missing_ok=True)
