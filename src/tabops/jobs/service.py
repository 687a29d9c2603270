"""Submitting jobs and reading them back: what the API and the CLI call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Engine

from tabops.config import Settings
from tabops.database import open_database
from tabops.errors import (
    DataError,
    InvalidRequestError,
    JobError,
    JobNotFinishedError,
    Problem,
    RegistryError,
    TabopsError,
)
from tabops.jobs.files import JobFiles
from tabops.jobs.queue import JobQueue, build_huey
from tabops.jobs.records import FINISHED, Job, JobStore
from tabops.jobs.retention import PruneResult, remove_job
from tabops.jobs.run import JobRunner
from tabops.jobs.table import job_not_found
from tabops.model.predictor import Predictor
from tabops.project import PROJECT_FILE, confine_path, load_project, resolve_data_path
from tabops.registry.versions import check_alias
from tabops.scoring.local import check_file, count_rows
from tabops.serving.core import ServingCore

INLINE_PREDICTIONS = 1_000
"""Most predictions a job's document carries inline; a larger result is only downloaded."""
INLINE_BYTES = 512 * 1024
"""Largest result file read for inlining (about 4,000 predictions of a typical model)."""


class JobService:
    """Jobs of one tabops home: records in the database, files on disk, ids on the queue."""

    def __init__(self, store: JobStore, files: JobFiles, queue: JobQueue, max_upload_bytes: int):
        self.store = store
        self.files = files
        self.queue = queue
        self.max_upload_bytes = max_upload_bytes

    @classmethod
    def from_settings(
        cls, settings: Settings, core: ServingCore, engine: Engine | None = None
    ) -> JobService:
        """The jobs of ``settings``' database (or ``engine``) and queue.

        Scoring jobs run through ``core`` (its deployment's models, its hooks).
        """
        store = JobStore(engine or open_database(settings))
        files = JobFiles(settings.jobs_path)
        runner = JobRunner(store, files, core, settings.queue.job_lease_seconds)
        queue = JobQueue(build_huey(settings), store, runner, settings.queue.job_retention_days)
        return cls(store, files, queue, settings.queue.max_upload_bytes)

    def submit_records(
        self, predictor: Predictor, records: list[dict[str, Any]], *, owner: str | None = None
    ) -> Job:
        """Queue the scoring of validated records by one version, on behalf of ``owner``."""
        job = Job.new(
            "score",
            model=predictor.name,
            version=predictor.version.version,
            input_format="json",
            params={"rows": len(records)},
            owner=owner,
        )
        self.files.write_bytes(self.files.input_path(job.id, "json"), orjson.dumps(records))
        return self._queue(job)

    def submit_file(
        self,
        predictor: Predictor,
        source: IO[bytes],
        file_format: str,
        *,
        owner: str | None = None,
    ) -> Job:
        """Queue the scoring of an uploaded CSV or Parquet file by one version, for ``owner``.

        The upload is stored first, then checked (readable, every feature column present),
        so a file that cannot be scored is refused now rather than failing later.

        Raises:
            DataError: the upload is empty, too large or unreadable.
            InvalidInputError: a feature column is missing.
        """
        return self._submit_stored(
            predictor,
            file_format,
            owner,
            lambda path: self.files.copy_upload(path, source, self.max_upload_bytes),
        )

    def submit_upload(
        self, predictor: Predictor, upload: Path, file_format: str, *, owner: str | None = None
    ) -> Job:
        """As ``submit_file``, for an upload already on disk: moved into the job, not copied.

        Raises:
            DataError: the upload is empty or unreadable.
            InvalidInputError: a feature column is missing.
        """
        return self._submit_stored(
            predictor, file_format, owner, lambda path: self.files.move_upload(path, upload)
        )

    def _submit_stored(
        self,
        predictor: Predictor,
        file_format: str,
        owner: str | None,
        store: Callable[[Path], object],
    ) -> Job:
        """Queue a file job whose input ``store`` puts at the path it is given, once checked."""
        job = Job.new(
            "score",
            model=predictor.name,
            version=predictor.version.version,
            input_format=file_format,
            owner=owner,
        )
        path = self.files.input_path(job.id, file_format)
        try:
            store(path)
            check_file(predictor, path)
            job.params["rows"] = count_rows(path)
        except BaseException:
            self.files.remove(job.id)
            raise
        return self._queue(job)

    def submit_training(
        self,
        project_path: Path,
        data: Path | None = None,
        promote: str | None = None,
        *,
        roots: Sequence[Path],
        private: Sequence[Path] = (),
        owner: str | None = None,
    ) -> Job:
        """Queue the training of a project whose files lie under ``roots``.

        The project file and its table (``data``, else the one the project names) must lie
        under a root and in no ``private`` folder; each is checked before it is opened (see
        ``confine_path``), and the job records the real paths checked, so that it reads
        those files when it runs. ``promote`` names an alias to point at the new version
        when every gate passes; without it the version takes no alias, even as the first
        version of a model.

        Raises:
            InvalidRequestError: ``promote`` is not a valid alias name.
            PathNotAllowedError: a path lies outside the roots or inside a private folder.
            ProjectError: the project file is missing or invalid.
            DataError: the training table does not exist.
        """
        if promote is not None:
            try:
                check_alias(promote)
            except RegistryError as exc:
                problems = [Problem("promote", exc.message)]
                raise InvalidRequestError("the alias to promote is invalid", problems) from exc
        project_file = confine_path(project_path, roots, "project", private)
        if project_file.is_dir():
            project_file = confine_path(project_file / PROJECT_FILE, roots, "project", private)
        project, folder = load_project(project_file)
        source = confine_path(data or resolve_data_path(project, folder), roots, "data", private)
        if not source.is_file():
            raise DataError(
                f"no training table at {source}", [Problem("data", "file does not exist")]
            )
        params = {"project": str(project_file), "data": str(source), "promote": promote}
        return self._queue(Job.new("train", model=project.name, params=params, owner=owner))

    def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job with this id; with ``owner``, only one that owner submitted.

        Raises:
            JobNotFoundError: no such job, or another owner's (which is not revealed).
        """
        return self.store.get(job_id, owner)

    def recent(
        self, status: str | None = None, limit: int = 50, owner: str | None = None
    ) -> list[Job]:
        """The most recent jobs, newest first; with ``owner``, only that owner's."""
        return self.store.recent(status, limit, owner)

    def queue_depth(self) -> int:
        """How many jobs are queued and not yet started, whoever submitted them."""
        return self.store.count("queued")

    def delete(self, job_id: str, owner: str | None = None) -> None:
        """Delete a finished job, or cancel a queued one: its record, then its files.

        A queued job's message may still be on the queue; with no record, it runs nothing.

        Raises:
            JobNotFoundError: no such job, or another owner's.
            JobNotFinishedError: the job is running.
        """
        job = self.get(job_id, owner)
        if remove_job(self.store, self.files, job.id, {*FINISHED, "queued"}) is None:
            status = self.get(job_id, owner).status  # raises if deleted meanwhile
            raise JobNotFinishedError(
                f"job {job.id} is {status}; it can be deleted once it has finished"
            )

    def prune(self, older_than_days: float | None = None) -> PruneResult:
        """Remove finished jobs that ended more than ``older_than_days`` ago.

        Without ``older_than_days``, the configured retention applies (nothing is removed
        but stale temp files when retention is off).
        """
        older = timedelta(days=older_than_days) if older_than_days is not None else None
        return self.queue.prune(older)

    def result_file(self, job: Job) -> Path:
        """The scored file (or JSON document) of a succeeded scoring job.

        Raises:
            JobNotFinishedError: the job has not succeeded.
            JobError: the job trains a model, so its result is in the job record.
        """
        if job.kind != "score" or job.input_format is None:
            raise JobError(f"job {job.id} trains a model; its result is in the job record")
        if job.status == "failed":
            raise JobNotFinishedError(f"job {job.id} failed, so it has no result: {job.error}")
        if job.status != "succeeded":
            raise JobNotFinishedError(
                f"job {job.id} is {job.status}; its result is ready when it has succeeded"
            )
        path = self.files.result_path(job.id, job.input_format)
        if not path.is_file():  # the job was deleted since its record was read
            raise job_not_found(job.id)
        return path

    def errors_file(self, job: Job) -> Path | None:
        """The side file of rows that failed validation, when the job has one."""
        if job.status != "succeeded" or job.input_format in (None, "json"):
            return None
        assert job.input_format is not None
        path = self.files.errors_path(job.id, job.input_format)
        return path if path.is_file() else None

    def predictions(self, job: Job) -> list[dict[str, Any]] | None:
        """The predictions of a succeeded records job, in the order of its records.

        None for other jobs, and for a result too large to inline (more than
        ``INLINE_PREDICTIONS`` predictions or a file over ``INLINE_BYTES``): such a file is
        not opened at all, only downloaded from ``result_file``.
        """
        if job.status != "succeeded" or job.input_format != "json" or job.result is None:
            return None
        if job.result.get("rows", 0) > INLINE_PREDICTIONS:
            return None
        path = self.files.result_path(job.id, "json")
        try:
            if path.stat().st_size > INLINE_BYTES:
                return None
            document = orjson.loads(path.read_bytes())
        except FileNotFoundError:  # deleted since its record was read
            return None
        predictions: list[dict[str, Any]] = document["predictions"]
        return predictions

    def close(self) -> None:
        """Stop this process's job threads and close its database connections."""
        self.queue.stop()
        self.store.engine.dispose()

    def _queue(self, job: Job) -> Job:
        # Record first, then message: a crash in between leaves a queued record, which
        # the next start-up re-queues; the reverse order could run a job with no record.
        try:
            self.store.add(job)
        except TabopsError:
            self.files.remove(job.id)  # the job's input, which no record names
            raise
        try:
            self.queue.enqueue(job.id)
        except TabopsError:
            # Refused to the caller, so no later start-up may run it; best effort, as the
            # database may share the queue's full disk.
            with suppress(TabopsError):
                remove_job(self.store, self.files, job.id, {"queued"})
            raise
        return job
