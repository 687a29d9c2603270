"""Where a job's input and result files live: one folder per job under ``<home>/jobs``.

Every file is written to a temp name in the same folder and renamed into place, so a reader
(or a worker re-running a job after a crash) never sees half a file, and a re-run replaces a
result instead of adding to it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO

from tabops import atomic
from tabops.errors import DataError, Problem
from tabops.scoring.driver import errors_path

FILE_FORMATS = ("csv", "parquet")
_COPY_BYTES = 1024 * 1024


class JobFiles:
    """The folder tree holding every job's files."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, job_id: str) -> Path:
        """The folder of one job."""
        return self.root / job_id

    def input_path(self, job_id: str, input_format: str) -> Path:
        """The job's input: ``input.json`` for records, else ``input.csv|parquet``."""
        return self.folder(job_id) / f"input.{input_format}"

    def result_path(self, job_id: str, input_format: str) -> Path:
        """The job's result, in the input's format (JSON for records)."""
        return self.folder(job_id) / f"result.{input_format}"

    def errors_path(self, job_id: str, input_format: str) -> Path:
        """The side file listing rows of a file job that failed validation."""
        return errors_path(self.result_path(job_id, input_format))

    def write_bytes(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically."""
        atomic.write_bytes(path, data)

    def copy_upload(self, path: Path, source: IO[bytes], max_bytes: int) -> int:
        """Copy an upload to ``path`` atomically; returns its size.

        Raises:
            DataError: the upload is empty or larger than ``max_bytes``.
        """
        size = 0
        with atomic.replacing(path) as stream:
            while chunk := source.read(_COPY_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise DataError(
                        f"the upload exceeds the limit of {max_bytes} bytes",
                        [Problem("file", f"at most {max_bytes} bytes")],
                    )
                stream.write(chunk)
            if size == 0:
                raise DataError("the upload is empty", [Problem("file", "must not be empty")])
        return size

    def remove(self, job_id: str) -> None:
        """Delete a job's folder (a submission that could not be queued)."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
