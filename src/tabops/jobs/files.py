"""Where a job's input and result files live: one folder per job under ``<home>/jobs``.

Every file is written to a temp name in the same folder and renamed into place, so a reader
(or a worker re-running a job after a crash) never sees half a file, and a re-run replaces a
result instead of adding to it. Temp names start with a dot (``.result.csv.x1y2``); a
process killed mid-write leaves one behind, which ``remove_temp_files`` clears.

A job id is checked against the one form ``Job.new`` gives it before it becomes a path, so
no id can name a file outside the job's own folder.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from tabops import atomic
from tabops.errors import DataError, Problem
from tabops.jobs.table import is_job_id, job_not_found
from tabops.scoring.driver import errors_path

FILE_FORMATS = ("csv", "parquet")
_FORMATS = frozenset({"json", *FILE_FORMATS})
_COPY_BYTES = 1024 * 1024
STORE = "job files"
"""What a full disk names in its error: the folder of job inputs and results."""
_TEMP_PREFIX = "."


class JobFiles:
    """The folder tree holding every job's files."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, job_id: str) -> Path:
        """The folder of one job.

        Raises:
            JobNotFoundError: ``job_id`` is not of the form of a job id.
        """
        if not is_job_id(job_id):
            raise job_not_found(job_id)
        return self.root / job_id

    def input_path(self, job_id: str, input_format: str) -> Path:
        """The job's input: ``input.json`` for records, else ``input.csv|parquet``."""
        return self.folder(job_id) / f"input.{_checked(input_format)}"

    def result_path(self, job_id: str, input_format: str) -> Path:
        """The job's result, in the input's format (JSON for records)."""
        return self.folder(job_id) / f"result.{_checked(input_format)}"

    def errors_path(self, job_id: str, input_format: str) -> Path:
        """The side file listing rows of a file job that failed validation."""
        return errors_path(self.result_path(job_id, input_format))

    def write_bytes(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically."""
        atomic.write_bytes(path, data, store=STORE)

    def copy_upload(self, path: Path, source: IO[bytes], max_bytes: int) -> int:
        """Copy an upload to ``path`` atomically; returns its size.

        Raises:
            DataError: the upload is empty or larger than ``max_bytes``.
        """
        size = 0
        with atomic.replacing(path, store=STORE) as stream:
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

    def move_upload(self, path: Path, upload: Path) -> int:
        """Move an upload already on disk to ``path`` (a rename on the same disk); its size.

        Raises:
            DataError: the upload is empty.
        """
        size = upload.stat().st_size
        if size == 0:
            raise DataError("the upload is empty", [Problem("file", "must not be empty")])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.reporting_full_disk(STORE):  # copied when on another disk
            shutil.move(upload, path)
        return size

    def job_ids(self) -> list[str]:
        """The ids of every job folder on disk."""
        if not self.root.is_dir():
            return []
        return [entry.name for entry in self.root.iterdir() if is_job_id(entry.name)]

    def size(self, job_id: str) -> int:
        """Bytes held by a job's files (0 when it has none)."""
        return sum(path.stat().st_size for path in self._files(job_id))

    def last_change(self, job_id: str) -> datetime | None:
        """When a job's folder or a file in it last changed; None when it has no folder."""
        folder = self.folder(job_id)
        try:
            paths = [folder, *self._files(job_id)]
            return datetime.fromtimestamp(max(path.stat().st_mtime for path in paths), UTC)
        except FileNotFoundError:  # removed meanwhile
            return None

    def remove(self, job_id: str) -> int:
        """Delete a job's folder; returns the bytes it held."""
        try:
            size = self.size(job_id)
        except FileNotFoundError:  # a file was renamed or removed meanwhile
            size = 0
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
        return size

    def has_temp_files(self, job_id: str) -> bool:
        """Whether a job's folder holds a temp file (a write that never finished)."""
        return any(path.name.startswith(_TEMP_PREFIX) for path in self._files(job_id))

    def remove_temp_files(self, job_id: str) -> tuple[int, int]:
        """Delete the temp files interrupted writes left in a job's folder.

        Only safe when no process still writes to the job: after a claim, or once the job
        has finished.

        Returns:
            How many files were removed, and the bytes they held.
        """
        removed = freed = 0
        for path in self._files(job_id):
            if path.name.startswith(_TEMP_PREFIX):
                try:
                    freed += path.stat().st_size
                    path.unlink()
                except FileNotFoundError:  # removed meanwhile
                    continue
                removed += 1
        return removed, freed

    def _files(self, job_id: str) -> list[Path]:
        folder = self.folder(job_id)
        if not folder.is_dir():
            return []
        return [path for path in folder.rglob("*") if path.is_file()]


def _checked(input_format: str) -> str:
    if input_format not in _FORMATS:
        raise ValueError(f"a job's files are JSON, CSV or Parquet, not {input_format!r}")
    return input_format
